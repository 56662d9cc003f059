//! Issue 11, "Wrong under preemption", promise 2: an idle pool beside a
//! queued job. design.md: "once a spawn has returned, the count never
//! undercounts the jobs waiting at a level"; sleep.rs: a worker about to
//! park re-checks those counts, so a job whose spawn has returned is never
//! left queued while every worker sleeps.
//!
//! The bug (main at f83de0a): a level's queued count is raised *after* the
//! push. A background spawner pushes job `a` and is descheduled before
//! counting it in (it runs at `SCHED_IDLE` beside two CPU hogs, so for a long
//! while); a worker pops `a` and counts it out. Every later job of that
//! level is then counted one short: the probe's job `p`, submitted and
//! returned, reads as "backlog 0", and the workers park beside it until the
//! background spawner runs again (hundreds of milliseconds in the issue).
//!
//! # The run
//!
//! Two workers, two levels. Four background threads at `SCHED_IDLE`
//! (`common::sched_idle`) spawn no-op LOW jobs; two normal-priority threads
//! spin (the CPU hogs), and one wakes every 50 µs for a short burst of work
//! (its wake-ups preempt a background spawner wherever it is, sometimes
//! between its push and its count-in; the hogs then keep it off the CPU).
//! These sleeps and spins are simulated load: they order nothing, and no
//! assertion depends on them. The test thread, the probe, submits a no-op LOW job
//! `p` per round and polls (a short sleep between reads) until `p` has
//! started, or until the pool looks idle beside it: `p` not started, every
//! worker idle, none busy, LOW backlog 0, on [`IDLE_READS`] reads in a row.
//! Then it checks, as below. The rounds go on for [`RUN_FOR`] or until a
//! check fails.
//!
//! # The oracle, and why it is exact
//!
//! "Every worker parked" cannot be observed exactly from outside: a worker
//! reads as idle from just before it registers to sleep until after it wakes,
//! so a worker descheduled in its re-check, about to find `p`, reads as idle
//! too; and a metrics snapshot is not atomic. Nor is a delay a sound oracle:
//! `p` may legitimately wait behind a slot that a descheduled spawner is
//! still writing (crossbeam's injector makes stealers wait for it), and the
//! tests assert on no duration. What *can* be observed exactly is the cause:
//! the count that the workers' sleep re-check reads hides `p`.
//!
//! So when the pool looks idle beside `p`, the probe holds both workers with
//! two HIGH gate jobs (`common::Gate`: it returns once both have started)
//! and, while they are held, reads whether `p` has started and
//! `Pool::queued(LOW)`. If `p` has not started it is queued, counted by a
//! correct core, so `queued(LOW) >= 1`; a 0 is the violation.
//!
//! * `p` is queued and not held by a worker: a worker that takes a job
//!   starts it before it takes another (no cancellation, no deadline), and
//!   each worker has since taken a gate job; `p`'s start, had it happened,
//!   would be visible (it happens before that worker's gate job reported
//!   its start to the probe). No other thread takes jobs off the queues.
//! * Its spawn has returned: on this same thread, before the read.
//! * While both workers are held nothing is taken off the queues, so the
//!   count can only rise: however the core keeps it (one counter or many),
//!   a read cannot catch it between a job's removal and its count-out.
//!
//! The idle-looking trigger is only a heuristic for *when* to check; it does
//! not take part in the verdict.
//!
//! The ignored `background_at_another_level_control` runs the same threads
//! with the background jobs at HIGH, so the probe is the only thread spawning
//! at LOW and nothing can hide its job: it passes on main.

mod common;

use std::hint::spin_loop;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use common::{BOUND, Gate, Progress, sched_idle, soak_watchdog};
use priopool::{Pool, Priority};

/// How long the probe keeps submitting, unless a check fails first.
const RUN_FOR: Duration = Duration::from_secs(8);

/// Background spawner threads, at `SCHED_IDLE`.
const BACKGROUND: usize = 4;

/// Threads that spin at normal priority.
const HOGS: usize = 2;

/// Normal-priority threads that wake every [`TICK`] for a short burst of
/// work: each wake-up preempts a background spawner at once, wherever it is.
const TICKERS: usize = 1;
const TICK: Duration = Duration::from_micros(50);

/// How many reads in a row must find the pool idle beside `p` before the
/// probe checks.
const IDLE_READS: usize = 3;

