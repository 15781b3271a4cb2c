//! gevent for Rust on a Cortex-M3: the TI LM3S6965 evaluation board, as `qemu-system-arm
//! -machine lm3s6965evb` emulates it.
//!
//! Brings the board up (heap, SysTick clock, static greenlet stacks, `wfi` as the idle hook,
//! a smoltcp interface on a loopback device), then runs greenlets with timers, a `Timeout`, a
//! kill, a queue between a producer and a consumer, a TCP echo between greenlets over smoltcp,
//! a spawn beyond the stack pool, and greenlets with static headers. It prints what happens by semihosting and exits
//! with status 0 only if every check held.
//!
//! Run it with `cargo run --release` in this folder (the runner starts QEMU).

#![no_std]
#![no_main]

extern crate alloc;

use alloc::rc::Rc;
use alloc::vec::Vec;
use core::cell::{Cell, RefCell};
use core::time::Duration;

use alloc::boxed::Box;
use cortex_m_rt::entry;
use cortex_m_semihosting::hprintln;
use gevent_embedded::headers::HeaderError;
use gevent_embedded::net::{NetError, TcpListener, TcpStream};
use gevent_embedded::queue::Queue;
use gevent_embedded::{
    Builder, FailureKind, GetError, Interrupted, StackMemory, StaticHeaders, StaticStacks,
    TickClock, Timeout, joinall, now, sleep, spawn,
};
use smoltcp::iface::{Config, Interface};
use smoltcp::phy::{Loopback, Medium};
use smoltcp::wire::{HardwareAddress, IpAddress, IpCidr, Ipv4Address};

#[path = "../../firmware-common/board.rs"]
#[macro_use]
mod board;
mod isr_checks;

use board::{HEAP, SysTickSource};

/// The LM3S6965's core clock as QEMU runs it.
const CORE_HZ: u32 = 12_000_000;

const MS: Duration = Duration::from_millis(1);
const LOCALHOST: Ipv4Address = Ipv4Address::new(127, 0, 0, 1);

fn check(ok: bool, what: &str) -> bool {
    hprintln!("[{}] {}", if ok { "ok" } else { "FAILED" }, what);
    ok
}

fn millis() -> u64 {
    now().as_nanos() / 1_000_000
}

