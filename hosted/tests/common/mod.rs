//! Helpers shared by the hosted test binaries that need them (`mod common;`).

// Each test binary uses some of them.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::process::{Command, Output, Stdio};
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
