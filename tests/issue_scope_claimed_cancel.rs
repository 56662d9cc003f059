//! A scoped job that its owner claimed and ran while waiting (a job of a
//! less urgent level than the owner's, `src/forkjoin/scope.rs`) leaves its
//! queue entry behind; `cancel_queued` and `shutdown_now` must not count
//! that entry as a job they cancelled: the job ran. Found by a
//! cross-feature attack (break21): both counted it (`cancel_queued`
//! returned 1, `CancelledJobs` and `LevelMetrics::cancelled` counted 1, and
//! the job that ran was never counted completed).
//!
//! One worker: a HIGH job opens a scope with one LOW job, which the worker
//! (the scope's owner) claims and runs inline; the HIGH job then holds the
//! worker, so the LOW entry stays queued until the test cancels it.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, mpsc};

use common::{BOUND, Latch, watchdog};
use priopool::{Pool, Priority};

/// A one-worker pool whose worker ran a LOW scoped job inline and now
/// holds; returns it, the latch that frees the worker, and how many times
/// the scoped job ran.
fn claimed_and_held() -> (Pool, Latch, Arc<AtomicUsize>) {
    let pool = Pool::builder().workers(1).levels(2).build().unwrap();
    let runs = Arc::new(AtomicUsize::new(0));
    let hold = Latch::new();
    let (scoped_tx, scoped_rx) = mpsc::channel();
    let spawner = pool.spawner();
    let (runs_in, hold_in) = (Arc::clone(&runs), hold.clone());
    pool.spawn(Priority::HIGH, move || {
        spawner.scope(|s| {
            s.spawn(Priority::LOW, |_| {
                runs_in.fetch_add(1, Ordering::SeqCst);
            })
            .unwrap();
        });
        scoped_tx.send(()).unwrap();
        hold_in.wait();
    })
    .unwrap();
    scoped_rx.recv_timeout(BOUND).expect("the scope ended");
    assert_eq!(runs.load(Ordering::SeqCst), 1, "the owner ran the scoped job");
    (pool, hold, runs)
}

#[test]
fn cancel_queued_does_not_count_a_claimed_scoped_job() {
    watchdog("cancel_queued after a claim", BOUND, || {
        let (pool, hold, runs) = claimed_and_held();
        let cancelled = pool.cancel_queued(Priority::LOW);
        hold.open();
        assert!(pool.wait_idle());
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        let low = pool.metrics().levels[1].clone();
        assert_eq!((cancelled, low.cancelled, low.completed), (0, 0, 1), "the job ran: {low:?}");
        common::assert_at_rest(&pool.metrics(), "after cancel_queued");
    });
}

#[test]
fn shutdown_now_does_not_count_a_claimed_scoped_job() {
    watchdog("shutdown_now after a claim", BOUND, || {
        let (pool, hold, runs) = claimed_and_held();
        let spawner = pool.spawner();
        let opener = std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(20));
            hold.open();
        });
        let cancelled = pool.shutdown_now();
        opener.join().unwrap();
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        let low = spawner.metrics().levels[1].clone();
        assert_eq!((cancelled.at(Priority::LOW), low.cancelled, low.completed), (0, 0, 1), "the job ran: {low:?}");
        common::assert_at_rest(&spawner.metrics(), "after shutdown_now");
    });
}
