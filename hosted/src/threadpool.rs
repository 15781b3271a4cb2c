//! Running blocking work on OS threads while greenlets keep running: gevent's `threadpool`.
//!
//! [`ThreadPool::spawn`] runs a closure on one of the pool's threads and returns a
//! [`ThreadResult`] that a greenlet waits on like a [`Greenlet`](crate::Greenlet): `join`,
//! `get`, `get_timeout`, `ready`. Only the waiting greenlet parks; the others run. The result
//! comes back through the hub's cross-thread wake-up ([`HubHandle::pending_post`](crate::HubHandle::pending_post)): while a job
//! is out, the hub knows that work is coming and sleeps in its poller instead of reporting
//! `LoopExit`. [`spawn_blocking`] runs on a default pool shared by the whole process.
//!
//! ```
//! use gevent::threadpool::{ThreadPool, spawn_blocking};
//!
//! gevent::run(|| {
//!     let pool = ThreadPool::new(4);
//!     let sum = pool.spawn(|| (1..=100u64).sum::<u64>());
//!     let name = spawn_blocking(|| std::env::var("HOME").is_ok());
//!     assert_eq!(sum.get(), Ok(5050));
//!     let _ = name.get();
//! });
//! ```
//!
//! # Locks and the hub
//!
//! The hub thread takes the pool's lock only to queue a job, and pool threads take it only to
//! take one: no job runs under it, so a greenlet spawning work never waits for a running job.
//! The result travels inside the posted closure, so handing it back takes no lock at all.

use std::any::Any;
use std::borrow::Cow;
use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::marker::PhantomData;
use std::panic::{AssertUnwindSafe, Location, catch_unwind};
use std::rc::{Rc, Weak};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use gevent_core::event::Event;
use gevent_core::{Error, FailureKind, GreenletError, Interrupted, PendingPost, hub_handle};

/// How long a pool thread waits for work before it exits, unless
/// [`ThreadPool::with_idle_timeout`] says otherwise.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(10);

/// The name [`ThreadResult`] errors give a failed job, in place of a greenlet's name.
pub const JOB_NAME: &str = "thread pool job";

/// A queued job: called with `None` to run it, or with why it will never run.
type Work = Box<dyn FnOnce(Option<String>) + Send + 'static>;

/// A pool of at most `max` OS threads running closures for greenlets.
///
/// Threads are started on demand, when a job is queued and no idle thread is waiting for it,
/// up to the maximum; a thread that has had no work for the idle timeout exits. Jobs beyond
/// what the threads can take wait in a queue, first in first out.
///
/// Dropping the pool does not cancel queued or running jobs: they still run and their results
/// still come back. The threads exit once the queue is empty.
pub struct ThreadPool {
    shared: Arc<Shared>,
}

struct Shared {
    state: Mutex<State>,
    /// Signalled when a job is queued or the pool is dropped.
    work: Condvar,
    max: usize,
    idle_timeout: Duration,
}

struct State {
    queue: VecDeque<Work>,
    /// Threads started and not yet exited.
    threads: usize,
    /// Threads waiting for work (woken or not yet).
    idle: usize,
    /// The pool was dropped: threads exit when the queue is empty instead of lingering.
    closed: bool,
}

impl Shared {
    /// The lock, even if a thread panicked while holding it: no code that can panic runs under
    /// it (jobs run outside it), so the state is consistent anyway.
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl fmt::Debug for ThreadPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.shared.lock();
        f.debug_struct("ThreadPool")
            .field("max", &self.shared.max)
            .field("threads", &state.threads)
            .field("queued", &state.queue.len())
            .finish()
    }
}

impl ThreadPool {
    /// A pool of at most `max` threads (a `max` of 0 is taken as 1); none is started yet.
    pub fn new(max: usize) -> Self {
        Self::build(max, DEFAULT_IDLE_TIMEOUT)
    }

    /// A pool whose threads exit after `idle` without work instead of [`DEFAULT_IDLE_TIMEOUT`].
    pub fn with_idle_timeout(max: usize, idle: Duration) -> Self {
        Self::build(max, idle)
    }

