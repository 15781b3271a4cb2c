//! Child processes run cooperatively (gevent's `gevent.subprocess`), shaped like
//! [`std::process`]: waiting for a child, reading and writing its pipes, [`Command::output`]
//! and [`Child::communicate`] park only the calling greenlet.
//!
//! ```
//! use std::os::unix::process::ExitStatusExt;
//! use gevent::process::{Command, Stdio};
//!
//! let mut child = Command::new("sh")
//!     .args(["-c", "tr a-z A-Z; exit 3"])
//!     .stdin(Stdio::piped())
//!     .stdout(Stdio::piped())
//!     .spawn()?;
//! let output = child.communicate(Some(b"hello"), None)?;
//! assert_eq!(output.stdout, b"HELLO");
//! assert_eq!(output.status.code(), Some(3));
//! assert_eq!(output.status.signal(), None);
//! # std::io::Result::Ok(())
//! ```
//!
//! # How
//!
//! The process is started by [`std::process::Command`] (which forks or `posix_spawn`s and
//! reports a failed `exec`, such as a program that does not exist giving
//! [`io::ErrorKind::NotFound`]); starting it blocks the thread for that short time. Our ends of
//! its pipes are then made non-blocking and registered with the hub. The exit is waited for
//! with a pidfd on Linux and with kqueue's `EVFILT_PROC` on macOS and the BSDs, both registered
//! with the hub like a socket (see below for the rest). The child is reaped by std, so
//! [`ExitStatus`] and [`Output`] are std's own types and
//! [`ExitStatusExt`](std::os::unix::process::ExitStatusExt) tells a signal from an exit code.
//!
//! # Waiting without a pidfd or kqueue
//!
//! Where Linux has no pidfd (before 5.3, or in a sandbox that refuses `pidfd_open`), and on
//! Android, a waiting greenlet looks at its child after each `SIGCHLD`, which the hub catches
//! through [`gevent::signal`](crate::signal) (one [`signal_handler`](crate::signal::signal_handler)
//! per hub, and the signal module's one thread per process) while at least one of its
//! greenlets waits that way. Each look is a `waitpid` of that child alone, so the children of
//! other code are left to it. While such a wait lasts, a `SIGCHLD` handler the program had
//! installed itself is replaced by ours, as the [signal module](crate::signal#dispositions)
//! describes; it is put back when the last wait ends. Otherwise no `SIGCHLD` handler is
//! installed; the signal is left to the application.
//!

mod child;
mod exit;
mod pipes;
#[cfg(all(test, target_os = "linux"))]
mod sigchld_tests;

use std::ffi::OsStr;
use std::fmt;
use std::io;
use std::path::Path;

pub use child::Child;
pub use pipes::{ChildStderr, ChildStdin, ChildStdout};
pub use std::process::{ExitStatus, Output, Stdio};

/// A process to start, shaped like [`std::process::Command`] (arguments, environment, working
/// directory, standard streams), whose [`Child`] is waited for and talked to cooperatively.
///
/// The standard streams default to inherited for [`spawn`](Self::spawn) and
/// [`status`](Self::status); [`output`](Self::output) pipes stdout and stderr and gives the
/// child no input unless told otherwise, as std does.
pub struct Command {
    inner: std::process::Command,
    stdin_set: bool,
    stdout_set: bool,
    stderr_set: bool,
}

impl Command {
    /// A command that runs `program`, looked up in `PATH` if it has no slash.
    pub fn new(program: impl AsRef<OsStr>) -> Command {
        Command {
            inner: std::process::Command::new(program),
            stdin_set: false,
            stdout_set: false,
            stderr_set: false,
        }
    }

    /// Adds an argument.
    pub fn arg(&mut self, arg: impl AsRef<OsStr>) -> &mut Command {
        self.inner.arg(arg);
        self
    }

    /// Adds arguments.
    pub fn args<I, S>(&mut self, args: I) -> &mut Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.inner.args(args);
        self
    }

    /// Sets an environment variable for the child.
    pub fn env(&mut self, key: impl AsRef<OsStr>, val: impl AsRef<OsStr>) -> &mut Command {
        self.inner.env(key, val);
        self
    }

    /// Sets environment variables for the child.
    pub fn envs<I, K, V>(&mut self, vars: I) -> &mut Command
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<OsStr>,
        V: AsRef<OsStr>,
    {
        self.inner.envs(vars);
        self
    }

    /// Removes an environment variable from the child's environment.
    pub fn env_remove(&mut self, key: impl AsRef<OsStr>) -> &mut Command {
        self.inner.env_remove(key);
        self
    }

    /// Starts the child with an empty environment (plus what [`env`](Self::env) adds).
    pub fn env_clear(&mut self) -> &mut Command {
        self.inner.env_clear();
        self
    }

    /// Sets the child's working directory.
    pub fn current_dir(&mut self, dir: impl AsRef<Path>) -> &mut Command {
        self.inner.current_dir(dir);
        self
    }

    /// Sets the child's standard input; `Stdio::piped()` gives [`Child::stdin`].
    pub fn stdin(&mut self, cfg: impl Into<Stdio>) -> &mut Command {
        self.inner.stdin(cfg);
        self.stdin_set = true;
        self
    }

    /// Sets the child's standard output; `Stdio::piped()` gives [`Child::stdout`].
    pub fn stdout(&mut self, cfg: impl Into<Stdio>) -> &mut Command {
        self.inner.stdout(cfg);
        self.stdout_set = true;
        self
    }

    /// Sets the child's standard error; `Stdio::piped()` gives [`Child::stderr`].
    pub fn stderr(&mut self, cfg: impl Into<Stdio>) -> &mut Command {
        self.inner.stderr(cfg);
        self.stderr_set = true;
        self
    }

    /// The std command inside, for what this type does not wrap (such as
    /// [`CommandExt`](std::os::unix::process::CommandExt)'s `uid`, `process_group`,
    /// `pre_exec`). Standard streams set through it are seen by `spawn` but not by `output`'s
    /// defaults.
    pub fn as_std_mut(&mut self) -> &mut std::process::Command {
        &mut self.inner
    }

    /// Starts the child. Fails like std's `spawn` (a program that does not exist gives
    /// [`io::ErrorKind::NotFound`]), or if the hub refuses the child's pipes (the child is
    /// then killed and reaped).
    pub fn spawn(&mut self) -> io::Result<Child> {
        Child::adopt(self.inner.spawn()?)
    }

    /// Starts the child, waits for it and collects its output: stdout and stderr are piped
    /// and stdin reads nothing unless set otherwise.
    pub fn output(&mut self) -> io::Result<Output> {
        let defaults = [!self.stdin_set, !self.stdout_set, !self.stderr_set];
        if defaults[0] {
            self.inner.stdin(Stdio::null());
        }
        if defaults[1] {
            self.inner.stdout(Stdio::piped());
        }
        if defaults[2] {
            self.inner.stderr(Stdio::piped());
        }
        let spawned = self.spawn();
        // Those defaults are `output`'s alone: put back `spawn`'s.
        if defaults[0] {
            self.inner.stdin(Stdio::inherit());
        }
        if defaults[1] {
            self.inner.stdout(Stdio::inherit());
        }
        if defaults[2] {
            self.inner.stderr(Stdio::inherit());
        }
        spawned?.wait_with_output()
    }

    /// Starts the child and waits for it to exit.
    pub fn status(&mut self) -> io::Result<ExitStatus> {
        self.spawn()?.wait()
    }
}

impl fmt::Debug for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.inner, f)
    }
}
