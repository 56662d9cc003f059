//! Shutting down without running the backlog: [`Pool::shutdown_now`] and
//! [`Pool::shutdown_timeout`].
//!
//! # `shutdown_now`, step by step
//!
//! 1. Set `aborting`. From then on every worker that pops a job and sees
//!    the flag cancels it instead of running it (one load per job in
//!    `worker.rs`).
//! 2. Close intake (`lifecycle.rs` step 1): spawns from outside are refused.
//! 3. Sweep: the calling thread takes every queued job with the pick rule
//!    (`Levels::pick` over the injectors and every worker's stealers, with
//!    a scratch deque of its own) and cancels it: its closure is dropped,
//!    its handle yields `JobError::Cancelled`, and it is counted at its
//!    level (for the report and in the metrics). A dead entry (of a job
//!    cancelled, expired or promoted away earlier, and counted then) is
//!    discarded. The sweep stops when the pick finds every queue
//!    empty. Jobs never hide in a count (`queue/levels.rs`), so every job
//!    whose spawn returned before the call began is cancelled by the sweep
//!    or was taken by a worker; a job pushed by a spawn still under way is
//!    cancelled by the worker that pops it (step 1).
//! 4. Wait for the drain and join the workers, as `Pool::shutdown` does
//!    (only running jobs remain; each worker exits when it finds the pool
//!    drained), then join the deadline timer.
//!
//! A job spawned by a running job is accepted even after the close, since
//! its parent is part of the drain. If its push happens after the
//! `aborting` store (in practice: the parent spawned it after learning of
//! the `shutdown_now` call), it is cancelled by the sweep or by the worker
//! that pops it, whose pop acquires the push and so reads `aborting` set,
//! or by the job waiting for it (its handle's `join`, its scope), which
//! would otherwise claim it and run it inline: it reads `aborting` before
//! the claim (`help.rs`), after the push, so it reads it set too. A child
//! pushed earlier may run or be cancelled; either way it is counted exactly
//! once.
//!
//! Running jobs are not interrupted: Rust cannot stop a thread. A job that
//! should stop early needs its handle cancelled (see `JobContext`).
//!
//! Called from one of the pool's own threads (a job, a thread hook; see
//! `worker::is_own_thread`), steps 1 to 3 happen as above but step 4 does
//! not (the caller is part of the drain, or one of the threads to join, as
//! with `Pool::shutdown`): every job queued when the sweep ran is cancelled
//! before the call returns, later children are cancelled by the workers,
//! and the worker threads exit on their own, detached.
//!
//! # `shutdown_timeout(d)`
//!
//! One deadline, `now + d`, bounds the whole call: close intake, wait on the
//! drained latch (opened by the drain check, `lifecycle.rs`) until the deadline;
//! if the pool drained, join the workers, then the timer, that exit by the
//! deadline (`WorkerSet::join_until`, `Timer::join_until`: `on_thread_stop`
//! hooks may be slow, and so may the destructor of an expired closure on
//! the timer thread, which the drain does not wait for), detach the rest,
//! and report [`ShutdownReport::Drained`] if nothing was detached, else
//! [`ShutdownReport::DrainedDetached`] with the count. Otherwise do steps 1
//! to 3 of `shutdown_now` and return [`ShutdownReport::TimedOut`] without
//! waiting for the jobs still running: their workers finish them, find the
//! pool drained and exit, detached. The only unbounded part is the sweep
//! itself, which runs the cancelled closures' destructors on the calling
//! thread, and waits for a spawner stopped in the middle of its push if it
//! reaches that job's slot (`queue/levels.rs`, "What a stalled pusher can
//! delay").
//!
//! [`Pool::shutdown_now`]: crate::Pool::shutdown_now
//! [`Pool::shutdown_timeout`]: crate::Pool::shutdown_timeout

use std::fmt;
use std::time::{Duration, Instant};

use super::registry::Registry;
use super::worker;
use crate::job::task::Discarded;
use crate::job::{Cancelled, Job, JobTally};
use crate::queue::Priority;
use crate::queue::levels::Pick;
use crate::queue::local::LocalQueues;
use crate::sync::{Arc, AtomicBool, AtomicUsize, Backoff, Condvar, Mutex, Ordering, lock, wait_for, wait_until};

