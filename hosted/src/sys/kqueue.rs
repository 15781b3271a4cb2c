//! `OsPoller` on macOS and the BSDs: kqueue, edge-triggered, with an `EVFILT_USER` event as the
//! cross-thread waker.
#![allow(unsafe_code)] // kevent is unsafe in rustix: see `apply`

use core::mem::MaybeUninit;
use core::ptr;
use core::time::Duration;
use std::any::Any;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};
use std::sync::Arc;

use gevent_core::platform::{Interest, PollError, Poller, Readiness, RemoteWaker, Token};
use rustix::event::Timespec;
use rustix::event::kqueue::{self, Event, EventFilter, EventFlags, UserDefinedFlags, UserFlags};
use rustix::io::{Errno, FdFlags};

use super::{fd, poll_error};

/// The ident of the waker's `EVFILT_USER` event; user events have their own ident space, so it
/// cannot collide with a registered fd.
const WAKER_IDENT: isize = 0;

/// Most events taken per `kevent`; more wait for the next call.
const EVENTS_PER_WAIT: usize = 1024;

// A kevent's `udata` is pointer-sized and carries a whole token, whose high half is the slab
// key's generation: truncating it would make every event look stale to the hub.
const _: () = assert!(usize::BITS >= u64::BITS, "the kqueue backend needs 64-bit pointers");

/// kqueue plus an `EVFILT_USER` waker.
pub(crate) struct OsPoller {
    kqueue: Arc<OwnedFd>,
    waker: Arc<UserEventWaker>,
    events: Vec<Event>,
}

/// Triggers an `EVFILT_USER` event registered with the kqueue.
#[derive(Debug)]
struct UserEventWaker {
    kqueue: Arc<OwnedFd>,
}

impl RemoteWaker for UserEventWaker {
    fn wake(&self) {
        // Triggering an existing user event fails only if the kqueue itself is broken, and then
        // no poll is waiting on it; an EINTR comes after the trigger was applied (see `apply`).
        let _ = apply(&self.kqueue, &[user_event(EventFlags::RECEIPT, UserFlags::TRIGGER)], &[]);
    }
}

impl core::fmt::Debug for OsPoller {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("OsPoller").field("kqueue", &self.kqueue).finish_non_exhaustive()
    }
}

impl OsPoller {
    pub(crate) fn new() -> std::io::Result<Self> {
        let kqueue = Arc::new(kqueue::kqueue()?);
        // kqueue(2) has no close-on-exec flag (FreeBSD's kqueuex(2) is too recent), so set it now.
        rustix::io::fcntl_setfd(&*kqueue, FdFlags::CLOEXEC)?;
        let add = user_event(
            EventFlags::ADD | EventFlags::CLEAR | EventFlags::RECEIPT,
            UserFlags::empty(),
        );
        apply(&kqueue, &[add], &[])?;
        Ok(OsPoller {
            waker: Arc::new(UserEventWaker { kqueue: kqueue.clone() }),
            kqueue,
            events: Vec::with_capacity(EVENTS_PER_WAIT),
        })
    }

    /// Adds under `token` the filter of each direction `interest` asks for, and deletes the
    /// other's.
    fn set_filters(
        &self,
        fd: BorrowedFd<'_>,
        token: Token,
        interest: Interest,
    ) -> Result<(), Errno> {
        let fd = fd.as_raw_fd();
        let udata = ptr::without_provenance_mut(token.0 as usize);
        let flags = |wanted: bool| {
            let op = if wanted { EventFlags::ADD | EventFlags::CLEAR } else { EventFlags::DELETE };
            op | EventFlags::RECEIPT
        };
        let changes = [
            Event::new(EventFilter::Read(fd), flags(interest.is_readable()), udata),
            Event::new(EventFilter::Write(fd), flags(interest.is_writable()), udata),
        ];
        // ENOENT: the filter to delete was not there, which is what deleting it asks for.
        // EPIPE: older macOS refuses a pipe whose other end is closed, yet still reports the
        // hang-up on it (tokio-rs/mio#582).
        apply(&self.kqueue, &changes, &[Errno::NOENT, Errno::PIPE])
    }

    /// Deletes the filters of both directions.
    fn delete_filters(&self, fd: BorrowedFd<'_>) -> Result<(), Errno> {
        let fd = fd.as_raw_fd();
        let flags = EventFlags::DELETE | EventFlags::RECEIPT;
        let changes = [
            Event::new(EventFilter::Read(fd), flags, ptr::null_mut()),
            Event::new(EventFilter::Write(fd), flags, ptr::null_mut()),
        ];
        // ENOENT: a direction that was not asked for has no filter to delete.
        apply(&self.kqueue, &changes, &[Errno::NOENT])
    }
}

