//! [`Group`], and the member bookkeeping that `Group`, `Pool` and `scope` share.
//!
//! A greenlet spawned through a group carries a [`Membership`] in its body, which takes it out
//! of the group when the body ends (returns, panics, or is dropped unstarted): no link
//! greenlet per member, and removal in O(1). A greenlet added from outside leaves through a
//! link callback instead. Waiting for the members (`join`, `kill`) parks on the group itself
//! and is woken when the group empties, so it costs nothing per member that finishes.

use alloc::rc::Rc;
use alloc::vec::Vec;
use core::cell::{Cell, RefCell};
use core::fmt;
use core::panic::Location;
use core::time::Duration;

use super::members::{Entry, MemberTable};
use crate::error::Interrupted;
use crate::greenlet::task::{TaskRef, WaitKind};
use crate::greenlet::{AsGreenlet, Builder, DeadlineTimer, Greenlet, GreenletRef, current};
use crate::hub::hub;
use crate::lock::Semaphore;
use crate::slab::Key;
use crate::sync::waiters::wake_all;
use crate::time::Instant;
use crate::wait_list::WaitList;

/// The state of a group (or pool, or scope), shared with the bodies of its members.
pub(super) struct Shared {
    table: RefCell<MemberTable<GreenletRef>>,
    /// Greenlets waiting in `join`, `kill` or a scope; woken when at most one member is left
    /// and when a member fails (for scopes).
    watchers: RefCell<WaitList<TaskRef>>,
    /// How many `kill` calls are under way: members added meanwhile are killed at once.
    killing: Cell<u32>,
    /// A pool's slots.
    pub(super) slots: Option<Semaphore>,
    /// For scopes: the first member that ended without returning (it panicked or could not
    /// start), if `reports_failures`.
    failed: RefCell<Option<GreenletRef>>,
    reports_failures: bool,
}

impl Shared {
    pub(super) fn new(slots: Option<Semaphore>, reports_failures: bool) -> Rc<Self> {
        Rc::new(Shared {
            table: RefCell::new(MemberTable::new()),
            watchers: RefCell::new(WaitList::new()),
            killing: Cell::new(0),
            slots,
            failed: RefCell::new(None),
            reports_failures,
        })
    }

