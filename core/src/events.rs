//! Event hooks: spawn callbacks (gevent's `add_spawn_callback`) and a subscription to what the
//! hub does: greenlets spawned, switched to and from, finished; hubs created and destroyed; a
//! greenlet that blocked the hub.
//!
//! # Scope: one thread's hub
//!
//! gevent's spawn callbacks are process-wide. Here they, and subscriptions, belong to the
//! thread that adds them and see only its hub's events: greenlets never leave the thread that
//! spawned them, so a callback never has to be `Send`, and no lock is taken when an event
//! happens. A thread that wants another thread's events subscribes on that thread (post the
//! subscription with a [`HubHandle`](crate::HubHandle)). With `std` the subscriptions belong to
//! the thread and outlive its hub, so a thread can subscribe before its first gevent call and
//! see [`Event::HubCreated`]. Without `std` they belong to the program's one hub, which must be
//! installed first, and it is never destroyed.
//!
//! # What callbacks may do
//!
//! Callbacks run synchronously where the event happens, some of them inside the hub's switch:
//! keep them short. They may read the event, spawn greenlets, kill them, and subscribe or
//! unsubscribe (a callback added during a dispatch first sees the next event; one removed
//! during a dispatch is not called again). They must not block: a blocking call (`sleep`,
//! `join`, I/O, `yield_now`) made from a callback fails at once with
//! [`Interrupted::Deadlock`](crate::Interrupted::Deadlock) instead of switching greenlets. A
//! callback's panic goes on through the code that caused the event (the hub loop for a switch),
//! as a panic of the hub's own code would. [`Event::HubDestroyed`] comes while the thread's
//! thread-locals are being destroyed: its callbacks must not use gevent at all.
//!
//! # Cost
//!
//! With nothing subscribed each event point costs one test of a flag of the hub.
//!
//! ```
//! # use gevent as _; // links the default platform: see `[dev-dependencies]` in Cargo.toml
//! # #[cfg(not(miri))] // Miri cannot switch stacks
//! # gevent_core::sim::run(|| {
//! use std::{cell::RefCell, rc::Rc};
//! use gevent_core::events::{self, Event, Finish};
//!
//! let finished = Rc::new(RefCell::new(Vec::new()));
//! let seen = finished.clone();
//! let subscription = events::subscribe(move |event| {
//!     if let Event::Finished { id, how, .. } = event {
//!         seen.borrow_mut().push((*id, *how));
//!     }
//! });
//! let worker = gevent_core::spawn(|| 6 * 7);
//! worker.join().unwrap();
//! events::unsubscribe(subscription);
//! assert_eq!(*finished.borrow(), [(worker.id(), Finish::Returned)]);
//! # });
//! ```

use alloc::borrow::Cow;
use alloc::rc::Rc;
use alloc::vec::Vec;
use core::cell::{Cell, RefCell};
use core::panic::Location;
use core::time::Duration;

use crate::error::FailureKind;
use crate::greenlet::GreenletRef;
use crate::greenlet::task::{Task, TaskRef};
use crate::hub::Hub;

