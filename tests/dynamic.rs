//! Dynamic pools: growing with the backlog, shrinking when idle, resizing at
//! run time. Concurrency is measured with atomics, events are ordered with
//! barriers, latches and channels, and every wait has a watchdog.
//!
//! A shrink never interrupts a job, and a surplus worker takes no new one;
//! a resize grows the pool at once, and the backlog grows it up to `max`,
//! never past it; idle workers retire down to `min`, also 0, and shutdown
//! leaves no thread behind; a retiring worker hands its local jobs to the
//! others; a refused thread start is survived; under random resizes every
//! job runs once and the priority rule holds.

mod common;

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Barrier, Mutex};
use std::thread;
use std::time::{Duration, Instant};

#[cfg(target_os = "linux")]
use common::named;
use common::{LONG_BOUND, Latch, SETTLE, watchdog};
use priopool::{JobHandle, Pool, Priority};

/// Polls `condition` until it holds; panics with `what` after [`SETTLE`].
/// Used only for states the pool reaches on its own (a retirement), never
/// to order events.
fn wait_until(what: &str, condition: impl Fn() -> bool) {
    let start = Instant::now();
    while !condition() {
        assert!(start.elapsed() < SETTLE, "timed out waiting until {what}");
        thread::sleep(Duration::from_millis(1));
    }
}

/// Checks that every worker thread named `prefix` has exited once shutdown
/// has returned. Shutdown joins them all, but the kernel removes a thread's
/// `/proc` entry a moment after a join returns, so this polls: a thread the
/// pool failed to join would be parked forever and never disappear.
#[cfg(target_os = "linux")]
fn no_thread_outlives_shutdown(prefix: &str) {
    let start = Instant::now();
    while !named(prefix).is_empty() {
        assert!(start.elapsed() < SETTLE, "a worker thread named {prefix}* outlived shutdown");
        thread::yield_now();
    }
}

/// Tracks how many jobs run at once and the most that ever did.
#[derive(Default)]
struct Concurrency {
    now: AtomicUsize,
    most: AtomicUsize,
}

impl Concurrency {
    fn run(&self, work: impl FnOnce()) {
        let now = self.now.fetch_add(1, Ordering::SeqCst) + 1;
        self.most.fetch_max(now, Ordering::SeqCst);
        work();
        self.now.fetch_sub(1, Ordering::SeqCst);
    }

    fn most(&self) -> usize {
        self.most.load(Ordering::SeqCst)
    }
}

fn join_all<T>(handles: Vec<JobHandle<T>>) -> Vec<T> {
    handles.into_iter().map(|h| h.join().expect("the job ran without panicking")).collect()
}

/// Runs `n` jobs that can only finish together (they wait on one barrier),
/// so the pool must run them on `n` workers at once; returns when all have.
fn run_together(pool: &Pool, n: usize) {
    let barrier = Arc::new(Barrier::new(n));
    let jobs: Vec<_> = (0..n)
        .map(|_| {
            let barrier = Arc::clone(&barrier);
            pool.submit(Priority::HIGH, move || {
                barrier.wait();
            })
            .unwrap()
        })
        .collect();
    join_all(jobs);
}

