//! The networking firmware's step: the `mps2-an386` firmware with its LAN9118 on QEMU's
//! user-mode network, talked to by the host's kernel TCP stack through `hostfwd`.
//!
//! QEMU gets a free host port forwarded to the firmware's echo port. Once the firmware prints
//! `READY` (it listens), a client connects, checks that lines come back, and sends `quit`, on
//! which the firmware exits by semihosting with status 0 if every check it made held.
//!
//! Every wait is bounded, and a firmware that hangs fails the step; QEMU is killed when the step
//! ends, however it ends.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::thread;
use std::time::{Duration, Instant};

/// The step's name in the summary.
pub(crate) const NAME: &str = "firmware mps2-an386 lan9118 tcp under qemu";

const FOLDER: &str = "examples/firmware-mps2-an386-net";
const BINARY: &str = "target/thumbv7em-none-eabihf/release/gevent-firmware-mps2-an386-net";

/// The firmware's echo port in the guest.
const GUEST_PORT: u16 = 7;

/// How long the firmware may take to boot, get its address and listen; to answer a line; to
/// exit after `quit`. Generous: QEMU without `-icount` runs at the host's pace, which a loaded
/// CI machine slows down.
const BOOT_LIMIT: Duration = Duration::from_secs(120);
const REPLY_LIMIT: Duration = Duration::from_secs(60);
const EXIT_LIMIT: Duration = Duration::from_secs(60);

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
