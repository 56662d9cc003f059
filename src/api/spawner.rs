//! [`Spawner`]: the cloneable handle that gives jobs to a pool from any
//! thread, and what [`Pool`](crate::Pool)'s own methods delegate to; and
//! [`spawn`], the same from a running job with no handle.

use super::handle::JobHandle;
use super::options::JobBuilder;
use crate::capacity::WhenFull;
use crate::error::{SpawnError, SpawnErrorKind};
use crate::forkjoin::{self, Scope};
use crate::job::Job;
use crate::metrics::Metrics;
use crate::queue::Priority;
use crate::runtime::registry::Registry;
use crate::runtime::worker;
use crate::sync::Arc;
use std::fmt;
use std::panic::{self, AssertUnwindSafe};
use std::time::Duration;

/// A cloneable, `Send + Sync` handle for giving jobs to a [`Pool`](crate::Pool) from
/// other threads and from inside its own jobs.
///
/// A job spawned from one of the pool's worker threads goes to that
/// worker's local deque for its level, where idle workers can steal it. A
/// `Spawner` does not keep the pool alive: once the pool shuts down, spawns
/// through it return [`SpawnErrorKind::Shutdown`](crate::SpawnErrorKind::Shutdown).
#[derive(Clone)]
pub struct Spawner {
    pub(super) registry: Arc<Registry>,
}

impl Spawner {
    /// Queues `job` at `priority`, to run once on some worker thread. On a
    /// level with a [capacity](crate::Builder::capacity) that is full, waits for
    /// room first (unless called from one of the pool's own jobs or worker
    /// threads, which never wait: see [`Builder::capacity`](crate::Builder::capacity)).
    ///
    /// A panic in `job` is caught: the worker survives, the pool's panic
    /// handler (see [`Builder::panic_handler`](crate::Builder::panic_handler)) receives the payload, and
    /// [`Pool::panic_count`](crate::Pool::panic_count) goes up by one.
    ///
    /// # Errors
    ///
    /// A [`SpawnError`] holding `job`, unrun, when `priority` names a level
    /// the pool does not have, or when the pool has begun shutting down and
    /// the caller is not one of its own running jobs (also while it waited
    /// for room).
    pub fn spawn<F>(&self, priority: impl Into<Priority>, job: F) -> Result<(), SpawnError<F>>
    where
        F: FnOnce() + Send + 'static,
    {
        self.spawn_when_full(priority.into(), job, WhenFull::Wait)
    }

    /// As [`Spawner::spawn`], but never waits for room: on a full level it
    /// returns at once.
    ///
    /// # Errors
    ///
    /// As [`Spawner::spawn`], and [`SpawnErrorKind::Full`](crate::SpawnErrorKind::Full)
    /// with `job` handed back when the level is at its capacity (once the
    /// pool shuts down, [`SpawnErrorKind::Shutdown`](crate::SpawnErrorKind::Shutdown)
    /// instead, as for any spawn from outside it).
    pub fn try_spawn<F>(&self, priority: impl Into<Priority>, job: F) -> Result<(), SpawnError<F>>
    where
        F: FnOnce() + Send + 'static,
    {
        self.spawn_when_full(priority.into(), job, WhenFull::Refuse)
    }

    /// As [`Spawner::spawn`], waiting at most `timeout` for room on a full
    /// level.
    ///
    /// # Errors
    ///
    /// As [`Spawner::spawn`], and [`SpawnErrorKind::Full`](crate::SpawnErrorKind::Full)
    /// with `job` handed back when no room came within `timeout`.
    pub fn spawn_timeout<F>(
        &self,
        priority: impl Into<Priority>,
        timeout: Duration,
        job: F,
    ) -> Result<(), SpawnError<F>>
    where
        F: FnOnce() + Send + 'static,
    {
        self.spawn_when_full(priority.into(), job, WhenFull::WaitAtMost(timeout))
    }

    fn spawn_when_full<F>(&self, priority: Priority, job: F, when_full: WhenFull) -> Result<(), SpawnError<F>>
    where
        F: FnOnce() + Send + 'static,
    {
        Registry::spawn(&self.registry, priority, job, when_full, None, |job, _| (Job::new(job), ()))
    }

