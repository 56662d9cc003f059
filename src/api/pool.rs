//! [`Pool`], the owner of the worker threads, and [`Spawner`], the cheap
//! handle that hands it jobs from anywhere.

use std::fmt;
use std::ops::RangeInclusive;
use std::time::Duration;

use super::builder::Builder;
use super::handle::JobHandle;
use super::options::JobBuilder;
use crate::config::Config;
use crate::error::{BuildError, ResizeError, SpawnError};
use crate::job::Job;
use crate::metrics::Metrics;
use crate::queue::Priority;
use crate::runtime::abort::{self, CancelledJobs, ShutdownReport};
use crate::runtime::registry::Registry;
use crate::sync::Arc;

/// A priority-aware, work-stealing pool of worker threads.
///
/// Jobs are queued per priority level and a worker always starts the most
/// urgent job there is (see the crate docs for the exact rule). Within a
/// level, jobs start in roughly submission order: one worker takes them in
/// order; with several workers, each takes the next job it finds (its own
/// deque first), so the start order across workers is not FIFO.
///
/// Dropping the pool shuts it down gracefully, like [`Pool::shutdown`]: the
/// dropping thread **blocks** until every accepted job has run (unlike
/// rayon's pool, whose drop does not wait). Use [`Pool::shutdown_timeout`]
/// to bound that wait, or [`Pool::shutdown_now`] to cancel the backlog.
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

    /// The shared state, for the loom models' oracles.
    #[cfg(all(test, loom))]
    pub(crate) fn registry(&self) -> &Registry {
        &self.spawner.registry
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

    /// Describes a job at `priority` with options (a deadline, a maximum
    /// queue wait, a [`JobContext`](crate::JobContext)); see [`JobBuilder`].
    pub fn job(&self, priority: Priority) -> JobBuilder<'_> {
        self.spawner.job(priority)
    }

    /// A handle that can spawn onto this pool from other threads and from
    /// inside its jobs.
    pub fn spawner(&self) -> Spawner {
        self.spawner.clone()
    }

    /// The number of workers now (a snapshot): threads running or being
    /// started, not counting workers that have been told to retire. After
    /// a shrinking resize this falls as surplus workers finish their
    /// current job and leave.
    pub fn workers(&self) -> usize {
        self.spawner.registry.limits.current()
    }

    /// The worker limits `min..=max`. A fixed pool has `min == max`.
    pub fn worker_limits(&self) -> RangeInclusive<usize> {
        let counts = self.spawner.registry.limits.counts();
        counts.min..=counts.max
    }

    /// How many worker threads the pool has started since it was built,
    /// retired ones included.
    pub fn workers_started(&self) -> usize {
        self.spawner.registry.workers.thread_counts().0
    }

    /// How many worker threads have retired since the pool was built
    /// (surplus after a resize, or idle past keep-alive). Threads that exit
    /// at shutdown are not counted. A thread is counted as it leaves, after
    /// its last job and its `on_thread_stop` hook: a little after
    /// [`Pool::workers`] stopped counting it.
    pub fn workers_retired(&self) -> usize {
        self.spawner.registry.workers.thread_counts().1
    }

    /// Resizes the pool to exactly `n` workers, `1..=MAX_WORKERS`, at run
    /// time: the same as `set_worker_limits(n, n)`.
    ///
    /// On a fixed pool this changes its fixed size. On a dynamic pool it
    /// pins the size at `n` (the pool stops growing and shrinking on its
    /// own) until [`Pool::set_worker_limits`] opens a range again.
    ///
    /// # Errors
    ///
    /// As [`Pool::set_worker_limits`].
    #[doc(alias = "resize")]
    pub fn set_workers(&self, n: usize) -> Result<(), ResizeError> {
        Registry::set_worker_limits(&self.spawner.registry, n, n)
    }

    /// Sets the worker limits at run time to `min..=max` (`min` may be 0;
    /// `max` is `1..=MAX_WORKERS`), as [`Builder::min_workers`] and
    /// [`Builder::max_workers`] do at build time.
    ///
    /// - Growing: if fewer than `min` workers run, the missing ones are
    ///   started before this returns.
    /// - Shrinking: if more than `max` workers run, the surplus leaves
    ///   without interrupting any job: each surplus worker finishes the job
    ///   it is running and takes no new one. Jobs still in its local deques
    ///   stay there, stolen and run by the others. This call
    ///   does not wait for them; [`Pool::workers`] falls as they leave. (A
    ///   worker that was already in the middle of choosing its next job when
    ///   the limits changed may still start that one job.)
    /// - Between the limits, workers above `min` exit after idling for the
    ///   keep-alive ([`Builder::keep_alive`]), and the pool grows while jobs
    ///   wait and no worker is idle.
    ///
    /// Concurrent calls are allowed; the last one to apply its limits wins.
    ///
    /// # Errors
    ///
    /// A [`ResizeError`] when `max` is 0 or above [`MAX_WORKERS`](crate::MAX_WORKERS),
    /// or `min > max` (the pool is left unchanged); or when the OS refused
    /// to start a thread (the limits are in force, the pool keeps running
    /// with the workers it has, see [`ResizeError::is_thread_spawn`]).
    pub fn set_worker_limits(&self, min: usize, max: usize) -> Result<(), ResizeError> {
        Registry::set_worker_limits(&self.spawner.registry, min, max)
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
        priority.resolve(registry.levels.len()).map(|level| registry.queued(level))
    }

    /// How many jobs have panicked since the pool started (spawned and
    /// submitted alike): jobs whose closure panicked while it ran, the sum
    /// of [`LevelMetrics::panicked`](crate::LevelMetrics::panicked) over the
    /// levels once the pool is at rest. A destructor that panics outside a
    /// job's run (the closure of a job that never ran, a result nobody
    /// took) is not a job panic: see
    /// [`Metrics::drop_panics`](crate::Metrics::drop_panics).
    pub fn panic_count(&self) -> usize {
        self.spawner.registry.panics()
    }

    /// A snapshot of the pool's counters: per level backlog, submitted,
    /// started, completed, panicked, rejected, cancelled, expired and (with
    /// [`Builder::wait_metrics`]) queue waits; workers present, busy and
    /// idle, the pool's size, threads started and retired; steals; uptime.
    /// See [`Metrics`] for the bounds a snapshot keeps.
    ///
    /// Cost: one short lock and a read of a few counters per worker and per
    /// level; with wait metrics, a merge of the workers' histograms. Meant
    /// for monitoring (say, every 100 ms), not for every job.
    pub fn metrics(&self) -> Metrics {
        self.spawner.metrics()
    }

    /// Shuts the pool down gracefully: stops intake, runs every job already
    /// accepted (and every job those jobs spawn), then joins every worker
    /// thread ever started (retired workers included). Dropping the pool
    /// does the same.
    ///
    /// If jobs are queued and no worker thread exists (a pool with
    /// [`Builder::min_workers`] 0 whose thread starts the OS refused), the
    /// calling thread runs them itself.
    ///
    /// Called from one of the pool's own threads (for instance by a job, or
    /// a thread hook or thread-local destructor of a worker, that owns the
    /// `Pool` and drops it), it cannot wait for the drain, which may need
    /// the calling thread, nor join that thread: it stops intake and
    /// returns at once. The workers still run every accepted job and then
    /// exit on their own; their threads are detached rather than joined.
    pub fn shutdown(self) {
        // `Drop` does the work.
    }

    /// Shuts the pool down without running its backlog: stops intake,
    /// cancels every queued job (its closure is dropped and its handle
    /// yields [`JobError::Cancelled`](crate::JobError::Cancelled) before
    /// this returns), waits for the jobs already running, and joins every
    /// worker thread. Returns how many jobs were cancelled at each level.
    ///
    /// Running jobs are not interrupted (a thread cannot be stopped from
    /// outside); cancel their handles first if they watch their
    /// [`JobContext`](crate::JobContext). A job that a running job spawns
    /// once this call has begun is accepted and then cancelled, not run,
    /// and counted.
    ///
    /// Called from one of the pool's own threads (a job, a thread hook), it
    /// cancels the queued jobs as above but, as [`Pool::shutdown`] does
    /// there, does not wait for the running ones or join the threads: the
    /// workers exit on their own when those end, detached. The counts then
    /// cover the jobs cancelled before it returned.
    pub fn shutdown_now(self) -> CancelledJobs {
        abort::shutdown_now(&self.spawner.registry)
    }

    /// Shuts the pool down gracefully, as [`Pool::shutdown`], but gives up
    /// waiting after `timeout` (one overall bound for the whole call, not a
    /// bound per thread): then it cancels every job still queued, as
    /// [`Pool::shutdown_now`], and returns without waiting for the jobs
    /// still running, whose worker threads finish them and exit on their
    /// own, detached. If every job ends in time, it joins the threads that
    /// exit by the same bound and detaches the others (still in a slow
    /// `on_thread_stop` hook, say). The report says which happened: see
    /// [`ShutdownReport`]. The bound does not cover running the destructors
    /// of the cancelled closures, which happens on the calling thread.
    ///
    /// Called from one of the pool's own threads (a job, a thread hook) it
    /// cannot wait for the drain or join that thread, as [`Pool::shutdown`]
    /// there: it closes intake, returns [`ShutdownReport::Detached`] at
    /// once, and the workers finish every accepted job on their own.
    pub fn shutdown_timeout(self, timeout: Duration) -> ShutdownReport {
        abort::shutdown_timeout(&self.spawner.registry, timeout)
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        Registry::shutdown(&self.spawner.registry);
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
        Registry::spawn(&self.registry, priority, job, None, |job, _| (Job::new(job), ()))
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
        Registry::spawn(&self.registry, priority, job, None, |job, _| JobHandle::wrap(job, &self.registry))
    }

    /// Describes a job at `priority` with options; see [`JobBuilder`].
    pub fn job(&self, priority: Priority) -> JobBuilder<'_> {
        JobBuilder::new(&self.registry, priority)
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
