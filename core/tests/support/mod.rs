//! Helpers shared by the integration tests that include them (`mod support;`).

#![allow(dead_code)] // each test file uses what it needs

use std::cell::RefCell;
use std::rc::Rc;

use gevent_core::stack::{StackError, StackRegion, StackSource};

/// A stack source over another (the simulated platform's) that records every region it
/// hands out, in order: how many stacks a test made, and where they are.
pub(crate) struct RecordingStacks {
    inner: Box<dyn StackSource>,
    allocated: Rc<RefCell<Vec<StackRegion>>>,
}

impl RecordingStacks {
    /// Wraps `inner`; the returned list fills as regions are allocated.
    pub(crate) fn over(inner: Box<dyn StackSource>) -> (Self, Rc<RefCell<Vec<StackRegion>>>) {
        let allocated = Rc::new(RefCell::new(Vec::new()));
        (RecordingStacks { inner, allocated: allocated.clone() }, allocated)
    }
}

// SAFETY: every region comes from `inner`, a valid source, and goes back to it.
#[allow(unsafe_code)]
unsafe impl StackSource for RecordingStacks {
    fn round(&self, size: usize) -> Result<usize, StackError> {
        self.inner.round(size)
    }
    fn allocate(&mut self, size: usize) -> Result<StackRegion, StackError> {
        let region = self.inner.allocate(size)?;
        self.allocated.borrow_mut().push(region);
        Ok(region)
    }
    fn untouched_below(&self, region: &StackRegion) -> Option<usize> {
        self.inner.untouched_below(region)
    }
    fn paint(&self) -> usize {
        self.inner.paint()
    }
    unsafe fn release(&mut self, region: StackRegion) {
        // SAFETY: the caller's promise, passed on: `region` came from `inner`'s `allocate`.
        unsafe { self.inner.release(region) }
    }
}
