//! A job that a running job spawns once `shutdown_now` (or a timed-out
//! `shutdown_timeout`) has begun is "accepted and then cancelled, not run,
//! and counted" (`Pool::shutdown_now`). break30 found two ways such a job
//! ran: its parent waited for it and claimed it to run inline
//! (`runtime/help.rs`), through its `JobHandle::join`, or through its
//! scope when it was less urgent than the parent (a claimable scoped job).
//! A job popped from a queue while the pool aborts was cancelled; a job
//! claimed by its waiter was not looked at.
//!
//! Each case: a one-worker pool whose only worker runs the parent; the
//! test shuts the pool down with `shutdown_timeout(0)`, which returns once
//! its sweep of the queues is over (the parent still running), and only
//! then does the parent spawn the child and wait for it, so that the
//! sweep cannot be what cancels it: the child must be cancelled all the
//! same, and counted cancelled, never started.

mod common;

use std::panic::{self, AssertUnwindSafe};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::Duration;

use common::{BOUND, Latch, watchdog};
use priopool::{JobError, Pool, Priority, ShutdownReport, Spawner};

/// How the parent waits for its child.
#[derive(Clone, Copy, Debug)]
enum Wait {
    /// `JobHandle::join` on a child submitted at `Priority::LOW`.
    Handle,
    /// A scope with a `Priority::LOW` child: less urgent than the parent,
    /// so claimable.
    Scope,
}

/// Runs the case; returns whether the child ran, how its wait ended, and
/// the final metrics' LOW level (started, cancelled).
fn case(wait: Wait) -> (bool, String, (u64, u64)) {
    let pool = Pool::builder().workers(1).build().unwrap();
    let spawner = pool.spawner();
    let (parent_running, swept) = (Latch::new(), Latch::new());
    let child_ran = Arc::new(AtomicBool::new(false));
    let parent = {
        let (running, swept, ran, sp) =
            (parent_running.clone(), swept.clone(), Arc::clone(&child_ran), spawner.clone());
        pool.submit(Priority::HIGH, move || {
            running.open();
            swept.wait();
            wait_for_child(&sp, wait, ran)
        })
        .unwrap()
    };
    parent_running.wait();
    // The sweep is over when this returns; the parent is still running.
    let report = pool.shutdown_timeout(Duration::ZERO);
    assert!(matches!(report, ShutdownReport::TimedOut { .. }), "{report:?}");
    swept.open();
    let outcome = parent.join().expect("the parent returns");
    // The worker exits on its own once the parent ended: the pool is then
    // at rest and the counts final.
    let low = loop {
        let m = spawner.metrics();
        let low = &m.levels[1];
        if low.backlog == 0 && low.running() == 0 && m.levels[0].running() == 0 && low.started + low.cancelled > 0 {
            // Every offer in exactly one final figure: the entry the
            // claim left behind is not counted twice.
            assert_eq!(
                low.submitted,
                low.completed + low.panicked + low.cancelled + low.expired + low.promoted + low.rejected,
                "{low:?}"
            );
            break (low.started, low.cancelled);
        }
        thread::yield_now();
    };
    (child_ran.load(Ordering::SeqCst), outcome, low)
}

/// The parent's part: spawn the child now, wait for it, say how it ended.
fn wait_for_child(sp: &Spawner, wait: Wait, ran: Arc<AtomicBool>) -> String {
    match wait {
        Wait::Handle => {
            let child =
                sp.submit(Priority::LOW, move || ran.store(true, Ordering::SeqCst)).expect("accepted from a job");
            match child.join() {
                Ok(()) => "ran".into(),
                Err(JobError::Cancelled) => "cancelled".into(),
                Err(other) => format!("{other:?}"),
            }
        }
        Wait::Scope => {
            let ended = panic::catch_unwind(AssertUnwindSafe(|| {
                sp.scope(|s| {
                    s.spawn(Priority::LOW, |_| ran.store(true, Ordering::SeqCst)).expect("accepted from a job");
                })
            }));
            match ended {
                Ok(()) => "ran".into(),
                Err(payload) => common::message(&*payload).unwrap_or("a panic").to_owned(),
            }
        }
    }
}

#[test]
fn a_child_joined_through_its_handle_after_the_sweep_is_cancelled_not_run() {
    let (ran, outcome, (started, cancelled)) = watchdog("handle claim while aborting", BOUND, || case(Wait::Handle));
    assert!(!ran, "the child ran after shutdown began");
    assert_eq!(outcome, "cancelled");
    assert_eq!((started, cancelled), (0, 1));
}

#[test]
fn a_claimable_scoped_child_after_the_sweep_is_cancelled_not_run() {
    let (ran, outcome, (started, cancelled)) = watchdog("scope claim while aborting", BOUND, || case(Wait::Scope));
    assert!(!ran, "the child ran after shutdown began");
    assert!(outcome.contains("cancelled"), "{outcome}");
    assert_eq!((started, cancelled), (0, 1));
}
