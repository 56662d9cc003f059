//! `LevelMetrics::oldest_wait` is a lower bound on the wait of the oldest
//! job still queued at its level. A job its waiter claimed and ran inline
//! (a handle's job, a scope's less urgent job) leaves the backlog when it
//! is claimed, as if taken off its queue, though its entry stays queued
//! (`metrics/counters/ahead.rs`). The claim
//! recorded no "last taken" mark, so a job queued behind it was reported
//! as old as the claimed one: found by the break22 attack (the figure read
//! about `GAP` more than the only queued job had waited).
//!
//! One worker: a HIGH job queues a LOW job `a`, waits `GAP`, queues a LOW
//! job `b` behind it, then claims `a` and runs it inline (joining its
//! handle, or waiting in the scope it was spawned in), and takes a
//! snapshot while `b` is still queued.

mod common;

use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use common::{BOUND, watchdog};
use priopool::{LevelMetrics, Pool, Priority, Spawner};

/// Long enough that a figure counted from `a`'s queueing exceeds any
/// plausible wait of `b` by far; only a causal bound is asserted.
const GAP: Duration = Duration::from_millis(50);

/// What the HIGH job saw: the LOW level's figures, and an upper bound on
/// how long `b` had waited when they were read.
type Seen = (LevelMetrics, Duration);

/// Runs `claim` in a HIGH job on a one-worker pool with wait metrics; it
/// gets the pool's spawner and a closure that queues `b` at LOW, and must
/// queue `a` at LOW, wait, call the closure, then claim `a`.
fn seen_after(claim: impl FnOnce(&Spawner, &dyn Fn()) + Send + 'static) -> Seen {
    let pool = Pool::builder().workers(1).levels(2).wait_metrics(true).build().unwrap();
    let spawner = pool.spawner();
    let (seen_tx, seen_rx) = mpsc::channel();
    pool.spawn(Priority::HIGH, move || {
        let before_b = std::cell::Cell::new(None);
        claim(&spawner, &|| {
            before_b.set(Some(Instant::now()));
            spawner.spawn(Priority::LOW, || ()).unwrap();
        });
        let low = spawner.metrics().levels[1].clone();
        let waited_at_most = before_b.get().expect("b was queued").elapsed();
        seen_tx.send((low, waited_at_most)).unwrap();
    })
    .unwrap();
    let seen = seen_rx.recv_timeout(BOUND).expect("the HIGH job ran");
    assert!(pool.wait_idle());
    common::assert_at_rest(&pool.metrics(), "after the run");
    seen
}

fn check((low, waited_at_most): Seen) {
    assert_eq!((low.backlog, low.started, low.completed), (1, 1, 1), "b queued, a run: {low:?}");
    let oldest = low.oldest_wait.expect("wait metrics are on");
    assert!(
        oldest <= waited_at_most,
        "oldest_wait {oldest:?}, but the only queued job waited at most {waited_at_most:?}"
    );
}

#[test]
fn a_handle_claimed_by_its_waiter_is_a_take() {
    watchdog("handle claim", BOUND, || {
        check(seen_after(|spawner, queue_b| {
            let a = spawner.submit(Priority::LOW, || ()).unwrap();
            thread::sleep(GAP);
            queue_b();
            a.join().unwrap();
        }));
    });
}

#[test]
fn a_scoped_job_claimed_by_its_owner_is_a_take() {
    watchdog("scope claim", BOUND, || {
        check(seen_after(|spawner, queue_b| {
            spawner.scope(|s| {
                s.spawn(Priority::LOW, |_| ()).unwrap();
                thread::sleep(GAP);
                queue_b();
            });
        }));
    });
}
