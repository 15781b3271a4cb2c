//! [`scope`]: structured concurrency, with children that may borrow from the caller's stack.
//!
//! Why the children's borrowing is sound is argued in the docs of [`scope`]; the one `unsafe`
//! block is in [`Scope::spawn`].

use alloc::boxed::Box;
use core::cell::{Cell, RefCell};
use core::fmt;
use core::marker::PhantomData;
use core::panic::Location;

use super::group::Group;
use crate::error::{GreenletError, Interrupted, TimeoutId};
use crate::greenlet::GreenletRef;
use crate::hub::hub;
use crate::timeout::shield;

/// Why a [`scope`] failed.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ScopeError<E> {
    /// The scope's body returned this error, or else a child returned it first.
    Failed(E),
    /// A child panicked, or could not start (no stack).
    Child(GreenletError),
    /// Waiting for the children was interrupted (the scope's greenlet was killed or timed
    /// out); the children were killed.
    Interrupted(Interrupted),
}

impl<E: fmt::Display> fmt::Display for ScopeError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ScopeError::Failed(e) => write!(f, "the scope failed: {e}"),
            ScopeError::Child(e) => write!(f, "a greenlet of the scope failed: {e}"),
            ScopeError::Interrupted(why) => write!(f, "waiting for the scope stopped: {why}"),
        }
    }
}

impl<E: fmt::Debug + fmt::Display> core::error::Error for ScopeError<E> {}

/// The handle of a [`scope`], for spawning its children. `'scope` is the lifetime of the scope
/// itself, `'env` that of what the children may borrow from outside it, as in
/// [`std::thread::Scope`](https://doc.rust-lang.org/std/thread/struct.Scope.html).
pub struct Scope<'scope, 'env: 'scope, E> {
    children: Group,
    /// The first error a child returned, unless the scope was already ending.
    first_error: RefCell<Option<E>>,
    /// Set once the scope kills its children: errors they return after that are dropped.
    ending: Cell<bool>,
    location: &'static Location<'static>,
    // Invariant in both lifetimes, as std's scope is.
    scope: PhantomData<&'scope mut &'scope ()>,
    env: PhantomData<&'env mut &'env ()>,
}

impl<E> fmt::Debug for Scope<'_, '_, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Scope")
            .field("children", &self.children.len())
            .field("location", &self.location)
            .finish_non_exhaustive()
    }
}

