//! Loom models 9 to 9d: `JobHandle::promote` racing a worker's claim, a
//! cancel, and a waiting job's claims through the live entry (`job/state.rs`,
//! "Promotion").
//!
//! The job's state word is modelled (`sync.rs`), so loom reorders each
//! load and compare-exchange on it against the other threads' steps: the
//! pushes, pops and wake-ups, and the other moves of the word. With the
//! word plain, loom, blind to it, never ran the racing move in between:
//! model 9b passed a fate counted at a level read before its
//! compare-exchange, and model 9 caught a promotion that pushes before its
//! compare-exchange only by a stray entry's count, never the job it loses.

use super::*;
use crate::{CancelOutcome, JobError, Metrics, PromoteOutcome};

/// HIGH and LOW of a two-level pool, as indices into `Metrics::levels`.
const HIGH: usize = 0;
const LOW: usize = 1;

/// The most preemptions the models of promotion are explored with, whatever
/// `LOOM_MAX_PREEMPTIONS` says: about 31,000, 16,000 and 40,000
/// interleavings for 9, 9b and 9c (a few seconds each) at 4; model 9
/// grows about fourfold per preemption beyond. Each broken core named
/// below fails at 1 already.
const MAX_PREEMPTIONS_PROMOTE: usize = 4;

/// The most preemptions model 9d (two promotions racing a waiter's claims)
/// is explored with: about 30,000 interleavings (3 s) at 3, 151,000 (some
/// 17 s) at 4. Its deadlock before the fix of `claim_task` took 3.
const MAX_PREEMPTIONS_TWO_PROMOTIONS: usize = 3;

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

/// A job at level 0, on the only worker of a three-level pool, submits a
/// job at level 2 and joins it, while the caller promotes that job to level
/// 1 `promotions` times: the waiter may pick neither level, so only its
/// claim through the live entry (`TaskState::live_entry`) can run the job,
/// and each promotion can land between its read of the live entry and its
/// claim, which then fails. The job still runs exactly once, inline on the
/// waiter, without shutdown's help (the caller waits for the outer job
/// first); at rest level 1 counts it started iff a promotion moved it and
/// level 2 counts it started or promoted, each dead entry reaped.
fn promote_racing_a_waiters_claim(promotions: usize, preemptions: usize) {
    model_capped(preemptions, move || {
        let pool = pool(1, 3);
        let spawner = pool.spawner();
        let slot: Arc<Mutex<Option<_>>> = Arc::new(Mutex::new(None));
        let (submitted, done) = (Latch::new(), Latch::new());
        let ran = counter();
        let (job_slot, job_submitted, job_done, job_ran) =
            (Arc::clone(&slot), submitted.clone(), done.clone(), Arc::clone(&ran));
        let inner_spawner = pool.spawner();
        pool.spawn(Priority::HIGH, move || {
            let child = inner_spawner
                .submit(Priority::level(2), move || {
                    job_ran.fetch_add(1, Ordering::SeqCst);
                    7
                })
                .expect("a running job may submit");
            *lock(&job_slot) = Some(child.promoter());
            job_submitted.set();
            assert!(matches!(child.join(), Ok(7)), "the joined job yields its value");
            job_done.set();
        })
        .expect("the pool is open");
        submitted.wait();
        let promote = lock(&slot).take().expect("the outer job left its promoter");
        let mut moved = 0;
        for _ in 0..promotions {
            if promote(Priority::level(1)).expect("level 1 exists and the pool is open") {
                moved += 1;
            }
        }
        done.wait(); // loom reports a deadlock if the waiter never claims the job
        drop(pool);
        assert_eq!(ran.load(Ordering::SeqCst), 1, "the job ran once");
        let m = spawner.metrics();
        assert_exact_at_rest(&m);
        let (one, two) = (&m.levels[1], &m.levels[2]);
        let moved_any = u64::from(moved > 0);
        assert_eq!((two.submitted, two.promoted, two.started), (1, moved_any, 1 - moved_any), "level 2: {two:?}");
        assert_eq!(
            (one.submitted, one.promoted, one.started),
            (moved, moved - moved_any, moved_any),
            "level 1: {one:?}"
        );
    });
}

/// Model 9c: one promotion. Seen failing on a broken core (each alone,
/// then restored):
/// - a waiter that claims through the job's first entry (epoch 0, as
///   before `TaskState::live_entry`): after the promotion the claim always
///   fails and loom reports the caller's wait as a deadlock;
/// - a waiter that reads the live entry's level and epoch in two loads
///   (`runtime/help.rs::claim_task`): the promotion lands between them, the
///   claim through the new epoch wins and the run is counted at level 2,
///   which the job had left (two offers there for one submit).
#[test]
fn model_9c_promote_racing_a_waiters_claim_through_the_live_entry() {
    promote_racing_a_waiters_claim(1, MAX_PREEMPTIONS_PROMOTE);
}

/// Model 9d: two promotions, so that the waiter can lose two claims in a
/// row. Found a real bug: `claim_task` answered a claim lost to a
/// promotion as "nothing to claim", so after a second lost claim (its
/// backoff completed: one round under loom, about ten in a real build) the
/// waiter parked while the job was still queued, at a level whose push
/// wakes only sleepers that may take it; loom reported a deadlock at 3
/// preemptions. Passes since `claim_task` tries again while the job is
/// queued.
#[test]
fn model_9d_two_promotions_racing_a_waiters_claims() {
    promote_racing_a_waiters_claim(2, MAX_PREEMPTIONS_TWO_PROMOTIONS);
}