/// Something that happened on the current thread's hub.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// A greenlet was spawned (it has not run yet).
    Spawned {
        /// The new greenlet's id.
        id: u64,
        /// Its name (`Greenlet-<id>` unless it was given one).
        name: Cow<'static, str>,
        /// Where it was spawned.
        spawned_at: &'static Location<'static>,
        /// The id of the greenlet that spawned it (0 for the main greenlet, which also starts
        /// the jobs posted from other threads).
        parent: u64,
    },
    /// The hub switched from one greenlet to another. `None` is the hub's own loop: every run of
    /// a greenlet shows as a switch from `None` to it and, when it parks, yields or ends, one
    /// from it to `None`.
    Switched {
        /// The greenlet that stopped running, or `None` for the hub.
        from: Option<u64>,
        /// The greenlet that runs next, or `None` for the hub.
        to: Option<u64>,
    },
    /// A greenlet ended.
    Finished {
        /// The greenlet's id.
        id: u64,
        /// How it ended.
        how: Finish,
    },
    /// This thread's hub was created.
    HubCreated,
    /// This thread's hub is being destroyed (the thread exits).
    HubDestroyed,
    /// A greenlet kept the hub from switching for longer than the blocking detector's budget.
    BlockingDetected {
        /// The greenlet's id.
        id: u64,
        /// Its name.
        name: Cow<'static, str>,
        /// Where it was spawned.
        spawned_at: &'static Location<'static>,
        /// How long it had run without switching when it was noticed.
        blocked_for: Duration,
    },
    /// The process's resident memory went above the memory monitor's threshold (gevent's
    /// `MemoryUsageThresholdExceeded`); said once per crossing, to every hub.
    MemoryThresholdExceeded {
        /// The resident set size measured, in bytes.
        rss: u64,
        /// The threshold, in bytes.
        max: u64,
    },
    /// The process's resident memory fell back below the threshold after exceeding it
    /// (gevent's `MemoryUsageUnderThreshold`).
    MemoryUsageUnderThreshold {
        /// The resident set size measured, in bytes.
        rss: u64,
        /// The threshold, in bytes.
        max: u64,
    },
}

/// How a greenlet ended, in [`Event::Finished`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Finish {
    /// Its body returned (whatever value it returned, `Err` included).
    Returned,
    /// It panicked.
    Panicked,
    /// A kill ended it: before it started, with a reason, or at shutdown.
    Killed,
    /// It could not start (no stack could be had).
    Failed,
}

impl Finish {
    fn of(failure: Option<&FailureKind>) -> Self {
        match failure {
            None => Finish::Returned,
            Some(FailureKind::Panicked(_)) => Finish::Panicked,
            Some(FailureKind::Killed | FailureKind::KilledWith(_)) => Finish::Killed,
            Some(FailureKind::NoStack(_) | FailureKind::NoHeader(_)) => Finish::Failed,
        }
    }
}

/// Identifies a callback added with [`add_spawn_callback`], to remove it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SpawnCallbackId(u64);

/// Identifies a callback added with [`subscribe`], to remove it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SubscriptionId(u64);

/// Calls `f` with every greenlet spawned on this thread's hub from now on, right after it is
/// spawned and before it runs (gevent's `add_spawn_callback`); see the [module docs](self) for
/// what `f` may do.
pub fn add_spawn_callback(f: impl Fn(&GreenletRef) + 'static) -> SpawnCallbackId {
    SpawnCallbackId(with_hooks(|hooks| hooks.spawn.add(Rc::new(f))).unwrap_or(NEVER_CALLED))
}

/// Removes a callback added with [`add_spawn_callback`]; false if it was removed already.
pub fn remove_spawn_callback(id: SpawnCallbackId) -> bool {
    with_hooks(|hooks| hooks.spawn.remove(id.0)).unwrap_or(false)
}

/// Calls `f` with every [`Event`] of this thread's hub from now on; see the [module
/// docs](self) for what `f` may do.
pub fn subscribe(f: impl Fn(&Event) + 'static) -> SubscriptionId {
    SubscriptionId(with_hooks(|hooks| hooks.events.add(Rc::new(f))).unwrap_or(NEVER_CALLED))
}

/// Removes a callback added with [`subscribe`]; false if it was removed already.
pub fn unsubscribe(id: SubscriptionId) -> bool {
    with_hooks(|hooks| hooks.events.remove(id.0)).unwrap_or(false)
}

/// The id of a callback added after the thread's thread-locals were destroyed, which is
/// never called (ids handed out start at 1).
const NEVER_CALLED: u64 = 0;

/// A spawn callback.
type SpawnCallback = Rc<dyn Fn(&GreenletRef)>;
/// An event subscriber.
type Subscriber = Rc<dyn Fn(&Event)>;

/// The callbacks of one thread (one hub).
pub(crate) struct Hooks {
    spawn: Callbacks<SpawnCallback>,
    events: Callbacks<Subscriber>,
}

impl Hooks {
    pub(crate) const fn new() -> Self {
        Hooks { spawn: Callbacks::new(), events: Callbacks::new() }
    }

