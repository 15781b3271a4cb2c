//! Taking a blocked hub's stack from the monitor thread: a real-time signal to the hub's
//! thread, whose handler fills gevent-core's [`FrameSlot`] with return addresses; the monitor
//! waits a bounded time for them and symbolizes them.
#![allow(unsafe_code)] // sigaction, pthread_kill, the handler's stack walk

use std::time::Duration;

use gevent_core::hub::heartbeat::capture::{FrameSlot, MAX_FRAMES, Request};

/// The signal the monitor sends a blocked hub's thread for its stack: `SIGRTMAX - 3` on Linux
/// and Android (0 elsewhere: no stacks are taken). Installed, with `SA_RESTART`, when the
/// monitor starts, unless the program already handles it.
#[cfg(any(target_os = "linux", target_os = "android"))]
pub static BACKTRACE_SIGNAL: std::sync::LazyLock<i32> =
    std::sync::LazyLock::new(|| libc::SIGRTMAX() - 3);

/// The signal the monitor sends a blocked hub's thread for its stack: none on this system.
#[cfg(not(any(target_os = "linux", target_os = "android")))]
pub static BACKTRACE_SIGNAL: std::sync::LazyLock<i32> = std::sync::LazyLock::new(|| 0);

/// How long the monitor waits for the handler's frames before reporting without them.
pub const CAPTURE_WAIT: Duration = Duration::from_millis(100);

/// The one buffer: the monitor takes one stack at a time.
static SLOT: FrameSlot = FrameSlot::new();

/// Whether our handler is installed.
static INSTALLED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// A thread to signal.
#[derive(Clone, Copy)]
pub(super) struct ThreadId(libc::pthread_t);

impl ThreadId {
    pub(super) fn current() -> Self {
        // SAFETY: pthread_self has no preconditions.
        ThreadId(unsafe { libc::pthread_self() })
    }

    /// The slot's opaque id of the thread.
    fn token(self) -> usize {
        self.0 as usize
    }
}

/// Installs the handler unless the signal is already handled.
pub(super) fn install_handler() {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        let signum = *BACKTRACE_SIGNAL;
        // SAFETY: a zeroed `sigaction` is valid; the fields set below make it our handler,
        // with an empty mask.
        let mut action: libc::sigaction = unsafe { std::mem::zeroed() };
        let handler: extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void) = handler;
        action.sa_sigaction = handler as *const () as usize;
        // Not SA_ONSTACK: std's alternate signal stack (SIGSTKSZ) is too small for the unwinder,
        // which overflowed it and killed the process when tried. On the interrupted stack, a
        // greenlet near the end of its stack that overflows in the walk hits its guard page.
        action.sa_flags = libc::SA_SIGINFO | libc::SA_RESTART;
        // SAFETY: `action.sa_mask` is a valid `sigset_t` to initialize.
        unsafe { libc::sigemptyset(&mut action.sa_mask) };
        // SAFETY: as above, a zeroed `sigaction` is a valid value for the kernel to overwrite.
        let mut old: libc::sigaction = unsafe { std::mem::zeroed() };
        // One call swaps the dispositions, so no other thread's handler can be installed
        // between a check and ours and then be overwritten unseen.
        // SAFETY: `action` is a fully initialized disposition whose handler is an
        // `extern "C" fn(c_int, *mut siginfo_t, *mut c_void)`, as SA_SIGINFO requires, and is
        // async-signal-safe to the extent the module docs say (a signal it gets that the
        // monitor did not ask for finds the slot not armed for its thread and does nothing);
        // `old` is valid for writes.
        if unsafe { libc::sigaction(signum, &action, &mut old) } != 0 {
            return;
        }
        if old.sa_sigaction != libc::SIG_DFL {
            // Someone else's signal: give it back; no stacks rather than a stolen signal.
            // SAFETY: `old` is the disposition the kernel just handed back, unchanged.
            unsafe { libc::sigaction(signum, &old, std::ptr::null_mut()) };
            return;
        }
        INSTALLED.store(true, std::sync::atomic::Ordering::Release);
    }
}

