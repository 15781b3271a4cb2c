//! The blocking detector's view of a hub: a heartbeat that the hub updates on every switch and
//! that another thread (the hosted monitor) or an interrupt handler (a SysTick on embedded)
//! reads to notice a hub that has not switched within a budget.
//!
//! The hub is the only writer. At each switch-in it publishes the greenlet that now runs (its
//! id and spawn site) with a sequence lock: the counter is made odd, the fields are stored, the
//! counter is made even again. Those are four plain relaxed stores and a release fence, no
//! read-modify-write; a hub with no heartbeat attached pays one test of an empty cell. Names
//! that are a `&'static str` are recorded when a greenlet is spawned, in a small table by id,
//! each entry behind a sequence lock of its own (a name read per switch cost as much as the
//! rest of the publication). A reader takes the fields only when it
//! saw the same even counter before and after reading them ([`Heartbeat::sample`]).
//!
//! Around the poller's blocking wait the hub sets an idle flag: a hub waiting for I/O or a
//! timer is not blocked, however long it waits.
//!
//! [`BlockingCheck::check`] is the decision itself, a pure function of the heartbeat, the
//! time and the budget, which a monitor calls periodically.
#![allow(unsafe_code)] // rebuilding the published `&'static` references; see the SAFETY comments

use core::fmt;
use core::panic::Location;
use core::time::Duration;

use crate::greenlet::task::Task;
use crate::shared::Shared;
use crate::time::Instant;

pub mod capture;

#[cfg(not(target_has_atomic = "64"))]
use core::sync::atomic::AtomicU32;
#[cfg(all(target_has_atomic = "64", not(all(test, loom))))]
use core::sync::atomic::AtomicU64;
#[cfg(not(all(test, loom)))]
use core::sync::atomic::{AtomicBool, AtomicPtr, AtomicUsize, Ordering, fence};
#[cfg(all(target_has_atomic = "64", all(test, loom)))]
use loom::sync::atomic::AtomicU64;
#[cfg(all(test, loom))]
use loom::sync::atomic::{AtomicBool, AtomicPtr, AtomicUsize, Ordering, fence};

#[cfg(all(test, loom))]
mod loom_tests;
#[cfg(all(test, not(loom)))]
mod tests;

/// What a hub publishes for its blocking detector; shared (a [`Shared`]) between the hub's
/// thread and the monitor. See the [module docs](self).
pub struct Heartbeat {
    /// Twice the number of switch-ins, plus one while the fields below are being written.
    seq: AtomicUsize,
    idle: AtomicBool,
    // The running greenlet.
    id: AtomicId,
    spawned_at: AtomicPtr<Location<'static>>,
    /// The `&'static str` names of greenlets, by id modulo [`NAME_SLOTS`]: written when a
    /// named greenlet is spawned rather than at each switch, which keeps the switch path to
    /// four stores.
    names: [NameSlot; NAME_SLOTS],
}

/// How many greenlet names a heartbeat remembers: a blocked greenlet's name is known unless
/// one of the `NAME_SLOTS` greenlets spawned after it with a name took its slot.
const NAME_SLOTS: usize = 64;

/// One remembered name, behind a sequence lock of its own.
struct NameSlot {
    seq: AtomicUsize,
    id: AtomicId,
    ptr: AtomicPtr<u8>,
    len: AtomicUsize,
}

impl NameSlot {
    #[cfg(not(all(test, loom)))]
    const fn new() -> Self {
        NameSlot {
            seq: AtomicUsize::new(0),
            id: AtomicId::new(),
            ptr: AtomicPtr::new(core::ptr::null_mut()),
            len: AtomicUsize::new(0),
        }
    }

    #[cfg(all(test, loom))]
    fn new() -> Self {
        NameSlot {
            seq: AtomicUsize::new(0),
            id: AtomicId::new(),
            ptr: AtomicPtr::new(core::ptr::null_mut()),
            len: AtomicUsize::new(0),
        }
    }
}

impl fmt::Debug for Heartbeat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Heartbeat")
            .field("switches", &(self.seq.load(Ordering::Relaxed) / 2))
            .field("idle", &self.idle.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

/// The greenlet a hub runs, as its heartbeat published it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Running {
    /// The greenlet's id (0 for the main greenlet).
    pub id: u64,
    /// Its name, when it was given a `&'static str` (or is the main greenlet, `main`); other
    /// names live in the hub's memory, which only the hub's thread may read.
    pub name: Option<&'static str>,
    /// Where it was spawned.
    pub spawned_at: &'static Location<'static>,
}

impl fmt::Display for Running {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name {
            Some(name) => write!(f, "greenlet #{} '{name}'", self.id)?,
            None => write!(f, "greenlet #{}", self.id)?,
        }
        write!(f, " (spawned at {})", self.spawned_at)
    }
}

/// One reading of a heartbeat: [`Heartbeat::sample`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sample {
    /// How many times the hub switched greenlets in (wrapping); a change means progress.
    pub switches: usize,
    /// Whether the hub waited in its poller.
    pub idle: bool,
    /// The greenlet running, or `None` when a switch was being published at that moment.
    pub running: Option<Running>,
}

