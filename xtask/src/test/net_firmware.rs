//! The networking firmware's step: the `mps2-an386` firmware with its LAN9118 on QEMU's
//! user-mode network, talked to by the host's kernel TCP stack through `hostfwd`.
//!
//! QEMU gets a free host port forwarded to the firmware's echo port. Once the firmware prints
//! `READY` (it has its address by DHCP and listens), a client connects, checks that a line comes
//! back, asks the firmware to resolve [`TEST_NAME`], checks the answer, churns connections
//! (see [`churn`] and [`abrupt`]) and checks that they leave the firmware's sockets and heap as they found
//! them, and sends `quit`, on which the firmware exits by semihosting with status 0 if every
//! check it made held.
//!
//! The name is answered by a small DNS server this step runs on the host's 127.0.0.1:53, which
//! the guest reaches as 10.0.2.2:53 (QEMU's user-mode network maps its host address to the
//! host's loopback). QEMU's own DNS relay (10.0.2.3, the one DHCP hands out) forwards to the
//! host's resolver, which on a machine without internet answers nothing, so the test cannot rest
//! on it: the client tells the firmware which server to ask.
//!
//! Every wait is bounded, and a firmware that hangs fails the step; QEMU is killed when the step
//! ends, however it ends.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, Shutdown, TcpListener, TcpStream, UdpSocket};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::thread;
use std::time::{Duration, Instant};

/// The step's name in the summary.
pub(crate) const NAME: &str = "firmware mps2-an386 lan9118 dhcp dns tcp under qemu";

/// The firmware's cargo project; `--lean` removes its `target` after the step.
pub(super) const FOLDER: &str = "examples/firmware-mps2-an386-net";
const BINARY: &str = "target/thumbv7em-none-eabihf/release/gevent-firmware-mps2-an386-net";

/// The firmware's echo port in the guest.
const GUEST_PORT: u16 = 7;

/// The name the host's DNS server answers, and its address (TEST-NET-1, reserved for
/// documentation: nothing real has it).
pub(crate) const TEST_NAME: &str = "gevent-test.internal";
const TEST_ADDRESS: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 7);

/// The DNS server the firmware asks for [`TEST_NAME`]: the host, as the guest sees it.
const HOST_AS_GUEST_SEES_IT: &str = "10.0.2.2";

/// How long the firmware may take to boot, get its address and listen; to answer a line; to
/// exit after `quit`. Generous: QEMU without `-icount` runs at the host's pace, which a loaded
/// CI machine slows down.
const BOOT_LIMIT: Duration = Duration::from_secs(120);
const REPLY_LIMIT: Duration = Duration::from_secs(60);
const EXIT_LIMIT: Duration = Duration::from_secs(60);

/// The churn's clients, each opening one connection at a time: as many as the firmware's
/// listener has listening sockets, so no connection finds none; with the control connection,
/// fewer than the firmware's four greenlet stacks.
const CHURN_CLIENTS: usize = 2;
/// Connections each client opens before the firmware's figures are first taken, and then
/// between the two readings. The first round is as long as the second: the firmware's heap
/// grows once, by 36 bytes, with what the churn has at once (a table reaching its working
/// size), which a warm-up of 20 connections reached in only some runs; never by more.
const WARM_UP: usize = 500;
const CHURN: usize = 500;
/// Connections then opened one at a time and closed by the client at once (see [`abrupt`]).
const ABRUPT: usize = 20;

