//! Regression: a panic payload whose destructor panics, dropped by the pool
//! outside `catch_unwind`, unwinds out of the pool's own code.
//!
//! The pool catches a panic and then drops its payload in three places:
//! the panic handler path (`Registry::job_panicked`, which drops what the
//! handler's own panic left behind), the hook guard (`hooks::guarded`, which
//! drops the hook's payload under `catch_unwind` but then drops the payload
//! of *that* panic bare), and the thread-name guard of `worker::start`,
//! which drops the name function's payload bare. A payload whose destructor
//! panics again then escapes:
//!
//! - from a job or a hook (payload `Nested(1)`: its drop panics with
//!   `Nested(0)`, whose drop panics with a string) the panic unwinds out of
//!   the worker loop and kills the worker: a one-worker pool never runs
//!   another job, and its shutdown never ends;
//! - from `thread_name` (payload `Nested(0)`) it unwinds out of
//!   `Spawner::spawn` after the job was queued and a worker slot reserved:
//!   the caller sees a panic for an accepted job, the slot is never given
//!   back, and a pool with `max_workers(1)` never starts a worker again.
//!
//! Fixed: every such drop, the log macro's and the deadline timer's too,
//! goes through `job::drop_payload`, which drops under `catch_unwind` and
//! leaks the payload of a panicking destructor: one leaked box, against a
//! destructor that could panic without end.

mod common;

use std::any::Any;
use std::panic;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::Duration;

use common::{is_intentional, quiet_panics, watchdog};
use priopool::{Pool, Priority};

const BOUND: Duration = Duration::from_secs(3);

/// A panic payload whose destructor panics with `Nested(n - 1)`, and
/// `Nested(0)`'s with a string.
struct Nested(u32);

impl Drop for Nested {
    fn drop(&mut self) {
        match self.0 {
            0 => panic!("intentional test panic: a payload's destructor"),
            n => panic::panic_any(Nested(n - 1)),
        }
    }
}

/// The panics these tests raise on purpose, for [`quiet_panics`]: `Nested`
/// payloads, and the marked string of `Nested(0)`'s destructor.
fn intentional(payload: &(dyn Any + Send)) -> bool {
    payload.is::<Nested>() || is_intentional(payload)
}

/// Whether `pool`'s only worker still runs jobs; leaks the pool if not, so
/// that its shutdown does not hang the test.
fn still_runs_jobs(pool: Pool) -> bool {
    let handle = pool.submit(Priority::HIGH, || 42).unwrap();
    if handle.join_timeout(BOUND).ok() == Some(42) {
        pool.shutdown();
        true
    } else {
        std::mem::forget(pool);
        false
    }
}

#[test]
fn a_job_panic_whose_payload_panics_when_dropped_does_not_kill_the_worker() {
    quiet_panics(intentional);
    watchdog("a job's nested panic", 2 * BOUND, || {
        let pool = Pool::builder().workers(1).build().unwrap();
        pool.spawn(Priority::HIGH, || panic::panic_any(Nested(1))).unwrap();
        assert!(still_runs_jobs(pool), "the only worker died: the payload's panic unwound out of the worker loop");
    });
}

#[test]
fn a_hook_panic_whose_payload_panics_when_dropped_does_not_kill_the_worker() {
    quiet_panics(intentional);
    watchdog("a hook's nested panic", 2 * BOUND, || {
        let once = AtomicBool::new(true);
        let pool = Pool::builder()
            .workers(1)
            .before_job(move |_| {
                if once.swap(false, Ordering::SeqCst) {
                    panic::panic_any(Nested(1));
                }
            })
            .build()
            .unwrap();
        pool.spawn(Priority::HIGH, || {}).unwrap();
        assert!(still_runs_jobs(pool), "the only worker died: the payload's panic unwound out of the hook guard");
    });
}

#[test]
fn a_thread_name_panic_whose_payload_panics_when_dropped_is_contained() {
    quiet_panics(intentional);
    watchdog("a thread_name nested panic", 2 * BOUND, || {
        let once = Arc::new(AtomicBool::new(true));
        let name_once = Arc::clone(&once);
        let pool = Pool::builder()
            .min_workers(0)
            .max_workers(1)
            .thread_name(move |index| {
                if name_once.swap(false, Ordering::SeqCst) {
                    panic::panic_any(Nested(0));
                }
                format!("named-{index}")
            })
            .build()
            .unwrap();
        let (ran_tx, ran_rx) = mpsc::channel();
        let spawned = panic::catch_unwind(panic::AssertUnwindSafe(|| {
            pool.spawn(Priority::HIGH, move || ran_tx.send(()).unwrap())
        }));
        assert!(!once.load(Ordering::SeqCst), "thread_name was called");
        assert!(matches!(spawned, Ok(Ok(()))), "spawn must accept the job (or hand it back), not panic");
        assert!(ran_rx.recv_timeout(BOUND).is_ok(), "the accepted job never ran");
        assert!(still_runs_jobs(pool), "the pool no longer runs jobs");
    });
}