impl Heartbeat {
    /// A heartbeat that names no greenlet yet: the hub publishes its main greenlet when it is
    /// attached.
    #[cfg(not(all(test, loom)))]
    pub const fn new() -> Self {
        Heartbeat {
            seq: AtomicUsize::new(0),
            idle: AtomicBool::new(false),
            id: AtomicId::new(),
            spawned_at: AtomicPtr::new(core::ptr::null_mut()),
            names: [const { NameSlot::new() }; NAME_SLOTS],
        }
    }

    /// Loom's atomics have no `const fn new`.
    #[cfg(all(test, loom))]
    pub fn new() -> Self {
        Heartbeat {
            seq: AtomicUsize::new(0),
            idle: AtomicBool::new(false),
            id: AtomicId::new(),
            spawned_at: AtomicPtr::new(core::ptr::null_mut()),
            names: core::array::from_fn(|_| NameSlot::new()),
        }
    }

    /// Publishes that `task` runs now (its thread only: a sequence lock has one writer).
    #[inline(always)]
    pub(crate) fn switched_in(&self, task: &Task) {
        self.publish(task.id, task.spawned_at);
    }

    /// Remembers `task`'s name if it is a `&'static str`, when it is spawned (or attached).
    #[inline]
    pub(crate) fn spawned(&self, task: &Task) {
        if let Some(name) = task.static_name() {
            self.name(task.id, name);
        }
    }

    /// The writer's side of the sequence lock. Called only by the hub's thread (the
    /// heartbeat's one writer), so the load and stores of `seq` need no read-modify-write.
    #[inline(always)]
    fn publish(&self, id: u64, spawned_at: &'static Location<'static>) {
        let seq = self.seq.load(Ordering::Relaxed);
        self.seq.store(seq.wrapping_add(1), Ordering::Relaxed);
        // Orders the odd counter before the field stores: a reader that sees any of them sees
        // the counter odd or moved on after its fields (its acquire fence pairs with this).
        fence(Ordering::Release);
        self.id.store(id);
        self.spawned_at.store(core::ptr::from_ref(spawned_at).cast_mut(), Ordering::Relaxed);
        self.seq.store(seq.wrapping_add(2), Ordering::Release);
    }

    /// Records greenlet `id`'s name in its slot, with the slot's sequence lock (same writer).
    fn name(&self, id: u64, name: &'static str) {
        let slot = &self.names[(id % NAME_SLOTS as u64) as usize];
        let seq = slot.seq.load(Ordering::Relaxed);
        slot.seq.store(seq.wrapping_add(1), Ordering::Relaxed);
        fence(Ordering::Release);
        slot.id.store(id);
        slot.ptr.store(name.as_ptr().cast_mut(), Ordering::Relaxed);
        slot.len.store(name.len(), Ordering::Relaxed);
        slot.seq.store(seq.wrapping_add(2), Ordering::Release);
    }

    /// Marks the hub as waiting in its poller (`true`) or not.
    #[inline]
    pub(crate) fn set_idle(&self, idle: bool) {
        self.idle.store(idle, Ordering::Relaxed);
    }

    /// Reads the heartbeat, from any thread.
    pub fn sample(&self) -> Sample {
        let before = self.seq.load(Ordering::Acquire);
        let idle = self.idle.load(Ordering::Relaxed);
        let running = self.running(before);
        Sample { switches: before / 2, idle, running }
    }

    /// The reader's side of the sequence lock: the published greenlet if no switch-in wrote
    /// the fields while they were read (`before` is the counter loaded, with acquire, first).
    fn running(&self, before: usize) -> Option<Running> {
        if before % 2 == 1 {
            return None;
        }
        let id = self.id.load();
        let spawned_at = self.spawned_at.load(Ordering::Relaxed);
        // Pairs with the writer's release fence: if a load above saw a later switch-in's
        // store, the counter below is that switch-in's odd value or later.
        fence(Ordering::Acquire);
        if self.seq.load(Ordering::Relaxed) != before || spawned_at.is_null() {
            return None;
        }
        // SAFETY: the counter was the same even value before and after the loads, so they
        // read the stores of one `publish` (a later one would have made it odd first, which the
        // fences make visible): `spawned_at` came from a `&'static Location` there.
        let spawned_at: &'static Location<'static> = unsafe { &*spawned_at };
        Some(Running { id, name: self.name_of(id), spawned_at })
    }

    /// The name recorded for greenlet `id`, if its slot still holds it.
    fn name_of(&self, id: u64) -> Option<&'static str> {
        let slot = &self.names[(id % NAME_SLOTS as u64) as usize];
        let before = slot.seq.load(Ordering::Acquire);
        if before % 2 == 1 {
            return None;
        }
        let slot_id = slot.id.load();
        let ptr = slot.ptr.load(Ordering::Relaxed);
        let len = slot.len.load(Ordering::Relaxed);
        fence(Ordering::Acquire);
        if slot.seq.load(Ordering::Relaxed) != before || slot_id != id || ptr.is_null() {
            return None;
        }
        // SAFETY: as in `running`, the three loads read one `name` call's stores, which split
        // a `&'static str` into this pointer and length.
        Some(unsafe { core::str::from_utf8_unchecked(core::slice::from_raw_parts(ptr, len)) })
    }
}