#[entry]
fn main() -> ! {
    // 24 KiB of heap for greenlet headers and the hub's collections.
    init_heap!(24 * 1024);
    let mut core = cortex_m::Peripherals::take().expect("taken once");
    board::start_systick(&mut core.SYST);

    // Four greenlet stacks of 5 KiB.
    static mut STACK_MEM: StackMemory<{ 4 * 5 * 1024 }> = StackMemory::new();
    // SAFETY: the only reference ever made to this buffer, handed to the stack pool for good.
    let stack_mem = unsafe { &mut *core::ptr::addr_of_mut!(STACK_MEM) }.as_mut_slice();
    let stacks = StaticStacks::new(stack_mem, 5 * 1024);

    // A smoltcp interface on a loopback device (this board's Ethernet is not emulated by the
    // stock QEMU setup; the greenlet side is the same with a real driver).
    let mut device = Loopback::new(Medium::Ip);
    let mut iface =
        Interface::new(Config::new(HardwareAddress::Ip), &mut device, smoltcp::time::Instant::ZERO);
    iface.update_ip_addrs(|addrs| {
        addrs.push(IpCidr::new(IpAddress::Ipv4(LOCALHOST), 8)).expect("room for one address");
    });
    let drive: gevent_embedded::net::Drive = Box::new(move |iface, sockets, now| {
        iface.poll(now, &mut device, sockets);
    });
    gevent_embedded::init_net(iface, drive, TickClock::new(SysTickSource), stacks, |_| {
        isr_checks::idle_hook()
    })
    .expect("the hub is installed once");

    hprintln!("gevent-rs on a Cortex-M3 (lm3s6965): {} greenlet stacks of 5 KiB", 4);
    let mut all_ok = true;

    // First, while every stack is freshly painted: how deep greenlets use their stacks.
    all_ok &= stack_report();

    // 1. Greenlets sleeping different times wake in deadline order.
    let woke = Rc::new(RefCell::new(Vec::new()));
    let sleepers: Vec<_> = [30u32, 10, 20]
        .into_iter()
        .map(|ms| {
            let woke = woke.clone();
            spawn(move || {
                sleep(ms * MS)?;
                woke.borrow_mut().push(ms);
                Ok::<_, Interrupted>(())
            })
        })
        .collect();
    let start = millis();
    joinall(&sleepers).expect("nothing interrupts main");
    let took = millis() - start;
    hprintln!("    sleepers woke in order {:?} after {} ms", woke.borrow(), took);
    all_ok &= check(*woke.borrow() == [10, 20, 30] && (30..200).contains(&took), "timers");

    // 2. A Timeout interrupts a long sleep at its deadline.
    let timeout = Timeout::start(20 * MS);
    let start = millis();
    let slept = sleep(Duration::from_secs(10));
    let took = millis() - start;
    hprintln!("    sleep(10 s) under Timeout(20 ms): {:?} after {} ms", slept, took);
    all_ok &= check(slept == Err(Interrupted::TimedOut(timeout.id())), "timeout");
    drop(timeout);

    // 3. Kill: the victim's sleep fails, its guard is dropped, get() reports the kill.
    let dropped = Rc::new(Cell::new(false));
    let d = dropped.clone();
    let victim = Builder::new().name("victim").spawn(move || {
        struct Guard(Rc<Cell<bool>>);
        impl Drop for Guard {
            fn drop(&mut self) {
                self.0.set(true);
            }
        }
        let _guard = Guard(d);
        sleep(Duration::from_secs(60))
    });
    sleep(MS).expect("nothing interrupts main");
    victim.kill().expect("nothing interrupts main");
    // A plain kill is a cancellation: get() says Killed, and error() has nothing.
    let killed = matches!(victim.get(), Err(GetError::Killed(e)) if e.kind == FailureKind::Killed)
        && victim.killed()
        && victim.error().is_none();
    all_ok &= check(killed && dropped.get(), "kill runs the victim's destructors");

    // 4. A bounded queue between a producer and a consumer.
    let queue = Rc::new(Queue::bounded(4));
    let q = queue.clone();
    let producer = spawn(move || {
        for i in 1..=100u32 {
            q.put(i).map_err(|_| ())?;
        }
        q.close();
        Ok::<_, ()>(())
    });
    let q = queue.clone();
    let consumer = spawn(move || q.iter().sum::<Result<u32, _>>());
    let sum = consumer.get().expect("the consumer ends, nothing interrupts it");
    all_ok &= check(sum == 5050 && producer.get() == Ok(Ok(())), "queue of 4 passes 100 items");

    // 5. What a parked greenlet costs beyond its stack: heap used per greenlet waiting on an
    //    event (the collections it uses have grown already, above).
    let gate = Rc::new(gevent_embedded::event::Event::new());
    let before = HEAP.used();
    let parked: Vec<_> = (0..3)
        .map(|_| {
            let gate = gate.clone();
            spawn(move || gate.wait())
        })
        .collect();
    sleep(MS).expect("nothing interrupts main");
    let per_greenlet = HEAP.used().saturating_sub(before) / 3;
    hprintln!("    RAM per parked greenlet beyond its stack: {} bytes", per_greenlet);
    all_ok &= check(per_greenlet <= 256, "per-greenlet overhead within 256 bytes");
    gate.set();
    joinall(&parked).expect("nothing interrupts main");

    // 6. A TCP echo between greenlets over smoltcp.
    let listener = TcpListener::bind(7, 1).expect("port 7 is free");
    let server = spawn(move || -> Result<usize, NetError> {
        let mut stream = listener.accept()?;
        let mut buf = [0u8; 64];
        let mut echoed = 0;
        loop {
            let n = stream.read(&mut buf)?;
            if n == 0 {
                return Ok(echoed);
            }
            stream.write_all(&buf[..n])?;
            echoed += n;
        }
    });
    let client = spawn(|| -> Result<bool, NetError> {
        let mut stream = TcpStream::connect((LOCALHOST, 7))?;
        let message = b"hello, greenlets on a Cortex-M3";
        stream.write_all(message)?;
        let mut reply = [0u8; 31];
        let mut got = 0;
        while got < reply.len() {
            got += stream.read(&mut reply[got..])?;
        }
        stream.close()?;
        Ok(&reply == message)
    });
    let echoed_ok = client.get() == Ok(Ok(true));
    let served = server.get();
    hprintln!("    tcp echo over smoltcp: client {:?}, server {:?}", client.get(), served);
    all_ok &= check(echoed_ok && served == Ok(Ok(31)), "tcp echo between greenlets over smoltcp");

    // 7. More live greenlets than stacks: the extra one fails with a clear error.
    let gate = Rc::new(gevent_embedded::event::Event::new());
    let holders: Vec<_> = (0..5)
        .map(|_| {
            let gate = gate.clone();
            spawn(move || gate.wait())
        })
        .collect();
    sleep(MS).expect("nothing interrupts main");
    gate.set();
    joinall(&holders).expect("nothing interrupts main");
    let no_stack: Vec<_> = holders
        .iter()
        .filter_map(|h| match h.get() {
            Err(GetError::Failed(e)) if matches!(e.kind, FailureKind::NoStack(_)) => Some(e),
            _ => None,
        })
        .collect();
    if let Some(e) = no_stack.first() {
        hprintln!("    {}", e);
    }
    all_ok &= check(no_stack.len() == 1, "a fifth live greenlet finds no stack");

    // 8. Static greenlet headers: spawning takes nothing from the heap for them, their slots
    //    are reused, and a spawn that finds every slot taken fails with a clear error.
    all_ok &= static_headers();

    all_ok &= isr_checks::run();
    clock_figures();

    hprintln!("{} after {} ms", if all_ok { "ALL OK" } else { "SOME CHECKS FAILED" }, millis());
    if all_ok {
        // Last, since it ends the run: through the panic handler when it holds.
        isr_checks::hub_call_from_a_handler();
    }
    board::exit(all_ok)
}

