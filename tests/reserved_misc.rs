//! Attack tests (issue 15): odds and ends. A panicking thread-start hook and a panicking
//! before_job hook on a reserved thread do not stop it taking HIGH jobs; a
//! LOW job queued on a held worker's own deque, promoted to HIGH from
//! outside, starts on the reserved thread while the worker stays held, its
//! dead entry is reaped when the worker is released, and the figures add
//! up.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, mpsc};
use std::thread;
use std::time::Duration;

use common::{Latch, hold_at, quiet_panics, recv, watchdog};
use priopool::{Pool, Priority, PromoteOutcome};

fn me() -> String {
    thread::current().name().unwrap_or("?").to_owned()
}

#[test]
fn panicking_hooks_on_a_reserved_thread_do_not_stop_it() {
    quiet_panics(|p| p.downcast_ref::<&str>().is_some_and(|s| s.starts_with("b15 hook")));
    watchdog("panicking hooks", Duration::from_secs(60), || {
        let pool = Pool::builder()
            .workers(1)
            .reserved_threads(1)
            .thread_name(|i| format!("b15x-a{i}"))
            .on_thread_start(|_| panic!("b15 hook: start"))
            .before_job(|_| {
                if me() == "b15x-a1" {
                    panic!("b15 hook: before_job");
                }
            })
            .build()
            .unwrap();
        let release = hold_at(&pool, 1, Priority::LOW);
        for i in 0..100 {
            let (tx, rx) = mpsc::channel();
            pool.spawn(Priority::HIGH, move || tx.send(me()).unwrap()).unwrap();
            assert_eq!(recv(&rx, &format!("HIGH job {i}")), "b15x-a1");
        }
        release.open();
        pool.shutdown();
    });
}

#[test]
fn promoting_a_job_off_a_held_workers_deque_runs_it_on_the_reserved_thread() {
    watchdog("promote off a deque", Duration::from_secs(60), || {
        for round in 0..200 {
            let pool =
                Pool::builder().workers(1).reserved_threads(1).thread_name(|i| format!("b15x-b{i}")).build().unwrap();
            let release = Latch::new();
            let (htx, hrx) = mpsc::channel();
            let (spawner, r) = (pool.spawner(), release.clone());
            let ran = Arc::new(AtomicUsize::new(0));
            let ran2 = Arc::clone(&ran);
            pool.spawn(Priority::LOW, move || {
                // Onto this worker's own deque.
                let (tx, rx) = mpsc::channel();
                let h = spawner
                    .submit(Priority::LOW, move || {
                        ran2.fetch_add(1, Ordering::Relaxed);
                        tx.send(me()).unwrap();
                    })
                    .unwrap();
                htx.send((h, rx)).unwrap();
                r.wait();
            })
            .unwrap();
            let (h, rx) = recv(&hrx, "handle");
            assert_eq!(h.promote(Priority::HIGH).unwrap(), PromoteOutcome::Moved);
            assert_eq!(recv(&rx, &format!("promoted job, round {round}")), "b15x-b1");
            release.open();
            h.join().unwrap();
            assert!(pool.wait_idle_timeout(Duration::from_secs(30)));
            let m = pool.metrics();
            common::assert_at_rest(&m, &format!("round {round}"));
            assert_eq!((m.levels[0].started, m.levels[1].started, m.levels[1].promoted), (1, 1, 1), "round {round}");
            assert_eq!(pool.queued(Priority::LOW), Some(0), "round {round}: the dead entry");
            pool.shutdown();
            assert_eq!(ran.load(Ordering::Relaxed), 1);
        }
    });
}

/// At rest, the worker figures with reserved threads: `total` counts them,
/// `current` does not, `idle` is all of them, and `started` agrees with
/// `Pool::workers_started` (which its doc says it is).
#[test]
fn worker_figures_at_rest_with_reserved_threads() {
    let got = watchdog("worker figures", Duration::from_secs(60), || {
        let pool = Pool::builder().workers(2).reserved_threads(2).build().unwrap();
        for i in 0..1000 {
            pool.spawn(Priority::level(i % 2), || {}).unwrap();
        }
        assert!(pool.wait_idle_timeout(Duration::from_secs(30)));
        let start = std::time::Instant::now();
        let mut m = pool.metrics();
        while m.workers.idle != m.workers.total && start.elapsed() < Duration::from_secs(15) {
            thread::sleep(Duration::from_millis(1));
            m = pool.metrics();
        }
        let got = (
            m.workers.total,
            m.workers.reserved,
            m.workers.current,
            m.workers.idle,
            m.workers.busy,
            m.workers.started,
            pool.workers_started(),
        );
        pool.shutdown();
        got
    });
    assert_eq!(got.0, 4, "total {got:?}");
    assert_eq!(got.1, 2, "reserved {got:?}");
    assert_eq!(got.2, 2, "current {got:?}");
    assert_eq!(got.3, 4, "idle {got:?}");
    assert_eq!(got.4, 0, "busy {got:?}");
    assert_eq!(got.5 as usize, got.6, "started vs Pool::workers_started {got:?}");
}

