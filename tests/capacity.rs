//! Bounded levels (`Builder::capacity`): a full level makes `spawn` wait for
//! room, `try_spawn` refuse at once and `spawn_timeout` give up, each
//! handing the job back; a shutdown wakes the waiting producers; spawns
//! from inside the pool (its jobs, its workers' thread hooks) never wait;
//! and no producer sleeps while there is room (many producers, exact
//! counts).
//!
//! The stress test hangs (its watchdog fails it) when the slot given back by
//! a worker does not notify a waiting producer: seen by deleting the
//! `notify_one` of `capacity.rs`, 3 runs in 3.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::thread;
use std::time::Duration;

use common::{BOUND, Gate, LONG_BOUND, Latch, watchdog};
use priopool::{Pool, Priority, SpawnErrorKind, Spawner, WhenFull};

/// A pool of `workers` workers whose every worker is held by a HIGH gate
/// job (they have all started when this returns); LOW has the given
/// capacity.
fn held(workers: usize, capacity: usize) -> (Pool, Gate) {
    let pool = Pool::builder().workers(workers).capacity(Priority::LOW, capacity).build().unwrap();
    let gate = Gate::hold(&pool, workers);
    (pool, gate)
}

/// Waits until `waits` spawns have found LOW full and are waiting for room
/// (a state the pool reaches on its own).
fn wait_for_full_waits(spawner: &Spawner, waits: u64) {
    while spawner.metrics().level(Priority::LOW).unwrap().full_waits < waits {
        thread::yield_now();
    }
}

#[test]
fn a_full_level_refuses_try_spawn_and_hands_the_job_back() {
    watchdog("try_spawn", BOUND, || {
        let (pool, gate) = held(1, 3);
        let ran = Arc::new(AtomicUsize::new(0));
        for _ in 0..3 {
            let ran = Arc::clone(&ran);
            pool.try_spawn(Priority::LOW, move || {
                ran.fetch_add(1, Ordering::SeqCst);
            })
            .unwrap();
        }
        let refused = pool.try_spawn(Priority::LOW, || {});
        let error = pool.try_submit(Priority::LOW, || 7).unwrap_err();
        assert_eq!(error.kind(), SpawnErrorKind::Full);
        assert_eq!(error.into_inner()(), 7, "the refused job comes back");
        assert!(refused.is_err());
        let low = pool.metrics().level(Priority::LOW).unwrap().clone();
        assert_eq!((low.capacity, low.backlog, low.rejected, low.full_waits), (Some(3), 3, 2, 0));
        // HIGH is unbounded.
        for _ in 0..100 {
            pool.try_spawn(Priority::HIGH, || {}).unwrap();
        }
        gate.release();
        assert!(pool.wait_idle());
        assert_eq!(ran.load(Ordering::SeqCst), 3);
        let low = pool.metrics().level(Priority::LOW).unwrap().clone();
        assert_eq!((low.submitted, low.completed, low.rejected), (5, 3, 2));
    });
}

#[test]
fn spawn_on_a_full_level_waits_for_room() {
    watchdog("spawn waits", BOUND, || {
        let (pool, gate) = held(1, 2);
        pool.spawn(Priority::LOW, || {}).unwrap();
        pool.spawn(Priority::LOW, || {}).unwrap();
        let spawner = pool.spawner();
        let producer = {
            let spawner = spawner.clone();
            thread::spawn(move || spawner.submit(Priority::LOW, || 42).map(|h| h.join()))
        };
        wait_for_full_waits(&spawner, 1);
        assert!(!producer.is_finished(), "the producer returned while the level was full");
        assert_eq!(pool.queued(Priority::LOW), Some(2));
        gate.release();
        assert_eq!(producer.join().unwrap().map_err(|_| ()).unwrap().unwrap(), 42);
    });
}

