//! Greenlets: spawning them, and the handles that join, kill and link them.

mod join;
mod node;
pub(crate) mod task;
mod value;

use alloc::borrow::Cow;
use alloc::boxed::Box;
use alloc::format;
use core::cell::{Cell, RefCell};
use core::fmt;
use core::panic::Location;
use core::ptr::NonNull;
use core::time::Duration;

pub use join::{AsGreenlet, Greenlets, JoinAll, joinall, killall, killall_timeout};
pub(crate) use join::{DeadlineTimer, join_task};

use crate::error::{FailureKind, GreenletError, Interrupted};
use crate::hub::hub;
use task::{Body, Outcome, Task, TaskRef};

/// The body of a greenlet spawned with `F` returning `T`: the closure until it starts, then
/// the value it returned.
///
/// `repr(C)` with `handles` first: a handle reaches the count at the body's address, whatever
/// `F`, without a call through the [`ValueSlot`] table (see [`Unflattened::handles`]).
#[repr(C)]
struct Typed<T, F> {
    /// Live [`Greenlet<T>`] handles: the only way to reach the value. With none left, the value
    /// is dropped at once, by the greenlet itself or by whoever drops the last handle — never
    /// by the hub loop on the main greenlet's stack, where a blocking or panicking `Drop`
    /// would wreak havoc.
    handles: Cell<usize>,
    slot: RefCell<Slot<T, F>>,
}

/// A greenlet's closure before it runs, its value after: never both, so they share the space.
enum Slot<T, F> {
    Body(F),
    Value(T),
    Empty,
}

/// Access to a greenlet's result, whatever its closure's type. Only [`Typed`] implements it
/// (which [`Unflattened::handles`] relies on).
trait ValueSlot<T> {
    /// Moves the value out (`None` if there is none or it was taken).
    fn take_value(&self) -> Option<T>;
    /// A clone of the value.
    fn clone_value(&self) -> Option<T>
    where
        T: Clone;
}

impl<T: 'static, F: FnOnce() -> T + 'static> Body for Typed<T, F> {
    fn run(&self, me: &TaskRef) -> Option<FailureKind> {
        let Slot::Body(body) = self.slot.replace(Slot::Empty) else {
            unreachable!("a greenlet starts once, with its body")
        };
        let mut failure = match crate::panic::catch(body) {
            Ok(value) => match me.task.kill_delivered.get().then(|| me.task.kill_error()) {
                // Killed with a reason: a failure whatever the body made of it.
                Some(Interrupted::KilledWith(reason)) => {
                    drop_owned(value);
                    Some(FailureKind::KilledWith(reason))
                }
                // Otherwise the body's own result stands, even after a plain kill.
                _ => {
                    *self.slot.borrow_mut() = Slot::Value(value);
                    None
                }
            },
            Err(message) => Some(FailureKind::Panicked(message)),
        };
        // Everything the greenlet owns is dropped here, inside its own panic boundary: its
        // locals, and its value if no handle can ever read it.
        let cleanup = crate::panic::catch(|| {
            me.task.clear_locals();
            if self.handles.get() == 0 {
                drop(self.take_value());
            }
        });
        if let (Err(message), None) = (cleanup, &failure) {
            drop_owned(self.take_value());
            failure = Some(FailureKind::Panicked(message));
        }
        failure
    }

    fn discard(&self) {
        drop(self.slot.replace(Slot::Empty));
    }
}

/// Drops a value the greenlet owns, catching a panic of its `Drop` (reported by the panic hook).
fn drop_owned<T>(value: T) {
    let _ = crate::panic::catch(move || drop(value));
}

impl<T: 'static, F: FnOnce() -> T + 'static> ValueSlot<T> for Typed<T, F> {
    fn take_value(&self) -> Option<T> {
        match self.slot.replace(Slot::Empty) {
            Slot::Value(value) => Some(value),
            other => {
                *self.slot.borrow_mut() = other;
                None
            }
        }
    }

    fn clone_value(&self) -> Option<T>
    where
        T: Clone,
    {
        match &*self.slot.borrow() {
            Slot::Value(value) => Some(value.clone()),
            _ => None,
        }
    }
}

