//! The `echo` workload's server, and `idle_conns`: many idle connections on one hub.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::SocketAddr;
use std::process::{Command, ExitCode, Stdio};

use gevent::net::{TcpListener, TcpStream};
use gevent::server::StreamServer;
use gevent::spawn;

use crate::{report, rss_bytes};

/// Serves the echo workload on `127.0.0.1:port` until killed, as gevent's anchor does: a
/// `StreamServer` running one greenlet per connection, each reading up to 4 KiB and writing all
/// of it back until end of file.
pub(crate) fn serve(port: u16) -> ExitCode {
    let listener = match TcpListener::bind(("127.0.0.1", port)) {
        Ok(listener) => listener,
        Err(e) => {
            eprintln!("gevent-bench: cannot listen on 127.0.0.1:{port}: {e}");
            return ExitCode::FAILURE;
        }
    };
    // The load generator resets its connections when it stops: that ends them as well as EOF.
    let server = StreamServer::new(listener, |stream, _peer| match echo(&stream) {
        Err(e) if e.kind() == io::ErrorKind::ConnectionReset => Ok(()),
        other => other,
    });
    match server.serve_forever() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("gevent-bench: the echo server failed: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Echoes `stream` until end of file or an error, which ends only this connection.
fn echo(mut stream: &TcpStream) -> io::Result<()> {
    let mut buf = [0u8; 4096];
    loop {
        let n = stream.read(&mut buf)?;
        if n == 0 {
            return Ok(());
        }
        stream.write_all(&buf[..n])?;
    }
}

/// Idle connections that `idle_conns` holds.
const IDLE_CONNS: usize = 10_000;

/// Descriptors besides the connections: stdio, the listener, the poller, the waker, the pipes
/// to the client process.
const SPARE_FDS: u64 = 64;

/// Holds [`IDLE_CONNS`] connections, each with a greenlet parked reading it, and reports the
/// growth of the resident set per connection. The clients are in a child process (this binary
/// with `idle_conns_client`), so that each process needs only one descriptor per connection.
pub(crate) fn idle_conns() -> ExitCode {
    if let Err(why) = raise_fd_limit(IDLE_CONNS as u64 + SPARE_FDS) {
        eprintln!("gevent-bench: idle_conns skipped: {why}");
        return ExitCode::SUCCESS;
    }
    match hold_idle_conns() {
        Ok(bytes) => {
            report("idle_conns", "bytes_per_conn", bytes);
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("gevent-bench: idle_conns failed: {e}");
            ExitCode::FAILURE
        }
    }
}

fn hold_idle_conns() -> io::Result<f64> {
    let listener = listener_with_backlog(IDLE_CONNS as i32)?;
    let addr = listener.local_addr()?;
    let rss0 = rss_bytes();
    let mut child = Command::new(std::env::current_exe()?)
        .args(["idle_conns_client", &addr.to_string(), &IDLE_CONNS.to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()?;
    let mut readers = Vec::with_capacity(IDLE_CONNS);
    for _ in 0..IDLE_CONNS {
        let (stream, _) = listener.accept()?;
        // Each greenlet parks in its read until the client closes its end.
        readers.push(spawn(move || {
            let mut buf = [0u8; 64];
            (&stream).read(&mut buf).map_err(|e| e.to_string())
        }));
    }
    // Let every reader run up to its park.
    gevent::yield_now().map_err(io::Error::from)?;
    let rss1 = rss_bytes();
    // The client waits for its stdin to close, then closes its connections and exits; its
    // report that it made them all comes first.
    let mut line = String::new();
    let stdout = child.stdout.take().expect("piped stdout");
    gevent::threadpool::spawn_blocking(move || BufReader::new(stdout).read_line(&mut line))
        .get()
        .map_err(io::Error::other)??;
    drop(child.stdin.take());
    for reader in &readers {
        reader.get().map_err(io::Error::other)?.map_err(io::Error::other)?;
    }
    let status = child.wait()?;
    if !status.success() {
        return Err(io::Error::other(format!("the client process failed ({status})")));
    }
    Ok((rss1 as f64 - rss0 as f64) / IDLE_CONNS as f64)
}

/// A listener on a free loopback port whose accept queue holds `backlog` connections: the
/// client connects faster than the hub accepts, and with std's 128 each connection past that
/// waits a second for its SYN to be sent again.
pub(crate) fn listener_with_backlog(backlog: i32) -> io::Result<TcpListener> {
    use rustix::net::{AddressFamily, SocketType, bind, ipproto, listen, socket};
    let fd = socket(AddressFamily::INET, SocketType::STREAM, Some(ipproto::TCP))?;
    bind(&fd, &SocketAddr::from(([127, 0, 0, 1], 0)))?;
    listen(&fd, backlog)?;
    Ok(TcpListener::from(std::net::TcpListener::from(fd)))
}

/// The client side of `idle_conns`, in its own process: connects `count` times to `addr` with
/// blocking std sockets, says so on standard output, holds them until standard input closes.
pub(crate) fn idle_conns_client(addr: &str, count: &str) -> ExitCode {
    let run = || -> io::Result<()> {
        let addr: SocketAddr = addr.parse().map_err(io::Error::other)?;
        let count: usize = count.parse().map_err(io::Error::other)?;
        raise_fd_limit(count as u64 + SPARE_FDS).map_err(io::Error::other)?;
        let conns = (0..count)
            .map(|_| std::net::TcpStream::connect(addr))
            .collect::<io::Result<Vec<_>>>()?;
        println!("connected {}", conns.len());
        io::stdout().flush()?;
        io::stdin().read_to_end(&mut Vec::new())?;
        Ok(())
    };
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("gevent-bench idle_conns_client: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Raises the soft `RLIMIT_NOFILE` to the hard one; fails if that is below `need`.
pub(crate) fn raise_fd_limit(need: u64) -> Result<(), String> {
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
