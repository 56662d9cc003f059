//! The public snapshot types: [`Metrics`] and its per-level and per-worker
//! figures, and [`Metrics::since`].

use std::fmt;
use std::time::Duration;

use hdrhistogram::Histogram;

use crate::queue::Priority;
use crate::sync::plain::Arc;

/// A snapshot of a pool's counters, from [`Pool::metrics`](crate::Pool::metrics)
/// or [`Spawner::metrics`](crate::Spawner::metrics).
///
/// Counts are totals since the pool started; [`Metrics::since`] turns two
/// snapshots into the figures for the interval between them. Every snapshot,
/// even one taken while jobs race it, keeps these bounds at every level:
/// `completed + panicked <= started` and `started + cancelled + expired +
/// promoted + backlog + rejected <= submitted`; for the workers, `busy + idle <= total`
/// and `retired <= started`. No count ever goes back from one snapshot to a
/// later one. When the pool is at rest (nothing queued or running: after
/// [`Pool::wait_idle`](crate::Pool::wait_idle) or
/// [`Pool::shutdown`](crate::Pool::shutdown)), `submitted = completed +
/// panicked + cancelled + expired + promoted + rejected` at every level.
///
/// A job whose handle has reported its end (`join`, `join_timeout`,
/// `is_finished`, the awaited future, or `cancel` answering
/// [`Prevented`](crate::CancelOutcome::Prevented)) is counted, in
/// `completed`, `panicked`, `cancelled` or `expired`, by every snapshot
/// taken after that.
///
/// Non-exhaustive: figures may be added; read the fields, do not build the
/// struct.
///
/// ```
/// use priopool::{Pool, Priority};
///
/// let pool = Pool::builder().workers(2).wait_metrics(true).build()?;
/// let spawner = pool.spawner();
/// for _ in 0..100 {
///     pool.spawn(Priority::LOW, || {})?;
/// }
/// pool.shutdown();
/// let metrics = spawner.metrics();
/// let low = metrics.level(Priority::LOW).expect("every pool has a lowest level");
/// assert_eq!((low.submitted, low.completed, low.backlog), (100, 100, 0));
/// println!("p99 wait: {} µs", low.wait.as_ref().map_or(0, |w| w.p99_us));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Metrics {
    /// One entry per priority level, index 0 (the most urgent) first.
    pub levels: Vec<LevelMetrics>,
    /// The worker threads.
    pub workers: WorkerMetrics,
    /// Time since the pool started (for a [`Metrics::since`] result, the
    /// length of the interval).
    pub uptime: Duration,
    /// How many calls of user hooks (see [`Builder::before_job`](crate::Builder::before_job)
    /// and the others) panicked. The panics were caught; the workers live on.
    pub hook_panics: u64,
    /// How many destructors that the pool ran for a job outside the job's
    /// run panicked: the closure of a job that never ran (cancelled,
    /// expired, or swept by [`Pool::shutdown_now`](crate::Pool::shutdown_now)),
    /// or the result of a job that nobody took (its
    /// [`JobHandle`](crate::JobHandle) was dropped without it, before or
    /// after the job ended); also the panics of the waker of an awaited
    /// [`JobHandle`](crate::JobHandle), which the pool wakes when the job
    /// ends (its result delivered regardless). They are not job panics:
    /// the job never ran, or it returned, and is counted as cancelled,
    /// expired or completed; so
    /// they are not in [`LevelMetrics::panicked`] or
    /// [`Pool::panic_count`](crate::Pool::panic_count) and do not reach the
    /// panic handler. Each was caught where it happened (the worker, the
    /// deadline timer thread, the thread sweeping the queues, the thread
    /// dropping the handle), reported through the `log` feature at `warn`,
    /// and its payload dropped. (A panic from the closure's destructor
    /// during [`JobHandle::cancel`](crate::JobHandle::cancel) is resumed in
    /// its caller instead, and not counted here.)
    pub drop_panics: u64,
}

