//! Counting what the pool does without slowing it down, and reading the
//! counts back as a [`Metrics`] snapshot.
//!
//! # Who writes what
//!
//! | figure (per level)           | written by                  | where                                      |
//! |------------------------------|-----------------------------|--------------------------------------------|
//! | started, completed, panicked | the worker running the job  | its own `WorkerCounters`, cache-padded     |
//! | cancelled, expired           | whoever takes the dead entry off a queue: a worker, or the `shutdown_now` sweep | the worker's own counters; shared atomics for the sweep |
//! | backlog                      | spawner and worker          | the pick rule's queued count (priority.rs) |
//! | rejected                     | the refused spawner (rare)  | one cache-padded atomic per level          |
//! | submitted                    | nobody: derived on read     | `started + cancelled + expired + backlog + rejected` |
//! | queue-wait histogram         | the worker running the job  | its own histograms, behind its own mutex   |
//! | oldest-wait marks            | spawner (rare) and worker   | `rose_at` per level; per-worker last taken |
//!
//! A worker's counters have one writer, so a count is bumped with a plain
//! load and store (no read-modify-write, no lock); readers sum over the
//! workers. This is the usual "counters per worker, summed on read" scheme
//! (tokio's runtime metrics batch per worker the same way).
//!
//! Spawns happen on arbitrary threads, and the spawn path already pays for
//! two contended read-modify-writes (the lifecycle's outstanding count and
//! the level's queued count). Rather than add a third, `submitted` is not
//! written at all: every accepted job is counted in the queued count before
//! it can be picked, and every picked job is counted by whoever took it as
//! started, cancelled or expired, so `started + cancelled + expired +
//! backlog + rejected` counts every job offered at the level, exactly when
//! nothing is in between two of those counts. Only refusals, which happen
//! during shutdown, and the shutdown sweep touch shared counters.
//!
//! # Where a cancelled or expired job is counted
//!
//! A job is cancelled (by a handle, or by `shutdown_now`) or expires (by the
//! timer thread, or found expired by the worker that pops it) while its
//! queue entry may still sit in a queue: the entry stays there, counted in
//! the level's queued count, until a worker or the sweep pops it (task.rs).
//! The job is counted as cancelled or expired *there*, by the thread that
//! pops the dead entry, and not where the cancellation happened:
//!
//! - every job is then in exactly one of backlog, started, cancelled,
//!   expired (or rejected) at any moment, so the derivation of `submitted`
//!   above stays a plain sum that never counts a job twice. Counting at the
//!   cancellation would count the job in `cancelled` and, through its dead
//!   entry, in `backlog` at once, and a high-water mark of that sum would
//!   never come back down to the exact figure;
//! - the worker that pops a dead entry counts it on its own counters, like
//!   a start; a handle's `cancel` and the timer touch no shared counter (and
//!   need not reach the pool at all).
//!
//! The price is a lag: while every worker is busy, a job cancelled or
//! expired since stays in `backlog` (as it does in `Pool::queued`) and is
//! not yet in `cancelled`/`expired`. Workers pop dead entries as soon as they
//! look for work, and the sweep of `shutdown_now` pops all of them, so at
//! rest the figures are exact. A worker claims a popped job (task.rs) before
//! counting it as started, so a dead entry is never counted as started, and
//! no job hook runs for it.
//!
//! Workers can come and go: each worker's counters live in an `Arc` on the
//! roster while it runs, and when it exits they are folded into the
//! roster's `retired` totals under the roster lock, which the reader also
//! holds, so a snapshot counts every worker exactly once.
//!
//! # The bounds a snapshot keeps, and why
//!
//! An accepted job moves through counted in the backlog → picked (counted
//! out of the backlog) → either `started` → `completed` or `panicked`, or
//! `cancelled` or `expired` (discarded); each step happens-before the next:
//! the job reaches its worker (or the sweep) through a queue (a release
//! push, an acquire pop) and the popping thread's writes are in program
//! order. Counts are written with `Release` and read with `Acquire`. A
//! snapshot reads each level's figures *against* that flow: finished
//! (`completed`, `panicked`), then `started`, then discarded (`cancelled`,
//! `expired`), then `backlog`, then `rejected`. Whatever a read sees,
//! everything before it in a job's life is visible to the later reads:
//!
//! - a job counted as finished is counted as started, so
//!   `completed + panicked <= started`;
//! - a job counted as started or discarded was picked before the backlog
//!   is read, so it is not in the backlog too: `started + cancelled +
//!   expired + backlog` never counts a job twice (a job picked between two
//!   reads is missed by both, so the sum may lag). `started`, `cancelled`
//!   and `expired` never count one job twice among themselves: the thread
//!   that popped the entry counts it once, in one of them. Every change to
//!   the queued count is a read-modify-write, so the acquire load sees
//!   every pick that happened-before it.
//!
//! `submitted` is then `started + cancelled + expired + backlog + rejected`
//! as read, raised to the largest value any earlier snapshot reported (a
//! per-level `fetch_max` by the readers, which keeps it from going back when
//! a sum lags). Every value it takes is at most the true number of jobs
//! offered, so at rest it is exact. So in every snapshot, at every level,
//!
//! - `completed + panicked <= started`,
//! - `started + cancelled + expired + backlog + rejected <= submitted`
//!   (hence `backlog <= submitted`, and `completed + panicked + cancelled +
//!   expired + rejected <= submitted`),
//! - `busy + idle <= total` (each worker is classified once, from the same
//!   roster that gives `total`: idle if it says it is parked, else busy if
//!   it has started more jobs than it has finished; a worker that is
//!   attached but whose thread has not run yet, or one that is retiring,
//!   is on the roster and counted in `total` like any other),
//! - `retired <= started` for the worker threads (both are read under the
//!   worker set's lock, and a thread retires only after its start was
//!   counted under that lock),
//!
//! and no count ever decreases or wraps (they are `u64`). When the pool is
//! at rest (nothing queued or running, e.g. after shutdown), `submitted =
//! completed + panicked + cancelled + expired + rejected`.
//!
//! # Queue waits and the oldest job's wait
//!
//! With [`Builder::wait_metrics`](crate::Builder::wait_metrics) on, a job is
//! stamped (nanoseconds since the pool started) just before it is counted
//! in, and the worker that starts it reads the clock again: the difference
//! goes into that worker's histogram for the level (microseconds, two
//! significant digits, the `hdrhistogram` crate).
//!
//! The age of the oldest queued job cannot be read from lock-free queues
//! without taking the jobs out. Instead the pool keeps two marks per level:
//! `rose_at`, the stamp of a spawn that found the level's backlog at zero,
//! and the *last taken* at the level: when a job was last taken off its
//! queue, to start or to be discarded as cancelled or expired (each worker
//! keeps its own; the sweep of `shutdown_now` a shared one). The snapshot
//! reports
//!
//! ```text
//! oldest_wait = 0                                         if backlog == 0
//!             = now - max(rose_at, latest last taken)     otherwise
//! ```
//!
//! the time the level has gone with jobs queued and none taken. It is a
//! *lower bound* on the wait of the oldest job queued at the level: that job
//! was stamped before the later of the two marks. (By induction over
//! count-ins: the spawn of the oldest queued job either saw a zero backlog
//! and raised `rose_at` to at least its own stamp, or saw an unpicked job
//! counted in before it, which is now either taken — after that look, so
//! the last taken is later — or still queued, hence stamped no earlier than
//! the oldest, and the same argument applies to it. This is why a discard
//! must record the mark too: a discarded job is a taken one.) It is exact
//! while a level starves outright (nothing taken since its backlog rose
//! from zero) and stays small while the level is served, so it does not
//! raise a false starvation alarm under a steady load. One caveat: the last
//! taken is recorded a few nanoseconds after the job is picked, so a sample
//! taken in that window may overstate the figure once.
//!
//! Costs of wait metrics, per job: two `Instant::now()`, a small allocation
//! (the stamp travels in a wrapper around the job, so that a pool without
//! wait metrics queues jobs of two words, as before), a load of the queued
//! count and, when the level was empty, a `fetch_max` on the spawner; an
//! uncontended mutex and a histogram update on the worker. Without them, a
//! job costs its worker two counter bumps (a plain load and store each, on
//! a line it owns) and two predictable branches, and costs its spawner one
//! branch.

