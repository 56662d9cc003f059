//! Two thousand pool lifecycles of the kinds `no_leaked_threads.rs` leaves
//! out each end with exactly the threads the process had before: reserved
//! threads, the deadline timer of every pool, a dynamic pool with a minimum
//! of zero, a pool dropped in a thread-local destructor (of another thread,
//! or of its own retiring worker), and a `Spawner` that outlives its pool.
//! Counts `/proc/self/task` after every cycle, so Linux only, and alone in
//! its test binary so that no other test's threads are counted.
#![cfg(target_os = "linux")]

mod common;

use std::cell::RefCell;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use common::{Pending, SETTLE, Tally, recv, soak_watchdog};
use priopool::{Pool, Priority, SpawnErrorKind};

const CYCLES: usize = 2_000;
const JOBS: usize = 16;

/// How many pool kinds a cycle builds, and how many ways it ends one.
const KINDS: usize = 4;
const ENDINGS: usize = 5;

thread_local! {
    /// A pool kept by a thread until it exits.
    static HELD: RefCell<Option<Pool>> = const { RefCell::new(None) };
}

/// Waits (at most [`SETTLE`]) until the process has `before` threads.
fn wait_for_threads(before: usize, cycle: usize) {
    let start = Instant::now();
    loop {
        let now = common::thread_count();
        if now == before {
            return;
        }
        let left: Vec<_> = common::tasks().into_iter().map(|t| t.name).collect();
        assert!(start.elapsed() < SETTLE, "cycle {cycle}: {before} threads before, {now} after: {left:?}");
        thread::sleep(Duration::from_millis(1));
    }
}

/// Each cycle builds a pool of one of four kinds (two fixed workers; 0 to
/// 2 workers with a 1 ms keep-alive; one worker and one reserved thread;
/// 0 or 1 worker with a 100 µs keep-alive and one reserved thread), queues
/// `JOBS` jobs at three levels, each with a maximum queue wait (which
/// starts the deadline timer) and a spawn of its own through a `Spawner`
/// it holds, and ends the pool in one of five ways: drop; drop inside one
/// of its jobs; drop in the thread-local destructor of a thread that
/// exits; drop in the thread-local destructor of its own worker, when that
/// worker retires (dynamic kinds; the fixed kinds drop it plainly); and
/// `shutdown_now`. A `Spawner` kept by the test outlives the pool and is
/// refused. Every closure is dropped exactly once, and after each cycle the
/// process has as many threads as at the start.
#[test]
fn two_thousand_lifecycles_of_other_kinds_leak_no_thread() {
    soak_watchdog("2,000 pool lifecycles of other kinds", |progress| {
        let before = common::thread_count();
        for cycle in 0..CYCLES {
            let kind = cycle % KINDS;
            let dynamic = kind % 2 == 1;
            let builder = Pool::builder().levels(3);
            let builder = match kind {
                0 => builder.workers(2),
                1 => builder.min_workers(0).max_workers(2).keep_alive(Duration::from_millis(1)),
                2 => builder.workers(1).reserved_threads(1),
                _ => builder.min_workers(0).max_workers(1).keep_alive(Duration::from_micros(100)).reserved_threads(1),
            };
            let pool = builder.build().expect("the pool builds");
            let spawner = pool.spawner();
            let pending = Arc::new(Pending::default());
            let ran = Arc::new(Tally::default());
            for i in 0..JOBS {
                pending.add();
                let guard = pending.guard();
                let (own, ran) = (spawner.clone(), Arc::clone(&ran));
                let wait = Duration::from_secs(if i % 2 == 0 { 600 } else { 60 });
                let job = move || {
                    let _guard = guard;
                    ran.add();
                    // Refused only once the pool has shut down and drained.
                    let _ = own.spawn(Priority::HIGH, || {});
                };
                spawner.job(Priority::level(i % 3)).max_wait(wait).spawn(job).map_err(|e| e.kind()).expect("open");
            }
            match cycle % ENDINGS {
                0 => drop(pool),
                1 => {
                    let (done_tx, done) = std::sync::mpsc::channel();
                    let last = move || {
                        drop(pool);
                        done_tx.send(()).expect("test alive");
                    };
                    spawner.spawn(Priority::LOW, last).map_err(|e| e.kind()).expect("open");
                    recv(&done, "the job that drops the pool");
                }
                2 => thread::spawn(move || HELD.with(|held| *held.borrow_mut() = Some(pool)))
                    .join()
                    .expect("the thread exits"),
                3 if dynamic => {
                    let (done_tx, done) = std::sync::mpsc::channel();
                    let keep = move || {
                        HELD.with(|held| *held.borrow_mut() = Some(pool));
                        done_tx.send(()).expect("test alive");
                    };
                    spawner.spawn(Priority::LOW, keep).map_err(|e| e.kind()).expect("open");
                    recv(&done, "the job that hands the pool to its worker");
                }
                3 => drop(pool),
                _ => drop(pool.shutdown_now()),
            }
            pending.wait_for_zero();
            if cycle % ENDINGS != ENDINGS - 1 {
                assert_eq!(ran.get(), JOBS, "cycle {cycle}: every accepted job runs once");
            }
            if cycle % ENDINGS == 3 && dynamic {
                // The pool lives on until its worker retires.
                while spawner.spawn(Priority::HIGH, || {}).is_ok() {
                    thread::sleep(Duration::from_millis(1));
                }
            }
            let refused = spawner.spawn(Priority::HIGH, || {}).map_err(|e| e.kind());
            assert_eq!(refused, Err(SpawnErrorKind::Shutdown), "cycle {cycle}: a Spawner outliving its pool");
            drop(spawner);
            wait_for_threads(before, cycle);
            progress.step();
        }
    });
}