/// A greenlet id published with relaxed accesses: one 64-bit atomic where the target has them,
/// else two 32-bit halves, which the sequence lock keeps consistent.
#[cfg(target_has_atomic = "64")]
struct AtomicId(AtomicU64);

#[cfg(target_has_atomic = "64")]
impl AtomicId {
    #[cfg(not(all(test, loom)))]
    const fn new() -> Self {
        AtomicId(AtomicU64::new(0))
    }
    #[cfg(all(test, loom))]
    fn new() -> Self {
        AtomicId(AtomicU64::new(0))
    }
    #[inline(always)]
    fn store(&self, id: u64) {
        self.0.store(id, Ordering::Relaxed);
    }
    fn load(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

#[cfg(not(target_has_atomic = "64"))]
struct AtomicId(AtomicU32, AtomicU32);

#[cfg(not(target_has_atomic = "64"))]
impl AtomicId {
    const fn new() -> Self {
        AtomicId(AtomicU32::new(0), AtomicU32::new(0))
    }
    #[inline(always)]
    fn store(&self, id: u64) {
        self.0.store(id as u32, Ordering::Relaxed);
        self.1.store((id >> 32) as u32, Ordering::Relaxed);
    }
    fn load(&self) -> u64 {
        u64::from(self.1.load(Ordering::Relaxed)) << 32 | u64::from(self.0.load(Ordering::Relaxed))
    }
}

#[cfg(not(all(test, loom)))]
impl Default for Heartbeat {
    fn default() -> Self {
        Self::new()
    }
}

/// A hub that has not switched greenlets for at least the budget: what
/// [`BlockingCheck::check`] reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Blocked {
    /// The greenlet that has been running all that time.
    pub running: Running,
    /// How long the hub has gone without switching, as far as the checks saw (from the first
    /// check that found the counter where it is now).
    pub blocked_for: Duration,
}

/// The checker's memory of one heartbeat: the counter it last saw and since when. Owned by
/// whoever checks (a monitor thread, or a SysTick handler's static).
#[derive(Clone, Copy, Debug)]
pub struct BlockingCheck {
    switches: usize,
    since: Instant,
    reported: bool,
}

impl BlockingCheck {
    /// A checker that starts watching at `now`.
    pub const fn new(now: Instant) -> Self {
        BlockingCheck { switches: usize::MAX, since: now, reported: false }
    }

    /// Whether the hub behind `heartbeat` has gone at least `budget` without switching while
    /// not waiting in its poller. Reports each blocked episode once: `Some` the first time
    /// the budget is exceeded, then `None` until the hub has switched (or idled) again.
    ///
    /// Call it at least every `budget / 2` for the report to come within 1.5 budgets.
    pub fn check(
        &mut self,
        heartbeat: &Heartbeat,
        now: Instant,
        budget: Duration,
    ) -> Option<Blocked> {
        let sample = heartbeat.sample();
        if sample.idle || sample.switches != self.switches {
            self.switches = sample.switches;
            self.since = now;
            self.reported = false;
            return None;
        }
        let blocked_for = now.saturating_duration_since(self.since);
        if self.reported || blocked_for < budget {
            return None;
        }
        // A switch being published now is progress: the next check sees the new counter.
        let running = sample.running?;
        self.reported = true;
        Some(Blocked { running, blocked_for })
    }
}

/// The current hub already has a heartbeat.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AlreadyAttached(());

impl fmt::Display for AlreadyAttached {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("this hub already has a heartbeat attached")
    }
}

impl core::error::Error for AlreadyAttached {}

impl AlreadyAttached {
    pub(super) const fn new() -> Self {
        AlreadyAttached(())
    }
}

/// Attaches `heartbeat` to the current hub (created with the default platform if there is
/// none), which from now on publishes its switches in it. For a monitor of one's own: a
/// SysTick handler on embedded, or tests; the hosted monitor attaches its own to every hub.
pub fn attach(heartbeat: Shared<Heartbeat>) -> Result<(), AlreadyAttached> {
    super::hub().attach_heartbeat(heartbeat)
}

/// Where a hub created now gets its heartbeat from: set once by the platform crate that runs
/// a monitor; called on the new hub's thread before the hub exists, with a handle to post to
/// it. It must not use gevent.
#[cfg(feature = "std")]
pub(crate) static NEW_HUB_HOOK: std::sync::OnceLock<NewHubHook> = std::sync::OnceLock::new();

/// What a platform crate that runs a monitor gives each new hub: called on its thread, before
/// it exists, with a handle to post to it; returns the heartbeat the hub publishes in.
#[cfg(feature = "std")]
pub type NewHubHook = fn(crate::remote::HubHandle) -> Option<Shared<Heartbeat>>;