/// A LOW job on the only worker spawns a HIGH child, or promotes a queued
/// LOW job of its own deque to HIGH, and then blocks: the new HIGH entry
/// sits on the busy worker's own deque, and the reserved thread (asleep,
/// spinning or searching when it lands) must steal and run it.
#[test]
fn a_high_entry_on_a_held_workers_deque_is_stolen_by_the_reserved_thread() {
    watchdog("steal from a held worker", Duration::from_secs(120), || {
        let pool =
            Pool::builder().workers(1).reserved_threads(1).thread_name(|i| format!("b15x-c{i}")).build().unwrap();
        for round in 0..2_000 {
            let release = Latch::new();
            let (tx, rx) = mpsc::channel();
            let (spawner, r) = (pool.spawner(), release.clone());
            pool.spawn(Priority::LOW, move || {
                let tx2 = tx.clone();
                if round % 2 == 0 {
                    spawner.spawn(Priority::HIGH, move || tx2.send(me()).unwrap()).unwrap();
                } else {
                    let h = spawner.submit(Priority::LOW, move || tx2.send(me()).unwrap()).unwrap();
                    for _ in 0..(round * 7919) % 5_000 {
                        std::hint::spin_loop();
                    }
                    assert_eq!(h.promote(Priority::HIGH).unwrap(), PromoteOutcome::Moved);
                }
                r.wait();
            })
            .unwrap();
            assert_eq!(recv(&rx, &format!("HIGH entry of round {round}")), "b15x-c1");
            release.open();
        }
        pool.shutdown();
    });
}

/// Bounded starvation beside a reserved thread: one worker, one reserved
/// thread, `max_passes(2)`, two levels, a HIGH backlog kept non-empty by a
/// pusher. A LOW job queued in the flood starts after at most 2 HIGH starts
/// on the worker (+1 for a HIGH job the worker had already taken when the
/// LOW one was queued), never on the reserved thread. 300 rounds.
#[test]
fn max_passes_bound_holds_on_the_worker_beside_a_reserved_thread() {
    use std::sync::atomic::AtomicBool;
    let worst = watchdog("max_passes beside reserved", Duration::from_secs(120), || {
        let pool = Pool::builder()
            .workers(1)
            .reserved_threads(1)
            .max_passes(2)
            .thread_name(|i| format!("b15x-d{i}"))
            .build()
            .unwrap();
        let mut worst = 0;
        for round in 0..300 {
            let queued = Arc::new(AtomicBool::new(false));
            let started = Arc::new(AtomicBool::new(false));
            let passes = Arc::new(AtomicUsize::new(0));
            let stop = Arc::new(AtomicBool::new(false));
            // Keep a HIGH backlog.
            let pusher = {
                let (spawner, queued, started, passes, stop) =
                    (pool.spawner(), queued.clone(), started.clone(), passes.clone(), stop.clone());
                thread::spawn(move || {
                    while !stop.load(Ordering::Acquire) {
                        if spawner.metrics().levels[0].backlog < 8 {
                            let (queued, started, passes) = (queued.clone(), started.clone(), passes.clone());
                            spawner
                                .spawn(Priority::HIGH, move || {
                                    if me() == "b15x-d0"
                                        && queued.load(Ordering::Acquire)
                                        && !started.load(Ordering::Acquire)
                                    {
                                        passes.fetch_add(1, Ordering::Relaxed);
                                    }
                                    for _ in 0..2_000 {
                                        std::hint::spin_loop();
                                    }
                                })
                                .unwrap();
                        } else {
                            thread::yield_now();
                        }
                    }
                })
            };
            while pool.queued(Priority::HIGH).unwrap_or(0) < 4 {
                thread::yield_now();
            }
            let (tx, rx) = mpsc::channel();
            let s2 = started.clone();
            pool.spawn(Priority::LOW, move || {
                s2.store(true, Ordering::Release);
                tx.send(me()).unwrap();
            })
            .unwrap();
            // Counted only from here: the LOW job is surely queued (a
            // preempted test thread between a flag and the push must not
            // count passes made before the push).
            queued.store(true, Ordering::Release);
            let on = recv(&rx, &format!("the LOW job of round {round}"));
            stop.store(true, Ordering::Release);
            pusher.join().unwrap();
            assert_eq!(on, "b15x-d0", "round {round}: LOW ran on the reserved thread");
            let p = passes.load(Ordering::Relaxed);
            worst = worst.max(p);
            assert!(p <= 3, "round {round}: the worker started {p} HIGH jobs while the LOW one waited (max_passes 2)");
        }
        pool.shutdown();
        worst
    });
    println!("worst passes on the worker: {worst}");
}