use std::cell::Cell;
use std::fmt;
use std::num::NonZeroU64;
use std::time::{Duration, Instant};

use crossbeam_utils::CachePadded;
use hdrhistogram::Histogram;

use crate::hooks::{self, JobInfo, JobOutcome, log_event};
use crate::job::{Job, Outcome};
use crate::priority::{Levels, Source};
use crate::registry::Registry;
// The counters are plain std atomics even under loom: they order nothing but
// their own figures and are read only by snapshots, which no model takes. The roster lock is modelled, since
// a snapshot reads the queued counts under it (see `sync.rs`).
use crate::sync::plain::{Arc, AtomicBool, AtomicU64};
use crate::sync::{self, Mutex, Ordering, lock};
use crate::task::Unrun;

/// A snapshot of a pool's counters, from [`Pool::metrics`](crate::Pool::metrics)
/// or [`Spawner::metrics`](crate::Spawner::metrics).
///
/// Counts are totals since the pool started; [`Metrics::since`] turns two
/// snapshots into the figures for the interval between them. Every snapshot,
/// even one taken while jobs race it, keeps these bounds at every level:
/// `completed + panicked <= started` and `started + cancelled + expired +
/// backlog + rejected <= submitted`; for the workers, `busy + idle <= total`
/// and `retired <= started`. No count ever goes back from one snapshot to a
/// later one. When the pool is at rest (nothing queued or running, for
/// instance after [`Pool::shutdown`](crate::Pool::shutdown)), `submitted =
/// completed + panicked + cancelled + expired + rejected` at every level.
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
/// let low = &spawner.metrics().levels[1];
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
    /// counted nowhere.) Derived on read as `started + cancelled + expired +
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
    /// Jobs refused and handed back because the pool was shutting down.
    pub rejected: u64,
    /// Jobs that never started because they were cancelled: through
    /// [`JobHandle::cancel`](crate::JobHandle::cancel) or a
    /// [`CancelHandle`](crate::CancelHandle) before they started, or by
    /// [`Pool::shutdown_now`](crate::Pool::shutdown_now) (or a timed-out
    /// [`Pool::shutdown_timeout`](crate::Pool::shutdown_timeout)).
    ///
    /// A cancelled job's queue entry stays in its queue (and in `backlog`)
    /// until a worker or the shutdown's sweep takes it out; the job is
    /// counted here at that moment, when it leaves the backlog, so that
    /// every job is in exactly one figure at a time. The count may so lag
    /// the cancellation while every worker is busy; it is exact at rest.
    pub cancelled: u64,
    /// Jobs that never started because their deadline (see
    /// [`JobBuilder::deadline`](crate::JobBuilder::deadline) and
    /// [`max_wait`](crate::JobBuilder::max_wait)) passed first. Counted,
    /// like `cancelled`, when the expired job's entry leaves the backlog.
    pub expired: u64,
    /// How long started jobs waited in the queue; `None` unless the pool
    /// was built with [`wait_metrics(true)`](crate::Builder::wait_metrics).
    pub wait: Option<WaitTimes>,
    /// The starvation signal: how long this level has had jobs queued
    /// without starting any (or taking the entry of a cancelled or expired
    /// one off its queue); zero when its backlog is zero. A lower bound on
    /// how long its oldest queued job has waited, exact while the level
    /// starts nothing at all; `None` unless the pool was built with
    /// [`wait_metrics(true)`](crate::Builder::wait_metrics). The module
    /// `metrics.rs` gives the exact definition.
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
    /// How many waits were measured (one per started job).
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
    fn new(histogram: Histogram<u64>) -> WaitTimes {
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
/// worker gone) `total == current == started - retired`; after shutdown
/// `total == current == 0`.
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
}