/// Configures a greenlet before spawning it: its name and stack size.
#[derive(Clone, Debug, Default)]
pub struct Builder {
    name: Option<Cow<'static, str>>,
    stack_size: Option<usize>,
}

impl Builder {
    /// A builder with the defaults: name `Greenlet-<id>`, the platform's default stack size
    /// ([`DEFAULT_STACK_SIZE`](crate::stack::DEFAULT_STACK_SIZE) on hosted platforms).
    pub fn new() -> Self {
        Builder::default()
    }

    /// Names the greenlet; the name appears in errors, panic reports and `LoopExit` reports.
    pub fn name(mut self, name: impl Into<Cow<'static, str>>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Sets the usable stack size in bytes, rounded up to what the platform needs (16-byte
    /// multiples, whole pages on hosted platforms, at least
    /// [`MIN_STACK_SIZE`](crate::stack::MIN_STACK_SIZE)). A size no stack can hold makes the
    /// greenlet fail to start with [`FailureKind::NoStack`].
    pub fn stack_size(mut self, bytes: usize) -> Self {
        self.stack_size = Some(bytes);
        self
    }

    /// Spawns the greenlet: it starts once the current greenlet parks or yields, after the
    /// greenlets already in the run queue.
    #[track_caller]
    pub fn spawn<T: 'static>(self, f: impl FnOnce() -> T + 'static) -> Greenlet<T> {
        self.spawn_at(Location::caller(), None, f)
    }

    /// Spawns the greenlet to start no earlier than `delay` from now.
    #[track_caller]
    pub fn spawn_later<T: 'static>(
        self,
        delay: Duration,
        f: impl FnOnce() -> T + 'static,
    ) -> Greenlet<T> {
        let start_at = hub().now() + delay;
        self.spawn_at(Location::caller(), Some(start_at), f)
    }

    /// Spawns the greenlet with an explicit spawn site: for code that spawns greenlets on a
    /// caller's behalf (a server's handlers, a pool's workers), so that reports and
    /// [`LoopExit`](crate::Interrupted::LoopExit) pictures name the caller's line, recorded
    /// with `#[track_caller]` and [`Location::caller`], rather than the library's.
    pub fn spawn_located<T: 'static>(
        self,
        location: &'static Location<'static>,
        f: impl FnOnce() -> T + 'static,
    ) -> Greenlet<T> {
        self.spawn_at(location, None, f)
    }

    /// Spawns a job posted from another thread at `location`; its handle is not needed.
    pub(crate) fn spawn_untracked(
        self,
        location: &'static Location<'static>,
        job: Box<dyn FnOnce() + Send>,
    ) {
        drop(self.spawn_at(location, None, job));
    }

    fn spawn_at<T: 'static, F: FnOnce() -> T + 'static>(
        self,
        location: &'static Location<'static>,
        start_at: Option<crate::time::Instant>,
        f: F,
    ) -> Greenlet<T> {
        let hub = hub();
        let id = hub.next_greenlet_id();
        let stack_size = self.stack_size.unwrap_or_else(|| hub.default_stack_size());
        let memory = match TaskRef::reserve(hub.header_source(), hub.take_recycled()) {
            Ok(memory) => memory,
            Err(e) => return spawn_failed(id, self.name, location, stack_size, e),
        };
        let body = Typed { handles: Cell::new(1), slot: RefCell::new(Slot::Body(f)) };
        let task = || Task::new(id, self.name, location, stack_size, false);
        let (inner, slot) = memory.build(task, body);
        hub.schedule_new(inner.clone(), inner.clone(), start_at);
        Greenlet { raw: Unflattened { inner, slot } }
    }
}

