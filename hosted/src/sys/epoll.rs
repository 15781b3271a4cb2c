//! `OsPoller` on Linux: epoll, edge-triggered, with an eventfd as the cross-thread waker.

use std::any::Any;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::sync::Arc;
use std::time::Duration;

use gevent_core::platform::{Interest, PollError, Poller, Readiness, RemoteWaker, Token};
use rustix::event::epoll::{self, EventData, EventFlags};
use rustix::event::{EventfdFlags, Timespec, eventfd};
use rustix::io::Errno;

use super::{fd, poll_error};

/// The epoll data of the waker. A source's is its descriptor number, which never reaches it.
const WAKER_DATA: u64 = u64::MAX;

/// Events after which a short read no longer shows that a stream socket is drained (see
/// [`OsPoller::short_read_drains`]): a hang-up or an error, whose end of stream a short read
/// may consume, and urgent data, at whose mark a TCP read stops short.
const UNUSUAL: EventFlags =
    EventFlags::RDHUP.union(EventFlags::HUP).union(EventFlags::ERR).union(EventFlags::PRI);

/// Most events taken per `epoll_wait`; more wait for the next call.
const EVENTS_PER_WAIT: usize = 1024;

/// epoll plus an eventfd waker.
pub(crate) struct OsPoller {
    epoll: OwnedFd,
    waker: Arc<EventfdWaker>,
    events: Vec<epoll::Event>,
    /// The registered sources, indexed by descriptor number (the data of their epoll events).
    sources: Vec<Source>,
}

/// A registered descriptor.
#[derive(Clone, Copy, Default)]
struct Source {
    /// The hub's token for it; `None` while the number is not registered.
    token: Option<u64>,
    /// An [`UNUSUAL`] event was reported for it.
    unusual: bool,
}

/// Writes to an eventfd registered with the epoll instance.
#[derive(Debug)]
struct EventfdWaker {
    fd: OwnedFd,
}

impl RemoteWaker for EventfdWaker {
    fn wake(&self) {
        // EAGAIN means the counter is saturated, which still leaves the fd readable: the wake is
        // delivered either way.
        let _ = rustix::io::write(&self.fd, &1u64.to_ne_bytes());
    }
}

impl std::fmt::Debug for OsPoller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OsPoller").field("epoll", &self.epoll).finish_non_exhaustive()
    }
}

impl OsPoller {
    pub(crate) fn new() -> std::io::Result<Self> {
        let epoll = epoll::create(epoll::CreateFlags::CLOEXEC)?;
        let fd = eventfd(0, EventfdFlags::CLOEXEC | EventfdFlags::NONBLOCK)?;
        epoll::add(&epoll, &fd, EventData::new_u64(WAKER_DATA), EventFlags::IN | EventFlags::ET)?;
        Ok(OsPoller {
            epoll,
            waker: Arc::new(EventfdWaker { fd }),
            events: Vec::with_capacity(EVENTS_PER_WAIT),
            sources: Vec::new(),
        })
    }

    /// Whether a read of a registered TCP socket `fd` that returned less than it asked for
    /// shows that its receive queue was empty when it returned, so that its readiness can be
    /// cleared without trying again until a new edge (tokio's rule, made sound).
    ///
    /// Linux's TCP receive copies everything queued up to the buffer's size and stops short
    /// only at the urgent mark (urgent data reports `EPOLLPRI`) or after consuming the peer's
    /// `FIN` (end of stream, reported with `EPOLLRDHUP`), whose edge may have been taken
    /// before the read: so not once such an event was reported. Data that arrives later, or
    /// that the read left behind in the socket's backlog, raises a new edge. Descriptors this
    /// poller does not watch get `false`.
    pub(crate) fn short_read_drains(&self, fd: BorrowedFd<'_>) -> bool {
        let index = fd.as_raw_fd() as usize;
        self.sources.get(index).is_some_and(|s| s.token.is_some() && !s.unusual)
    }

    fn flags(interest: Interest) -> EventFlags {
        let mut flags = EventFlags::ET | EventFlags::RDHUP | EventFlags::PRI;
        if interest.is_readable() {
            flags |= EventFlags::IN;
        }
        if interest.is_writable() {
            flags |= EventFlags::OUT;
        }
        flags
    }
}

impl Poller for OsPoller {
    fn register(
        &mut self,
        source: &dyn Any,
        token: Token,
        interest: Interest,
    ) -> Result<u64, PollError> {
        let fd = fd(source)?;
        let number = fd.as_raw_fd() as u64;
        // Descriptor numbers index a table: it grows to the highest one registered, which the
        // kernel's own table for the process already spans (with 8 bytes per number).
        let index = number as usize;
        if self.sources.len() <= index {
            self.sources.try_reserve(index + 1 - self.sources.len()).map_err(|_| {
                poll_error("register (growing the table of descriptors)", Errno::NOMEM)
            })?;
            self.sources.resize(index + 1, Source::default());
        }
        epoll::add(&self.epoll, fd, EventData::new_u64(number), Self::flags(interest))
            .map_err(|e| poll_error("epoll_ctl(EPOLL_CTL_ADD)", e))?;
        self.sources[index] = Source { token: Some(token.0), unusual: false };
        Ok(number)
    }

    fn deregister(&mut self, source: &dyn Any) -> Result<(), PollError> {
        let fd = fd(source)?;
        epoll::delete(&self.epoll, fd).map_err(|e| poll_error("epoll_ctl(EPOLL_CTL_DEL)", e))?;
        // Only after a successful delete: a failed one leaves the number registered.
        if let Some(source) = self.sources.get_mut(fd.as_raw_fd() as usize) {
            *source = Source::default();
        }
        Ok(())
    }

    fn poll(
        &mut self,
        timeout: Option<Duration>,
        ready: &mut dyn FnMut(Token, Readiness),
    ) -> Result<(), PollError> {
        let timespec = timeout.map(|t| Timespec {
            tv_sec: t.as_secs().min(i64::MAX as u64) as i64,
            tv_nsec: t.subsec_nanos().into(),
        });
        self.events.clear();
        match epoll::wait(
            &self.epoll,
            rustix::buffer::spare_capacity(&mut self.events),
            timespec.as_ref(),
        ) {
            Ok(_) => {}
            Err(Errno::INTR) => return Ok(()),
            Err(e) => return Err(poll_error("epoll_wait", e)),
        }
        for event in &self.events {
            let data = event.data.u64();
            let flags = event.flags;
            if data == WAKER_DATA {
                let mut buf = [0u8; 8];
                let _ = rustix::io::read(self.waker.fd.as_fd(), &mut buf);
                continue;
            }
            // A deleted descriptor's events leave epoll with it, so every event names a
            // registered one; anything else is dropped rather than trusted.
            let Some(source) = self.sources.get_mut(data as usize) else { continue };
            let Some(token) = source.token else { continue };
            source.unusual |= flags.intersects(UNUSUAL);
            let trouble = flags.intersects(EventFlags::ERR | EventFlags::HUP);
            let readiness = Readiness {
                readable: trouble
                    || flags.intersects(EventFlags::IN | EventFlags::PRI | EventFlags::RDHUP),
                writable: trouble || flags.contains(EventFlags::OUT),
            };
            ready(Token(token), readiness);
        }
        Ok(())
    }

    fn remote_waker(&self) -> Arc<dyn RemoteWaker> {
        self.waker.clone()
    }

    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }
}