#[test]
fn spawn_timeout_gives_up_and_hands_the_job_back() {
    watchdog("spawn_timeout", BOUND, || {
        let (pool, gate) = held(1, 1);
        pool.spawn(Priority::LOW, || {}).unwrap();
        let error = pool.spawn_timeout(Priority::LOW, Duration::from_millis(10), || {}).unwrap_err();
        assert_eq!(error.kind(), SpawnErrorKind::Full);
        let error = pool.submit_timeout(Priority::LOW, Duration::ZERO, || 6).unwrap_err();
        assert_eq!(error.into_inner()(), 6);
        gate.release();
        assert!(pool.wait_idle());
        // Room now.
        let handle = pool.submit_timeout(Priority::LOW, BOUND, || 7).unwrap();
        assert_eq!(handle.join().unwrap(), 7);
        assert_eq!(pool.metrics().level(Priority::LOW).unwrap().full_waits, 2);
    });
}

/// A job that must start by a deadline waits for room no longer than
/// that: past it the job could only expire. (Without the bound the spawn
/// waits until the gate opens, which is after it, so the watchdog fails.)
#[test]
fn a_start_deadline_bounds_the_wait_for_room() {
    watchdog("a deadline bounds the wait for room", BOUND, || {
        let (pool, gate) = held(1, 1);
        pool.spawn(Priority::LOW, || {}).unwrap();
        let ran = Arc::new(AtomicUsize::new(0));
        let job = |ran: &Arc<AtomicUsize>| {
            let ran = Arc::clone(ran);
            move || ran.fetch_add(1, Ordering::SeqCst)
        };
        let error = pool.job(Priority::LOW).max_wait(Duration::from_millis(10)).submit(job(&ran)).unwrap_err();
        assert_eq!(error.kind(), SpawnErrorKind::Full);
        assert_eq!(error.into_inner()(), 0, "the job comes back unrun");
        let by_deadline =
            pool.job(Priority::LOW).deadline(std::time::Instant::now()).when_full(WhenFull::WaitAtMost(BOUND));
        assert_eq!(by_deadline.submit(job(&ran)).unwrap_err().kind(), SpawnErrorKind::Full);
        gate.release();
        assert!(pool.wait_idle());
        assert_eq!(ran.load(Ordering::SeqCst), 1, "only the job handed back ran");
        let low = pool.metrics().level(Priority::LOW).unwrap().clone();
        assert_eq!((low.full_waits, low.rejected, low.expired), (2, 2, 0));
    });
}

#[test]
fn a_shutdown_wakes_the_waiting_producers() {
    watchdog("shutdown wakes producers", BOUND, || {
        let (pool, gate) = held(1, 1);
        pool.spawn(Priority::LOW, || {}).unwrap();
        let spawner = pool.spawner();
        let producers: Vec<_> = (0..3usize)
            .map(|i| {
                let spawner = spawner.clone();
                let (tx, rx) = mpsc::channel();
                let producer = thread::spawn(move || {
                    spawner.spawn(Priority::LOW, move || tx.send(i).unwrap()).map_err(|e| (e.kind(), e.into_inner()))
                });
                (producer, rx)
            })
            .collect();
        wait_for_full_waits(&spawner, 3);
        let closer = thread::spawn(move || pool.shutdown());
        for (i, (producer, rx)) in producers.into_iter().enumerate() {
            let (kind, job) = producer.join().unwrap().unwrap_err();
            assert_eq!(kind, SpawnErrorKind::Shutdown);
            job();
            assert_eq!(rx.recv().unwrap(), i, "the job handed back is the producer's own");
        }
        gate.release();
        closer.join().unwrap();
        let low = spawner.metrics().level(Priority::LOW).unwrap().clone();
        assert_eq!((low.completed, low.rejected, low.submitted), (1, 3, 4));
    });
}

