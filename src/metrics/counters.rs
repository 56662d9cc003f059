//! Counting what the pool does without slowing it down, and reading the
//! counts back as a [`Metrics`] snapshot.
//!
//! # Who writes what
//!
//! | figure (per level)           | written by                  | where                                      |
//! |------------------------------|-----------------------------|--------------------------------------------|
//! | started, completed, panicked | the worker running the job  | its own `WorkerCounters`, cache-padded     |
//! | cancelled, expired, promoted | whoever decides the fate (rare): a canceller, the timer, a worker, the sweep, a promoter | `job::JobTally`, shared atomics per level |
//! | reaped (internal)            | whoever takes a dead entry off a queue: a worker, or the `shutdown_now` sweep | the worker's own counters; shared atomics for the sweep |
//! | entries (internal)           | nobody: read from the queues | the injectors' and deques' lengths (`queue/levels.rs`) |
//! | backlog                      | nobody: derived on read     | `entries - (cancelled + expired + promoted - reaped)`: the live entries |
//! | rejected                     | the refused spawner (rare)  | one cache-padded atomic per level          |
//! | submitted                    | nobody: derived on read     | `started + reaped + entries + rejected`, see below |
//! | queue-wait histogram         | the worker running the job  | its own histograms, behind its own mutex   |
//! | oldest-wait marks            | spawner (rare) and worker; the sweep, a claimer, a taker of an entry run ahead (rare) | `rose_at` per level; per-worker last taken; shared last taken per level |
//!
//! A worker's counters have one writer, so a count is bumped with a plain
//! load and store, no read-modify-write; readers sum over the workers (as
//! tokio's runtime metrics batch per worker). `submitted` is not written at
//! all, so that a spawn writes no shared counter: every accepted job is in
//! the backlog before it can be picked, and every picked job is counted by
//! whoever took it, once.
//!
//! A cancelled or expired job is counted where its fate is decided
//! (`job::JobTally`), before its handle can report it, while its dead entry
//! stays queued until a worker or the sweep takes it off (`job/task.rs`)
//! and counts it *reaped*. A promoted job is the same at its old level:
//! counted `promoted` there by the promoting call, its old entry dead
//! until reaped; at its new level it is offered again, as a spawn there
//! (`job/state.rs`, "Promotion"). So the queues hold `entries` = live
//! jobs and dead entries, and the dead entries number
//! `cancelled + expired + promoted - reaped` (the fates of plain closures cancelled by
//! `shutdown_now` are counted and reaped at once). Every offer of a job
//! to a level is in exactly one of started, reaped, entries or rejected at
//! any moment, which is what `submitted` is derived from; the backlog is
//! the live entries. A worker claims a popped job
//! before counting it as started, so a dead entry is never counted as
//! started and gets no job hook.
//!
//! # Exact at join
//!
//! A job is counted finished (and a panic in `Pool::panic_count`) by its
//! worker before its state is set and its handle completed (`Job::run`),
//! and counted cancelled or expired by the winner of its fate before its
//! state settles and its handle is completed (`job/task.rs`). The count is
//! a `Release` write and the handle's completion follows it on the same
//! thread; the joiner acquires the completion and the snapshot reads the
//! counts with `Acquire`: a snapshot taken after `join` (or
//! `is_finished`, or the future's `Ready`) returned counts the job.
//!
//! # Jobs run ahead of their entry
//!
//! A job its waiter claims and runs inline leaves its entry queued: how
//! that is counted, and why a snapshot then counts the job once, is in
//! `counters/ahead.rs`.
//!
//! Workers come and go: each worker's counters are on the roster while it
//! runs and are folded into the `retired` totals when it exits, under the
//! roster lock that a reader also holds, so a snapshot counts each worker
//! exactly once.
//!
//! # The bounds a snapshot keeps, and why
//!
//! A job moves counted in the backlog → picked (counted out) → `started` →
//! `completed` or `panicked`, or → `cancelled` or `expired`; each step
//! happens-before the next (the job travels through a queue: a release
//! push, an acquire pop). Counts are written with `Release` and read with
//! `Acquire`, and a snapshot reads each level *against* that flow:
//! finished, started, discarded, backlog, rejected. Whatever a read sees,
//! everything earlier in that job's life is visible to the later reads, so
//!
//! - `completed + panicked <= started`;
//! - `started + cancelled + expired + promoted + backlog + rejected <=
//!   submitted`: the
//!   snapshot reads started, then the fates, then reaped, then the entries.
//!   A job counted started or reaped was picked before the entries were
//!   read, so it is not among them too (a take moves the queue's front
//!   index with a read-modify-write before the taker counts the job, so the
//!   later loads of the index see it); a job picked between two reads is
//!   missed by both, so `offered = started + reaped + entries + rejected`
//!   may lag, never count a job twice. The same holds for the reported sum:
//!   a job with a fate counted before the fates were read is still an entry
//!   only if it was not yet reaped when reaped was read (a reaper counts
//!   after its take), so it is in the dead entries and taken out of the
//!   backlog (a job reaped but not yet fated when the fates were read only
//!   makes the backlog one higher, for a job counted nowhere else; a job
//!   cancelled at the level it was just promoted to, before the promoter
//!   pushed its entry there, makes it one lower for that moment); started,
//!   fated and rejected jobs are disjoint sets. `submitted`
//!   is the larger of the two sums, raised to the largest value any
//!   earlier snapshot reported (a per-level `fetch_max`), never more than
//!   the true number of jobs offered, so exact at rest;
//! - `busy + idle <= total`: each worker on the roster is classified once
//!   (idle if it says it is parked, else busy if it has started more jobs
//!   than it has finished);
//! - `retired <= started` for worker threads, both read under the worker
//!   set's lock;
//!
//! and no count ever decreases or wraps (`u64`). At rest, `submitted =
//! completed + panicked + cancelled + expired + promoted + rejected`.
//!
//! # Queue waits and the oldest job's wait
//!
//! With [`Builder::wait_metrics`](crate::Builder::wait_metrics) on, a job is
//! stamped (nanoseconds since the pool started) just before it is pushed,
//! and the worker that starts it reads the clock again: the difference
//! goes into that worker's histogram for the level (microseconds, two
//! significant digits, the `hdrhistogram` crate).
//!
//! The age of the oldest queued job cannot be read from lock-free queues
//! without taking the jobs out. Instead each level keeps two marks:
//! `rose_at`, the stamp of a spawn that found the queue it pushes into
//! empty (the level's backlog may have been non-zero elsewhere: the mark is
//! then later than the level's true rise, and the bound only looser),
//! and *last taken*, when a job was last taken off the level's queues (to
//! start, or to be discarded), or left the backlog ahead of its entry (a
//! claim that won, `counters/ahead.rs`; the entry's removal later is a
//! take too, as a discard). The snapshot reports
//!
//! ```text
//! oldest_wait = 0                                         if backlog == 0
//!             = now - max(rose_at, latest last taken)     otherwise
//! ```
//!
//! the time the level has gone with jobs queued and none taken: a lower
//! bound on the oldest queued job's wait (by induction over pushes, that
//! job was stamped before the later mark: it found its queue empty, or an
//! entry ahead of it that has since been taken off, or claimed; this is
//! why a discard and a claim that won record the mark too; while a dead
//! entry ahead of it is still queued, the bound is on that entry's wait),
//! exact while the level starves outright, and small while it is
//! served, so no false starvation alarm under a steady load. The last taken
//! is recorded a few nanoseconds after the pick, so a sample in that window
//! may overstate the figure once.
//!
//! Cost with wait metrics, per job: two `Instant::now()`, a small
//! allocation (the stamp travels in a wrapper, so that jobs stay two words
//! without them), and an uncontended mutex and a histogram update on the
//! worker. Without them a job costs its worker two counter bumps on a line
//! it owns, and its spawner one branch (plus `capacity.rs`'s: whether any
//! level is bounded, a field fixed at build time).

