//! Attack tests (issue 15): idle means idle in configurations tests/idle.rs does not
//! cover: reserved threads over several levels with bounded starvation,
//! waiting jobs, promotions and children left on a reserved thread's
//! deque; a dynamic pool (minimum 0) with reserved threads. After each
//! burst every pool thread must read `S` in many consecutive samples, and
//! the CPU ticks of the pool's threads must not move over a further quiet
//! stretch of samples.
#![cfg(target_os = "linux")]

mod common;

use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use common::{SETTLE, Tally, named, named_all, soak_watchdog};
use priopool::{Pool, Priority};

const SAMPLES: usize = 50;

/// utime + stime (clock ticks) of the threads named `prefix*`, by tid.
fn cpu_ticks(prefix: &str) -> Vec<(u32, u64)> {
    let mut out = Vec::new();
    for t in named(prefix) {
        let Ok(stat) = std::fs::read_to_string(format!("/proc/self/task/{}/stat", t.tid)) else { continue };
        let Some(close) = stat.rfind(')') else { continue };
        let fields: Vec<&str> = stat[close + 2..].split(' ').collect();
        // Fields after the comm: state is [0]; utime is field 14 => [11], stime [12].
        let ticks = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
        out.push((t.tid, ticks));
    }
    out.sort();
    out
}

fn wait_until_all_asleep(prefix: &str, count: Option<usize>, what: &str) {
    let start = Instant::now();
    let mut streak = 0;
    loop {
        let threads = match count {
            Some(count) => named_all(prefix, count),
            None => named(prefix),
        };
        if threads.iter().all(|t| t.state == 'S') {
            streak += 1;
            if streak == SAMPLES {
                break;
            }
        } else {
            streak = 0;
        }
        assert!(start.elapsed() < SETTLE, "{what}: not all asleep after {SETTLE:?}: {threads:?}");
        thread::sleep(Duration::from_millis(1));
    }
    // Quiet stretch: no pool thread gains a CPU tick while nothing is
    // submitted (200 samples, 1 ms apart; the pause only saves CPU).
    let before = cpu_ticks(prefix);
    for _ in 0..200 {
        let threads = named(prefix);
        assert!(threads.iter().all(|t| t.state == 'S'), "{what}: a pool thread woke while idle: {threads:?}");
        thread::sleep(Duration::from_millis(1));
    }
    let after = cpu_ticks(prefix);
    assert_eq!(before, after, "{what}: pool threads burnt CPU while idle (tid, ticks)");
}

fn burst(pool: &Pool, levels: usize) {
    const JOBS: usize = 3_000;
    let ended = Arc::new(Tally::default());
    for i in 0..JOBS {
        let spawner = pool.spawner();
        let ended = Arc::clone(&ended);
        pool.spawn(Priority::level(i % levels), move || {
            match i % 7 {
                0 => {
                    // A child at the least urgent level (a job on a
                    // reserved thread leaves it on its own deque).
                    let e = Arc::clone(&ended);
                    spawner.spawn(Priority::level(levels - 1), move || e.add()).unwrap();
                }
                1 => {
                    let e = Arc::clone(&ended);
                    let h = spawner.submit(Priority::level(0), move || e.add()).unwrap();
                    let _ = h.join();
                }
                2 => {
                    let e = Arc::clone(&ended);
                    let h = spawner.submit(Priority::level(levels - 1), move || e.add()).unwrap();
                    let _ = h.promote(Priority::level(1));
                }
                3 => {
                    let (e1, e2) = (Arc::clone(&ended), Arc::clone(&ended));
                    priopool::join(move || e1.add(), move || e2.add());
                    ended.add();
                    ended.add();
                    return;
                }
                _ => {}
            }
            ended.add();
        })
        .unwrap();
    }
    let extra = (0..JOBS).filter(|i| i % 7 <= 3).count();
    ended.wait_for(JOBS + extra + (0..JOBS).filter(|i| i % 7 == 3).count());
}

#[test]
fn reserved_threads_over_several_levels_sleep_when_idle() {
    soak_watchdog("reserved several levels idle", |progress| {
        let pool = Pool::builder()
            .workers(3)
            .levels(4)
            .reserved_threads(3)
            .reserved_levels(Priority::level(2))
            .max_passes(2)
            .thread_name(|i| format!("b15i-f{i}"))
            .build()
            .unwrap();
        for b in 0..3 {
            burst(&pool, 4);
            progress.step();
            wait_until_all_asleep("b15i-f", Some(6), &format!("fixed burst {b}"));
            progress.step();
        }
        pool.shutdown();
    });
}

#[test]
fn a_dynamic_pool_with_reserved_threads_sleeps_when_idle() {
    soak_watchdog("dynamic reserved idle", |progress| {
        let pool = Pool::builder()
            .min_workers(0)
            .max_workers(4)
            .keep_alive(Duration::from_millis(20))
            .levels(3)
            .reserved_threads(2)
            .reserved_levels(Priority::level(1))
            .thread_name(|i| format!("b15i-d{i}"))
            .build()
            .unwrap();
        for b in 0..3 {
            burst(&pool, 3);
            progress.step();
            let start = Instant::now();
            while pool.workers() != 0 || named("b15i-d").len() != 2 {
                assert!(
                    start.elapsed() < SETTLE,
                    "burst {b}: {} workers, threads {:?}",
                    pool.workers(),
                    named("b15i-d")
                );
                thread::sleep(Duration::from_millis(1));
            }
            wait_until_all_asleep("b15i-d", Some(2), &format!("dynamic burst {b}"));
            progress.step();
        }
        pool.shutdown();
    });
}
