//! Building blocks shared by the synchronization primitives.

pub(crate) mod waiters;