use std::time::{Duration, Instant};

use crossbeam_utils::CachePadded;
use hdrhistogram::Histogram;

use super::snapshot::{LevelMetrics, Metrics, WaitTimes, WorkerMetrics};
use crate::job::{Fates, JobTally, Stamp};
// The counters are plain std atomics even under loom: they order nothing but
// their own figures and are read only by snapshots, which no model takes.
// The roster lock is modelled, since a snapshot reads the queues' lengths
// under it (see `sync.rs`).
use crate::sync::plain::{Arc, AtomicBool, AtomicU64};
use crate::sync::{Mutex, Ordering, lock};

/// The pool's worker counts kept outside the metrics (`limits.rs`,
/// `runtime/workers.rs`), read by the registry for a snapshot.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct ThreadCounts {
    /// `Scaling::current`.
    pub(crate) current: usize,
    /// Worker threads started, and retired: read together.
    pub(crate) started: usize,
    pub(crate) retired: usize,
    /// Reserved threads running, and refused nice values (`runtime/reserved.rs`).
    pub(crate) reserved: usize,
    pub(crate) nice_refused: u64,
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
    /// Per level: dead entries taken off the queues off the workers (the
    /// sweep).
    swept: Box<[CachePadded<Discards>]>,
    /// Per level: the latest stamp of a spawn that found the level's backlog
    /// at zero (0: none yet). Written only when the level was empty.
    rose_at: Box<[CachePadded<AtomicU64>]>,
    roster: Mutex<Roster>,
    hook_panics: AtomicU64,
    /// Panics of destructors run for a job outside its run (`job::JobTally`).
    pub(crate) tally: JobTally,
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
    reaped: u64,
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
pub(crate) struct LevelCounters {
    started: AtomicU64,
    completed: AtomicU64,
    panicked: AtomicU64,
    /// Dead entries (of cancelled, expired or promoted jobs) taken off a
    /// queue (see `Discards`).
    reaped: AtomicU64,
    /// With wait metrics on, the stamp of the latest job taken off the
    /// level's queue, to start or to discard (0: none).
    last_taken: AtomicU64,
}

