#![doc = include_str!("../README.md")]
#![deny(unsafe_code)]
#![warn(missing_docs)]

// The layers, for whoever works on the crate. Each module imports only from
// its own layer or a lower one. The only import cycles are the registry's
// knot inside runtime/ and Pool <-> Builder in api/ (each API names the other).
//
//   L4 api/       Pool, Spawner and spawn, Builder, JobBuilder, the handles: check input, call the runtime
//      forkjoin/  join and scope
//   L3 runtime/   the only threads: registry (a job's way in, resizing, shutdown), worker loop,
//                 worker set, monitoring probe, shutdown_now, deadline timer, reserved threads,
//                 help (a waiting job's worker)
//   L2 sleep.rs   how idle workers park and a push wakes one (state table and proof)
//      lifecycle.rs  intake and drain;  limits.rs  growing and shrinking;  metrics/  counters
//      capacity.rs  bounded levels: slots, producers waiting for room
//   L1 queue/     Priority, the deques, each worker's deques (local.rs), the injectors and the pick rule
//                 (queue/levels.rs), bounded starvation (queue/aging.rs), generic over the job type and
//                 free of threads
//      job/       the job, its cancellable cell and state machine, JobContext; job/erase.rs
//                 (jobs that borrow from a waiting frame) is the only module allowed `unsafe`
//      error.rs, config.rs, hooks.rs, isolation.rs (the latency-isolation options)
//   L0 sync.rs    std or loom primitives
//
// Under `--cfg loom`, sync.rs and queue/deque.rs swap in loom's primitives and
// a stand-in queue, and the models (loom_tests/, limits::loom_models,
// queue::levels::loom_models) run the real protocol code. docs/design.md
// summarises the design and points to the module that proves each part.

mod api;
mod capacity;
mod config;
mod error;
mod forkjoin;
mod hooks;
mod isolation;
mod job;
mod lifecycle;
mod limits;
#[cfg(all(test, loom))]
mod loom_tests;
mod metrics;
mod queue;
mod runtime;
mod sleep;
mod sync;

pub use api::{
    Builder, CancelHandle, JobBuilder, JobGroup, JobHandle, JoinTimeoutError, Pool, PromoteOutcome, Spawner, spawn,
};
pub use capacity::WhenFull;
pub use config::{DEFAULT_KEEP_ALIVE, DropPolicy, MAX_LEVELS, MAX_WORKERS};
pub use error::{BuildError, ErasedSpawnError, JobError, PanicPayload, ResizeError, SpawnError, SpawnErrorKind};
pub use forkjoin::{Scope, join};
pub use hooks::{JobInfo, JobOutcome};
pub use isolation::{DEFAULT_WORKER_NICE, MAX_NICE, MAX_RESERVED_THREADS};
pub use job::JobContext;
pub use job::state::CancelOutcome;
pub use metrics::{LevelMetrics, Metrics, WaitTimes, WorkerMetrics};
pub use queue::Priority;
pub use runtime::abort::{CancelledJobs, ShutdownReport};
