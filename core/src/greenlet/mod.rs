//! Greenlets: spawning them, and the handles that join, kill and link them.

mod join;
pub(crate) mod task;

use alloc::borrow::Cow;
use alloc::boxed::Box;
use alloc::format;
use alloc::rc::Rc;
use alloc::vec;
use alloc::vec::Vec;
use core::any::Any;
use core::cell::{Ref, RefCell};
use core::fmt;
use core::panic::Location;
use core::time::Duration;

use corosensei::Coroutine;

pub use join::{AsGreenlet, JoinAll, joinall, killall, killall_timeout};
pub(crate) use join::{DeadlineTimer, join_task};

use crate::error::{FailureKind, GetError, GreenletError, Interrupted};
use crate::hub::hub;
use crate::hub::switch::GreenletCoroutine;
use crate::stack::PooledStack;
use task::{Body, Node, Outcome, Task, TaskRef};

/// The body of a greenlet spawned with `F` returning `T`: the closure until it starts, then
/// the value it returned.
struct Typed<T, F> {
    slot: RefCell<Slot<T, F>>,
}

/// A greenlet's closure before it runs, its value after: never both, so they share the space.
enum Slot<T, F> {
    Body(F),
    Value(T),
    Empty,
}

/// Access to a greenlet's result, whatever its closure's type.
trait ValueSlot<T>: Body {
    /// Moves the value out (`None` if there is none or it was taken).
    fn take_value(&self) -> Option<T>;
    /// Borrows the value.
    fn value(&self) -> Option<Ref<'_, T>>;
}

impl<T: 'static, F: FnOnce() -> T + 'static> Body for Typed<T, F> {
    fn start(&self, me: TaskRef, stack: PooledStack) -> GreenletCoroutine {
        let Slot::Body(body) = self.slot.replace(Slot::Empty) else {
            unreachable!("a greenlet starts once, with its body")
        };
        Coroutine::with_stack(stack, move |yielder, ()| {
            me.task.context.set_yielder(yielder);
            let failure = match crate::panic::catch(body) {
                // The body ended because it was killed: its value is not trusted.
                Ok(_) if me.task.kill_delivered.get() => Some(FailureKind::Killed),
                Ok(value) => {
                    let typed: &dyn Any = &me.body;
                    let typed = typed.downcast_ref::<Self>().expect("the body has this type");
                    *typed.slot.borrow_mut() = Slot::Value(value);
                    None
                }
                Err(message) => Some(FailureKind::Panicked(message)),
            };
            hub().finish(&me, failure);
        })
    }

    fn discard(&self) {
        drop(self.slot.replace(Slot::Empty));
    }
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

    fn value(&self) -> Option<Ref<'_, T>> {
        Ref::filter_map(self.slot.borrow(), |slot| match slot {
            Slot::Value(value) => Some(value),
            _ => None,
        })
        .ok()
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

    /// Sets the usable stack size in bytes (rounded up to whole pages by the platform).
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

