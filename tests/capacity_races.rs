//! Bounded levels under everything that can race them: producers that
//! wait, refuse and time out; jobs spawning over the capacity from inside;
//! handles cancelled and promoted; jobs expiring; `cancel_queued`; resizes;
//! and every way of shutting down. Exact counts at rest: every closure
//! accepted is dropped exactly once (run or handed back), the metrics add
//! up, and a bounded level's room is exactly its capacity again (a slot
//! leaked or given back twice shows as a level that takes fewer or more
//! jobs than its capacity). Seeded, so a failing round can be replayed.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::Duration;

use common::{Gate, LONG_BOUND, Pending, assert_at_rest, watchdog};
use priopool::{Pool, Priority, SpawnErrorKind, Spawner, WhenFull};

const MIDDLE: Priority = Priority::level(1);
const CAPACITY: [(Priority, usize); 2] = [(MIDDLE, 3), (Priority::LOW, 4)];

fn bounded() -> priopool::Builder {
    let mut builder = Pool::builder().levels(3).min_workers(1).max_workers(3).keep_alive(Duration::from_millis(2));
    for (priority, n) in CAPACITY {
        builder = builder.capacity(priority, n);
    }
    builder
}

/// Spawns refused at each level (`Full` or `Shutdown`), as the spawners saw
/// them.
type Refused = Arc<[AtomicUsize; 3]>;

/// Counts `result` in `refused` at `level` if the spawn was refused.
fn count<T, F>(refused: &Refused, level: usize, result: Result<T, priopool::SpawnError<F>>) -> Option<T> {
    match result {
        Ok(value) => Some(value),
        Err(error) => {
            assert!(matches!(error.kind(), SpawnErrorKind::Full | SpawnErrorKind::Shutdown), "{:?}", error.kind());
            refused[level].fetch_add(1, Ordering::Relaxed);
            None
        }
    }
}

/// One seeded operation on a bounded level, from outside the pool; the
/// operations on the pool itself (`cancel_queued`, resizing) and a `join`
/// (whose refusals nobody sees) only with `pool_ops`.
fn operate(
    spawner: &Spawner,
    pool_ops: Option<&Pool>,
    rng: &mut fastrand::Rng,
    pending: &Arc<Pending>,
    ran: &Arc<AtomicUsize>,
    refused: &Refused,
) {
    let index = rng.usize(1..3);
    let level = Priority::level(index);
    let job = {
        let (guard, ran, inner) = (pending.guard(), Arc::clone(ran), spawner.clone());
        let (children, pending, refused) = (rng.u8(0..3), Arc::clone(pending), Arc::clone(refused));
        move || {
            let _guard = guard;
            ran.fetch_add(1, Ordering::Relaxed);
            // Spawns from inside never wait: over the capacity, or refused.
            for child in 0..children {
                pending.add();
                let (guard, ran) = (pending.guard(), Arc::clone(&ran));
                let job = move || {
                    let _guard = guard;
                    ran.fetch_add(1, Ordering::Relaxed);
                };
                match child {
                    0 => count(&refused, index, inner.spawn(level, job)),
                    _ => count(&refused, index, inner.try_spawn(level, job)),
                };
            }
        }
    };
    pending.add();
    match rng.u8(0..10) {
        0 => drop(count(refused, index, spawner.spawn(level, job))),
        1 => drop(count(refused, index, spawner.try_spawn(level, job))),
        2 => drop(count(refused, index, spawner.spawn_timeout(level, Duration::from_micros(rng.u64(0..200)), job))),
        3 => {
            if let Some(handle) = count(refused, index, spawner.job(level).when_full(WhenFull::Refuse).submit(job)) {
                handle.cancel();
            }
        }
        4 => {
            if let Some(handle) = count(refused, index, spawner.submit(level, job)) {
                let to = [Priority::HIGH, MIDDLE, Priority::LOW][rng.usize(0..3)];
                let _ = handle.promote(to);
            }
        }
        5 => drop(count(refused, index, spawner.job(level).max_wait(Duration::ZERO).spawn(job))),
        6 => {
            count(refused, index, spawner.spawn(level, job));
            if let Some(pool) = pool_ops {
                pool.cancel_queued(level);
            }
        }
        7 => {
            count(refused, index, spawner.spawn(level, job));
            if let Some(pool) = pool_ops {
                let max = rng.usize(1..4);
                pool.set_worker_limits(rng.usize(0..=max), max).unwrap();
            }
        }
        8 if pool_ops.is_some() => {
            // The second closure waits as a scoped job of the level.
            pending.add();
            let (a, b) = (job, pending.guard());
            // Panics if `cancel_queued` cancelled the second closure.
            let join = || spawner.join(level, a, move || drop(b));
            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(join));
        }
        _ => drop(count(refused, index, spawner.submit(level, job))),
    }
}

/// Holds the pool's workers with HIGH jobs and counts how many jobs each
/// bounded level takes before `try_spawn` says it is full.
fn room(pool: &Pool) -> Vec<usize> {
    pool.set_workers(2).unwrap();
    while pool.workers() != 2 {
        thread::yield_now();
    }
    let gate = Gate::hold(pool, 2);
    let room = CAPACITY
        .iter()
        .map(|&(priority, n)| {
            let mut taken = 0;
            for _ in 0..n + 3 {
                match pool.try_spawn(priority, || {}) {
                    Ok(()) => taken += 1,
                    Err(error) => assert_eq!(error.kind(), SpawnErrorKind::Full),
                }
            }
            taken
        })
        .collect();
    gate.release();
    assert!(pool.wait_idle());
    room
}