    /// Spawns `f` as a member; `holds_slot` says the caller took a pool slot for it.
    pub(super) fn spawn<T: 'static>(
        self: &Rc<Self>,
        location: &'static Location<'static>,
        holds_slot: bool,
        f: impl FnOnce() -> T + 'static,
    ) -> Greenlet<T> {
        let key = self.table.borrow_mut().reserve(holds_slot);
        let membership = Membership { shared: self.clone(), key: Some(key) };
        let body = MemberBody { f, membership };
        let g = Builder::new().spawn_located(location, move || body.run());
        self.table.borrow_mut().fill(key, g.to_ref());
        if self.killing.get() > 0 {
            g.kill_nowait();
        }
        g
    }

    /// Adds a greenlet spawned elsewhere, unless it is a member or has finished; false if it
    /// was not added.
    pub(super) fn add(self: &Rc<Self>, g: &GreenletRef, holds_slot: bool) -> bool {
        if !self.may_add(g) {
            return false;
        }
        self.table.borrow_mut().insert(g.clone(), holds_slot);
        let shared = self.clone();
        g.link(move |g| shared.leave_by_id(g.id()));
        if self.killing.get() > 0 {
            g.kill_nowait();
        }
        true
    }

    /// Takes a slot for a member about to be spawned, waiting for one; `Ok(false)` for a
    /// group, which has no slots.
    pub(super) fn take_slot(&self) -> Result<bool, Interrupted> {
        match &self.slots {
            Some(slots) => {
                slots.acquire()?.forget();
                Ok(true)
            }
            None => Ok(false),
        }
    }

    /// Gives back a slot taken with `take_slot` that no member took over.
    pub(super) fn give_slot_back(&self, holds_slot: bool) {
        if let (true, Some(slots)) = (holds_slot, &self.slots) {
            slots.release();
        }
    }

    /// Whether `add` would add `g`.
    pub(super) fn may_add(&self, g: &GreenletRef) -> bool {
        !g.ready() && !self.contains(g)
    }

    /// Takes `g` out of the group without touching it (its pool slot, if any, is given back).
    pub(super) fn discard(&self, g: &GreenletRef) {
        self.leave_by_id(g.id());
    }

    fn leave_by_id(&self, id: u64) {
        let mut table = self.table.borrow_mut();
        let entry = table.remove_id(id);
        let remaining = table.len();
        drop(table);
        if let Some(entry) = entry {
            self.left(entry, remaining);
        }
    }

    /// The member of `key` left: its body ended (`returned`, or unwound, or was dropped
    /// unstarted).
    fn leave(&self, key: Key, returned: bool) {
        let mut table = self.table.borrow_mut();
        let entry = table.remove(key);
        let remaining = table.len();
        drop(table);
        let Some(entry) = entry else { return }; // discarded earlier
        if self.reports_failures && !returned {
            if let Some(g) = &entry.member {
                // Started and did not return: it panicked. Not started and not killed: it
                // had no stack. Killed before it started: a cancellation, not a failure.
                let failed = g.started() || !g.is_killed();
                if failed && self.failed.borrow().is_none() {
                    *self.failed.borrow_mut() = Some(g.clone());
                    self.wake_watchers();
                }
            }
        }
        self.left(entry, remaining);
    }

    /// After `entry` left with `remaining` members behind.
    fn left(&self, entry: Entry<GreenletRef>, remaining: usize) {
        self.give_slot_back(entry.holds_slot);
        if remaining <= 1 {
            // Empty, or down to a member that kills its own group and waits for the others.
            self.wake_watchers();
        }
        drop(entry); // outside every borrow: the last handle may drop the greenlet's value
    }

    pub(super) fn wake_watchers(&self) {
        let mut watchers = self.watchers.borrow_mut();
        if !watchers.is_empty() {
            wake_all(&mut watchers);
        }
    }

    pub(super) fn contains(&self, g: &GreenletRef) -> bool {
        self.table.borrow().get(g.id()).is_some() && !g.ready()
    }

    pub(super) fn len(&self) -> usize {
        self.table.borrow().len()
    }

    /// The members that have not finished.
    pub(super) fn greenlets(&self) -> Vec<GreenletRef> {
        self.table.borrow().members().filter(|g| !g.ready()).cloned().collect()
    }

    /// The current greenlet, if it is a member.
    pub(super) fn current_member(&self) -> Option<GreenletRef> {
        let me = current();
        self.contains(&me).then_some(me)
    }

    /// The first member that ended without returning, for scopes.
    pub(super) fn failed(&self) -> Option<GreenletRef> {
        self.failed.borrow().clone()
    }

    /// Waits until `done` holds, checking it whenever watchers are woken; `Ok(false)` if
    /// `deadline` passed first.
    ///
    /// A `LoopExit` (nothing can ever wake the main greenlet) first forgets members that are
    /// marked finished without having left: greenlets abandoned by a hub shutdown, whose
    /// bodies will never run again.
    pub(super) fn wait_until(
        &self,
        deadline: Option<Instant>,
        done: &dyn Fn() -> bool,
    ) -> Result<bool, Interrupted> {
        let hub = hub();
        let timer = DeadlineTimer::arm(deadline);
        loop {
            if done() {
                return Ok(true);
            }
            if timer.expired() {
                return Ok(false);
            }
            let key = self.watchers.borrow_mut().push_back(hub.current());
            let parked = hub.park(WaitKind::Other(&"the members of a group to finish"));
            self.watchers.borrow_mut().remove(key);
            if let Err(why) = parked {
                if matches!(why, Interrupted::LoopExit(_)) && self.forget_abandoned() && done() {
                    return Ok(true);
                }
                return Err(why);
            }
        }
    }

    /// Removes the members that finished without leaving; true if there were any.
    fn forget_abandoned(&self) -> bool {
        let abandoned: Vec<u64> =
            self.table.borrow().members().filter(|g| g.ready()).map(GreenletRef::id).collect();
        for &id in &abandoned {
            self.leave_by_id(id);
        }
        !abandoned.is_empty()
    }

    /// Waits until every member has finished (or only the caller is left, if it is one).
    pub(super) fn join_until(&self, deadline: Option<Instant>) -> Result<bool, Interrupted> {
        if let Some(me) = self.current_member() {
            // It would wait for its own end.
            return me.join_timeout(Duration::ZERO);
        }
        self.wait_until(deadline, &|| self.len() == 0)
    }

    /// Kills every member, and members added meanwhile, and waits until they have finished.
    /// A member that kills its own group waits for the others, then is killed itself (the
    /// kill arrives at its next blocking call).
    pub(super) fn kill_until(&self, deadline: Option<Instant>) -> Result<bool, Interrupted> {
        struct Killing<'a>(&'a Cell<u32>);
        impl Drop for Killing<'_> {
            fn drop(&mut self) {
                self.0.set(self.0.get() - 1);
            }
        }
        self.killing.set(self.killing.get() + 1);
        let _killing = Killing(&self.killing);
        let me = self.current_member();
        for g in self.greenlets() {
            if Some(&g) != me.as_ref() && !g.is_killed() {
                g.kill_nowait();
            }
        }
        let finished = match &me {
            None => self.wait_until(deadline, &|| self.len() == 0)?,
            Some(me) => self.wait_until(deadline, &|| self.len() == 1 && self.contains(me))?,
        };
        if let Some(me) = me {
            me.kill_nowait();
        }
        Ok(finished)
    }
}