/// A level still full when the pool closes (its worker held, a shutdown
/// waiting for the drain): `try_spawn` from outside is refused as shut
/// down, as `spawn` and `spawn_timeout` are, not as full (a producer that
/// retries on `Full` would retry against a closed pool). On cb027fc it
/// said `Full`.
#[test]
fn a_full_level_of_a_closed_pool_refuses_as_shut_down() {
    watchdog("full and closed", BOUND, || {
        let (pool, gate) = held(1, 1);
        let spawner = pool.spawner();
        spawner.spawn(Priority::LOW, || {}).unwrap();
        let closer = thread::spawn(move || pool.shutdown());
        // HIGH is unbounded: its refusal says intake closed.
        let mut accepted = 0;
        while spawner.spawn(Priority::HIGH, || {}).is_ok() {
            accepted += 1;
            thread::yield_now();
        }
        let kinds = [
            spawner.try_spawn(Priority::LOW, || {}).unwrap_err().kind(),
            spawner.try_submit(Priority::LOW, || {}).unwrap_err().kind(),
            spawner.spawn_timeout(Priority::LOW, Duration::ZERO, || {}).unwrap_err().kind(),
            spawner.spawn(Priority::LOW, || {}).unwrap_err().kind(),
        ];
        assert_eq!(kinds, [SpawnErrorKind::Shutdown; 4]);
        gate.release();
        closer.join().unwrap();
        let low = spawner.metrics().level(Priority::LOW).unwrap().clone();
        assert_eq!((low.submitted, low.completed, low.rejected), (5, 1, 4));
        let high = spawner.metrics().level(Priority::HIGH).unwrap().clone();
        assert_eq!((high.completed, high.rejected), (accepted + 1, 1), "the gate job and those accepted");
    });
}

/// A one-worker pool whose only job spawns into its own full level: the
/// spawns are admitted over the capacity (waiting would hold the only
/// worker for ever), `try_spawn` is refused, and everything runs.
#[test]
fn a_job_spawning_into_a_full_level_of_its_own_pool_never_waits() {
    watchdog("inside spawns", BOUND, || {
        let pool = Pool::builder().workers(1).capacity(Priority::LOW, 2).build().unwrap();
        let spawner = pool.spawner();
        let ran = Arc::new(AtomicUsize::new(0));
        let inner_ran = Arc::clone(&ran);
        let parent = pool
            .submit(Priority::HIGH, move || {
                let mut kinds = Vec::new();
                for _ in 0..5 {
                    let ran = Arc::clone(&inner_ran);
                    spawner
                        .spawn(Priority::LOW, move || {
                            ran.fetch_add(1, Ordering::SeqCst);
                        })
                        .unwrap();
                }
                let ran = Arc::clone(&inner_ran);
                spawner
                    .spawn_timeout(Priority::LOW, LONG_BOUND, move || {
                        ran.fetch_add(1, Ordering::SeqCst);
                    })
                    .unwrap();
                kinds.push(spawner.try_spawn(Priority::LOW, || {}).unwrap_err().kind());
                (kinds, spawner.metrics().level(Priority::LOW).unwrap().backlog)
            })
            .unwrap();
        let (kinds, backlog) = parent.join().unwrap();
        assert_eq!(kinds, [SpawnErrorKind::Full]);
        assert_eq!(backlog, 6, "admitted over the capacity of 2");
        assert!(pool.wait_idle());
        assert_eq!(ran.load(Ordering::SeqCst), 6);
        assert_eq!(pool.metrics().level(Priority::LOW).unwrap().full_waits, 0, "nothing waited");
    });
}

/// A one-worker pool whose worker's `on_thread_start` hook spawns into
/// its full level: the hook holds the only worker, so waiting for room
/// would wait for ever; the spawn is admitted over the capacity instead, as
/// a job's. (On 4522357 the hook waited: `wait_idle` hung.)
#[test]
fn a_worker_hook_spawning_into_a_full_level_never_waits() {
    watchdog("hook spawns", BOUND, || {
        let spawner: Arc<Mutex<Option<Spawner>>> = Arc::default();
        let (go, ran) = (Latch::new(), Arc::new(AtomicUsize::new(0)));
        let hook = {
            let (spawner, go, ran) = (Arc::clone(&spawner), go.clone(), Arc::clone(&ran));
            move |_| {
                go.wait();
                // Taken, so that the pool's own hook holds no handle to it.
                let spawner = spawner.lock().unwrap().take().unwrap();
                let ran = Arc::clone(&ran);
                spawner
                    .spawn(Priority::LOW, move || {
                        ran.fetch_add(1, Ordering::SeqCst);
                    })
                    .unwrap();
            }
        };
        let pool = Pool::builder().workers(1).capacity(Priority::LOW, 1).on_thread_start(hook).build().unwrap();
        // The only worker is in its hook: this job fills LOW.
        pool.try_spawn(Priority::LOW, || {}).unwrap();
        *spawner.lock().unwrap() = Some(pool.spawner());
        go.open();
        assert!(pool.wait_idle());
        assert_eq!(ran.load(Ordering::SeqCst), 1);
        let low = pool.metrics().level(Priority::LOW).unwrap().clone();
        assert_eq!((low.submitted, low.completed, low.rejected, low.full_waits), (2, 2, 0, 0));
    });
}