/// The pool's worker counts kept outside the metrics (scaling.rs,
/// workers.rs), read by the registry for a snapshot.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct ThreadCounts {
    /// `Scaling::current`.
    pub(crate) current: usize,
    /// Worker threads started, and retired: read together.
    pub(crate) started: usize,
    pub(crate) retired: usize,
}

impl Metrics {
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
                cancelled: now.cancelled.saturating_sub(then.cancelled),
                expired: now.expired.saturating_sub(then.expired),
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
                ..self.workers
            },
            uptime: self.uptime.saturating_sub(earlier.uptime),
            hook_panics: self.hook_panics.saturating_sub(earlier.hook_panics),
        }
    }
}

/// When a job was queued: nanoseconds since the pool's epoch, plus one (so
/// that it is never zero and `Option<Stamp>` costs no extra word).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Stamp(NonZeroU64);

impl Stamp {
    fn raw(self) -> u64 {
        self.0.get()
    }
}

/// The pool-wide half of the metrics, owned by the registry.
pub(crate) struct MetricsCore {
    epoch: Instant,
    wait_metrics: bool,
    levels: usize,
    /// Per level: spawns refused because the pool was shutting down.
    rejected: Box<[CachePadded<AtomicU64>]>,
    /// Per level: the largest `submitted` any snapshot has reported.
    submitted_seen: Box<[CachePadded<AtomicU64>]>,
    /// Per level: jobs discarded off the workers (the sweep).
    swept: Box<[CachePadded<Discards>]>,
    /// Per level: the latest stamp of a spawn that found the level's backlog
    /// at zero (0: none yet). Written only when the level was empty.
    rose_at: Box<[CachePadded<AtomicU64>]>,
    roster: Mutex<Roster>,
    hook_panics: AtomicU64,
}

