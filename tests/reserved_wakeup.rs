//! Attack tests (issue 15): no lost wake-up for reserved levels. A job of a reserved level
//! pushed (spawned, promoted, spawned by a job on the reserved thread,
//! or from several threads at once) while every worker is held in a LOW
//! job and the reserved threads are busy, spinning, going to sleep or
//! asleep, always starts. The pushes are paced by a varying number of spin
//! hints (no sleeps) so that they meet every phase of the reserved
//! threads' idle spin.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier, mpsc};
use std::thread;
use std::time::Duration;

use common::{BOUND, hold_at, recv, watchdog};
use priopool::{Pool, Priority, PromoteOutcome};

const ROUNDS: usize = 2_000;

fn pause(round: usize) {
    // 0 .. ~20k spin hints: from "still spinning" to "asleep".
    let n = (round * 7919) % 20_000;
    for _ in 0..n {
        std::hint::spin_loop();
    }
}

/// A LOW job queued behind the held workers and promoted to HIGH starts
/// (on a reserved thread) while the workers stay held.
#[test]
fn a_promoted_job_wakes_a_reserved_thread() {
    watchdog("promote wakes reserved", Duration::from_secs(120), || {
        let pool = Pool::builder().workers(2).reserved_threads(1).build().unwrap();
        let release = hold_at(&pool, 2, Priority::LOW);
        for round in 0..ROUNDS {
            let (tx, rx) = mpsc::channel();
            let h = pool.submit(Priority::LOW, move || tx.send(()).unwrap()).unwrap();
            pause(round);
            assert_eq!(h.promote(Priority::HIGH).unwrap(), PromoteOutcome::Moved, "round {round}");
            recv(&rx, &format!("promoted job of round {round}"));
        }
        release.open();
        pool.shutdown();
    });
}

/// Three levels, reserved levels 0..=1, two reserved threads; jobs of
/// levels 0 and 1 pushed from two threads at once, in bursts of varying
/// gaps, all start while both workers are held.
#[test]
fn bursts_from_two_threads_at_two_reserved_levels_all_start() {
    watchdog("two reserved levels", Duration::from_secs(120), || {
        let pool = Pool::builder()
            .workers(2)
            .levels(3)
            .reserved_threads(2)
            .reserved_levels(Priority::level(1))
            .build()
            .unwrap();
        let release = hold_at(&pool, 2, Priority::LOW);
        let spawner = pool.spawner();
        let done = Arc::new(AtomicUsize::new(0));
        let barrier = Arc::new(Barrier::new(2));
        let pushers: Vec<_> = (0..2)
            .map(|p| {
                let (spawner, done, barrier) = (spawner.clone(), Arc::clone(&done), Arc::clone(&barrier));
                thread::spawn(move || {
                    for round in 0..ROUNDS {
                        barrier.wait();
                        pause(round + p);
                        for k in 0..(round % 3 + 1) {
                            let done = Arc::clone(&done);
                            spawner
                                .spawn(Priority::level((p + k) % 2), move || {
                                    done.fetch_add(1, Ordering::Relaxed);
                                })
                                .unwrap();
                        }
                    }
                })
            })
            .collect();
        for p in pushers {
            p.join().unwrap();
        }
        let expected: usize = (0..ROUNDS).map(|r| r % 3 + 1).sum::<usize>() * 2;
        while done.load(Ordering::Relaxed) < expected {
            thread::yield_now();
        }
        release.open();
        pool.shutdown();
    });
}

/// A HIGH job on the reserved thread spawns a HIGH child (onto its own
/// deque) and a LOW child; with the workers held the HIGH child must run
/// (the reserved thread takes it after its job); once the workers are
/// released and asleep, a LOW child spawned by a job on the reserved
/// thread must run too (a regular worker steals it from the reserved
/// thread's deque).
#[test]
fn children_of_a_job_on_the_reserved_thread_run() {
    watchdog("children", Duration::from_secs(120), || {
        let pool = Pool::builder().workers(1).reserved_threads(1).build().unwrap();
        for round in 0..ROUNDS / 2 {
            let release = hold_at(&pool, 1, Priority::LOW);
            let (tx, rx) = mpsc::channel();
            let spawner = pool.spawner();
            let tx2 = tx.clone();
            pool.spawn(Priority::HIGH, move || {
                let tx3 = tx2.clone();
                spawner.spawn(Priority::HIGH, move || tx3.send("high child").unwrap()).unwrap();
            })
            .unwrap();
            assert_eq!(recv(&rx, &format!("HIGH child, round {round}")), "high child");
            release.open();
            pause(round);
            // Now the worker goes idle (or is asleep): a LOW child of a job
            // on the reserved thread.
            let spawner = pool.spawner();
            pool.spawn(Priority::HIGH, move || {
                spawner.spawn(Priority::LOW, move || tx.send("low child").unwrap()).unwrap();
            })
            .unwrap();
            assert_eq!(recv(&rx, &format!("LOW child, round {round}")), "low child");
        }
        pool.shutdown();
    });
}

