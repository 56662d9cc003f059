//! What a pool reports about itself: the [`Metrics`] snapshot and its
//! figures (`snapshot.rs`). How they are counted without slowing the pool
//! down, and the bounds a snapshot keeps under racing jobs, is in
//! `counters.rs`; the worker's side (counters, hooks, log events) in
//! `runtime/probe.rs`.

mod counters;
mod snapshot;

pub(crate) use self::counters::{LevelCounters, MetricsCore, ThreadCounts, WorkerCounters};
pub use self::snapshot::{LevelMetrics, Metrics, WaitTimes, WorkerMetrics};
