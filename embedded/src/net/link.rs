//! The link's state (cable, carrier, association), as the driver reports it.

use alloc::rc::Rc;
#[cfg(target_has_atomic = "ptr")]
use core::sync::atomic::Ordering;
#[cfg(not(target_has_atomic = "ptr"))]
use portable_atomic::Ordering;

use gevent_core::event::Event;

use super::{NetError, NetPoller};

impl NetPoller {
    /// Records whether the link is up, as the driver sees it (a PHY's link status, say); a
    /// stack starts with the link up. Greenlets in [`wait_link_up`] wake on the hub's next
    /// turn after it comes up.
    pub fn set_link(&mut self, up: bool) {
        self.link_up = up;
    }

    /// Whether the link is up, as the driver last reported.
    pub fn link_is_up(&self) -> bool {
        self.link_up
    }

    /// Brings the event that [`wait_link_up`] waits on in line with the link; run by the hub's
    /// poll, where waking greenlets is allowed.
    pub(super) fn report_link(&mut self) {
        if self.link_up == self.link_event.is_set() {
            return;
        }
        if self.link_up {
            self.link_event.set();
            // Greenlets were woken: the poll must return so that they run.
            self.woken.0.store(true, Ordering::Release);
        } else {
            self.link_event.clear();
        }
    }
}

/// Records whether the link is up (see [`NetPoller::set_link`]), for a driver that checks its
/// link from a greenlet.
pub fn set_link_up(up: bool) -> Result<(), NetError> {
    NetPoller::with(|p| p.set_link(up))
}

/// Whether the link is up, as the driver last reported.
pub fn link_is_up() -> Result<bool, NetError> {
    NetPoller::with(|p| p.link_is_up())
}

/// Waits until the link is up (at once if it is).
pub fn wait_link_up() -> Result<(), NetError> {
    loop {
        let (up, event): (bool, Rc<Event>) =
            NetPoller::with(|p| (p.link_up, p.link_event.clone()))?;
        if up {
            return Ok(());
        }
        event.wait()?;
    }
}