#[test]
fn shrink_from_4_to_1_while_4_long_jobs_run() {
    watchdog("shrink_from_4_to_1_while_4_long_jobs_run", LONG_BOUND, || {
        let pool = Pool::builder().workers(4).thread_name(|i| format!("dynshrink-{i}")).build().unwrap();

        // Occupy all four workers with long jobs that wait at a gate.
        let gate = Latch::new();
        let all_started = Arc::new(Barrier::new(5));
        let long: Vec<_> = (0..4)
            .map(|_| {
                let (gate, all_started) = (gate.clone(), Arc::clone(&all_started));
                pool.submit(Priority::LOW, move || {
                    all_started.wait();
                    gate.wait();
                })
                .unwrap()
            })
            .collect();
        all_started.wait();

        pool.set_workers(1).unwrap();
        assert_eq!(pool.worker_limits(), 1..=1);

        // Jobs submitted after the shrink; a little work in each makes overlap
        // likely if more than one worker still took jobs.
        let concurrency = Arc::new(Concurrency::default());
        let short: Vec<_> = (0..40)
            .map(|i| {
                let concurrency = Arc::clone(&concurrency);
                let priority = if i % 2 == 0 { Priority::HIGH } else { Priority::LOW };
                pool.submit(priority, move || concurrency.run(|| thread::sleep(Duration::from_micros(200)))).unwrap()
            })
            .collect();

        gate.open();
        join_all(long);
        join_all(short);
        assert_eq!(concurrency.most(), 1, "jobs submitted after shrinking to 1 worker ran concurrently");
        // `workers()` falls when a worker is told to retire, `workers_retired()`
        // as its thread leaves: wait for both.
        wait_until("three workers have retired", || pool.workers() == 1 && pool.workers_retired() == 3);
        pool.shutdown();
    });
}

#[test]
fn grow_from_1_to_8_while_one_job_runs() {
    watchdog("grow_from_1_to_8_while_one_job_runs", LONG_BOUND, || {
        let pool = Pool::builder().workers(1).build().unwrap();

        // Eight jobs that can only finish together; the first one starts on the
        // single worker and blocks, the other seven wait in the queue.
        let barrier = Arc::new(Barrier::new(8));
        let (started_tx, started) = mpsc::channel();
        let jobs: Vec<_> = (0..8)
            .map(|i| {
                let (barrier, started_tx) = (Arc::clone(&barrier), started_tx.clone());
                pool.submit(Priority::HIGH, move || {
                    started_tx.send(i).unwrap();
                    barrier.wait();
                })
                .unwrap()
            })
            .collect();
        started.recv().unwrap();

        pool.set_workers(8).unwrap();
        assert_eq!(pool.workers(), 8);
        join_all(jobs);
        assert_eq!(pool.workers_started(), 8);
        assert_eq!(pool.workers_retired(), 0);
        pool.shutdown();
    });
}

#[test]
fn grows_with_the_backlog_but_never_past_max() {
    watchdog("grows_with_the_backlog_but_never_past_max", LONG_BOUND, || {
        let pool = Pool::builder().min_workers(1).max_workers(4).build().unwrap();
        assert_eq!(pool.workers(), 1);

        // Six jobs wait at a gate: the pool must grow to 4 for four of them to
        // start, and must not start a fifth worker.
        let gate = Latch::new();
        let concurrency = Arc::new(Concurrency::default());
        let (started_tx, started) = mpsc::channel();
        let jobs: Vec<_> = (0..6)
            .map(|_| {
                let (gate, concurrency, started_tx) = (gate.clone(), Arc::clone(&concurrency), started_tx.clone());
                pool.submit(Priority::LOW, move || {
                    concurrency.run(|| {
                        started_tx.send(()).unwrap();
                        gate.wait();
                    })
                })
                .unwrap()
            })
            .collect();
        for _ in 0..4 {
            started.recv().unwrap();
        }
        assert_eq!(pool.workers(), 4);
        gate.open();
        join_all(jobs);
        assert_eq!(concurrency.most(), 4);
        assert_eq!(pool.workers_started(), 4);
        pool.shutdown();
    });
}