/// A greenlet that could not be spawned for want of a header: finished at once with
/// [`FailureKind::NoHeader`], its closure dropped by the caller. Its own node, which only
/// carries that report, comes from the global allocator.
#[cold]
#[inline(never)]
fn spawn_failed<T: 'static>(
    id: u64,
    name: Option<Cow<'static, str>>,
    location: &'static Location<'static>,
    stack_size: usize,
    e: crate::headers::HeaderError,
) -> Greenlet<T> {
    let body = Typed::<T, fn() -> T> { handles: Cell::new(1), slot: RefCell::new(Slot::Empty) };
    let task = || Task::new(id, name, location, stack_size, false);
    let (inner, slot) = TaskRef::new_node(None, None, task, body).expect("the heap has no limit");
    hub().fail_spawn(inner.clone(), FailureKind::NoHeader(e));
    Greenlet { raw: Unflattened { inner, slot } }
}

/// Spawns a greenlet running `f`; see [`Builder::spawn`].
#[track_caller]
pub fn spawn<T: 'static>(f: impl FnOnce() -> T + 'static) -> Greenlet<T> {
    Builder::new().spawn_at(Location::caller(), None, f)
}

/// Spawns a greenlet that starts no earlier than `delay` from now; see [`Builder::spawn_later`].
#[track_caller]
pub fn spawn_later<T: 'static>(delay: Duration, f: impl FnOnce() -> T + 'static) -> Greenlet<T> {
    let start_at = hub().now() + delay;
    Builder::new().spawn_at(Location::caller(), Some(start_at), f)
}

/// Runs a finished greenlet's link callbacks, in the order they were added, in a greenlet of
/// their own (so that a callback may block without holding up anyone else), then wakes the
/// greenlets joining it. A callback that panics is reported and the next one runs.
pub(crate) fn spawn_links(t: &TaskRef) {
    /// Wakes the joiners when the links are done — or dropped unrun (their greenlet was killed
    /// before it started).
    struct LinksDone(TaskRef);
    impl Drop for LinksDone {
        fn drop(&mut self) {
            let task = self.0.task();
            task.links_pending.set(false);
            hub().wake_joiners(task);
        }
    }
    let task = t.task();
    let name = format!("links of greenlet #{}", task.id);
    let done = LinksDone(t.clone());
    drop(Builder::new().name(name).spawn_at(task.spawned_at, None, move || {
        // Callbacks added while these run (by one of them, say) run too.
        loop {
            let links = done.0.task().take_links();
            if links.is_empty() {
                break;
            }
            for link in links {
                let _ = crate::panic::catch(link);
            }
        }
        drop(done);
    }));
}

