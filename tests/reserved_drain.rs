//! Attack tests (issue 15): a pool with reserved threads drains and shuts down, by every
//! way in, with its reserved threads asleep, spinning, busy or waiting on a
//! handle; no thread is left behind; the per-level figures are exact at
//! rest afterwards (read through a `Spawner`).
#![cfg(target_os = "linux")]

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::thread;
use std::time::{Duration, Instant};

use common::{BOUND, Latch, SETTLE, assert_at_rest, hold_at, named, recv, recv_n, watchdog};
use priopool::{Pool, Priority, Spawner};

/// Waits until no thread named `prefix*` is left.
fn wait_gone(prefix: &str, what: &str) {
    let start = Instant::now();
    loop {
        let left = named(prefix);
        if left.is_empty() {
            return;
        }
        assert!(start.elapsed() < SETTLE, "{what}: threads left behind: {left:?}");
        thread::sleep(Duration::from_millis(1));
    }
}

fn spin(n: usize) {
    for _ in 0..n {
        std::hint::spin_loop();
    }
}

fn builder(prefix: &'static str) -> priopool::Builder {
    Pool::builder()
        .workers(2)
        .levels(3)
        .reserved_threads(2)
        .reserved_levels(Priority::level(1))
        .thread_name(move |i| format!("{prefix}{i}"))
}

/// Build, push a few jobs, shut down at a varying moment (reserved threads
/// not yet started, busy, spinning, asleep), by each of the four ways.
#[test]
fn every_shutdown_with_reserved_threads_in_every_phase() {
    const ROUNDS: usize = 400;
    watchdog("shutdown phases", Duration::from_secs(240), || {
        for round in 0..ROUNDS {
            let pool = builder("b15d-a").build().unwrap();
            let spawner = pool.spawner();
            let ran = Arc::new(AtomicUsize::new(0));
            let jobs = round % 4;
            for k in 0..jobs {
                let ran = Arc::clone(&ran);
                pool.spawn(Priority::level(k % 3), move || {
                    ran.fetch_add(1, Ordering::Relaxed);
                })
                .unwrap();
            }
            spin((round * 7919) % 30_000);
            match round % 4 {
                0 => pool.shutdown(),
                1 => {
                    let cancelled = pool.shutdown_now();
                    let c: usize = (0..3).map(|l| cancelled.at(Priority::level(l))).sum();
                    assert_eq!(ran.load(Ordering::Relaxed) + c, jobs, "round {round}");
                }
                2 => assert!(pool.shutdown_timeout(BOUND).drained(), "round {round}"),
                _ => drop(pool),
            }
            if round % 4 != 1 {
                assert_eq!(ran.load(Ordering::Relaxed), jobs, "round {round}");
            }
            assert_at_rest(&spawner.metrics(), &format!("round {round}"));
            wait_gone("b15d-a", &format!("round {round}"));
        }
    });
}

/// The pool dropped from a job running on a reserved thread, and from a
/// `before_job` hook on a reserved thread: intake closes, queued jobs run,
/// every thread exits.
#[test]
fn dropped_from_a_job_or_a_hook_on_a_reserved_thread() {
    const ROUNDS: usize = 100;
    watchdog("drop from reserved", Duration::from_secs(120), || {
        for round in 0..ROUNDS {
            let slot: Arc<Mutex<Option<Pool>>> = Arc::default();
            let hook_slot = Arc::clone(&slot);
            let from_hook = round % 2 == 1;
            let pool = builder("b15d-b")
                .before_job(move |_| {
                    let name = thread::current().name().unwrap_or("").to_owned();
                    if from_hook && (name == "b15d-b2" || name == "b15d-b3") {
                        let taken = hook_slot.lock().unwrap().take();
                        drop(taken);
                    }
                })
                .build()
                .unwrap();
            let spawner = pool.spawner();
            let ran = Arc::new(AtomicUsize::new(0));
            // Hold the workers so that the HIGH job goes to a reserved thread.
            let release = Latch::new();
            let (tx, rx) = mpsc::channel();
            for _ in 0..2 {
                let (release, tx, ran) = (release.clone(), tx.clone(), Arc::clone(&ran));
                pool.spawn(Priority::LOW, move || {
                    tx.send(()).unwrap();
                    release.wait();
                    ran.fetch_add(1, Ordering::Relaxed);
                })
                .unwrap();
            }
            recv_n(&rx, 2, "holders");
            // Queued LOW work that must still run after the drop.
            for _ in 0..5 {
                let ran = Arc::clone(&ran);
                pool.spawn(Priority::LOW, move || {
                    ran.fetch_add(1, Ordering::Relaxed);
                })
                .unwrap();
            }
            *slot.lock().unwrap() = Some(pool);
            let (done_tx, done_rx) = mpsc::channel();
            let (job_slot, ran2, r2) = (Arc::clone(&slot), Arc::clone(&ran), release.clone());
            spawner
                .spawn(Priority::HIGH, move || {
                    if !from_hook {
                        drop(job_slot.lock().unwrap().take());
                    }
                    ran2.fetch_add(1, Ordering::Relaxed);
                    r2.open();
                    done_tx.send(()).unwrap();
                })
                .unwrap();
            recv(&done_rx, "the dropping job");
            assert!(slot.lock().unwrap().is_none(), "round {round}: the pool was not dropped on the reserved thread");
            wait_gone("b15d-b", &format!("round {round}"));
            assert_eq!(ran.load(Ordering::Relaxed), 8, "round {round}");
            assert_at_rest(&spawner.metrics(), &format!("round {round}"));
        }
    });
}

