//! Issue 11, "Wrong under preemption", promise 1: strict priority with
//! several spawners. README: "no low job starts while a high one waits";
//! design.md: "once a spawn has returned, the count never undercounts the
//! jobs waiting at a level".
//!
//! The bug (main at f83de0a): a level's queued count is raised *after* the
//! push. Spawner A pushes HIGH job `a` and is preempted before counting it
//! in; spawner B pushes HIGH job `b`, counts it in and returns; the worker
//! pops `a` (the count covers one job) and counts it out. The count now
//! reads 0 with `b` queued, so the worker starts LOW jobs past `b` until A
//! runs again.
//!
//! # The run
//!
//! One worker; two threads spawn HIGH jobs and a third keeps about
//! [`LOW_BACKLOG`] LOW jobs queued, for [`RUN_FOR`] or until the first
//! violation. The two HIGH spawners play the two parts of the bug, so that
//! its interleaving is frequent rather than a matter of luck:
//!
//! * the *steady* spawner spawns without pausing (at most
//!   [`HIGH_IN_FLIGHT`] HIGH jobs unstarted, so that LOW jobs get to run),
//!   at a lowered priority (`common::lower_priority`, nice 4 on Linux);
//! * the *bursty* spawner pauses between spawns (a short random sleep, then
//!   a short random spin), at normal priority. Each time it wakes it preempts
//!   the steady spawner wherever that one is, sometimes between its push and
//!   its count-in, and then runs for a while: it spawns its own HIGH job
//!   while the worker, on the other CPU, takes the steady spawner's job.
//!
//! The sleep is the spawner's pause, simulated think time: it orders nothing
//! and no assertion depends on it.
//!
//! # The oracle, and why it is exact
//!
//! Each HIGH spawner numbers its jobs 0, 1, 2, ... and, right after `spawn`
//! returned `Ok` for job `j`, publishes `returned = j + 1` (a release
//! store). Each HIGH job sets its own `started` flag. Every job's end (the
//! `after_job` hook) loads each spawner's `returned` (acquire): the *mark*.
//! When the `before_job` hook sees a LOW job start, it is a violation if a
//! HIGH job below the mark that the previous job's end left has not set its
//! `started` flag.
//!
//! No false positive: such a HIGH job `h`'s spawn had returned (the acquire
//! load that read `returned > j` synchronises with the store made after the
//! return) before the previous job ended. A correct core counts `h` from then
//! on, and the pool has one worker, whose next pick began after that end and
//! so found `h` queued and counted. Nobody else takes jobs off the queues
//! (no sweep, no other worker, no cancellation or deadline), and a job a
//! worker takes is started before that worker takes another, so `h` was
//! still queued when the worker picked the LOW job: the pick passed a
//! waiting HIGH job. The job starting now is LOW, so it is not `h`, and
//! every HIGH job that started before it set its flag, on this same worker
//! thread, before this hook ran. A return the previous end did not see only
//! makes the check miss a violation, never invent one. A HIGH job queued
//! behind a slot that a preempted spawner is still writing (crossbeam's
//! injector makes stealers wait for it) is no exception: the worker must
//! wait for it too, not start LOW jobs meanwhile.
//!
//! `one_high_spawner_control` (ignored; run it with `--ignored`) runs the
//! same threads and oracle, but the bursty spawner spawns LOW jobs, so a
//! single thread spawns HIGH jobs and none can hide another (a job popped
//! before its count-in has no later HIGH job counted in behind it): it
//! passes on main, which shows that the oracle flags the hidden job and
//! nothing else.

mod common;

use std::hint::spin_loop;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use common::{Progress, lower_priority, soak_watchdog};
use priopool::{Pool, Priority, Spawner};

/// How long the spawners spawn, unless a violation ends the run first.
const RUN_FOR: Duration = Duration::from_secs(5);

/// At most this many HIGH jobs spawned and not yet started before the
/// steady spawner waits (the HIGH jobs must not starve the LOW ones).
const HIGH_IN_FLIGHT: usize = 16;

/// The most HIGH jobs a spawner may spawn (the size of its flags).
const CAPACITY: usize = 4_000_000;

/// The LOW spawner keeps between half this many and this many LOW jobs
/// queued.
const LOW_BACKLOG: usize = 50;

/// The bursty spawner's pause: a sleep of up to this long, then a spin of
/// up to [`MAX_SPIN`] spin-loop hints after its spawn.
const MAX_SLEEP: Duration = Duration::from_micros(50);
const MAX_SPIN: u32 = 2_000;

