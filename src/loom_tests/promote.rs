//! Loom models 9 and 9b: `JobHandle::promote` racing a worker's claim and a
//! cancel (`job/state.rs`, "Promotion").
//!
//! The job's state word is modelled (`sync.rs`), so loom reorders each
//! load and compare-exchange on it against the other threads' steps: the
//! pushes, pops and wake-ups, and the other moves of the word. With the
//! word plain, two of the broken cores named below (a push before the
//! compare-exchange, a level read before it) passed: loom, blind to the
//! word, never ran the racing move in between.

use super::*;
use crate::{CancelOutcome, JobError, Metrics, PromoteOutcome};

/// HIGH and LOW of a two-level pool, as indices into `Metrics::levels`.
const HIGH: usize = 0;
const LOW: usize = 1;

/// The most preemptions models 9 and 9b are explored with, whatever
/// `LOOM_MAX_PREEMPTIONS` says: about 31,000 and 16,000 interleavings (a
/// few seconds) at 4; model 9 grows about fourfold per preemption beyond.
/// Each broken core named below fails at 1 already.
const MAX_PREEMPTIONS_PROMOTE: usize = 4;

/// Every level's figures add up at rest: each offer of a job to a level
/// (a submit, or a promotion to it) ended there exactly once, and no entry,
/// dead or live, is left queued.
fn assert_exact_at_rest(m: &Metrics) {
    for (level, l) in m.levels.iter().enumerate() {
        assert_eq!(l.backlog, 0, "level {level}: {l:?}");
        assert_eq!(l.started, l.completed + l.panicked, "level {level}: {l:?}");
        assert_eq!(
            l.submitted,
            l.completed + l.panicked + l.cancelled + l.expired + l.promoted + l.rejected,
            "level {level}: {l:?}"
        );
    }
}

/// The only worker picks while the caller promotes a job queued at LOW to
/// HIGH: the worker may claim the LOW entry before the promotion (which
/// then answers `TooLate` and pushes nothing), find it dead after the
/// promotion (reaped, not run) and run the HIGH entry, or pop either while
/// the promotion is between its compare-exchange and its push. The job runs
/// exactly once, and without shutdown's help (the caller waits for it
/// first, so a new entry pushed without a wake-up deadlocks); its handle
/// completes with its value; at rest LOW counts exactly one of promoted or
/// started, HIGH counts it started exactly when it was promoted, and the
/// dead LOW entry is reaped, not run.
///
/// Seen failing on a broken core (each alone, then restored):
/// - a claim that ignores the epoch (`Task::claim` moving the job out of
///   `QUEUED` through `transition_at(None, ..)`): the worker claims the dead
///   LOW entry after the compare-exchange and before the HIGH push, so LOW
///   counts the job both promoted and started (two offers there for one
///   submit);
/// - a promotion that pushes its new entry before its compare-exchange
///   (once it has seen the job queued, with the epoch it is about to
///   take): the worker finds the HIGH entry
///   ahead of its epoch and drops it, then the LOW entry already dead, and
///   the job never runs: loom reports the caller's wait as a deadlock.
#[test]
fn model_9_promote_racing_a_workers_claim() {
    model_capped(MAX_PREEMPTIONS_PROMOTE, || {
        let pool = pool(1, 2);
        let spawner = pool.spawner();
        let (ran, latch) = (counter(), Latch::new());
        let (job_ran, done) = (Arc::clone(&ran), latch.clone());
        let handle = pool
            .submit(Priority::LOW, move || {
                job_ran.fetch_add(1, Ordering::SeqCst);
                done.set();
                7
            })
            .expect("the pool is open");
        let moved = match handle.promote(Priority::HIGH).expect("HIGH is a level and the pool is open") {
            PromoteOutcome::Moved => 1,
            PromoteOutcome::TooLate => 0,
        };
        latch.wait(); // loom reports a deadlock if the job is lost
        drop(pool);
        assert_eq!(ran.load(Ordering::SeqCst), 1, "the job ran once");
        assert!(handle.is_finished(), "the handle completed");
        assert!(matches!(handle.join(), Ok(7)), "the handle yields the job's value");
        let m = spawner.metrics();
        assert_exact_at_rest(&m);
        let (high, low) = (&m.levels[HIGH], &m.levels[LOW]);
        assert_eq!((low.submitted, low.promoted, low.started), (1, moved, 1 - moved), "LOW: {low:?}");
        assert_eq!((high.submitted, high.started), (moved, moved), "HIGH: {high:?}");
    });
}

/// A job queued at LOW, while the only worker is held by a gate job, is
/// promoted to HIGH by one thread and cancelled by another. The cancel
/// always prevents it (it cannot have started) and its handle says
/// `Cancelled`; the job never runs, and its one fate is counted at exactly
/// one level: the one live when the cancel's compare-exchange won. If the
/// promotion won first (`Moved`), LOW counts it promoted and HIGH
/// cancelled, whether or not the cancel came before the promotion's push;
/// otherwise (`TooLate`) LOW counts it cancelled and HIGH never saw it. The
/// gate is a HIGH job, counted there as one started.
///
/// Seen failing on a broken core (each alone, then restored):
/// - a promotion counted at the level it moves the job to (`Task::promote`
///   tallying `promoted` at its argument): HIGH counts more fates than
///   offers, LOW fewer;
/// - a cancel counted at the job's first level, as a fixed field would
///   (`Task::abandon` tallying at `meta.level`): after a promotion the fate
///   lands at LOW, which the job had left;
/// - a cancel counted at the level it read before its compare-exchange
///   (`TaskState::transition_at` reading the level once, before its loop):
///   the promotion wins between the read and the compare-exchange, which
///   retries and wins, and the fate lands at LOW again.
#[test]
fn model_9b_promote_racing_cancel() {
    model_capped(MAX_PREEMPTIONS_PROMOTE, || {
        let pool = pool(1, 2);
        let spawner = pool.spawner();
        let (started, open) = (Latch::new(), Latch::new());
        let (gate_started, gate_open) = (started.clone(), open.clone());
        pool.spawn(Priority::HIGH, move || {
            gate_started.set();
            gate_open.wait();
        })
        .expect("the pool is open");
        started.wait();
        let ran = counter();
        let job_ran = Arc::clone(&ran);
        let handle = pool
            .submit(Priority::LOW, move || {
                job_ran.fetch_add(1, Ordering::SeqCst);
            })
            .expect("the pool is open");
        let cancel = handle.cancel_handle();
        let promoter = thread::spawn(move || {
            let outcome = handle.promote(Priority::HIGH).expect("HIGH is a level and the pool is open");
            (outcome, handle)
        });
        assert_eq!(cancel.cancel(), CancelOutcome::Prevented, "the job cannot have started");
        let (outcome, handle) = promoter.join().expect("the promoter does not panic");
        open.set();
        drop(pool);
        assert_eq!(ran.load(Ordering::SeqCst), 0, "a cancelled job ran");
        assert!(matches!(handle.join(), Err(JobError::Cancelled)), "the handle says cancelled");
        let m = spawner.metrics();
        assert_exact_at_rest(&m);
        let (high, low) = (&m.levels[HIGH], &m.levels[LOW]);
        let moved = u64::from(outcome == PromoteOutcome::Moved);
        assert_eq!((low.submitted, low.promoted, low.cancelled, low.started), (1, moved, 1 - moved, 0), "LOW: {low:?}");
        assert_eq!((high.submitted, high.cancelled, high.started), (1 + moved, moved, 1), "HIGH: {high:?}");
    });
}