/// shutdown_now and shutdown_timeout while a job on a reserved thread
/// waits on the handle of a job running on a held worker, with LOW jobs
/// queued that the abort cancels: it returns once the wait ends, the
/// figures add up.
#[test]
fn abort_while_a_reserved_thread_waits_on_a_handle() {
    const ROUNDS: usize = 200;
    watchdog("abort while waiting", Duration::from_secs(120), || {
        for round in 0..ROUNDS {
            let pool = builder("b15d-c").build().unwrap();
            let spawner: Spawner = pool.spawner();
            let release = Latch::new();
            let (tx, rx) = mpsc::channel();
            let mut handles = Vec::new();
            for _ in 0..2 {
                let (release, tx) = (release.clone(), tx.clone());
                handles.push(
                    pool.submit(Priority::LOW, move || {
                        tx.send(()).unwrap();
                        release.wait();
                    })
                    .unwrap(),
                );
            }
            recv_n(&rx, 2, "holders");
            let h = handles.pop().unwrap();
            let (wtx, wrx) = mpsc::channel();
            pool.spawn(Priority::HIGH, move || {
                wtx.send(()).unwrap();
                let _ = h.join();
            })
            .unwrap();
            recv(&wrx, "the waiting job");
            for _ in 0..10 {
                pool.spawn(Priority::LOW, || {}).unwrap();
            }
            let r = release.clone();
            let delay = round % 5;
            thread::spawn(move || {
                spin(delay * 10_000);
                r.open();
            });
            if round % 2 == 0 {
                let _ = pool.shutdown_now();
            } else {
                assert!(pool.shutdown_timeout(BOUND).drained(), "round {round}");
            }
            assert_at_rest(&spawner.metrics(), &format!("round {round}"));
            wait_gone("b15d-c", &format!("round {round}"));
        }
    });
}

/// shutdown_now while LOW children of a job that ran on a reserved thread
/// sit on the reserved thread's own deque (which it never pops) and the
/// only worker is held: once released, the worker pops and cancels them;
/// every child is either run or reported cancelled, the figures add up.
#[test]
fn shutdown_now_with_low_children_on_the_reserved_deque() {
    const ROUNDS: usize = 200;
    watchdog("abort reserved deque", Duration::from_secs(120), || {
        for round in 0..ROUNDS {
            let pool =
                Pool::builder().workers(1).reserved_threads(1).thread_name(|i| format!("b15d-e{i}")).build().unwrap();
            let spawner = pool.spawner();
            let release = hold_at(&pool, 1, Priority::LOW);
            let ran = Arc::new(AtomicUsize::new(0));
            let (s2, ran2) = (pool.spawner(), Arc::clone(&ran));
            let (dtx, drx) = mpsc::channel();
            pool.spawn(Priority::HIGH, move || {
                for _ in 0..10 {
                    let ran = Arc::clone(&ran2);
                    s2.spawn(Priority::LOW, move || {
                        ran.fetch_add(1, Ordering::Relaxed);
                    })
                    .unwrap();
                }
                dtx.send(()).unwrap();
            })
            .unwrap();
            recv(&drx, "the spawning job");
            let r = release.clone();
            let delay = round % 4;
            thread::spawn(move || {
                spin(delay * 20_000);
                r.open();
            });
            let cancelled = pool.shutdown_now();
            assert_eq!(ran.load(Ordering::Relaxed) + cancelled.at(Priority::LOW), 10, "round {round}");
            assert_at_rest(&spawner.metrics(), &format!("round {round}"));
            wait_gone("b15d-e", &format!("round {round}"));
        }
    });
}

/// shutdown_timeout that times out while a reserved thread and a worker
/// are each stuck in a job, with HIGH and LOW work queued: it reports the
/// timeout; once the stuck jobs end, every thread exits and the figures
/// add up.
#[test]
fn shutdown_timeout_that_times_out_with_a_stuck_reserved_thread() {
    const ROUNDS: usize = 50;
    watchdog("timeout stuck reserved", Duration::from_secs(120), || {
        for round in 0..ROUNDS {
            let pool =
                Pool::builder().workers(1).reserved_threads(1).thread_name(|i| format!("b15d-f{i}")).build().unwrap();
            let spawner = pool.spawner();
            let release = Latch::new();
            let (tx, rx) = mpsc::channel();
            for p in [Priority::LOW, Priority::HIGH] {
                let (r, tx) = (release.clone(), tx.clone());
                pool.spawn(p, move || {
                    tx.send(()).unwrap();
                    r.wait();
                })
                .unwrap();
                // One at a time: the worker would take the HIGH one first.
                recv(&rx, "a stuck job");
            }
            for i in 0..10 {
                pool.spawn(if i % 2 == 0 { Priority::HIGH } else { Priority::LOW }, || {}).unwrap();
            }
            let report = pool.shutdown_timeout(Duration::from_millis(20));
            assert!(report.timed_out(), "round {round}");
            release.open();
            wait_gone("b15d-f", &format!("round {round}"));
            assert_at_rest(&spawner.metrics(), &format!("round {round}"));
        }
    });
}
