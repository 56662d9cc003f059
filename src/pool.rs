//! [`Pool`], the owner of the worker threads, and [`Spawner`], the cheap
//! handle that hands it jobs from anywhere.

use std::fmt;

use crate::builder::{Builder, Config};
use crate::error::{BuildError, SpawnError};
use crate::handle::JobHandle;
use crate::job::Job;
use crate::metrics::Metrics;
use crate::priority::Priority;
use crate::registry::Registry;
use crate::sync::Arc;

/// A priority-aware, work-stealing pool of worker threads.
///
/// Jobs are queued per priority level and a worker always starts the most
/// urgent job there is (see the crate docs for the exact rule). Dropping the
/// pool shuts it down gracefully, like [`Pool::shutdown`].
///
/// ```
/// use priopool::{Pool, Priority};
///
/// let pool = Pool::builder().workers(2).build()?;
/// let answer = pool.submit(Priority::HIGH, || 6 * 7)?;
/// pool.spawn(Priority::LOW, || println!("background work"))?;
/// assert_eq!(answer.join()?, 42);
/// pool.shutdown(); // runs the LOW job too, then joins the workers
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Pool {
    spawner: Spawner,
}

/// A cloneable, `Send + Sync` handle for giving jobs to a [`Pool`] from
/// other threads and from inside its own jobs.
///
/// A job spawned from one of the pool's worker threads goes to that
/// worker's local deque for its level, where idle workers can steal it. A
/// `Spawner` does not keep the pool alive: once the pool shuts down, spawns
/// through it return [`SpawnErrorKind::Shutdown`](crate::SpawnErrorKind::Shutdown).
#[derive(Clone)]
pub struct Spawner {
    registry: Arc<Registry>,
}

impl Pool {
    /// A [`Builder`] with the defaults: one worker per logical CPU, two
    /// priority levels.
    pub fn builder() -> Builder {
        Builder::new()
    }

    /// A pool with the default configuration; see [`Pool::builder`].
    ///
    /// # Errors
    ///
    /// As [`Builder::build`].
    pub fn new() -> Result<Pool, BuildError> {
        Builder::new().build()
    }

    pub(crate) fn start(config: Config) -> Result<Pool, BuildError> {
        Ok(Pool { spawner: Spawner { registry: Registry::start(config)? } })
    }

    /// Queues `job` at `priority`; see [`Spawner::spawn`].
    ///
    /// # Errors
    ///
    /// As [`Spawner::spawn`].
    pub fn spawn<F>(&self, priority: Priority, job: F) -> Result<(), SpawnError<F>>
    where
        F: FnOnce() + Send + 'static,
    {
        self.spawner.spawn(priority, job)
    }

    /// Queues `job` at `priority` and returns a handle to its result; see
    /// [`Spawner::submit`].
    ///
    /// # Errors
    ///
    /// As [`Spawner::submit`].
    pub fn submit<F, T>(&self, priority: Priority, job: F) -> Result<JobHandle<T>, SpawnError<F>>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        self.spawner.submit(priority, job)
    }

    /// A handle that can spawn onto this pool from other threads and from
    /// inside its jobs.
    pub fn spawner(&self) -> Spawner {
        self.spawner.clone()
    }

    /// The number of worker threads.
    pub fn workers(&self) -> usize {
        self.spawner.registry.workers.len()
    }

    /// The number of priority levels.
    pub fn levels(&self) -> usize {
        self.spawner.levels()
    }

    /// How many jobs are queued at `priority` right now (a snapshot, the
    /// pool's *backlog* at that level), or `None` if the pool has no such
    /// level.
    pub fn queued(&self, priority: Priority) -> Option<usize> {
        let registry = &self.spawner.registry;
        priority.resolve(registry.levels.len()).map(|level| registry.levels.queued(level))
    }

    /// How many jobs have panicked since the pool started (spawned and
    /// submitted alike).
    pub fn panic_count(&self) -> usize {
        self.spawner.registry.panics()
    }

    /// A snapshot of the pool's counters: per level backlog, submitted,
    /// started, completed, panicked, rejected and (with
    /// [`Builder::wait_metrics`]) queue waits; workers busy and idle;
    /// steals; uptime. See [`Metrics`] for the bounds a snapshot keeps.
    ///
    /// Cost: one short lock and a read of a few counters per worker and per
    /// level; with wait metrics, a merge of the workers' histograms. Meant
    /// for monitoring (say, every 100 ms), not for every job.
    pub fn metrics(&self) -> Metrics {
        self.spawner.metrics()
    }

    /// Shuts the pool down gracefully: stops intake, runs every job already
    /// accepted (and every job those jobs spawn), then joins every worker
    /// thread. Dropping the pool does the same.
    ///
    /// Called from inside one of the pool's own jobs (for instance by a job
    /// that owns the `Pool` and drops it), it cannot wait for the drain,
    /// since the calling job is part of it: it stops intake and returns at
    /// once. The workers still run every accepted job and then exit on
    /// their own; their threads are detached rather than joined.
    pub fn shutdown(self) {
        // `Drop` does the work.
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        self.spawner.registry.shutdown();
    }
}

impl fmt::Debug for Pool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pool").field("workers", &self.workers()).field("levels", &self.levels()).finish()
    }
}

impl Spawner {
    /// Queues `job` at `priority`, to run once on some worker thread.
    ///
    /// A panic in `job` is caught: the worker survives, the pool's panic
    /// handler (see [`Builder::panic_handler`]) receives the payload, and
    /// [`Pool::panic_count`] goes up by one.
    ///
    /// # Errors
    ///
    /// A [`SpawnError`] holding `job`, unrun, when `priority` names a level
    /// the pool does not have, or when the pool has begun shutting down and
    /// the caller is not one of its own running jobs.
    pub fn spawn<F>(&self, priority: Priority, job: F) -> Result<(), SpawnError<F>>
    where
        F: FnOnce() + Send + 'static,
    {
        match self.registry.admit(priority) {
            Ok(admission) => {
                self.registry.inject(admission, Job::new(job));
                Ok(())
            }
            Err(kind) => Err(SpawnError::new(job, kind)),
        }
    }

    /// Queues `job` at `priority` and returns a [`JobHandle`] through which
    /// the submitter gets its value, or its panic, back.
    ///
    /// # Errors
    ///
    /// As [`Spawner::spawn`].
    pub fn submit<F, T>(&self, priority: Priority, job: F) -> Result<JobHandle<T>, SpawnError<F>>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        match self.registry.admit(priority) {
            Ok(admission) => {
                let (job, handle) = JobHandle::wrap(job);
                self.registry.inject(admission, job);
                Ok(handle)
            }
            Err(kind) => Err(SpawnError::new(job, kind)),
        }
    }

    /// The number of priority levels of the pool.
    pub fn levels(&self) -> usize {
        self.registry.levels.len()
    }

    /// A snapshot of the pool's counters, as [`Pool::metrics`]. It works
    /// after the pool has shut down too: then it gives the final counts.
    pub fn metrics(&self) -> Metrics {
        self.registry.metrics()
    }
}

impl fmt::Debug for Spawner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Spawner").field("levels", &self.levels()).finish_non_exhaustive()
    }
}
