//! `Selector`: registrations that persist across waits (Python's `selectors.DefaultSelector`).

use std::collections::BTreeMap;
use std::fmt;
use std::io;
use std::ops::{BitAnd, BitOr, BitOrAssign};
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::time::Duration;

use gevent_core::Timeout;
use gevent_core::hub::IoRegistration;
use gevent_core::platform::Interest;
use rustix::event::PollFd;

use crate::io::{is_ready, poll_flags, poll_now, register_duplicate};

/// Which readiness a [`Selector`] watches a descriptor for, and reports: a set of
/// [`EVENT_READ`] and [`EVENT_WRITE`], combined with `|`.
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Events(u8);

/// Readable: a read would not block.
pub const EVENT_READ: Events = Events::READ;
/// Writable: a write would not block.
pub const EVENT_WRITE: Events = Events::WRITE;

impl Events {
    /// Readable, the same as [`EVENT_READ`].
    pub const READ: Events = Events(1);
    /// Writable, the same as [`EVENT_WRITE`].
    pub const WRITE: Events = Events(2);

    /// Neither.
    pub const fn empty() -> Events {
        Events(0)
    }

    /// Whether it holds neither event.
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// Whether it holds every event of `other`.
    pub const fn contains(self, other: Events) -> bool {
        self.0 & other.0 == other.0
    }

    /// Python's numbers for them: 1 for read, 2 for write.
    pub const fn bits(self) -> u8 {
        self.0
    }

    /// The hub's name for it (registrations never hold empty events).
    fn interest(self) -> Interest {
        match (self.contains(Events::READ), self.contains(Events::WRITE)) {
            (true, false) => Interest::READABLE,
            (false, true) => Interest::WRITABLE,
            _ => Interest::BOTH,
        }
    }
}

impl BitOr for Events {
    type Output = Events;
    fn bitor(self, other: Events) -> Events {
        Events(self.0 | other.0)
    }
}

impl BitOrAssign for Events {
    fn bitor_assign(&mut self, other: Events) {
        self.0 |= other.0;
    }
}

impl BitAnd for Events {
    type Output = Events;
    fn bitand(self, other: Events) -> Events {
        Events(self.0 & other.0)
    }
}

impl fmt::Debug for Events {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.contains(Events::READ), self.contains(Events::WRITE)) {
            (true, true) => f.write_str("EVENT_READ | EVENT_WRITE"),
            (true, false) => f.write_str("EVENT_READ"),
            (false, true) => f.write_str("EVENT_WRITE"),
            (false, false) => f.write_str("Events::empty()"),
        }
    }
}

/// A descriptor's registration with a [`Selector`]: its number, the events watched for, and
/// the caller's data (Python's `SelectorKey`, without `fileobj`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SelectorKey<T> {
    fd: RawFd,
    events: Events,
    data: T,
}

impl<T> SelectorKey<T> {
    /// The registered descriptor's number, which names it to [`Selector::modify`],
    /// [`unregister`](Selector::unregister) and [`get_key`](Selector::get_key).
    pub fn fd(&self) -> RawFd {
        self.fd
    }

    /// The events it is watched for.
    pub fn events(&self) -> Events {
        self.events
    }

    /// The data given at registration (or by the last [`modify`](Selector::modify)).
    pub fn data(&self) -> &T {
        &self.data
    }

    /// The data, taken out of the key.
    pub fn into_data(self) -> T {
        self.data
    }
}

impl<T> AsRawFd for SelectorKey<T> {
    fn as_raw_fd(&self) -> RawFd {
        self.fd
    }
}

/// Descriptors registered for readiness events, each with data of type `T`, waited on together
/// by [`select`](Selector::select) (Python's `selectors.DefaultSelector`).
///
/// Each registration holds a duplicate of the descriptor, registered with the hub until it is
/// unregistered or the selector is closed or dropped: [`unregister`](Self::unregister) a
/// descriptor before closing it, since the duplicate keeps its file (a socket's connection)
/// open. Descriptors are named by number, as in Python. Like the hub it uses, a selector stays
/// on the thread that made it.
///
/// ```
/// use std::io::{Read, Write};
/// use std::os::fd::AsRawFd;
/// use gevent::select::{EVENT_READ, EVENT_WRITE, Selector};
///
/// let (mut reader, mut writer) = gevent::os::pipe()?;
/// let mut selector = Selector::new();
/// selector.register(&reader, EVENT_READ, "reader")?;
/// selector.register(&writer, EVENT_WRITE, "writer")?;
/// let ready = selector.select(None)?;
/// assert_eq!(ready.len(), 1); // the pipe is empty: only the writer is ready
/// assert_eq!(*ready[0].0.data(), "writer");
///
/// writer.write_all(b"x")?;
/// selector.unregister(writer.as_raw_fd())?;
/// for (key, events) in selector.select(None)? {
///     assert_eq!((*key.data(), events), ("reader", EVENT_READ));
///     reader.read_exact(&mut [0])?;
/// }
/// # std::io::Result::Ok(())
/// ```
pub struct Selector<T = ()> {
    /// By descriptor number: `select` reports in that order.
    entries: BTreeMap<RawFd, Entry<T>>,
}

struct Entry<T> {
    key: SelectorKey<T>,
    /// `None` for a regular file or directory, which epoll refuses and which is always ready.
    registration: Option<IoRegistration<OwnedFd>>,
}

impl<T> Default for Selector<T> {
    fn default() -> Self {
        Selector::new()
    }
}

impl<T: fmt::Debug> fmt::Debug for Selector<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.keys()).finish()
    }
}