    /// Queues `job` at `priority` and returns a [`JobHandle`] through which
    /// the submitter gets its value, or its panic, back. Waits for room on
    /// a full level, as [`Spawner::spawn`].
    ///
    /// # Errors
    ///
    /// As [`Spawner::spawn`].
    pub fn submit<F, T>(&self, priority: impl Into<Priority>, job: F) -> Result<JobHandle<T>, SpawnError<F>>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        self.job(priority).submit(job)
    }

    /// As [`Spawner::submit`], but never waits for room, as
    /// [`Spawner::try_spawn`].
    ///
    /// # Errors
    ///
    /// As [`Spawner::try_spawn`].
    pub fn try_submit<F, T>(&self, priority: impl Into<Priority>, job: F) -> Result<JobHandle<T>, SpawnError<F>>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        self.job(priority).when_full(WhenFull::Refuse).submit(job)
    }

    /// As [`Spawner::submit`], waiting at most `timeout` for room, as
    /// [`Spawner::spawn_timeout`].
    ///
    /// # Errors
    ///
    /// As [`Spawner::spawn_timeout`].
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
        self.job(priority).when_full(WhenFull::WaitAtMost(timeout)).submit(job)
    }

    /// Describes a job at `priority` with options; see [`JobBuilder`].
    pub fn job(&self, priority: impl Into<Priority>) -> JobBuilder<'_> {
        JobBuilder::new(&self.registry, priority.into())
    }

    /// [`Pool::scope`](crate::Pool::scope) on the spawner's pool.
    ///
    /// # Panics
    ///
    /// As [`Pool::scope`](crate::Pool::scope).
    pub fn scope<'scope, OP, R>(&self, op: OP) -> R
    where
        OP: FnOnce(&Scope<'scope>) -> R,
    {
        forkjoin::scope::scope(&self.registry, op)
    }

    /// Runs `a` and `b`, potentially in parallel, and returns both values.
    ///
    /// From a job of this pool, `b` is forked at `priority` as with
    /// [`priopool::join`](crate::join) (which forks at the running job's
    /// own level). From any other thread, `b` is queued at `priority` and
    /// `a` runs on the calling thread, which then blocks until `b` has
    /// finished. If the pool refuses `b` (it has begun shutting down, or
    /// `priority` names no level), `b` runs on the calling thread too.
    ///
    /// # Panics
    ///
    /// As [`priopool::join`](crate::join): after both finished, resumes the
    /// panic of `a`, else of `b`. From outside the pool, `b` waits as a
    /// scoped job: cancelled before it started (by
    /// [`Pool::cancel_queued`](crate::Pool::cancel_queued), or a shutdown
    /// that cancels the backlog), it is a panic, as in
    /// [`Pool::scope`](crate::Pool::scope).
    pub fn join<A, B, RA, RB>(&self, priority: impl Into<Priority>, a: A, b: B) -> (RA, RB)
    where
        A: FnOnce() -> RA,
        B: FnOnce() -> RB + Send,
        RB: Send,
    {
        let priority = priority.into();
        let level = priority.resolve(self.registry.levels.len());
        if let (Some(local), Some(level)) = (crate::runtime::help::helper(self.registry.id), level) {
            return forkjoin::join::fork(&local, level, a, b);
        }
        let mut rb = None;
        let slot = &mut rb;
        let ra = panic::catch_unwind(AssertUnwindSafe(|| {
            self.scope(|s| {
                let half = move |_: &Scope<'_>| *slot = Some(b());
                if let Err(refused) = s.spawn(priority, half) {
                    refused.into_inner()(s);
                }
                a()
            })
        }));
        // On a panic, `b`'s value is dropped before the unwind, as a fork's.
        let (ra, rb) = forkjoin::join::finish(ra, Ok(rb));
        (ra, rb.unwrap_or_else(|| unreachable!("the scope ran b")))
    }

    /// The number of priority levels of the pool.
    pub fn levels(&self) -> usize {
        self.registry.levels.len()
    }

    /// A snapshot of the pool's counters, as [`Pool::metrics`](crate::Pool::metrics). It works
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

/// Queues `job` at `priority` on the pool whose job is running on the
/// calling thread, as [`Spawner::spawn`] on that pool would, with no handle
/// to carry: the counterpart of `rayon::spawn` and `tokio::spawn`, as
/// [`priopool::join`](crate::join) is of `rayon::join`. A job that spawns
/// many jobs saves a [`Spawner`] clone (a shared reference count) per job.
///
/// As any spawn from a running job, the job goes to the worker's local
/// deque for its level, never waits for room (see
/// [`Builder::capacity`](crate::Builder::capacity)), and is accepted during
/// the pool's drain (once [`Pool::shutdown_now`](crate::Pool::shutdown_now)
/// has begun: accepted, then cancelled). The job hooks and the panic
/// handler, called on the worker around its job, count as the job.
///
/// ```
/// use priopool::{Pool, Priority};
/// use std::sync::mpsc;
///
/// let pool = Pool::new()?;
/// let (tx, rx) = mpsc::channel();
/// pool.spawn(Priority::LOW, move || {
///     for part in 0..4 {
///         let tx = tx.clone();
///         priopool::spawn(Priority::LOW, move || tx.send(part).unwrap()).unwrap();
///     }
/// })?;
/// let mut parts: Vec<i32> = rx.iter().take(4).collect();
/// parts.sort();
/// assert_eq!(parts, [0, 1, 2, 3]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// # Errors
///
/// A [`SpawnError`] holding `job`, unrun, when no pool's job runs on the
/// calling thread ([`SpawnErrorKind::NotInPool`]: a plain thread, or a
/// worker thread outside its jobs, in its
/// [`on_thread_start`](crate::Builder::on_thread_start) or
/// [`on_thread_stop`](crate::Builder::on_thread_stop) hook or its
/// thread-local destructors), or when `priority` names a level that pool
/// does not have.
pub fn spawn<F>(priority: impl Into<Priority>, job: F) -> Result<(), SpawnError<F>>
where
    F: FnOnce() + Send + 'static,
{
    worker::with_loop_pool(|pool| match pool {
        Some(registry) => {
            Registry::spawn(registry, priority.into(), job, WhenFull::Wait, None, |job, _| (Job::new(job), ()))
        }
        None => Err(SpawnError::new(job, SpawnErrorKind::NotInPool)),
    })
}
