//! Fork-join: `join`, `scope`, and a job that waits for jobs of its own
//! pool (`src/runtime/help.rs`, `src/forkjoin/`).
//!
//! How each test checks its claim:
//!
//! * The deadlock reproductions (a one-worker pool whose job joins a job it
//!   submitted, either way round; a two-worker quicksort joining its halves
//!   through handles) finish under a watchdog; on the code before the
//!   waiting worker helped, each hangs and the watchdog fails it.
//! * The waiting rule: a HIGH job that waits for a job running on the other
//!   worker must not run an unrelated LOW job meanwhile. The LOW job records
//!   whether the awaited job had finished when it ran; it must have.
//! * Exact values and counts: every closure's result comes back, and every
//!   job ran once (counters).
//! * Panics: in either half of a join, in scoped jobs, in nested scopes and
//!   in `scope`'s own closure; each is resumed after every job finished,
//!   which the tests see through counters read right after the panic.
//! * A scope from outside whose jobs outlast the owner's spin before it
//!   parks still returns only after every one ended (an exact count).
//!
//! `.ci/run` runs this binary under valgrind's memcheck too (the erased
//! lifetimes of `src/job/erase.rs`); `PRIOPOOL_FORKJOIN_SCALE` shrinks
//! its sizes there.

mod common;

use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use common::{BOUND, Latch, fib, intentional_panic, is_intentional, quiet_intentional_panics, watchdog};
use priopool::{Pool, Priority, Scope};

/// Divides the sizes of the larger tests (valgrind runs them slowly).
fn scale() -> usize {
    std::env::var("PRIOPOOL_FORKJOIN_SCALE").ok().and_then(|s| s.parse().ok()).unwrap_or(1).max(1)
}

fn pool(workers: usize) -> Pool {
    Pool::builder().workers(workers).panic_handler(|_| {}).build().expect("the pool builds")
}

/// A pseudo-random vector (xorshift), so the sorts have work to do.
fn random_vec(n: usize, seed: u64) -> Vec<u64> {
    let mut x = seed | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x % 1_000_000
        })
        .collect()
}

/// Lomuto partition around the last element; returns the pivot's index.
fn partition(v: &mut [u64]) -> usize {
    let pivot = v[v.len() - 1];
    let mut store = 0;
    for i in 0..v.len() - 1 {
        if v[i] < pivot {
            v.swap(i, store);
            store += 1;
        }
    }
    let last = v.len() - 1;
    v.swap(store, last);
    store
}

fn quicksort_join(v: &mut [u64]) {
    if v.len() <= 64 {
        v.sort_unstable();
        return;
    }
    let mid = partition(v);
    let (left, right) = v.split_at_mut(mid);
    priopool::join(|| quicksort_join(left), || quicksort_join(&mut right[1..]));
}

// ---------------------------------------------------------------------------
// The deadlocks of the issue.
// ---------------------------------------------------------------------------

/// The reproduction: one worker, a LOW job joining a HIGH job it
/// submitted. Before the waiting worker helped, `outer.join()` never
/// returned (and dropping the pool then hung too).
#[test]
fn a_low_job_joins_a_high_job_it_submitted_on_one_worker() {
    watchdog("LOW joins HIGH on one worker", BOUND, || {
        let pool = pool(1);
        let sp = pool.spawner();
        let outer =
            pool.submit(Priority::LOW, move || sp.submit(Priority::HIGH, || 1).unwrap().join().unwrap() + 1).unwrap();
        assert_eq!(outer.join().unwrap(), 2);
        drop(pool);
    });
}