impl<'scope, E> Scope<'scope, '_, E> {
    /// Spawns a child. It may borrow anything that outlives the scope; it is joined when the
    /// scope ends, or killed if the scope ends early. An `Err` it returns ends the scope with
    /// that error.
    #[track_caller]
    pub fn spawn<F>(&'scope self, f: F) -> GreenletRef
    where
        F: FnOnce() -> Result<(), E> + 'scope,
    {
        let child: Box<dyn FnOnce() + 'scope> = Box::new(move || {
            if let Err(e) = f() {
                self.record(e);
            }
        });
        // SAFETY: the box is given `'static` although what it holds is valid only for
        // `'scope`; it must therefore be neither run nor dropped once `'scope` ends, whatever
        // any caller does. It goes straight into a child greenlet of `self.children`, a group
        // that no API reaches besides this function (no `add`, no `discard`). The child's body
        // runs or drops the box before its membership leaves that group (`MemberBody`: the
        // closure is its first field and is consumed before the membership is released).
        // `scope` owns `self` and does not return or unwind until that group is empty:
        // `Scope::end` runs on every way out (the body's result, its panic through
        // `run_body`, any other unwinding through `EndsChildren`), kills the children and
        // waits for them shielded from kills, waiting again through timeouts, and aborts the
        // process when the wait can never end. The only members it forgets are those a hub
        // shutdown abandoned: never resumed, their stacks leaked, so the box is never run or
        // dropped. A caller cannot keep `self` past `scope` (it only has `&'scope Scope` under
        // a higher-ranked lifetime) nor hand it to another thread (`Scope` is `!Send` and
        // `!Sync`). The docs of `scope` give the argument in full.
        #[allow(unsafe_code)]
        let child = unsafe {
            core::mem::transmute::<Box<dyn FnOnce() + 'scope>, Box<dyn FnOnce() + 'static>>(child)
        };
        self.children.shared().spawn(Location::caller(), false, child).to_ref()
    }

    fn record(&self, e: E) {
        if self.ending.get() || self.first_error.borrow().is_some() {
            return; // `e` is dropped here, outside the borrow
        }
        *self.first_error.borrow_mut() = Some(e);
        self.children.shared().wake_watchers();
    }

    /// Whether a child failed (returned an error, panicked, could not start).
    fn child_failed(&self) -> bool {
        self.first_error.borrow().is_some() || self.children.shared().failed().is_some()
    }

    /// Waits for the children (after a body that returned `Ok`), ends the scope and says how.
    fn finish<R>(&self, outcome: Result<R, E>) -> Result<R, ScopeError<E>> {
        let children = self.children.shared();
        let waited = match &outcome {
            Ok(_) => children.wait_until(None, &|| children.len() == 0 || self.child_failed()),
            Err(_) => Ok(true),
        };
        self.end();
        let value = outcome.map_err(ScopeError::Failed)?;
        waited.map_err(ScopeError::Interrupted)?;
        if let Some(e) = self.first_error.take() {
            return Err(ScopeError::Failed(e));
        }
        match children.failed().and_then(|child| child.error()) {
            Some(error) => Err(ScopeError::Child(error)),
            None => Ok(value),
        }
    }

    /// Kills the children still running and waits until every one has left, shielded from
    /// kills and through timeouts. Never returns while a child may still run (see the
    /// soundness section of [`scope`]'s docs); aborts the process if that can never happen.
    fn end(&self) {
        let children = self.children.shared();
        let failed = children.failed();
        if children.len() == 0 && failed.as_ref().is_none_or(GreenletRef::ready) {
            return;
        }
        self.ending.set(true);
        let mut expired: Option<TimeoutId> = None;
        let mut expire = |id: TimeoutId| expired = Some(expired.map_or(id, |e| e.min(id)));
        shield(|| {
            // Required: until every child has left, returning would free what they borrow.
            loop {
                match children.kill_until(None) {
                    Ok(_) => break,
                    Err(Interrupted::TimedOut(id)) => expire(id),
                    Err(why) => abort_stuck(self.location, &why),
                }
            }
            // Wanted: the error of the child that failed, set when it finishes (just after it
            // left). It no longer touches what the scope lends, so giving up is fine.
            while let Some(Err(Interrupted::TimedOut(id))) = failed.as_ref().map(GreenletRef::join)
            {
                expire(id);
            }
        });
        if let Some(id) = expired {
            // Handed back: the greenlet's next blocking call reports it.
            let hub = hub();
            hub.interrupt(&hub.current(), Interrupted::TimedOut(id));
        }
    }
}

/// Ends the scope's children when `scope` is left by unwinding (a panic that the body's own
/// catch did not handle, or any panic without `std`); after a normal end it finds none.
struct EndsChildren<'a, 'scope, 'env, E>(&'a Scope<'scope, 'env, E>);

impl<E> Drop for EndsChildren<'_, '_, '_, E> {
    fn drop(&mut self) {
        self.0.end();
    }
}

