//! Attack tests (issue 15): a reserved thread never spins for ever. A job on a reserved
//! thread that waits on a handle whose job runs on a held worker, or on a
//! join half a held worker stole, parks (state `S`) until it ends; many
//! reserved threads (more than the machine's cores) contending for the
//! same injector while every worker is held take every job and then sleep.
#![cfg(target_os = "linux")]

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, mpsc};
use std::thread;
use std::time::{Duration, Instant};

use common::{Latch, SETTLE, named, recv, recv_n, watchdog};
use priopool::{Pool, Priority};

fn wait_asleep(name: &str, what: &str) {
    let start = Instant::now();
    let mut streak = 0;
    while streak < 50 {
        let mut t = named(name);
        // A read of `/proc/self/task` while threads exit may skip entries.
        for _ in 0..100 {
            if t.len() == 1 {
                break;
            }
            thread::sleep(Duration::from_millis(1));
            t = named(name);
        }
        assert_eq!(t.len(), 1, "{what}: {t:?}");
        if t[0].state == 'S' {
            streak += 1;
        } else {
            streak = 0;
        }
        assert!(start.elapsed() < SETTLE, "{what}: {name} never settled asleep: {t:?}");
        thread::sleep(Duration::from_millis(1));
    }
}

/// The reserved thread (index 1) runs a HIGH job that waits on the handle
/// of a LOW job running on the only worker, held: it must park, not spin.
#[test]
fn a_reserved_thread_waiting_on_a_running_job_parks() {
    watchdog("waiting parks", Duration::from_secs(120), || {
        let pool =
            Pool::builder().workers(1).reserved_threads(1).thread_name(|i| format!("b15s-a{i}")).build().unwrap();
        for round in 0..20 {
            let release = Latch::new();
            let (tx, rx) = mpsc::channel();
            let r = release.clone();
            let h = pool
                .submit(Priority::LOW, move || {
                    tx.send(()).unwrap();
                    r.wait();
                    7
                })
                .unwrap();
            recv(&rx, "held LOW job");
            let (dtx, drx) = mpsc::channel();
            let spawner = pool.spawner();
            let (ctx, crx) = mpsc::channel();
            pool.spawn(Priority::HIGH, move || {
                let nested = round % 2 == 0;
                let v = if nested {
                    // Through a scope job of its own level, to wait nested.
                    let mut v = 0;
                    spawner.scope(|s| {
                        s.spawn(Priority::HIGH, |_| ()).unwrap();
                        ctx.send(()).unwrap();
                        v = h.join().unwrap();
                    });
                    v
                } else {
                    ctx.send(()).unwrap();
                    h.join().unwrap()
                };
                dtx.send(v).unwrap();
            })
            .unwrap();
            recv(&crx, "the waiting job began");
            wait_asleep("b15s-a1", &format!("round {round}"));
            release.open();
            assert_eq!(recv(&drx, "the waiting job"), 7);
        }
        pool.shutdown();
    });
}

/// A HIGH job on the reserved thread joins; a held worker... cannot steal,
/// so instead two workers are held and a third, free, worker steals the
/// fork half and then holds it: the reserved thread waits for the stolen
/// half and must park.
#[test]
fn a_reserved_thread_waiting_for_a_stolen_half_parks() {
    watchdog("join parks", Duration::from_secs(120), || {
        let pool =
            Pool::builder().workers(1).reserved_threads(1).thread_name(|i| format!("b15s-b{i}")).build().unwrap();
        for round in 0..20 {
            let release = Latch::new();
            let (stolen_tx, stolen_rx) = mpsc::channel();
            let (dtx, drx) = mpsc::channel();
            let r = release.clone();
            // Hold the only worker until the half is pushed, via a gate.
            let gate = Latch::new();
            let (htx, hrx) = mpsc::channel();
            let g = gate.clone();
            pool.spawn(Priority::LOW, move || {
                htx.send(()).unwrap();
                g.wait();
            })
            .unwrap();
            recv(&hrx, "holder");
            let g2 = gate.clone();
            pool.spawn(Priority::HIGH, move || {
                let (a, b) = priopool::join(
                    move || {
                        // Free the worker; it steals b (HIGH, offered to
                        // idle threads) while a waits to see it stolen.
                        g2.open();
                        stolen_rx.recv_timeout(Duration::from_secs(30)).is_ok()
                    },
                    move || {
                        let name = thread::current().name().unwrap_or("").to_owned();
                        if name != "b15s-b1" {
                            stolen_tx.send(()).unwrap();
                            r.wait();
                        }
                        1
                    },
                );
                dtx.send((a, b)).unwrap();
            })
            .unwrap();
            // Either the worker stole b (then the reserved thread waits) or
            // nobody did in 30 s (a popped it back). Check the wait parks.
            let start = Instant::now();
            loop {
                if let Ok(v) = drx.try_recv() {
                    panic!("round {round}: join ended before the release: {v:?}");
                }
                let t = named("b15s-b1");
                if t.first().is_some_and(|t| t.state == 'S') {
                    break;
                }
                assert!(start.elapsed() < SETTLE, "round {round}: reserved thread never asleep: {t:?}");
                thread::sleep(Duration::from_millis(1));
            }
            wait_asleep("b15s-b1", &format!("round {round}"));
            release.open();
            assert_eq!(recv(&drx, "join"), (true, 1));
        }
        pool.shutdown();
    });
}

/// Eight reserved threads on a two-core machine, both workers held; four
/// threads push HIGH jobs in bursts; every job runs, then all eight
/// reserved threads sleep.
#[test]
fn many_reserved_threads_contending_take_every_job_and_sleep() {
    watchdog("contention", Duration::from_secs(120), || {
        let pool =
            Pool::builder().workers(2).reserved_threads(8).thread_name(|i| format!("b15s-c{i}")).build().unwrap();
        let release = Latch::new();
        let (tx, rx) = mpsc::channel();
        for _ in 0..2 {
            let (release, tx) = (release.clone(), tx.clone());
            pool.spawn(Priority::LOW, move || {
                tx.send(()).unwrap();
                release.wait();
            })
            .unwrap();
        }
        recv_n(&rx, 2, "holders");
        let done = Arc::new(AtomicUsize::new(0));
        const PER: usize = 20_000;
        let pushers: Vec<_> = (0..4)
            .map(|_| {
                let (spawner, done) = (pool.spawner(), Arc::clone(&done));
                thread::spawn(move || {
                    for i in 0..PER {
                        let done = Arc::clone(&done);
                        spawner
                            .spawn(Priority::HIGH, move || {
                                done.fetch_add(1, Ordering::Relaxed);
                            })
                            .unwrap();
                        if i % 500 == 0 {
                            thread::yield_now();
                        }
                    }
                })
            })
            .collect();
        for p in pushers {
            p.join().unwrap();
        }
        let start = Instant::now();
        while done.load(Ordering::Relaxed) < 4 * PER {
            assert!(start.elapsed() < SETTLE, "{} of {} ran", done.load(Ordering::Relaxed), 4 * PER);
            thread::sleep(Duration::from_millis(1));
        }
        for i in 2..10 {
            wait_asleep(&format!("b15s-c{i}"), "after contention");
        }
        release.open();
        pool.shutdown();
    });
}
