//! A thousand pool lifecycles (build, load, end while busy) end with exactly
//! the threads the process had before: none leaked, none hung, whatever the
//! pool's kind and however it was ended. Counts `/proc/self/task`, so Linux
//! only, and alone in its test binary so that no other test's threads are
//! counted.
#![cfg(target_os = "linux")]

mod common;

use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use common::{Pending, SETTLE, Tally, soak_watchdog};
use priopool::{Pool, Priority, SpawnErrorKind};

const CYCLES: usize = 1_000;
const JOBS: usize = 32;

/// How many ways a cycle ends its pool (see the test's docs).
const ENDINGS: usize = 6;

/// Each cycle builds a pool, queues `JOBS` jobs (every 8th spawns a child;
/// every 4th has a maximum queue wait, which starts the deadline timer
/// thread) and ends the pool while it is busy, in one of six ways:
/// `shutdown`; drop; drop from inside one of its own jobs (the workers and
/// the timer then exit on their own, detached); `shutdown` on another thread
/// while this one keeps spawning until it is refused; `shutdown_now`; and
/// `shutdown_timeout(0)`, which may leave running jobs to detached workers.
/// Every other round of six cycles the pool is dynamic (0 to 2 workers, a
/// keep-alive of 1 ms), so its workers start, retire and start again during
/// the cycle.
///
/// Every closure is dropped exactly once (run, cancelled or handed back);
/// when the pool was ended gracefully, every accepted job ran; and in the
/// end the process has as many threads as at the start.
#[test]
fn a_thousand_pool_lifecycles_leak_no_thread() {
    soak_watchdog("1,000 pool lifecycles", |progress| {
        let before = common::thread_count();
        let mut dynamic_cycles = 0;
        for cycle in 0..CYCLES {
            let dynamic = (cycle / ENDINGS) % 2 == 1;
            let builder = Pool::builder().levels(2).thread_name(|i| format!("cycle-worker-{i}"));
            let builder = if dynamic {
                builder.min_workers(0).max_workers(2).keep_alive(Duration::from_millis(1))
            } else {
                builder.workers(2)
            };
            let pool = builder.build().expect("the pool builds");
            let pending = Arc::new(Pending::default());
            let ran = Arc::new(Tally::default());
            let spawn = |spawner: &priopool::Spawner, level: Priority, i: usize| {
                pending.add();
                let guard = pending.guard();
                let ran = Arc::clone(&ran);
                let pending = Arc::clone(&pending);
                let child_spawner = spawner.clone();
                let job = move || {
                    let _guard = guard;
                    std::hint::black_box((0..200u64).sum::<u64>());
                    if i.is_multiple_of(8) {
                        pending.add();
                        let child_guard = pending.guard();
                        let child_ran = Arc::clone(&ran);
                        let child = move || {
                            let _guard = child_guard;
                            child_ran.add();
                        };
                        child_spawner.spawn(Priority::HIGH, child).expect("a running job may spawn");
                    }
                    ran.add();
                };
                if i % 4 == 1 {
                    spawner.job(level).max_wait(Duration::from_secs(600)).spawn(job).map(drop).map_err(|e| e.kind())
                } else {
                    spawner.spawn(level, job).map_err(|e| e.kind())
                }
            };
            let spawner = pool.spawner();
            // The ids of the accepted jobs; those with `i % 8 == 0` spawn a
            // child when they run.
            let mut accepted: Vec<usize> = (0..JOBS).collect();
            for i in 0..JOBS {
                spawn(&spawner, Priority::level(i % 2), i).expect("the pool is open");
            }
            let graceful = match cycle % ENDINGS {
                0 => {
                    pool.shutdown();
                    true
                }
                1 => {
                    drop(pool);
                    true
                }
                2 => {
                    // The last handle goes inside a job: shutdown cannot join
                    // from there, so the workers exit on their own once the
                    // drain is over.
                    pending.add();
                    let guard = pending.guard();
                    let last = move || {
                        let _guard = guard;
                        drop(pool);
                    };
                    spawner.spawn(Priority::LOW, last).map_err(|e| e.kind()).expect("the pool is open");
                    true
                }
                3 => {
                    let closer = thread::spawn(move || pool.shutdown());
                    for i in JOBS.. {
                        match spawn(&spawner, Priority::HIGH, i) {
                            Ok(()) => accepted.push(i),
                            Err(kind) => {
                                assert_eq!(kind, SpawnErrorKind::Shutdown);
                                break;
                            }
                        }
                    }
                    closer.join().expect("shutdown returns");
                    true
                }
                4 => {
                    let _cancelled = pool.shutdown_now();
                    false
                }
                _ => {
                    let _report = pool.shutdown_timeout(Duration::ZERO);
                    false
                }
            };
            pending.wait_for_zero();
            // Jobs and children that run, if none is cancelled (the last job
            // of ending 2 is not counted).
            let runs = accepted.len() + accepted.iter().filter(|&&i| i.is_multiple_of(8)).count();
            if graceful {
                assert_eq!(ran.get(), runs, "cycle {cycle}: every accepted job runs exactly once");
            } else {
                assert!(ran.get() <= runs, "cycle {cycle}: a job ran twice");
            }
            dynamic_cycles += usize::from(dynamic);
            progress.step();
        }
        // Workers and timers detached by a drop inside a job or a timed-out
        // shutdown exit on their own.
        let start = Instant::now();
        loop {
            let now = common::thread_count();
            if now == before {
                break;
            }
            let left: Vec<_> = common::tasks().into_iter().map(|t| t.name).collect();
            assert!(start.elapsed() < SETTLE, "{before} threads before, {now} after: {left:?}");
            thread::sleep(Duration::from_millis(1));
        }
        println!("{CYCLES} cycles, {dynamic_cycles} of them with a dynamic pool");
    });
}