/// The other way round: a HIGH job waits for a queued LOW job it submitted;
/// the waiter claims it (priority inheritance). Also with `join_timeout`
/// and by awaiting the handle.
#[test]
fn a_high_job_joins_a_low_job_it_submitted_on_one_worker() {
    watchdog("HIGH joins LOW on one worker", BOUND, || {
        let pool = pool(1);
        let sp = pool.spawner();
        let outer = pool
            .submit(Priority::HIGH, move || {
                let a = sp.submit(Priority::LOW, || 20).unwrap().join().unwrap();
                let b = sp.submit(Priority::LOW, || 20).unwrap().join_timeout(Duration::from_secs(3600)).unwrap();
                let c = futures::executor::block_on(sp.submit(Priority::LOW, || 2).unwrap()).unwrap();
                // A snapshot while the claimed jobs' dead entries are still
                // queued (one worker, busy here) must not count them twice.
                let during = sp.metrics();
                assert!(during.levels.iter().all(|l| l.started + l.backlog <= l.submitted));
                a + b + c
            })
            .unwrap();
        assert_eq!(outer.join().unwrap(), 42);
        // Four jobs ran, each counted once: the three claimed ones when they
        // ran, not again when their dead entries left the queue.
        let spawner = pool.spawner();
        drop(pool);
        let metrics = spawner.metrics();
        for level in &metrics.levels {
            assert_eq!(level.backlog, 0);
            assert_eq!(level.submitted, level.started);
            assert_eq!(level.started, level.completed);
        }
        assert_eq!(metrics.levels.iter().map(|l| l.completed).sum::<u64>(), 4);
    });
}

/// A job waiting on a handle gives up at its timeout, helping meanwhile,
/// and gets the handle back.
#[test]
fn join_timeout_on_a_worker_times_out_and_hands_the_handle_back() {
    watchdog("join_timeout on a worker", BOUND, || {
        let pool = pool(2);
        let release = Latch::new();
        let started = Latch::new();
        let (r, s) = (release.clone(), started.clone());
        let blocker = pool
            .submit(Priority::HIGH, move || {
                s.open();
                r.wait();
                7
            })
            .unwrap();
        started.wait();
        let outer = pool
            .submit(Priority::HIGH, move || match blocker.join_timeout(Duration::from_millis(20)) {
                Err(timed_out) if timed_out.is_timeout() => {
                    release.open();
                    timed_out.into_handle().unwrap().join().unwrap()
                }
                other => panic!("expected a timeout, got {other:?}"),
            })
            .unwrap();
        assert_eq!(outer.join().unwrap(), 7);
    });
}

fn quicksort_handles(sp: priopool::Spawner, mut v: Vec<u64>) -> Vec<u64> {
    if v.len() <= 256 {
        v.sort_unstable();
        return v;
    }
    let mid = partition(&mut v);
    let right = v.split_off(mid + 1);
    let pivot = v.pop().unwrap();
    let sp2 = sp.clone();
    let left = sp.submit(Priority::LOW, move || quicksort_handles(sp2.clone(), v)).unwrap();
    let sp3 = sp.clone();
    let right = sp.submit(Priority::LOW, move || quicksort_handles(sp3, right)).unwrap();
    let mut sorted = left.join().unwrap();
    sorted.push(pivot);
    sorted.extend(right.join().unwrap());
    sorted
}

/// The second reproduction: a recursive quicksort on two workers
/// that submits its halves and joins their handles.
#[test]
fn a_quicksort_joining_its_halves_through_handles_finishes_on_two_workers() {
    watchdog("quicksort through handles", BOUND, || {
        let pool = pool(2);
        let v = random_vec(100_000 / scale(), 7);
        let mut expected = v.clone();
        expected.sort_unstable();
        let sp = pool.spawner();
        let sorted = pool.submit(Priority::LOW, move || quicksort_handles(sp, v)).unwrap().join().unwrap();
        assert_eq!(sorted, expected);
    });
}

// ---------------------------------------------------------------------------
// The waiting rule.
// ---------------------------------------------------------------------------

/// A HIGH job waits for a HIGH job running on the other worker while an
/// unrelated LOW job is queued: the waiter must not run the LOW job (it
/// would then wait behind it). The LOW job records whether the awaited job
/// had finished when it started.
#[test]
fn a_waiting_job_never_runs_an_unrelated_less_urgent_job() {
    watchdog("the waiting rule", BOUND, || {
        for _ in 0..5 {
            let pool = pool(2);
            let (awaited_started, release) = (Latch::new(), Latch::new());
            let awaited_done = Arc::new(AtomicBool::new(false));
            let (s, r, d) = (awaited_started.clone(), release.clone(), Arc::clone(&awaited_done));
            let started = awaited_started.clone();
            let sp = pool.spawner();
            let waiter = pool
                .submit(Priority::HIGH, move || {
                    let awaited = sp
                        .submit(Priority::HIGH, move || {
                            s.open();
                            r.wait();
                            d.store(true, Ordering::SeqCst);
                        })
                        .unwrap();
                    // Taken by the other worker, not claimed by this one.
                    started.wait();
                    awaited.join().unwrap();
                })
                .unwrap();
            awaited_started.wait();
            let d = Arc::clone(&awaited_done);
            let low = pool.submit(Priority::LOW, move || d.load(Ordering::SeqCst)).unwrap();
            // Give the waiter time to reach its wait (the test cannot fail
            // for lack of it, only pass for the wrong reason).
            thread::sleep(Duration::from_millis(30));
            release.open();
            waiter.join().unwrap();
            assert!(low.join().unwrap(), "the waiting HIGH job ran an unrelated LOW job");
        }
    });
}

