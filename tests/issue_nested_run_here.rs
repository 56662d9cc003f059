//! Regression: a worker thread of pool A forgets that it is one when a job
//! on it shuts down another pool B that has no thread of its own.
//!
//! B (`min_workers(0)`, every thread start refused by the OS) has a job
//! queued, so B's shutdown runs B's worker loop on the calling thread
//! (`worker::run_here`). That loop sets the thread-local `CURRENT` to B's
//! deques and, on exit, to `None`, instead of restoring A's. The job of A
//! that dropped B keeps running with the thread no longer marked as A's
//! worker. When it then drops A (a job owning its pool, a documented use),
//! `Registry::shutdown` believes it is called from outside the pool and
//! waits for A's drain, which includes the calling job: with two workers it
//! joins the other worker, which waits for the drain forever.
//!
//! Fixed: a worker loop restores the thread's previous `CURRENT` on exit
//! instead of clearing it.

use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use priopool::{Pool, Priority};

/// A stack larger than the address space: the OS refuses every thread.
const HUGE_STACK: usize = 1 << 50;
const BOUND: Duration = Duration::from_secs(10);

#[test]
fn dropping_a_pool_from_its_job_after_a_nested_pool_ran_on_that_thread_returns() {
    let pool_a = Pool::builder().workers(2).build().unwrap();
    let spawner_a = pool_a.spawner();
    let owner = Arc::new(Mutex::new(Some(pool_a)));
    let (tx, rx) = mpsc::channel();
    let job_owner = Arc::clone(&owner);
    spawner_a
        .spawn(Priority::HIGH, move || {
            let pool_b = Pool::builder().min_workers(0).max_workers(1).stack_size(HUGE_STACK).build().unwrap();
            let (ran_tx, ran_rx) = mpsc::channel();
            pool_b.spawn(Priority::HIGH, move || ran_tx.send(()).unwrap()).unwrap();
            // No thread can start: B's shutdown runs the job on this thread.
            pool_b.shutdown();
            ran_rx.try_recv().expect("B's job ran during its shutdown");
            // A job owning its pool drops it: this must return at once.
            let pool_a = job_owner.lock().unwrap().take();
            drop(pool_a);
            let _ = tx.send(());
        })
        .unwrap();
    drop(owner);
    assert!(
        rx.recv_timeout(BOUND).is_ok(),
        "dropping pool A from inside its own job did not return within {BOUND:?}: the worker thread was no longer \
         recognised as A's after B's shutdown ran B's worker loop on it"
    );
}
