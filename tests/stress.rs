//! Stress tests with exact counts: many producers, random priority levels,
//! panicking jobs and jobs that spawn children; submits racing shutdown;
//! wake-up round trips on an idle pool.
//!
//! Sizes: the defaults are the (4 × 100,000 jobs, ...). Set
//! `PRIOPOOL_STRESS_SCALE` to a divisor (e.g. `10`) for a quicker run.
//! Every test runs under a watchdog (tests/common) that fails it with a
//! message instead of hanging.
//!
//! Known to catch a push that wakes no sleeper: all three tests fail
//! through their watchdogs, the idle round trips only in the phase where
//! every worker is asleep, which is why that phase exists.

mod common;

use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::thread;

use common::{Pending, Progress, intentional_panic, quiet_intentional_panics, soak_watchdog};
use priopool::{Pool, Priority, SpawnErrorKind};

/// Divides the default sizes by `PRIOPOOL_STRESS_SCALE` (default 1).
fn scaled(n: usize) -> usize {
    let divisor = std::env::var("PRIOPOOL_STRESS_SCALE").ok().and_then(|v| v.parse::<usize>().ok()).unwrap_or(1);
    (n / divisor.max(1)).max(1)
}

const PLAIN: u8 = 0;
const PANICS: u8 = 1;
const SPAWNS_CHILD: u8 = 2;

struct Ledger {
    /// How many times each producer job ran (must end at exactly 1).
    runs: Vec<AtomicU8>,
    /// How many times the child of each producer job ran (1 if it spawned
    /// one, else 0).
    child_runs: Vec<AtomicU8>,
    started: AtomicUsize,
    completed: AtomicUsize,
    pending: Arc<Pending>,
}