/// `JobInfo::level` of a LOW job in a two-level pool.
const LOW_LEVEL: usize = 1;

/// One HIGH spawner's jobs.
struct Spawned {
    /// How many of its spawns have returned: its jobs `0..returned`.
    returned: AtomicUsize,
    /// Set by each job when it starts.
    started: Vec<AtomicBool>,
}

impl Spawned {
    fn new() -> Spawned {
        Spawned { returned: AtomicUsize::new(0), started: (0..CAPACITY).map(|_| AtomicBool::new(false)).collect() }
    }
}

/// The worker's side of the oracle; only the worker thread uses it while
/// the pool runs.
#[derive(Default)]
struct Checker {
    /// Per HIGH spawner: its `returned` as loaded at the end of the last job.
    mark: Vec<usize>,
    /// Per HIGH spawner: every job below this one has started.
    cursor: Vec<usize>,
    low_starts: u64,
    violations: u64,
    /// What the first violation looked like.
    first: Option<String>,
}

impl Checker {
    fn job_ended(&mut self, spawners: &[Spawned]) {
        for (mark, spawned) in self.mark.iter_mut().zip(spawners) {
            *mark = spawned.returned.load(Ordering::Acquire);
        }
    }

    fn low_starting(&mut self, spawners: &[Spawned]) {
        self.low_starts += 1;
        for (s, spawned) in spawners.iter().enumerate() {
            let cursor = &mut self.cursor[s];
            while *cursor < self.mark[s] && spawned.started[*cursor].load(Ordering::Relaxed) {
                *cursor += 1;
            }
            if *cursor < self.mark[s] {
                self.violations += 1;
                if self.first.is_none() {
                    self.first = Some(format!(
                        "LOW start #{} began while HIGH job {} of spawner {s} waited, although that job's spawn had \
                         returned before the previous job ended",
                        self.low_starts, *cursor
                    ));
                }
                return;
            }
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// What every spawner thread shares.
#[derive(Clone)]
struct Shared {
    spawner: Spawner,
    /// The HIGH spawners' jobs: the steady one's first.
    high: Arc<[Spawned]>,
    /// HIGH jobs spawned (or about to be) and not yet started.
    in_flight: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    began: Instant,
    progress: Progress,
}

impl Shared {
    fn running(&self) -> bool {
        !self.stop.load(Ordering::Relaxed) && self.began.elapsed() < RUN_FOR
    }

    /// Spawns HIGH job `j` of HIGH spawner `s` and publishes its return.
    fn spawn_high(&self, s: usize, j: usize) {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        let (high, in_flight, progress) = (Arc::clone(&self.high), Arc::clone(&self.in_flight), self.progress.clone());
        self.spawner
            .spawn(Priority::HIGH, move || {
                high[s].started[j].store(true, Ordering::Relaxed);
                in_flight.fetch_sub(1, Ordering::Relaxed);
                progress.step();
            })
            .expect("a HIGH spawn was refused");
        self.high[s].returned.store(j + 1, Ordering::Release);
    }
}

/// Spawns HIGH jobs without pausing, at a lowered priority.
fn steady(shared: &Shared) {
    lower_priority();
    for j in 0..CAPACITY {
        while shared.in_flight.load(Ordering::Relaxed) >= HIGH_IN_FLIGHT && shared.running() {
            spin_loop();
        }
        if !shared.running() {
            return;
        }
        shared.spawn_high(0, j);
    }
}

/// Spawns with a pause between spawns: HIGH jobs as HIGH spawner 1, or LOW
/// jobs (`high: false`, the control).
fn bursty(shared: &Shared, high: bool) {
    let mut rng = fastrand::Rng::with_seed(0x11_0001);
    for j in 0..CAPACITY {
        thread::sleep(MAX_SLEEP.mul_f64(rng.f64()));
        if !shared.running() {
            return;
        }
        if high {
            shared.spawn_high(1, j);
        } else {
            shared.spawner.spawn(Priority::LOW, || {}).expect("a LOW spawn was refused");
        }
        for _ in 0..rng.u32(0..MAX_SPIN) {
            spin_loop();
        }
    }
}

/// Keeps between `LOW_BACKLOG / 2` and `LOW_BACKLOG` LOW jobs queued,
/// sleeping on a condition variable in between (it must not compete for a
/// CPU while it has nothing to do).
fn keep_low_jobs_queued(spawner: &Spawner, stop: &AtomicBool, backlog: &Arc<(Mutex<usize>, Condvar)>) {
    let (queued, drained) = &**backlog;
    loop {
        let missing = {
            let mut queued = lock(queued);
            while *queued > LOW_BACKLOG / 2 && !stop.load(Ordering::Relaxed) {
                queued = drained.wait(queued).unwrap_or_else(PoisonError::into_inner);
            }
            if stop.load(Ordering::Relaxed) {
                return;
            }
            let missing = LOW_BACKLOG - *queued;
            *queued = LOW_BACKLOG;
            missing
        };
        for _ in 0..missing {
            let backlog = Arc::clone(backlog);
            spawner
                .spawn(Priority::LOW, move || {
                    let (queued, drained) = &*backlog;
                    let mut queued = lock(queued);
                    *queued -= 1;
                    if *queued == LOW_BACKLOG / 2 {
                        drained.notify_one();
                    }
                })
                .expect("a LOW spawn was refused");
        }
    }
}

/// The run of the module docs; `bursty_high: false` is the control. Returns
/// the worker's checker once the pool has drained.
fn run(bursty_high: bool, progress: Progress) -> Checker {
    let high_spawners = if bursty_high { 2 } else { 1 };
    let high: Arc<[Spawned]> = (0..high_spawners).map(|_| Spawned::new()).collect();
    let checker = Arc::new(Mutex::new(Checker {
        mark: vec![0; high_spawners],
        cursor: vec![0; high_spawners],
        ..Checker::default()
    }));
    let stop = Arc::new(AtomicBool::new(false));
    let pool = {
        let (before, after) = (Arc::clone(&checker), Arc::clone(&checker));
        let (before_high, after_high) = (Arc::clone(&high), Arc::clone(&high));
        let stop = Arc::clone(&stop);
        Pool::builder()
            .workers(1)
            .levels(2)
            .before_job(move |info| {
                if info.level == LOW_LEVEL {
                    let mut checker = lock(&before);
                    checker.low_starting(&before_high);
                    if checker.violations > 0 {
                        stop.store(true, Ordering::Relaxed);
                    }
                }
            })
            .after_job(move |_, _, _| lock(&after).job_ended(&after_high))
            .build()
            .expect("build")
    };
    let shared = Shared {
        spawner: pool.spawner(),
        high,
        in_flight: Arc::new(AtomicUsize::new(0)),
        stop: Arc::clone(&stop),
        began: Instant::now(),
        progress,
    };
    let low_backlog = Arc::new((Mutex::new(0), Condvar::new()));
    let low = {
        let (spawner, stop, backlog) = (pool.spawner(), Arc::clone(&stop), Arc::clone(&low_backlog));
        thread::spawn(move || keep_low_jobs_queued(&spawner, &stop, &backlog))
    };
    let spawners = [
        thread::spawn({
            let shared = shared.clone();
            move || steady(&shared)
        }),
        thread::spawn({
            let shared = shared.clone();
            move || bursty(&shared, bursty_high)
        }),
    ];
    for spawner in spawners {
        spawner.join().expect("a HIGH spawner panicked");
    }
    {
        let _queued = lock(&low_backlog.0);
        stop.store(true, Ordering::Relaxed);
        low_backlog.1.notify_all();
    }
    low.join().expect("the LOW spawner panicked");
    pool.shutdown();
    std::mem::take(&mut *lock(&checker))
}

fn check(bursty_high: bool) {
    let checker = soak_watchdog("strict priority with two HIGH spawners", move |progress| run(bursty_high, progress));
    assert_eq!(
        checker.violations,
        0,
        "{} LOW job(s) started while a HIGH job whose spawn had returned waited ({} LOW starts in all); first: {}",
        checker.violations,
        checker.low_starts,
        checker.first.as_deref().unwrap_or("-"),
    );
}

/// Two HIGH spawners: a HIGH job popped before its spawner counted it in
/// must not hide the other spawner's job from the pick.
#[test]
fn no_low_job_starts_while_a_returned_high_spawn_waits() {
    check(true);
}

/// The control: one HIGH spawner (see the module docs); passes on the
/// buggy f83de0a too.
#[test]
#[ignore = "control for the oracle: passes on the buggy f83de0a too"]
fn one_high_spawner_control() {
    check(false);
}