/// Builds the firmware, runs it under QEMU and drives it; `Err` says what went wrong.
pub(crate) fn run(root: &Path) -> Result<(), String> {
    let folder = root.join(FOLDER);
    let built = Command::new("timeout")
        .args(["600", "cargo", "build", "--release"])
        .current_dir(&folder)
        .status()
        .map_err(|e| format!("running cargo build: {e}"))?;
    if !built.success() {
        return Err(format!("building the firmware: {built}"));
    }
    let dns = DnsServer::start()?;
    let port = free_port()?;
    let child = Command::new("qemu-system-arm")
        .args(["-cpu", "cortex-m4", "-machine", "mps2-an386", "-nographic"])
        .args(["-semihosting-config", "enable=on,target=native", "-nic"])
        .arg(format!("user,model=lan9118,hostfwd=tcp:127.0.0.1:{port}-:{GUEST_PORT}"))
        .arg("-kernel")
        .arg(folder.join(BINARY))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| format!("starting qemu-system-arm: {e}"))?;
    let mut qemu = Qemu(child);
    let output = qemu.0.stdout.take().ok_or("qemu's output is not piped")?;
    let lines = print_lines(output);

    wait_for_line(&lines, "READY", BOOT_LIMIT)?;
    let mut client = TcpStream::connect((Ipv4Addr::LOCALHOST, port))
        .map_err(|e| format!("connecting to the forwarded port {port}: {e}"))?;
    client.set_read_timeout(Some(REPLY_LIMIT)).map_err(|e| e.to_string())?;
    let mut reader = BufReader::new(client.try_clone().map_err(|e| e.to_string())?);
    for line in ["hello from the host's TCP stack", &"x".repeat(200)] {
        let echoed = exchange(&mut client, &mut reader, line)?;
        if echoed != line {
            return Err(format!("sent {line:?}, the echo returned {echoed:?}"));
        }
    }
    let resolved = exchange(
        &mut client,
        &mut reader,
        &format!("resolve {TEST_NAME} {HOST_AS_GUEST_SEES_IT}"),
    )?;
    if resolved != TEST_ADDRESS.to_string() {
        return Err(format!(
            "the firmware resolved {TEST_NAME} to {resolved:?}, not {TEST_ADDRESS}"
        ));
    }
    if dns.queries() == 0 {
        return Err(format!("the firmware answered {resolved} without asking the DNS server"));
    }
    churn(port, WARM_UP)?;
    let before = stats(&mut client, &mut reader)?;
    let warmed_up = 1 + CHURN_CLIENTS * WARM_UP;
    if !before.state.starts_with("sockets=2 greenlets=3 ") || before.accepted != warmed_up {
        return Err(format!(
            "after {warmed_up} connections, the firmware holds more than its listener, one \
             stream and its three greenlets, or counted others: {}",
            before.line
        ));
    }
    let start = Instant::now();
    churn(port, CHURN)?;
    let took = start.elapsed();
    let after = stats(&mut client, &mut reader)?;
    let connections = CHURN_CLIENTS * CHURN;
    println!(
        "{connections} connections in {:.2} s: {} before, {} after",
        took.as_secs_f64(),
        before.line,
        after.line
    );
    // Far fewer than one per frame (a wake-up reads every frame waiting), but a line left
    // masked after the first would stop the count at one.
    if after.irqs < before.irqs + 2 {
        return Err(format!(
            "the NIC's interrupt fired {} times over {connections} connections",
            after.irqs - before.irqs
        ));
    }
    if after.state != before.state || after.accepted != before.accepted + connections {
        return Err(format!(
            "{connections} connections changed the firmware's sockets, greenlets or heap, or \
             were not all accepted: {} before, {} after",
            before.line, after.line
        ));
    }
    abrupt(port, &mut client, &mut reader, &after)?;
    println!("{ABRUPT} connections closed at once: each left {}", before.state);
    client.write_all(b"quit\n").map_err(|e| format!("sending quit: {e}"))?;

    // QEMU closes its output when it exits: wait for that, bounded, then for its status.
    let deadline = Instant::now() + EXIT_LIMIT;
    loop {
        match lines.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(_) => {}
            Err(RecvTimeoutError::Disconnected) => break,
            Err(RecvTimeoutError::Timeout) => {
                return Err(format!("the firmware did not exit within {EXIT_LIMIT:?} of quit"));
            }
        }
    }
    let status = qemu.0.wait().map_err(|e| format!("waiting for qemu: {e}"))?;
    if !status.success() {
        return Err(format!("the firmware exited with {status}"));
    }
    Ok(())
}