/// The waker's `EVFILT_USER` event, with `flags` for the change and `user_flags` for the filter.
fn user_event(flags: EventFlags, user_flags: UserFlags) -> Event {
    let filter = EventFilter::User {
        ident: WAKER_IDENT,
        flags: user_flags,
        user_flags: UserDefinedFlags::new(0),
    };
    Event::new(filter, flags, ptr::null_mut())
}

/// Applies `changes` (at most two, each with `EV_RECEIPT`) and returns the first error of a
/// change that is not in `ignored`.
///
/// With `EV_RECEIPT`, every change gets a receipt in the event list, carrying its error (or 0)
/// in `data`, so a failed change does not stop the ones after it, and since the receipts fill
/// the list, no pending event is taken in their place.
///
/// Every fd a change names must be open for the length of the call (see the SAFETY comment).
fn apply(kqueue: &OwnedFd, changes: &[Event], ignored: &[Errno]) -> Result<(), Errno> {
    let mut receipts = [MaybeUninit::<Event>::uninit(); 2];
    let receipts = &mut receipts[..changes.len()];
    let no_wait = Timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: rustix asks that the fds the changes name stay valid while the kqueue watches
    // them, because a kqueue refers to an fd by its number. Every fd named here is open for
    // the call: changes are made only by `set_filters` and `delete_filters`, from a
    // `BorrowedFd` they hold meanwhile (borrowed from a live `OwnedFd`, see `fd` in
    // `sys/mod.rs`), and by the waker, whose user event names no fd. After the call, the
    // kernel itself removes an fd's filters when the fd is closed (kqueue(2): "calling close()
    // on a file descriptor will remove any kevents that reference the descriptor"), so the
    // kqueue never goes on watching a number that was closed and reused, whatever a caller
    // does after registering. A change's `udata` is a token, an integer nothing dereferences.
    let result = unsafe { kqueue::kevent_timespec(kqueue, changes, receipts, Some(&no_wait)) };
    let (receipts, _) = match result {
        Ok(receipts) => receipts,
        // kevent(2): on EINTR, all changes in the changelist have already been applied.
        Err(Errno::INTR) => return Ok(()),
        Err(e) => return Err(e),
    };
    for receipt in receipts.iter() {
        if receipt.flags().contains(EventFlags::ERROR) && receipt.data() != 0 {
            let e = Errno::from_raw_os_error(receipt.data() as i32);
            if !ignored.contains(&e) {
                return Err(e);
            }
        }
    }
    Ok(())
}

impl Poller for OsPoller {
    fn register(
        &mut self,
        source: &dyn Any,
        token: Token,
        interest: Interest,
    ) -> Result<u64, PollError> {
        let fd = fd(source)?;
        self.set_filters(fd, token, interest).map_err(|e| {
            // Leave nothing behind if one filter was added and the other failed, as epoll's
            // single add does.
            let _ = self.delete_filters(fd);
            poll_error("kevent(EV_ADD)", e)
        })?;
        Ok(fd.as_raw_fd() as u64)
    }

    fn deregister(&mut self, source: &dyn Any) -> Result<(), PollError> {
        self.delete_filters(fd(source)?).map_err(|e| poll_error("kevent(EV_DELETE)", e))
    }

    fn poll(
        &mut self,
        timeout: Option<Duration>,
        ready: &mut dyn FnMut(Token, Readiness),
    ) -> Result<(), PollError> {
        // Kernels turn the timeout into fixed-point clock values; 68 years is forever in practice
        // and converts without overflow on every one of them (FreeBSD waits forever beyond it).
        let timespec = timeout.map(|t| Timespec {
            tv_sec: t.as_secs().min(i32::MAX as u64) as i64,
            tv_nsec: t.subsec_nanos().into(),
        });
        self.events.clear();
        let events = rustix::buffer::spare_capacity(&mut self.events);
        // SAFETY: no changes, so no fd is named here; the kqueue forgets the fds registered
        // earlier when they are closed (see `apply`).
        match unsafe { kqueue::kevent_timespec(&*self.kqueue, &[], events, timespec.as_ref()) } {
            Ok(_) => {}
            Err(Errno::INTR) => return Ok(()),
            Err(e) => return Err(poll_error("kevent", e)),
        }
        for event in &self.events {
            let trouble = event.flags().intersects(EventFlags::EOF | EventFlags::ERROR);
            let readiness = match event.filter() {
                EventFilter::Read(_) => Readiness { readable: true, writable: trouble },
                EventFilter::Write(_) => Readiness { readable: trouble, writable: true },
                // The waker's user event, the only other filter registered: it has done its work
                // by ending the wait, and EV_CLEAR has already reset it.
                _ => continue,
            };
            ready(Token(event.udata().addr() as u64), readiness);
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
