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
use crate::hub::LiveLinks;
use crate::hub::switch::Context;
use crate::time::Instant;
use crate::timer::TimerKey;
use crate::wait_list::{WaitList, WaiterKey};

pub(crate) use super::node::{Header, TaskRef};

/// What the hub needs of a greenlet's body, whatever its result type.
pub(crate) trait Body: Any {
    /// Runs the body to its end, on the greenlet's own stack, and returns how it failed, if it
    /// did, for the caller to record with `Hub::finish`; called once, at the first run, with
    /// the greenlet itself as `me`.
    fn run(&self, me: &TaskRef) -> Option<FailureKind>;
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
///
/// 16 bytes (see `Other`); one store of it per park.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum WaitKind {
    Nothing,
    /// A sleep until the deadline.
    Sleep(Instant),
    Idle,
    Join(u64),
    JoinAll,
    Event,
    /// A primitive's wait, described in words. Behind a thin reference: a `&str` here would
    /// make every greenlet header 8 bytes bigger, and spawning pays for each byte.
    Other(&'static &'static str),
    Io {
        source: u64,
        readable: bool,
    },
    /// `gevent::wait()`: every other greenlet to be done.
    Everything,
}

const _: () = assert!(size_of::<WaitKind>() == 16);

/// Indices of joined greenlets in the order they were done, shared by a multi-joiner and the
/// joiner entries it left in their queues.
pub(crate) type DoneLog = Rc<RefCell<Vec<usize>>>;

/// A greenlet waiting for another to be done.
pub(crate) struct Joiner {
    pub(crate) waiter: TaskRef,
    /// Where to record that this one is done, and under which index.
    pub(crate) log: Option<(DoneLog, usize)>,
}

/// The key of a joiner waiting in [`Task::first_joiner`]: index `u32::MAX`, which no slab
/// entry ever has (a slab refuses its 2^32-th entry), so it never names a listed joiner; the
/// joiner's id in the generation bits tells one inline joiner's key from another's.
fn inline_joiner_key(joiner_id: u64) -> WaiterKey {
    WaiterKey::from_bits((joiner_id << 32) | u64::from(u32::MAX))
}

fn is_inline_joiner_key(key: WaiterKey) -> bool {
    key.to_bits() as u32 == u32::MAX
}

/// A callback to run when a greenlet ends.
pub(crate) type Link = Box<dyn FnOnce()>;

/// How a greenlet ended; the details of a failure are kept in [`Extras`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    Pending,
    /// Its body returned (a kill it received may have been handled).
    Value,
    /// A plain kill ended it before its body ran: a cancellation, not a failure.
    Killed,
    /// It panicked, was killed with a reason, or found no stack.
    Failed,
}

/// The parts of a greenlet that most greenlets never need, allocated by the first use.
#[derive(Default)]
struct Extras {
    name: Option<Cow<'static, str>>,
    failure: Option<FailureKind>,
    /// Greenlets waiting for this one to end.
    joiners: WaitList<Joiner>,
    /// Link callbacks with the ids `link` handed out, in the order they were added.
    links: Vec<(u64, Link)>,
    next_link_id: u64,
    /// The reason of a [`kill_with`](crate::Greenlet::kill_with).
    kill_reason: Option<Cow<'static, str>>,
    /// The outermost of its [`Timeout`](crate::Timeout)s that expired and whose guard is still
    /// alive, for reporting it again once an inner scope that swallowed it ends.
    expired_timeout: Option<TimeoutId>,
    /// The timer of a `spawn_later` that has not fired yet.
    start_timer: Option<TimerKey>,
    /// Greenlet-local values, by the address of their `'static` key.
    locals: Vec<(usize, Box<dyn Any>)>,
}