/// Check 8: greenlets whose headers come from a `StaticHeaders` buffer, then the heap again.
fn static_headers() -> bool {
    static HEADERS: StaticHeaders<3, 256> = StaticHeaders::new();
    hprintln!("    a greenlet's header: {} bytes", gevent_embedded::headers::HEADER_SIZE);
    gevent_embedded::headers::use_source(&HEADERS);
    let mut batch = Vec::with_capacity(3);
    let before = HEAP.used();
    batch.extend((0..3u32).map(|i| spawn(move || i * 2)));
    let heap_taken = HEAP.used() - before;
    let values: Vec<_> = batch.drain(..).map(|g| g.get()).collect();
    hprintln!("    heap taken by 3 spawns with static headers: {} bytes", heap_taken);
    let mut ok = check(heap_taken == 0 && values == [Ok(0), Ok(2), Ok(4)], "static headers");
    let reused = (0..20u32).all(|i| spawn(move || i).get() == Ok(i)) && HEADERS.in_use() <= 1;
    ok &= check(reused, "20 spawns reuse the 3 header slots");
    let gate = Rc::new(gevent_embedded::event::Event::new());
    batch.extend((0..3).map(|_| {
        let gate = gate.clone();
        spawn(move || gate.wait().map(|_| 1).unwrap_or(0))
    }));
    let refused = spawn(|| 9).get();
    gate.set();
    let released = batch.drain(..).all(|g| g.get() == Ok(1));
    let exhausted = HeaderError::Exhausted { slots: 3 };
    match &refused {
        Err(GetError::Failed(e)) => hprintln!("    {}", e),
        other => hprintln!("    a fourth spawn: {:?}", other),
    }
    let failed =
        matches!(&refused, Err(GetError::Failed(e)) if e.kind == FailureKind::NoHeader(exhausted));
    ok &= check(failed && released, "a fourth live greenlet finds no header slot");
    gevent_embedded::headers::use_heap();
    ok
}

/// Each greenlet's stack high-water mark: a parked one, a sleeping one, and both ends of a TCP
/// echo, measured on stacks no greenlet used before (the mark covers everyone who ran on a
/// stack since it was painted). Parked greenlets are read from outside, the echo ends read
/// their own before they finish (after that, the stack is no longer theirs).
fn stack_report() -> bool {
    let gate = Rc::new(gevent_embedded::event::Event::new());
    let g = gate.clone();
    let parked = Builder::new().name("parked").spawn(move || g.wait());
    let listener = TcpListener::bind(8, 1).expect("port 8 is free");
    let server = Builder::new().name("echo server").spawn(move || {
        let mut stream = listener.accept()?;
        let mut buf = [0u8; 64];
        loop {
            let n = stream.read(&mut buf)?;
            if n == 0 {
                return Ok::<_, NetError>(gevent_embedded::current().stack_high_water());
            }
            stream.write_all(&buf[..n])?;
        }
    });
    let client = Builder::new().name("echo client").spawn(|| {
        let mut stream = TcpStream::connect((LOCALHOST, 8))?;
        stream.write_all(b"how deep")?;
        let mut reply = [0u8; 8];
        let mut got = 0;
        while got < reply.len() {
            got += stream.read(&mut reply[got..])?;
        }
        stream.close()?;
        Ok::<_, NetError>(gevent_embedded::current().stack_high_water())
    });
    let server_mark = server.get().ok().and_then(|r| r.ok()).flatten();
    let client_mark = client.get().ok().and_then(|r| r.ok()).flatten();
    let parked_mark = parked.stack_high_water();
    gate.set();
    parked.join().expect("nothing interrupts main");
    let size = 5 * 1024;
    let marks =
        [("parked", parked_mark), ("echo server", server_mark), ("echo client", client_mark)];
    hprintln!("stack high-water marks (bytes of {} per stack):", size);
    for (name, mark) in marks {
        hprintln!("    greenlet {}: {:?}", name, mark);
    }
    check(
        marks.iter().all(|(_, mark)| mark.is_some_and(|m| m > 0 && m < size)),
        "every greenlet's stack high-water mark is known and within its stack",
    )
}

/// What a clock reading costs, in virtual nanoseconds per call: instructions when QEMU runs
/// with `-icount shift=0` (a figure, not a check).
fn clock_figures() {
    use gevent_embedded::TickSource;
    use gevent_embedded::platform::Clock;
    const CALLS: u64 = 2_000;
    let clock = TickClock::new(SysTickSource);
    let start = SysTickSource.ticks();
    let mut sink = 0;
    for _ in 0..CALLS {
        sink ^= core::hint::black_box(&clock).now().as_nanos();
    }
    let raw = SysTickSource.ticks();
    for _ in 0..CALLS {
        sink ^= core::hint::black_box(&SysTickSource).ticks();
    }
    let end = SysTickSource.ticks();
    core::hint::black_box(sink);
    let per_call = |ticks: u64| ticks * 1_000_000_000 / u64::from(CORE_HZ) / CALLS;
    hprintln!(
        "    clock: TickClock::now() {} virtual ns per call, the raw tick read {}",
        per_call(raw - start),
        per_call(end - raw)
    );
}