/// Dynamic pool with a minimum of 1 and a short keep-alive: a LOW child
/// spawned by a job on the reserved thread while the pool's only worker is
/// held, then released; plus HIGH jobs while the extra workers retire.
#[test]
fn dynamic_pool_with_reserved_threads_loses_no_job() {
    watchdog("dynamic", Duration::from_secs(120), || {
        let pool = Pool::builder()
            .min_workers(0)
            .max_workers(3)
            .keep_alive(Duration::from_millis(1))
            .levels(3)
            .reserved_threads(1)
            .reserved_levels(Priority::level(1))
            .build()
            .unwrap();
        let done = Arc::new(AtomicUsize::new(0));
        let mut expected = 0;
        for round in 0..ROUNDS {
            let spawner = pool.spawner();
            let d = Arc::clone(&done);
            pool.spawn(Priority::level(round % 2), move || {
                let d2 = Arc::clone(&d);
                spawner
                    .spawn(Priority::LOW, move || {
                        d2.fetch_add(1, Ordering::Relaxed);
                    })
                    .unwrap();
                d.fetch_add(1, Ordering::Relaxed);
            })
            .unwrap();
            expected += 2;
            pause(round);
            if round % 200 == 0 {
                thread::sleep(Duration::from_millis(3));
            }
        }
        let start = std::time::Instant::now();
        while done.load(Ordering::Relaxed) < expected {
            assert!(start.elapsed() < BOUND, "{} of {expected} ran", done.load(Ordering::Relaxed));
            thread::yield_now();
        }
        pool.shutdown();
    });
}

/// A dynamic pool (minimum 0) whose workers have all retired, with a
/// reserved thread asleep: a LOW job spawned from outside, a LOW child of
/// a HIGH job on the reserved thread (left on its own deque), and a LOW
/// job promoted... to LOW, each run; then a shutdown with a LOW child
/// queued on the reserved thread's deque drains it.
#[test]
fn with_no_worker_left_low_work_of_the_reserved_thread_still_runs() {
    watchdog("no worker left", Duration::from_secs(200), || {
        let pool = Pool::builder()
            .min_workers(0)
            .max_workers(2)
            .keep_alive(Duration::from_millis(1))
            .reserved_threads(1)
            .build()
            .unwrap();
        let wait_no_worker = |pool: &Pool| {
            let start = std::time::Instant::now();
            while pool.workers() != 0 {
                assert!(start.elapsed() < BOUND, "workers never retired");
                thread::sleep(Duration::from_millis(1));
            }
        };
        for round in 0..200 {
            wait_no_worker(&pool);
            let (tx, rx) = mpsc::channel();
            let t1 = tx.clone();
            pool.spawn(Priority::LOW, move || t1.send(1).unwrap()).unwrap();
            assert_eq!(recv(&rx, &format!("outside LOW, round {round}")), 1);
            wait_no_worker(&pool);
            let spawner = pool.spawner();
            let t2 = tx.clone();
            pool.spawn(Priority::HIGH, move || {
                spawner.spawn(Priority::LOW, move || t2.send(2).unwrap()).unwrap();
            })
            .unwrap();
            assert_eq!(recv(&rx, &format!("LOW child, round {round}")), 2);
        }
        // Shutdown right after a LOW child lands on the reserved deque.
        wait_no_worker(&pool);
        let ran = Arc::new(AtomicUsize::new(0));
        let (spawner, r) = (pool.spawner(), Arc::clone(&ran));
        pool.spawn(Priority::HIGH, move || {
            for _ in 0..10 {
                let r = Arc::clone(&r);
                spawner
                    .spawn(Priority::LOW, move || {
                        r.fetch_add(1, Ordering::Relaxed);
                    })
                    .unwrap();
            }
        })
        .unwrap();
        pool.shutdown();
        assert_eq!(ran.load(Ordering::Relaxed), 10);
    });
}
