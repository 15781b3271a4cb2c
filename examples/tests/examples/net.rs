//! The client/server examples run against each other as separate processes, the way a reader
//! of the README runs them.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use super::common::{Backstop, backstop, example, ok, output};

/// A server example running, and the rest of its output.
pub(super) struct Server {
    child: Child,
    out: BufReader<std::process::ChildStdout>,
    _backstop: Backstop,
}

/// Starts a server example and returns it with its first line of output, once it printed it.
/// It is killed if it still runs after the [`backstop`].
pub(super) fn start_server(mut command: Command) -> (Server, String) {
    let mut child = command.stdout(Stdio::piped()).spawn().unwrap();
    let backstop = backstop(child.id());
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut first = String::new();
    out.read_line(&mut first).unwrap();
    (Server { child, out, _backstop: backstop }, first)
}

/// Kills a server that a failed test left running.
impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn finish(mut server: Server) -> String {
    let status = server.child.wait().unwrap();
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut server.out, &mut rest).unwrap();
    assert!(status.success(), "{status}: {rest}");
    rest
}

#[test]
fn udp_client_talks_to_udp_server() {
    let mut server = example("udp_server");
    server.args(["127.0.0.1:0", "--count", "2"]);
    let (server, first) = start_server(server);
    let addr = first.trim().rsplit(' ').next().unwrap().to_owned();
    assert!(first.starts_with("Receiving datagrams on"), "{first}");
    for message in ["hello", "gevent for Rust"] {
        let said = ok(output(example("udp_client").args([message, &addr])));
        assert!(said.contains(&format!("answered: Received {} bytes", message.len())), "{said}");
    }
    let rest = finish(server);
    assert!(rest.contains("served 2 datagrams"), "{rest}");
}

#[test]
fn unixsocket_client_talks_to_unixsocket_server() {
    let path: PathBuf =
        std::env::temp_dir().join(format!("gevent-example-{}.sock", std::process::id()));
    let path = path.to_str().unwrap().to_owned();
    let mut server = example("unixsocket_server");
    server.args([path.as_str(), "--count", "1"]);
    let (server, first) = start_server(server);
    assert_eq!(first.trim(), format!("Serving on {path}"));
    let said = ok(output(example("unixsocket_client").arg(&path)));
    assert!(said.contains("Welcome to the gevent unix-socket server"), "{said}");
    assert!(said.contains("echo: Hello from a greenlet"), "{said}");
    let rest = finish(server);
    assert!(rest.contains("served 1 connections"), "{rest}");
}

#[test]
fn a_client_talks_to_echoserver_through_portforwarder() {
    use std::io::Write;
    use std::net::TcpStream;

    let mut echo = example("echoserver");
    echo.args(["0", "--once"]);
    let (echo, first) = start_server(echo);
    let echo_addr = first.trim().rsplit(' ').next().unwrap().to_owned();
    assert!(first.starts_with("Starting echo server on"), "{first}");

    let mut forwarder = example("portforwarder");
    forwarder.args(["127.0.0.1:0", &echo_addr, "--once"]);
    let (forwarder, first) = start_server(forwarder);
    // "Starting port forwarder 127.0.0.1:PORT -> DEST"
    let source = first.split_whitespace().nth(3).unwrap().to_owned();

    let client = TcpStream::connect(&source).unwrap();
    let mut lines = BufReader::new(&client);
    let mut line = String::new();
    lines.read_line(&mut line).unwrap();
    assert!(line.starts_with("Welcome to the echo server!"), "{line}");
    (&client).write_all(b"through the forwarder\r\n").unwrap();
    line.clear();
    lines.read_line(&mut line).unwrap();
    assert_eq!(line, "through the forwarder\r\n");
    (&client).write_all(b"quit\r\n").unwrap();
    line.clear();
    assert_eq!(lines.read_line(&mut line).unwrap(), 0, "the echo server closes after quit");
    // The forwarder's client-to-server direction ends with the client's end of stream.
    drop(lines);
    drop(client);

    let said = finish(echo);
    assert!(said.contains("quit"), "{said}");
    finish(forwarder);
}