/// 1,000 random resizes during 10,000 jobs of three levels, submitted by one
/// thread.
///
/// Exactly once: every job's run counter ends at 1.
///
/// The priority rule, in the form that stays provable while the pool
/// resizes: a worker picks a level-`l` job only after reading a zero queued
/// count for every more urgent level, so every more urgent job submitted
/// before it had already been popped. A popped job that has not started is
/// held by one worker, which holds at most one, and no worker can exist
/// beyond the largest size requested so far (growth and resizes reserve a
/// slot under the current maximum before starting a thread). So when a job
/// starts, at most `largest size so far - 1` more urgent jobs submitted
/// before it have not started.
#[test]
fn random_resizes_during_mixed_jobs() {
    const JOBS: usize = 10_000;
    const LEVELS: usize = 3;
    const MAX_SIZE: usize = 6;
    watchdog("random_resizes_during_mixed_jobs", LONG_BOUND, || {
        let mut rng = fastrand::Rng::with_seed(0x5eed_0007);

        let initial = 2;
        let pool =
            Pool::builder().workers(initial).levels(LEVELS).thread_name(|i| format!("dynrand-{i}")).build().unwrap();
        let largest = Arc::new(AtomicUsize::new(initial));
        let runs: Arc<Vec<AtomicUsize>> = Arc::new((0..JOBS).map(|_| AtomicUsize::new(0)).collect());
        // Jobs submitted and not yet started, as (level, submission index).
        let waiting = Arc::new(Mutex::new(BTreeSet::new()));
        let violations = Arc::new(Mutex::new(Vec::new()));
        let (done_tx, done) = mpsc::channel();

        let mut last_size = initial;
        for seq in 0..JOBS {
            if seq % 10 == 0 {
                last_size = rng.usize(1..=MAX_SIZE);
                largest.fetch_max(last_size, Ordering::SeqCst);
                pool.set_workers(last_size).unwrap();
            }
            let level = rng.usize(0..LEVELS);
            let work = rng.u32(0..200);
            waiting.lock().unwrap().insert((level, seq));
            let (runs, waiting, violations, largest, done_tx) = (
                Arc::clone(&runs),
                Arc::clone(&waiting),
                Arc::clone(&violations),
                Arc::clone(&largest),
                done_tx.clone(),
            );
            pool.spawn(Priority::level(level), move || {
                {
                    let bound = largest.load(Ordering::SeqCst) - 1;
                    let mut waiting = waiting.lock().unwrap();
                    waiting.remove(&(level, seq));
                    let passed = (0..level).map(|more| waiting.range((more, 0)..(more, seq)).count()).sum::<usize>();
                    if passed > bound {
                        violations.lock().unwrap().push(format!(
                            "job {seq} of level {level} started while {passed} more urgent earlier jobs waited \
                             (bound {bound})"
                        ));
                    }
                }
                runs[seq].fetch_add(1, Ordering::SeqCst);
                for i in 0..work {
                    std::hint::black_box(i);
                }
                done_tx.send(()).unwrap();
            })
            .unwrap();
        }
        for _ in 0..JOBS {
            done.recv().unwrap();
        }

        let violations = violations.lock().unwrap();
        assert!(violations.is_empty(), "priority rule broken:\n{}", violations.join("\n"));
        for (seq, count) in runs.iter().enumerate() {
            assert_eq!(count.load(Ordering::SeqCst), 1, "job {seq} ran a wrong number of times");
        }
        assert_eq!(pool.worker_limits(), last_size..=last_size);
        wait_until("the pool has the last size requested", || pool.workers() == last_size);
        #[cfg(target_os = "linux")]
        wait_until("the last size's threads are the only ones", || named("dynrand-").len() == last_size);
        assert_eq!(pool.workers_started() - pool.workers_retired(), last_size);
        assert_eq!(pool.panic_count(), 0);

        // Shutdown joins every thread ever started, retired ones included.
        pool.shutdown();
        #[cfg(target_os = "linux")]
        no_thread_outlives_shutdown("dynrand-");
    });
}

