//! Regression: a job whose panic goes to a waiter other than the panic
//! handler (a scoped job's to its scope, a stolen `join` half's to its
//! `join`) was counted as completed: missing from `Pool::panic_count` and
//! `LevelMetrics::panicked`, and reported to `after_job` as `Completed`,
//! although a task whose panic goes to its handle is counted as panicked.
//! Now each is counted as a panic, with nothing for the panic handler: the
//! scope or the `join` resumes the panic in its caller, where a job that
//! calls it panics in turn and is counted too.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, mpsc};
use std::time::Duration;

use common::{CASE_BOUND, intentional_panic, is_intentional, quiet_panics, watchdog};
use priopool::{JobOutcome, Pool, Priority};

/// What a pool saw: panic handler calls, `after_job` reports by outcome.
#[derive(Default)]
struct Seen {
    handled: AtomicUsize,
    completed: AtomicUsize,
    panicked: AtomicUsize,
}

fn pool(seen: &Arc<Seen>) -> Pool {
    let (handler, hook) = (Arc::clone(seen), Arc::clone(seen));
    Pool::builder()
        .workers(2)
        .panic_handler(move |_| {
            handler.handled.fetch_add(1, Ordering::Relaxed);
        })
        .after_job(move |_, outcome, _| {
            let count = if outcome == JobOutcome::Panicked { &hook.panicked } else { &hook.completed };
            count.fetch_add(1, Ordering::Relaxed);
        })
        .build()
        .expect("build")
}

/// Runs `body` on a fresh two-worker pool under a watchdog, then checks
/// every count once the pool is idle: `jobs` jobs ran, `panics` of them
/// panicked, `handled` payloads went to the panic handler.
fn case(what: &'static str, jobs: usize, panics: usize, handled: usize, body: impl FnOnce(&Pool) + Send + 'static) {
    quiet_panics(is_intentional);
    watchdog(what, CASE_BOUND, move || {
        let seen = Arc::new(Seen::default());
        let pool = pool(&seen);
        body(&pool);
        assert!(pool.wait_idle(), "the pool went idle");
        let low = &pool.metrics().levels[1];
        assert_eq!(pool.panic_count(), panics, "Pool::panic_count");
        assert_eq!((low.completed, low.panicked), ((jobs - panics) as u64, panics as u64), "LOW: completed, panicked");
        assert_eq!(seen.panicked.load(Ordering::Relaxed), panics, "after_job: Panicked");
        assert_eq!(seen.completed.load(Ordering::Relaxed), jobs - panics, "after_job: Completed");
        assert_eq!(seen.handled.load(Ordering::Relaxed), handled, "panic handler calls");
    });
}

#[test]
fn a_panicking_scoped_job_counts_as_a_panic() {
    case("scoped job", 1, 1, 0, |pool| {
        let scope = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            pool.scope(|s| {
                s.spawn(Priority::LOW, |_| intentional_panic()).expect("spawn");
            })
        }));
        assert!(scope.is_err_and(|payload| is_intentional(&*payload)), "the scope resumes the job's panic");
    });
}

#[test]
fn a_scope_in_a_job_counts_both_panics_and_hands_one_payload() {
    case("scope in a job", 2, 2, 1, |pool| {
        let spawner = pool.spawner();
        pool.spawn(Priority::LOW, move || {
            spawner.scope(|s| {
                s.spawn(Priority::LOW, |_| intentional_panic()).expect("spawn");
            });
        })
        .expect("spawn");
    });
}

#[test]
fn a_panicking_stolen_join_half_counts_as_a_panic() {
    case("stolen half", 2, 2, 1, |pool| {
        let spawner = pool.spawner();
        pool.spawn(Priority::LOW, move || {
            let (started_tx, started_rx) = mpsc::channel();
            spawner.join(
                Priority::LOW,
                // The joiner is busy here until the other worker has taken
                // `b`: `b` runs as a stolen half, a job of its own.
                move || started_rx.recv_timeout(Duration::from_secs(5)).expect("b was not stolen"),
                move || {
                    started_tx.send(()).expect("a is gone");
                    intentional_panic()
                },
            );
        })
        .expect("spawn");
    });
}