/// The workers' counters: those of the running workers, and the totals of
/// the workers that have exited.
struct Roster {
    live: Vec<Arc<WorkerCounters>>,
    retired: Retired,
}

struct Retired {
    levels: Vec<Totals>,
    steals: u64,
    /// Per level, when wait metrics are on (else empty).
    waits: Vec<Histogram<u64>>,
}

#[derive(Clone, Copy, Default)]
struct Totals {
    started: u64,
    completed: u64,
    panicked: u64,
    cancelled: u64,
    expired: u64,
    last_taken: u64,
}

/// One worker's counters. Every field is written by that worker only.
pub(crate) struct WorkerCounters {
    hot: CachePadded<Hot>,
    /// Shared with the worker's probe, which reaches them with one load
    /// less than through this struct.
    levels: Arc<[CachePadded<LevelCounters>]>,
    /// Queue waits in µs, one histogram per level, when wait metrics are on.
    /// Only the worker and a snapshot lock it.
    waits: Option<Mutex<Vec<Histogram<u64>>>>,
}

struct Hot {
    /// Whether the worker is parked (or about to park) for lack of work.
    /// Written only on the way to and from sleep; whether it is busy is
    /// read off its counters instead, so a job costs no extra store.
    parked: AtomicBool,
    steals: AtomicU64,
}

#[derive(Default)]
struct LevelCounters {
    started: AtomicU64,
    completed: AtomicU64,
    panicked: AtomicU64,
    /// Entries of cancelled jobs taken off a queue (see `Discards`).
    cancelled: AtomicU64,
    /// Entries of expired jobs taken off a queue.
    expired: AtomicU64,
    /// With wait metrics on, the stamp of the latest job taken off the
    /// level's queue, to start or to discard (0: none).
    last_taken: AtomicU64,
}

/// Per level, the entries of cancelled and expired jobs discarded by a
/// thread that is not a worker: the calling thread of a `shutdown_now`
/// sweep. Rare, so shared atomics with read-modify-writes do.
#[derive(Default)]
struct Discards {
    cancelled: AtomicU64,
    expired: AtomicU64,
    /// As `LevelCounters::last_taken`.
    last_taken: AtomicU64,
}

/// Adds one to a counter that only the calling thread writes: a plain load
/// and a `Release` store, no read-modify-write.
#[inline]
fn bump(counter: &AtomicU64) {
    counter.store(counter.load(Ordering::Relaxed) + 1, Ordering::Release);
}

fn wait_histogram() -> Histogram<u64> {
    // Two significant digits, growing on demand: a few kB per level even for
    // waits of hours.
    Histogram::new(2).expect("2 significant digits is a valid hdrhistogram precision")
}

impl MetricsCore {
    pub(crate) fn new(levels: usize, wait_metrics: bool) -> MetricsCore {
        MetricsCore {
            epoch: Instant::now(),
            wait_metrics,
            levels,
            rejected: (0..levels).map(|_| CachePadded::new(AtomicU64::new(0))).collect(),
            submitted_seen: (0..levels).map(|_| CachePadded::new(AtomicU64::new(0))).collect(),
            swept: (0..levels).map(|_| CachePadded::new(Discards::default())).collect(),
            rose_at: (0..levels).map(|_| CachePadded::new(AtomicU64::new(0))).collect(),
            roster: Mutex::new(Roster {
                live: Vec::new(),
                retired: Retired {
                    levels: vec![Totals::default(); levels],
                    steals: 0,
                    waits: if wait_metrics { (0..levels).map(|_| wait_histogram()).collect() } else { Vec::new() },
                },
            }),
            hook_panics: AtomicU64::new(0),
        }
    }

    fn now(&self) -> Stamp {
        let nanos = u64::try_from(self.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX - 1);
        Stamp(NonZeroU64::MIN.saturating_add(nanos))
    }