/// How many queued jobs [`Pool::shutdown_now`](crate::Pool::shutdown_now)
/// (or a timed-out [`Pool::shutdown_timeout`](crate::Pool::shutdown_timeout))
/// cancelled, per priority level.
///
/// Spawned and submitted jobs alike are counted; a job that had already been
/// cancelled through its handle, or had expired, is not.
#[derive(Clone, PartialEq, Eq)]
pub struct CancelledJobs {
    by_level: Box<[usize]>,
}

impl CancelledJobs {
    /// How many jobs were cancelled at `priority`; 0 for a level the pool
    /// does not have.
    pub fn at(&self, priority: impl Into<Priority>) -> usize {
        priority.into().resolve(self.by_level.len()).map_or(0, |level| self.by_level[level])
    }

    /// The counts, indexed by level (index 0 is the most urgent); one entry
    /// per level of the pool.
    pub fn by_level(&self) -> &[usize] {
        &self.by_level
    }

    /// How many jobs were cancelled in all.
    pub fn total(&self) -> usize {
        self.by_level.iter().sum()
    }
}

impl fmt::Debug for CancelledJobs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CancelledJobs").field("by_level", &self.by_level).field("total", &self.total()).finish()
    }
}

/// What [`Pool::shutdown_timeout`](crate::Pool::shutdown_timeout) did.
///
/// As with Java's `awaitTermination`, the pool counts as shut down only
/// once its threads are gone, not merely its jobs: [`Drained`] means both,
/// and [`DrainedDetached`] that every job ended but some thread was still
/// running user code (an `on_thread_stop` hook or thread-local destructor
/// of a worker, or the destructor of an expired job's closure on the
/// deadline timer thread) when the timeout passed. [`ShutdownReport::drained`] is true for both.
///
/// [`Drained`]: ShutdownReport::Drained
/// [`DrainedDetached`]: ShutdownReport::DrainedDetached
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ShutdownReport {
    /// Every accepted job ran (or ended otherwise: cancelled through its
    /// handle, expired) within the timeout, and every thread of the pool
    /// (its workers, and the deadline timer if it was started) was joined.
    Drained,
    /// Every accepted job ended within the timeout, as for
    /// [`Drained`](ShutdownReport::Drained), but `threads` of the pool's
    /// threads had not exited by then and were detached: workers still in
    /// their [`on_thread_stop`](crate::Builder::on_thread_stop) hook or
    /// thread-local destructors, or the deadline timer still dropping the
    /// closure of a job that expired (or the call was made on the timer
    /// thread itself, by such a closure). They run no job any more and exit
    /// on their own.
    DrainedDetached {
        /// How many threads were left running, detached; at least 1.
        threads: usize,
    },
    /// The timeout passed first. Every job still queued was cancelled as by
    /// [`Pool::shutdown_now`](crate::Pool::shutdown_now), but the jobs still
    /// running were not waited for: their worker threads finish them and
    /// exit on their own, detached.
    TimedOut {
        /// The queued jobs cancelled, per level (those cancelled before the
        /// call returned).
        cancelled: CancelledJobs,
        /// An upper bound on the jobs that had not ended when the call
        /// returned: one per worker not asleep (it may be running a job,
        /// about to run or discard one it took, or still looking for one),
        /// plus any job queued after the sweep (spawned by a running job),
        /// plus one per spawn from outside under way (admitted before
        /// intake closed, so its job may be queued after the sweep),
        /// plus one if the deadline timer was expiring a job (dropping its
        /// closure); a snapshot taken before `cancelled` was read.
        /// 0 means every accepted job had ended: run, or counted in
        /// `cancelled`, or ended otherwise (cancelled through its handle,
        /// expired).
        still_running: usize,
    },
    /// It was called from one of the pool's own threads (inside one of its
    /// jobs, or one of its thread hooks), so it could neither wait for the
    /// drain, which may need the calling thread, nor join that thread:
    /// like [`Pool::shutdown`](crate::Pool::shutdown) there, it closed
    /// intake and returned at once; the workers run every accepted job and
    /// exit on their own, detached. Nothing was cancelled.
    Detached,
}