/// Runs on the interrupted thread: records its return addresses if the monitor asked for this
/// thread's. No allocation, no lock, `errno` preserved.
#[cfg(any(target_os = "linux", target_os = "android"))]
extern "C" fn handler(_: libc::c_int, _: *mut libc::siginfo_t, _: *mut libc::c_void) {
    let errno = crate::errno::get();
    SLOT.fill(ThreadId::current().token(), |push| {
        // SAFETY: `trace_unsynchronized` requires that no other thread walks a stack with it
        // at the same time. The callback only stores into the slot, and the slot's state word
        // lets one handler at a time in (`fill` returns before calling this otherwise); the
        // monitor itself never walks stacks. Its async-signal caveat is in the module docs.
        unsafe {
            backtrace::trace_unsynchronized(|frame| push(frame.ip() as usize));
        }
    });
    crate::errno::set(errno);
}

/// Asks `thread` for its stack: `None` if no handler is installed, the slot is still busy
/// with a withdrawn request, or the signal could not be sent. Called with the monitor's lock
/// held, which keeps `thread` from exiting.
pub(super) fn request(thread: ThreadId) -> Option<Request<'static>> {
    if !INSTALLED.load(std::sync::atomic::Ordering::Acquire) {
        return None;
    }
    let request = SLOT.arm(thread.token())?;
    // SAFETY: `thread` is alive: its entry exists, and a thread removes its entry (under the
    // lock our caller holds) before it exits. The signal's handler is installed.
    if unsafe { libc::pthread_kill(thread.0, *BACKTRACE_SIGNAL) } != 0 {
        SLOT.withdraw(request);
        return None;
    }
    Some(request)
}

/// Waits up to [`CAPTURE_WAIT`] for the frames, then symbolizes them, skipping the handler's
/// own frames.
pub(super) fn collect(mut request: Request<'static>) -> Option<Vec<String>> {
    let mut ips = [0usize; MAX_FRAMES];
    let deadline = std::time::Instant::now() + CAPTURE_WAIT;
    let n = loop {
        match SLOT.collect(request, &mut ips) {
            Ok(n) => break n,
            Err(back) if std::time::Instant::now() < deadline => {
                request = back;
                std::thread::sleep(Duration::from_millis(1));
            }
            Err(back) => {
                SLOT.withdraw(back);
                return None;
            }
        }
    };
    let frames: Vec<(usize, Vec<String>)> =
        ips[..n].iter().map(|&ip| (ip, symbolize(ip))).collect();
    // The handler's own frames, then the kernel's signal trampoline, come first.
    let start = frames
        .iter()
        .rposition(|(_, names)| names.iter().any(|name| name.contains("monitor::capture::handler")))
        .map_or(0, |i| i + 2);
    // A greenlet's stack ends at its entry trampoline (gevent-core's own, or corosensei's on
    // the architectures it switches on); what an unwinder might find past it is the hub loop
    // that resumed the greenlet, on the thread's own stack.
    let end = frames
        .iter()
        .position(|(_, names)| {
            names.iter().any(|name| {
                name.contains("stack_init_trampoline")
                    || (name.contains("hub::switch::arch::") && name.contains("::trampoline"))
            })
        })
        .unwrap_or(frames.len())
        .max(start);
    Some(
        frames[start..end]
            .iter()
            .flat_map(
                |(ip, names)| {
                    if names.is_empty() { vec![format!("{ip:#x}")] } else { names.clone() }
                },
            )
            .collect(),
    )
}

/// The function (and inlined functions) at return address `ip`, with file and line when known.
fn symbolize(ip: usize) -> Vec<String> {
    let mut names = Vec::new();
    backtrace::resolve(ip as *mut std::ffi::c_void, |symbol| {
        let name = symbol.name().map_or_else(|| format!("{ip:#x}"), |n| format!("{n:#}"));
        match (symbol.filename(), symbol.lineno()) {
            (Some(file), Some(line)) => names.push(format!("{name} at {}:{line}", file.display())),
            _ => names.push(name),
        }
    });
    names
}