/// 4 producer threads × 100,000 jobs at random levels; 1% panic, 10% spawn a
/// child from inside the job. At the end every job and child has run
/// exactly once, started = accepted, completed = accepted − panics, and the
/// pool counted exactly the planned panics.
#[test]
fn four_producers_random_levels_panics_and_children_exact_counts() {
    quiet_intentional_panics();
    soak_watchdog("4 producers x 100,000 jobs", |progress| {
        const PRODUCERS: usize = 4;
        const LEVELS: usize = 4;
        let per_producer = scaled(100_000);
        let total = PRODUCERS * per_producer;

        let handled_panics = Arc::new(AtomicUsize::new(0));
        let handler_count = Arc::clone(&handled_panics);
        let pool = Pool::builder()
            .workers(4)
            .levels(LEVELS)
            .panic_handler(move |_| {
                handler_count.fetch_add(1, Ordering::Relaxed);
            })
            .build()
            .expect("the pool builds");
        let ledger = Arc::new(Ledger {
            runs: (0..total).map(|_| AtomicU8::new(0)).collect(),
            child_runs: (0..total).map(|_| AtomicU8::new(0)).collect(),
            started: AtomicUsize::new(0),
            completed: AtomicUsize::new(0),
            pending: Arc::new(Pending::default()),
        });

        let producers: Vec<_> = (0..PRODUCERS)
            .map(|p| {
                let spawner = pool.spawner();
                let ledger = Arc::clone(&ledger);
                let progress = progress.clone();
                thread::spawn(move || {
                    let mut rng = fastrand::Rng::with_seed(0x5eed + p as u64);
                    let mut kinds = Vec::with_capacity(per_producer);
                    for j in 0..per_producer {
                        let id = p * per_producer + j;
                        let kind = match rng.u32(0..100) {
                            0 => PANICS,
                            1..=10 => SPAWNS_CHILD,
                            _ => PLAIN,
                        };
                        kinds.push(kind);
                        let level = Priority::level(rng.usize(0..LEVELS));
                        let child_level = Priority::level(rng.usize(0..LEVELS));
                        let ledger_for_job = Arc::clone(&ledger);
                        let spawner_for_job = (kind == SPAWNS_CHILD).then(|| spawner.clone());
                        ledger.pending.add();
                        let job = move || {
                            let ledger = ledger_for_job;
                            let _finished = ledger.pending.guard();
                            ledger.started.fetch_add(1, Ordering::Relaxed);
                            ledger.runs[id].fetch_add(1, Ordering::Relaxed);
                            if kind == PANICS {
                                intentional_panic();
                            }
                            if let Some(spawner) = spawner_for_job {
                                // Counted before the parent finishes, so the
                                // pending count cannot reach zero early.
                                ledger.pending.add();
                                let child_ledger = Arc::clone(&ledger);
                                let child = move || {
                                    let _finished = child_ledger.pending.guard();
                                    child_ledger.started.fetch_add(1, Ordering::Relaxed);
                                    child_ledger.child_runs[id].fetch_add(1, Ordering::Relaxed);
                                    child_ledger.completed.fetch_add(1, Ordering::Relaxed);
                                };
                                if spawner.spawn(child_level, child).is_err() {
                                    panic!("a running job's spawn was refused while the pool is open");
                                }
                            }
                            ledger.completed.fetch_add(1, Ordering::Relaxed);
                        };
                        spawner.spawn(level, job).expect("the pool is open");
                        if j % 1024 == 0 {
                            progress.step();
                        }
                    }
                    kinds
                })
            })
            .collect();
        let kinds: Vec<u8> = producers.into_iter().flat_map(|p| p.join().expect("a producer panicked")).collect();
        ledger.pending.wait_for_zero();

        let planned_panics = kinds.iter().filter(|&&k| k == PANICS).count();
        let children = kinds.iter().filter(|&&k| k == SPAWNS_CHILD).count();
        let accepted = total + children;
        for (id, &kind) in kinds.iter().enumerate() {
            assert_eq!(ledger.runs[id].load(Ordering::Relaxed), 1, "job {id} ran a wrong number of times");
            let child_runs = ledger.child_runs[id].load(Ordering::Relaxed);
            assert_eq!(child_runs, u8::from(kind == SPAWNS_CHILD), "the child of job {id} ran {child_runs} times");
        }
        assert_eq!(ledger.started.load(Ordering::Relaxed), accepted, "started != accepted");
        assert_eq!(
            ledger.completed.load(Ordering::Relaxed),
            accepted - planned_panics,
            "completed != accepted - panics"
        );
        assert_eq!(pool.panic_count(), planned_panics);
        assert_eq!(handled_panics.load(Ordering::Relaxed), planned_panics);
        for level in 0..LEVELS {
            assert_eq!(pool.queued(Priority::level(level)), Some(0));
        }
        println!("{accepted} jobs accepted ({children} children), {planned_panics} panicked");
        pool.shutdown();
    });
}

