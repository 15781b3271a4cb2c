//! The process-wide half of signal handling: the C signal handler, the self-pipe it writes to,
//! and installing and restoring dispositions. Everything `unsafe` in [`signal`](super) is here.

#![allow(unsafe_code)] // sigaction, the handler itself, errno

use std::io;
use std::mem::MaybeUninit;
use std::os::fd::{IntoRawFd, OwnedFd};
use std::ptr;
use std::sync::atomic::{AtomicI32, AtomicU32, Ordering};

use libc::c_int;

/// One more than the highest signal number accepted: FreeBSD's real-time signals reach 126,
/// Linux's 64, the others' fewer. A number below it that the system does not know is refused
/// by `sigaction` itself.
pub(super) const SIGNAL_LIMIT: usize = 128;

/// Deliveries of each signal not yet taken by the dispatcher: the handler counts, the pipe
/// only wakes the dispatcher. So a delivery whose wake-up byte did not fit in a full pipe is
/// not lost (the bytes already there wake the dispatcher, which then reads every count).
static PENDING: [AtomicU32; SIGNAL_LIMIT] = [const { AtomicU32::new(0) }; SIGNAL_LIMIT];

/// The non-blocking write end of the self-pipe, or -1 before [`set_wake_fd`]. Set once and
/// never closed, so the handler never writes to a number that was closed and reused.
static WAKE_FD: AtomicI32 = AtomicI32::new(-1);

/// Makes the self-pipe: a blocking read end, for the dispatcher thread, and a non-blocking
/// write end for [`set_wake_fd`], so that the handler never blocks on a full pipe. Both are
/// closed in child processes.
pub(super) fn self_pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    #[cfg(not(target_vendor = "apple"))]
    let (reader, writer) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)?;
    // Apple's systems have no `pipe2`: a child spawned by another thread meanwhile may inherit
    // the ends, which is harmless (the child never writes to them).
    #[cfg(target_vendor = "apple")]
    let (reader, writer) = {
        let (reader, writer) = rustix::pipe::pipe()?;
        for fd in [&reader, &writer] {
            rustix::io::fcntl_setfd(fd, rustix::io::FdFlags::CLOEXEC)?;
        }
        (reader, writer)
    };
    // The two ends are separate open files, so this leaves the read end blocking.
    rustix::io::ioctl_fionbio(&writer, true)?;
    Ok((reader, writer))
}

/// Hands the write end of the self-pipe to the handler, for the life of the process: the
/// descriptor is never closed (only `unsafe` code that breaks I/O safety could close it).
pub(super) fn set_wake_fd(writer: OwnedFd) {
    WAKE_FD.store(writer.into_raw_fd(), Ordering::SeqCst);
}

/// Takes the deliveries of `signum` counted since the last call.
pub(super) fn take_pending(signum: usize) -> u32 {
    PENDING[signum].swap(0, Ordering::SeqCst)
}

/// The signal handler: counts the delivery and writes one byte to the self-pipe. It only
/// touches lock-free atomics and calls `write(2)`, which POSIX lists as async-signal-safe, and
/// it restores `errno`, which `write` may change under the code it interrupted.
extern "C" fn on_signal(signum: c_int) {
    let saved = crate::errno::get();
    if let Some(count) = usize::try_from(signum).ok().and_then(|s| PENDING.get(s)) {
        count.fetch_add(1, Ordering::SeqCst);
    }
    let fd = WAKE_FD.load(Ordering::SeqCst);
    if fd >= 0 {
        let byte = signum as u8; // a hint only: the dispatcher reads the counts
        // SAFETY: `fd` is the self-pipe's write end, which is never closed (see `WAKE_FD`), so
        // it names that pipe whatever other threads do; `byte` lives on this stack for the
        // call. A full pipe fails with EAGAIN, which is fine: the count above is what matters,
        // and the bytes already in the pipe wake the dispatcher.
        unsafe { libc::write(fd, (&raw const byte).cast(), 1) };
    }
    crate::errno::set(saved);
}