/// The figures of one priority level; see [`Metrics`].
///
/// Non-exhaustive: figures may be added.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct LevelMetrics {
    /// Jobs queued at this level right now, not yet started: the level's
    /// backlog (the same figure as [`Pool::queued`](crate::Pool::queued)).
    pub backlog: u64,
    /// Jobs offered at this level through `spawn` or `submit` (or a
    /// [`JobBuilder`](crate::JobBuilder)), accepted or not, counted once they
    /// are queued or refused. (A spawn at a level the pool does not have is
    /// counted nowhere.) A job promoted here from another level
    /// ([`JobHandle::promote`](crate::JobHandle::promote)) is offered here
    /// too. Derived on read as `started + cancelled + expired + promoted +
    /// backlog + rejected`, so that spawning writes no extra counter; it may
    /// lag by the jobs taken off a queue while the snapshot is taken, never
    /// goes back, and is exact at rest.
    pub submitted: u64,
    /// Jobs whose closure has begun running. A job cancelled or expired
    /// before that is never counted here.
    pub started: u64,
    /// Jobs that returned.
    pub completed: u64,
    /// Jobs that panicked.
    pub panicked: u64,
    /// Jobs refused and handed back: the pool was shutting down, or the
    /// level was at its capacity and the spawn would not wait (or waited
    /// in vain) for room.
    pub rejected: u64,
    /// The level's capacity (see [`Builder::capacity`](crate::Builder::capacity)),
    /// or `None` for an unbounded level.
    pub capacity: Option<u64>,
    /// Spawns from outside the pool that found the level full and waited
    /// for room (however the wait ended: room, timeout or shutdown).
    pub full_waits: u64,
    /// Jobs that never started because they were cancelled: through
    /// [`JobHandle::cancel`](crate::JobHandle::cancel) or a
    /// [`CancelHandle`](crate::CancelHandle) before they started, by
    /// [`JobGroup::cancel`](crate::JobGroup::cancel) or
    /// [`Pool::cancel_queued`](crate::Pool::cancel_queued), or by
    /// [`Pool::shutdown_now`](crate::Pool::shutdown_now) (or a timed-out
    /// [`Pool::shutdown_timeout`](crate::Pool::shutdown_timeout), or a drop
    /// under [`DropPolicy::CancelBacklog`](crate::DropPolicy::CancelBacklog)).
    ///
    /// Counted when the cancellation is decided: before `cancel` answers
    /// [`Prevented`](crate::CancelOutcome::Prevented) and before the job's
    /// handle yields [`JobError::Cancelled`](crate::JobError::Cancelled). The
    /// job leaves `backlog` at the same moment.
    pub cancelled: u64,
    /// Jobs that never started because their deadline (see
    /// [`JobBuilder::deadline`](crate::JobBuilder::deadline) and
    /// [`max_wait`](crate::JobBuilder::max_wait)) passed first. Counted,
    /// like `cancelled`, when the expiry is decided, before the job's handle
    /// yields [`JobError::Expired`](crate::JobError::Expired).
    pub expired: u64,
    /// Jobs that left this level for another one, usually a more urgent
    /// one ([`JobHandle::promote`](crate::JobHandle::promote) moves a job to
    /// any level of the pool). Counted, like
    /// `cancelled`, when the promotion is decided, before `promote`
    /// returns, and the job leaves this level's `backlog` at that moment;
    /// the job itself is counted at its new level from then on (it is in
    /// that level's `submitted`, and started, cancelled or expired there).
    pub promoted: u64,
    /// How long started jobs waited in the queue; `None` unless the pool
    /// was built with [`wait_metrics(true)`](crate::Builder::wait_metrics).
    pub wait: Option<WaitTimes>,
    /// The starvation signal: how long this level has had jobs queued
    /// without starting any (or taking the entry of a cancelled or expired
    /// one off its queue); zero when its backlog is zero. A lower bound on
    /// how long its oldest queued job has waited, exact while the level
    /// starts nothing at all; `None` unless the pool was built with
    /// [`wait_metrics(true)`](crate::Builder::wait_metrics). Precisely: the
    /// time since the later of the last spawn that found the queue it
    /// pushed to empty and the last job taken off the level's queues (or
    /// run inline by a job waiting for it, ahead of its queue entry).
    pub oldest_wait: Option<Duration>,
}

