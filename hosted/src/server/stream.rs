//! [`StreamServer`]: a greenlet per accepted connection.

use std::cell::{Cell, RefCell};
use std::fmt;
use std::io;
use std::panic::Location;
use std::rc::Rc;
use std::time::Duration;

use gevent_core::event::Event;
use gevent_core::pool::{Group, Pool};
use gevent_core::{Builder, Greenlet, Interrupted};

use super::Listener;
use crate::net::TcpListener;

/// How long [`serve_forever`](StreamServer::serve_forever) lets handlers finish when it stops
/// the server itself (gevent's `stop_timeout`).
const STOP_GRACE: Duration = Duration::from_secs(1);
/// The first pause after an accept failed for lack of resources.
const FIRST_BACKOFF: Duration = Duration::from_millis(10);
/// The longest pause between accepts while resources lack.
const MAX_BACKOFF: Duration = Duration::from_secs(1);

type Handler<L> =
    dyn Fn(<L as Listener>::Stream, <L as Listener>::Addr) -> io::Result<()> + 'static;

/// A server that accepts connections on a [`Listener`] and runs a handler for each in a new
/// greenlet (gevent's `StreamServer`); see the [module documentation](super).
///
/// A `StreamServer` is a handle: clones share one server, so a greenlet can run
/// [`serve_forever`](Self::serve_forever) while another calls [`stop`](Self::stop). A started
/// server runs until stopped (or until [`run`](crate::run) ends the thread's greenlets), even if
/// every handle is dropped.
pub struct StreamServer<L: Listener = TcpListener> {
    inner: Rc<Inner<L>>,
}

struct Inner<L: Listener> {
    /// Taken by `stop`; the accept loop holds another reference while it runs.
    listener: RefCell<Option<Rc<L>>>,
    handler: Rc<Handler<L>>,
    pool: RefCell<Option<Rc<Pool>>>,
    /// Every running handler, so that `stop` can wait for them and kill them.
    handlers: Group,
    acceptor: RefCell<Option<Greenlet<()>>>,
    /// Set when the server stops or its accept loop fails: what `serve_forever` waits for.
    stopped: Event,
    /// Why the accept loop ended, if it failed.
    failure: RefCell<Option<io::Error>>,
    closed: Cell<bool>,
    /// Where the server was made: its handlers' spawn site in reports.
    made_at: &'static Location<'static>,
    kind: Kind,
}

impl<L: Listener> Clone for StreamServer<L> {
    fn clone(&self) -> Self {
        StreamServer { inner: self.inner.clone() }
    }
}

impl<L: Listener> fmt::Debug for StreamServer<L> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut s = f.debug_struct("StreamServer");
        match self.local_addr() {
            Ok(addr) => s.field("local_addr", &addr),
            Err(_) => s.field("local_addr", &"(closed)"),
        };
        s.field("started", &self.started())
            .field("closed", &self.closed())
            .field("connections", &self.connections())
            .field("pool", &*self.inner.pool.borrow())
            .field("made_at", &self.inner.made_at)
            .finish()
    }
}

impl<L: Listener> StreamServer<L> {
    /// A server that will accept connections on `listener` and run `handler(stream, peer)`
    /// for each in a new greenlet. Nothing happens until [`start`](Self::start) or
    /// [`serve_forever`](Self::serve_forever).
    ///
    /// The place of this call is the handlers' spawn site in failure reports.
    #[track_caller]
    pub fn new(
        listener: L,
        handler: impl Fn(L::Stream, L::Addr) -> io::Result<()> + 'static,
    ) -> Self {
        StreamServer::with_kind(listener, handler, Kind::Stream, Location::caller())
    }

    /// [`new`](Self::new) for a server of another `kind`, made at
    /// `made_at`.
    pub(crate) fn with_kind(
        listener: L,
        handler: impl Fn(L::Stream, L::Addr) -> io::Result<()> + 'static,
        kind: Kind,
        made_at: &'static Location<'static>,
    ) -> Self {
        StreamServer {
            inner: Rc::new(Inner {
                listener: RefCell::new(Some(Rc::new(listener))),
                handler: Rc::new(handler),
                pool: RefCell::new(None),
                handlers: Group::new(),
                acceptor: RefCell::new(None),
                stopped: Event::new(),
                failure: RefCell::new(None),
                closed: Cell::new(false),
                made_at,
                kind,
            }),
        }
    }

