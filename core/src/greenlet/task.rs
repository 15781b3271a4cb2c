//! The untyped part of a greenlet that the hub schedules: its [`Task`] header.

use alloc::borrow::Cow;
use alloc::boxed::Box;
use alloc::format;
use alloc::rc::Rc;
use alloc::string::String;
use alloc::vec::Vec;
use core::any::Any;
use core::cell::{Cell, RefCell};
use core::panic::Location;

use crate::error::{FailureKind, GreenletError, Interrupted, TimeoutId};
use crate::hub::switch::{Context, GreenletCoroutine};
use crate::slab::Key;
use crate::stack::PooledStack;
use crate::timer::TimerKey;
use crate::wait_list::WaitList;

/// A shared, type-erased reference to a greenlet, as the hub holds it.
pub(crate) type TaskRef = Rc<Node<dyn Body>>;

/// A greenlet: the header the hub works with, then the typed body.
///
/// The header comes first and has a fixed type, so reaching it from a `TaskRef` is a field
/// access rather than a virtual call (which mattered: two greenlets with different body types
/// alternating made the indirect call mispredict on every switch).
pub(crate) struct Node<B: ?Sized> {
    pub(crate) task: Task,
    pub(crate) body: B,
}

impl<B: ?Sized> Node<B> {
    /// The header.
    #[inline]
    pub(crate) fn task(&self) -> &Task {
        &self.task
    }
}

/// What the hub needs of a greenlet's body, whatever its result type.
pub(crate) trait Body: Any {
    /// Builds the coroutine that runs the body on `stack`; called once, at the first run, with
    /// the greenlet itself as `me`.
    fn start(&self, me: TaskRef, stack: PooledStack) -> GreenletCoroutine;
    /// Drops the body without running it (the greenlet was killed before it started).
    fn discard(&self);
}

/// The lifecycle of a greenlet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum State {
    /// Spawned with a delay that has not passed yet; not in the run queue.
    Created,
    /// In the run queue (started or not).
    Runnable,
    /// Executing now.
    Running,
    /// Waiting for a wake-up.
    Parked,
    /// Done; its outcome is set.
    Finished,
}

/// What a parked greenlet waits on, for `LoopExit` reports and greenlet dumps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum WaitKind {
    Nothing,
    Sleep,
    Idle,
    Join(u64),
    JoinAll,
    Event,
    Io { source: u64, readable: bool },
}

/// How a greenlet ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    Pending,
    Value,
    Failed(FailureKind),
}

/// A greenlet's header: identity, scheduling state, and who waits for it.
pub(crate) struct Task {
    pub(crate) id: u64,
    pub(crate) name: Option<Cow<'static, str>>,
    pub(crate) spawned_at: &'static Location<'static>,
    pub(crate) stack_size: usize,
    pub(crate) is_main: bool,
    pub(crate) state: Cell<State>,
    pub(crate) waits_on: Cell<WaitKind>,
    /// Why the greenlet was last woken, when it was an interruption.
    pub(crate) interrupt: Cell<Option<Interrupted>>,
    /// Set when something may interrupt the next wait (a kill, a pending timeout), so that
    /// the common case costs one test.
    pub(crate) attention: Cell<bool>,
    /// Sticky kill flag.
    pub(crate) killed: Cell<bool>,
    /// A blocking call returned `Killed`: the body's result is the consequence of the kill.
    pub(crate) kill_delivered: Cell<bool>,
    pub(crate) shield_depth: Cell<u32>,
    /// A timeout that expired while the greenlet was not parked; reported at its next wait.
    pub(crate) pending_timeout: Cell<Option<TimeoutId>>,
    pub(crate) outcome: RefCell<Outcome>,
    /// Order of finishing, across the hub (for `joinall(raise_error)`).
    pub(crate) finish_seq: Cell<u64>,
    /// Whether the body ever ran.
    pub(crate) ran: Cell<bool>,
    pub(crate) joiners: RefCell<WaitList<TaskRef>>,
    pub(crate) links: RefCell<Vec<Box<dyn FnOnce()>>>,
    /// Entry in the hub's table of live greenlets.
    pub(crate) live_key: Cell<Option<Key>>,
    /// The timer of a `spawn_later` that has not fired yet.
    pub(crate) start_timer: Cell<Option<TimerKey>>,
    pub(crate) context: Context,
}

impl Task {
    pub(crate) fn new(
        id: u64,
        name: Option<Cow<'static, str>>,
        spawned_at: &'static Location<'static>,
        stack_size: usize,
        is_main: bool,
    ) -> Self {
        Task {
            id,
            name,
            spawned_at,
            stack_size,
            is_main,
            state: Cell::new(State::Created),
            waits_on: Cell::new(WaitKind::Nothing),
            interrupt: Cell::new(None),
            attention: Cell::new(false),
            killed: Cell::new(false),
            kill_delivered: Cell::new(false),
            shield_depth: Cell::new(0),
            pending_timeout: Cell::new(None),
            outcome: RefCell::new(Outcome::Pending),
            finish_seq: Cell::new(0),
            ran: Cell::new(false),
            joiners: RefCell::new(WaitList::new()),
            links: RefCell::new(Vec::new()),
            live_key: Cell::new(None),
            start_timer: Cell::new(None),
            context: Context::new(),
        }
    }

    /// The greenlet's name: the one it was given, or gevent's `Greenlet-<id>`.
    pub(crate) fn name(&self) -> Cow<'_, str> {
        match &self.name {
            Some(name) => Cow::Borrowed(name),
            None if self.is_main => Cow::Borrowed("main"),
            None => Cow::Owned(format!("Greenlet-{}", self.id)),
        }
    }

    pub(crate) fn is_finished(&self) -> bool {
        self.state.get() == State::Finished
    }

    /// Whether a kill has not been delivered yet and may be (not shielded).
    pub(crate) fn kill_is_deliverable(&self) -> bool {
        self.killed.get() && self.shield_depth.get() == 0
    }

    /// The error describing how this greenlet failed, if it did.
    pub(crate) fn error(&self) -> Option<GreenletError> {
        match &*self.outcome.borrow() {
            Outcome::Failed(kind) => Some(GreenletError {
                kind: kind.clone(),
                id: self.id,
                name: Cow::Owned(String::from(self.name())),
                spawned_at: self.spawned_at,
            }),
            _ => None,
        }
    }

    /// "greenlet #3 'worker' (spawned at src/main.rs:4:5)"
    pub(crate) fn describe(&self) -> String {
        format!("greenlet #{} '{}' (spawned at {})", self.id, self.name(), self.spawned_at)
    }
}

/// The body of the main greenlet: the thread's own stack, which runs the hub loop when it
/// waits.
pub(crate) struct MainBody;

impl Body for MainBody {
    fn start(&self, _: TaskRef, _: PooledStack) -> GreenletCoroutine {
        unreachable!("the main greenlet runs on the thread's own stack")
    }

    fn discard(&self) {}
}