    /// Whether any callback is registered: what the hub's flag mirrors.
    fn any(&self) -> bool {
        !self.spawn.is_empty() || !self.events.is_empty()
    }
}

/// A list of callbacks that may change while it is being called.
///
/// Removal during a dispatch leaves a hole (so the dispatch's indices stay valid) that is
/// closed once no dispatch runs; additions go to the end, past the length the dispatch
/// started with. Each callback is cloned out (a reference count) before it is called, so no
/// borrow is held while user code runs.
struct Callbacks<F> {
    entries: RefCell<Vec<(u64, Option<F>)>>,
    next_id: Cell<u64>,
    /// Dispatches in progress (a callback may cause a nested event).
    dispatching: Cell<u32>,
    /// Holes left by removals during a dispatch.
    holes: Cell<bool>,
}

impl<F: Clone> Callbacks<F> {
    const fn new() -> Self {
        Callbacks {
            entries: RefCell::new(Vec::new()),
            next_id: Cell::new(1),
            dispatching: Cell::new(0),
            holes: Cell::new(false),
        }
    }

    fn is_empty(&self) -> bool {
        self.entries.borrow().iter().all(|(_, f)| f.is_none())
    }

    fn add(&self, f: F) -> u64 {
        let id = self.next_id.get();
        self.next_id.set(id + 1);
        self.entries.borrow_mut().push((id, Some(f)));
        id
    }

    fn remove(&self, id: u64) -> bool {
        let removed = {
            let mut entries = self.entries.borrow_mut();
            let Some(i) = entries.iter().position(|(i, f)| *i == id && f.is_some()) else {
                return false;
            };
            if self.dispatching.get() > 0 {
                self.holes.set(true);
                entries[i].1.take()
            } else {
                entries.remove(i).1
            }
        };
        drop(removed); // outside the borrow: dropping a closure may run user code
        true
    }

    /// Calls `call` with each callback registered when the dispatch starts and still there
    /// when its turn comes.
    fn dispatch(&self, mut call: impl FnMut(&F)) {
        /// Ends the dispatch even if a callback panics.
        struct Dispatching<'a, F: Clone>(&'a Callbacks<F>);
        impl<F: Clone> Drop for Dispatching<'_, F> {
            fn drop(&mut self) {
                let list = self.0;
                list.dispatching.set(list.dispatching.get() - 1);
                if list.dispatching.get() == 0 && list.holes.replace(false) {
                    list.entries.borrow_mut().retain(|(_, f)| f.is_some());
                }
            }
        }
        let len = self.entries.borrow().len();
        self.dispatching.set(self.dispatching.get() + 1);
        let _dispatching = Dispatching(self);
        for i in 0..len {
            let f = self.entries.borrow()[i].1.clone();
            if let Some(f) = f {
                call(&f);
            }
        }
    }
}

#[cfg(feature = "std")]
std::thread_local! {
    /// The thread's callbacks, kept apart from its hub so that they can be added before the hub
    /// exists and see it created.
    static HOOKS: Hooks = const { Hooks::new() };
}

/// Runs `f` on this thread's callbacks, then updates the hub's flag; `None` once the thread's
/// thread-locals were destroyed (from a thread-local destructor), when no callback can be
/// added or removed any more.
fn with_hooks<R>(f: impl FnOnce(&Hooks) -> R) -> Option<R> {
    #[cfg(feature = "std")]
    {
        HOOKS
            .try_with(|hooks| {
                let result = f(hooks);
                if let Some(hub) = crate::hub::try_hub() {
                    hub.set_observed(hooks.any());
                }
                result
            })
            .ok()
    }
    #[cfg(not(feature = "std"))]
    {
        let hub = crate::hub::hub();
        let result = f(hub.hooks());
        hub.set_observed(hub.hooks().any());
        Some(result)
    }
}

/// Whether any callback is registered on this thread; read when its hub is made.
pub(crate) fn observed_at_creation() -> bool {
    #[cfg(feature = "std")]
    {
        HOOKS.try_with(Hooks::any).unwrap_or(false)
    }
    #[cfg(not(feature = "std"))]
    {
        false
    }
}