impl LevelMetrics {
    /// Jobs started but not finished: running now, or in their hooks.
    pub fn running(&self) -> u64 {
        self.started.saturating_sub(self.completed.saturating_add(self.panicked))
    }
}

/// The distribution of queue waits (time from being queued to starting) of
/// the jobs started at one level, in whole microseconds (rounded down),
/// accurate to two significant digits (a quantile may read up to 1% high).
///
/// Non-exhaustive: figures may be added.
#[derive(Clone)]
#[non_exhaustive]
pub struct WaitTimes {
    /// How many waits were measured: one per started job, but for jobs
    /// that started without being taken off a queue, whose wait is not
    /// known: a job run inline by a job waiting for it (its handle's
    /// `join`, its scope; see the [crate docs](crate#jobs-that-wait-for-jobs))
    /// and the second closure of a `join` that another worker took.
    pub count: u64,
    /// The median wait, µs.
    pub p50_us: u64,
    /// The 99th percentile wait, µs.
    pub p99_us: u64,
    /// The longest wait, µs.
    pub max_us: u64,
    histogram: Arc<Histogram<u64>>,
}

impl WaitTimes {
    pub(super) fn new(histogram: Histogram<u64>) -> WaitTimes {
        WaitTimes {
            count: histogram.len(),
            p50_us: histogram.value_at_quantile(0.5),
            p99_us: histogram.value_at_quantile(0.99),
            max_us: histogram.max(),
            histogram: Arc::new(histogram),
        }
    }

    /// The wait, in µs, that a fraction `q` (clamped to `0.0..=1.0`) of the
    /// measured waits did not exceed; 0 when nothing was measured.
    pub fn quantile_us(&self, q: f64) -> u64 {
        self.histogram.value_at_quantile(q.clamp(0.0, 1.0))
    }

    /// The waits measured after `earlier` was taken, or `None` if `earlier`
    /// is not an earlier measure of the same level.
    fn since(&self, earlier: &WaitTimes) -> Option<WaitTimes> {
        let mut histogram = (*self.histogram).clone();
        histogram.subtract(&*earlier.histogram).ok()?;
        Some(WaitTimes::new(histogram))
    }
}

impl fmt::Debug for WaitTimes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WaitTimes")
            .field("count", &self.count)
            .field("p50_us", &self.p50_us)
            .field("p99_us", &self.p99_us)
            .field("max_us", &self.max_us)
            .finish_non_exhaustive()
    }
}

