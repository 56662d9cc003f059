//! Idle means idle: once a burst of work is over, every worker thread is
//! blocked in the kernel, not spinning, and a dynamic pool's extra workers
//! have really exited. Read from `/proc/self/task`, so Linux only; the file
//! compiles to nothing elsewhere.
//!
//! Known to catch workers that yield instead of parking (the fixed pool's
//! test fails listing every worker in state `R`) and a disabled keep-alive
//! (the dynamic pool's fails listing four workers still parked).
#![cfg(target_os = "linux")]

mod common;

use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use common::{SETTLE, Tally, intentional_panic, named, named_all, quiet_intentional_panics, soak_watchdog};
use priopool::{Pool, Priority};

const WORKERS: usize = 4;
/// Reserved threads beside the fixed pool's workers: they sleep too.
const RESERVED: usize = 2;
const PREFIX: &str = "idle-test-";
const DYNAMIC_PREFIX: &str = "idle-dyn-";

/// How many consecutive `/proc` samples must show every worker asleep. A
/// worker blocked for a moment on a lock also reads `S`, so one sample
/// could be luck; a worker that spins, polls or wakes on a timer would show
/// `R` in some of many samples.
const SAMPLES: usize = 50;

/// After each of three bursts (thousands of jobs at every level, some
/// panicking, some spawning children), all the pool's worker threads and
/// reserved threads are still alive and every one of them is asleep in the
/// kernel (state `S`).
#[test]
fn after_a_burst_every_worker_is_asleep_in_the_kernel() {
    quiet_intentional_panics();
    soak_watchdog("idle means idle", |progress| {
        let pool = Pool::builder()
            .workers(WORKERS)
            .reserved_threads(RESERVED)
            .levels(3)
            .thread_name(|i| format!("{PREFIX}{i}"))
            .panic_handler(|_| {})
            .build()
            .expect("the pool builds");
        for burst in 0..3 {
            run_burst(&pool);
            progress.step();
            wait_until_all_asleep(PREFIX, WORKERS + RESERVED, burst);
            progress.step();
        }
        pool.shutdown();
    });
}

/// A dynamic pool (1 to 4 workers, a keep-alive of 20 ms) grows for each
/// burst and then shrinks back to its minimum: the workers above it retire
/// and their threads end (they leave `/proc/self/task`), and the one left
/// is asleep in the kernel, parked without a timeout.
#[test]
fn after_a_burst_a_dynamic_pool_shrinks_to_its_minimum_and_sleeps() {
    quiet_intentional_panics();
    soak_watchdog("a dynamic pool idles", |progress| {
        let pool = Pool::builder()
            .min_workers(1)
            .max_workers(WORKERS)
            .keep_alive(Duration::from_millis(20))
            .levels(3)
            .thread_name(|i| format!("{DYNAMIC_PREFIX}{i}"))
            .panic_handler(|_| {})
            .build()
            .expect("the pool builds");
        for burst in 0..3 {
            run_burst(&pool);
            progress.step();
            let start = Instant::now();
            while pool.workers() != 1 || named(DYNAMIC_PREFIX).len() != 1 {
                let left = named(DYNAMIC_PREFIX);
                assert!(
                    start.elapsed() < SETTLE,
                    "burst {burst}: {} workers counted, threads left: {left:?}",
                    pool.workers()
                );
                thread::sleep(Duration::from_millis(1));
            }
            progress.step();
            wait_until_all_asleep(DYNAMIC_PREFIX, 1, burst);
            progress.step();
        }
        // Not an assertion: a burst that never made the pool grow would
        // prove less, so say how much it did.
        println!("dynamic pool: {} worker threads started over 3 bursts", pool.workers_started());
        pool.shutdown();
    });
}

/// Runs 10,000 jobs (and their children) and returns once all have ended.
fn run_burst(pool: &Pool) {
    const JOBS: usize = 10_000;
    let ended = Arc::new(Tally::default());
    for i in 0..JOBS {
        let spawner = pool.spawner();
        let ended = Arc::clone(&ended);
        pool.spawn(Priority::level(i % 3), move || {
            if i % 10 == 0 {
                let child_ended = Arc::clone(&ended);
                spawner.spawn(Priority::HIGH, move || child_ended.add()).expect("a running job may spawn");
            }
            ended.add();
            if i % 100 == 7 {
                intentional_panic();
            }
        })
        .expect("the pool is open");
    }
    ended.wait_for(JOBS + JOBS / 10);
}

/// Polls `/proc` until the `count` threads named `prefix*` read `S` in `SAMPLES` consecutive
/// samples; fails listing the workers' states if they have not settled
/// within `SETTLE`. The pause between samples only saves CPU.
fn wait_until_all_asleep(prefix: &str, count: usize, burst: usize) {
    let start = Instant::now();
    let mut streak = 0;
    loop {
        // `named_all`: a read of `/proc/self/task` while other threads exit
        // may skip a live worker's entry; one that died fails it after
        // `SETTLE`.
        let workers = named_all(prefix, count);
        if workers.iter().all(|t| t.state == 'S') {
            streak += 1;
            if streak == SAMPLES {
                return;
            }
        } else {
            streak = 0;
        }
        assert!(start.elapsed() < SETTLE, "burst {burst}: workers not all asleep after {SETTLE:?}: {workers:?}");
        thread::sleep(Duration::from_millis(1));
    }
}