/// The pause between two reads of the probe's polling loop.
const POLL: Duration = Duration::from_micros(50);

/// `Metrics::levels` index of LOW in a two-level pool.
const LOW: usize = 1;

/// What a run saw.
struct Seen {
    rounds: u64,
    checks: u64,
    /// The first failed check.
    hidden: Option<String>,
}

/// The run of the module docs; the background spawners spawn at
/// `background` (LOW, or HIGH for the control).
fn run(background: Priority, progress: &Progress) -> Seen {
    let pool = Pool::builder().workers(2).levels(2).build().expect("build");
    let stop = Arc::new(AtomicBool::new(false));
    let mut threads = Vec::new();
    for _ in 0..BACKGROUND {
        let (spawner, stop) = (pool.spawner(), Arc::clone(&stop));
        threads.push(thread::spawn(move || {
            sched_idle();
            while !stop.load(Ordering::Relaxed) {
                spawner.spawn(background, || {}).expect("a background spawn was refused");
            }
        }));
    }
    for _ in 0..HOGS {
        let stop = Arc::clone(&stop);
        threads.push(thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                spin_loop();
            }
        }));
    }

    for _ in 0..TICKERS {
        let stop = Arc::clone(&stop);
        threads.push(thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                // Simulated work: a short burst every [`TICK`].
                thread::sleep(TICK);
                for _ in 0..200 {
                    spin_loop();
                }
            }
        }));
    }
    let mut seen = Seen { rounds: 0, checks: 0, hidden: None };
    let began = Instant::now();
    while began.elapsed() < RUN_FOR && seen.hidden.is_none() {
        let started = Arc::new(AtomicBool::new(false));
        let p = {
            let started = Arc::clone(&started);
            pool.submit(Priority::LOW, move || started.store(true, Ordering::Release)).expect("the probe was refused")
        };
        let mut idle_reads = 0;
        while !started.load(Ordering::Acquire) {
            let metrics = pool.metrics();
            let workers = metrics.workers;
            let idle_beside_p = workers.idle == workers.total && workers.busy == 0 && metrics.levels[LOW].backlog == 0;
            idle_reads = if idle_beside_p { idle_reads + 1 } else { 0 };
            if idle_reads == IDLE_READS {
                seen.checks += 1;
                let gate = Gate::hold(&pool, 2);
                let queued = pool.queued(Priority::LOW).expect("LOW is a level");
                let unstarted = !started.load(Ordering::Acquire);
                gate.release();
                if unstarted && queued == 0 {
                    seen.hidden = Some(format!(
                        "round {}: the pool read \"backlog 0, idle {}, busy 0\" for {IDLE_READS} reads beside the \
                         probe's job, and with both workers then held by gate jobs the job had still not started \
                         yet `queued(LOW)` read 0: the count hides a job whose submit returned ({:?} into the run)",
                        seen.rounds,
                        workers.idle,
                        began.elapsed(),
                    ));
                }
                break;
            }
            // A pause in a polling loop, under the test's watchdog.
            thread::sleep(POLL);
        }
        // `p` ends once it is counted in or found (on main: once the
        // descheduled background spawner counts its own job in).
        p.join_timeout(BOUND).unwrap_or_else(|e| panic!("the probe's job did not end within {BOUND:?}: {e:?}"));
        seen.rounds += 1;
        progress.step();
    }
    stop.store(true, Ordering::Relaxed);
    for thread in threads {
        thread.join().expect("a background thread panicked");
    }
    pool.shutdown();
    seen
}

fn check(background: Priority) {
    let seen = soak_watchdog("an idle pool beside a queued job", move |progress| run(background, &progress));
    if let Some(hidden) = seen.hidden {
        panic!("{hidden}; {} checks in {} rounds", seen.checks, seen.rounds);
    }
}

#[test]
fn the_backlog_never_hides_a_job_whose_submit_returned() {
    check(Priority::LOW);
}

/// The control: the background spawners spawn HIGH jobs, so the probe is
/// the only thread that spawns at LOW and nothing can hide its job from
/// LOW's count; passes on the buggy f83de0a too.
#[test]
#[ignore = "control for the oracle: passes on the buggy f83de0a too"]
fn background_at_another_level_control() {
    check(Priority::HIGH);
}