// ---------------------------------------------------------------------------
// join
// ---------------------------------------------------------------------------

#[test]
fn join_sorts_in_place_and_borrows() {
    watchdog("join quicksort", BOUND, || {
        let pool = pool(2);
        let mut v = random_vec(200_000 / scale(), 11);
        let mut expected = v.clone();
        expected.sort_unstable();
        pool.join(Priority::LOW, || quicksort_join(&mut v), || ());
        assert_eq!(v, expected);
        // Inside a job too.
        let mut w = random_vec(50_000 / scale(), 12);
        let mut expected_w = w.clone();
        expected_w.sort_unstable();
        let sorted = pool
            .submit(Priority::HIGH, move || {
                quicksort_join(&mut w);
                w
            })
            .unwrap()
            .join()
            .unwrap();
        assert_eq!(sorted, expected_w);
    });
}

#[test]
fn join_returns_both_values_everywhere() {
    watchdog("join values", BOUND, || {
        // Outside any pool: both run on the caller.
        assert_eq!(priopool::join(|| 1, || 2), (1, 2));
        assert_eq!(fib(15), 610);
        for workers in 1..=3 {
            let pool = pool(workers);
            assert_eq!(pool.submit(Priority::LOW, || fib(18)).unwrap().join().unwrap(), 2584);
            assert_eq!(pool.join(Priority::HIGH, || fib(10), || fib(11)), (55, 89));
            // From outside with a level the pool lacks: b runs on the caller.
            assert_eq!(pool.join(Priority::level(9), || 1, || 2), (1, 2));
        }
    });
}

#[test]
fn a_panic_in_either_half_is_resumed_after_both_finished() {
    quiet_intentional_panics();
    watchdog("join panics", BOUND, || {
        let pool = pool(2);
        for which in 0..3 {
            let ran = Arc::new(AtomicUsize::new(0));
            let r = Arc::clone(&ran);
            let outcome = pool
                .submit(Priority::LOW, move || {
                    let caught = panic::catch_unwind(AssertUnwindSafe(|| {
                        priopool::join(
                            || {
                                r.fetch_add(1, Ordering::SeqCst);
                                if which != 1 {
                                    intentional_panic();
                                }
                            },
                            || {
                                r.fetch_add(1, Ordering::SeqCst);
                                if which != 0 {
                                    intentional_panic();
                                }
                            },
                        )
                    }));
                    // Both halves finished before the panic reached here.
                    (caught.map_err(|p| is_intentional(&*p)), r.load(Ordering::SeqCst))
                })
                .unwrap()
                .join()
                .unwrap();
            assert_eq!(outcome, (Err(true), 2), "case {which}");
            assert_eq!(ran.load(Ordering::SeqCst), 2);
        }
        // Outside any pool.
        let caught = panic::catch_unwind(|| priopool::join(|| intentional_panic(), || 1));
        assert!(caught.is_err());
    });
}

// ---------------------------------------------------------------------------
// scope
// ---------------------------------------------------------------------------

/// Walks a binary tree of depth `depth`, spawning a job per node into the
/// scope; counts the nodes.
fn walk<'s>(s: &Scope<'s>, depth: u32, count: &'s AtomicUsize, priority: Priority) {
    count.fetch_add(1, Ordering::Relaxed);
    if depth == 0 {
        return;
    }
    for _ in 0..2 {
        s.spawn(priority, move |s| walk(s, depth - 1, count, priority)).unwrap();
    }
}