impl<T> Selector<T> {
    /// An empty selector.
    pub fn new() -> Self {
        Selector { entries: BTreeMap::new() }
    }

    /// Starts watching `fd` for `events`, remembering `data` with it, and returns its key.
    ///
    /// Fails with [`io::ErrorKind::AlreadyExists`] if `fd` is registered already (Python's
    /// `KeyError`), [`io::ErrorKind::InvalidInput`] for empty `events`, or the error of
    /// duplicating or registering it.
    pub fn register(
        &mut self,
        fd: &(impl AsFd + ?Sized),
        events: Events,
        data: T,
    ) -> io::Result<&SelectorKey<T>> {
        let fd = fd.as_fd();
        let number = fd.as_raw_fd();
        check_events(events)?;
        if self.entries.contains_key(&number) {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("file descriptor {number} is registered with this selector already"),
            ));
        }
        let registration = register_duplicate(fd)?;
        let key = SelectorKey { fd: number, events, data };
        Ok(&self.entries.entry(number).or_insert(Entry { key, registration }).key)
    }

    /// Changes the events `fd` is watched for and its data, and returns its new key.
    ///
    /// Fails with [`io::ErrorKind::NotFound`] if `fd` is not registered, or
    /// [`io::ErrorKind::InvalidInput`] for empty `events`.
    pub fn modify(&mut self, fd: RawFd, events: Events, data: T) -> io::Result<&SelectorKey<T>> {
        check_events(events)?;
        let entry = self.entries.get_mut(&fd).ok_or_else(|| not_registered(fd))?;
        entry.key.events = events;
        entry.key.data = data;
        Ok(&entry.key)
    }

    /// Stops watching `fd` and returns its key.
    ///
    /// Fails with [`io::ErrorKind::NotFound`] if `fd` is not registered.
    pub fn unregister(&mut self, fd: RawFd) -> io::Result<SelectorKey<T>> {
        let entry = self.entries.remove(&fd).ok_or_else(|| not_registered(fd))?;
        Ok(entry.key)
    }

    /// The key of `fd`, if it is registered.
    pub fn get_key(&self, fd: RawFd) -> Option<&SelectorKey<T>> {
        self.entries.get(&fd).map(|entry| &entry.key)
    }

    /// Every key, by descriptor number (Python's `get_map`).
    pub fn keys(&self) -> impl Iterator<Item = &SelectorKey<T>> {
        self.entries.values().map(|entry| &entry.key)
    }

    /// Unregisters every descriptor (as dropping the selector does).
    pub fn close(self) {}

    /// Waits until at least one registered descriptor is ready for an event it is watched for,
    /// or `timeout` passes, and returns the ready ones' keys with the events they are ready
    /// for, by descriptor number. A timeout returns an empty list, as Python's does; `None`
    /// waits for as long as it takes, `Some(Duration::ZERO)` only looks.
    ///
    /// Each call looks at every registered descriptor with one `poll(2)`, and if none is
    /// ready, parks once on all their hub registrations; with none registered it parks until
    /// `timeout` passes. A kill or a hub [`Timeout`] ends the wait with an error carrying the
    /// [`Interrupted`](crate::Interrupted) (see [`gevent::io`](crate::io)).
    pub fn select(&self, timeout: Option<Duration>) -> io::Result<Vec<(SelectorKey<T>, Events)>>
    where
        T: Clone,
    {
        let mut always_ready = Vec::new();
        let mut polled = Vec::with_capacity(self.entries.len());
        let mut look = Vec::with_capacity(self.entries.len());
        for entry in self.entries.values() {
            let interest = entry.key.events.interest();
            match &entry.registration {
                Some(registration) => {
                    polled.push((&entry.key, registration, interest));
                    look.push(PollFd::new(registration.source(), poll_flags(interest)));
                }
                None => always_ready.push((entry.key.clone(), entry.key.events)),
            }
        }
        let mut deadline = None;
        let mut waits: Vec<(&IoRegistration<OwnedFd>, Interest)> = Vec::new();
        loop {
            poll_now(&mut look)?;
            let mut ready = always_ready.clone();
            for ((key, _, _), look) in polled.iter().zip(&look) {
                let mut events = Events::empty();
                if is_ready(look, Interest::READABLE) {
                    events |= Events::READ;
                }
                if is_ready(look, Interest::WRITABLE) {
                    events |= Events::WRITE;
                }
                let events = events & key.events;
                if !events.is_empty() {
                    ready.push(((*key).clone(), events));
                }
            }
            if !ready.is_empty() || timeout == Some(Duration::ZERO) {
                ready.sort_by_key(|(key, _)| key.fd);
                return Ok(ready);
            }
            // Readiness the hub remembers from earlier events is gone by this look; what comes
            // after it is reported while this greenlet is parked.
            if waits.is_empty() {
                waits = polled.iter().map(|&(_, r, interest)| (r, interest)).collect();
            }
            for &(registration, interest) in &waits {
                registration.clear_readiness(interest);
            }
            if deadline.is_none() {
                deadline = timeout.map(Timeout::start);
            }
            if !super::wait_any_within(&waits, deadline.as_ref())? {
                return Ok(Vec::new());
            }
        }
    }
}

fn check_events(events: Events) -> io::Result<()> {
    if events.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "a selector registration needs EVENT_READ, EVENT_WRITE or both",
        ));
    }
    Ok(())
}

fn not_registered(fd: RawFd) -> io::Error {
    io::Error::new(
        io::ErrorKind::NotFound,
        format!("file descriptor {fd} is not registered with this selector"),
    )
}
