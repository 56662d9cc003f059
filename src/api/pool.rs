//! [`Pool`], the owner of the worker threads, and [`Spawner`], the cheap
//! handle that hands it jobs from anywhere.

use std::fmt;
use std::ops::RangeInclusive;
use std::time::{Duration, Instant};

use super::builder::Builder;
use super::handle::JobHandle;
use super::options::JobBuilder;
use super::spawner::Spawner;
use crate::config::{Config, DropPolicy};
use crate::error::{BuildError, ResizeError, SpawnError};
use crate::forkjoin::Scope;
use crate::metrics::Metrics;
use crate::queue::Priority;
use crate::runtime::abort::{self, CancelledJobs, ShutdownReport};
use crate::runtime::registry::Registry;

/// A priority-aware, work-stealing pool of worker threads.
///
/// Jobs are queued per priority level and a worker always starts the most
/// urgent job there is; within a level, a worker starts the jobs its own
/// jobs spawned first, newest first, then jobs from outside in submission
/// order, with turns for the oldest so that no job waits for ever. The
/// exact rule, and why the start order across workers is not FIFO:
/// [the crate docs](crate#the-priority-rule).
///
/// Dropping the pool shuts it down gracefully, like [`Pool::shutdown`]: the
/// dropping thread **blocks** until every accepted job has run (unlike
/// rayon's pool, whose drop does not wait). Use [`Pool::shutdown_timeout`]
/// to bound that wait, or [`Pool::shutdown_now`] to cancel the backlog; or
/// build the pool with [`Builder::on_drop`]`(`[`DropPolicy::CancelBacklog`](crate::DropPolicy::CancelBacklog)`)`
/// so that a drop on an early `?` or a panic does not run the backlog.
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
    /// Whether dropping the pool drains it: [`DropPolicy::Drain`], or an
    /// explicit [`Pool::shutdown`].
    drain_on_drop: bool,
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
        let drain_on_drop = config.on_drop == DropPolicy::Drain;
        Ok(Pool { spawner: Spawner { registry: Registry::start(config)? }, drain_on_drop })
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
    pub fn spawn<F>(&self, priority: impl Into<Priority>, job: F) -> Result<(), SpawnError<F>>
    where
        F: FnOnce() + Send + 'static,
    {
        self.spawner.spawn(priority, job)
    }

    /// Queues `job` at `priority` unless its level is full; see
    /// [`Spawner::try_spawn`].
    ///
    /// # Errors
    ///
    /// As [`Spawner::try_spawn`].
    pub fn try_spawn<F>(&self, priority: impl Into<Priority>, job: F) -> Result<(), SpawnError<F>>
    where
        F: FnOnce() + Send + 'static,
    {
        self.spawner.try_spawn(priority, job)
    }

    /// Queues `job` at `priority`, waiting at most `timeout` for room; see
    /// [`Spawner::spawn_timeout`].
    ///
    /// # Errors
    ///
    /// As [`Spawner::spawn_timeout`].
    pub fn spawn_timeout<F>(
        &self,
        priority: impl Into<Priority>,
        timeout: Duration,
        job: F,
    ) -> Result<(), SpawnError<F>>
    where
        F: FnOnce() + Send + 'static,
    {
        self.spawner.spawn_timeout(priority, timeout, job)
    }

    /// Queues `job` at `priority` and returns a handle to its result; see
    /// [`Spawner::submit`].
    ///
    /// # Errors
    ///
    /// As [`Spawner::submit`].
    pub fn submit<F, T>(&self, priority: impl Into<Priority>, job: F) -> Result<JobHandle<T>, SpawnError<F>>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        self.spawner.submit(priority, job)
    }

    /// As [`Pool::submit`] unless the level is full; see
    /// [`Spawner::try_submit`].
    ///
    /// # Errors
    ///
    /// As [`Spawner::try_submit`].
    pub fn try_submit<F, T>(&self, priority: impl Into<Priority>, job: F) -> Result<JobHandle<T>, SpawnError<F>>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        self.spawner.try_submit(priority, job)
    }

    /// As [`Pool::submit`], waiting at most `timeout` for room; see
    /// [`Spawner::submit_timeout`].
    ///
    /// # Errors
    ///
    /// As [`Spawner::submit_timeout`].
    pub fn submit_timeout<F, T>(
        &self,
        priority: impl Into<Priority>,
        timeout: Duration,
        job: F,
    ) -> Result<JobHandle<T>, SpawnError<F>>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        self.spawner.submit_timeout(priority, timeout, job)
    }

    /// Describes a job at `priority` with options (a name, a deadline, a
    /// maximum queue wait, a [`JobContext`](crate::JobContext), a
    /// [`JobGroup`](crate::JobGroup), what to do on a full level); see
    /// [`JobBuilder`].
    pub fn job(&self, priority: impl Into<Priority>) -> JobBuilder<'_> {
        self.spawner.job(priority)
    }

    /// Runs `op` with a [`Scope`] whose jobs may borrow from the caller's
    /// stack, and returns its value once every job spawned in the scope
    /// (and every job they spawned in it) has finished.
    ///
    /// `op` runs on the calling thread. Called from a job of this pool, the
    /// worker waits by helping: it runs the scope's jobs that have not
    /// started, and other jobs at least as urgent as its own (see the
    /// [crate docs](crate#jobs-that-wait-for-jobs)); from any other thread
    /// it blocks.
    ///
    /// # Panics
    ///
    /// Once every job has finished: resumes `op`'s panic if it panicked,
    /// else the first panic of a job of the scope (the others are
    /// dropped). A scoped job cancelled before it started, by
    /// [`Pool::shutdown_now`] (or a shutdown that cancels the backlog) or by
    /// [`Pool::cancel_queued`], counts as a panic saying so.
    ///
    /// ```
    /// use priopool::{Pool, Priority};
    ///
    /// let pool = Pool::builder().workers(2).build()?;
    /// let mut halves = [0u64; 2];
    /// let data: Vec<u64> = (1..=1000).collect();
    /// let (left, right) = data.split_at(500);
    /// let [l, r] = &mut halves;
    /// pool.scope(|s| {
    ///     s.spawn(Priority::HIGH, |_| *l = left.iter().sum()).unwrap();
    ///     s.spawn(Priority::LOW, |_| *r = right.iter().sum()).unwrap();
    /// });
    /// assert_eq!(halves[0] + halves[1], 500_500);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn scope<'scope, OP, R>(&self, op: OP) -> R
    where
        OP: FnOnce(&Scope<'scope>) -> R,
    {
        self.spawner.scope(op)
    }

    /// Runs `a` and `b`, potentially in parallel, on this pool; see
    /// [`Spawner::join`]. If the pool refuses `b` (shutting down, or
    /// `priority` names no level), both run on the calling thread.
    pub fn join<A, B, RA, RB>(&self, priority: impl Into<Priority>, a: A, b: B) -> (RA, RB)
    where
        A: FnOnce() -> RA,
        B: FnOnce() -> RB + Send,
        RB: Send,
    {
        self.spawner.join(priority, a, b)
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
    /// pool's *backlog* at that level, the figure of
    /// [`LevelMetrics::backlog`](crate::LevelMetrics::backlog)), or `None`
    /// if the pool has no such level. A job cancelled or expired is out of
    /// it at once. To hold a producer back, a
    /// [capacity](Builder::capacity) does what comparing this figure to a
    /// bound cannot: the check and the push are one step.
    pub fn queued(&self, priority: impl Into<Priority>) -> Option<usize> {
        let registry = &self.spawner.registry;
        priority.into().resolve(registry.levels.len()).map(|level| registry.queued(level))
    }

    /// Cancels every job queued at `priority` (the level's whole backlog,
    /// spawned and submitted jobs alike): each is taken off its queue and
    /// dropped unrun, its handle yields
    /// [`JobError::Cancelled`](crate::JobError::Cancelled), and the metrics
    /// count it cancelled. Running jobs are not touched (a
    /// [`JobGroup`](crate::JobGroup) can signal those), and the pool keeps
    /// running and accepting jobs. Returns how many jobs were cancelled;
    /// jobs queued while it runs may or may not be among them. A panic in
    /// a cancelled closure's destructor is caught and counted in
    /// [`Metrics::drop_panics`](crate::Metrics::drop_panics). A level the
    /// pool does not have has nothing to cancel: 0.
    ///
    /// The queued jobs of a [`Pool::scope`] at this level are cancelled
    /// too, and so is the second closure of a [`Pool::join`] called from
    /// outside the pool, which waits as a scoped job: that scope or join
    /// then panics once its other jobs have finished, with a message saying
    /// a job was cancelled.
    pub fn cancel_queued(&self, priority: impl Into<Priority>) -> usize {
        let registry = &self.spawner.registry;
        priority.into().resolve(registry.levels.len()).map_or(0, |level| abort::cancel_level(registry, level))
    }

    /// How many jobs have panicked since the pool started (spawned,
    /// submitted and scoped alike, and `join` halves that ran as jobs of
    /// their own): jobs whose closure panicked while it ran, the sum
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

    /// Blocks until the pool is at rest: nothing queued, no job running, no
    /// spawn from another thread under way; then the figures of
    /// [`Pool::metrics`] are exact. For tests and batch programs: "run all
    /// of this, then report". Jobs spawned meanwhile (by other threads, or
    /// by the jobs themselves) are waited for too, so a steady stream of
    /// spawns can keep it waiting for ever; [`Pool::wait_idle_timeout`]
    /// bounds the wait. The pool stays open.
    ///
    /// It checks every so often (from 10 µs, doubling up to 1 ms) rather
    /// than being woken, so that the workers pay nothing for it.
    ///
    /// Returns `false` at once, without waiting, when called from one of
    /// the pool's own jobs (which is running, so the pool cannot come to
    /// rest); `true` otherwise.
    pub fn wait_idle(&self) -> bool {
        self.wait_idle_until(None)
    }

    /// As [`Pool::wait_idle`], waiting at most `timeout`; returns whether
    /// the pool came to rest in time. A `timeout` too large to add to
    /// `Instant::now()` waits without bound.
    pub fn wait_idle_timeout(&self, timeout: Duration) -> bool {
        self.wait_idle_until(Instant::now().checked_add(timeout))
    }

    fn wait_idle_until(&self, deadline: Option<Instant>) -> bool {
        let registry = &self.spawner.registry;
        if crate::runtime::worker::current_local(registry.id).is_some() {
            return false;
        }
        let mut pause = Duration::from_micros(10);
        crate::sync::wait_until(
            (),
            deadline,
            |()| Registry::is_idle(registry),
            |(), left| {
                std::thread::sleep(left.map_or(pause, |left| left.min(pause)));
                pause = (pause * 2).min(Duration::from_millis(1));
            },
        )
        .1
    }

    /// Shuts the pool down gracefully: stops intake, runs every job already
    /// accepted (and every job those jobs spawn), then joins every worker
    /// thread ever started (retired workers included). Dropping the pool
    /// does the same (unless built with
    /// [`DropPolicy::CancelBacklog`](crate::DropPolicy::CancelBacklog)).
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
    pub fn shutdown(mut self) {
        // `Drop` does the work.
        self.drain_on_drop = true;
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
    /// As [`Pool::shutdown`], or [`Pool::shutdown_now`] with
    /// [`DropPolicy::CancelBacklog`](crate::DropPolicy::CancelBacklog); see
    /// [`Builder::on_drop`].
    fn drop(&mut self) {
        let registry = &self.spawner.registry;
        // After `shutdown_now` or `shutdown_timeout`, intake is closed and
        // the backlog dealt with: join what is left, as always.
        if self.drain_on_drop || registry.lifecycle.is_closed() {
            Registry::shutdown(registry);
        } else {
            drop(abort::shutdown_now(registry));
        }
    }
}

impl fmt::Debug for Pool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pool").field("workers", &self.workers()).field("levels", &self.levels()).finish()
    }
}