/// Opens `per_client` connections from each of [`CHURN_CLIENTS`] threads, one at a time per
/// thread: each echoes a line, then the client closes its side and reads until the firmware
/// closes too (its greenlet has ended by then, so a client's next connection never needs a
/// second stack).
fn churn(port: u16, per_client: usize) -> Result<(), String> {
    let clients: Vec<_> = (0..CHURN_CLIENTS)
        .map(|client| {
            thread::spawn(move || -> Result<(), String> {
                for i in 0..per_client {
                    let line = format!("churn {client} {i}");
                    let stream = TcpStream::connect((Ipv4Addr::LOCALHOST, port))
                        .map_err(|e| format!("{line}: connecting: {e}"))?;
                    polite(stream, &line)?;
                }
                Ok(())
            })
        })
        .collect();
    for client in clients {
        client.join().map_err(|_| "a churn client panicked".to_owned())??;
    }
    Ok(())
}

/// Opens [`ABRUPT`] connections one after another, each closed by the client as soon as it
/// has sent a line, reading nothing (the firmware's echo meets a closed peer); once the
/// firmware has accepted each, its `stats` on the control connection must read as `before`.
fn abrupt(
    port: u16,
    control: &mut TcpStream,
    reader: &mut BufReader<TcpStream>,
    before: &Stats,
) -> Result<(), String> {
    for i in 0..ABRUPT {
        let line = format!("abrupt {i}");
        let stream = TcpStream::connect((Ipv4Addr::LOCALHOST, port))
            .map_err(|e| format!("{line}: connecting: {e}"))?;
        (&stream).write_all(format!("{line}\n").as_bytes()).map_err(|e| format!("{line}: {e}"))?;
        stream.shutdown(Shutdown::Both).map_err(|e| format!("{line}: {e}"))?;
        drop(stream);
        // QEMU takes the connection on the host at once and opens the guest's after: ask until
        // the firmware has accepted it (each answer comes once no ended connection's socket is
        // still closing).
        let accepted = before.accepted + i + 1;
        let deadline = Instant::now() + REPLY_LIMIT;
        let after = loop {
            let after = stats(control, reader)?;
            if after.accepted >= accepted {
                break after;
            }
            if Instant::now() > deadline {
                return Err(format!("{line}: the firmware did not accept it: {}", after.line));
            }
        };
        if after.state != before.state || after.accepted != accepted {
            return Err(format!(
                "{line}: a connection closed at once changed the firmware's sockets, greenlets \
                 or heap: {} before, {} after",
                before.line, after.line
            ));
        }
    }
    Ok(())
}

/// What the firmware's `stats` answers.
struct Stats {
    /// The whole line.
    line: String,
    /// What connections that ended must leave unchanged: sockets, greenlets, heap.
    state: String,
    /// Connections accepted so far.
    accepted: usize,
    /// The NIC's interrupts taken so far.
    irqs: usize,
}

/// Asks the firmware for its [`Stats`] on the control connection.
fn stats(control: &mut TcpStream, reader: &mut BufReader<TcpStream>) -> Result<Stats, String> {
    let line = exchange(control, reader, "stats")?;
    let parsed = line.split_once(" accepted=").and_then(|(state, counts)| {
        let (accepted, irqs) = counts.split_once(" irqs=")?;
        Some(Stats {
            state: state.to_owned(),
            accepted: accepted.parse().ok()?,
            irqs: irqs.parse().ok()?,
            line: line.clone(),
        })
    });
    parsed.ok_or_else(|| format!("the firmware's stats do not read as expected: {line:?}"))
}

