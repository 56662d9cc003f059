//! A `TimedOut` report counts a job whose expiry is under way on the
//! deadline timer thread: its closure's destructor runs there and its
//! handle is still pending, so it has not ended (`ShutdownReport::TimedOut`,
//! `still_running`). Found by an attack on the pool (F4); it failed 3 of 3
//! runs before the timer published that it was expiring a job
//! (`Timer::expiring`, src/runtime/timer.rs).
//!
//! One worker held by a job that blocks; a second job with a deadline 1 ms
//! away whose closure's destructor blocks; once that destructor has begun
//! on `priopool-timer`, `shutdown_timeout(0)` must count two jobs not ended.
mod common;

use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::{Latch, watchdog};
use priopool::{Pool, Priority, ShutdownReport};

struct SlowDrop(mpsc::Sender<()>, Latch);
impl Drop for SlowDrop {
    fn drop(&mut self) {
        let _ = self.0.send(());
        self.1.wait_timeout(Duration::from_secs(10));
    }
}

#[test]
fn timed_out_counts_a_job_the_timer_is_expiring() {
    watchdog("timer expiry", Duration::from_secs(60), || {
        let pool = Pool::builder().workers(1).build().unwrap();
        let gate = common::Gate::hold(&pool, 1);
        let (tx, rx) = mpsc::channel();
        let release = Latch::new();
        let slow = SlowDrop(tx, release.clone());
        let handle = pool
            .job(Priority::LOW)
            .deadline(Instant::now() + Duration::from_millis(1))
            .submit(move || {
                let _keep = &slow;
            })
            .unwrap();
        rx.recv_timeout(common::BOUND).expect("the timer began to drop the expired closure");
        let report = pool.shutdown_timeout(Duration::ZERO);
        let expiring_ended = handle.is_finished();
        release.open();
        drop(gate);
        eprintln!("{report:?}; the expiring job ended: {expiring_ended}");
        match report {
            ShutdownReport::TimedOut { still_running, cancelled } => {
                assert!(!expiring_ended);
                assert!(
                    still_running + cancelled.total() >= 2,
                    "2 jobs had not ended (the gate job, the one expiring), the report counts {still_running} + {}",
                    cancelled.total()
                );
            }
            other => panic!("a job runs, so no drain: {other:?}"),
        }
    });
}