impl ShutdownReport {
    /// Whether every accepted job ended within the timeout:
    /// [`Drained`](ShutdownReport::Drained) or
    /// [`DrainedDetached`](ShutdownReport::DrainedDetached).
    pub fn drained(&self) -> bool {
        matches!(self, ShutdownReport::Drained | ShutdownReport::DrainedDetached { .. })
    }

    /// Whether the timeout passed before the pool drained.
    pub fn timed_out(&self) -> bool {
        matches!(self, ShutdownReport::TimedOut { .. })
    }
}

/// The abort flag, the per-level counts of cancelled jobs, and the drained
/// latch. One per pool, in the registry.
pub(crate) struct Abort {
    aborting: AtomicBool,
    cancelled: Box<[AtomicUsize]>,
    drained: Mutex<bool>,
    drained_signal: Condvar,
}

impl Abort {
    pub(crate) fn new(levels: usize) -> Abort {
        Abort {
            aborting: AtomicBool::new(false),
            cancelled: (0..levels).map(|_| AtomicUsize::new(0)).collect(),
            drained: Mutex::new(false),
            drained_signal: Condvar::new(),
        }
    }

    /// Whether workers must cancel the jobs they pop. The proof in the module
    /// docs rests on the lifecycle word's release/acquire pair and on
    /// coherence, so any ordering would do here; a `SeqCst` load costs no
    /// more than an `Acquire` one on x86-64 and AArch64.
    pub(crate) fn is_aborting(&self) -> bool {
        self.aborting.load(Ordering::SeqCst)
    }

    /// Cancels a popped job of `level` and counts it for the report, if
    /// this call cancelled it (and in `tally`: `Job::cancel`); returns how
    /// the job ended (cancelled now, or cancelled or expired before) and the
    /// panic of its closure's destructor, if any. The caller counts the
    /// entry taken off its queue and finishes it.
    pub(crate) fn cancel(&self, level: usize, job: Job, tally: &JobTally) -> Discarded {
        match job.cancel(level, tally) {
            Cancelled::Now(panic) => {
                // Release: a report that counts the job sees its closure dropped.
                self.cancelled[level].fetch_add(1, Ordering::Release);
                Discarded { ahead: false, panic }
            }
            Cancelled::Before { ahead } => Discarded { ahead, panic: None },
        }
    }

    /// Records that the pool is drained (called by `Registry::try_drain`,
    /// possibly more than once).
    pub(crate) fn set_drained(&self) {
        *lock(&self.drained) = true;
        self.drained_signal.notify_all();
    }

    /// Waits until the pool is drained or `deadline` passes (`None`: no
    /// deadline); returns whether it drained.
    fn wait_drained(&self, deadline: Option<Instant>) -> bool {
        let (guard, drained) = wait_until(
            lock(&self.drained),
            deadline,
            |drained| **drained,
            |drained, left| wait_for(&self.drained_signal, drained, left),
        );
        drop(guard);
        drained
    }

    fn counts(&self) -> CancelledJobs {
        CancelledJobs { by_level: self.cancelled.iter().map(|n| n.load(Ordering::Acquire)).collect() }
    }
}

/// Steps 1 to 3 of the module docs: abort, close, sweep.
fn abort_and_sweep(registry: &Arc<Registry>) {
    registry.abort.aborting.store(true, Ordering::SeqCst);
    Registry::close_intake(registry);
    sweep(registry);
}

/// Step 3: takes every queued job and cancels it, then runs the drain
/// check. Also run by a spawn from outside that ends once the pool aborts
/// (`Registry::end_spawn`): its job may have been pushed after this call's
/// own sweep.
pub(crate) fn sweep(registry: &Arc<Registry>) {
    let scratch = LocalQueues::new(registry.levels.len());
    let backoff = Backoff::new();
    let (_, mut peers) = registry.workers.snapshot();
    loop {
        match registry.levels.pick(&scratch, &peers, 0) {
            Pick::Found(level, job, _) => {
                if !job.is_fork() {
                    registry.capacity.give_back(level);
                }
                let Discarded { ahead, panic } = registry.abort.cancel(level, job, &registry.metrics.tally);
                if ahead {
                    registry.metrics.ahead_gone(level);
                } else {
                    registry.metrics.reaped(level);
                }
                if let Some(payload) = panic {
                    registry.metrics.tally.caught(crate::job::NEVER_RAN, payload);
                }
                backoff.reset();
            }
            // Another thread won the race for a job: look again.
            Pick::Contended => {
                backoff.snooze();
                (_, peers) = registry.workers.snapshot();
            }
            Pick::Empty => break,
        }
    }
    // The sweep only puts a job into its scratch deques when a more urgent
    // one appeared, and its pick tries them first at their level: the pick
    // answers `Empty` only once they are empty too.
    debug_assert!(scratch.is_empty());
    // Workers that were asleep may be all that is left: the drain check.
    Registry::try_drain(registry);
}

