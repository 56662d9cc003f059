//! The only layer with threads: the registry every worker and spawner
//! shares, the worker loop, the set of workers, the worker's monitoring
//! probe, `shutdown_now`, the deadline timer, and reserved threads. The protocols they run
//! (sleep, lifecycle, limits) and the queues they run them on live below.

pub(crate) mod abort;
mod probe;
pub(crate) mod registry;
mod reserved;
pub(crate) mod timer;
pub(crate) mod worker;
mod workers;
