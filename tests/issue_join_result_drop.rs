//! Regression: `join` and `scope` resume a panic while the other side's
//! result is still alive, so the result is dropped *during* the unwind; a
//! destructor that panics then is a panic while panicking, and the process
//! aborts: a worker (and the pool, and the application) killed by a
//! destructor.
//!
//! - `join(a, b)` where `a` panics and `b` returns a value whose destructor
//!   panics: `finish` kept `b`'s `Ok` value bound across `resume_unwind`;
//! - `scope(op)` where a scoped job panics and `op` returns such a value:
//!   `op`'s `Ok` value stayed in `outcome` across `resume_unwind`.
//!
//! Fixed: the unwanted value is dropped under `catch_unwind` before the
//! panic is resumed (`job::drop_payload` for the destructor's payload).

mod common;

use std::any::Any;
use std::time::Duration;

use common::{is_intentional, quiet_panics, watchdog};
use priopool::{Pool, Priority, Spawner};

const BOUND: Duration = Duration::from_secs(3);

/// A value whose destructor panics.
struct Bomb;

impl Drop for Bomb {
    fn drop(&mut self) {
        panic!("intentional test panic: a result's destructor");
    }
}

fn intentional(payload: &(dyn Any + Send)) -> bool {
    is_intentional(payload)
}

/// Runs `body` as a job of a one-worker pool; it must panic (caught as the
/// job's panic, seen through its handle), and the worker must run a job
/// after it.
fn survives(body: impl FnOnce(&Spawner) + Send + 'static) {
    quiet_panics(intentional);
    watchdog("a join or scope whose other result panics when dropped", 2 * BOUND, move || {
        let pool = Pool::builder().workers(1).build().unwrap();
        let inner = pool.spawner();
        let handle = pool.submit(Priority::HIGH, move || body(&inner)).unwrap();
        assert!(handle.join_timeout(BOUND).is_err(), "the job should end in a panic");
        let after = pool.submit(Priority::HIGH, || 42).unwrap();
        assert_eq!(after.join_timeout(BOUND).ok(), Some(42), "the worker died");
        pool.shutdown();
    });
}

#[test]
fn a_join_whose_b_result_panics_when_dropped_resumes_a_panic() {
    survives(|spawner| {
        let _ = spawner.join(Priority::HIGH, || panic!("intentional test panic: a"), || Bomb);
    });
}

#[test]
fn a_join_from_outside_whose_b_result_panics_when_dropped_resumes_a_panic() {
    quiet_panics(intentional);
    let pool = Pool::builder().workers(1).build().unwrap();
    let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let _ = pool.join(Priority::HIGH, || panic!("intentional test panic: a"), || Bomb);
    }));
    assert!(caught.is_err());
    pool.shutdown();
}

#[test]
fn a_scope_whose_op_result_panics_when_dropped_resumes_a_job_panic() {
    survives(|spawner| {
        let _ = spawner.scope(|s| {
            s.spawn(Priority::HIGH, |_| panic!("intentional test panic: a scoped job")).unwrap();
            Bomb
        });
    });
}