    /// Spawns with an explicit spawn site (for spawns made on a user's behalf).
    pub(crate) fn spawn_located<T: 'static>(
        self,
        location: &'static Location<'static>,
        f: impl FnOnce() -> T + 'static,
    ) -> Greenlet<T> {
        self.spawn_at(location, None, f)
    }

    /// Spawns a job posted from another thread; its handle is not needed.
    pub(crate) fn spawn_untracked(self, job: Box<dyn FnOnce() + Send>) {
        drop(self.spawn_at(Location::caller(), None, job));
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
        let inner = Rc::new(Node {
            task: Task::new(id, self.name, location, stack_size, false),
            body: Typed { slot: RefCell::new(Slot::Body(f)) },
        });
        hub.schedule_new(inner.clone(), start_at);
        Greenlet { inner }
    }
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
/// their own (so that a callback may block without holding up anyone else).
pub(crate) fn spawn_links(task: &Task, links: Vec<Box<dyn FnOnce()>>) {
    let name = format!("links of greenlet #{}", task.id);
    drop(Builder::new().name(name).spawn_at(task.spawned_at, None, move || {
        for link in links {
            link();
        }
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

        /// Whether it finished with a value (not killed, not panicked).
        pub fn successful(&self) -> bool {
            self.task().outcome() == Outcome::Value
        }

        /// How it failed, if it finished and failed (gevent's `exception`).
        pub fn error(&self) -> Option<GreenletError> {
            self.task().error()
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
        pub fn kill(&self) -> Result<(), Interrupted> {
            kill_and_join(&self.task_ref(), None).map(|_| ())
        }

        /// Kills it and waits at most `timeout`; `Ok(true)` if it finished.
        pub fn kill_timeout(&self, timeout: Duration) -> Result<bool, Interrupted> {
            kill_and_join(&self.task_ref(), Some(timeout))
        }

        /// Kills it without waiting.
        pub fn kill_nowait(&self) {
            hub().kill(&self.task_ref());
        }
    };
}

/// Kills `t` and waits for its end, at most `timeout`; `Ok(true)` if it ended.
fn kill_and_join(t: &TaskRef, timeout: Option<Duration>) -> Result<bool, Interrupted> {
    let hub = hub();
    hub.kill(t);
    if t.task().id == hub.current_task().id {
        return Ok(t.task().is_finished()); // oneself: the kill arrives at the next wait
    }
    join_task(t, timeout.map(|d| hub.now() + d))
}

/// A handle to a greenlet that returns a `T`. Clones are handles to the same greenlet.
///
/// Dropping every handle does not stop the greenlet: it runs to its end (or until killed, or
/// until the hub shuts down).
pub struct Greenlet<T> {
    inner: Rc<Node<dyn ValueSlot<T>>>,
}

impl<T> Clone for Greenlet<T> {
    fn clone(&self) -> Self {
        Greenlet { inner: self.inner.clone() }
    }
}

impl<T> fmt::Debug for Greenlet<T> {
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
        self.inner.task()
    }

    fn task_ref(&self) -> TaskRef {
        self.inner.clone()
    }

    /// An untyped handle to the same greenlet.
    pub fn to_ref(&self) -> GreenletRef {
        GreenletRef { t: self.task_ref() }
    }

    greenlet_methods!();

    /// Waits for it to finish and returns a clone of its value.
    pub fn get(&self) -> Result<T, GetError>
    where
        T: Clone,
    {
        self.join()?;
        self.finished_value(|slot| slot.value().map(|v| v.clone()))
    }

    /// Waits for it to finish and moves its value out; later calls return [`GetError::Taken`].
    pub fn take(&self) -> Result<T, GetError> {
        self.join()?;
        self.finished_value(|slot| slot.take_value())
    }

    fn finished_value(
        &self,
        f: impl FnOnce(&dyn ValueSlot<T>) -> Option<T>,
    ) -> Result<T, GetError> {
        let task = self.inner.task();
        match task.outcome() {
            Outcome::Value => f(&self.inner.body).ok_or(GetError::Taken),
            Outcome::Failed => Err(GetError::Failed(task.error().expect("failed"))),
            Outcome::Pending => unreachable!("joined greenlets have an outcome"),
        }
    }

    /// Calls `f` with this greenlet when it finishes (at once if it has), in a greenlet of its
    /// own; callbacks run in the order they were added.
    pub fn link(&self, f: impl FnOnce(&Greenlet<T>) + 'static) {
        let me = self.clone();
        add_link(self.inner.task(), Box::new(move || f(&me)));
    }

    /// Like [`link`](Self::link), but only if it finishes successfully.
    pub fn link_value(&self, f: impl FnOnce(&Greenlet<T>) + 'static) {
        self.link(move |g| {
            if g.successful() {
                f(g)
            }
        });
    }

    /// Like [`link`](Self::link), but only if it fails (killed, panicked, no stack).
    pub fn link_exception(&self, f: impl FnOnce(&Greenlet<T>) + 'static) {
        self.link(move |g| {
            if !g.successful() {
                f(g)
            }
        });
    }
}

fn add_link(task: &Task, link: Box<dyn FnOnce()>) {
    if task.is_finished() {
        spawn_links(task, vec![link]);
    } else {
        task.add_link(link);
    }
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
    pub fn link(&self, f: impl FnOnce(&GreenletRef) + 'static) {
        let me = self.clone();
        add_link(self.t.task(), Box::new(move || f(&me)));
    }
}

/// The greenlet running now (gevent's `getcurrent()`).
pub fn current() -> GreenletRef {
    GreenletRef { t: hub().current() }
}