/// Held by a member's body: takes the member out of its group when the body ends, however it
/// ends (returned, panicked, dropped unstarted).
struct Membership {
    shared: Rc<Shared>,
    /// The member's entry; taken when the body returns, so that dropping the membership with
    /// the key still there means the body unwound or never ran.
    key: Option<Key>,
}

impl Membership {
    /// The body returned.
    fn returned(mut self) {
        if let Some(key) = self.key.take() {
            self.shared.leave(key, true);
        }
    }
}

impl Drop for Membership {
    fn drop(&mut self) {
        if let Some(key) = self.key.take() {
            self.shared.leave(key, false);
        }
    }
}

/// A member's body: the user's closure, then its membership. The fields are dropped in this
/// order (a struct's fields drop in declaration order), so a body dropped unstarted lets go of
/// everything the closure holds before the group hears that the member left; scopes rely on it.
struct MemberBody<F> {
    f: F,
    membership: Membership,
}

impl<F> MemberBody<F> {
    fn run<T>(self) -> T
    where
        F: FnOnce() -> T,
    {
        let MemberBody { f, membership } = self;
        let value = f();
        membership.returned();
        value
    }
}

/// The methods that [`Group`] and [`Pool`](super::Pool) share, on their `shared` field.
macro_rules! group_methods {
    () => {
        /// Whether the greenlet is a member that has not finished.
        pub fn contains(&self, greenlet: &impl AsGreenlet) -> bool {
            self.shared.contains(&greenlet.as_greenlet())
        }

        /// The number of members. A member leaves when its body ends (a greenlet added with
        /// `add`: when its link callbacks run, just after it finishes).
        pub fn len(&self) -> usize {
            self.shared.len()
        }

        /// Whether there are no members.
        pub fn is_empty(&self) -> bool {
            self.len() == 0
        }

        /// The members that have not finished.
        pub fn greenlets(&self) -> Vec<GreenletRef> {
            self.shared.greenlets()
        }

        /// Waits until every member has finished, including members added meanwhile.
        ///
        /// Called from a member, it fails at once as joining oneself does: the member would
        /// wait for its own end.
        pub fn join(&self) -> Result<(), Interrupted> {
            self.shared.join_until(None).map(drop)
        }

        /// Waits at most `timeout` for every member to finish; `Ok(true)` if they did.
        pub fn join_timeout(&self, timeout: Duration) -> Result<bool, Interrupted> {
            self.shared.join_until(Some(crate::now() + timeout))
        }

        /// Kills every member, and members added meanwhile, and waits until they have all
        /// finished (gevent's `kill`). A member that ignores its kill keeps this waiting: see
        /// [`kill_timeout`](Self::kill_timeout).
        ///
        /// Called from a member, it kills and waits for the others, then kills the caller
        /// itself: the kill arrives at its next blocking call, as with
        /// [`Greenlet::kill`](crate::Greenlet::kill) on oneself.
        pub fn kill(&self) -> Result<(), Interrupted> {
            self.shared.kill_until(None).map(drop)
        }

        /// Like [`kill`](Self::kill), waiting at most `timeout`; `Ok(true)` if every member
        /// finished in time.
        pub fn kill_timeout(&self, timeout: Duration) -> Result<bool, Interrupted> {
            self.shared.kill_until(Some(crate::now() + timeout))
        }
    };
}
pub(super) use group_methods;