/// A greenlet's header: identity, scheduling state, and who waits for it.
///
/// `repr(C)` keeps the fields in this order: the ones touched when a parked greenlet is woken,
/// runs to its end and is joined come first, near the node's count, so that waking 100,000 parked
/// greenlets costs few cache misses each. Rarely used parts live in a box allocated on demand,
/// which keeps the header small: spawning 100,000 greenlets mostly costs page faults for fresh
/// heap memory, so every byte here shows up in the spawn benchmark.
#[repr(C)]
pub(crate) struct Task {
    // Hot: switches, wake-ups, the end.
    pub(crate) state: Cell<State>,
    /// Set when something may interrupt the next wait (a kill, a pending timeout), so that
    /// the common case costs one test.
    pub(crate) attention: Cell<bool>,
    pub(crate) is_main: bool,
    /// Whether the body ever ran.
    pub(crate) ran: Cell<bool>,
    /// Sticky kill flag.
    pub(crate) killed: Cell<bool>,
    /// A blocking call returned `Killed` (or `KilledWith`).
    pub(crate) kill_delivered: Cell<bool>,
    /// It finished and its link callbacks are still running: joiners wait for them.
    pub(crate) links_pending: Cell<bool>,
    outcome: Cell<Outcome>,
    /// False while `extras` has never been asked for its box (made on first use, then kept):
    /// most greenlets never have one, and this byte tells them so without a `RefCell` borrow on
    /// the way to their end. True says only that the box may be there.
    has_extras: Cell<bool>,
    pub(crate) shield_depth: Cell<u32>,
    /// Its links in the hub's table of live greenlets.
    pub(crate) live: LiveLinks,
    /// The first greenlet joining this one, while no other joins (see [`Task::add_joiner`]).
    first_joiner: Cell<Option<TaskRef>>,
    /// Why the greenlet was last woken, when it was an interruption.
    pub(crate) interrupt: Cell<Option<Interrupted>>,
    pub(crate) context: Context,
    // Warm.
    pub(crate) waits_on: Cell<WaitKind>,
    /// A timeout that expired while the greenlet was not parked; reported at its next wait.
    pub(crate) pending_timeout: Cell<Option<TimeoutId>>,
    // Cold.
    pub(crate) id: u64,
    pub(crate) spawned_at: &'static Location<'static>,
    /// The id of the greenlet that spawned it (0, the main greenlet's, for the main greenlet
    /// itself and for posted jobs), for greenlet trees.
    pub(crate) parent: Cell<u64>,
    pub(crate) stack_size: usize,
    extras: RefCell<Option<Box<Extras>>>,
    /// The span current where it was spawned, entered whenever it runs.
    #[cfg(feature = "tracing")]
    pub(crate) span: tracing::Span,
}

impl Task {
    /// Takes the interruption that woke it, if any. Peeked first: a normal wake-up, the usual
    /// one, then writes nothing back.
    #[inline(always)]
    #[allow(unsafe_code)] // the peek: see the SAFETY comment
    pub(crate) fn take_interrupt(&self) -> Option<Interrupted> {
        // SAFETY: `Cell` never hands out a reference into its value and a task is not `Sync`,
        // so nothing writes the cell during this read, which copies nothing out.
        if unsafe { (*self.interrupt.as_ptr()).is_none() } { None } else { self.interrupt.take() }
    }

    #[inline(always)]
    pub(crate) fn new(
        id: u64,
        name: Option<Cow<'static, str>>,
        spawned_at: &'static Location<'static>,
        stack_size: usize,
        is_main: bool,
    ) -> Self {
        let extras = name.map(|name| Box::new(Extras { name: Some(name), ..Extras::default() }));
        Task {
            state: Cell::new(State::Created),
            attention: Cell::new(false),
            is_main,
            ran: Cell::new(false),
            killed: Cell::new(false),
            kill_delivered: Cell::new(false),
            links_pending: Cell::new(false),
            outcome: Cell::new(Outcome::Pending),
            has_extras: Cell::new(extras.is_some()),
            shield_depth: Cell::new(0),
            live: LiveLinks::new(),
            first_joiner: Cell::new(None),
            interrupt: Cell::new(None),
            context: Context::new(),
            waits_on: Cell::new(WaitKind::Nothing),
            pending_timeout: Cell::new(None),
            id,
            spawned_at,
            parent: Cell::new(0),
            stack_size,
            extras: RefCell::new(extras),
            #[cfg(feature = "tracing")]
            span: if is_main { tracing::Span::none() } else { crate::events::tracing::inherited() },
        }
    }