/// The methods that [`Greenlet`] and [`GreenletRef`] share; each type provides `task()` (the
/// header) and `task_ref()` (a counted reference).
macro_rules! greenlet_methods {
    () => {
        /// The greenlet's id, unique within its hub (the main greenlet's is 0).
        pub fn id(&self) -> u64 {
            self.task().id
        }

        /// The greenlet's name: the one given to [`Builder::name`], `main` for the main
        /// greenlet, `Greenlet-<id>` otherwise.
        pub fn name(&self) -> Cow<'static, str> {
            self.task().name()
        }

        /// Where it was spawned.
        pub fn spawned_at(&self) -> &'static Location<'static> {
            self.task().spawned_at
        }

        /// Whether this is the thread's main greenlet.
        pub fn is_main(&self) -> bool {
            self.task().is_main
        }

        /// Whether its body has started running.
        pub fn started(&self) -> bool {
            self.task().ran.get()
        }

        /// Whether it has finished, one way or another (gevent's `ready()`).
        pub fn ready(&self) -> bool {
            self.task().is_finished()
        }

        /// Same as [`ready`](Self::ready) (gevent's `dead`).
        pub fn dead(&self) -> bool {
            self.ready()
        }

        /// Whether it finished without failing (gevent's `successful()`): its body returned,
        /// or a plain kill ended it, which is a cancellation rather than a failure.
        pub fn successful(&self) -> bool {
            matches!(self.task().outcome(), Outcome::Value | Outcome::Killed)
        }

        /// How it failed, if it finished and failed (gevent's `exception`): it panicked, was
        /// killed with a reason, or found no stack. `None` after a plain kill.
        pub fn error(&self) -> Option<GreenletError> {
            self.task().error()
        }

        /// Whether it finished because of a plain kill: killed before it started, or a kill
        /// reached one of its blocking calls. Tells a cancelled greenlet from one that ended
        /// on its own; its body's result, if it returned one, still stands.
        pub fn killed(&self) -> bool {
            let task = self.task();
            let outcome = task.outcome();
            task.is_finished()
                && task.killed.get()
                && outcome != Outcome::Failed
                && (task.kill_delivered.get() || outcome == Outcome::Killed)
        }

        /// Whether it has been killed (the kill may not have reached it yet).
        pub fn is_killed(&self) -> bool {
            self.task().killed.get()
        }

        /// Waits until it finishes (whatever the outcome).
        pub fn join(&self) -> Result<(), Interrupted> {
            join_task(&self.task_ref(), None).map(|_| ())
        }

        /// Waits at most `timeout` for it to finish; `Ok(true)` if it did.
        ///
        /// An enclosing [`Timeout`](crate::Timeout) that expires first is reported as such
        /// (`Err(TimedOut(its id))`), not as `Ok(false)`.
        pub fn join_timeout(&self, timeout: Duration) -> Result<bool, Interrupted> {
            let deadline = hub().now() + timeout;
            join_task(&self.task_ref(), Some(deadline))
        }

        /// Kills it and waits until it has finished.
        ///
        /// A greenlet that has not started never runs its body. A running one has its current
        /// (or next) blocking call return [`Interrupted::Killed`], and so do all its later ones
        /// (the kill is sticky) outside [`shield`](crate::shield) scopes. Killing a finished
        /// greenlet does nothing; killing oneself returns at once (the kill arrives at the next
        /// blocking call). If it ignores the kill, this waits for as long as it runs: see
        /// [`kill_timeout`](Self::kill_timeout).
        ///
        /// As in gevent, a plain kill is a cancellation, not a failure: afterwards
        /// [`killed`](Self::killed) is true and [`error`](Self::error) is `None`; a body that
        /// handled the kill and returned a value keeps it, and one that produced none makes
        /// `get()` fail with [`Error::Killed`](crate::Error::Killed). To make the kill a
        /// failure, use [`kill_with`](Self::kill_with).
        ///
        /// The main greenlet can be killed too: its current or next blocking call returns
        /// `Killed` once, and later ones work again (the thread's own stack cannot end, so a
        /// sticky kill would fail every later blocking call of the program; gevent raises
        /// `GreenletExit` in it once, likewise).
        pub fn kill(&self) -> Result<(), Interrupted> {
            kill_and_join(&self.task_ref(), None, None).map(|_| ())
        }

        /// Kills it and waits at most `timeout`; `Ok(true)` if it finished.
        pub fn kill_timeout(&self, timeout: Duration) -> Result<bool, Interrupted> {
            kill_and_join(&self.task_ref(), None, Some(timeout))
        }

        /// Kills it without waiting.
        pub fn kill_nowait(&self) {
            hub().kill(&self.task_ref());
        }

        /// Kills it with a reason (gevent's `kill(exception=...)`) and waits until it has
        /// finished: its blocking calls return [`Interrupted::KilledWith`] carrying `reason`,
        /// sticky like a plain kill, and unlike a plain kill this is a failure: it ends with
        /// [`FailureKind::KilledWith`], which [`error`](Self::error) and `get()` report.
        pub fn kill_with(&self, reason: impl Into<Cow<'static, str>>) -> Result<(), Interrupted> {
            kill_and_join(&self.task_ref(), Some(reason.into()), None).map(|_| ())
        }

        /// Removes a callback added by `link` that has not run yet; true if it was there.
        pub fn unlink(&self, link: LinkId) -> bool {
            self.task().remove_link(link.0)
        }

        /// Whether callbacks added by `link` wait for its end.
        pub fn has_links(&self) -> bool {
            self.task().has_links()
        }

        /// How deep its stack has been used: bytes from the stack's top down to the deepest
        /// write its stack source can see, or `None` when the source cannot tell (its
        /// [`StackSource::untouched_below`](crate::stack::StackSource::untouched_below)), or
        /// while it holds no stack (before it starts, after it ends, and for the main
        /// greenlet, on the thread's own stack).
        ///
        /// The mark is the stack's since its source last painted or zeroed it: a stack that the
        /// hub kept for reuse shows the depth of the greenlets that ran on it before, if they
        /// went deeper. Stacks are measured by reading their dead part, a loop over words: a
        /// diagnostic, not for hot paths.
        pub fn stack_high_water(&self) -> Option<usize> {
            hub().stack_high_water(self.task())
        }
    };
}