    /// Counts a job offered at `level` and refused.
    pub(crate) fn rejected(&self, level: usize) {
        self.rejected[level].fetch_add(1, Ordering::Release);
    }

    /// The stamp for a job about to be counted in at `level`, when wait
    /// metrics are on. Call just before `Levels::count_in`, whose `AcqRel`
    /// increment publishes the `rose_at` write made here.
    pub(crate) fn stamp_queued(&self, levels: &Levels, level: usize) -> Option<Stamp> {
        if !self.wait_metrics {
            return None;
        }
        let stamp = self.now();
        if levels.queued(level) == 0 {
            self.rose_at[level].fetch_max(stamp.raw(), Ordering::Relaxed);
        }
        Some(stamp)
    }

    /// Counts a job of `level`, cancelled or expired, whose entry a thread
    /// other than a worker (the `shutdown_now` sweep) took off its queue.
    pub(crate) fn discarded(&self, level: usize, fate: Unrun) {
        let swept = &self.swept[level];
        if self.wait_metrics {
            swept.last_taken.fetch_max(self.now().raw(), Ordering::Relaxed);
        }
        let counter = match fate {
            Unrun::Cancelled => &swept.cancelled,
            Unrun::Expired => &swept.expired,
        };
        counter.fetch_add(1, Ordering::Release);
    }

    pub(crate) fn hook_panicked(&self) {
        self.hook_panics.fetch_add(1, Ordering::Relaxed);
    }

    fn attach(&self) -> Arc<WorkerCounters> {
        let levels = self.levels;
        let counters = Arc::new(WorkerCounters {
            hot: CachePadded::new(Hot { parked: AtomicBool::new(false), steals: AtomicU64::new(0) }),
            levels: (0..levels).map(|_| CachePadded::new(LevelCounters::default())).collect(),
            waits: self.wait_metrics.then(|| Mutex::new((0..levels).map(|_| wait_histogram()).collect())),
        });
        lock(&self.roster).live.push(Arc::clone(&counters));
        counters
    }

    /// Folds an exiting worker's counters into the retired totals and takes
    /// it off the roster; returns how many workers remain.
    fn detach(&self, counters: &Arc<WorkerCounters>) -> usize {
        let mut roster = lock(&self.roster);
        let Roster { live, retired } = &mut *roster;
        for (total, level) in retired.levels.iter_mut().zip(counters.levels.iter()) {
            total.started += level.started.load(Ordering::Acquire);
            total.completed += level.completed.load(Ordering::Acquire);
            total.panicked += level.panicked.load(Ordering::Acquire);
            total.cancelled += level.cancelled.load(Ordering::Acquire);
            total.expired += level.expired.load(Ordering::Acquire);
            total.last_taken = total.last_taken.max(level.last_taken.load(Ordering::Acquire));
        }
        retired.steals += counters.hot.steals.load(Ordering::Acquire);
        if let Some(waits) = &counters.waits {
            for (total, waits) in retired.waits.iter_mut().zip(lock(waits).iter()) {
                // Cannot fail: the totals resize themselves to fit.
                let _ = total.add(waits);
            }
        }
        live.retain(|live| !Arc::ptr_eq(live, counters));
        live.len()
    }