/// [`Pool::cancel_queued`](crate::Pool::cancel_queued): takes every entry
/// queued at `level` off its queue and cancels its job, as the sweep does
/// but for one level and without stopping the pool; returns how many jobs
/// this call cancelled (not counting dead entries of jobs cancelled or
/// expired before). Entries pushed while it runs may or may not be taken.
pub(crate) fn cancel_level(registry: &Arc<Registry>, level: usize) -> usize {
    let (_, peers) = registry.workers.snapshot();
    let tally = &registry.metrics.tally;
    let mut cancelled = 0;
    while let Some(job) = registry.levels.take_at(level, &peers) {
        registry.capacity.give_back(level);
        match job.cancel(level, tally) {
            Cancelled::Now(panic) => {
                cancelled += 1;
                if let Some(payload) = panic {
                    tally.caught(crate::job::NEVER_RAN, payload);
                }
                registry.metrics.reaped(level);
            }
            Cancelled::Before { ahead: true } => registry.metrics.ahead_gone(level),
            Cancelled::Before { ahead: false } => registry.metrics.reaped(level),
        }
    }
    // The queues may have held the drain's last jobs.
    Registry::try_drain(registry);
    cancelled
}

/// [`Pool::shutdown_now`](crate::Pool::shutdown_now).
pub(crate) fn shutdown_now(registry: &Arc<Registry>) -> CancelledJobs {
    abort_and_sweep(registry);
    Registry::shutdown(registry);
    registry.abort.counts()
}

/// [`Pool::shutdown_timeout`](crate::Pool::shutdown_timeout).
pub(crate) fn shutdown_timeout(registry: &Arc<Registry>, timeout: Duration) -> ShutdownReport {
    let deadline = Instant::now().checked_add(timeout);
    Registry::close_intake(registry);
    if worker::is_own_thread(registry.id) {
        return ShutdownReport::Detached;
    }
    if registry.abort.wait_drained(deadline) {
        // Every job has run; the workers and the timer are on their way
        // out. Join them within the same deadline: `on_thread_stop` hooks
        // and the destructor of an expired closure may be slow.
        return match join_until(registry, deadline) {
            0 => ShutdownReport::Drained,
            threads => ShutdownReport::DrainedDetached { threads },
        };
    }
    abort_and_sweep(registry);
    // A spawn from outside admitted before the close may push its job after
    // the sweep; read before the backlog, so that a spawn that ended
    // since has its job in the queues read next (the stripes' acquire),
    // or taken by a worker counted in `engaged`.
    let under_way = registry.lifecycle.count_under_way();
    // A worker that took a job, even one it will discard because the pool
    // aborts, is not asleep until after its next pick. Read before the
    // counts: a job a worker cancelled before it fell asleep is counted.
    let queued: usize = registry.metrics().levels.iter().map(|l| l.backlog as usize).sum();
    // A job the deadline timer is expiring has not ended either.
    let still_running = under_way + registry.sleep.engaged() + queued + registry.timer.expiring();
    let cancelled = registry.abort.counts();
    if still_running == 0 && registry.abort.wait_drained(Some(Instant::now())) {
        // Nothing runs any more: join what exits in time.
        join_until(registry, deadline);
    } else {
        registry.workers.detach_all();
        registry.timer.detach();
    }
    ShutdownReport::TimedOut { cancelled, still_running }
}

/// Joins the workers, then the timer, of a drained pool if they exit by
/// `deadline`, and detaches the rest; returns how many it detached.
fn join_until(registry: &Registry, deadline: Option<Instant>) -> usize {
    let workers = registry.workers.join_until(deadline);
    workers + usize::from(!registry.timer.join_until(deadline))
}