#[test]
#[cfg(target_os = "linux")]
fn idle_workers_retire_down_to_min_workers() {
    watchdog("idle_workers_retire_down_to_min_workers", LONG_BOUND, || {
        let pool = Pool::builder()
            .min_workers(1)
            .max_workers(4)
            .keep_alive(Duration::from_millis(20))
            .thread_name(|i| format!("dynidle-{i}"))
            .build()
            .unwrap();

        // Four jobs that can only finish together make the pool grow to 4.
        run_together(&pool, 4);
        assert_eq!(pool.workers_started(), 4);

        wait_until("idle workers have retired down to 1", || pool.workers() == 1);
        wait_until("one worker thread is left", || named("dynidle-").len() == 1);
        assert_eq!(pool.workers_retired(), 3);

        // New work still runs, and a burst grows the pool again.
        assert_eq!(pool.submit(Priority::LOW, || 7).unwrap().join().unwrap(), 7);
        run_together(&pool, 3);
        pool.shutdown();
        no_thread_outlives_shutdown("dynidle-");
    });
}

#[test]
#[cfg(target_os = "linux")]
fn a_pool_with_min_0_holds_no_threads_when_idle() {
    watchdog("a_pool_with_min_0_holds_no_threads_when_idle", LONG_BOUND, || {
        let pool = Pool::builder()
            .min_workers(0)
            .max_workers(2)
            .keep_alive(Duration::from_millis(10))
            .thread_name(|i| format!("dynzero-{i}"))
            .build()
            .unwrap();
        assert_eq!(pool.workers(), 0);
        assert_eq!(named("dynzero-").len(), 0);

        for round in 0..3 {
            assert_eq!(pool.submit(Priority::HIGH, move || round * 2).unwrap().join().unwrap(), round * 2);
            wait_until("the pool is back to no threads", || named("dynzero-").is_empty());
            assert_eq!(pool.workers(), 0);
        }
        assert_eq!(pool.workers_started(), pool.workers_retired());

        // Shutdown with work queued and no thread running still runs it.
        let ran = Arc::new(AtomicUsize::new(0));
        for _ in 0..10 {
            let ran = Arc::clone(&ran);
            pool.spawn(Priority::LOW, move || {
                ran.fetch_add(1, Ordering::SeqCst);
            })
            .unwrap();
        }
        pool.shutdown();
        assert_eq!(ran.load(Ordering::SeqCst), 10);
        no_thread_outlives_shutdown("dynzero-");
    });
}

/// A retiring worker's local deques go to the injectors: a job spawns ten
/// children onto its worker's deque while the only other worker is blocked,
/// the pool shrinks to one, the spawning worker retires on finishing its
/// job, and the other worker then runs all ten.
#[test]
fn a_retiring_worker_hands_its_local_jobs_to_the_others() {
    watchdog("a_retiring_worker_hands_its_local_jobs_to_the_others", LONG_BOUND, || {
        let pool = Pool::builder().workers(2).build().unwrap();

        let (blocker_gate, parent_gate) = (Latch::new(), Latch::new());
        let both_started = Arc::new(Barrier::new(3));
        let blocker = {
            let (gate, both_started) = (blocker_gate.clone(), Arc::clone(&both_started));
            pool.submit(Priority::HIGH, move || {
                both_started.wait();
                gate.wait();
            })
            .unwrap()
        };
        let ran = Arc::new(AtomicUsize::new(0));
        let (children_tx, children_done) = mpsc::channel();
        let parent = {
            let (gate, both_started, spawner, ran) =
                (parent_gate.clone(), Arc::clone(&both_started), pool.spawner(), Arc::clone(&ran));
            pool.submit(Priority::HIGH, move || {
                both_started.wait();
                for _ in 0..10 {
                    let (ran, children_tx) = (Arc::clone(&ran), children_tx.clone());
                    spawner
                        .spawn(Priority::LOW, move || {
                            ran.fetch_add(1, Ordering::SeqCst);
                            children_tx.send(()).unwrap();
                        })
                        .unwrap();
                }
                gate.wait();
            })
            .unwrap()
        };
        both_started.wait();

        pool.set_workers(1).unwrap();
        parent_gate.open();
        parent.join().unwrap();
        wait_until("the parent's worker has retired", || pool.workers() == 1);
        assert_eq!(ran.load(Ordering::SeqCst), 0, "the other worker is still blocked");

        blocker_gate.open();
        blocker.join().unwrap();
        for _ in 0..10 {
            children_done.recv().unwrap();
        }
        assert_eq!(ran.load(Ordering::SeqCst), 10);
        // Counted as the retiring thread leaves, which the children need not wait for.
        wait_until("the retired thread is counted", || pool.workers_retired() == 1);
        pool.shutdown();
    });
}