    /// Runs every handler in `pool`, which caps how many run at once: while the pool is full,
    /// the server stops accepting (connections wait in the listener's backlog) until a slot
    /// frees. The pool may be shared with other work. Takes effect at the next
    /// [`start`](Self::start).
    pub fn with_pool(self, pool: Pool) -> Self {
        *self.inner.pool.borrow_mut() = Some(Rc::new(pool));
        self
    }

    /// Starts the accept loop in its own greenlet and returns: it runs once the caller parks
    /// or yields.
    ///
    /// Fails if the server is already started, or was stopped (its listener is closed). An
    /// accept error that ends the loop is returned by [`serve_forever`](Self::serve_forever).
    pub fn start(&self) -> io::Result<()> {
        let inner = &self.inner;
        let listener = inner.listener.borrow().clone().ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::NotConnected,
                "the server was stopped: its listener is closed",
            )
        })?;
        if self.started() {
            return Err(io::Error::other("the server is already started"));
        }
        let pool = inner.pool.borrow().clone();
        let server = inner.clone();
        let acceptor = Builder::new()
            .name(inner.kind.loop_name())
            .spawn(move || server.accept_loop(&listener, pool.as_deref()));
        *inner.acceptor.borrow_mut() = Some(acceptor);
        Ok(())
    }

    /// Starts the server unless it is started, and parks until it stops: `Ok` once another
    /// greenlet calls [`stop`](Self::stop), the error if accepting failed for good.
    ///
    /// If the wait is interrupted (the caller is killed, or its [`Timeout`](crate::Timeout)
    /// expires), or accepting fails, it stops the server itself, with a grace of one second
    /// for the handlers (none when the caller was killed: its waits fail at once), and returns
    /// the error.
    pub fn serve_forever(&self) -> io::Result<()> {
        if !self.started() {
            self.start()?;
        }
        let waited = self.inner.stopped.wait();
        let failure = self.inner.failure.take();
        if (waited.is_err() || failure.is_some()) && !self.closed() {
            self.stop(STOP_GRACE);
        }
        match (failure, waited) {
            (Some(e), _) => Err(e),
            (None, Err(why)) => Err(why.into()),
            (None, Ok(())) => Ok(()),
        }
    }

    /// Stops the server: closes the listener at once (new connections are refused, and those
    /// waiting in its backlog are reset), lets running handlers finish within `grace`, then
    /// kills the rest and returns when all have ended. [`serve_forever`](Self::serve_forever)
    /// returns `Ok`. Stopping a stopped server waits for its handlers again.
    ///
    /// If the caller is killed or its [`Timeout`](crate::Timeout) expires meanwhile, the
    /// handlers are killed and `stop` returns without waiting for them. Called from one of
    /// the server's own handlers, it waits for and kills the others only: the caller goes on,
    /// and ends by itself.
    pub fn stop(&self, grace: Duration) {
        let inner = &self.inner;
        let listener = inner.listener.take();
        let acceptor = inner.acceptor.take();
        inner.stopped.set();
        if let Some(acceptor) = acceptor {
            // Killing waits for the loop to end and drop its reference to the listener; if
            // that wait is interrupted, the loop closes it as soon as the kill reaches it.
            let _ = acceptor.kill();
        }
        drop(listener);
        inner.closed.set(true);
        // A handler cannot wait for its own end.
        inner.handlers.discard(&gevent_core::current());
        if inner.handlers.join_timeout(grace) != Ok(true) {
            let _ = inner.handlers.kill();
        }
    }

    /// The listener's address; fails once the server is stopped.
    pub fn local_addr(&self) -> io::Result<L::Addr> {
        match &*self.inner.listener.borrow() {
            Some(listener) => listener.local_addr(),
            None => Err(io::Error::new(
                io::ErrorKind::NotConnected,
                "the server was stopped: its listener is closed",
            )),
        }
    }

    /// Whether [`start`](Self::start) ran and [`stop`](Self::stop) has not.
    pub fn started(&self) -> bool {
        self.inner.acceptor.borrow().is_some()
    }

    /// Whether [`stop`](Self::stop) has closed the listener.
    pub fn closed(&self) -> bool {
        self.inner.closed.get()
    }

    /// The number of handlers running.
    pub fn connections(&self) -> usize {
        self.inner.handlers.len()
    }
}

/// What kind of server runs the loop: its name in reports and greenlet names.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Kind {
    Stream,
    Datagram,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Stream => "StreamServer",
            Kind::Datagram => "DatagramServer",
        }
    }

    fn loop_name(self) -> &'static str {
        match self {
            Kind::Stream => "StreamServer accept loop",
            Kind::Datagram => "DatagramServer receive loop",
        }
    }

    fn handler_name(self) -> &'static str {
        match self {
            Kind::Stream => "StreamServer handler",
            Kind::Datagram => "DatagramServer handler",
        }
    }
}

