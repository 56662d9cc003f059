//! Bounded starvation (`Builder::max_passes`, `src/queue/aging.rs`) where
//! it meets promotion and cancellation: a job promoted away from a level
//! (`JobHandle::promote`) or cancelled there leaves a dead entry in that
//! level's queue. The bound is on jobs that start; a dead entry reached
//! when the level is due starts nothing, so it must not count as the
//! level's turn.
//!
//! One worker, held by a gate job while the batch is queued: at LOW, `d`
//! jobs then made dead (promoted to HIGH, or cancelled), then job B; at
//! HIGH, more jobs than B can be passed over. Once the gate opens, at
//! most `k` HIGH jobs may start before B (two levels: the bound is `k`).
//! Seen failing on 9d462e1: a due level whose pick finds a dead entry
//! counted as served, so B waited `(d + 1) · k` HIGH starts (and more).

mod common;

use std::sync::{Arc, Mutex};

use common::{BOUND, watchdog};
use priopool::{CancelOutcome, Pool, Priority, PromoteOutcome};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Started {
    High,
    B,
    /// A promoted job, started at its new level (HIGH).
    Promoted,
}

/// Jobs started at HIGH before B, with bound `k` and `dead` dead LOW entries
/// ahead of B, made by promotion (`promote`) or cancellation.
fn high_starts_before_b(k: u32, dead: usize, promote: bool) -> usize {
    let pool = Pool::builder().workers(1).levels(2).max_passes(k).build().expect("the pool builds");
    let log = Arc::new(Mutex::new(Vec::new()));
    let gate = common::hold_at(&pool, 1, Priority::HIGH);
    let record = |what: Started| {
        let log = Arc::clone(&log);
        move || log.lock().unwrap().push(what)
    };
    let doomed: Vec<_> =
        (0..dead).map(|_| pool.submit(Priority::LOW, record(Started::Promoted)).expect("the pool is open")).collect();
    let b = pool.submit(Priority::LOW, record(Started::B)).expect("the pool is open");
    let highs = 3 * (dead + 1) * k as usize + 2;
    let high: Vec<_> =
        (0..highs).map(|_| pool.submit(Priority::HIGH, record(Started::High)).expect("the pool is open")).collect();
    for handle in &doomed {
        if promote {
            assert_eq!(handle.promote(Priority::HIGH), Ok(PromoteOutcome::Moved));
        } else {
            assert_eq!(handle.cancel(), CancelOutcome::Prevented);
        }
    }
    gate.open();
    b.join().expect("B runs");
    for handle in high {
        handle.join().expect("a HIGH job runs");
    }
    pool.shutdown();
    let log = log.lock().unwrap();
    log.iter().position(|&s| s == Started::B).expect("B started")
}

#[test]
fn a_dead_entry_at_a_due_level_is_not_its_turn() {
    watchdog("dead entries under bounded starvation", BOUND, || {
        for promote in [true, false] {
            for k in 1..=3 {
                for dead in 0..=2 {
                    let before = high_starts_before_b(k, dead, promote);
                    assert!(
                        before <= k as usize,
                        "k = {k}, {dead} dead entries (promoted: {promote}): {before} jobs of HIGH started before B"
                    );
                }
            }
        }
    });
}
