//! `Pool::cancel_queued` reaches the queued jobs of a `scope` and the
//! second closure of a `Pool::join` called from outside the pool (which
//! runs as a scoped job): the scope, or the join, then panics once every
//! job has finished, as after `shutdown_now`, and its message must name
//! what cancelled the job. Found by a cross-feature attack (break21): the
//! message blamed `shutdown_now`, which was never called, and neither
//! `cancel_queued` nor `scope` nor `join` said this could happen.
//!
//! One worker held by a gate job, so the scoped job waits in the queue
//! until `cancel_queued` takes it.

mod common;

use std::panic::{self, AssertUnwindSafe};
use std::thread;

use common::{BOUND, Gate, message, watchdog};
use priopool::{Pool, Priority};

/// Runs `wait` (a scope or a join that queues one LOW job and waits for
/// it) on this thread while another thread cancels LOW's backlog once
/// that job is queued; returns the panic message of `wait`.
fn cancelled_while_waiting(pool: &Pool, wait: impl FnOnce()) -> String {
    let gate = Gate::hold(pool, 1);
    let outcome = thread::scope(|s| {
        let canceller = s.spawn(|| {
            while pool.queued(Priority::LOW) != Some(1) {
                thread::yield_now();
            }
            let cancelled = pool.cancel_queued(Priority::LOW);
            drop(gate);
            cancelled
        });
        let outcome = panic::catch_unwind(AssertUnwindSafe(wait));
        assert_eq!(canceller.join().unwrap(), 1, "the scoped job was queued and cancelled");
        outcome
    });
    let payload = outcome.expect_err("a scoped job was cancelled: the wait panics");
    message(payload.as_ref()).expect("a message").to_owned()
}

#[test]
fn a_scope_whose_job_cancel_queued_cancelled_says_so() {
    watchdog("scope and cancel_queued", BOUND, || {
        let pool = Pool::builder().workers(1).build().unwrap();
        let mut ran = false;
        let message = cancelled_while_waiting(&pool, || {
            pool.scope(|s| {
                s.spawn(Priority::LOW, |_| ran = true).unwrap();
            })
        });
        assert!(!ran);
        assert!(message.contains("cancel_queued"), "the panic names what cancelled the job: {message:?}");
    });
}

#[test]
fn a_join_from_outside_whose_half_cancel_queued_cancelled_says_so() {
    watchdog("join and cancel_queued", BOUND, || {
        let pool = Pool::builder().workers(1).build().unwrap();
        let message = cancelled_while_waiting(&pool, || {
            pool.join(Priority::LOW, || (), || ());
        });
        assert!(message.contains("cancel_queued"), "the panic names what cancelled the job: {message:?}");
    });
}