/// Runs `body` with a [`Scope`] to spawn children into (structured concurrency, what gevent
/// users have asked for as nurseries). Children may borrow from the caller's stack, as with
/// [`std::thread::scope`](https://doc.rust-lang.org/std/thread/fn.scope.html) (not from the
/// body's own locals, which are gone when it returns and the children are joined).
///
/// - `body` returns `Ok`: the scope waits for every child; the first one to fail (in time)
///   makes it kill the others and return that failure.
/// - `body` returns `Err`: the children are killed and the error is returned.
/// - `body` panics: the children are killed and waited for, then the panic goes on.
/// - The wait is interrupted (the scope's greenlet is killed, or its `Timeout` expires): the
///   children are killed and waited for, then the interruption is returned.
///
/// Either way no child outlives the scope. Killed children are waited for inside a
/// [`shield`]: a child that ignores its kill and blocks forever keeps the scope waiting, and
/// where nothing can ever wake it (the main greenlet would get `LoopExit`), the process aborts
/// rather than free what the child borrows.
///
/// # Soundness
///
/// A child's closure may hold references valid only for `'scope`: into the [`Scope`], which
/// lives in `scope`'s own frame, and into `'env`, the caller's frames. The hub runs only
/// `'static` closures, so [`Scope::spawn`] erases that lifetime, which is sound because of one
/// invariant: **`scope` neither returns nor unwinds while a child may still run its closure or
/// still owns it.**
///
/// 1. A child is a member of a group that only the scope can reach (no `add` or `discard`
///    exists for it). The closure and the membership are two fields of the child's body, the
///    closure first: it is consumed by running, or dropped (the child was killed before it
///    started, or got no stack), *before* the membership takes the child out of the group,
///    on every path, panics included. After that the child runs only `'static` code (the
///    hub's bookkeeping, greenlet-local destructors, link callbacks).
/// 2. Every way out of `scope` first kills the children still in the group and waits until
///    the group is empty: after the body returns `Ok` (once the children are done, or one
///    failed), after it returns `Err`, after it panics (with `std` the panic is caught and
///    resumed afterwards, so that the other greenlets do not run during unwinding; without
///    `std`, and for anything else that unwinds out of `scope`, a guard's destructor does it
///    during the unwinding), and after the wait for the children is interrupted (the scope's
///    greenlet is killed, or its [`Timeout`](crate::Timeout) expires).
/// 3. That wait runs inside [`shield`], so a kill of the scope's greenlet cannot cut it short,
///    and it waits again when a `Timeout` expires (the expiry is handed back to the greenlet's
///    next blocking call, so it is not lost). Any other failure of the wait means it can never
///    end (the main greenlet got `LoopExit`: the children ignore their kill and wait on
///    something that cannot come); returning or unwinding would free what they borrow, so the
///    process aborts with a message instead. Children spawned while the scope ends are killed
///    as they are added.
/// 4. A hub shutdown ([`hub::shutdown`](crate::hub::shutdown), or a thread exiting with
///    greenlets parked) kills every greenlet and abandons those that do not end: they are
///    never resumed, their closures are never dropped and their stacks are leaked, not freed.
///    This relies on the hub freeing a greenlet's stack only after its body returned, and on
///    never resuming an abandoned greenlet.
///    - A scope running in a greenlet other than main is parked in its wait for the children
///      whenever one of them is alive, so it is abandoned with them: the data they borrow stays
///      in its leaked stack, and nothing uses it again.
///    - A scope running on the main greenlet, whose body called `shutdown`, sees its abandoned
///      children marked finished though they never left the group. Its wait then gets
///      `LoopExit`, forgets them and returns: they never run again, so the references left on
///      their leaked stacks are never used. At thread exit the main greenlet is not inside
///      `scope`: its stack has returned.
///
/// [`Scope`] is neither `Send` nor `Sync`, and a caller only ever holds `&'scope Scope` under a
/// higher-ranked lifetime, so nothing outside the body and the children can spawn into it.
///
/// ```
/// # use gevent as _; // links the default platform: see `[dev-dependencies]` in Cargo.toml
/// # #[cfg(not(miri))] // Miri cannot switch stacks
/// # gevent_core::sim::run(|| {
/// use core::time::Duration;
/// use gevent::{pool::{scope, ScopeError}, sleep};
/// let names = vec!["disk", "net"];
/// let result: Result<(), ScopeError<String>> = scope(|s| {
///     for name in &names {
///         s.spawn(move || {
///             sleep(Duration::from_millis(5)).map_err(|_| format!("{name}: killed"))?;
///             if *name == "disk" { Err(format!("{name}: full")) } else { Ok(()) }
///         });
///     }
///     Ok(())
/// });
/// assert_eq!(result, Err(ScopeError::Failed("disk: full".to_string())));
/// # });
/// ```
#[track_caller]
pub fn scope<'env, R, E>(
    body: impl for<'scope> FnOnce(&'scope Scope<'scope, 'env, E>) -> Result<R, E>,
) -> Result<R, ScopeError<E>> {
    let scope = Scope {
        children: Group::reporting_failures(),
        first_error: RefCell::new(None),
        ending: Cell::new(false),
        location: Location::caller(),
        scope: PhantomData,
        env: PhantomData,
    };
    // Declared after `scope`, so dropped before it, on every way out.
    let _ends_children = EndsChildren(&scope);
    let outcome = run_body(|| body(&scope), || scope.end());
    scope.finish(outcome)
}