    /// Reads every figure; see the module docs for the order and why.
    /// `threads` are the worker counts kept elsewhere, read by the caller
    /// (before this takes the roster lock: a thread start takes the worker
    /// set's lock and then, if the start fails, the roster's).
    pub(crate) fn snapshot(&self, queues: &Levels, threads: ThreadCounts) -> Metrics {
        let roster = lock(&self.roster);
        let live = &roster.live;
        let sum = |level: usize, retired: u64, field: fn(&LevelCounters) -> &AtomicU64| {
            live.iter().fold(retired, |sum, w| sum + field(&w.levels[level]).load(Ordering::Acquire))
        };
        let waits = self.wait_metrics.then(|| self.merged_waits(&roster));
        let levels = (0..self.levels)
            .map(|level| {
                let retired = roster.retired.levels[level];
                let swept = &self.swept[level];
                // Against the flow of a job: finished, started or
                // discarded, queued, rejected.
                let completed = sum(level, retired.completed, |l| &l.completed);
                let panicked = sum(level, retired.panicked, |l| &l.panicked);
                let started = sum(level, retired.started, |l| &l.started);
                let cancelled =
                    sum(level, retired.cancelled, |l| &l.cancelled) + swept.cancelled.load(Ordering::Acquire);
                let expired = sum(level, retired.expired, |l| &l.expired) + swept.expired.load(Ordering::Acquire);
                let backlog = queues.queued(level) as u64;
                let rejected = self.rejected[level].load(Ordering::Acquire);
                let offered = started + cancelled + expired + backlog + rejected;
                let submitted = offered.max(self.submitted_seen[level].fetch_max(offered, Ordering::Relaxed));
                let oldest_wait = self.wait_metrics.then(|| {
                    if backlog == 0 {
                        return Duration::ZERO;
                    }
                    let last_taken = live
                        .iter()
                        .map(|w| w.levels[level].last_taken.load(Ordering::Acquire))
                        .fold(retired.last_taken.max(swept.last_taken.load(Ordering::Relaxed)), u64::max);
                    let mark = last_taken.max(self.rose_at[level].load(Ordering::Acquire));
                    Duration::from_nanos(self.now().raw().saturating_sub(mark))
                });
                LevelMetrics {
                    backlog,
                    submitted,
                    started,
                    completed,
                    panicked,
                    rejected,
                    cancelled,
                    expired,
                    wait: waits.as_ref().map(|waits| WaitTimes::new(waits[level].clone())),
                    oldest_wait,
                }
            })
            .collect();
        let (mut busy, mut idle) = (0, 0);
        for w in live {
            // Finished before started, as for the levels: a worker is
            // counted busy only if it has really started a job it has not
            // finished.
            let finished = w
                .levels
                .iter()
                .fold(0, |sum, l| sum + l.completed.load(Ordering::Acquire) + l.panicked.load(Ordering::Acquire));
            let started = w.levels.iter().fold(0, |sum, l| sum + l.started.load(Ordering::Acquire));
            if w.hot.parked.load(Ordering::Relaxed) {
                idle += 1;
            } else if started > finished {
                busy += 1;
            }
        }
        let steals = live.iter().fold(roster.retired.steals, |sum, w| sum + w.hot.steals.load(Ordering::Relaxed));
        Metrics {
            levels,
            workers: WorkerMetrics {
                total: live.len(),
                busy,
                idle,
                current: threads.current,
                started: threads.started as u64,
                retired: threads.retired as u64,
                steals,
            },
            uptime: self.epoch.elapsed(),
            hook_panics: self.hook_panics.load(Ordering::Relaxed),
        }
    }

    /// Each level's queue-wait histogram, summed over all workers ever.
    fn merged_waits(&self, roster: &Roster) -> Vec<Histogram<u64>> {
        let mut merged = roster.retired.waits.clone();
        for waits in roster.live.iter().filter_map(|w| w.waits.as_ref()) {
            for (total, waits) in merged.iter_mut().zip(lock(waits).iter()) {
                // Cannot fail: the totals resize themselves to fit.
                let _ = total.add(waits);
            }
        }
        merged
    }
}

/// A worker thread's side of monitoring: its counters, its hooks and its
/// log events. Owned by the worker thread.
pub(crate) struct WorkerProbe {
    /// The pool, for taking the worker off the roster when the probe drops.
    registry: sync::Arc<Registry>,
    index: usize,
    counters: Arc<WorkerCounters>,
    /// `counters.levels`, one pointer closer.
    levels: Arc<[CachePadded<LevelCounters>]>,
    /// Whether a job needs more than its counters: a queue wait to measure
    /// or a job hook to call. When not, the per-job work is two counter
    /// bumps on a line this worker owns, inlined into the worker loop.
    detailed: bool,
    /// The running job's details, when `detailed`: kept here rather than
    /// carried through the worker loop, which then moves only two words.
    detail: Cell<Option<Detail>>,
}

/// A job between its start and its end: its level's counters.
pub(crate) struct Running<'a> {
    level: usize,
    counters: &'a LevelCounters,
}

#[derive(Clone, Copy)]
struct Detail {
    info: JobInfo,
    /// When the job itself began, if an `after_job` hook wants its run time.
    began: Option<Instant>,
}