/// Calls every subscriber with `event`, refusing blocking calls meanwhile. `hub` is the
/// thread's hub when it has one.
#[cold]
#[inline(never)]
pub(crate) fn emit(hub: Option<&Hub>, event: &Event) {
    let _refusing = hub.map(|hub| hub.refuse_switches());
    #[cfg(feature = "std")]
    let _ = HOOKS.try_with(|hooks| hooks.events.dispatch(|f| f(event)));
    #[cfg(not(feature = "std"))]
    if let Some(hub) = hub {
        hub.hooks().events.dispatch(|f| f(event));
    }
}

/// Calls the subscribers of this thread's hub with `event`, if there are any: for events
/// raised outside the hub's own code ([`Event::BlockingDetected`], from the blocking
/// detector). Must be called on the hub's thread (the callbacks are not `Send`), outside event
/// callbacks' reach of the switch path: a blocking call made by a callback is refused as
/// usual.
pub(crate) fn notify(event: &Event) {
    let hub = crate::hub::try_hub();
    if hub.is_none_or(Hub::observed) {
        emit(hub, event);
    }
}

/// The events of a spawn: the spawn callbacks, then [`Event::Spawned`].
#[cold]
#[inline(never)]
pub(crate) fn spawned(hub: &Hub, t: &TaskRef) {
    let task = t.task();
    {
        let _refusing = hub.refuse_switches();
        let greenlet = GreenletRef::from_task(t.clone());
        #[cfg(feature = "std")]
        let _ = HOOKS.try_with(|hooks| hooks.spawn.dispatch(|f| f(&greenlet)));
        #[cfg(not(feature = "std"))]
        hub.hooks().spawn.dispatch(|f| f(&greenlet));
    }
    let event = Event::Spawned {
        id: task.id,
        name: task.name(),
        spawned_at: task.spawned_at,
        parent: hub.current_task().id,
    };
    emit(Some(hub), &event);
}

/// [`Event::Finished`] for `task`.
#[cold]
#[inline(never)]
pub(crate) fn finished(hub: &Hub, task: &Task, failure: Option<&FailureKind>) {
    emit(Some(hub), &Event::Finished { id: task.id, how: Finish::of(failure) });
}

/// [`Event::HubCreated`], once the new hub is in its slot.
pub(crate) fn hub_created() {
    if let Some(hub) = crate::hub::try_hub() {
        if hub.observed() {
            emit(Some(hub), &Event::HubCreated);
        }
    }
}

/// [`Event::HubDestroyed`], while the hub is still in its slot.
#[cfg(feature = "std")]
pub(crate) fn hub_destroyed(hub: &Hub) {
    if hub.observed() {
        emit(Some(hub), &Event::HubDestroyed);
    }
}

/// [`Event::Switched`].
#[cold]
#[inline(never)]
pub(crate) fn switched(hub: &Hub, from: Option<u64>, to: Option<u64>) {
    emit(Some(hub), &Event::Switched { from, to });
}

/// The `tracing` integration: a greenlet runs inside the span that was current where it was
/// spawned, and its spawn and end are `tracing` events.
///
/// A subscriber is user code called from inside the hub (a spawn's bookkeeping, a greenlet's
/// end, the loop's resume), where a switch would leave that work half done or resume the loop
/// from within itself: each call refuses blocking calls while it runs, as event callbacks do.
#[cfg(feature = "tracing")]
pub(crate) mod tracing {
    use super::{Finish, Hub, Task};
    use crate::error::FailureKind;

    /// The span a greenlet inherits: the one current where it is spawned.
    pub(crate) fn inherited() -> ::tracing::Span {
        ::tracing::Span::current()
    }

    /// Enters the greenlet's span as it is switched to. The subscriber's `enter`/`exit` are
    /// called directly rather than through a guard, which could not live across the switch.
    #[inline]
    pub(crate) fn enter(hub: &Hub, task: &Task) {
        // Most greenlets have no span: nothing to call, nothing to refuse.
        if task.span.is_disabled() {
            return;
        }
        let _refusing = hub.refuse_switches();
        task.span.with_subscriber(|(id, dispatch)| dispatch.enter(id));
    }