/// The worker's side: each method is called by the owning worker only.
impl WorkerCounters {
    /// The per-level counters, for the worker to keep one load closer.
    pub(crate) fn levels(&self) -> Arc<[CachePadded<LevelCounters>]> {
        Arc::clone(&self.levels)
    }

    /// Marks the worker parked (`true`) or searching again (`false`).
    pub(crate) fn set_parked(&self, parked: bool) {
        self.hot.parked.store(parked, Ordering::Relaxed);
    }

    /// Counts a job taken from another worker's deque.
    pub(crate) fn stole(&self) {
        bump(&self.hot.steals);
    }

    /// Records a queue wait of a job started at `level`.
    pub(crate) fn record_wait(&self, level: usize, waited: Duration) {
        if let Some(waits) = &self.waits {
            let micros = u64::try_from(waited.as_micros()).unwrap_or(u64::MAX);
            let histogram = &mut lock(waits)[level];
            if histogram.record(micros).is_err() {
                histogram.saturating_record(micros);
            }
        }
    }
}

impl LevelCounters {
    /// Counts a job that starts.
    #[inline]
    pub(crate) fn started(&self) {
        bump(&self.started);
    }

    /// Counts a started job that ended, returning or panicking.
    #[inline]
    pub(crate) fn finished(&self, panicked: bool) {
        bump(if panicked { &self.panicked } else { &self.completed });
    }

    /// Counts the entry of a job that will not run, taken off a queue.
    #[inline]
    pub(crate) fn reaped(&self) {
        bump(&self.reaped);
    }

    /// Records when a job was last taken off the level's queue (wait
    /// metrics only: the `oldest_wait` mark).
    pub(crate) fn took(&self, at: Stamp) {
        self.last_taken.store(at.raw(), Ordering::Release);
    }
}