/// Names a callback added with `link`, for [`Greenlet::unlink`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LinkId(u64);

/// Kills `t` (with `reason`, if any) and waits for its end, at most `timeout`; `Ok(true)` if it
/// ended.
fn kill_and_join(
    t: &TaskRef,
    reason: Option<Cow<'static, str>>,
    timeout: Option<Duration>,
) -> Result<bool, Interrupted> {
    let hub = hub();
    hub.kill_with(t, reason);
    if t.task().id == hub.current_task().id {
        return Ok(t.task().is_finished()); // oneself: the kill arrives at the next wait
    }
    join_task(t, timeout.map(|d| hub.now() + d))
}

/// A handle to a greenlet that returns a `T`. Clones are handles to the same greenlet.
///
/// Dropping every handle does not stop the greenlet: it runs to its end (or until killed, or
/// until the hub shuts down). Its value lives as long as a handle can read it: once the last
/// handle is gone and the greenlet has finished, the value is dropped.
///
/// # Reading the value
///
/// `get`, `take`, `get_timeout` and `try_get` return `Result<T, Error>`. For a body that
/// returns `Result<T, E>` they flatten: its `Err(e)` comes back converted into
/// [`Error`](crate::Error), so `g.get()?` reads like gevent's `g.get()`. For any other value
/// type they come from [`Unflattened`] (through `Deref`), which returns the value as the body
/// returned it; `Unflattened`'s methods are also how to read a `Result` body unflattened
/// (`(*g).get()`).
pub struct Greenlet<T: 'static> {
    raw: Unflattened<T>,
}

/// The value-reading methods of a [`Greenlet`] that return the body's value as it is, whatever
/// its type. Reached through `Deref`: a `Greenlet<T>` has these methods unless its body returns
/// a `Result`, which gets flattening ones of the same names. Never held on its own.
pub struct Unflattened<T: 'static> {
    inner: TaskRef,
    /// The body of `inner`'s node, which `inner` keeps alive.
    slot: NonNull<dyn ValueSlot<T>>,
}

impl<T: 'static> Unflattened<T> {
    /// The greenlet's body, as the holder of its value.
    #[allow(unsafe_code)] // see the SAFETY comment
    fn slot(&self) -> &dyn ValueSlot<T> {
        // SAFETY: `slot` points at the body of the node `inner` holds a count of, so it lives
        // while `self` is borrowed; a body is only ever borrowed shared.
        unsafe { self.slot.as_ref() }
    }

    /// The count of live handles, at the start of the body.
    #[allow(unsafe_code)] // see the SAFETY comment
    fn handles(&self) -> &Cell<usize> {
        // SAFETY: `slot` points at a `Typed<T, _>` (the only implementor of `ValueSlot`), which
        // is `repr(C)` with the `Cell<usize>` first, alive while `self` is borrowed (as in
        // `slot`); it is only ever borrowed shared.
        unsafe { self.slot.cast::<Cell<usize>>().as_ref() }
    }
}

impl<T: 'static> core::ops::Deref for Greenlet<T> {
    type Target = Unflattened<T>;

    fn deref(&self) -> &Unflattened<T> {
        &self.raw
    }
}

impl<T: 'static> Clone for Greenlet<T> {
    fn clone(&self) -> Self {
        let handles = self.raw.handles();
        handles.set(handles.get() + 1);
        Greenlet { raw: Unflattened { inner: self.raw.inner.clone(), slot: self.raw.slot } }
    }
}