    fn build(max: usize, idle_timeout: Duration) -> Self {
        ThreadPool {
            shared: Arc::new(Shared {
                state: Mutex::new(State {
                    queue: VecDeque::new(),
                    threads: 0,
                    idle: 0,
                    closed: false,
                }),
                work: Condvar::new(),
                max: max.max(1),
                idle_timeout,
            }),
        }
    }

    /// The most threads the pool runs at once.
    pub fn max(&self) -> usize {
        self.shared.max
    }

    /// How many threads the pool has now (running a job or idle).
    pub fn threads(&self) -> usize {
        self.shared.lock().threads
    }

    /// Runs `f` on a pool thread and returns a handle that the calling thread's greenlets wait
    /// on. A panic in `f` comes back from [`ThreadResult::get`] as an error; the pool thread
    /// survives it.
    ///
    /// The handle is tied to the calling thread's hub (it is not `Send`): the result is handed
    /// to that hub, and the hub does not report `LoopExit` while the job is out.
    #[track_caller]
    pub fn spawn<T, F>(&self, f: F) -> ThreadResult<T>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        let spawned_at = Location::caller();
        let id = NEXT_JOB_ID.fetch_add(1, Ordering::Relaxed);
        let slot = Rc::new(Slot { outcome: RefCell::new(None), done: Event::new() });
        // A slot missing from the registry means its handle is gone; the job then drops its
        // result on arrival. The registry is this thread's, which is where the result goes.
        let registered = WAITING
            .try_with(|w| {
                let weak: Weak<dyn Any> = Rc::downgrade(&slot) as Weak<dyn Any>;
                w.borrow_mut().insert(id, weak);
            })
            .is_ok();
        // Made here, on the hub's thread, before the job can finish: from now on the hub knows
        // that a post is owed.
        let promise = Promise::<T>::new(id, hub_handle().pending_post());
        let job: Work = Box::new(move |refused| match refused {
            None => run_job(f, promise),
            Some(why) => promise.keep(Err(why)),
        });
        self.submit(job);
        ThreadResult { slot, id, spawned_at, registered }
    }

    fn submit(&self, job: Work) {
        let start_thread = {
            let mut state = self.shared.lock();
            state.queue.push_back(job);
            let start = state.queue.len() > state.idle && state.threads < self.shared.max;
            if start {
                state.threads += 1;
            }
            start
        };
        // Outside the lock: starting a thread is a system call the pool threads need not wait
        // behind.
        self.shared.work.notify_one();
        if start_thread {
            let shared = self.shared.clone();
            let started = thread::Builder::new()
                .name("gevent-threadpool".into())
                .spawn(move || worker(shared));
            if let Err(e) = started {
                self.thread_failed_to_start(&e);
            }
        }
    }

    /// Without a thread to run them, queued jobs would wait forever: when no thread is left,
    /// each is failed (its handle reports why) rather than kept.
    fn thread_failed_to_start(&self, e: &std::io::Error) {
        let orphans = {
            let mut state = self.shared.lock();
            state.threads -= 1;
            if state.threads == 0 { std::mem::take(&mut state.queue) } else { VecDeque::new() }
        };
        for job in orphans {
            job(Some(format!("the thread pool could not start a thread to run it: {e}")));
        }
    }
}

impl Drop for ThreadPool {
    fn drop(&mut self) {
        self.shared.lock().closed = true;
        self.shared.work.notify_all();
    }
}

/// Takes jobs until none comes within the idle timeout (or the pool is dropped and the queue
/// is empty).
fn worker(shared: Arc<Shared>) {
    // Counts this thread out if it unwinds (dropping a job's panic payload may panic). A
    // thread that leaves normally counts itself out under the lock in which it saw the queue
    // empty: a job queued after that lock was released would otherwise see the thread still
    // counted, start none when the pool is full, and wait forever.
    struct Unwinding<'a>(&'a Shared);
    impl Drop for Unwinding<'_> {
        fn drop(&mut self) {
            self.0.lock().threads -= 1;
        }
    }
    let unwinding = Unwinding(&shared);
    loop {
        let job = {
            let mut state = shared.lock();
            let deadline = Instant::now() + shared.idle_timeout;
            loop {
                if let Some(job) = state.queue.pop_front() {
                    break Some(job);
                }
                let now = Instant::now();
                if state.closed || now >= deadline {
                    state.threads -= 1;
                    break None;
                }
                state.idle += 1;
                state = shared
                    .work
                    .wait_timeout(state, deadline - now)
                    .unwrap_or_else(PoisonError::into_inner)
                    .0;
                state.idle -= 1;
            }
        };
        match job {
            Some(job) => job(None),
            None => {
                std::mem::forget(unwinding);
                return;
            }
        }
    }
}

