//! Builder hooks: each runs once per thread or per job, on the right
//! thread; a panicking hook kills no worker; spawns from hooks obey the
//! shutdown rules: a thread hook spawns as an outsider (refused once
//! shutdown has begun), a job hook as part of its job (accepted during the
//! drain).
//!
//! A thread hook may own the pool and drop it: the shutdown then returns at
//! once, as from a job, instead of joining the hook's own thread (which
//! panicked with "Resource deadlock avoided", caught as a hook panic, and
//! left the other threads detached).
//!
//! Known to catch either thread hook moved inside the window in which its
//! thread counts as a worker, where a stop hook's spawn would be admitted
//! after the drain and stranded.

use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

use priopool::{JobOutcome, Pool, Priority, SpawnErrorKind, Spawner};

mod common;

use common::{LONG_BOUND, MARKER as DELIBERATE, quiet_intentional_panics as quiet_deliberate_panics, watchdog};

fn this_thread_name() -> String {
    thread::current().name().unwrap_or("<unnamed>").to_owned()
}

#[test]
fn thread_hooks_run_once_per_worker_on_that_worker() {
    watchdog("thread hooks", LONG_BOUND, || {
        let starts = Arc::new(Mutex::new(Vec::new()));
        let stops = Arc::new(Mutex::new(Vec::new()));
        let pool = Pool::builder()
            .workers(4)
            .thread_name(|i| format!("hooked-{i}"))
            .on_thread_start({
                let starts = Arc::clone(&starts);
                move |i| starts.lock().expect("lock").push((i, this_thread_name()))
            })
            .on_thread_stop({
                let stops = Arc::clone(&stops);
                move |i| stops.lock().expect("lock").push((i, this_thread_name()))
            })
            .build()
            .expect("build");
        for _ in 0..100 {
            pool.spawn(Priority::LOW, || {}).expect("spawn");
        }
        pool.shutdown();
        let expected: Vec<_> = (0..4).map(|i| (i, format!("hooked-{i}"))).collect();
        for (what, calls) in [("start", starts), ("stop", stops)] {
            let mut calls = calls.lock().expect("lock").clone();
            calls.sort();
            assert_eq!(calls, expected, "on_thread_{what}: once per worker, on that worker");
        }
    });
}

thread_local! {
    /// Per thread: before_job calls, after_job calls, and the level and run
    /// time the last job on this thread recorded for itself.
    static BEFORE: Cell<usize> = const { Cell::new(0) };
    static AFTER: Cell<usize> = const { Cell::new(0) };
    static RAN: Cell<Option<(usize, Duration)>> = const { Cell::new(None) };
}