impl<T: 'static> Drop for Unflattened<T> {
    fn drop(&mut self) {
        let handles = self.handles();
        handles.set(handles.get() - 1);
        // A value with no drop glue is left for the node's own drop: nothing would run now.
        if core::mem::needs_drop::<T>() && handles.get() == 0 && self.inner.task().is_finished() {
            drop(self.slot().take_value()); // in the caller's context, as any drop
        }
    }
}

impl<T: 'static> fmt::Debug for Greenlet<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        debug_task(self.raw.inner.task(), f)
    }
}

impl<T: 'static> fmt::Debug for Unflattened<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        debug_task(self.inner.task(), f)
    }
}

fn debug_task(task: &Task, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    f.debug_struct("Greenlet")
        .field("id", &task.id)
        .field("name", &task.name())
        .field("spawned_at", &task.spawned_at)
        .field("state", &task.state.get())
        .finish()
}

impl<T: 'static> Greenlet<T> {
    fn task(&self) -> &Task {
        self.raw.inner.task()
    }

    fn task_ref(&self) -> TaskRef {
        self.raw.inner.clone()
    }

    /// An untyped handle to the same greenlet.
    pub fn to_ref(&self) -> GreenletRef {
        GreenletRef { t: self.task_ref() }
    }

    greenlet_methods!();

    /// Calls `f` with this greenlet when it finishes (at once if it has), in a greenlet of its
    /// own; callbacks run in the order they were added, and `join` returns after they ran.
    /// A callback that panics is reported and does not stop the others.
    pub fn link(&self, f: impl FnOnce(&Greenlet<T>) + 'static) -> LinkId {
        let me = self.clone();
        add_link(&self.task_ref(), Box::new(move || f(&me)))
    }

    /// Like [`link`](Self::link), but only if it finishes successfully (a plain kill counts,
    /// as in gevent).
    pub fn link_value(&self, f: impl FnOnce(&Greenlet<T>) + 'static) -> LinkId {
        self.link(move |g| {
            if g.successful() {
                f(g)
            }
        })
    }

    /// Like [`link`](Self::link), but only if it fails: panicked, killed with a reason, or
    /// found no stack. A plain kill is not a failure.
    pub fn link_exception(&self, f: impl FnOnce(&Greenlet<T>) + 'static) -> LinkId {
        self.link(move |g| {
            if !g.successful() {
                f(g)
            }
        })
    }
}

fn add_link(t: &TaskRef, link: Box<dyn FnOnce()>) -> LinkId {
    let task = t.task();
    let id = LinkId(task.add_link(link));
    if task.is_finished() && !task.links_pending.get() {
        task.links_pending.set(true);
        spawn_links(t);
    }
    id
}

/// An untyped handle to a greenlet: the current one, or any greenlet whatever its value type.
#[derive(Clone)]
pub struct GreenletRef {
    t: TaskRef,
}

impl fmt::Debug for GreenletRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        debug_task(self.t.task(), f)
    }
}

impl PartialEq for GreenletRef {
    fn eq(&self, other: &Self) -> bool {
        self.t.task().id == other.t.task().id
    }
}

impl Eq for GreenletRef {}

impl<T: 'static> From<&Greenlet<T>> for GreenletRef {
    fn from(g: &Greenlet<T>) -> Self {
        g.to_ref()
    }
}

impl GreenletRef {
    fn task(&self) -> &Task {
        self.t.task()
    }

    pub(crate) fn task_ref(&self) -> &TaskRef {
        &self.t
    }

    greenlet_methods!();

    /// Calls `f` with this greenlet when it finishes; see [`Greenlet::link`].
    pub fn link(&self, f: impl FnOnce(&GreenletRef) + 'static) -> LinkId {
        let me = self.clone();
        add_link(&self.t, Box::new(move || f(&me)))
    }

    /// A handle to a greenlet the hub holds.
    pub(crate) fn from_task(t: TaskRef) -> Self {
        GreenletRef { t }
    }
}

/// The greenlet running now (gevent's `getcurrent()`).
pub fn current() -> GreenletRef {
    GreenletRef { t: hub().current() }
}
