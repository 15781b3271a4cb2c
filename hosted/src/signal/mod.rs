//! Signals, handled cooperatively (gevent's `gevent.signal_handler` and waiting for a signal):
//! [`wait`] parks the greenlet until a signal arrives, [`signal_handler`] runs a function in a
//! new greenlet for each delivery until its [`Guard`] is dropped. Signal numbers are plain
//! `i32`s, as `libc` spells them; the usual ones are re-exported here ([`SIGUSR1`], ...).
//!
//! ```
//! use gevent::signal;
//!
//! let raiser = gevent::spawn(|| signal::raise(signal::SIGUSR1));
//! signal::wait(signal::SIGUSR1)?; // the raiser runs while this waits
//! raiser.take().unwrap()?;
//! # std::io::Result::Ok(())
//! ```
//!
//! # Dispositions
//!
//! While something waits for a signal or handles it (a [`wait`] in progress or a live
//! [`Guard`]), the signal is caught; when the last one goes, the disposition it had before is
//! put back: the default one, usually (SIGTERM ends the process again, SIGCHLD is ignored
//! again), or whatever the program had set before. So a signal that comes between two calls
//! of [`wait`] gets that disposition: keep a [`Guard`] for the signal alive across the calls
//! to catch every delivery. Another library that installs its own handler for the same signal
//! meanwhile is replaced by ours while we catch it.
//!
//! Refused with [`InvalidInput`](io::ErrorKind::InvalidInput): SIGKILL and SIGSTOP, which
//! nothing can catch; SIGSEGV, SIGBUS, SIGILL and SIGFPE, which report a fault of the running
//! code (a handler that returns resumes the faulting instruction, and this crate reports
//! greenlet stack overflows through SIGSEGV and SIGBUS); and numbers the system does not know
//! (glibc's reserved 32 and 33 among them).
//!
//! # Several deliveries, several threads
//!
//! Deliveries of one signal that come before they are dispatched may merge into one: POSIX
//! keeps at most one pending instance of a standard signal, and a [`wait`] is woken once
//! however many came. A handler runs once per delivery that the process's handler saw.
//!
//! Every hub, on any thread, can wait for and handle signals: each delivery goes to every
//! [`wait`] and every [`Guard`] for that signal, in whichever thread's hub they were made. A
//! waiting [`wait`] or a live [`Guard`] keeps its hub waiting for the signal, as an open
//! server does: [`gevent::wait()`](fn@crate::wait) does not return, nor does a wait for
//! something only a handler provides fail as waiting forever, while they live.
//!
//! # How
//!
//! The process's handler (installed with `sigaction`) only counts the delivery and writes a
//! byte to a non-blocking self-pipe. One thread per process, started at the first use, reads
//! the pipe and posts each delivery to the hubs that want it, through their
//! [`HubHandle`]s; there it wakes the waiters and spawns the handlers. One
//! reader serves every hub: a pipe read by several hubs would wake them all and let one take
//! the byte the others needed.
//!
//! Linux's `signalfd` would save the pipe, but only works for a signal blocked in every thread
//! of the process (otherwise the kernel may deliver it to a thread that does not block it, with
//! the old disposition). A library cannot guarantee that: threads started earlier, or by other
//! libraries, keep their masks, and blocked signals are inherited by child processes. The
//! self-pipe works whatever the masks are.
//!
//! A process forked (without exec) while signals are caught keeps our handler but not the
//! dispatcher thread: the child's deliveries are counted and never dispatched.
//!
//! # SIGCHLD
//!
//! [`wait`] and [`signal_handler`] work for [`SIGCHLD`], which the kernel sends when a child
//! process exits (or stops or continues). Deliveries merge, so one SIGCHLD may stand for
//! several children: a subprocess module holds a [`Guard`] for SIGCHLD while it has children
//! (catching every exit, not only those during a wait), and on each delivery reaps every child
//! of its own that has exited with a non-blocking `waitpid(pid, WNOHANG)`, never `waitpid(-1)`,
//! which would reap other code's children too.

mod handler;

use std::cell::RefCell;
use std::collections::HashMap;
use std::fmt;
use std::io;
use std::marker::PhantomData;
use std::os::fd::OwnedFd;
use std::rc::Rc;
use std::sync::{Mutex, MutexGuard, PoisonError};

use gevent_core::event::Event;
use gevent_core::{HubHandle, PendingPost};
use rustix::io::Errno;

use handler::{Previous, SIGNAL_LIMIT};

pub use libc::{
    SIGALRM, SIGCHLD, SIGCONT, SIGHUP, SIGINT, SIGPIPE, SIGQUIT, SIGTERM, SIGTSTP, SIGTTIN,
    SIGTTOU, SIGURG, SIGUSR1, SIGUSR2, SIGWINCH,
};