#[test]
fn job_hooks_run_once_per_job_on_the_running_thread() {
    quiet_deliberate_panics();
    watchdog("job hooks", LONG_BOUND, || {
        const JOBS: usize = 2_000;
        let befores = Arc::new(AtomicUsize::new(0));
        let afters = Arc::new(AtomicUsize::new(0));
        let panicked = Arc::new(AtomicUsize::new(0));
        // Any disagreement between a hook and what the job saw on its own
        // thread; asserting inside a hook would only count a hook panic.
        let mismatches = Arc::new(Mutex::new(Vec::<String>::new()));
        let pool = Pool::builder()
            .workers(3)
            .levels(4)
            .wait_metrics(true)
            .thread_name(|i| format!("job-hooks-{i}"))
            .panic_handler(|_| {})
            .before_job({
                let (befores, mismatches) = (Arc::clone(&befores), Arc::clone(&mismatches));
                move |info| {
                    befores.fetch_add(1, Ordering::Relaxed);
                    if BEFORE.get() != AFTER.get() || this_thread_name() != format!("job-hooks-{}", info.worker) {
                        mismatches.lock().expect("lock").push(format!("before {info:?} on {}", this_thread_name()));
                    }
                    if info.queue_wait.is_none() {
                        mismatches.lock().expect("lock").push(format!("no queue wait in {info:?}"));
                    }
                    BEFORE.set(BEFORE.get() + 1);
                }
            })
            .after_job({
                let (afters, panicked, mismatches) =
                    (Arc::clone(&afters), Arc::clone(&panicked), Arc::clone(&mismatches));
                move |info, outcome, run_time| {
                    afters.fetch_add(1, Ordering::Relaxed);
                    AFTER.set(AFTER.get() + 1);
                    let ran = RAN.take();
                    let ok = BEFORE.get() == AFTER.get()
                        && this_thread_name() == format!("job-hooks-{}", info.worker)
                        && ran.is_some_and(|(level, ran_for)| level == info.level && run_time >= ran_for);
                    if !ok {
                        let name = this_thread_name();
                        mismatches.lock().expect("lock").push(format!("after {info:?} {run_time:?} {ran:?} on {name}"));
                    }
                    if outcome == JobOutcome::Panicked {
                        panicked.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
            .build()
            .expect("build");
        let mut handles = Vec::new();
        for i in 0..JOBS {
            let level = i % 4;
            let job = move || {
                let began = Instant::now();
                // Exactly one before_job call, and no after_job yet, for
                // this job on this thread.
                assert_eq!(BEFORE.get(), AFTER.get() + 1, "before_job ran once before the job");
                RAN.set(Some((level, began.elapsed())));
                if i % 100 == 0 {
                    std::panic::panic_any(DELIBERATE);
                }
            };
            if i % 2 == 0 {
                pool.spawn(Priority::level(level), job).expect("spawn");
            } else {
                handles.push(pool.submit(Priority::level(level), job).expect("submit"));
            }
        }
        for handle in handles {
            handle.join().expect("no submitted job panics: i % 100 == 0 is even");
        }
        let spawner = pool.spawner();
        pool.shutdown();
        assert_eq!(mismatches.lock().expect("lock").as_slice(), &[] as &[String]);
        assert_eq!(befores.load(Ordering::Relaxed), JOBS);
        assert_eq!(afters.load(Ordering::Relaxed), JOBS);
        assert_eq!(panicked.load(Ordering::Relaxed), JOBS / 100);
        let m = spawner.metrics();
        assert_eq!(m.hook_panics, 0);
        assert_eq!(m.levels.iter().map(|l| l.panicked).sum::<u64>(), (JOBS / 100) as u64);
    });
}

#[test]
fn a_panicking_hook_does_not_kill_a_worker() {
    quiet_deliberate_panics();
    watchdog("panicking hooks", LONG_BOUND, || {
        let jobs_run = Arc::new(AtomicUsize::new(0));
        let pool = Pool::builder()
            .workers(1)
            .on_thread_start(|_| std::panic::panic_any(DELIBERATE))
            .on_thread_stop(|_| std::panic::panic_any(DELIBERATE))
            .before_job(|_| std::panic::panic_any(DELIBERATE))
            .after_job(|_, _, _| std::panic::panic_any(DELIBERATE))
            .build()
            .expect("build");
        for _ in 0..100 {
            let jobs_run = Arc::clone(&jobs_run);
            pool.spawn(Priority::LOW, move || {
                jobs_run.fetch_add(1, Ordering::Relaxed);
            })
            .expect("spawn");
        }
        // The one worker survived 200 hook panics and still answers.
        assert_eq!(pool.submit(Priority::HIGH, || 42).expect("submit").join().expect("join"), 42);
        let spawner = pool.spawner();
        pool.shutdown();
        assert_eq!(jobs_run.load(Ordering::Relaxed), 100);
        let m = spawner.metrics();
        assert_eq!(m.hook_panics, 1 + 101 + 101 + 1, "start, before and after each job, stop");
        assert_eq!(m.levels.iter().map(|l| l.completed).sum::<u64>(), 101, "the hooks did not change outcomes");
        assert_eq!(m.levels.iter().map(|l| l.panicked).sum::<u64>(), 0);
    });
}

#[test]
fn a_spawn_from_a_thread_hook_is_not_from_a_running_job() {
    watchdog("spawns from thread hooks", LONG_BOUND, || {
        let spawner_cell: Arc<OnceLock<Spawner>> = Arc::new(OnceLock::new());
        let (go_tx, go_rx) = mpsc::channel::<()>();
        let go_rx = Mutex::new(go_rx);
        let results = Arc::new(Mutex::new(Vec::new()));
        let pool = Pool::builder()
            .workers(1)
            .on_thread_start({
                let (cell, results) = (Arc::clone(&spawner_cell), Arc::clone(&results));
                move |_| {
                    // Wait until the test has begun the shutdown, then spawn.
                    let _ = go_rx.lock().expect("lock").recv();
                    let refused = cell.wait().spawn(Priority::HIGH, || {}).map_err(|e| e.kind());
                    results.lock().expect("lock").push(("start", refused));
                }
            })
            .on_thread_stop({
                let (cell, results) = (Arc::clone(&spawner_cell), Arc::clone(&results));
                move |_| {
                    let refused = cell.wait().spawn(Priority::HIGH, || {}).map_err(|e| e.kind());
                    results.lock().expect("lock").push(("stop", refused));
                }
            })
            .build()
            .expect("build");
        let spawner = pool.spawner();
        assert!(spawner_cell.set(spawner.clone()).is_ok(), "set once");
        let shutting_down = thread::spawn(move || pool.shutdown());
        // Intake is closed once a spawn from this (outside) thread is refused.
        while spawner.spawn(Priority::HIGH, || {}).is_ok() {
            thread::yield_now();
        }
        go_tx.send(()).expect("hook alive");
        shutting_down.join().expect("shutdown");
        let results = results.lock().expect("lock").clone();
        assert_eq!(
            results,
            [("start", Err(SpawnErrorKind::Shutdown)), ("stop", Err(SpawnErrorKind::Shutdown))],
            "thread hooks spawn as outsiders: refused once shutdown has begun"
        );
        let m = spawner.metrics();
        assert_eq!(m.levels[0].submitted, m.levels[0].completed + m.levels[0].rejected);
    });
}

#[test]
fn a_spawn_from_a_job_hook_is_part_of_the_drain() {
    watchdog("spawns from job hooks", LONG_BOUND, || {
        let spawner_cell: Arc<OnceLock<Spawner>> = Arc::new(OnceLock::new());
        let follow_ups = Arc::new(AtomicUsize::new(0));
        let pool = Pool::builder()
            .workers(1)
            .after_job({
                let (cell, follow_ups) = (Arc::clone(&spawner_cell), Arc::clone(&follow_ups));
                move |info, _, _| {
                    if info.level == 0 {
                        // The HIGH job is still outstanding here, so this spawn
                        // is accepted during the drain, and runs.
                        let follow_ups = Arc::clone(&follow_ups);
                        cell.wait()
                            .spawn(Priority::LOW, move || {
                                follow_ups.fetch_add(1, Ordering::Relaxed);
                            })
                            .expect("a spawn from a running job's hook is accepted during the drain");
                    }
                }
            })
            .build()
            .expect("build");
        let spawner = pool.spawner();
        assert!(spawner_cell.set(spawner.clone()).is_ok(), "set once");
        let (release_tx, release_rx) = mpsc::channel::<()>();
        pool.spawn(Priority::HIGH, move || release_rx.recv().expect("test alive")).expect("spawn");
        let shutting_down = thread::spawn(move || pool.shutdown());
        while spawner.spawn(Priority::LOW, || {}).is_ok() {
            thread::yield_now();
        }
        release_tx.send(()).expect("job alive");
        shutting_down.join().expect("shutdown");
        assert_eq!(follow_ups.load(Ordering::Relaxed), 1);
    });
}

/// Where a test keeps the pool for a hook to take.
type Slot = Arc<Mutex<Option<Pool>>>;

/// Builds a pool whose thread hook `which` ("start" or "stop"), on the
/// first call that finds the pool in the returned slot, takes it out and
/// drops it there, and reports whether that drop returned (rather than
/// panicked) along with a spawner of the pool.
fn pool_dropped_in_its_own_hook(which: &'static str, workers: usize) -> (Slot, mpsc::Receiver<(bool, Spawner)>, Pool) {
    let slot: Slot = Arc::default();
    let (dropped_tx, dropped) = mpsc::channel();
    let hook = {
        let slot = Arc::clone(&slot);
        let dropped_tx = Mutex::new(dropped_tx);
        move |_: usize| {
            let pool = slot.lock().expect("lock").take();
            if let Some(pool) = pool {
                let spawner = pool.spawner();
                let returned = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| drop(pool))).is_ok();
                let _ = dropped_tx.lock().expect("lock").send((returned, spawner));
            }
        }
    };
    let builder = Pool::builder().workers(workers);
    let builder = if which == "start" { builder.on_thread_start(hook) } else { builder.on_thread_stop(hook) };
    (slot, dropped, builder.build().expect("build"))
}

/// Polls until every worker of the pool has left (its threads run on,
/// detached, and leave on their own once drained).
fn wait_until_no_worker(spawner: &Spawner) {
    let since = Instant::now();
    while spawner.metrics().workers.total != 0 {
        assert!(since.elapsed() < common::SETTLE, "workers still present after {:?}", common::SETTLE);
        thread::yield_now();
    }
}

#[test]
fn dropping_the_pool_in_its_own_on_thread_stop_hook_returns_and_every_job_still_runs() {
    watchdog("the pool dropped in its own on_thread_stop", LONG_BOUND, || {
        let (slot, dropped, pool) = pool_dropped_in_its_own_hook("stop", 2);
        let ran = Arc::new(AtomicUsize::new(0));
        let gate = common::Gate::hold(&pool, 2);
        for _ in 0..50 {
            let ran = Arc::clone(&ran);
            pool.spawn(Priority::LOW, move || {
                ran.fetch_add(1, Ordering::SeqCst);
            })
            .expect("spawn");
        }
        // One worker retires after its gate job and drops the pool in its
        // stop hook, on its own thread.
        slot.lock().expect("lock").insert(pool).set_workers(1).expect("shrink");
        gate.release();
        let (returned, spawner) = common::recv(&dropped, "the drop in on_thread_stop");
        assert!(returned, "dropping the pool in its own on_thread_stop panicked (it joined its own thread)");
        wait_until_no_worker(&spawner);
        assert_eq!(ran.load(Ordering::SeqCst), 50, "every accepted job ran once");
        assert_eq!(spawner.metrics().hook_panics, 0);
    });
}

#[test]
fn dropping_the_pool_in_its_own_on_thread_start_hook_returns_and_every_job_still_runs() {
    watchdog("the pool dropped in its own on_thread_start", LONG_BOUND, || {
        let (slot, dropped, pool) = pool_dropped_in_its_own_hook("start", 1);
        let ran = Arc::new(AtomicUsize::new(0));
        for _ in 0..50 {
            let ran = Arc::clone(&ran);
            pool.spawn(Priority::LOW, move || {
                ran.fetch_add(1, Ordering::SeqCst);
            })
            .expect("spawn");
        }
        // The worker started by this resize drops the pool in its start
        // hook, once the slot's lock is released.
        let mut slot = slot.lock().expect("lock");
        slot.insert(pool).set_workers(2).expect("grow");
        drop(slot);
        let (returned, spawner) = common::recv(&dropped, "the drop in on_thread_start");
        assert!(returned, "dropping the pool in its own on_thread_start panicked (it joined its own thread)");
        wait_until_no_worker(&spawner);
        assert_eq!(ran.load(Ordering::SeqCst), 50, "every accepted job ran once");
        assert_eq!(spawner.metrics().hook_panics, 0);
    });
}
