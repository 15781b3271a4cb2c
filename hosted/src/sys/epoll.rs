//! `OsPoller` on Linux: epoll, edge-triggered, with an eventfd as the cross-thread waker.

use std::any::Any;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::sync::Arc;
use std::time::Duration;

use gevent_core::platform::{Interest, PollError, Poller, Readiness, RemoteWaker, Token};
use rustix::event::epoll::{self, EventData, EventFlags};
use rustix::event::{EventfdFlags, Timespec, eventfd};

use super::{fd, poll_error};

/// The epoll token of the waker; the hub's tokens are slab keys, which never reach it.
const WAKER_TOKEN: u64 = u64::MAX;

/// Most events taken per `epoll_wait`; more wait for the next call.
const EVENTS_PER_WAIT: usize = 1024;

/// epoll plus an eventfd waker.
pub(crate) struct OsPoller {
    epoll: OwnedFd,
    waker: Arc<EventfdWaker>,
    events: Vec<epoll::Event>,
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
        epoll::add(&epoll, &fd, EventData::new_u64(WAKER_TOKEN), EventFlags::IN | EventFlags::ET)?;
        Ok(OsPoller {
            epoll,
            waker: Arc::new(EventfdWaker { fd }),
            events: Vec::with_capacity(EVENTS_PER_WAIT),
        })
    }

    fn flags(interest: Interest) -> EventFlags {
        let mut flags = EventFlags::ET | EventFlags::RDHUP;
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
        epoll::add(&self.epoll, fd, EventData::new_u64(token.0), Self::flags(interest))
            .map_err(|e| poll_error("epoll_ctl(EPOLL_CTL_ADD)", e))?;
        Ok(fd.as_raw_fd() as u64)
    }

    fn deregister(&mut self, source: &dyn Any) -> Result<(), PollError> {
        epoll::delete(&self.epoll, fd(source)?)
            .map_err(|e| poll_error("epoll_ctl(EPOLL_CTL_DEL)", e))
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
            Err(rustix::io::Errno::INTR) => return Ok(()),
            Err(e) => return Err(poll_error("epoll_wait", e)),
        }
        for event in &self.events {
            let token = event.data.u64();
            let flags = event.flags;
            if token == WAKER_TOKEN {
                let mut buf = [0u8; 8];
                let _ = rustix::io::read(self.waker.fd.as_fd(), &mut buf);
                continue;
            }
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