/// Parks the current greenlet until the signal `signum` arrives (other greenlets run
/// meanwhile). See the [module documentation](self) for the signals refused and for the
/// disposition between calls.
///
/// A kill or a hub [`Timeout`](crate::Timeout) ends the wait with an error carrying the
/// [`Interrupted`](crate::Interrupted), as [`io::wait_readable`](crate::io::wait_readable)
/// describes.
pub fn wait(signum: i32) -> io::Result<()> {
    let arrived = Rc::new(Event::new());
    let _subscribed = Subscription::new(signum, Action::Wake(arrived.clone()))?;
    arrived.wait().map_err(io::Error::from)
}

/// Runs `handler` in a new greenlet of the current thread's hub each time the signal `signum`
/// arrives, until the returned [`Guard`] is dropped (gevent's `signal_handler`). See the
/// [module documentation](self) for the signals refused and for deliveries that merge.
///
/// ```
/// use std::rc::Rc;
/// use gevent::{event::Event, signal};
///
/// let handled = Rc::new(Event::new());
/// let h = handled.clone();
/// let guard = signal::signal_handler(signal::SIGUSR2, move || h.set())?;
/// signal::raise(signal::SIGUSR2)?;
/// handled.wait().unwrap();
/// drop(guard); // SIGUSR2 has its default disposition again
/// # std::io::Result::Ok(())
/// ```
pub fn signal_handler(signum: i32, handler: impl Fn() + 'static) -> io::Result<Guard> {
    let subscription = Subscription::new(signum, Action::Run(Rc::new(handler)))?;
    Ok(Guard { _subscription: subscription })
}

/// Sends the signal `signum` to this process (`kill(getpid(), signum)`, Python's
/// `os.kill(os.getpid(), signum)`): any thread that does not block it may take it.
pub fn raise(signum: i32) -> io::Result<()> {
    handler::kill_self(signum)
}

/// A handler installed by [`signal_handler`]; dropping it removes the handler, and puts back
/// the disposition the signal had before if nothing else catches it.
///
/// It belongs to the thread that made it (it is neither `Send` nor `Sync`).
pub struct Guard {
    _subscription: Subscription,
}

impl fmt::Debug for Guard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Guard").field("signum", &self._subscription.signum).finish()
    }
}

/// What a delivery does in the hub that asked for it.
#[derive(Clone)]
enum Action {
    /// Wakes a [`wait`].
    Wake(Rc<Event>),
    /// Runs a [`signal_handler`]'s function.
    Run(Rc<dyn Fn()>),
}

thread_local! {
    /// The actions of this thread's subscriptions, by id: what a posted delivery looks up.
    static ACTIONS: RefCell<HashMap<u64, Action>> = RefCell::new(HashMap::new());
}

/// Interest in one signal from one hub, registered process-wide while it lives.
struct Subscription {
    id: u64,
    signum: i32,
    /// Its action lives in this thread's [`ACTIONS`].
    _this_thread: PhantomData<*const ()>,
}

impl Subscription {
    fn new(signum: i32, action: Action) -> io::Result<Self> {
        let index = check(signum)?;
        let each_delivery = matches!(action, Action::Run(_));
        // Made on the hub's thread, before the hub could find nothing to wait for.
        let hub = gevent_core::hub_handle();
        let keeps_hub_waiting = hub.pending_post();
        // Declared before the lock, so dropped after it: their promises wake their hubs.
        let removed;
        let mut registry = registry();
        registry.start_dispatcher()?;
        // Deliveries counted before this subscription go to those made before it (none if the
        // signal is not caught yet: they came under the disposition we are replacing), so a
        // subscription never gets a delivery from before it, as the dispatcher then sees it.
        removed = registry.flush(index);
        if registry.installed[index].is_none() {
            let previous = handler::install(signum).map_err(|e| {
                io::Error::new(e.kind(), format!("cannot catch signal {signum}: {e}"))
            })?;
            registry.installed[index] = Some(previous);
        }
        let id = registry.next_id;
        registry.next_id += 1;
        ACTIONS.with(|actions| actions.borrow_mut().insert(id, action));
        registry.subscribers.push(Subscriber {
            id,
            signum: index,
            each_delivery,
            hub,
            _keeps_hub_waiting: keeps_hub_waiting,
        });
        drop(registry);
        drop(removed);
        Ok(Subscription { id, signum, _this_thread: PhantomData })
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        // Gone already if the thread is exiting.
        let _ = ACTIONS.try_with(|actions| actions.borrow_mut().remove(&self.id));
        let removed = registry().remove(self.id);
        drop(removed); // its promise wakes the hub: outside the lock
    }
}

