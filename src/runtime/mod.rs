//! The only layer with threads: the registry every worker and spawner
//! shares, the worker loop, the set of workers, the worker's monitoring
//! probe, `shutdown_now`, the deadline timer, reserved threads, and how a
//! worker whose job waits for other jobs helps. The protocols they run
//! (sleep, lifecycle, limits) and the queues they run them on live below.

pub(crate) mod abort;
pub(crate) mod help;
mod probe;
pub(crate) mod registry;
mod reserved;
pub(crate) mod timer;
pub(crate) mod worker;
mod workers;
