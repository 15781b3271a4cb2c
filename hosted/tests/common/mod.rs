//! Helpers shared by the hosted test binaries that need them (`mod common;`).

// Each test binary uses some of them.
#![allow(dead_code)]

use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::Duration;

use gevent::net::{TcpListener, TcpStream};

/// Runs this test binary's ignored test `child` in a child process with `env` set to
/// `scenario`, and returns how it ended; a child that hangs is killed after a minute and fails
/// the test.
pub(crate) fn run_child(env: &str, scenario: &str) -> Output {
    let child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "child", "--ignored", "--nocapture", "--test-threads=1"])
        .env(env, scenario)
        .env_remove("RUST_BACKTRACE")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_or_kill(child, scenario)
}

/// Waits for `child` to end and returns how it did; a child that hangs is killed after a
/// minute and fails the test, which names it `scenario`.
pub(crate) fn wait_or_kill(child: Child, scenario: &str) -> Output {
    let pid = rustix::process::Pid::from_child(&child);
    let (done, outcome) = mpsc::channel();
    std::thread::spawn(move || done.send(child.wait_with_output()));
    match outcome.recv_timeout(Duration::from_secs(60)) {
        Ok(output) => output.unwrap(),
        Err(_) => {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
            let Output { stdout, stderr, .. } = outcome.recv().unwrap().unwrap();
            panic!(
                "the child {scenario} hung and was killed\nstdout:\n{}\nstderr:\n{}",
                String::from_utf8_lossy(&stdout),
                String::from_utf8_lossy(&stderr)
            );
        }
    }
}

/// A listener on a free loopback port, and its address.
pub(crate) fn listener() -> (TcpListener, SocketAddr) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    (listener, addr)
}

/// A connected pair over loopback: the client end, then the server end.
pub(crate) fn pair() -> (TcpStream, TcpStream) {
    let (listener, addr) = listener();
    let client = gevent::spawn(move || TcpStream::connect(addr).unwrap());
    let (server, _) = listener.accept().unwrap();
    (client.take().unwrap(), server)
}

/// Shrinks the kernel's buffers so that a few megabytes cannot be written at once.
pub(crate) fn small_buffers(writer: &TcpStream, reader: &TcpStream) {
    rustix::net::sockopt::set_socket_send_buffer_size(writer, 64 << 10).unwrap();
    rustix::net::sockopt::set_socket_recv_buffer_size(reader, 64 << 10).unwrap();
}

/// Echoes each of `streams` in a greenlet of its own until its peer shuts down writing, and
/// returns once every one has.
pub(crate) fn echo_each<S: Read + Write + 'static>(streams: impl Iterator<Item = io::Result<S>>) {
    let mut handlers = Vec::new();
    for stream in streams {
        let mut stream = stream.unwrap();
        handlers.push(gevent::spawn(move || {
            let mut buf = [0; 64];
            loop {
                let n = stream.read(&mut buf).unwrap();
                if n == 0 {
                    return;
                }
                stream.write_all(&buf[..n]).unwrap();
            }
        }));
    }
    for h in handlers {
        h.get().unwrap();
    }
}

/// A fresh directory of its own under the system's temporary directory, removed with
/// everything in it on drop. Its name is short: Unix socket paths are limited to about 100
/// bytes.
pub(crate) struct TempDir(PathBuf);

impl TempDir {
    pub(crate) fn new(name: &str) -> TempDir {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let unique = NEXT.fetch_add(1, Ordering::Relaxed);
        let path =
            std::env::temp_dir().join(format!("gevent-{name}-{}-{unique}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path); // left over from a crashed run with a reused pid
        std::fs::create_dir_all(&path).expect("make the temporary directory");
        TempDir(path)
    }

    pub(crate) fn path(&self) -> &Path {
        &self.0
    }

    pub(crate) fn join(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Runs `openssl` with `args` in `dir`, failing with its stderr if it fails.
pub(crate) fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl").args(args).current_dir(dir).output().unwrap();
    assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}
