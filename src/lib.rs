#![doc = include_str!("../README.md")]
//!
//! # The queues and the pick order
//!
//! ```text
//!  spawn from outside         spawn from inside a job
//!        │                            │
//!        ▼                            ▼
//!  ┌───────────┐            ┌───────────────────────┐
//!  │ injector 0│──batch──▶  │ worker w: deque 0     │◀─steal── other workers
//!  │ injector 1│──batch──▶  │           deque 1     │◀─steal──
//!  │    ...    │            │           ...         │
//!  └───────────┘            └───────────────────────┘
//!
//!  next job = for level in 0..k (most urgent first):
//!                 skip the level if its queued count is 0
//!                 local deque → injector → other workers' deques
//! ```
//!
//! Modules, one concern each: `builder` (configuration), `priority` (levels,
//! injectors and the pick rule), `worker` (the worker loop), `sleep` (the
//! idle/wake protocol), `scaling` (dynamic pools: growing, shrinking,
//! resizing), `shutdown` (intake and drain), `handle` ([`JobHandle`],
//! [`CancelHandle`]), `pool` ([`Pool`], [`Spawner`]), `options`
//! ([`JobBuilder`]: deadlines and other per-job options), `task` (the
//! cancellable job cell and its state machine), `context` ([`JobContext`]),
//! `timer` (the deadline timer thread), `abort` ([`Pool::shutdown_now`],
//! [`Pool::shutdown_timeout`]), `metrics` ([`Metrics`]: counters per worker,
//! summed on read) and `hooks` (user hooks, `log` events). `docs/design.md` in the repository describes
//! the design and its invariants.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod abort;
mod builder;
mod context;
mod deque;
mod error;
mod handle;
mod hooks;
mod job;
#[cfg(all(test, loom))]
mod loom_tests;
mod metrics;
mod options;
mod pool;
mod priority;
mod registry;
mod scaling;
mod shutdown;
mod sleep;
mod sync;
mod task;
mod timer;
mod worker;
mod workers;

pub use abort::{CancelledJobs, ShutdownReport};
pub use builder::{Builder, DEFAULT_KEEP_ALIVE, MAX_LEVELS, MAX_WORKERS};
pub use context::JobContext;
pub use error::{BuildError, JobError, JoinTimeoutError, PanicPayload, ResizeError, SpawnError, SpawnErrorKind};
pub use handle::{CancelHandle, JobHandle};
pub use hooks::{JobInfo, JobOutcome};
pub use metrics::{LevelMetrics, Metrics, WaitTimes, WorkerMetrics};
pub use options::JobBuilder;
pub use pool::{Pool, Spawner};
pub use priority::Priority;
pub use task::CancelOutcome;