#[test]
fn a_bounded_level_keeps_exactly_its_room_through_racing_rounds() {
    const ROUNDS: u64 = 100;
    const PRODUCERS: u64 = 3;
    const OPS: usize = 60;

    watchdog("racing rounds", LONG_BOUND, || {
        let pool = Arc::new(bounded().build().unwrap());
        let pending = Arc::new(Pending::default());
        let ran = Arc::new(AtomicUsize::new(0));
        let refused = Refused::default();
        for round in 0..ROUNDS {
            let producers: Vec<_> = (0..PRODUCERS)
                .map(|p| {
                    let (pool, pending) = (Arc::clone(&pool), Arc::clone(&pending));
                    let (ran, refused) = (Arc::clone(&ran), Arc::clone(&refused));
                    thread::spawn(move || {
                        let mut rng = fastrand::Rng::with_seed(round * PRODUCERS + p);
                        let spawner = pool.spawner();
                        for _ in 0..OPS {
                            operate(&spawner, Some(&pool), &mut rng, &pending, &ran, &refused);
                        }
                    })
                })
                .collect();
            for producer in producers {
                producer.join().unwrap();
            }
            assert!(pool.wait_idle());
            pool.set_worker_limits(1, 3).unwrap();
        }
        pending.wait_for_zero();
        assert_eq!(room(&pool), [3, 4], "a slot leaked or was given back twice");
        assert_at_rest(&pool.metrics(), "after the rounds");
    });
}

/// How a round of [`a_shutdown_racing_full_levels_strands_nobody`] ends the pool.
fn shut(pool: Pool, how: u8) {
    match how {
        0 => pool.shutdown(),
        1 => drop(pool.shutdown_now()),
        2 => drop(pool.shutdown_timeout(Duration::ZERO)),
        3 => drop(pool.shutdown_timeout(Duration::from_micros(300))),
        _ => drop(pool),
    }
}

/// Producers keep bounded levels full (waiting, refused, timing out, from
/// inside too) while the pool is shut down every way there is: every
/// producer returns, every accepted closure is dropped exactly once (run
/// or handed back), and the metrics add up with the refusals the spawners
/// saw, exactly.
#[test]
fn a_shutdown_racing_full_levels_strands_nobody() {
    const ROUNDS: u64 = 200;
    const PRODUCERS: u64 = 3;
    watchdog("shutdown races", LONG_BOUND, || {
        for round in 0..ROUNDS {
            let mut rng = fastrand::Rng::with_seed(round);
            let builder = if rng.bool() { bounded() } else { bounded().on_drop(priopool::DropPolicy::CancelBacklog) };
            let pool = builder.build().unwrap();
            let spawner = pool.spawner();
            let pending = Arc::new(Pending::default());
            let (ran, refused) = (Arc::new(AtomicUsize::new(0)), Refused::default());
            let ops = Arc::new(AtomicUsize::new(0));
            let producers: Vec<_> = (0..PRODUCERS)
                .map(|p| {
                    let (spawner, pending) = (spawner.clone(), Arc::clone(&pending));
                    let (ran, refused, ops) = (Arc::clone(&ran), Arc::clone(&refused), Arc::clone(&ops));
                    thread::spawn(move || {
                        let mut rng = fastrand::Rng::with_seed(round * PRODUCERS + p + 1000);
                        // Until a plain spawn is refused by the shutdown.
                        loop {
                            operate(&spawner, None, &mut rng, &pending, &ran, &refused);
                            ops.fetch_add(1, Ordering::Relaxed);
                            let index = rng.usize(1..3);
                            pending.add();
                            let guard = pending.guard();
                            match spawner.spawn(Priority::level(index), move || drop(guard)) {
                                Ok(()) => {}
                                Err(error) => {
                                    let kind = error.kind();
                                    drop(error);
                                    refused[index].fetch_add(1, Ordering::Relaxed);
                                    assert_eq!(kind, SpawnErrorKind::Shutdown);
                                    return;
                                }
                            }
                        }
                    })
                })
                .collect();
            let after = rng.usize(0..40);
            while ops.load(Ordering::Relaxed) < after {
                thread::yield_now();
            }
            shut(pool, rng.u8(0..5));
            for producer in producers {
                producer.join().unwrap();
            }
            pending.wait_for_zero();
            // Detached workers may still be counting their last job.
            loop {
                let metrics = spawner.metrics();
                let rest = metrics.levels.iter().all(|l| {
                    l.backlog == 0
                        && l.started == l.completed + l.panicked
                        && l.submitted == l.completed + l.panicked + l.cancelled + l.expired + l.promoted + l.rejected
                });
                if rest && metrics.workers.current == 0 {
                    for (level, l) in metrics.levels.iter().enumerate() {
                        let seen = refused[level].load(Ordering::Relaxed) as u64;
                        assert_eq!(l.rejected, seen, "round {round}: level {level}: {l:?}");
                    }
                    break;
                }
                thread::yield_now();
            }
        }
    });
}