/// How the accept loop treats a failed accept.
enum AcceptFailure {
    /// The server is being stopped.
    Stopped,
    /// Out of descriptors or memory: the connection waits in the backlog until some free up.
    Exhausted,
    /// About the one connection being accepted, which is gone: take the next.
    Transient,
    /// Anything else: accepting cannot go on.
    Fatal,
}

impl AcceptFailure {
    fn of(e: &io::Error) -> Self {
        if Interrupted::try_from(e).is_ok() {
            return AcceptFailure::Stopped;
        }
        match e.raw_os_error() {
            Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM) => {
                AcceptFailure::Exhausted
            }
            // Linux passes the errors of a pending connection on to accept (accept(2)).
            Some(
                libc::ECONNABORTED
                | libc::EINTR
                | libc::EPROTO
                | libc::EPERM
                | libc::ECONNRESET
                | libc::ETIMEDOUT
                | libc::ENETDOWN
                | libc::ENETUNREACH
                | libc::EHOSTDOWN
                | libc::EHOSTUNREACH
                | libc::ENOPROTOOPT
                | libc::EOPNOTSUPP,
            ) => AcceptFailure::Transient,
            _ => AcceptFailure::Fatal,
        }
    }
}

impl<L: Listener> Inner<L> {
    fn accept_loop(self: &Rc<Self>, listener: &L, pool: Option<&Pool>) {
        let mut backoff: Option<Duration> = None;
        loop {
            if let Some(pool) = pool {
                if pool.wait_available().is_err() {
                    return;
                }
            }
            match listener.accept() {
                Ok((stream, peer)) => {
                    backoff = None;
                    if self.spawn_handler(stream, peer, pool).is_err() {
                        return;
                    }
                }
                Err(e) => match AcceptFailure::of(&e) {
                    AcceptFailure::Stopped => return,
                    AcceptFailure::Transient => {}
                    AcceptFailure::Exhausted => {
                        let delay = match backoff {
                            Some(delay) => (delay * 2).min(MAX_BACKOFF),
                            None => {
                                self.report_exhausted(listener, &e);
                                FIRST_BACKOFF
                            }
                        };
                        backoff = Some(delay);
                        if gevent_core::sleep(delay).is_err() {
                            return;
                        }
                    }
                    AcceptFailure::Fatal => {
                        *self.failure.borrow_mut() = Some(e);
                        self.stopped.set();
                        return;
                    }
                },
            }
        }
    }

    fn spawn_handler(
        &self,
        stream: L::Stream,
        peer: L::Addr,
        pool: Option<&Pool>,
    ) -> Result<(), Interrupted> {
        let handler = self.handler.clone();
        let greenlet = Builder::new()
            .name(self.kind.handler_name())
            .spawn_located(self.made_at, move || serve_one(&*handler, stream, peer));
        self.handlers.add(&greenlet);
        match pool {
            // The slot was free before the accept; it is taken already only if the pool is
            // shared with other work, and then this waits for one.
            Some(pool) => pool.add(&greenlet),
            None => Ok(()),
        }
    }

    #[cold]
    fn report_exhausted(&self, listener: &L, e: &io::Error) {
        let addr = match listener.local_addr() {
            Ok(addr) => format!("{addr:?}"),
            Err(_) => String::from("(unknown address)"),
        };
        gevent_core::__private::report_error(format_args!(
            "gevent: the {} on {addr} (made at {}) cannot accept connections: {e}; \
             retrying with a backoff of up to {MAX_BACKOFF:?} until resources free up",
            self.kind.name(),
            self.made_at
        ));
    }
}

/// Runs one handler, reporting its `Err` (a kill from `stop` is no failure).
fn serve_one<S, A: fmt::Debug + Clone>(
    handler: &dyn Fn(S, A) -> io::Result<()>,
    stream: S,
    peer: A,
) {
    let report_peer = peer.clone();
    if let Err(e) = handler(stream, peer) {
        if !matches!(Interrupted::try_from(&e), Ok(Interrupted::Killed)) {
            let me = gevent_core::current();
            gevent_core::__private::report_error(format_args!(
                "greenlet #{} '{}' (spawned at {}) failed serving {report_peer:?}: {e}",
                me.id(),
                me.name(),
                me.spawned_at()
            ));
        }
    }
}
