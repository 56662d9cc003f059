//! The queues: [`Priority`], the lock-free deques, and the per-level
//! injectors, counts and pick rule ([`levels`]). Generic over the job type
//! and free of threads, so that they are tested with plain values.

pub(crate) mod deque;
pub(crate) mod levels;
mod priority;

pub use priority::Priority;