/// Checks that `signum` may be caught, and returns its index in the tables.
fn check(signum: i32) -> io::Result<usize> {
    let refuse = |why: &str| {
        Err(io::Error::new(io::ErrorKind::InvalidInput, format!("signal {signum} {why}")))
    };
    if signum == libc::SIGKILL || signum == libc::SIGSTOP {
        return refuse("cannot be caught or ignored");
    }
    if handler::FAULTS.contains(&signum) {
        return refuse("reports a fault of the running code and cannot be handled in a greenlet");
    }
    let index = usize::try_from(signum).ok().filter(|&i| (1..SIGNAL_LIMIT).contains(&i));
    let Some(index) = index else { return refuse("is not a signal number") };
    match handler::query(signum) {
        Ok(()) => Ok(index),
        Err(e) if e.raw_os_error() == Some(Errno::INVAL.raw_os_error()) => {
            refuse("is not a signal this system lets programs catch")
        }
        Err(e) => Err(e),
    }
}

/// A subscription as the dispatcher thread sees it.
struct Subscriber {
    id: u64,
    signum: usize,
    /// A handler runs once per delivery; a waiter is woken once.
    each_delivery: bool,
    hub: HubHandle,
    /// Keeps the hub from deciding that nothing can wake its greenlets while a signal may.
    _keeps_hub_waiting: PendingPost,
}

/// Who wants which signal, process-wide.
struct Registry {
    dispatcher_started: bool,
    next_id: u64,
    subscribers: Vec<Subscriber>,
    /// The disposition replaced by ours, for each signal we catch.
    installed: [Option<Previous>; SIGNAL_LIMIT],
}

static REGISTRY: Mutex<Registry> = Mutex::new(Registry {
    dispatcher_started: false,
    next_id: 0,
    subscribers: Vec::new(),
    installed: [const { None }; SIGNAL_LIMIT],
});

/// The registry; no code panics while holding it, and it stays consistent if one did.
fn registry() -> MutexGuard<'static, Registry> {
    REGISTRY.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Registry {
    /// Makes the self-pipe and starts the thread reading it, once per process.
    fn start_dispatcher(&mut self) -> io::Result<()> {
        if self.dispatcher_started {
            return Ok(());
        }
        let (reader, writer) = handler::self_pipe()?;
        std::thread::Builder::new()
            .name("gevent-signal".into())
            .spawn(move || dispatch(reader))
            .map_err(|e| {
                io::Error::new(e.kind(), format!("cannot start the signal dispatcher thread: {e}"))
            })?;
        handler::set_wake_fd(writer);
        self.dispatcher_started = true;
        Ok(())
    }

    /// Removes subscriber `id` (if still there) and returns it, putting back the signal's
    /// previous disposition if it was the last to want it.
    fn remove(&mut self, id: u64) -> Option<Subscriber> {
        let at = self.subscribers.iter().position(|s| s.id == id)?;
        let removed = self.subscribers.swap_remove(at);
        let signum = removed.signum;
        if !self.subscribers.iter().any(|s| s.signum == signum) {
            if let Some(previous) = self.installed[signum].take() {
                handler::restore(previous);
            }
        }
        Some(removed)
    }

    /// Posts the deliveries of `signum` counted so far to the subscribers there are now, and
    /// returns those whose hub shut down, removed (to be dropped outside the lock). The count
    /// is only ever taken here, under the lock, so every delivery goes to exactly the
    /// subscribers registered when it was taken.
    fn flush(&mut self, signum: usize) -> Vec<Subscriber> {
        let deliveries = handler::take_pending(signum);
        if deliveries == 0 {
            return Vec::new();
        }
        let mut gone = Vec::new();
        for subscriber in self.subscribers.iter().filter(|s| s.signum == signum) {
            let posts = if subscriber.each_delivery { deliveries } else { 1 };
            let id = subscriber.id;
            for _ in 0..posts {
                if subscriber.hub.post(move || deliver(id)).is_err() {
                    gone.push(id); // its hub shut down
                    break;
                }
            }
        }
        gone.into_iter().filter_map(|id| self.remove(id)).collect()
    }
}

/// The dispatcher thread: waits for wake-up bytes, then posts each counted delivery to the
/// hubs that want it.
fn dispatch(reader: OwnedFd) {
    let mut wake_ups = [0; 64];
    loop {
        match rustix::io::read(&reader, &mut wake_ups) {
            Ok(0) => return, // impossible: the write end is never closed
            Ok(_) | Err(Errno::INTR) => {}
            Err(e) => {
                eprintln!("gevent: the signal dispatcher stopped: reading its pipe failed: {e}");
                return;
            }
        }
        let mut registry = registry();
        let removed: Vec<_> = (1..SIGNAL_LIMIT).flat_map(|signum| registry.flush(signum)).collect();
        drop(registry);
        drop(removed);
    }
}

/// Runs in a new greenlet of the subscriber's hub.
fn deliver(id: u64) {
    let action = ACTIONS.try_with(|actions| actions.borrow().get(&id).cloned()).ok().flatten();
    match action {
        Some(Action::Wake(arrived)) => arrived.set(),
        Some(Action::Run(handler)) => handler(),
        None => {} // removed since it was posted
    }
}