impl WorkerProbe {
    /// Puts worker `index` on the roster. Call before its thread is
    /// spawned, so that the roster never misses a worker that is about to
    /// run (which would let another worker believe it was the last); the
    /// worker leaves the roster when the probe is dropped, at the end of its
    /// thread or with the thread's closure if the thread could not start.
    pub(crate) fn attach(registry: &sync::Arc<Registry>, index: usize) -> WorkerProbe {
        let monitoring = &registry.config.monitoring;
        let detailed = monitoring.wait_metrics || monitoring.before_job.is_some() || monitoring.after_job.is_some();
        let counters = registry.metrics.attach();
        let levels = Arc::clone(&counters.levels);
        WorkerProbe { registry: sync::Arc::clone(registry), index, counters, levels, detailed, detail: Cell::new(None) }
    }

    /// Logs the start and runs the `on_thread_start` hook. Call before the
    /// thread registers as a worker for spawns (`worker::CURRENT`).
    pub(crate) fn thread_started(&self, registry: &Registry) {
        log_event!(
            debug,
            "worker {} started on thread {:?}",
            self.index,
            sync::plain::thread::current().name().unwrap_or("<unnamed>")
        );
        if let Some(hook) = &registry.config.monitoring.on_thread_start {
            hooks::guarded(registry, "on_thread_start", || hook(self.index));
        }
    }

    /// Runs the `on_thread_stop` hook and logs the worker's exit. Call
    /// after the thread stopped being a worker for spawns.
    pub(crate) fn thread_stopping(&self, registry: &Registry) {
        if let Some(hook) = &registry.config.monitoring.on_thread_stop {
            hooks::guarded(registry, "on_thread_stop", || hook(self.index));
        }
        log_event!(debug, "worker {} exited", self.index);
    }

    /// Marks the worker parked (`true`) or searching again (`false`).
    pub(crate) fn set_idle(&self, idle: bool) {
        self.counters.hot.parked.store(idle, Ordering::Relaxed);
    }

    /// Counts the start of `job` at `level`, found at `source`; measures its
    /// queue wait and runs the `before_job` hook if asked to.
    #[inline]
    pub(crate) fn job_starting(&self, registry: &Registry, level: usize, source: Source, job: &Job) -> Running<'_> {
        if source == Source::Peer {
            bump(&self.counters.hot.steals);
        }
        let counters = &self.levels[level];
        bump(&counters.started);
        if self.detailed {
            self.detail.set(Some(self.start_detail(registry, level, job)));
        }
        Running { level, counters }
    }

    #[inline(never)]
    fn start_detail(&self, registry: &Registry, level: usize, job: &Job) -> Detail {
        let queue_wait = job.queued_at().map(|queued| {
            let now = registry.metrics.now();
            self.levels[level].last_taken.store(now.raw(), Ordering::Release);
            let waited = Duration::from_nanos(now.raw().saturating_sub(queued.raw()));
            if let Some(waits) = &self.counters.waits {
                let micros = u64::try_from(waited.as_micros()).unwrap_or(u64::MAX);
                let histogram = &mut lock(waits)[level];
                if histogram.record(micros).is_err() {
                    histogram.saturating_record(micros);
                }
            }
            waited
        });
        let info = JobInfo { level, worker: self.index, queue_wait };
        let monitoring = &registry.config.monitoring;
        if let Some(hook) = &monitoring.before_job {
            hooks::guarded(registry, "before_job", || hook(info));
        }
        Detail { info, began: monitoring.after_job.as_ref().map(|_| Instant::now()) }
    }

    /// Counts a job of `level`, found at `source`, that this worker took off
    /// a queue and discarded unrun (`fate`: cancelled or expired). No hook
    /// runs for it: it never started.
    #[inline]
    pub(crate) fn job_discarded(&self, registry: &Registry, level: usize, source: Source, fate: Unrun) {
        if source == Source::Peer {
            bump(&self.counters.hot.steals);
        }
        let counters = &self.levels[level];
        if registry.metrics.wait_metrics {
            // Progress of the level's queue, for `oldest_wait`.
            counters.last_taken.store(registry.metrics.now().raw(), Ordering::Release);
        }
        bump(match fate {
            Unrun::Cancelled => &counters.cancelled,
            Unrun::Expired => &counters.expired,
        });
    }

    /// Runs the `after_job` hook, logs a panic and counts the end of a job
    /// (last, so that the worker counts as busy through its hooks).
    #[inline]
    pub(crate) fn job_ended(&self, registry: &Registry, running: Running<'_>, outcome: &Outcome) {
        let panicked = matches!(outcome, Outcome::Panicked(_));
        if self.detailed {
            self.end_detail(registry, panicked);
        }
        if let Outcome::Panicked(payload) = outcome {
            log_panic(self.index, running.level, payload.as_deref());
            bump(&running.counters.panicked);
        } else {
            bump(&running.counters.completed);
        }
    }

    #[inline(never)]
    fn end_detail(&self, registry: &Registry, panicked: bool) {
        let Some(detail) = self.detail.take() else { return };
        let run_time = detail.began.map(|began| began.elapsed()).unwrap_or_default();
        if let Some(hook) = &registry.config.monitoring.after_job {
            let outcome = if panicked { JobOutcome::Panicked } else { JobOutcome::Completed };
            hooks::guarded(registry, "after_job", || hook(detail.info, outcome, run_time));
        }
    }
}