/// The worker threads' figures; see [`Metrics`].
///
/// `total`, `busy` and `idle` describe the worker threads present now and
/// are read together (`busy + idle <= total`). `current` is the pool's size
/// as [`Pool::workers`](crate::Pool::workers) reports it; it leads `total`
/// while the pool resizes: a worker told to retire leaves `current` at once
/// but stays in `total` (and may be busy) until it has finished its job and
/// exited, and a worker being started is in `current` a little before it is
/// in `total`. `started` and `retired` are read together
/// (`retired <= started`). At rest (no resize under way, every retiring
/// worker gone) `total == current + reserved == started - retired`; after
/// shutdown `total == current == reserved == 0`. Reserved threads
/// ([`Builder::reserved_threads`](crate::Builder::reserved_threads)) count in
/// `total`, `busy`, `idle`, `started` and `steals` like workers, and in
/// `reserved`, not in `current`.
///
/// Non-exhaustive: figures may be added.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct WorkerMetrics {
    /// Worker threads of the pool now: started (or being started) and not
    /// yet exited, retiring ones included.
    pub total: usize,
    /// Workers running a job (or its `before_job`/`after_job` hooks): those
    /// not parked that have started more jobs than they have finished.
    pub busy: usize,
    /// Workers parked for lack of work (asleep, or registering to sleep).
    /// The rest, `total - busy - idle`, are looking for a job (or retiring).
    pub idle: usize,
    /// The pool's size now, as [`Pool::workers`](crate::Pool::workers):
    /// workers running or being started, not counting those told to retire
    /// (and, after shutdown, not those that exited).
    pub current: usize,
    /// Worker threads started since the pool was built, as
    /// [`Pool::workers_started`](crate::Pool::workers_started).
    pub started: u64,
    /// Worker threads retired since the pool was built (surplus after a
    /// resize, or idle past the keep-alive; not those that exit at
    /// shutdown), as [`Pool::workers_retired`](crate::Pool::workers_retired).
    pub retired: u64,
    /// Jobs a worker took from another worker's deque, since the pool
    /// started.
    pub steals: u64,
    /// Reserved threads running now (started at build time, exited at
    /// shutdown); they are in `total` too.
    pub reserved: usize,
    /// Worker threads whose nice value the OS refused to raise (see
    /// [`Builder::worker_nice`](crate::Builder::worker_nice)), since the
    /// pool started: 0 when every worker runs at the asked priority.
    pub nice_refused: u64,
}

impl Metrics {
    /// The figures of the level `priority` names, or `None` if the pool has
    /// no such level: `metrics.level(Priority::LOW)` keeps its meaning when
    /// levels are added, where `metrics.levels[1]` would not.
    pub fn level(&self, priority: impl Into<Priority>) -> Option<&LevelMetrics> {
        priority.into().resolve(self.levels.len()).map(|level| &self.levels[level])
    }

    /// The figures of the interval between `earlier` and `self`, two
    /// snapshots of the same pool: counts, steals, hook panics and uptime
    /// become differences (saturating at zero), queue waits cover only the
    /// jobs started in between; backlog, oldest wait, the workers present,
    /// busy and idle and the pool's size (`current`) are `self`'s, being
    /// "now" figures (worker threads `started` and `retired` are counts,
    /// and become differences). Given a snapshot of another pool the
    /// result is meaningless (but this does not panic; `wait` is then
    /// `None` where the histograms do not subtract).
    pub fn since(&self, earlier: &Metrics) -> Metrics {
        let levels = self
            .levels
            .iter()
            .zip(&earlier.levels)
            .map(|(now, then)| LevelMetrics {
                backlog: now.backlog,
                submitted: now.submitted.saturating_sub(then.submitted),
                started: now.started.saturating_sub(then.started),
                completed: now.completed.saturating_sub(then.completed),
                panicked: now.panicked.saturating_sub(then.panicked),
                rejected: now.rejected.saturating_sub(then.rejected),
                capacity: now.capacity,
                full_waits: now.full_waits.saturating_sub(then.full_waits),
                cancelled: now.cancelled.saturating_sub(then.cancelled),
                expired: now.expired.saturating_sub(then.expired),
                promoted: now.promoted.saturating_sub(then.promoted),
                wait: match (&now.wait, &then.wait) {
                    (Some(now), Some(then)) => now.since(then),
                    _ => None,
                },
                oldest_wait: now.oldest_wait,
            })
            .collect();
        Metrics {
            levels,
            workers: WorkerMetrics {
                started: self.workers.started.saturating_sub(earlier.workers.started),
                retired: self.workers.retired.saturating_sub(earlier.workers.retired),
                steals: self.workers.steals.saturating_sub(earlier.workers.steals),
                nice_refused: self.workers.nice_refused.saturating_sub(earlier.workers.nice_refused),
                ..self.workers
            },
            uptime: self.uptime.saturating_sub(earlier.uptime),
            hook_panics: self.hook_panics.saturating_sub(earlier.hook_panics),
            drop_panics: self.drop_panics.saturating_sub(earlier.drop_panics),
        }
    }
}