/// Per level, the entries of cancelled and expired jobs taken off a queue
/// by a thread that is not a worker: the calling thread of a `shutdown_now`
/// sweep; and the jobs run ahead of their entry (any thread). Rare, so
/// shared atomics with read-modify-writes do.
#[derive(Default)]
struct Discards {
    reaped: AtomicU64,
    /// As `LevelCounters::last_taken`, for those takes and claims.
    last_taken: AtomicU64,
    /// Jobs a worker waiting on their handle, or in their scope, claimed
    /// and ran inline (`runtime/help.rs`), counted `started` by it while
    /// their dead entry may still be queued; and those dead entries taken
    /// off their queue since. See `counters/ahead.rs`.
    ahead: AtomicU64,
    ahead_gone: AtomicU64,
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
            tally: JobTally::new(levels),
        }
    }

    /// The time now, as a stamp.
    pub(crate) fn now(&self) -> Stamp {
        Stamp::from_nanos(u64::try_from(self.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX - 1))
    }

    /// Whether the pool measures queue waits.
    pub(crate) fn wait_metrics(&self) -> bool {
        self.wait_metrics
    }

    /// Counts a job offered at `level` and refused.
    pub(crate) fn rejected(&self, level: usize) {
        self.rejected[level].fetch_add(1, Ordering::Release);
    }

    /// The stamp for a job about to be pushed at `level`, when wait metrics
    /// are on. Call just before the push, which publishes the `rose_at`
    /// write made here.
    /// `was_empty`: whether the queue it goes into is empty now.
    pub(crate) fn stamp_queued(&self, level: usize, was_empty: impl FnOnce() -> bool) -> Option<Stamp> {
        if !self.wait_metrics {
            return None;
        }
        let stamp = self.now();
        if was_empty() {
            self.rose_at[level].fetch_max(stamp.raw(), Ordering::Relaxed);
        }
        Some(stamp)
    }

    /// Counts a dead entry of `level` (its job cancelled, expired or
    /// promoted away) that a thread other than a worker (the `shutdown_now`
    /// sweep) took off its queue.
    pub(crate) fn reaped(&self, level: usize) {
        self.took(level);
        self.swept[level].reaped.fetch_add(1, Ordering::Release);
    }

    /// Records that a job of `level` left its backlog now, off the
    /// workers' own counters (wait metrics only: the `oldest_wait` mark).
    fn took(&self, level: usize) {
        if self.wait_metrics {
            self.swept[level].last_taken.fetch_max(self.now().raw(), Ordering::Relaxed);
        }
    }

    pub(crate) fn hook_panicked(&self) {
        self.hook_panics.fetch_add(1, Ordering::Relaxed);
    }

    /// Puts a new worker's counters on the roster.
    pub(crate) fn attach(&self) -> Arc<WorkerCounters> {
        let levels = self.levels;
        let counters = Arc::new(WorkerCounters {
            hot: CachePadded::new(Hot { parked: AtomicBool::new(false), steals: AtomicU64::new(0) }),
            levels: (0..levels).map(|_| CachePadded::new(LevelCounters::default())).collect(),
            waits: self.wait_metrics.then(|| Mutex::new((0..levels).map(|_| wait_histogram()).collect())),
        });
        lock(&self.roster).live.push(Arc::clone(&counters));
        counters
    }

    /// How many workers are on the roster now.
    #[cfg(feature = "log")]
    pub(crate) fn workers_on_roster(&self) -> usize {
        lock(&self.roster).live.len()
    }

    /// Folds an exiting worker's counters into the retired totals and takes
    /// it off the roster; returns how many workers remain.
    pub(crate) fn detach(&self, counters: &Arc<WorkerCounters>) -> usize {
        let mut roster = lock(&self.roster);
        let Roster { live, retired } = &mut *roster;
        for (total, level) in retired.levels.iter_mut().zip(counters.levels.iter()) {
            total.started += level.started.load(Ordering::Acquire);
            total.completed += level.completed.load(Ordering::Acquire);
            total.panicked += level.panicked.load(Ordering::Acquire);
            total.reaped += level.reaped.load(Ordering::Acquire);
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

    /// The backlog of `level` alone, as a snapshot reports it: the queue
    /// entries (`entries()`) less those of jobs run ahead and the dead ones.
    pub(crate) fn backlog(&self, level: usize, entries: impl FnOnce() -> usize) -> usize {
        let roster = lock(&self.roster);
        let fates = self.tally.fates(level);
        let reaped =
            roster.live.iter().fold(roster.retired.levels[level].reaped, |sum, w| {
                sum + w.levels[level].reaped.load(Ordering::Acquire)
            }) + self.swept[level].reaped.load(Ordering::Acquire);
        let dead = fates.sum().saturating_sub(reaped);
        usize::try_from(self.live_entries(level, entries).saturating_sub(dead)).unwrap_or(usize::MAX)
    }

    /// Reads every figure; see the module docs for the order and why.
    /// `threads` are the worker counts kept elsewhere, read by the caller
    /// (before this takes the roster lock: a thread start takes the worker
    /// set's lock and then, if the start fails, the roster's).
    /// `queued(level)` reads the level's backlog.
    pub(crate) fn snapshot(&self, queued: impl Fn(usize) -> usize, threads: ThreadCounts) -> Metrics {
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
                // Against the flow of a job: finished, started, fated,
                // reaped, queued, rejected.
                let completed = sum(level, retired.completed, |l| &l.completed);
                let panicked = sum(level, retired.panicked, |l| &l.panicked);
                let started = sum(level, retired.started, |l| &l.started);
                let fates = self.tally.fates(level);
                let Fates { cancelled, expired, promoted } = fates;
                let reaped = sum(level, retired.reaped, |l| &l.reaped) + swept.reaped.load(Ordering::Acquire);
                let entries = self.live_entries(level, || queued(level));
                let rejected = self.rejected[level].load(Ordering::Acquire);
                let dead = fates.sum().saturating_sub(reaped);
                let backlog = entries.saturating_sub(dead);
                let offered = (started + reaped + entries + rejected).max(started + fates.sum() + backlog + rejected);
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
                    capacity: None,
                    full_waits: 0,
                    cancelled,
                    expired,
                    promoted,
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
                reserved: threads.reserved,
                nice_refused: threads.nice_refused,
            },
            uptime: self.epoch.elapsed(),
            hook_panics: self.hook_panics.load(Ordering::Relaxed),
            drop_panics: self.tally.count(),
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

mod ahead;
#[cfg(all(test, not(loom)))]
mod tests;
