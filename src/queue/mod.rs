//! The queues: [`Priority`], the lock-free deques, each worker's own deques
//! and their flags ([`local`]), and the per-level injectors and pick rule
//! ([`levels`]), and the pass counts of bounded starvation ([`aging`]). Generic over the job type and free of threads, so that
//! they are tested with plain values.

pub(crate) mod aging;
pub(crate) mod deque;
pub(crate) mod levels;
pub(crate) mod local;
mod priority;

pub use priority::Priority;
