//! The jobs a retired worker left in its own deque stay reachable by what
//! reaches a queued job from outside the pool: `Pool::queued` counts them,
//! `Pool::cancel_queued` cancels them, `JobHandle::promote` moves them, and
//! the pool's figures balance at rest. The other worker is held meanwhile,
//! so only the retired worker's deque holds the jobs. Seen failing with
//! that deque dropped from the worker set at retirement
//! (`Registry::retire_worker` passing `empty = true`).

mod common;

use std::sync::mpsc;

use common::{BOUND, Latch, assert_at_rest, recv, watchdog};
use priopool::{JobError, JobHandle, Pool, Priority, PromoteOutcome};

/// Two workers: B is held at HIGH until the returned latch opens; A's job
/// submits `n` LOW children onto A's own deque, waits until the pool is resized to one
/// worker, and returns; A, now surplus, retires with the children queued.
fn orphaned(n: usize) -> (Pool, Latch, JobHandle<()>, Vec<JobHandle<usize>>) {
    let pool = Pool::builder().min_workers(1).max_workers(2).levels(3).build().unwrap();
    pool.set_workers(2).unwrap();
    let latch = Latch::new();
    let gate = latch.clone();
    let (tx, rx) = mpsc::channel();
    let txb = tx.clone();
    let holder = pool
        .submit(Priority::HIGH, move || {
            txb.send(()).unwrap();
            gate.wait();
        })
        .unwrap();
    recv(&rx, "holder");
    let spawner = pool.spawner();
    let resized = Latch::new();
    let resized_gate = resized.clone();
    let spawning = pool
        .submit(Priority::HIGH, move || {
            let handles: Vec<_> = (0..n).map(|i| spawner.submit(Priority::LOW, move || i).unwrap()).collect();
            tx.send(()).unwrap();
            resized_gate.wait();
            handles
        })
        .unwrap();
    recv(&rx, "spawner");
    pool.set_workers(1).unwrap();
    resized.open();
    let children = spawning.join().unwrap();
    // A retires at its next pick; wait until its retirement is counted.
    watchdog("retire", BOUND, {
        let spawner = pool.spawner();
        move || {
            while spawner.metrics().workers.retired != 1 {
                std::thread::yield_now()
            }
        }
    });
    (pool, latch, holder, children)
}

#[test]
fn cancel_queued_reaches_a_retired_workers_deque() {
    let (pool, latch, holder, children) = orphaned(10);
    assert_eq!(pool.queued(Priority::LOW), Some(10));
    assert_eq!(pool.cancel_queued(Priority::LOW), 10);
    assert_eq!(pool.queued(Priority::LOW), Some(0));
    for h in children {
        assert!(matches!(h.join(), Err(JobError::Cancelled)));
    }
    latch.open();
    holder.join().unwrap();
    pool.wait_idle();
    let m = pool.metrics();
    assert_at_rest(&m, "after cancel_queued");
    assert_eq!(m.levels[2].cancelled, 10);
    pool.shutdown();
}

#[test]
fn promoting_jobs_out_of_a_retired_workers_deque() {
    let (pool, latch, holder, children) = orphaned(10);
    for h in &children[..5] {
        assert_eq!(h.promote(Priority::level(1)), Ok(PromoteOutcome::Moved));
    }
    assert_eq!((pool.queued(Priority::level(1)), pool.queued(Priority::LOW)), (Some(5), Some(5)));
    latch.open();
    holder.join().unwrap();
    let values: Vec<_> = children.into_iter().map(|h| h.join().unwrap()).collect();
    assert_eq!(values, (0..10).collect::<Vec<_>>());
    pool.wait_idle();
    let m = pool.metrics();
    assert_at_rest(&m, "after promotions");
    assert_eq!((m.levels[2].promoted, m.levels[1].completed, m.levels[2].completed), (5, 5, 5));
    assert_eq!(pool.workers(), 1);
    pool.shutdown();
}
