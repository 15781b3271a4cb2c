//! What the memory-per-connection workloads (`idle_conns`, `http_conns`) share: 10,000
//! connections from a client in a child process (this binary again), so that each process needs
//! only one descriptor per connection, and the growth of our resident set while they are held.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::SocketAddr;
use std::process::{Child, Command, ExitCode, Stdio};

use gevent::net::TcpListener;

use crate::{report, rss_bytes};

/// Connections each workload holds.
pub(crate) const CONNS: usize = 10_000;

/// Descriptors besides the connections: stdio, the listener, the poller, the waker, the pipes
/// to the client process.
const SPARE_FDS: u64 = 64;

/// Runs the workload `bench`: `hold` serves [`CONNS`] connections and returns the growth of
/// the resident set per connection, which is reported as `bytes_per_conn`.
pub(crate) fn run(bench: &str, hold: impl FnOnce() -> io::Result<f64>) -> ExitCode {
    if let Err(why) = raise_fd_limit(CONNS as u64 + SPARE_FDS) {
        eprintln!("gevent-bench: {bench} skipped: {why}");
        return ExitCode::SUCCESS;
    }
    match hold() {
        Ok(bytes) => {
            report(bench, "bytes_per_conn", bytes);
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("gevent-bench: {bench} failed: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The client process, connecting [`CONNS`] times to `addr`.
pub(crate) struct Clients {
    child: Child,
    rss0: u64,
}

impl Clients {
    /// Notes our resident set, then starts `gevent-bench <mode> <addr> <CONNS>`.
    pub(crate) fn start(mode: &str, addr: SocketAddr) -> io::Result<Clients> {
        let rss0 = rss_bytes();
        let child = Command::new(std::env::current_exe()?)
            .args([mode, &addr.to_string(), &CONNS.to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()?;
        Ok(Clients { child, rss0 })
    }

    /// Waits (on the thread pool, so that the hub keeps serving) for the client's line saying
    /// it made every connection; returns the growth of our resident set per connection since
    /// [`start`](Self::start).
    pub(crate) fn wait_ready(&mut self) -> io::Result<f64> {
        let stdout =
            self.child.stdout.take().ok_or_else(|| io::Error::other("no pipe from the client"))?;
        let line = gevent::threadpool::spawn_blocking(move || {
            let mut line = String::new();
            BufReader::new(stdout).read_line(&mut line).map(|_| line)
        })
        .get()
        .map_err(io::Error::other)??;
        if line.trim() != format!("ready {CONNS}") {
            return Err(io::Error::other(format!("the client said {line:?}")));
        }
        Ok((rss_bytes() as f64 - self.rss0 as f64) / CONNS as f64)
    }

    /// Tells the client to close its connections (by closing its standard input) and waits for
    /// it to exit.
    pub(crate) fn finish(mut self) -> io::Result<()> {
        drop(self.child.stdin.take());
        let mut child = self.child;
        let status = gevent::threadpool::spawn_blocking(move || child.wait())
            .get()
            .map_err(io::Error::other)??;
        if status.success() {
            Ok(())
        } else {
            Err(io::Error::other(format!("the client process failed ({status})")))
        }
    }
}

/// The client side, in its own process: connects `count` times to `addr` with blocking std
/// sockets, calls `each` on every new connection, says `ready COUNT` on standard output, and
/// holds the connections until standard input closes.
pub(crate) fn client_main(
    mode: &str,
    addr: &str,
    count: &str,
    mut each: impl FnMut(&mut std::net::TcpStream) -> io::Result<()>,
) -> ExitCode {
    let mut run = || -> io::Result<()> {
        let addr: SocketAddr = addr.parse().map_err(io::Error::other)?;
        let count: usize = count.parse().map_err(io::Error::other)?;
        raise_fd_limit(count as u64 + SPARE_FDS).map_err(io::Error::other)?;
        let mut conns = Vec::with_capacity(count);
        for _ in 0..count {
            let mut conn = std::net::TcpStream::connect(addr)?;
            each(&mut conn)?;
            conns.push(conn);
        }
        println!("ready {}", conns.len());
        io::stdout().flush()?;
        io::stdin().read_to_end(&mut Vec::new())?;
        Ok(())
    };
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("gevent-bench {mode}: {e}");
            ExitCode::FAILURE
        }
    }
}

/// A listener on a free loopback port whose accept queue holds all [`CONNS`]: the client
/// connects faster than the hub accepts, and with std's 128 each connection past that waits a
/// second for its SYN to be sent again.
pub(crate) fn listener() -> io::Result<TcpListener> {
    use rustix::net::{AddressFamily, SocketType, bind, ipproto, listen, socket};
    let fd = socket(AddressFamily::INET, SocketType::STREAM, Some(ipproto::TCP))?;
    bind(&fd, &SocketAddr::from(([127, 0, 0, 1], 0)))?;
    listen(&fd, CONNS as i32)?;
    Ok(TcpListener::from(std::net::TcpListener::from(fd)))
}

/// Raises the soft `RLIMIT_NOFILE` to the hard one; fails if that is below `need`.
fn raise_fd_limit(need: u64) -> Result<(), String> {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let mut limit = getrlimit(Resource::Nofile);
    let hard = limit.maximum.unwrap_or(u64::MAX);
    if hard < need {
        return Err(format!("it needs {need} file descriptors and the hard limit is {hard}"));
    }
    if limit.current.is_some_and(|soft| soft < need) {
        limit.current = Some(hard);
        setrlimit(Resource::Nofile, limit)
            .map_err(|e| format!("cannot raise the descriptor limit to {hard}: {e}"))?;
    }
    Ok(())
}