/// A connection of [`churn`]: `line` comes back, then both sides close.
fn polite(mut stream: TcpStream, line: &str) -> Result<(), String> {
    stream.set_read_timeout(Some(REPLY_LIMIT)).map_err(|e| e.to_string())?;
    let mut reader = BufReader::new(stream.try_clone().map_err(|e| e.to_string())?);
    let echoed = exchange(&mut stream, &mut reader, line)?;
    if echoed != line {
        return Err(format!("sent {line:?}, the echo returned {echoed:?}"));
    }
    stream.shutdown(Shutdown::Write).map_err(|e| format!("{line}: {e}"))?;
    let mut rest = Vec::new();
    reader
        .read_to_end(&mut rest)
        .map_err(|e| format!("{line}: waiting for the firmware to close: {e}"))?;
    if !rest.is_empty() {
        return Err(format!("{line}: unexpected bytes after the echo: {rest:?}"));
    }
    Ok(())
}

/// Sends `line` and returns the line that comes back.
fn exchange(
    client: &mut TcpStream,
    reader: &mut BufReader<TcpStream>,
    line: &str,
) -> Result<String, String> {
    client
        .write_all(format!("{line}\n").as_bytes())
        .map_err(|e| format!("sending {line:?}: {e}"))?;
    let mut reply = String::new();
    match reader.read_line(&mut reply) {
        Ok(0) => Err(format!("the firmware closed the connection after {line:?}")),
        Ok(_) => Ok(reply.trim_end_matches('\n').to_owned()),
        Err(e) => Err(format!("waiting for the reply to {line:?}: {e}")),
    }
}

/// QEMU, killed (if still running) and reaped when dropped.
struct Qemu(Child);

impl Drop for Qemu {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Prints what QEMU prints (the firmware's semihosting output), line by line, and passes each
/// line on; the channel closes when QEMU closes its output.
fn print_lines(output: impl Read + Send + 'static) -> Receiver<String> {
    let (send, receive) = mpsc::channel();
    thread::spawn(move || {
        for line in BufReader::new(output).lines() {
            let Ok(line) = line else { break };
            println!("{line}");
            if send.send(line).is_err() {
                break;
            }
        }
    });
    receive
}

/// Waits for the line `wanted`; fails on a line starting with `FAILED`, when QEMU exits, or
/// after `limit`.
fn wait_for_line(lines: &Receiver<String>, wanted: &str, limit: Duration) -> Result<(), String> {
    let deadline = Instant::now() + limit;
    loop {
        match lines.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(line) if line == wanted => return Ok(()),
            Ok(line) if line.starts_with("FAILED") => return Err(line),
            Ok(_) => {}
            Err(RecvTimeoutError::Timeout) => {
                return Err(format!("the firmware did not print {wanted} within {limit:?}"));
            }
            Err(RecvTimeoutError::Disconnected) => {
                return Err(format!("qemu exited before the firmware printed {wanted}"));
            }
        }
    }
}

/// A port that was free a moment ago, for QEMU's `hostfwd`.
fn free_port() -> Result<u16, String> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).map_err(|e| e.to_string())?;
    Ok(listener.local_addr().map_err(|e| e.to_string())?.port())
}

/// A DNS server on 127.0.0.1:53 answering [`TEST_NAME`] with [`TEST_ADDRESS`] and every other
/// name with NXDOMAIN. It stops when dropped.
struct DnsServer {
    stop: Arc<AtomicBool>,
    queries: Arc<std::sync::atomic::AtomicUsize>,
    socket: UdpSocket,
}