#[test]
fn scope_runs_every_job_once_and_borrows() {
    watchdog("scope", BOUND, || {
        for workers in 1..=3 {
            let pool = pool(workers);
            let count = AtomicUsize::new(0);
            pool.scope(|s| walk(s, 10, &count, Priority::LOW));
            assert_eq!(count.load(Ordering::Relaxed), (1 << 11) - 1);
            // Writes to disjoint borrowed slots.
            let mut slots = vec![0usize; 64];
            pool.scope(|s| {
                for (i, slot) in slots.iter_mut().enumerate() {
                    let p = if i % 2 == 0 { Priority::HIGH } else { Priority::LOW };
                    s.spawn(p, move |_| *slot = i * i).unwrap();
                }
            });
            assert!(slots.iter().enumerate().all(|(i, &v)| v == i * i));
            // A scope inside a job, with jobs less and more urgent than it.
            let count = Arc::new(AtomicUsize::new(0));
            let c = Arc::clone(&count);
            let sp = pool.spawner();
            pool.submit(Priority::HIGH, move || {
                let local = AtomicUsize::new(0);
                sp.scope(|s| {
                    walk(s, 6, &local, Priority::LOW);
                    walk(s, 6, &local, Priority::HIGH);
                });
                c.store(local.load(Ordering::Relaxed), Ordering::Relaxed);
            })
            .unwrap()
            .join()
            .unwrap();
            assert_eq!(count.load(Ordering::Relaxed), 2 * ((1 << 7) - 1));
        }
    });
}

/// A scope entered from outside the pool whose jobs outlast the owner's
/// few microseconds of trying (`sync::spin_until` in
/// `help::block_until`) must still wait, parked, until every job ended:
/// the jobs wait on a latch opened well after the owner reached its wait.
/// Seen failing with `spin_until` answering `true` once its backoff
/// completes (`finished` read fewer than 8), and with
/// `block_until` returning after its spin whatever it found.
#[test]
fn a_scope_from_outside_waits_for_jobs_that_outlast_its_spin() {
    const JOBS: usize = 8;
    watchdog("scope outlasting the spin", BOUND, || {
        let pool = pool(2);
        for _ in 0..3 {
            let finished = AtomicUsize::new(0);
            let latch = Latch::new();
            let opener = {
                let latch = latch.clone();
                // A delay, not a timing assertion: it only makes the jobs
                // end long after the spin gave up.
                thread::spawn(move || {
                    thread::sleep(Duration::from_millis(20));
                    latch.open();
                })
            };
            pool.scope(|s| {
                for _ in 0..JOBS {
                    let (finished, latch) = (&finished, &latch);
                    s.spawn(Priority::LOW, move |_| {
                        latch.wait();
                        finished.fetch_add(1, Ordering::SeqCst);
                    })
                    .unwrap();
                }
            });
            let seen = finished.load(Ordering::SeqCst);
            // Let any job a broken wait left behind end before its borrows go.
            opener.join().unwrap();
            while finished.load(Ordering::SeqCst) < JOBS {
                thread::yield_now();
            }
            assert_eq!(seen, JOBS, "the scope returned before every job ended");
        }
    });
}

#[test]
fn scope_resumes_a_job_panic_after_every_job_finished() {
    quiet_intentional_panics();
    watchdog("scope job panics", BOUND, || {
        let pool = pool(2);
        let finished = AtomicUsize::new(0);
        let caught = panic::catch_unwind(AssertUnwindSafe(|| {
            pool.scope(|s| {
                for i in 0..20 {
                    let finished = &finished;
                    s.spawn(Priority::LOW, move |_| {
                        if i % 7 == 3 {
                            intentional_panic();
                        }
                        finished.fetch_add(1, Ordering::SeqCst);
                    })
                    .unwrap();
                }
            })
        }));
        assert!(caught.is_err_and(|p| is_intentional(&*p)));
        assert_eq!(finished.load(Ordering::SeqCst), 17);
    });
}

#[test]
fn scope_resumes_its_own_closures_panic_after_its_jobs() {
    quiet_intentional_panics();
    watchdog("scope closure panics", BOUND, || {
        let pool = pool(2);
        let finished = AtomicUsize::new(0);
        let caught = panic::catch_unwind(AssertUnwindSafe(|| {
            pool.scope(|s| {
                for _ in 0..10 {
                    s.spawn(Priority::LOW, |_| {
                        finished.fetch_add(1, Ordering::SeqCst);
                    })
                    .unwrap();
                }
                intentional_panic();
            })
        }));
        assert!(caught.is_err_and(|p| is_intentional(&*p)));
        assert_eq!(finished.load(Ordering::SeqCst), 10);
    });
}

