//! The hub's side of [`GreenletTree`](crate::tree::GreenletTree): reading its greenlets.
#![allow(unsafe_code)] // the stack high-water marks; see the SAFETY comments

use alloc::string::String;
use alloc::vec::Vec;

use super::Hub;
use crate::greenlet::task::{State, Task};
use crate::tree::{GreenletInfo, GreenletState, GreenletTree, WaitReason, high_water};

impl Hub {
    /// A snapshot of the main greenlet and every live greenlet.
    pub(crate) fn snapshot(&self) -> GreenletTree {
        let live = self.live_greenlets();
        let mut greenlets = Vec::with_capacity(live.len() + 1);
        greenlets.push(self.describe_greenlet(self.main.task()));
        greenlets.extend(live.iter().map(|t| self.describe_greenlet(t.task())));
        greenlets[1..].sort_unstable_by_key(|g| g.id);
        GreenletTree { now: self.now(), greenlets }
    }

    /// How deep `task`'s stack has been used, in bytes from its top, if its stack source can
    /// tell; see [`Greenlet::stack_high_water`](crate::Greenlet::stack_high_water).
    pub(crate) fn stack_high_water(&self, task: &Task) -> Option<usize> {
        let region = task.context.stack_region()?;
        let (untouched_below, paint) = self.stacks.untouched_below(&region)?;
        if core::ptr::eq(task, self.current_task()) {
            // SAFETY: the running greenlet has a stack region only when it runs on it (the
            // main greenlet, on the thread's stack, has none).
            return Some(unsafe { high_water::of_current(&region, untouched_below, paint) });
        }
        let sp = task.context.suspended_sp();
        if sp == 0 || task.state.get() == State::Running {
            return None; // it never suspended: it has not run
        }
        // SAFETY: it is suspended on this thread (it is not the current greenlet, and greenlets
        // never leave their hub's thread), so nothing writes its stack while this runs, and
        // nothing here switches to it or ends it (which would give its stack back). Below
        // `sp - LIVE_MARGIN` are only its dead frames: the lowest live thing, the registers its
        // switch saved, is within the margin of `sp`.
        Some(unsafe { high_water::of_suspended(&region, untouched_below, paint, sp) })
    }

    fn describe_greenlet(&self, task: &Task) -> GreenletInfo {
        let state = task.state.get();
        let region = task.context.stack_region();
        GreenletInfo {
            id: task.id,
            name: String::from(task.name()),
            parent: (!task.is_main).then(|| task.parent.get()),
            state: GreenletState::of(state),
            waits_on: WaitReason::of(state, task.waits_on.get()),
            spawned_at: (!task.is_main).then_some(task.spawned_at),
            stack_size: region.map(|r| r.usable_size()),
            stack_high_water: self.stack_high_water(task),
        }
    }
}
