//! Attack tests (issue 15): a reserved thread runs no job above its bound
//! on its own: not a stolen fork half, not what it helps with while
//! waiting (the load test below). What a job on it waits for (a handle's
//! job, a scope job, a `join`'s other half) it runs itself when no worker
//! has, whatever its level: priority inheritance, as on a worker
//! (`runtime/help.rs`), rather than a HIGH job waiting behind LOW work.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::thread;

use common::{BOUND, hold_at, recv, recv_unless_asleep, watchdog};
use priopool::{Pool, Priority, Spawner};

const PREFIX: &str = "b15b-";

/// The name of the calling thread.
fn me() -> String {
    thread::current().name().unwrap_or("?").to_owned()
}

fn pool() -> Pool {
    Pool::builder().workers(1).reserved_threads(1).thread_name(|i| format!("{PREFIX}{i}")).build().unwrap()
}

/// Runs `waiting` as a HIGH job on the reserved thread (index 1) while the
/// only worker is held in a LOW job; `waiting` calls `ready` just before it
/// waits for some LOW work and returns the name of the thread that ran
/// it. The worker is released only once the reserved thread is seen
/// asleep (a parked wait: then the worker runs the LOW work), so the LOW
/// work runs on the reserved thread exactly when the wait claims it; no
/// sleep. Returns the names of the threads of the HIGH job and of the LOW
/// work.
fn awaited_low_work(waiting: impl FnOnce(&Spawner, &dyn Fn()) -> String + Send + 'static) -> (String, String) {
    watchdog("awaited LOW work", BOUND, || {
        let pool = pool();
        let release = hold_at(&pool, 1, Priority::LOW);
        let spawner = pool.spawner();
        let (ready_tx, ready_rx) = mpsc::channel();
        let (tx, rx) = mpsc::channel();
        pool.spawn(Priority::HIGH, move || {
            let outer = me();
            let ready = move || ready_tx.send(()).unwrap();
            let inner = waiting(&spawner, &ready);
            tx.send((outer, inner)).unwrap();
        })
        .unwrap();
        recv(&ready_rx, "the HIGH job about to wait");
        let got = match recv_unless_asleep(&rx, "b15b-1") {
            Some(got) => got,
            None => {
                release.open();
                recv(&rx, "the HIGH job")
            }
        };
        release.open();
        pool.shutdown();
        got
    })
}

/// A HIGH job on the reserved thread submits a LOW job and joins its
/// handle: it runs the LOW job itself.
#[test]
fn a_reserved_thread_runs_a_low_job_it_awaits_through_a_handle() {
    let ran_on = awaited_low_work(|spawner, ready| {
        let h = spawner.submit(Priority::LOW, me).unwrap();
        ready();
        h.join().unwrap()
    });
    assert_eq!(ran_on.0, "b15b-1", "the HIGH job ran on the reserved thread");
    assert_eq!(
        ran_on.1, "b15b-1",
        "what a job on the reserved thread waits for, with every worker held, runs there (priority inheritance)"
    );
}

/// A HIGH job on the reserved thread opens a scope with a LOW job.
#[test]
fn a_reserved_thread_runs_a_low_scope_job() {
    let ran_on = awaited_low_work(|spawner, ready| {
        let inner = Mutex::new(String::new());
        spawner.scope(|s| {
            s.spawn(Priority::LOW, |_| *inner.lock().unwrap() = me()).unwrap();
            ready();
        });
        inner.into_inner().unwrap()
    });
    assert_eq!(ran_on.0, "b15b-1");
    assert_eq!(
        ran_on.1, "b15b-1",
        "what a job on the reserved thread waits for, with every worker held, runs there (priority inheritance)"
    );
}

/// A HIGH job on the reserved thread calls `Spawner::join(LOW, a, b)`.
#[test]
fn a_reserved_thread_runs_a_low_fork_half() {
    let ran_on = awaited_low_work(|spawner, ready| spawner.join(Priority::LOW, ready, me).1);
    assert_eq!(ran_on.0, "b15b-1");
    assert_eq!(
        ran_on.1, "b15b-1",
        "what a job on the reserved thread waits for, with every worker held, runs there (priority inheritance)"
    );
}

/// Stolen fork halves, children and helped jobs, under load: with
/// `levels(3)` and a bound of level 1, nothing of level 2 ever runs on a
/// reserved thread (indexes 2 and 3). Workers run LOW jobs that join at
/// LOW (halves offered to idle threads, the reserved ones among them); HIGH
/// jobs spawn level-2 children and wait on level-0/1 handles (help within
/// the bound); level-1 jobs join at their own level.
#[test]
fn under_load_nothing_above_the_bound_runs_on_a_reserved_thread() {
    const ROUNDS: usize = 300;
    let bad = watchdog("bound under load", std::time::Duration::from_secs(120), || {
        let pool = Pool::builder()
            .workers(2)
            .levels(3)
            .reserved_threads(2)
            .reserved_levels(Priority::level(1))
            .max_passes(2)
            .thread_name(|i| format!("{PREFIX}{i}"))
            .build()
            .unwrap();
        let bad: Arc<Mutex<Vec<String>>> = Arc::default();
        let ended = Arc::new(AtomicUsize::new(0));
        let mut expected = 0;
        let reserved = |n: &str| n == "b15b-2" || n == "b15b-3";
        for round in 0..ROUNDS {
            let level = round % 3;
            let (spawner, bad2, ended2) = (pool.spawner(), Arc::clone(&bad), Arc::clone(&ended));
            expected += match level {
                0 => 3,
                1 => 3,
                _ => 3,
            };
            pool.spawn(Priority::level(level), move || {
                let check = move |bad: &Mutex<Vec<String>>, at: usize, what: &str| {
                    let n = me();
                    if at == 2 && reserved(&n) {
                        bad.lock().unwrap().push(format!("{what} on {n}"));
                    }
                };
                check(&bad2, level, "top");
                match level {
                    2 => {
                        let b3 = Arc::clone(&bad2);
                        let (_, _) = priopool::join(|| check(&bad2, 2, "join-a"), move || check(&b3, 2, "join-b"));
                        ended2.fetch_add(3, Ordering::Relaxed);
                    }
                    0 => {
                        let b3 = Arc::clone(&bad2);
                        let e3 = Arc::clone(&ended2);
                        spawner
                            .spawn(Priority::level(2), move || {
                                check(&b3, 2, "child");
                                e3.fetch_add(1, Ordering::Relaxed);
                            })
                            .unwrap();
                        let b4 = Arc::clone(&bad2);
                        let h = spawner.submit(Priority::level(1), move || check(&b4, 1, "awaited")).unwrap();
                        h.join().unwrap();
                        ended2.fetch_add(2, Ordering::Relaxed);
                    }
                    _ => {
                        let b3 = Arc::clone(&bad2);
                        priopool::join(|| (), move || check(&b3, 1, "half1"));
                        ended2.fetch_add(3, Ordering::Relaxed);
                    }
                }
            })
            .unwrap();
        }
        while ended.load(Ordering::Relaxed) < expected {
            thread::yield_now();
        }
        pool.shutdown();
        bad.lock().unwrap().clone()
    });
    assert!(bad.is_empty(), "level-2 work ran on a reserved thread: {bad:?}");
}
