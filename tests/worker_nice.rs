//! Attack tests (issue 15): `worker_nice(n)` sets every worker to the
//! nice value of the thread that built the pool plus `n` (capped at 19),
//! also a worker a dynamic pool starts from a worker's thread, which
//! inherits its creator's nice and used to end at 2n; reserved threads keep
//! the building thread's. Run at a nice value below 9, or every figure is
//! capped at 19 and the tests prove nothing (`cargo test` at nice 0 does).
#![cfg(target_os = "linux")]

mod common;

use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use common::{named_all, watchdog};
use priopool::{Pool, Priority};

/// The nice value of thread `tid` of this process (`/proc`, field 19).
fn nice_of(tid: i32) -> i64 {
    let stat = std::fs::read_to_string(format!("/proc/self/task/{tid}/stat")).unwrap();
    let close = stat.rfind(')').unwrap();
    let fields: Vec<&str> = stat[close + 2..].split(' ').collect();
    fields[16].parse().unwrap()
}

fn own_nice() -> i64 {
    let stat = std::fs::read_to_string("/proc/thread-self/stat").unwrap();
    let close = stat.rfind(')').unwrap();
    let fields: Vec<&str> = stat[close + 2..].split(' ').collect();
    fields[16].parse().unwrap()
}

/// Workers of a dynamic pool with reserved threads (default nice 10): every
/// worker runs at the test process's nice + 10, whichever thread started it.
#[test]
fn every_worker_of_a_dynamic_pool_gets_the_same_nice() {
    let base = own_nice();
    let nices = watchdog("dynamic nice", Duration::from_secs(60), move || {
        let pool = Pool::builder()
            .min_workers(1)
            .max_workers(4)
            .reserved_threads(1)
            .thread_name(|i| format!("b15n-{i}"))
            .build()
            .unwrap();
        // A LOW job on the one worker spawns LOW jobs that block until all
        // four workers exist: the growth runs on the worker's thread.
        let spawner = pool.spawner();
        let (tx, rx) = mpsc::channel();
        let barrier = std::sync::Arc::new(std::sync::Barrier::new(4));
        pool.spawn(Priority::LOW, move || {
            for _ in 0..3 {
                let (tx, barrier) = (tx.clone(), barrier.clone());
                spawner
                    .spawn(Priority::LOW, move || {
                        barrier.wait();
                        tx.send(()).unwrap();
                    })
                    .unwrap();
                thread::sleep(Duration::from_millis(20));
            }
            barrier.wait();
        })
        .unwrap();
        for _ in 0..3 {
            rx.recv_timeout(Duration::from_secs(30)).expect("four workers at once");
        }
        let nices: Vec<(String, i64)> =
            named_all("b15n-", 5).into_iter().map(|t| (t.name.clone(), nice_of(t.tid as i32))).collect();
        pool.shutdown();
        nices
    });
    let reserved_index = "b15n-1";
    for (name, nice) in &nices {
        if name == reserved_index {
            assert_eq!(*nice, base, "the reserved thread: {nices:?}");
        } else {
            assert_eq!(*nice, (base + 10).min(19), "worker {name}: {nices:?}");
        }
    }
}

/// A pool built inside a job of a pool whose workers run at nice 10
/// counts from its building thread: its reserved thread keeps that
/// thread's nice, its worker runs 10 above it.
#[test]
fn a_pool_built_inside_a_nice_worker_counts_from_the_building_thread() {
    let base = own_nice();
    let (reserved, worker) = watchdog("nested nice", Duration::from_secs(60), move || {
        let outer = Pool::builder().workers(1).worker_nice(10).build().unwrap();
        let got = outer
            .submit(Priority::LOW, || {
                let inner = Pool::builder()
                    .workers(1)
                    .reserved_threads(1)
                    .thread_name(|i| format!("b15m-{i}"))
                    .build()
                    .unwrap();
                // Let the threads start.
                let (tx, rx) = mpsc::channel();
                for _ in 0..2 {
                    let tx = tx.clone();
                    inner.spawn(Priority::HIGH, move || tx.send(()).unwrap()).unwrap();
                }
                rx.recv().unwrap();
                rx.recv().unwrap();
                let r = nice_of(named_all("b15m-1", 1)[0].tid as i32);
                let w = nice_of(named_all("b15m-0", 1)[0].tid as i32);
                inner.shutdown();
                (r, w)
            })
            .unwrap()
            .join()
            .unwrap();
        outer.shutdown();
        got
    });
    let building = (base + 10).min(19);
    assert_eq!(reserved, building, "the inner pool's reserved thread (worker at {worker})");
    assert_eq!(worker, (building + 10).min(19), "the inner pool's worker");
}
