//! What the embedded tests share: a host clock for the hub, leaked stacks, hub installers.

use gevent as _; // links the default platform: see `[dev-dependencies]` in Cargo.toml
use gevent_embedded::TickSource;

/// The host's monotonic clock as a nanosecond tick source.
#[derive(Clone, Copy)]
pub(crate) struct HostTicks(std::time::Instant);

impl HostTicks {
    /// Ticks counted from now.
    pub(crate) fn start() -> Self {
        HostTicks(std::time::Instant::now())
    }
}

impl TickSource for HostTicks {
    fn ticks(&self) -> u64 {
        self.0.elapsed().as_nanos() as u64
    }
    fn ticks_per_second(&self) -> u64 {
        1_000_000_000
    }
}

/// `count` static stacks of `size` bytes each, in leaked memory: a test's hub lives as long as
/// its thread.
#[allow(dead_code)] // not every test file makes its own stacks
pub(crate) fn leaked_stacks(count: usize, size: usize) -> gevent_embedded::StaticStacks {
    let memory: &'static mut [u8] = Box::leak(vec![0u8; count * size].into_boxed_slice());
    gevent_embedded::StaticStacks::new(memory, size)
}

/// Installs a hub without a network on this thread, with `count` stacks of `size` bytes; it
/// waits by yielding the thread.
#[allow(dead_code)] // not every test file has a plain hub
pub(crate) fn plain_hub(count: usize, size: usize) {
    let clock = gevent_embedded::TickClock::new(HostTicks::start());
    gevent_embedded::init(clock, leaked_stacks(count, size), |_| std::thread::yield_now())
        .expect("one hub per test thread");
}

/// Installs a hub on this thread whose network stack is an IP-medium interface on `device`
/// with `addresses`, and `stacks` greenlet stacks of 128 KiB (leaked: a test's hub lives as
/// long as its thread). The hub waits by yielding the thread.
#[allow(dead_code)] // not every test file has a network
pub(crate) fn ip_hub<D>(mut device: D, addresses: &[smoltcp::wire::IpCidr], stacks: usize)
where
    D: smoltcp::phy::Device + 'static,
{
    use smoltcp::iface::{Config, Interface};
    let mut iface = Interface::new(
        Config::new(smoltcp::wire::HardwareAddress::Ip),
        &mut device,
        smoltcp::time::Instant::ZERO,
    );
    iface.update_ip_addrs(|addrs| {
        for &address in addresses {
            addrs.push(address).expect("room for the test's addresses");
        }
    });
    let drive = Box::new(move |iface: &mut Interface, sockets: &mut _, now| {
        iface.poll(now, &mut device, sockets);
    });
    let stacks = leaked_stacks(stacks, 128 * 1024);
    let clock = gevent_embedded::TickClock::new(HostTicks::start());
    gevent_embedded::init_net(iface, drive, clock, stacks, |_| std::thread::yield_now())
        .expect("one hub per test thread");
}
