//! Issue 11, "Wrong under preemption", promise 3: the shutdown sweep.
//! `Pool::shutdown_now` "cancels every queued job (its closure is dropped
//! and its handle yields `JobError::Cancelled` before this returns)";
//! `Pool::shutdown_timeout`, once its timeout has passed, cancels "every job
//! still queued ... as `Pool::shutdown_now`", and its report counts "the
//! queued jobs cancelled, per level (those cancelled before the call
//! returned)" (src/runtime/abort.rs).
//!
//! The bug (main at f83de0a): the sweep stops when every level's queued
//! count reads 0, and a count is raised *after* the push. Producer A pushes
//! job `a` and is preempted before counting it in; producer B pushes `b`,
//! counts it in and returns; the sweep takes `a` (the count covers one job),
//! counts it out, reads 0 and stops, leaving `b` queued although its submit
//! returned before the shutdown began. With the only worker blocked, `b`'s
//! handle does not finish and the report's count misses it.
//!
//! # A round
//!
//! One worker, held by a gate job; [`PRODUCERS`] threads submit no-op jobs,
//! half at each level, until refused (or [`PER_PRODUCER`] of them). The test
//! thread pauses a random while of up to [`MAX_PAUSE`], submits one more job
//! itself and calls `shutdown_timeout(Duration::ZERO)` or `shutdown_now()`.
//! The rounds go on until [`ROUNDS`] rounds, [`RUN_FOR`] or the first miss.
//!
//! The producers run at nice 4 (`common::lower_priority`) and the test
//! thread at normal priority, so that its wake-up from the pause preempts a
//! producer wherever that one is, sometimes between its push and its
//! count-in, and the call lands while they still submit. The pause orders
//! nothing and no assertion depends on it.
//!
//! # The oracle, and why it is exact
//!
//! Which submits returned before the call began: right after its `submit`
//! returned `Ok`, a producer reads the round's `began` flag with a
//! read-modify-write (`fetch_or(false)`, `AcqRel`); the test thread sets it
//! with a `swap` (`AcqRel`) just before the call. Both are read-modify-writes
//! of one flag, so one comes first in its modification order: a producer
//! that read `false` came first, and the test thread's swap read from it
//! (a release sequence), so that submit's return *happens before* the call.
//! (A producer that read `true` may have returned before the call too; it
//! is only not checked.) Those jobs are *early*.
//!
//! * `shutdown_timeout(0)` (the gate is still closed when it returns): every
//!   early job was queued when the call began (its submit had returned and
//!   the only worker was inside the gate job), and nothing but the sweep
//!   takes jobs off the queues while the worker is held, so each early
//!   handle must have finished, cancelled, when the call returns. That is
//!   checked right after it returns, gate still closed: no bound, no timing.
//!   The report's count at each level must be at least the early jobs of
//!   that level and at most the handles of that level then finished (it
//!   counts the jobs the sweep cancelled before returning, and each of those
//!   handles had finished by then).
//! * `shutdown_now()` waits for the running gate job, so a helper thread
//!   opens the gate once every early handle has finished, and fails the round
//!   if one has not within [`CASE_BOUND`] (a sweep takes microseconds; a
//!   missed job would wait behind the blocked worker for ever). The counts
//!   it returns must equal, at each level, the handles of that level that
//!   ended cancelled: every job it cancelled, before or after the sweep, is
//!   counted, and it returns after the drain.
//!
//! In both cases, once the gate is open every handle must end (run or
//! cancelled) within [`BOUND`].
//!
//! The ignored `one_producer_control` runs the same rounds with a single
//! producer (level 0; the test thread's own job goes to level 1), so each
//! level has one spawning thread, whose jobs cannot hide one another from
//! the count: it passes on main, which shows that the oracle flags the
//! hidden job and nothing else.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier, mpsc};
use std::thread;
use std::time::{Duration, Instant};

use common::{BOUND, CASE_BOUND, Gate, Progress, lower_priority, soak_watchdog};
use priopool::{JobError, JobHandle, JoinTimeoutError, Pool, Priority, ShutdownReport};

/// Producers per round.
const PRODUCERS: usize = 8;

/// Rounds per test, unless a miss or [`RUN_FOR`] ends it first.
const ROUNDS: usize = 4_000;