#[test]
fn a_bad_capacity_is_a_build_error() {
    let zero = Pool::builder().capacity(Priority::LOW, 0).build().unwrap_err();
    assert!(zero.to_string().contains("at least 1"), "{zero}");
    let unknown = Pool::builder().levels(2).capacity(Priority::level(2), 4).build().unwrap_err();
    assert!(unknown.to_string().contains("levels(2), which are 0 to 1"), "{unknown}");
}

/// Many producers push through a small bounded level: every job runs
/// exactly once, the backlog never exceeds the capacity, and nobody is left
/// waiting (a lost wake-up hangs the test).
#[test]
fn many_producers_through_a_small_level_lose_no_wake_up() {
    const PRODUCERS: usize = 8;
    const JOBS: usize = 3_000;
    const CAPACITY: usize = 3;
    watchdog("many producers", LONG_BOUND, || {
        let pool = Pool::builder().workers(2).capacity(Priority::LOW, CAPACITY).build().unwrap();
        let ran = Arc::new(AtomicUsize::new(0));
        let producers: Vec<_> = (0..PRODUCERS)
            .map(|p| {
                let (spawner, ran) = (pool.spawner(), Arc::clone(&ran));
                thread::spawn(move || {
                    for i in 0..JOBS {
                        let ran = Arc::clone(&ran);
                        let job = move || {
                            ran.fetch_add(1, Ordering::Relaxed);
                        };
                        match (p + i) % 3 {
                            0 => spawner.spawn(Priority::LOW, job).unwrap(),
                            1 => drop(spawner.submit(Priority::LOW, job).unwrap()),
                            _ => spawner.spawn_timeout(Priority::LOW, LONG_BOUND, job).unwrap(),
                        }
                        if i % 64 == 0 {
                            let backlog = spawner.metrics().level(Priority::LOW).unwrap().backlog;
                            assert!(backlog <= CAPACITY as u64, "backlog {backlog} above the capacity");
                        }
                    }
                })
            })
            .collect();
        for producer in producers {
            producer.join().unwrap();
        }
        assert!(pool.wait_idle());
        assert_eq!(ran.load(Ordering::Relaxed), PRODUCERS * JOBS);
        let low = pool.metrics().level(Priority::LOW).unwrap().clone();
        assert_eq!(
            (low.submitted, low.completed, low.rejected),
            ((PRODUCERS * JOBS) as u64, (PRODUCERS * JOBS) as u64, 0)
        );
    });
}

/// A `join`'s fork half takes no room at a bounded level, so one that a
/// peer steals (and runs as a job of its own) gives none back: after a
/// fork-join tree at LOW, the level still holds exactly its capacity. (A
/// stolen half that gave a slot back drove the count of slots in use below
/// zero: every later spawn was refused as full.)
#[test]
fn stolen_fork_halves_leave_a_bounded_level_exactly_bounded() {
    fn fib(n: u32) -> u64 {
        if n < 2 {
            return u64::from(n);
        }
        let (a, b) = priopool::join(|| fib(n - 1), || fib(n - 2));
        a + b
    }
    watchdog("fork halves and capacity", BOUND, || {
        let pool = Pool::builder().workers(2).capacity(Priority::LOW, 2).build().unwrap();
        for _ in 0..20 {
            let sum = pool.submit(Priority::LOW, || fib(20)).unwrap().join().unwrap();
            assert_eq!(sum, 6765);
        }
        assert!(pool.metrics().workers.steals > 0, "no fork half was stolen: the test proves nothing");
        pool.wait_idle();
        // Hold both workers at HIGH, then fill LOW.
        let gate = Gate::hold(&pool, 2);
        let accepted = (0..4).filter(|_| pool.try_spawn(Priority::LOW, || {}).is_ok()).count();
        assert_eq!(accepted, 2, "LOW has capacity 2 and nothing queued");
        gate.release();
    });
}
