//! A `TimedOut` report counts a job whose spawn from outside was under way
//! when the pool closed: admitted before the close, it is pushed after the
//! sweep and cancelled later by a worker, so it had not ended when
//! `shutdown_timeout` returned (`ShutdownReport::TimedOut`,
//! `still_running`), and its spawn returns `Ok`: the job was accepted.
//!
//! One worker held by a gate job (so `still_running` counts it once);
//! producers spawn heavy jobs from outside (the ballast is copied into the
//! job's box between admission and push, which widens the window), each
//! cancelling its previous job through its handle so that the backlog
//! stays small. After `shutdown_timeout(0)`, every job the shutdown
//! cancelled and the report did not count must be within `still_running`
//! beside the gate job.
//!
//! Found by a cross-feature attack (break21): before the report counted the
//! spawns under way (`Lifecycle::count_under_way`, read by
//! `shutdown_timeout` in src/runtime/abort.rs), 11 and 12 of 20 rounds
//! missed one job, in 2 of 2 runs.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::Duration;

use common::{Gate, LONG_BOUND, OnDrop, watchdog};
use priopool::{Pool, Priority, ShutdownReport, SpawnErrorKind};

const PRODUCERS: usize = 3;
const BALLAST: usize = 256 << 10;
const ROUNDS: usize = 20;
const PRODUCER: &str = "producer";

#[derive(Default)]
struct Fates {
    accepted: AtomicUsize,
    ran: AtomicUsize,
    /// Dropped unrun by a producer's `cancel` of its previous job (on the
    /// producer's thread).
    by_handle: AtomicUsize,
    /// Dropped unrun by the shutdown: its sweep or a worker.
    by_shutdown: AtomicUsize,
}

fn round() -> (usize, usize, usize) {
    let pool = Pool::builder().workers(1).stack_size(64 << 20).build().unwrap();
    let gate = Gate::hold(&pool, 1);
    let fates = Arc::new(Fates::default());
    let start = Arc::new(Barrier::new(PRODUCERS + 1));
    let spawned_some = Arc::new(AtomicUsize::new(0));
    let producers: Vec<_> = (0..PRODUCERS)
        .map(|_| {
            let spawner = pool.spawner();
            let fates = Arc::clone(&fates);
            let start = Arc::clone(&start);
            let spawned_some = Arc::clone(&spawned_some);
            thread::Builder::new()
                .name(PRODUCER.into())
                .stack_size(64 << 20)
                .spawn(move || {
                    start.wait();
                    let mut previous = None;
                    let mut counted = false;
                    loop {
                        let ballast = [7u8; BALLAST];
                        let on_drop = {
                            let fates = Arc::clone(&fates);
                            OnDrop(move || {
                                let by_handle = thread::current().name() == Some(PRODUCER);
                                let count = if by_handle { &fates.by_handle } else { &fates.by_shutdown };
                                count.fetch_add(1, Ordering::SeqCst);
                            })
                        };
                        let fates_in = Arc::clone(&fates);
                        let job = move || {
                            std::hint::black_box(&ballast);
                            fates_in.ran.fetch_add(1, Ordering::SeqCst);
                            std::mem::forget(on_drop);
                        };
                        match spawner.job(Priority::LOW).spawn(job) {
                            Ok(handle) => {
                                fates.accepted.fetch_add(1, Ordering::SeqCst);
                                if let Some(previous) = previous.replace(handle) {
                                    let _ = previous.cancel();
                                }
                                if !counted {
                                    counted = true;
                                    spawned_some.fetch_add(1, Ordering::SeqCst);
                                }
                            }
                            Err(error) => {
                                assert_eq!(error.kind(), SpawnErrorKind::Shutdown);
                                // The job comes back: not dropped by the pool.
                                std::mem::forget(error.into_inner());
                                return;
                            }
                        }
                    }
                })
                .unwrap()
        })
        .collect();
    start.wait();
    while spawned_some.load(Ordering::SeqCst) < PRODUCERS {
        thread::yield_now();
    }
    let report = pool.shutdown_timeout(Duration::ZERO);
    for producer in producers {
        producer.join().unwrap();
    }
    drop(gate);
    let accepted = fates.accepted.load(Ordering::SeqCst);
    let ended = || {
        fates.ran.load(Ordering::SeqCst)
            + fates.by_handle.load(Ordering::SeqCst)
            + fates.by_shutdown.load(Ordering::SeqCst)
    };
    while ended() < accepted {
        thread::yield_now();
    }
    thread::sleep(Duration::from_millis(1));
    assert_eq!(ended(), accepted, "every accepted job run or dropped, once");
    let ShutdownReport::TimedOut { cancelled, still_running } = report else {
        panic!("the gate job runs, so no drain: {report:?}");
    };
    (fates.by_shutdown.load(Ordering::SeqCst), cancelled.total(), still_running)
}

#[test]
fn timed_out_counts_a_job_whose_spawn_was_under_way() {
    watchdog("spawns under way at shutdown_timeout", LONG_BOUND, || {
        let mut missed_rounds = 0;
        for _ in 0..ROUNDS {
            // The sweep drops the heavy closures on this thread.
            let round = thread::Builder::new().stack_size(64 << 20).spawn(round).unwrap();
            let (by_shutdown, reported, still_running) = round.join().unwrap();
            // The gate job had not ended either: one of `still_running`.
            if by_shutdown > reported + still_running.saturating_sub(1) {
                missed_rounds += 1;
                eprintln!(
                    "{by_shutdown} jobs cancelled by the shutdown, {reported} counted cancelled, {still_running} still running (the gate job one of them)"
                );
            }
        }
        assert_eq!(missed_rounds, 0, "rounds whose report missed a job not ended, of {ROUNDS}");
    });
}