    /// Runs `f` on the extras, allocating them first if needed. `f` must not reach this
    /// greenlet's extras again (it would find them borrowed).
    fn with_extras<R>(&self, f: impl FnOnce(&mut Extras) -> R) -> R {
        let mut extras = self.extras.borrow_mut();
        self.has_extras.set(true);
        f(extras.get_or_insert_with(Default::default))
    }

    /// Reads the extras if there are any.
    #[inline]
    fn read_extras<R>(&self, f: impl FnOnce(Option<&Extras>) -> R) -> R {
        if !self.has_extras.get() {
            return f(None);
        }
        f(self.extras.borrow().as_deref())
    }

    /// How it ended (or `Pending`).
    pub(crate) fn outcome(&self) -> Outcome {
        self.outcome.get()
    }

    /// Records how it ended: with a value, cancelled by a kill, or failed.
    pub(crate) fn set_outcome(&self, failure: Option<FailureKind>) {
        match failure {
            None => self.outcome.set(Outcome::Value),
            Some(FailureKind::Killed) => self.outcome.set(Outcome::Killed),
            Some(kind) => {
                self.with_extras(|x| x.failure = Some(kind));
                self.outcome.set(Outcome::Failed);
            }
        }
    }

    /// Whether it finished and its link callbacks have run: what joiners wait for.
    pub(crate) fn is_done(&self) -> bool {
        self.is_finished() && !self.links_pending.get()
    }

    /// Records the reason of a `kill_with` (the first one wins, as the kill is sticky).
    pub(crate) fn set_kill_reason(&self, reason: Cow<'static, str>) {
        self.with_extras(|x| {
            x.kill_reason.get_or_insert(reason);
        });
    }

    /// Forgets the reason of a kill (the main greenlet's kill was delivered).
    pub(crate) fn clear_kill_reason(&self) {
        if let Some(x) = &mut *self.extras.borrow_mut() {
            x.kill_reason = None;
        }
    }

    /// The error a kill delivers to this greenlet's blocking calls.
    pub(crate) fn kill_error(&self) -> Interrupted {
        match self.read_extras(|x| x.and_then(|x| x.kill_reason.clone())) {
            Some(reason) => Interrupted::KilledWith(reason),
            None => Interrupted::Killed,
        }
    }

    /// Notes that one of its timeouts expired (the outermost is kept).
    pub(crate) fn note_expired_timeout(&self, id: TimeoutId) {
        self.with_extras(|x| {
            x.expired_timeout = Some(x.expired_timeout.map_or(id, |e| e.min(id)));
        });
    }

    /// The outermost expired timeout whose guard is alive.
    pub(crate) fn expired_timeout(&self) -> Option<TimeoutId> {
        self.read_extras(|x| x.and_then(|x| x.expired_timeout))
    }

    /// Forgets an expired timeout whose guard was dropped.
    pub(crate) fn forget_expired_timeout(&self, id: TimeoutId) {
        if let Some(x) = &mut *self.extras.borrow_mut() {
            if x.expired_timeout == Some(id) {
                x.expired_timeout = None;
            }
        }
    }

