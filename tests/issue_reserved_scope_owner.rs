//! A reserved thread (bound to HIGH) that runs a HIGH job waiting on a LOW
//! child claims the child and runs it inline (priority inheritance,
//! `runtime/help.rs`). If that child opens a scope, the scope's owner is
//! at LOW, so a LOW scoped job is "as urgent as its owner": not kept
//! claimable but pushed to the reserved thread's own deque, where only the
//! owner's pick would find it, and a reserved thread's pick never takes a
//! level above its bound. So the scope waited for a regular worker to
//! steal the job; with none free (all busy, retired from a dynamic pool,
//! or gone after `shutdown_timeout(0)`) it waited for ever. Found by
//! tests/abort_waiters.rs (seed 301434: the pool's last thread, reserved,
//! parked in such a scope after a `shutdown_timeout(0)`).
//!
//! Here the one regular worker is held until the HIGH job has finished or
//! a generous watchdog gives up: the scope must end on the reserved thread
//! alone.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use common::{Latch, SETTLE};
use priopool::{JoinTimeoutError, Pool, Priority};

#[test]
fn a_reserved_thread_ends_a_scope_of_a_less_urgent_job_it_claimed() {
    let pool =
        Pool::builder().levels(2).workers(1).reserved_threads(1).reserved_levels(Priority::HIGH).build().unwrap();
    let (held, release) = (Latch::new(), Latch::new());
    let holder = {
        let (held, release) = (held.clone(), release.clone());
        pool.submit(Priority::LOW, move || {
            held.open();
            release.wait();
        })
        .unwrap()
    };
    held.wait();
    let ran = Arc::new(AtomicBool::new(false));
    let spawner = pool.spawner();
    let waiter = {
        let ran = Arc::clone(&ran);
        // Only the reserved thread is free to run it.
        pool.submit(Priority::HIGH, move || {
            let inner = spawner.clone();
            let child = spawner
                .submit(Priority::LOW, move || {
                    inner.scope(|s| {
                        s.spawn(Priority::LOW, |_| ran.store(true, Ordering::SeqCst)).unwrap();
                    });
                })
                .unwrap();
            child.join()
        })
        .unwrap()
    };
    let outcome = waiter.join_timeout(SETTLE);
    // Unblock the pool either way, so that a failure does not hang.
    release.open();
    holder.join().unwrap();
    match outcome {
        Ok(child) => child.unwrap(),
        Err(JoinTimeoutError::TimedOut(waiter)) => {
            drop(waiter.join());
            panic!("the scope on the reserved thread waited for a regular worker ({SETTLE:?})");
        }
        Err(JoinTimeoutError::Job(error)) => panic!("{error}"),
    }
    assert!(ran.load(Ordering::SeqCst));
    pool.shutdown();
}