/// A pool survives the OS refusing threads: growth and resizing report the
/// refusal and keep the pool running with the workers it has (here none),
/// and shutdown still runs every accepted job, on its own thread if it must.
#[test]
fn refused_thread_starts_are_survived() {
    watchdog("refused_thread_starts_are_survived", LONG_BOUND, || {
        // A stack larger than the address space: every thread start fails.
        const HUGE_STACK: usize = 1 << 50;
        assert!(Pool::builder().workers(1).stack_size(HUGE_STACK).build().is_err());

        let pool = Pool::builder().min_workers(0).max_workers(4).stack_size(HUGE_STACK).build().unwrap();
        let ran_on = Arc::new(Mutex::new(Vec::new()));
        for _ in 0..5 {
            let ran_on = Arc::clone(&ran_on);
            pool.spawn(Priority::HIGH, move || ran_on.lock().unwrap().push(thread::current().id())).unwrap();
        }
        assert_eq!(pool.workers(), 0);
        assert_eq!(pool.queued(Priority::HIGH), Some(5));

        let error = pool.set_workers(2).unwrap_err();
        assert!(error.is_thread_spawn());
        assert!(std::error::Error::source(&error).is_some());
        assert!(error.to_string().contains("keeps running with 0 workers"), "{error}");
        assert_eq!(pool.worker_limits(), 2..=2, "the limits apply even though no thread started");
        assert_eq!(pool.workers(), 0);
        assert_eq!(pool.workers_started(), 0);

        pool.shutdown();
        let ran_on = ran_on.lock().unwrap();
        assert_eq!(ran_on.len(), 5);
        assert!(ran_on.iter().all(|&id| id == thread::current().id()));
    });
}

#[test]
fn bad_limits_are_errors_that_say_what_to_change() {
    let message = |b: priopool::Builder| b.build().unwrap_err().to_string();
    assert!(message(Pool::builder().min_workers(3).max_workers(2)).contains("lower min_workers or raise max_workers"));
    assert!(message(Pool::builder().workers(2).max_workers(4)).contains("one or the other"));
    assert!(message(Pool::builder().max_workers(0)).contains("n >= 1"));
    assert!(message(Pool::builder().max_workers(2).keep_alive(Duration::ZERO)).contains("positive Duration"));
    assert!(message(Pool::builder().max_workers(priopool::MAX_WORKERS + 1)).contains("n <="));

    let pool = Pool::builder().min_workers(0).max_workers(2).build().unwrap();
    assert_eq!(pool.worker_limits(), 0..=2);
    assert!(pool.set_workers(0).unwrap_err().to_string().contains("n >= 1"));
    assert!(pool.set_worker_limits(3, 2).unwrap_err().to_string().contains("min <= max"));
    assert!(pool.set_workers(priopool::MAX_WORKERS + 1).is_err());
    assert_eq!(pool.worker_limits(), 0..=2, "a refused resize changes nothing");
    pool.set_worker_limits(1, 3).unwrap();
    assert_eq!(pool.worker_limits(), 1..=3);
    assert_eq!(pool.workers(), 1);
    pool.shutdown();
}

#[test]
fn only_max_workers_defaults_min_to_1() {
    let pool = Pool::builder().max_workers(3).build().unwrap();
    assert_eq!(pool.worker_limits(), 1..=3);
    assert_eq!(pool.workers(), 1);
    let fixed = Pool::builder().workers(2).build().unwrap();
    assert_eq!(fixed.worker_limits(), 2..=2);
    assert_eq!(fixed.workers(), 2);
}