impl Drop for WorkerProbe {
    /// Takes the worker off the roster, folding its counts into the retired
    /// totals; the last worker of a drained pool logs the end of the
    /// shutdown.
    fn drop(&mut self) {
        let registry = &*self.registry;
        let remaining = registry.metrics.detach(&self.counters);
        if remaining == 0 && registry.lifecycle.is_drained() {
            log_event!(info, "shutdown done: every accepted job has run and every worker has exited");
        }
    }
}

#[cold]
#[cfg_attr(not(feature = "log"), allow(unused_variables))]
fn log_panic(worker: usize, level: usize, payload: Option<&(dyn std::any::Any + Send)>) {
    log_event!(
        warn,
        "a job at level {level} panicked on worker {worker}: {}",
        // A submitted job hands its payload to its JobHandle before the
        // worker sees the outcome.
        payload.map_or("(a submitted job; its JobHandle has the payload)", crate::job::panic_message)
    );
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn a_retired_worker_is_counted_once() {
        let core = MetricsCore::new(2, true);
        let queues = Levels::new(2);
        let a = core.attach();
        let b = core.attach();
        bump(&a.levels[1].started);
        bump(&a.levels[1].completed);
        bump(&b.levels[1].started);
        lock(a.waits.as_ref().unwrap())[1].record(5).unwrap();
        assert_eq!(core.detach(&a), 1);
        let m = core.snapshot(&queues, ThreadCounts::default());
        assert_eq!((m.levels[1].started, m.levels[1].completed, m.workers.total), (2, 1, 1));
        assert_eq!(m.levels[1].wait.as_ref().map(|w| (w.count, w.max_us)), Some((1, 5)));
        assert_eq!(core.detach(&b), 0);
        let m = core.snapshot(&queues, ThreadCounts::default());
        assert_eq!((m.levels[1].started, m.workers.total), (2, 0));
    }

    #[test]
    fn since_gives_the_interval() {
        let core = MetricsCore::new(1, true);
        let queues = Levels::new(1);
        let w = core.attach();
        bump(&w.levels[0].started);
        lock(w.waits.as_ref().unwrap())[0].record(1000).unwrap();
        let first = core.snapshot(&queues, ThreadCounts::default());
        bump(&w.levels[0].started);
        lock(w.waits.as_ref().unwrap())[0].record(10).unwrap();
        let window = core.snapshot(&queues, ThreadCounts::default()).since(&first);
        assert_eq!((window.levels[0].submitted, window.levels[0].started), (1, 1));
        let wait = window.levels[0].wait.as_ref().unwrap();
        assert_eq!((wait.count, wait.max_us), (1, 10));
        // Reversed, the histograms do not subtract.
        assert!(first.since(&core.snapshot(&queues, ThreadCounts::default())).levels[0].wait.is_none());
    }

    #[test]
    fn oldest_wait_is_zero_without_backlog_and_grows_with_it() {
        let core = MetricsCore::new(1, true);
        let queues = Levels::new(1);
        assert_eq!(core.snapshot(&queues, ThreadCounts::default()).levels[0].oldest_wait, Some(Duration::ZERO));
        let stamp = core.stamp_queued(&queues, 0).unwrap();
        queues.count_in(0);
        assert_eq!(core.rose_at[0].load(Ordering::Relaxed), stamp.raw());
        let a = core.snapshot(&queues, ThreadCounts::default()).levels[0].oldest_wait.unwrap();
        let b = core.snapshot(&queues, ThreadCounts::default()).levels[0].oldest_wait.unwrap();
        assert!(b >= a);
        // A second job on a non-empty level leaves the mark alone.
        core.stamp_queued(&queues, 0);
        assert_eq!(core.rose_at[0].load(Ordering::Relaxed), stamp.raw());
    }
}
