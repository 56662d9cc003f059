//! Regression: `Pool::shutdown_timeout` is documented as "one overall bound
//! for the whole call", but once the pool had drained it joined the worker
//! threads without a bound, and those threads still run `on_thread_stop`.
//!
//! Interleaving: the pool is idle, so `shutdown_timeout(d)` closes intake,
//! finds the pool drained at once (`Abort::wait_drained`), and joined each
//! worker. Each worker, on its way out, runs the user's `on_thread_stop`
//! hook. A hook that takes longer than `d` (here: one that waits for
//! something the caller does after `shutdown_timeout` returns) held the
//! call past its bound, for as long as the hook ran. The same unbounded
//! join followed a timed-out call that found nothing running
//! (`still_running == 0`).
//!
//! Fixed: in both cases the call joins the workers that finish by its
//! deadline and detaches the rest (`WorkerSet::join_until`).

mod common;

use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use common::Latch;
use priopool::Pool;

/// Far above the 20 ms the call is given: it only turns the hang into a
/// failure.
const BOUND: Duration = Duration::from_secs(5);

#[test]
fn shutdown_timeout_is_bounded_even_while_a_stop_hook_runs() {
    let latch = Latch::new();
    let hook_latch = latch.clone();
    // The hook waits at most `2 * BOUND`, so that a failed test's threads end.
    let pool = Pool::builder()
        .workers(1)
        .on_thread_stop(move |_| {
            hook_latch.wait_timeout(2 * BOUND);
        })
        .build()
        .unwrap();
    let (done_tx, done_rx) = mpsc::channel();
    let caller = thread::spawn(move || {
        let report = pool.shutdown_timeout(Duration::from_millis(20));
        let _ = done_tx.send(report);
    });
    let returned = done_rx.recv_timeout(BOUND);
    // Let the hook finish either way, so that no thread is left behind.
    latch.open();
    caller.join().unwrap();
    assert!(
        returned.is_ok(),
        "shutdown_timeout(20 ms) did not return within {BOUND:?}: it waited for an on_thread_stop hook"
    );
}