static NEXT_JOB_ID: AtomicU64 = AtomicU64::new(1);

thread_local! {
    /// The slots of this thread's jobs still out, by job id: how a posted result, which must be
    /// `Send`, finds the `Rc` its waiter parks on.
    static WAITING: RefCell<HashMap<u64, Weak<dyn Any>>> = RefCell::new(HashMap::new());
}

/// What a job produced: its value, or why there is none.
type Outcome<T> = Result<T, String>;

/// The hub-side half of a job: where its outcome lands and what its waiters park on.
struct Slot<T> {
    outcome: RefCell<Option<Outcome<T>>>,
    done: Event,
}

/// Runs on a pool thread: runs `f`, catching a panic, and posts the outcome to the hub that
/// spawned it.
fn run_job<T: Send + 'static>(f: impl FnOnce() -> T, promise: Promise<T>) {
    let outcome = catch_unwind(AssertUnwindSafe(f)).map_err(|payload| panic_message(&*payload));
    promise.keep(outcome);
}

/// A job's promise to the hub that waits for it: kept with the job's outcome, or, if the job
/// is dropped without being run or refused, with that reason, so no handle waits forever.
struct Promise<T: Send + 'static> {
    id: u64,
    post: Option<PendingPost>,
    /// The outcome's type, carried but never held: `fn() -> T` is `Send` whatever `T` is.
    value: PhantomData<fn() -> T>,
}

impl<T: Send + 'static> Promise<T> {
    fn new(id: u64, post: PendingPost) -> Self {
        Promise { id, post: Some(post), value: PhantomData }
    }

    fn keep(mut self, outcome: Outcome<T>) {
        self.post_outcome(outcome);
    }

    fn post_outcome(&mut self, outcome: Outcome<T>) {
        let Some(post) = self.post.take() else { return };
        let id = self.id;
        // A hub that shut down drops the outcome here; nothing waits for it any more.
        let _ = post.post(move || deliver(id, outcome));
    }
}

impl<T: Send + 'static> Drop for Promise<T> {
    fn drop(&mut self) {
        if self.post.is_some() {
            self.post_outcome(Err("the job was dropped without running".into()));
        }
    }
}

/// Runs on the hub's thread: stores the outcome for the handle and wakes its waiters, or drops
/// the outcome if the handle is gone.
fn deliver<T: 'static>(id: u64, outcome: Outcome<T>) {
    let slot = WAITING.try_with(|w| w.borrow_mut().remove(&id)).ok().flatten();
    let Some(slot) = slot.and_then(|weak| weak.upgrade()) else { return };
    if let Ok(slot) = slot.downcast::<Slot<T>>() {
        *slot.outcome.borrow_mut() = Some(outcome);
        slot.done.set();
    }
}

fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "a panic with a non-string payload".to_owned()
    }
}

/// A handle to a job on a [`ThreadPool`], for the greenlets of the thread that spawned it.
///
/// Waiting parks only the calling greenlet. Dropping the handle before the job finishes
/// neither cancels the job nor loses track of it: the job runs to its end and its result is
/// dropped when it reaches the hub.
pub struct ThreadResult<T> {
    slot: Rc<Slot<T>>,
    id: u64,
    spawned_at: &'static Location<'static>,
    /// False only if the spawning thread's registry was already destroyed (spawned during
    /// thread exit); the result then never arrives.
    registered: bool,
}

impl<T> fmt::Debug for ThreadResult<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ThreadResult")
            .field("id", &self.id)
            .field("spawned_at", &self.spawned_at)
            .field("ready", &self.ready())
            .finish()
    }
}

