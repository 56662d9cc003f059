//! `Builder::on_drop`: by default a dropped pool runs its backlog; with
//! `DropPolicy::CancelBacklog` it cancels it, as `shutdown_now` does, so an
//! early `?` does not wait for a whole batch. An explicit `shutdown` still
//! drains.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, mpsc};

use common::{BOUND, Latch, recv, watchdog};
use priopool::{DropPolicy, Pool, Priority};

/// A one-worker pool held by a running job, with `n` jobs queued behind it;
/// returns the pool, the latch that frees the worker, and the count of
/// queued jobs that ran.
fn backlogged(policy: DropPolicy, n: usize) -> (Pool, Latch, Arc<AtomicUsize>) {
    let pool = Pool::builder().workers(1).on_drop(policy).build().unwrap();
    let latch = Latch::new();
    let (started_tx, started) = mpsc::channel();
    let gate = latch.clone();
    pool.spawn(Priority::HIGH, move || {
        started_tx.send(()).unwrap();
        gate.wait();
    })
    .unwrap();
    recv(&started, "the holding job");
    let ran = Arc::new(AtomicUsize::new(0));
    for _ in 0..n {
        let ran = Arc::clone(&ran);
        pool.spawn(Priority::LOW, move || {
            ran.fetch_add(1, Ordering::SeqCst);
        })
        .unwrap();
    }
    (pool, latch, ran)
}

#[test]
fn by_default_a_drop_runs_the_backlog() {
    watchdog("drain on drop", BOUND, || {
        let (pool, latch, ran) = backlogged(DropPolicy::default(), 100);
        latch.open();
        drop(pool);
        assert_eq!(ran.load(Ordering::SeqCst), 100);
    });
}

#[test]
fn cancel_backlog_cancels_the_queued_jobs_and_waits_for_the_running_one() {
    watchdog("cancel on drop", BOUND, || {
        let (pool, latch, ran) = backlogged(DropPolicy::CancelBacklog, 100);
        let spawner = pool.spawner();
        let dropper = std::thread::spawn(move || drop(pool));
        // The drop cancels the backlog before it waits for the running job.
        while spawner.metrics().level(Priority::LOW).unwrap().cancelled < 100 {
            std::thread::yield_now();
        }
        latch.open();
        dropper.join().unwrap();
        assert_eq!(ran.load(Ordering::SeqCst), 0);
        let m = spawner.metrics();
        assert_eq!((m.levels[0].completed, m.levels[1].cancelled, m.workers.total), (1, 100, 0));
    });
}

#[test]
fn an_explicit_shutdown_drains_whatever_the_policy() {
    watchdog("explicit shutdown", BOUND, || {
        let (pool, latch, ran) = backlogged(DropPolicy::CancelBacklog, 100);
        latch.open();
        pool.shutdown();
        assert_eq!(ran.load(Ordering::SeqCst), 100);
    });
}
