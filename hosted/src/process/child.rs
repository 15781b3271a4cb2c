//! A running child process, waited for and talked to cooperatively.

use std::fmt;
use std::io;
use std::mem;
use std::os::fd::OwnedFd;
use std::process::{ExitStatus, Output};
use std::time::Duration;

use gevent_core::Timeout;
use gevent_core::hub::IoRegistration;
use gevent_core::platform::Interest;
use rustix::io::Errno;

use super::exit::ExitWatch;
use super::pipes::{ChildStderr, ChildStdin, ChildStdout, adopt};

/// A child process started by [`Command::spawn`](super::Command::spawn), shaped like
/// [`std::process::Child`]: its pipes are the public fields, and every wait parks only the
/// calling greenlet.
///
/// Like std's, dropping a `Child` neither kills nor waits for it: wait for it (or
/// [`kill`](Self::kill) and wait) so that it is reaped.
///
/// A `Child` belongs to the hub of the thread that spawned it.
pub struct Child {
    /// The writing end of the child's standard input, if it was `Stdio::piped()`.
    pub stdin: Option<ChildStdin>,
    /// The reading end of the child's standard output, if it was `Stdio::piped()`.
    pub stdout: Option<ChildStdout>,
    /// The reading end of the child's standard error, if it was `Stdio::piped()`.
    pub stderr: Option<ChildStderr>,
    inner: std::process::Child,
    exit: Option<ExitWatch>,
    exchanged: Exchanged,
}

/// What [`Child::communicate`] has done so far, kept across a call that timed out or was
/// interrupted so that the next call loses nothing.
#[derive(Default)]
struct Exchanged {
    input_written: usize,
    stdout: Vec<u8>,
    stderr: Vec<u8>,
}

impl Child {
    pub(super) fn adopt(mut inner: std::process::Child) -> io::Result<Child> {
        let pipes = (|| -> io::Result<_> {
            let stdin = inner.stdin.take().map(|p| adopt(OwnedFd::from(p))).transpose()?;
            let stdout = inner.stdout.take().map(|p| adopt(OwnedFd::from(p))).transpose()?;
            let stderr = inner.stderr.take().map(|p| adopt(OwnedFd::from(p))).transpose()?;
            Ok((stdin, stdout, stderr))
        })();
        let (stdin, stdout, stderr) = match pipes {
            Ok(pipes) => pipes,
            Err(e) => {
                // The caller gets no `Child` to reap it with: do it here. After SIGKILL the
                // blocking wait is short.
                let _ = inner.kill();
                let _ = inner.wait();
                return Err(e);
            }
        };
        Ok(Child {
            stdin: stdin.map(|registration| ChildStdin { registration }),
            stdout: stdout.map(|registration| ChildStdout { registration }),
            stderr: stderr.map(|registration| ChildStderr { registration }),
            inner,
            exit: None,
            exchanged: Exchanged::default(),
        })
    }

    /// The child's process id.
    pub fn id(&self) -> u32 {
        self.inner.id()
    }

    /// Sends `SIGKILL` to the child, as [`std::process::Child::kill`] does (`Ok` if it was
    /// already reaped). It still has to be waited for.
    pub fn kill(&mut self) -> io::Result<()> {
        self.inner.kill()
    }

    /// The exit status if the child has exited (reaping it), `None` if it still runs; never
    /// waits.
    pub fn try_wait(&mut self) -> io::Result<Option<ExitStatus>> {
        self.inner.try_wait()
    }

    /// Closes the child's standard input, as std does, and parks the greenlet until the child
    /// exits. Calling it again returns the same status.
    ///
    /// A kill or a hub [`Timeout`] ends the wait with an error carrying the
    /// [`Interrupted`](crate::Interrupted) (kind `TimedOut` for a `Timeout`, `Other`
    /// otherwise); the child is unaffected and can be waited for again.
    pub fn wait(&mut self) -> io::Result<ExitStatus> {
        self.stdin = None;
        self.wait_exit()
    }