impl<T> ThreadResult<T> {
    /// The job's id, unique in the process; failures report it in place of a greenlet id.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// Whether the job's outcome has reached this thread (gevent's `ready()`).
    pub fn ready(&self) -> bool {
        self.slot.done.is_set()
    }

    /// Waits until the job has finished and its outcome has come back.
    pub fn join(&self) -> Result<(), Interrupted> {
        self.slot.done.wait()
    }

    /// [`join`](Self::join), waiting at most `timeout`: `Ok(false)` if the time ran out.
    pub fn join_timeout(&self, timeout: Duration) -> Result<bool, Interrupted> {
        self.slot.done.wait_timeout(timeout)
    }

    /// Waits for the job and moves its value out.
    ///
    /// Unlike [`Greenlet::get`](crate::Greenlet::get), the value is moved, not cloned (a
    /// result from another thread is usually used once): a second call fails with
    /// [`Error::Taken`]. A job that panicked fails every call with [`Error::Failed`], whose
    /// [`GreenletError`] has kind [`FailureKind::Panicked`] with the panic message, this
    /// job's [`id`](Self::id), the name [`JOB_NAME`], and the spawn site; a job that never ran
    /// (the pool could start no thread for it) fails the same way, the message saying why. A
    /// wait interrupted by a kill or a [`Timeout`](crate::Timeout) fails with
    /// [`Error::Interrupted`], and the job's value stays for a later call.
    pub fn get(&self) -> Result<T, Error> {
        self.join()?;
        self.try_get()
    }

    /// [`get`](Self::get), waiting at most `timeout`: [`Error::NotReady`] if the job's outcome
    /// has not come back by then.
    pub fn get_timeout(&self, timeout: Duration) -> Result<T, Error> {
        if !self.join_timeout(timeout)? {
            return Err(Error::NotReady);
        }
        self.try_get()
    }

    /// [`get`](Self::get) without waiting: [`Error::NotReady`] if the outcome has not come
    /// back yet.
    pub fn try_get(&self) -> Result<T, Error> {
        let mut outcome = self.slot.outcome.borrow_mut();
        match outcome.take() {
            None if self.ready() => Err(Error::Taken),
            None => Err(Error::NotReady),
            Some(Ok(value)) => Ok(value),
            Some(Err(why)) => {
                *outcome = Some(Err(why.clone()));
                Err(Error::Failed(GreenletError {
                    kind: FailureKind::Panicked(why),
                    id: self.id,
                    name: Cow::Borrowed(JOB_NAME),
                    spawned_at: self.spawned_at,
                }))
            }
        }
    }
}

impl<T> Drop for ThreadResult<T> {
    fn drop(&mut self) {
        if self.registered {
            // Ignored if the thread's registry is already destroyed: so is every entry in it.
            let _ = WAITING.try_with(|w| w.borrow_mut().remove(&self.id));
        }
    }
}

/// Runs `f` on the process's default pool: [`ThreadPool::spawn`] in one line.
///
/// The default pool is created on first use with at most
/// [`Config::threadpool_size`](crate::config::Config::threadpool_size) threads
/// (`GEVENT_THREADPOOL_SIZE`; by default four per available core, at least four), and lives as
/// long as the process.
///
/// # Panics
///
/// As [`config::current`](crate::config::current) does: if no configuration was installed and
/// a `GEVENT_*` variable holds an invalid value.
#[track_caller]
pub fn spawn_blocking<T, F>(f: F) -> ThreadResult<T>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    default_pool().spawn(f)
}

/// The pool [`spawn_blocking`] uses, created on first use with
/// [`Config::threadpool_size`](crate::config::Config::threadpool_size) threads at most.
///
/// # Panics
///
/// As [`config::current`](crate::config::current) does: if no configuration was installed and
/// a `GEVENT_*` variable holds an invalid value.
pub fn default_pool() -> &'static ThreadPool {
    static DEFAULT: OnceLock<ThreadPool> = OnceLock::new();
    DEFAULT.get_or_init(|| ThreadPool::new(crate::config::current().threadpool_size()))
}
