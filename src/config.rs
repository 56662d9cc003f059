//! The validated configuration a pool runs with, its bounds, and the one
//! check of worker limits that both [`Builder::build`](crate::Builder::build)
//! and [`Pool::set_worker_limits`](crate::Pool::set_worker_limits) make.

use std::any::Any;
use std::time::Duration;

use crate::error::LimitsError;
use crate::hooks::Monitoring;
use crate::isolation::Isolation;
use crate::job::panic_message;
use crate::sync::plain::{Arc, Mutex, lock};

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
    pub(crate) stack_size: Option<usize>,
    /// The user's code; see [`UserCode`].
    pub(crate) user_code: Mutex<Option<Arc<UserCode>>>,
    /// Per level: its capacity (`capacity.rs`), or `None` for unbounded.
    pub(crate) capacities: Vec<Option<usize>>,
    /// What dropping the `Pool` does with its backlog.
    pub(crate) on_drop: DropPolicy,
    /// Reserved threads and OS priority (`isolation.rs`).
    pub(crate) isolation: Isolation,
}

/// The user's code a pool calls: its thread name function, panic handler
/// and hooks.
///
/// Such code may hold a [`Spawner`](crate::Spawner) of its own pool (a hook
/// that spawns follow-ups), which holds the pool's shared state, which
/// holds the code: a cycle. So the shared state lets go of it at the
/// drain (`Registry::try_drain`, [`Config::release_user_code`]): intake is
/// closed and no job is left, so no thread starts any more (a start finds
/// the code gone and counts as refused by shutdown). Every worker thread
/// holds a clone of its own from its start (`WorkerProbe`), so that it
/// calls the same code to its end, `on_thread_stop` included, and so does a
/// worker left running by a shutdown that gave up on it.
pub(crate) struct UserCode {
    pub(crate) thread_name: ThreadNameFn,
    pub(crate) panic_handler: PanicHandler,
    /// The hooks, and whether to measure queue waits.
    pub(crate) monitoring: Monitoring,
}

impl Config {
    /// The user's code, or `None` once released: then no thread of the
    /// pool may start.
    pub(crate) fn user_code(&self) -> Option<Arc<UserCode>> {
        lock(&self.user_code).clone()
    }

    /// Lets go of the user's code. Call once no worker may start any more
    /// (the pool is drained). Its destructors (the user's captures)
    /// run on the calling thread, outside the lock; returns the payload if
    /// one panicked.
    pub(crate) fn release_user_code(&self) -> Option<Box<dyn Any + Send>> {
        let code = lock(&self.user_code).take();
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| drop(code))).err()
    }
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