/// No round begins after this long.
const RUN_FOR: Duration = Duration::from_secs(8);

/// A producer submits at most this many jobs in a round (it stops earlier
/// when refused).
const PER_PRODUCER: usize = 512;

/// The test thread's pause before it submits the last early job and calls
/// the shutdown: random, up to this long.
const MAX_PAUSE: Duration = Duration::from_micros(100);

#[derive(Clone, Copy, Debug)]
enum Call {
    /// `shutdown_timeout(Duration::ZERO)`.
    TimeoutZero,
    /// `shutdown_now()`.
    Now,
}

/// One accepted job.
struct Submitted {
    level: usize,
    /// Its submit returned before the shutdown call began.
    early: bool,
    handle: JobHandle<()>,
}

/// How a job ended.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum End {
    Ran,
    Cancelled,
}

/// Waits at most `bound` for `handle`.
fn end(handle: JobHandle<()>, bound: Duration) -> Result<End, String> {
    match handle.join_timeout(bound) {
        Ok(()) => Ok(End::Ran),
        Err(JoinTimeoutError::Job(JobError::Cancelled)) => Ok(End::Cancelled),
        Err(JoinTimeoutError::TimedOut(_)) => Err(format!("a handle did not finish within {bound:?}")),
        Err(other) => Err(format!("a no-op job ended with {other:?}")),
    }
}

/// Per-level tallies.
type PerLevel = [usize; 2];

fn per_level(jobs: &[Submitted], mut keep: impl FnMut(&Submitted) -> bool) -> PerLevel {
    let mut counts = [0; 2];
    for job in jobs.iter().filter(|job| keep(job)) {
        counts[job.level] += 1;
    }
    counts
}