/// Runs the body; a panic is held while `end` ends the children, then resumed.
#[cfg(feature = "std")]
fn run_body<T>(body: impl FnOnce() -> T, end: impl FnOnce()) -> T {
    match std::panic::catch_unwind(core::panic::AssertUnwindSafe(body)) {
        Ok(value) => value,
        Err(panic) => {
            // `EndsChildren` would end them during the unwinding too, but waiting there would
            // run every other greenlet of the thread while `std::thread::panicking()` is true.
            end();
            std::panic::resume_unwind(panic)
        }
    }
}

/// Without `std` a panic is left to unwind (if the target unwinds at all): `EndsChildren`
/// ends the children on the way.
#[cfg(not(feature = "std"))]
fn run_body<T>(body: impl FnOnce() -> T, _end: impl FnOnce()) -> T {
    body()
}

/// The scope cannot end: its children will never finish and may borrow from its stack.
#[cold]
fn abort_stuck(location: &Location<'_>, why: &Interrupted) -> ! {
    #[cfg(feature = "std")]
    {
        crate::report::error(format_args!(
            "gevent: the scope at {location} cannot end: waiting for its killed children failed \
             ({why}), and they may borrow from its stack, so it can neither return nor unwind; \
             aborting"
        ));
        std::process::abort()
    }
    #[cfg(not(feature = "std"))]
    {
        // A panic while this guard unwinds aborts; where panics abort anyway, so does the first.
        struct Abort;
        impl Drop for Abort {
            fn drop(&mut self) {
                panic!("gevent: aborting: a scope cannot end");
            }
        }
        let _abort = Abort;
        panic!(
            "gevent: the scope at {location} cannot end: waiting for its children failed ({why})"
        )
    }
}

#[cfg(all(test, feature = "sim"))]
mod tests {
    //! What of a scope runs without a context switch, so that Miri can check it too: a child
    //! whose borrowing closure is dropped unstarted, within the scope.

    use super::*;

    struct SetOnDrop<'a>(&'a Cell<bool>);

    impl Drop for SetOnDrop<'_> {
        fn drop(&mut self) {
            self.0.set(true);
        }
    }

    #[test]
    fn a_child_killed_before_it_starts_drops_its_borrowing_closure_within_the_scope() {
        crate::sim::run(|| {
            let dropped = Cell::new(false);
            let result: Result<usize, ScopeError<()>> = scope(|s| {
                let guard = SetOnDrop(&dropped);
                let child = s.spawn(move || {
                    let _guard = guard;
                    Ok(())
                });
                assert!(!dropped.get());
                child.kill_nowait();
                assert!(dropped.get(), "dropped as the child was killed");
                assert!(child.ready());
                Ok(s.children.len())
            });
            assert_eq!(result, Ok(0), "the child left at once");
        });
    }
}