    /// Exits the greenlet's span as it is switched from.
    #[inline]
    pub(crate) fn exit(hub: &Hub, task: &Task) {
        if task.span.is_disabled() {
            return;
        }
        let _refusing = hub.refuse_switches();
        task.span.with_subscriber(|(id, dispatch)| dispatch.exit(id));
    }

    /// A TRACE event for a spawn.
    pub(crate) fn spawned(hub: &Hub, task: &Task, parent: u64) {
        let _refusing = hub.refuse_switches();
        ::tracing::trace!(
            target: "gevent",
            id = task.id,
            name = %task.name(),
            spawned_at = %task.spawned_at,
            parent,
            "greenlet spawned"
        );
    }

    /// A DEBUG event for an end.
    pub(crate) fn finished(hub: &Hub, task: &Task, failure: Option<&FailureKind>) {
        let _refusing = hub.refuse_switches();
        ::tracing::debug!(
            target: "gevent",
            id = task.id,
            name = %task.name(),
            how = ?Finish::of(failure),
            "greenlet finished"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    type TestList = Callbacks<Rc<dyn Fn(u32)>>;

    #[test]
    fn a_callback_added_during_a_dispatch_first_sees_the_next_one() {
        let list: Rc<TestList> = Rc::new(Callbacks::new());
        let seen = Rc::new(RefCell::new(Vec::new()));
        // A weak reference: the list owns the callback, which must not own the list.
        let (l, s) = (Rc::downgrade(&list), seen.clone());
        list.add(Rc::new(move |n| {
            s.borrow_mut().push(("first", n));
            let s = s.clone();
            l.upgrade().unwrap().add(Rc::new(move |n| s.borrow_mut().push(("added", n))));
        }));
        list.dispatch(|f| f(1));
        assert_eq!(*seen.borrow(), [("first", 1)]);
        list.dispatch(|f| f(2));
        assert_eq!(*seen.borrow(), [("first", 1), ("first", 2), ("added", 2)]);
    }

    #[test]
    fn a_callback_removed_during_a_dispatch_is_not_called_again() {
        let list: Rc<TestList> = Rc::new(Callbacks::new());
        let seen = Rc::new(RefCell::new(Vec::new()));
        let victim = Rc::new(Cell::new(0));
        let (l, s, v) = (Rc::downgrade(&list), seen.clone(), victim.clone());
        // The first removes itself and the third; the second still runs, in its place.
        let first = list.add(Rc::new(move |n| {
            s.borrow_mut().push(("first", n));
            let l = l.upgrade().unwrap();
            assert!(l.remove(1));
            assert!(l.remove(v.get()));
            assert!(!l.remove(v.get()), "a callback is removed once");
        }));
        assert_eq!(first, 1);
        let s = seen.clone();
        list.add(Rc::new(move |n| s.borrow_mut().push(("second", n))));
        let s = seen.clone();
        victim.set(list.add(Rc::new(move |n| s.borrow_mut().push(("third", n)))));
        list.dispatch(|f| f(1));
        list.dispatch(|f| f(2));
        assert_eq!(*seen.borrow(), [("first", 1), ("second", 1), ("second", 2)]);
        assert_eq!(list.entries.borrow().len(), 1, "the holes are closed after the dispatch");
    }

    #[test]
    fn a_nested_dispatch_sees_the_same_callbacks() {
        let list: Rc<TestList> = Rc::new(Callbacks::new());
        let seen = Rc::new(RefCell::new(vec![]));
        // A weak reference: the list owns the callback, which must not own the list.
        let (l, s) = (Rc::downgrade(&list), seen.clone());
        list.add(Rc::new(move |n| {
            s.borrow_mut().push(n);
            if n == 1 {
                l.upgrade().unwrap().dispatch(|f| f(2));
            }
        }));
        list.dispatch(|f| f(1));
        assert_eq!(*seen.borrow(), [1, 2]);
        assert_eq!(list.dispatching.get(), 0);
    }
}