/// One round (see the module docs). `Err` describes a broken promise.
fn round(call: Call, producers: usize, rng: &mut fastrand::Rng) -> Result<(), String> {
    // The test thread's own job: at a level no producer uses in the control.
    let last_level = usize::from(producers == 1);
    let pool = Pool::builder().workers(1).levels(2).build().expect("build");
    let gate = Gate::hold(&pool, 1);
    let began = Arc::new(AtomicBool::new(false));
    let start = Arc::new(Barrier::new(producers + 1));
    let threads: Vec<_> = (0..producers)
        .map(|p| {
            let (spawner, began, start) = (pool.spawner(), Arc::clone(&began), Arc::clone(&start));
            thread::spawn(move || {
                // At nice 4 (see `common::lower_priority`): the test thread
                // calls the shutdown while they still submit, and preempts
                // them wherever they are. It changes nothing else.
                lower_priority();
                let level = p % 2;
                let mut mine = Vec::new();
                start.wait();
                for _ in 0..PER_PRODUCER {
                    let Ok(handle) = spawner.submit(Priority::level(level), || ()) else { break };
                    let early = !began.fetch_or(false, Ordering::AcqRel);
                    mine.push(Submitted { level, early, handle });
                }
                mine
            })
        })
        .collect();
    let collect = move || -> Vec<Submitted> {
        threads.into_iter().flat_map(|thread| thread.join().expect("a producer panicked")).collect()
    };
    // For `shutdown_now`, which waits for the gate job: the thread that opens
    // the gate once every early handle has finished (or after `CASE_BOUND`),
    // started before the race so that starting it does not delay the call.
    let (last_tx, last_rx) = mpsc::channel();
    let (gate, collect, opener) = match call {
        Call::TimeoutZero => (Some(gate), Some(collect), None),
        Call::Now => (
            None,
            None,
            Some(thread::spawn(move || {
                let mut jobs = collect();
                jobs.push(Submitted { level: last_level, early: true, handle: last_rx.recv().expect("no last job") });
                let waited = Instant::now();
                let missed = loop {
                    let missed = per_level(&jobs, |job| job.early && !job.handle.is_finished());
                    if missed == [0, 0] || waited.elapsed() > CASE_BOUND {
                        break missed;
                    }
                    // A pause in a polling loop under the round's bound.
                    thread::sleep(Duration::from_micros(100));
                };
                gate.release();
                (jobs, missed)
            })),
        ),
    };

    start.wait();
    thread::sleep(MAX_PAUSE.mul_f64(rng.f64()));
    let last = pool.submit(Priority::level(last_level), || ()).expect("the last early job was refused");
    began.swap(true, Ordering::AcqRel);
    let last = match call {
        Call::TimeoutZero => Some(last),
        Call::Now => {
            last_tx.send(last).expect("the gate opener is gone");
            None
        }
    };
    match (gate, collect, opener) {
        (Some(gate), Some(collect), _) => {
            let report = pool.shutdown_timeout(Duration::ZERO);
            // Refused from now on: the producers stop at their next submit.
            let mut jobs = collect();
            jobs.push(Submitted { level: last_level, early: true, handle: last.expect("the last early job") });
            // The gate is still closed: nothing but the sweep has taken a job.
            let early = per_level(&jobs, |job| job.early);
            let missed = per_level(&jobs, |job| job.early && !job.handle.is_finished());
            let finished = per_level(&jobs, |job| job.handle.is_finished());
            gate.release();
            let ends = jobs.into_iter().map(|job| end(job.handle, BOUND)).collect::<Result<Vec<_>, _>>()?;
            if missed != [0, 0] {
                return Err(format!(
                    "shutdown_timeout(0) returned with {missed:?} (per level) of the {early:?} jobs whose submit \
                     returned before it began still queued: the sweep left them behind the blocked worker ({} jobs \
                     in the round)",
                    ends.len()
                ));
            }
            let ShutdownReport::TimedOut { cancelled, .. } = report else {
                return Err(format!("shutdown_timeout(0) with the worker held reported {report:?}"));
            };
            for level in 0..2 {
                let counted = cancelled.by_level()[level];
                if counted < early[level] || counted > finished[level] {
                    return Err(format!(
                        "the report counts {counted} cancelled at level {level}: not between the {} early jobs and \
                         the {} handles finished when it returned",
                        early[level], finished[level]
                    ));
                }
            }
        }
        (_, _, Some(opener)) => {
            let cancelled = pool.shutdown_now();
            let (jobs, missed) = opener.join().expect("the gate opener panicked");
            let early = per_level(&jobs, |job| job.early);
            let levels: Vec<usize> = jobs.iter().map(|job| job.level).collect();
            let ends = jobs.into_iter().map(|job| end(job.handle, BOUND)).collect::<Result<Vec<_>, _>>()?;
            if missed != [0, 0] {
                return Err(format!(
                    "{missed:?} (per level) of the {early:?} jobs whose submit returned before shutdown_now began \
                     were still queued {CASE_BOUND:?} later, with the only worker blocked: the sweep left them ({} \
                     jobs in the round)",
                    ends.len()
                ));
            }
            let mut ended_cancelled = [0; 2];
            for (level, end) in levels.into_iter().zip(ends) {
                if end == End::Cancelled {
                    ended_cancelled[level] += 1;
                }
            }
            if cancelled.by_level() != ended_cancelled {
                return Err(format!(
                    "shutdown_now counted {:?} cancelled (per level), but {ended_cancelled:?} handles ended \
                     cancelled",
                    cancelled.by_level()
                ));
            }
        }
        _ => unreachable!("a round has a gate or an opener"),
    }
    Ok(())
}

fn rounds(call: Call, producers: usize) {
    soak_watchdog("rounds of shutdown racing producers", move |progress: Progress| {
        let mut rng = fastrand::Rng::with_seed(0x11_0003);
        let began = Instant::now();
        for n in (0..ROUNDS).take_while(|_| began.elapsed() < RUN_FOR) {
            if let Err(broken) = round(call, producers, &mut rng) {
                panic!("round {n} of {ROUNDS} ({call:?}, {producers} producers): {broken}");
            }
            progress.step();
        }
    });
}

#[test]
fn shutdown_timeout_zero_cancels_every_job_submitted_before_it() {
    rounds(Call::TimeoutZero, PRODUCERS);
}

#[test]
fn shutdown_now_cancels_every_job_submitted_before_it() {
    rounds(Call::Now, PRODUCERS);
}

/// The control: one producer cannot hide a job from the count (see the
/// module docs); passes on the buggy f83de0a too.
#[test]
#[ignore = "control for the oracle: passes on the buggy f83de0a too"]
fn one_producer_control() {
    rounds(Call::TimeoutZero, 1);
    rounds(Call::Now, 1);
}
