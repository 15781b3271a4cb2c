//! Greenlet trees: a snapshot of every greenlet of a hub, parent → child, with what each one
//! waits on (gevent's `GreenletTree` and `format_run_info`).
//!
//! [`GreenletTree::current_hub`] takes the snapshot; its `Display` prints it as an indented
//! tree: the hub at the root, the main greenlet under it, every other greenlet under the one
//! that spawned it, and greenlets whose parent already finished under the hub with a note.
//! With `std`, `all_hubs` asks every hub of the process for its tree.
//!
//! Taking a snapshot walks the live greenlets; nothing is recorded for it while greenlets run
//! but one `Cell` store per spawn (the parent) and the one per park that `LoopExit` reports
//! already use (what it waits on).
//!
//! ```
//! # use gevent as _; // links the default platform: see `[dev-dependencies]` in Cargo.toml
//! # #[cfg(not(miri))] // Miri cannot switch stacks
//! # gevent_core::sim::run(|| {
//! use core::time::Duration;
//! use gevent_core::tree::{GreenletTree, WaitReason};
//!
//! let sleeper = gevent_core::Builder::new()
//!     .name("sleeper")
//!     .spawn(|| gevent_core::sleep(Duration::from_secs(5)));
//! gevent_core::yield_now().unwrap();
//! let tree = GreenletTree::current_hub();
//! let node = tree.get(sleeper.id()).unwrap();
//! assert_eq!(node.parent, Some(0)); // spawned by the main greenlet
//! assert!(matches!(node.waits_on, WaitReason::Sleep { .. }));
//! println!("{tree}");
//! # sleeper.kill();
//! # });
//! ```

mod format;
pub(crate) mod high_water;
#[cfg(feature = "std")]
mod hubs;

use alloc::string::String;
use alloc::vec::Vec;
use core::panic::Location;

use crate::greenlet::task::{State, WaitKind};
use crate::platform::Interest;
use crate::time::Instant;

#[cfg(feature = "std")]
pub use hubs::{HubReport, NoAnswer, all_hubs};

/// Adds the current thread's hub, just created, to the process's registry of hubs.
#[cfg(feature = "std")]
pub(crate) fn register_current_hub() {
    hubs::register(crate::hub::hub().handle());
}

/// A snapshot of the greenlets of one hub.
#[derive(Clone, Debug)]
pub struct GreenletTree {
    pub(crate) now: Instant,
    /// The main greenlet first, then the others by id.
    pub(crate) greenlets: Vec<GreenletInfo>,
}

impl GreenletTree {
    /// A snapshot of the current thread's hub (created if the thread has none yet).
    pub fn current_hub() -> GreenletTree {
        crate::hub::hub().snapshot()
    }

    /// Every greenlet of the hub when the snapshot was taken: the main greenlet first, then
    /// the others by id.
    pub fn greenlets(&self) -> &[GreenletInfo] {
        &self.greenlets
    }

    /// The greenlet with this id, if it was alive.
    pub fn get(&self, id: u64) -> Option<&GreenletInfo> {
        self.greenlets.iter().find(|g| g.id == id)
    }

    /// The hub's clock when the snapshot was taken (deadlines are on the same clock).
    pub fn taken_at(&self) -> Instant {
        self.now
    }
}

/// One greenlet of a [`GreenletTree`].
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct GreenletInfo {
    /// Its id (0 for the main greenlet).
    pub id: u64,
    /// Its name (`Greenlet-<id>` unless it was given one; `main` for the main greenlet).
    pub name: String,
    /// The id of the greenlet that spawned it (0 for posted jobs, which the hub's loop starts
    /// on the main greenlet's behalf); `None` for the main greenlet.
    pub parent: Option<u64>,
    /// What it is doing.
    pub state: GreenletState,
    /// What it waits on while [`GreenletState::Parked`] ([`WaitReason::Nothing`] otherwise).
    pub waits_on: WaitReason,
    /// Where it was spawned; `None` for the main greenlet.
    pub spawned_at: Option<&'static Location<'static>>,
    /// The usable size of its stack, once it has one (it takes one when it first runs; the
    /// main greenlet runs on the thread's stack, whose size is not known here).
    pub stack_size: Option<usize>,
    /// The deepest its stack has been used, in bytes, when the platform's stacks let it be
    /// known ([`StackSource::untouched_below`](crate::stack::StackSource::untouched_below)).
    /// Stacks are reused by later greenlets, so this is the deepest use of the stack it runs
    /// on, earlier greenlets' uses of it included. For the running greenlet it counts at least
    /// up to where it runs now.
    pub stack_high_water: Option<usize>,
}

/// What a greenlet of a [`GreenletTree`] was doing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum GreenletState {
    /// Spawned with a delay that has not passed yet (`spawn_later`).
    Scheduled,
    /// Waiting for its turn to run (spawned, woken, or yielding).
    Runnable,
    /// Running: the greenlet that took the snapshot.
    Running,
    /// Waiting for something: see its [`WaitReason`].
    Parked,
    /// Ended (seen only by a snapshot taken while the hub finishes it).
    Finished,
}

/// What a parked greenlet waits on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum WaitReason {
    /// Nothing: it is not parked.
    Nothing,
    /// A sleep (`sleep`, `sleep_until`).
    Sleep {
        /// When it ends, on the hub's clock (compare with [`GreenletTree::taken_at`]).
        deadline: Instant,
    },
    /// The hub becoming idle (`idle`).
    Idle,
    /// The end of another greenlet (`join`, `get`).
    Join {
        /// The id of the greenlet it joins.
        id: u64,
    },
    /// The end of several greenlets (`joinall`).
    JoinAll,
    /// An [`Event`](crate::event::Event) to be set.
    Event,
    /// An I/O source to be ready.
    Io {
        /// The poller's name for the source: the file descriptor on hosted platforms. For a
        /// wait on several sources (`select`), the first one's.
        source: u64,
        /// For what: readable or writable.
        interest: Interest,
    },
    /// Every other greenlet to finish (`wait` with no objects).
    Everything,
    /// A wait of another primitive, in words: a queue, a channel, a lock or semaphore, a pool,
    /// `iwait` (for example `"an item in an empty queue (a get)"`).
    Other(&'static str),
}

impl WaitReason {
    pub(crate) fn of(state: State, kind: WaitKind) -> Self {
        if state != State::Parked {
            return WaitReason::Nothing;
        }
        match kind {
            WaitKind::Nothing => WaitReason::Nothing,
            WaitKind::Sleep(deadline) => WaitReason::Sleep { deadline },
            WaitKind::Idle => WaitReason::Idle,
            WaitKind::Join(id) => WaitReason::Join { id },
            WaitKind::JoinAll => WaitReason::JoinAll,
            WaitKind::Event => WaitReason::Event,
            WaitKind::Other(what) => WaitReason::Other(what),
            WaitKind::Io { source, readable } => WaitReason::Io {
                source,
                interest: if readable { Interest::READABLE } else { Interest::WRITABLE },
            },
            WaitKind::Everything => WaitReason::Everything,
        }
    }
}

impl GreenletState {
    pub(crate) fn of(state: State) -> Self {
        match state {
            State::Created => GreenletState::Scheduled,
            State::Runnable => GreenletState::Runnable,
            State::Running => GreenletState::Running,
            State::Parked => GreenletState::Parked,
            State::Finished => GreenletState::Finished,
        }
    }
}