    /// Queues `t` to be notified when this greenlet ends.
    ///
    /// The first joiner waits in the header itself while no other waits: joining a greenlet
    /// then allocates nothing (the extras' box and the list's storage were two allocations and
    /// two frees per spawn + join, a third of its cost on a Cortex-M3). Being queued only
    /// when the list is empty, it is older than every listed joiner, so popping it first keeps
    /// the joiners in arrival order.
    #[allow(unsafe_code)] // the peek: see the SAFETY comment
    pub(crate) fn add_joiner(&self, t: TaskRef) -> WaiterKey {
        let listed = self.read_extras(|x| x.is_some_and(|x| !x.joiners.is_empty()));
        // Peeked, not taken and put back.
        // SAFETY: `Cell` never hands out a reference into its value and a task is not `Sync`,
        // so nothing writes the cell during this read, which copies nothing out.
        if !listed && unsafe { (*self.first_joiner.as_ptr()).is_none() } {
            let key = inline_joiner_key(t.task().id);
            // Empty (checked above): nothing to drop, which `set` would test for.
            core::mem::forget(self.first_joiner.replace(Some(t)));
            return key;
        }
        self.with_extras(|x| x.joiners.push_back(Joiner { waiter: t, log: None }))
    }

    /// Queues `t` to be notified when this greenlet is done, with `index` pushed onto `log`
    /// first (so that a joiner of many learns which one ended without rescanning them all).
    pub(crate) fn add_logging_joiner(&self, t: TaskRef, log: &DoneLog, index: usize) -> WaiterKey {
        let joiner = Joiner { waiter: t, log: Some((log.clone(), index)) };
        self.with_extras(|x| x.joiners.push_back(joiner))
    }

    /// Takes a joiner out of the queue (it stopped waiting).
    pub(crate) fn remove_joiner(&self, key: WaiterKey) {
        if is_inline_joiner_key(key) {
            let inline = self.first_joiner.take();
            // Another greenlet's key (stale: its joiner was removed before) leaves it be.
            let stays = inline.filter(|t| inline_joiner_key(t.task().id) != key);
            self.first_joiner.set(stays);
            return;
        }
        if let Some(x) = &mut *self.extras.borrow_mut() {
            x.joiners.remove(key);
        }
    }

    /// The first joiner, if it is the inline one (see [`Task::add_joiner`]): the oldest.
    #[inline]
    pub(crate) fn take_first_joiner(&self) -> Option<TaskRef> {
        self.first_joiner.take()
    }

    /// Whether it may have its extras box, where links and joiners other than the inline one
    /// wait: false says it has none.
    #[inline]
    pub(crate) fn may_have_extras(&self) -> bool {
        self.has_extras.get()
    }

    /// The next joiner to notify, oldest first.
    pub(crate) fn pop_joiner(&self) -> Option<Joiner> {
        if let Some(waiter) = self.first_joiner.take() {
            return Some(Joiner { waiter, log: None });
        }
        if !self.has_extras.get() {
            return None;
        }
        self.extras.borrow_mut().as_mut()?.joiners.pop_front()
    }

    /// Adds a callback to run when it ends; returns its id for [`Task::remove_link`].
    pub(crate) fn add_link(&self, link: Link) -> u64 {
        self.with_extras(|x| {
            let id = x.next_link_id;
            x.next_link_id += 1;
            x.links.push((id, link));
            id
        })
    }

    /// Removes a callback not run yet; true if it was there.
    pub(crate) fn remove_link(&self, id: u64) -> bool {
        let removed = match &mut *self.extras.borrow_mut() {
            Some(x) => x.links.iter().position(|(i, _)| *i == id).map(|i| x.links.remove(i)),
            None => None,
        };
        removed.is_some() // the callback is dropped here, outside the borrow
    }

    /// Whether callbacks wait for its end.
    pub(crate) fn has_links(&self) -> bool {
        self.read_extras(|x| x.is_some_and(|x| !x.links.is_empty()))
    }

    /// Takes the callbacks to run now that it ended.
    pub(crate) fn take_links(&self) -> Vec<Link> {
        match &mut *self.extras.borrow_mut() {
            Some(x) => core::mem::take(&mut x.links).into_iter().map(|(_, l)| l).collect(),
            None => Vec::new(),
        }
    }