    /// [`wait`](Self::wait) for at most `timeout`: `Ok(None)` if the child still runs then
    /// (gevent's `Popen.wait(timeout)`, which raises instead). Unlike `wait`, leaves the
    /// standard input open.
    pub fn wait_timeout(&mut self, timeout: Duration) -> io::Result<Option<ExitStatus>> {
        if let Some(status) = self.try_wait()? {
            return Ok(Some(status));
        }
        let deadline = Timeout::start(timeout);
        match self.wait_exit() {
            Ok(status) => Ok(Some(status)),
            Err(e) if deadline.is(&e) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Closes the standard input, reads the standard output and error to their end and waits
    /// for the child, as std does: [`communicate`](Self::communicate) with no input and no
    /// timeout.
    pub fn wait_with_output(mut self) -> io::Result<Output> {
        self.communicate(None, None)
    }

    /// Writes `input` to the child's standard input and closes it, while reading its standard
    /// output and error, then waits for it to exit (gevent's `Popen.communicate`). All of that
    /// runs at once, in this greenlet, so a child that writes a lot before it reads all its
    /// input cannot deadlock with us. Streams that are not piped are left alone (and come back
    /// empty); a child that closes its input early (`BrokenPipe`) just gets no more of it.
    ///
    /// With a `timeout`, the call fails with [`io::ErrorKind::TimedOut`] if the child has not
    /// finished by then, without killing it. Nothing is lost: what was read is kept, and the
    /// next call (given the same `input`, of which only the part not yet written is written)
    /// returns all of it. The same holds when a kill or a hub [`Timeout`] interrupts the call.
    ///
    /// The pipes are closed once finished with (the standard input after the last byte, the
    /// others at end of file), so the fields are `None` afterwards.
    pub fn communicate(
        &mut self,
        input: Option<&[u8]>,
        timeout: Option<Duration>,
    ) -> io::Result<Output> {
        let deadline = timeout.map(Timeout::start);
        let finished = self.exchange(input.unwrap_or_default()).and_then(|()| self.wait_exit());
        match finished {
            Ok(status) => Ok(Output {
                status,
                stdout: mem::take(&mut self.exchanged.stdout),
                stderr: mem::take(&mut self.exchanged.stderr),
            }),
            Err(e) if deadline.as_ref().is_some_and(|d| d.is(&e)) => Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!(
                    "child process {} did not finish within {:?}; what it wrote so far is kept \
                     for the next communicate",
                    self.id(),
                    timeout.unwrap_or_default()
                ),
            )),
            Err(e) => Err(e),
        }
    }

    /// Parks until the child exits and reaps it.
    fn wait_exit(&mut self) -> io::Result<ExitStatus> {
        // A reaped child has its status cached by std: no pidfd for it.
        if let Some(status) = self.inner.try_wait()? {
            return Ok(status);
        }
        let pid = self.inner.id();
        let watch = match &mut self.exit {
            Some(watch) => watch,
            None => self.exit.insert(ExitWatch::new(pid)?),
        };
        let inner = &mut self.inner;
        watch.wait_until(|| inner.try_wait())
    }

    /// Feeds the rest of `input` and drains stdout and stderr until all three are done, one
    /// non-blocking step per stream per round so that none starves the others.
    fn exchange(&mut self, input: &[u8]) -> io::Result<()> {
        let Child { stdin, stdout, stderr, exchanged, .. } = self;
        loop {
            if let Some(pipe) = stdin {
                let rest = input.get(exchanged.input_written..).unwrap_or_default();
                if rest.is_empty() {
                    *stdin = None;
                } else {
                    match step(&pipe.registration, Interest::WRITABLE, |fd| {
                        rustix::io::write(fd, rest)
                    }) {
                        Ok(Some(n)) => exchanged.input_written += n,
                        Ok(None) => {}
                        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => *stdin = None,
                        Err(e) => return Err(e),
                    }
                }
            }
            if drain_step(stdout.as_ref().map(|p| &p.registration), &mut exchanged.stdout)? {
                *stdout = None;
            }
            if drain_step(stderr.as_ref().map(|p| &p.registration), &mut exchanged.stderr)? {
                *stderr = None;
            }
            let waits: Vec<_> = [
                stdin.as_ref().map(|p| (&p.registration, Interest::WRITABLE)),
                stdout.as_ref().map(|p| (&p.registration, Interest::READABLE)),
                stderr.as_ref().map(|p| (&p.registration, Interest::READABLE)),
            ]
            .into_iter()
            .flatten()
            .collect();
            if waits.is_empty() {
                return Ok(());
            }
            IoRegistration::wait_any(&waits)?;
        }
    }
}

/// One read from `pipe` into `gathered`: whether it reached end of file.
fn drain_step(pipe: Option<&IoRegistration<OwnedFd>>, gathered: &mut Vec<u8>) -> io::Result<bool> {
    let Some(pipe) = pipe else { return Ok(false) };
    gathered.reserve(64 * 1024);
    let read = step(pipe, Interest::READABLE, |fd| {
        rustix::io::read(fd, rustix::buffer::spare_capacity(gathered))
    })?;
    Ok(read == Some(0))
}

/// Runs the non-blocking `op` once (again if a signal interrupted it): `None` if it would
/// block, with the readiness cleared so that the next wait waits for it.
fn step<T>(
    registration: &IoRegistration<OwnedFd>,
    interest: Interest,
    mut op: impl FnMut(&OwnedFd) -> rustix::io::Result<T>,
) -> io::Result<Option<T>> {
    loop {
        match op(registration.source()) {
            Ok(value) => return Ok(Some(value)),
            Err(Errno::WOULDBLOCK) => {
                registration.clear_readiness(interest);
                return Ok(None);
            }
            Err(Errno::INTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
}

impl fmt::Debug for Child {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Child")
            .field("id", &self.id())
            .field("stdin", &self.stdin)
            .field("stdout", &self.stdout)
            .field("stderr", &self.stderr)
            .finish_non_exhaustive()
    }
}

/// The `SIGCHLD` fallback, which Linux with pidfd never picks on its own, forced for tests.
#[cfg(all(test, target_os = "linux"))]
impl Child {
    pub(super) fn use_sigchld_fallback(&mut self) {
        self.exit = Some(ExitWatch::Sigchld);
    }
}
