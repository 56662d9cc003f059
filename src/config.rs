//! The validated configuration a pool runs with, its bounds, and the one
//! check of worker limits that both [`Builder::build`](crate::Builder::build)
//! and [`Pool::set_worker_limits`](crate::Pool::set_worker_limits) make.

use std::any::Any;
use std::time::Duration;

use crate::error::LimitsError;
use crate::hooks::Monitoring;
use crate::isolation::Isolation;
use crate::job::panic_message;
use crate::sync::plain::Arc;

/// The most priority levels a pool may have.
pub const MAX_LEVELS: usize = 64;

/// The most worker threads a pool may have.
pub const MAX_WORKERS: usize = 1 << 15;

/// How long an idle worker above a dynamic pool's minimum stays parked
/// before it exits, unless [`Builder::keep_alive`](crate::Builder::keep_alive) says otherwise.
pub const DEFAULT_KEEP_ALIVE: Duration = Duration::from_secs(10);

pub(crate) type ThreadNameFn = Arc<dyn Fn(usize) -> String + Send + Sync>;
pub(crate) type PanicHandler = Arc<dyn Fn(Box<dyn Any + Send>) + Send + Sync>;

/// A validated configuration.
pub(crate) struct Config {
    /// Workers started at build time and kept when idle.
    pub(crate) min_workers: usize,
    /// The most workers growth may start. Equal to `min_workers` for a
    /// fixed pool.
    pub(crate) max_workers: usize,
    pub(crate) keep_alive: Duration,
    pub(crate) levels: usize,
    pub(crate) thread_name: ThreadNameFn,
    pub(crate) stack_size: Option<usize>,
    pub(crate) panic_handler: PanicHandler,
    pub(crate) monitoring: Monitoring,
    /// Per level: its capacity (`capacity.rs`), or `None` for unbounded.
    pub(crate) capacities: Vec<Option<usize>>,
    /// What dropping the `Pool` does with its backlog.
    pub(crate) on_drop: DropPolicy,
    /// Reserved threads and OS priority (`isolation.rs`).
    pub(crate) isolation: Isolation,
}

/// Checks worker limits `min..=max`: `max` in `1..=MAX_WORKERS`, `min <= max`.
pub(crate) fn validate_limits(min: usize, max: usize) -> Result<(), LimitsError> {
    if max == 0 {
        return Err(LimitsError::NoWorkers);
    }
    if max > MAX_WORKERS {
        return Err(LimitsError::TooManyWorkers { asked: max, max: MAX_WORKERS });
    }
    if min > max {
        return Err(LimitsError::MinAboveMax { min, max });
    }
    Ok(())
}

/// The default panic handler: prints the message to stderr.
pub(crate) fn print_panic(payload: Box<dyn Any + Send>) {
    let thread = crate::sync::plain::thread::current();
    let name = thread.name().unwrap_or("<unnamed>");
    eprintln!("priopool: a job panicked on thread '{name}': {}", panic_message(payload.as_ref()));
}

/// What dropping a [`Pool`](crate::Pool) does with the jobs still queued;
/// set with [`Builder::on_drop`](crate::Builder::on_drop).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum DropPolicy {
    /// Run every accepted job, then join the workers, as
    /// [`Pool::shutdown`](crate::Pool::shutdown): the default. The dropping
    /// thread blocks until the backlog has run.
    #[default]
    Drain,
    /// Cancel the backlog and wait only for the running jobs, as
    /// [`Pool::shutdown_now`](crate::Pool::shutdown_now): for a pool that an
    /// early `?` or a panic may drop with work still queued. The cancelled
    /// jobs' handles yield [`JobError::Cancelled`](crate::JobError::Cancelled)
    /// and the metrics count them.
    CancelBacklog,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_are_validated() {
        assert!(validate_limits(0, 1).is_ok());
        assert!(matches!(validate_limits(0, 0), Err(LimitsError::NoWorkers)));
        assert!(matches!(validate_limits(3, 2), Err(LimitsError::MinAboveMax { min: 3, max: 2 })));
        assert!(matches!(validate_limits(1, MAX_WORKERS + 1), Err(LimitsError::TooManyWorkers { .. })));
    }
}
