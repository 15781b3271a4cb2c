//! Building blocks shared by the synchronization primitives.

pub(crate) mod line;
pub(crate) mod takers;
pub(crate) mod waiters;