/// Many rounds of several producers submitting (through `Spawner` clones,
/// half with `spawn`, half with `submit`) while another thread shuts the
/// pool down. In every round each attempted job either ran exactly once or
/// was handed back unrun with `SpawnErrorKind::Shutdown`: jobs run + jobs
/// handed back = jobs attempted, and every accepted `submit` has its value.
#[test]
fn submit_racing_shutdown_every_job_runs_or_is_handed_back() {
    soak_watchdog("submit racing shutdown", |progress: Progress| {
        const PRODUCERS: usize = 3;
        const ATTEMPTS: usize = 200;
        let rounds = scaled(300);
        let mut total_handed_back = 0;
        for round in 0..rounds {
            let pool = Pool::builder().workers(2).levels(3).build().expect("the pool builds");
            let ran = Arc::new(AtomicUsize::new(0));
            // The closer shuts down once every producer has made a quarter
            // of its attempts, so each round has jobs accepted before the
            // close, jobs racing it, and jobs refused after it.
            let quarter = Arc::new(Barrier::new(PRODUCERS + 1));
            let producers: Vec<_> = (0..PRODUCERS)
                .map(|p| {
                    let spawner = pool.spawner();
                    let ran = Arc::clone(&ran);
                    let quarter = Arc::clone(&quarter);
                    thread::spawn(move || {
                        let (mut accepted, mut handed_back, mut handles) = (0, 0, Vec::new());
                        for i in 0..ATTEMPTS {
                            if i == ATTEMPTS / 4 {
                                quarter.wait();
                            }
                            let level = Priority::level((p + i) % 3);
                            let ran = Arc::clone(&ran);
                            let job = move || ran.fetch_add(1, Ordering::Relaxed);
                            let refused = if i % 2 == 0 {
                                spawner.spawn(level, move || _ = job()).err().map(|e| e.kind())
                            } else {
                                match spawner.submit(level, job) {
                                    Ok(handle) => {
                                        handles.push(handle);
                                        None
                                    }
                                    Err(e) => Some(e.kind()),
                                }
                            };
                            match refused {
                                None => accepted += 1,
                                Some(kind) => {
                                    assert_eq!(kind, SpawnErrorKind::Shutdown);
                                    handed_back += 1;
                                }
                            }
                        }
                        (accepted, handed_back, handles)
                    })
                })
                .collect();
            let closer = {
                let quarter = Arc::clone(&quarter);
                thread::spawn(move || {
                    quarter.wait();
                    pool.shutdown();
                })
            };
            closer.join().expect("shutdown returned");
            let (mut accepted, mut handed_back) = (0, 0);
            for producer in producers {
                let (a, h, handles) = producer.join().expect("a producer panicked");
                accepted += a;
                handed_back += h;
                for handle in handles {
                    assert!(handle.is_finished(), "round {round}: an accepted job had not run when shutdown returned");
                    handle.join().expect("an accepted submit yields its value");
                }
            }
            let ran = ran.load(Ordering::Relaxed);
            assert_eq!(accepted + handed_back, PRODUCERS * ATTEMPTS, "round {round}");
            assert_eq!(ran, accepted, "round {round}: {ran} jobs ran, {accepted} were accepted");
            total_handed_back += handed_back;
            progress.step();
        }
        // Not an assertion on timing: a run where shutdown never overlapped
        // a producer would prove nothing, so say so.
        println!("submit racing shutdown: {total_handed_back} jobs handed back over {rounds} rounds");
    });
}

/// Tens of thousands of submit-then-join round trips on an otherwise idle
/// pool: each one needs an idle (spinning or sleeping) worker to notice the
/// job. The watchdog's stall bound bounds each join. On Linux a few hundred
/// more round trips start only once every worker is asleep in the kernel,
/// so each of those needs a real unpark.
#[test]
fn wakeups_on_an_idle_pool_never_time_out() {
    soak_watchdog("idle round trips", |progress| {
        let pool = Pool::builder()
            .workers(2)
            .levels(2)
            .thread_name(|i| format!("stress-wake-{i}"))
            .build()
            .expect("the pool builds");
        for i in 0..scaled(20_000) {
            let handle = pool.submit(Priority::level(i % 2), move || i).expect("the pool is open");
            assert_eq!(handle.join().expect("the job does not panic"), i);
            progress.step();
        }
        #[cfg(target_os = "linux")]
        for i in 0..scaled(200) {
            wait_until_asleep("stress-wake-", 2);
            let handle = pool.submit(Priority::LOW, move || i).expect("the pool is open");
            assert_eq!(handle.join().expect("the job does not panic"), i);
            progress.step();
        }
        pool.shutdown();
    });
}

/// Polls `/proc` until the `workers` threads named `prefix*` are all asleep
/// in the kernel. The pause between polls only saves CPU; nothing depends
/// on its length (the watchdog bounds the wait).
#[cfg(target_os = "linux")]
fn wait_until_asleep(prefix: &str, workers: usize) {
    loop {
        let ours = common::named(prefix);
        if ours.len() == workers && ours.iter().all(|t| t.state == 'S') {
            return;
        }
        thread::sleep(std::time::Duration::from_micros(200));
    }
}