/// A set of greenlets to join or kill together (gevent's `Group`).
///
/// Members leave by themselves when they finish. Adding, removing and finishing cost O(1) per
/// member for greenlets spawned through the group, and O(log n) for the calls that name a
/// greenlet ([`add`](Self::add), [`discard`](Self::discard), [`contains`](Self::contains)).
///
/// ```
/// # use gevent as _; // links the default platform: see `[dev-dependencies]` in Cargo.toml
/// # #[cfg(not(miri))] // Miri cannot switch stacks
/// # gevent_core::sim::run(|| {
/// use core::time::Duration;
/// use gevent::{pool::Group, sleep};
/// let group = Group::new();
/// for ms in [30, 10, 20] {
///     group.spawn(move || sleep(Duration::from_millis(ms)));
/// }
/// assert_eq!(group.len(), 3);
/// group.join().unwrap();
/// assert!(group.is_empty());
/// # });
/// ```
pub struct Group {
    shared: Rc<Shared>,
}

impl Default for Group {
    fn default() -> Self {
        Group::new()
    }
}

impl fmt::Debug for Group {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Group").field("len", &self.len()).finish()
    }
}

impl Group {
    /// An empty group.
    pub fn new() -> Self {
        Group { shared: Shared::new(None, false) }
    }

    /// A group whose shared state reports failed members (for scopes).
    pub(super) fn reporting_failures() -> Self {
        Group { shared: Shared::new(None, true) }
    }

    pub(super) fn shared(&self) -> &Rc<Shared> {
        &self.shared
    }

    /// Spawns a greenlet into the group.
    #[track_caller]
    pub fn spawn<T: 'static>(&self, f: impl FnOnce() -> T + 'static) -> Greenlet<T> {
        self.shared.spawn(Location::caller(), false, f)
    }

    /// Adds a greenlet spawned elsewhere; it leaves when it finishes. Adding a member again or
    /// a finished greenlet does nothing.
    pub fn add(&self, greenlet: &impl AsGreenlet) {
        self.shared.add(&greenlet.as_greenlet(), false);
    }

    /// Removes a greenlet from the group without touching it.
    pub fn discard(&self, greenlet: &impl AsGreenlet) {
        self.shared.discard(&greenlet.as_greenlet());
    }

    group_methods!();
}

#[cfg(test)]
mod tests {
    //! The drop order that scopes rely on, without a hub (so that Miri runs it too).

    use super::*;

    /// Records, when dropped, how many members its group had then.
    struct Probe<'a> {
        shared: &'a Shared,
        seen: &'a RefCell<Vec<usize>>,
    }

    impl Drop for Probe<'_> {
        fn drop(&mut self) {
            self.seen.borrow_mut().push(self.shared.len());
        }
    }

    /// A member body whose closure borrows `seen` and `shared` from the test's stack.
    fn body<'a>(
        shared: &'a Rc<Shared>,
        seen: &'a RefCell<Vec<usize>>,
        panics: bool,
    ) -> MemberBody<impl FnOnce() -> usize + 'a> {
        let key = shared.table.borrow_mut().reserve(false);
        let probe = Probe { shared, seen };
        let f = move || {
            let probe = probe;
            assert!(!panics, "the body panics");
            probe.shared.len()
        };
        MemberBody { f, membership: Membership { shared: shared.clone(), key: Some(key) } }
    }

    #[test]
    fn a_body_dropped_unstarted_drops_its_closure_before_the_member_leaves() {
        let shared = Shared::new(None, false);
        let seen = RefCell::new(Vec::new());
        drop(body(&shared, &seen, false));
        assert_eq!(*seen.borrow(), [1], "the closure went while the member was still in");
        assert_eq!(shared.len(), 0, "then the member left");
    }

    #[test]
    fn a_body_that_returns_leaves_after_its_closure_is_consumed() {
        let shared = Shared::new(None, false);
        let seen = RefCell::new(Vec::new());
        assert_eq!(body(&shared, &seen, false).run(), 1, "a member while it runs");
        assert_eq!(*seen.borrow(), [1]);
        assert_eq!(shared.len(), 0);
    }

    #[cfg(feature = "std")]
    #[test]
    fn a_body_that_panics_leaves_after_its_closure_is_dropped() {
        let shared = Shared::new(None, false);
        let seen = RefCell::new(Vec::new());
        let body = body(&shared, &seen, true);
        let result = std::panic::catch_unwind(core::panic::AssertUnwindSafe(|| body.run()));
        assert!(result.is_err());
        assert_eq!(*seen.borrow(), [1]);
        assert_eq!(shared.len(), 0);
    }
}