/// Signals whose handler may not return: they report a fault of the running code, and a
/// handler that returns resumes the faulting instruction (POSIX leaves that undefined). This
/// crate also reports greenlet stack overflows through SIGSEGV and SIGBUS.
pub(super) const FAULTS: [c_int; 4] = [libc::SIGSEGV, libc::SIGBUS, libc::SIGILL, libc::SIGFPE];

/// A disposition to put back: what `sigaction` reported for `signum` before ours was
/// installed. Only [`install`] makes one, so it always matches its signal.
pub(super) struct Previous {
    signum: c_int,
    action: libc::sigaction,
}

// SAFETY: a `sigaction` is plain data (a handler address, flags and a signal set); it points
// to nothing owned by a thread, and is only handed back to `sigaction`.
unsafe impl Send for Previous {}

fn empty_action() -> libc::sigaction {
    // SAFETY: `sigaction` is a plain C struct, for which all-zero bytes is a valid value
    // (SIG_DFL, no flags, an empty mask on every supported system).
    unsafe { MaybeUninit::zeroed().assume_init() }
}

/// The current disposition of `signum`; fails with EINVAL for a number the system does not
/// know (or reserves, as glibc does 32 and 33).
pub(super) fn query(signum: c_int) -> io::Result<()> {
    let mut current = empty_action();
    // SAFETY: a null new action only reads the disposition, changing nothing; `current` is a
    // valid place for the kernel to write it.
    match unsafe { libc::sigaction(signum, ptr::null(), &mut current) } {
        0 => Ok(()),
        _ => Err(io::Error::last_os_error()),
    }
}

/// Installs [`on_signal`] for `signum` and returns the disposition it replaced. Refuses the
/// [`FAULTS`] with `InvalidInput`.
///
/// `SA_RESTART` keeps the signal from failing other threads' blocking calls with EINTR;
/// `SA_ONSTACK` runs the handler on the thread's alternate stack when it has one (the stack
/// overflow reporter installs one), not on a greenlet's small stack.
pub(super) fn install(signum: c_int) -> io::Result<Previous> {
    if FAULTS.contains(&signum) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("signal {signum} reports a fault and cannot be handled by a returning handler"),
        ));
    }
    let mut action = empty_action();
    action.sa_sigaction = on_signal as extern "C" fn(c_int) as libc::sighandler_t;
    action.sa_flags = libc::SA_RESTART | libc::SA_ONSTACK;
    let mut previous = empty_action();
    // SAFETY: `sigemptyset` initialises the mask it is given. `on_signal` is async-signal-safe
    // (see its docs) and valid for the life of the process, on every thread, at any moment, so
    // installing it cannot make any code unsound. The signals whose handler may not return
    // were refused above, whoever calls; `previous` is a valid place for the old disposition.
    let result = unsafe {
        libc::sigemptyset(&mut action.sa_mask);
        libc::sigaction(signum, &action, &mut previous)
    };
    match result {
        0 => Ok(Previous { signum, action: previous }),
        _ => Err(io::Error::last_os_error()),
    }
}

/// Puts back the disposition [`install`] replaced, once.
pub(super) fn restore(previous: Previous) {
    // SAFETY: `previous.action` is exactly what `sigaction` reported for `previous.signum`
    // before `install` (only `install` makes a `Previous`, and it cannot be reused): putting it
    // back leaves that signal as it was, handler and flags alike (a handler someone else
    // installed was valid then and, being code, still is). It is never a fault signal, which
    // `install` refuses.
    unsafe { libc::sigaction(previous.signum, &previous.action, ptr::null_mut()) };
}

/// Sends `signum` to this process: `kill(getpid(), signum)`.
pub(super) fn kill_self(signum: c_int) -> io::Result<()> {
    // SAFETY: `kill` and `getpid` take plain integers and touch no memory of ours; a signal
    // whose disposition is to end the process ends it, which is not a memory-safety matter.
    match unsafe { libc::kill(libc::getpid(), signum) } {
        0 => Ok(()),
        _ => Err(io::Error::last_os_error()),
    }
}