#[test]
fn nested_scopes_pass_panics_outwards_after_their_jobs() {
    quiet_intentional_panics();
    watchdog("nested scope panics", BOUND, || {
        for workers in 1..=2 {
            let pool = pool(workers);
            let finished = AtomicUsize::new(0);
            let inner_caught = Mutex::new(0);
            let caught = panic::catch_unwind(AssertUnwindSafe(|| {
                pool.scope(|s| {
                    for depth in 0..4 {
                        let (finished, inner_caught, pool) = (&finished, &inner_caught, &pool);
                        s.spawn(Priority::HIGH, move |_| {
                            // A nested scope from inside a scoped job.
                            let inner = panic::catch_unwind(AssertUnwindSafe(|| {
                                pool.scope(|inner| {
                                    inner
                                        .spawn(Priority::LOW, move |_| {
                                            finished.fetch_add(1, Ordering::SeqCst);
                                            if depth % 2 == 0 {
                                                intentional_panic();
                                            }
                                        })
                                        .unwrap();
                                })
                            }));
                            if inner.is_err() {
                                *inner_caught.lock().unwrap() += 1;
                                intentional_panic();
                            }
                        })
                        .unwrap();
                    }
                })
            }));
            assert!(caught.is_err_and(|p| is_intentional(&*p)));
            assert_eq!(finished.load(Ordering::SeqCst), 4);
            assert_eq!(*inner_caught.lock().unwrap(), 2);
        }
    });
}

#[test]
fn scope_spawn_hands_back_a_job_it_cannot_queue() {
    watchdog("scope refusals", BOUND, || {
        let pool = pool(1);
        let ran = AtomicBool::new(false);
        pool.scope(|s| {
            let refused = s.spawn(Priority::level(5), |_| ran.store(true, Ordering::SeqCst)).unwrap_err();
            assert!(matches!(refused.kind(), priopool::SpawnErrorKind::UnknownLevel { .. }));
        });
        assert!(!ran.load(Ordering::SeqCst));
    });
}

/// `shutdown_now` cancels a queued fork half (its sweep steals it from the
/// joiner's fork deque and drops it unrun, which must still end the join's
/// wait) and a queued scoped job: the join and the scope then panic saying
/// so, after their other parts finished, and the cancelled closures never
/// ran.
#[test]
fn shutdown_now_cancels_queued_parts_and_the_waits_say_so() {
    watchdog("parts cancelled by shutdown_now", BOUND, || {
        // A fork half; a scoped job as urgent as its owner; one less urgent
        // (which the owner could claim, were it not cancelled first).
        for (scoped, level) in [(false, 0), (true, 0), (true, 1)] {
            let pool = pool(2);
            let (hold, forked) = (Latch::new(), Latch::new());
            let h = hold.clone();
            pool.spawn(Priority::HIGH, move || h.wait()).unwrap();
            let (f, sp) = (forked.clone(), pool.spawner());
            let part_ran = Arc::new(AtomicBool::new(false));
            let ran = Arc::clone(&part_ran);
            let waiter = pool
                .submit(Priority::HIGH, move || {
                    // Returns once the sweep has cancelled the queued part.
                    let wait_for_the_sweep = || {
                        f.open();
                        while sp.metrics().levels[level].cancelled == 0 {
                            thread::yield_now();
                        }
                    };
                    if scoped {
                        sp.scope(|s| {
                            s.spawn(Priority::level(level), |_| ran.store(true, Ordering::SeqCst)).unwrap();
                            wait_for_the_sweep();
                        });
                    } else {
                        priopool::join(wait_for_the_sweep, || ran.store(true, Ordering::SeqCst));
                    }
                })
                .unwrap();
            forked.wait();
            let shutdown = thread::spawn(move || pool.shutdown_now());
            let outcome = waiter.join();
            hold.open();
            shutdown.join().unwrap();
            let Err(priopool::JobError::Panicked(payload)) = outcome else { panic!("the wait must panic") };
            let payload = payload.into_inner();
            let message = common::message(&*payload).unwrap_or_default();
            assert!(message.contains("cancelled") && message.contains("shutdown_now"), "{message}");
            assert!(!part_ran.load(Ordering::SeqCst), "a cancelled part never runs");
        }
    });
}