    /// Remembers the timer that will start a `spawn_later` greenlet.
    pub(crate) fn set_start_timer(&self, timer: Option<TimerKey>) {
        if timer.is_some() || self.has_extras.get() {
            self.with_extras(|x| x.start_timer = timer);
        }
    }

    /// Takes the start timer of a `spawn_later` greenlet that has not started.
    pub(crate) fn take_start_timer(&self) -> Option<TimerKey> {
        if !self.has_extras.get() {
            return None;
        }
        self.extras.borrow_mut().as_mut()?.start_timer.take()
    }

    /// Takes this greenlet's local value for `key` out (to use it without holding a borrow).
    pub(crate) fn take_local(&self, key: usize) -> Option<Box<dyn Any>> {
        let mut extras = self.extras.borrow_mut();
        let locals = &mut extras.as_mut()?.locals;
        let i = locals.iter().position(|(k, _)| *k == key)?;
        Some(locals.swap_remove(i).1)
    }

    /// Stores this greenlet's local value for `key`, in place of the one stored for it, which
    /// it returns (for the caller to drop outside the borrow: a value's destructor may use
    /// other locals).
    pub(crate) fn put_local(&self, key: usize, value: Box<dyn Any>) -> Option<Box<dyn Any>> {
        self.with_extras(|x| match x.locals.iter_mut().find(|(k, _)| *k == key) {
            Some((_, slot)) => Some(core::mem::replace(slot, value)),
            None => {
                x.locals.push((key, value));
                None
            }
        })
    }

    /// Drops every greenlet-local value (the greenlet ended).
    #[inline]
    pub(crate) fn clear_locals(&self) {
        if !self.has_extras.get() {
            return;
        }
        let locals = match &mut *self.extras.borrow_mut() {
            Some(x) => core::mem::take(&mut x.locals),
            None => return,
        };
        drop(locals); // outside the borrow: a value's destructor may use other locals
    }

    /// Calls `f` with the name it was given, if any (for fault handlers: no allocation, and
    /// `None` if the extras happen to be borrowed).
    /// The greenlet's name if it is a `&'static str` (`main` for the main greenlet), which
    /// the blocking detector can publish to another thread; `None` for other names.
    pub(crate) fn static_name(&self) -> Option<&'static str> {
        match self.extras.try_borrow() {
            Ok(extras) => match extras.as_deref() {
                None if self.is_main => Some("main"),
                None => None,
                Some(extras) => match extras.name {
                    Some(Cow::Borrowed(name)) => Some(name),
                    _ => None,
                },
            },
            Err(_) => None,
        }
    }

    pub(crate) fn with_given_name<R>(&self, f: impl FnOnce(Option<&str>) -> R) -> R {
        match self.extras.try_borrow() {
            Ok(extras) => f(extras.as_deref().and_then(|x| x.name.as_deref())),
            Err(_) => f(None),
        }
    }

    /// The greenlet's name: the one it was given, or gevent's `Greenlet-<id>`.
    pub(crate) fn name(&self) -> Cow<'static, str> {
        let given = self.read_extras(|x| x.and_then(|x| x.name.clone()));
        match given {
            Some(name) => name,
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

    /// The error describing how this greenlet failed, if it did (a plain kill is not a
    /// failure).
    pub(crate) fn error(&self) -> Option<GreenletError> {
        if self.outcome.get() != Outcome::Failed {
            return None;
        }
        let kind = self.read_extras(|x| x.and_then(|x| x.failure.clone()))?;
        Some(self.error_of_kind(kind))
    }

    /// A [`GreenletError`] naming this greenlet.
    pub(crate) fn error_of_kind(&self, kind: FailureKind) -> GreenletError {
        GreenletError { kind, id: self.id, name: self.name(), spawned_at: self.spawned_at }
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
    fn run(&self, _: &TaskRef) -> Option<FailureKind> {
        unreachable!("the main greenlet runs on the thread's own stack")
    }

    fn discard(&self) {}
}