impl DnsServer {
    fn start() -> Result<DnsServer, String> {
        let socket = UdpSocket::bind((Ipv4Addr::LOCALHOST, 53))
            .map_err(|e| format!("binding the test DNS server to 127.0.0.1:53: {e}"))?;
        let stop = Arc::new(AtomicBool::new(false));
        let queries = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let server = socket.try_clone().map_err(|e| e.to_string())?;
        let (stopped, counted) = (stop.clone(), queries.clone());
        thread::spawn(move || {
            let mut query = [0u8; 512];
            while let Ok((n, from)) = server.recv_from(&mut query) {
                if stopped.load(Ordering::Acquire) {
                    break;
                }
                if let Some(answer) = dns_answer(&query[..n]) {
                    counted.fetch_add(1, Ordering::AcqRel);
                    let _ = server.send_to(&answer, from);
                }
            }
        });
        Ok(DnsServer { stop, queries, socket })
    }

    /// How many queries it answered.
    fn queries(&self) -> usize {
        self.queries.load(Ordering::Acquire)
    }
}

impl Drop for DnsServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        // Wakes the server's receive so that it sees `stop`.
        if let Ok(address) = self.socket.local_addr() {
            let _ = self.socket.send_to(&[], address);
        }
    }
}

/// The answer to a standard query for one name: an A record for [`TEST_NAME`] (type A or
/// ANY), NXDOMAIN for other names; `None` for what is not such a query.
fn dns_answer(query: &[u8]) -> Option<Vec<u8>> {
    let header = query.get(..12)?;
    let standard_query = header[2] & 0xf8 == 0 && header[4..6] == [0, 1];
    if !standard_query {
        return None;
    }
    // The question: labels up to the root label, then type and class.
    let mut at = 12;
    let mut labels = Vec::new();
    loop {
        let len = usize::from(*query.get(at)?);
        at += 1;
        if len == 0 {
            break;
        }
        labels.push(std::str::from_utf8(query.get(at..at + len)?).ok()?.to_ascii_lowercase());
        at += len;
    }
    let question = query.get(12..at + 4)?;
    let qtype = u16::from_be_bytes([query[at], query[at + 1]]);
    let known = labels.join(".") == TEST_NAME;
    let answers = u8::from(known && (qtype == 1 || qtype == 255));
    let mut answer = Vec::with_capacity(question.len() + 32);
    answer.extend_from_slice(&header[..2]);
    // QR, the query's RD, RA; rcode NXDOMAIN for unknown names.
    answer.push(0x80 | (header[2] & 0x01));
    answer.push(0x80 | if known { 0 } else { 3 });
    answer.extend_from_slice(&[0, 1, 0, answers, 0, 0, 0, 0]);
    answer.extend_from_slice(&query[12..at + 4]);
    if answers == 1 {
        // The question's name (a pointer to offset 12), A, IN, TTL 60 s, 4 bytes of address.
        answer.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4]);
        answer.extend_from_slice(&TEST_ADDRESS.octets());
    }
    Some(answer)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(name: &str, qtype: u16) -> Vec<u8> {
        let mut q = vec![0xab, 0xcd, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
        for label in name.split('.') {
            q.push(label.len() as u8);
            q.extend_from_slice(label.as_bytes());
        }
        q.push(0);
        q.extend_from_slice(&qtype.to_be_bytes());
        q.extend_from_slice(&[0, 1]);
        q
    }

    #[test]
    fn the_test_name_gets_its_address() {
        let answer = dns_answer(&query(TEST_NAME, 1)).unwrap();
        assert_eq!(answer[..4], [0xab, 0xcd, 0x81, 0x80]);
        assert_eq!(answer[6..8], [0, 1]);
        assert_eq!(answer[answer.len() - 4..], TEST_ADDRESS.octets());
    }

    #[test]
    fn other_names_do_not_exist() {
        let answer = dns_answer(&query("elsewhere.internal", 1)).unwrap();
        assert_eq!(answer[3] & 0x0f, 3);
        assert_eq!(answer[6..8], [0, 0]);
    }

    #[test]
    fn a_truncated_query_gets_no_answer() {
        let q = query(TEST_NAME, 1);
        assert_eq!(dns_answer(&q[..q.len() - 3]), None);
    }
}
