//! Attack tests (issue 15): bad isolation input gives a `BuildError` (or a working pool),
//! never a panic; every pool that builds runs a job of every level and
//! shuts down. A matrix over reserved_threads, reserved_levels, levels,
//! worker_nice, max_passes and worker counts.

mod common;

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::mpsc;
use std::time::Duration;

use common::watchdog;
use priopool::{MAX_RESERVED_THREADS, Pool, Priority};

#[test]
fn no_isolation_input_panics_the_build() {
    let panics = watchdog("build matrix", Duration::from_secs(240), || {
        let mut panics = Vec::new();
        let mut built = 0;
        let mut refused = 0;
        let reserved = [0, 1, 2, MAX_RESERVED_THREADS, MAX_RESERVED_THREADS + 1, usize::MAX];
        let ups: [Option<Priority>; 6] = [
            None,
            Some(Priority::HIGH),
            Some(Priority::LOW),
            Some(Priority::level(1)),
            Some(Priority::level(64)),
            Some(Priority::level(usize::MAX)),
        ];
        let levels = [1, 2, 64, 65];
        let nices = [None, Some(0), Some(19), Some(20), Some(-1), Some(i32::MIN), Some(i32::MAX)];
        let passes = [None, Some(0), Some(1), Some(u32::MAX)];
        let sizes: [(usize, usize); 3] = [(1, 1), (0, 2), (0, 0)];
        for &r in &reserved {
            for up in ups {
                for &l in &levels {
                    for nice in nices {
                        for p in passes {
                            for &(min, max) in &sizes {
                                // Keep the matrix affordable: reserved thread
                                // counts above 2 only with the plainest rest.
                                if r > 2 && r != usize::MAX && (nice.is_some() || p.is_some() || l != 2) {
                                    continue;
                                }
                                let what = format!(
                                    "reserved {r} up_to {up:?} levels {l} nice {nice:?} passes {p:?} workers {min}..={max}"
                                );
                                let result = catch_unwind(AssertUnwindSafe(|| {
                                    let mut b =
                                        Pool::builder().levels(l).reserved_threads(r).min_workers(min).max_workers(max);
                                    if let Some(up) = up {
                                        b = b.reserved_levels(up);
                                    }
                                    if let Some(n) = nice {
                                        b = b.worker_nice(n);
                                    }
                                    if let Some(p) = p {
                                        b = b.max_passes(p);
                                    }
                                    match b.build() {
                                        Ok(pool) => {
                                            let (tx, rx) = mpsc::channel();
                                            for level in 0..pool.levels() {
                                                let tx = tx.clone();
                                                // A pool with no worker runs only
                                                // what its reserved threads take.
                                                let _ = pool.spawn(Priority::level(level), move || {
                                                    let _ = tx.send(level);
                                                });
                                            }
                                            drop(tx);
                                            let _ = rx.recv_timeout(Duration::from_millis(1));
                                            let _ = pool.shutdown_timeout(Duration::from_secs(5));
                                            true
                                        }
                                        Err(e) => {
                                            assert!(!e.to_string().is_empty());
                                            false
                                        }
                                    }
                                }));
                                match result {
                                    Ok(true) => built += 1,
                                    Ok(false) => refused += 1,
                                    Err(_) => panics.push(what),
                                }
                            }
                        }
                    }
                }
            }
        }
        println!("built {built}, refused {refused}, panicked {}", panics.len());
        panics
    });
    assert!(panics.is_empty(), "{} builds panicked, e.g. {:?}", panics.len(), &panics[..panics.len().min(10)]);
}

/// A pool with no regular worker at all (dynamic, minimum 0) whose reserved
/// threads take every level: every job runs, and it shuts down.
#[test]
fn reserved_threads_alone_run_every_level() {
    watchdog("reserved only", Duration::from_secs(60), || {
        let pool = Pool::builder()
            .min_workers(0)
            .max_workers(1)
            .levels(3)
            .reserved_threads(1)
            .reserved_levels(Priority::LOW)
            .build()
            .unwrap();
        let (tx, rx) = mpsc::channel();
        for i in 0..300 {
            let tx = tx.clone();
            pool.spawn(Priority::level(i % 3), move || tx.send(()).unwrap()).unwrap();
        }
        for _ in 0..300 {
            rx.recv_timeout(Duration::from_secs(30)).unwrap();
        }
        pool.shutdown();
    });
}
