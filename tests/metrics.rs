//! `Pool::metrics`: the bounds every snapshot keeps while jobs race the
//! reader, exact counts at rest, worker states, steals and queue waits.
//!
//! Known to catch reading `submitted` first, as a direct counter would be
//! (2 runs in 3); a cancelled or expired job counted as started and
//! completed (four tests); and `cancelled + expired` left out of the
//! derived `submitted`.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use priopool::{CancelOutcome, JobError, JobOutcome, Metrics, Pool, Priority, SpawnErrorKind, Spawner};

mod common;

use common::{
    LONG_BOUND, Latch, MARKER as DELIBERATE, OnDrop, quiet_intentional_panics as quiet_deliberate_panics, watchdog,
};

/// The bounds of `Metrics`, and that no count went down since `prev`.
/// `workers`: the largest size the pool may have, and the most worker
/// threads it may have at once.
fn check_sample(m: &Metrics, prev: Option<&Metrics>, workers: usize) {
    check_sample_with(m, prev, workers, workers);
}

/// As [`check_sample`], for a pool whose threads present (`total`) may
/// outnumber its largest size (`size`): while it resizes, workers told to
/// retire stay until they exit, as new ones start.
fn check_sample_with(m: &Metrics, prev: Option<&Metrics>, size: usize, present: usize) {
    let w = &m.workers;
    assert!(w.current <= size && w.total <= present, "{m:?}");
    assert!(w.busy + w.idle <= w.total, "{m:?}");
    assert!(w.retired <= w.started, "{m:?}");
    for (level, l) in m.levels.iter().enumerate() {
        assert!(l.completed + l.panicked <= l.started, "level {level}: {l:?}");
        assert!(l.started + l.cancelled + l.expired + l.backlog + l.rejected <= l.submitted, "level {level}: {l:?}");
        if let Some(wait) = &l.wait {
            assert!(wait.count <= l.started, "level {level}: {l:?}");
            assert!(wait.p50_us <= wait.p99_us && wait.p99_us <= wait.max_us, "level {level}: {l:?}");
        }
        if let Some(oldest) = l.oldest_wait {
            assert!(oldest <= m.uptime, "level {level}: {l:?}, uptime {:?}", m.uptime);
        }
        if let Some(p) = prev.map(|p| &p.levels[level]) {
            let now = [l.submitted, l.started, l.completed, l.panicked, l.rejected, l.cancelled, l.expired];
            let before = [p.submitted, p.started, p.completed, p.panicked, p.rejected, p.cancelled, p.expired];
            assert!(now.iter().zip(&before).all(|(n, b)| n >= b), "level {level} went back: {p:?} then {l:?}");
        }
    }
    if let Some(p) = prev {
        assert!(m.workers.steals >= p.workers.steals && m.hook_panics >= p.hook_panics);
        assert!(w.started >= p.workers.started && w.retired >= p.workers.retired, "{:?} then {w:?}", p.workers);
        assert!(m.uptime >= p.uptime);
    }
}

/// At rest: every job offered at a level is in exactly one final figure.
fn check_at_rest(m: &Metrics) {
    for (level, l) in m.levels.iter().enumerate() {
        assert_eq!((l.backlog, l.running()), (0, 0), "not at rest, level {level}: {l:?}");
        assert_eq!(
            l.submitted,
            l.completed + l.panicked + l.cancelled + l.expired + l.rejected,
            "at rest, level {level}: {l:?}"
        );
        assert_eq!(l.started, l.completed + l.panicked, "at rest, level {level}: {l:?}");
    }
}

/// A sampler thread that checks every snapshot it takes (see
/// [`check_sample`]) until stopped; returns how many it took.
struct Sampler {
    stop: Arc<AtomicBool>,
    thread: thread::JoinHandle<u64>,
}

impl Sampler {
    fn start(spawner: &Spawner, workers: usize) -> Sampler {
        Sampler::start_with(spawner, workers, workers)
    }

    /// As [`Sampler::start`], with the bounds of [`check_sample_with`].
    /// Returns once the sampler has taken its first sample, so that it is
    /// running during whatever the test does next.
    fn start_with(spawner: &Spawner, size: usize, present: usize) -> Sampler {
        let stop = Arc::new(AtomicBool::new(false));
        let (running_tx, running_rx) = mpsc::channel();
        let thread = thread::spawn({
            let (spawner, stop) = (spawner.clone(), Arc::clone(&stop));
            move || {
                let mut prev: Option<Metrics> = None;
                let mut samples = 0u64;
                loop {
                    let m = spawner.metrics();
                    check_sample_with(&m, prev.as_ref(), size, present);
                    prev = Some(m);
                    samples += 1;
                    if samples == 1 {
                        running_tx.send(()).expect("test alive");
                    }
                    if stop.load(Ordering::Acquire) {
                        return samples;
                    }
                }
            }
        });
        running_rx.recv().expect("the sampler took its first sample");
        Sampler { stop, thread }
    }

    fn stop(self) -> u64 {
        self.stop.store(true, Ordering::Release);
        self.thread.join().expect("sampler")
    }
}

/// Polls the pool's metrics (yielding in between) until `done` holds; the
/// caller's watchdog bounds the wait. Only for states the pool reaches on
/// its own (workers retiring, queues draining), never to order events.
fn wait_for_metrics(spawner: &Spawner, done: impl Fn(&Metrics) -> bool) -> Metrics {
    loop {
        let m = spawner.metrics();
        if done(&m) {
            return m;
        }
        thread::yield_now();
    }
}

const SUBMITTERS: usize = 8;
const JOBS_PER_SUBMITTER: usize = 10_000;
const LEVELS: usize = 3;
const WORKERS: usize = 4;

/// Eight threads spawn and submit 10,000 jobs each (a few of them panic)
/// while another thread samples the metrics as fast as it can, through the
/// shutdown too. Every sample keeps the bounds; the final counts are exact.
fn racing_readers(wait_metrics: bool) {
    quiet_deliberate_panics();
    let pool = Pool::builder()
        .workers(WORKERS)
        .levels(LEVELS)
        .wait_metrics(wait_metrics)
        .panic_handler(|_| {})
        .build()
        .expect("build");
    let spawner = pool.spawner();
    let sampler = Sampler::start(&spawner, WORKERS);

    // Job i of submitter t runs at level (t + i) % LEVELS; every 2,500th
    // panics, every 10th is submitted (with a handle) rather than spawned.
    let kind = |t: usize, i: usize| ((t + i) % LEVELS, i % 2_500 == 7, i % 10 == 3);
    let submitters: Vec<_> = (0..SUBMITTERS)
        .map(|t| {
            let spawner = spawner.clone();
            thread::spawn(move || {
                let mut handles = Vec::new();
                for i in 0..JOBS_PER_SUBMITTER {
                    let (level, panics, submit) = kind(t, i);
                    let job = move || {
                        if panics {
                            std::panic::panic_any(DELIBERATE);
                        }
                    };
                    if submit {
                        handles.push(spawner.submit(Priority::level(level), job).expect("submit"));
                    } else {
                        spawner.spawn(Priority::level(level), job).expect("spawn");
                    }
                }
                handles.into_iter().map(|h| h.join()).filter(Result::is_err).count()
            })
        })
        .collect();
    let handle_panics: usize = submitters.into_iter().map(|s| s.join().expect("submitter")).sum();
    pool.shutdown();
    for level in 0..LEVELS {
        let refused = spawner.spawn(Priority::level(level), || {}).expect_err("spawn after shutdown");
        assert_eq!(refused.kind(), SpawnErrorKind::Shutdown);
    }
    let samples = sampler.stop();
    eprintln!("racing readers: {samples} samples");

    let mut expected = [(0u64, 0u64); LEVELS]; // (jobs, panics) per level
    let mut expected_handle_panics = 0;
    for t in 0..SUBMITTERS {
        for i in 0..JOBS_PER_SUBMITTER {
            let (level, panics, submit) = kind(t, i);
            expected[level].0 += 1;
            expected[level].1 += u64::from(panics);
            expected_handle_panics += usize::from(panics && submit);
        }
    }
    assert_eq!(handle_panics, expected_handle_panics);

    let m = spawner.metrics();
    check_sample(&m, None, WORKERS);
    check_at_rest(&m);
    assert_eq!((m.workers.total, m.workers.busy, m.workers.idle), (0, 0, 0), "every worker has exited");
    assert_eq!((m.workers.current, m.workers.started, m.workers.retired), (0, WORKERS as u64, 0), "{m:?}");
    assert_eq!(m.hook_panics, 0);
    for (level, l) in m.levels.iter().enumerate() {
        let (jobs, panics) = expected[level];
        assert_eq!(l.submitted, jobs + 1, "level {level}: {l:?}");
        assert_eq!(l.rejected, 1, "level {level}: {l:?}");
        assert_eq!((l.started, l.completed, l.panicked), (jobs, jobs - panics, panics), "level {level}: {l:?}");
        assert_eq!((l.cancelled, l.expired), (0, 0), "level {level}: {l:?}");
        assert_eq!(l.backlog, 0);
        assert_eq!(l.submitted, l.completed + l.panicked + l.rejected, "at rest, level {level}: {l:?}");
        assert_eq!(l.running(), 0);
        match &l.wait {
            Some(wait) => assert_eq!(wait.count, jobs, "one wait per started job"),
            None => assert!(!wait_metrics),
        }
        assert_eq!(l.oldest_wait, wait_metrics.then_some(Duration::ZERO));
    }
}

#[test]
fn racing_readers_see_consistent_counts() {
    watchdog("racing readers, wait metrics off", 2 * LONG_BOUND, || racing_readers(false));
}

#[test]
fn racing_readers_see_consistent_counts_and_waits() {
    watchdog("racing readers, wait metrics on", 2 * LONG_BOUND, || racing_readers(true));
}

#[test]
fn busy_and_idle_workers_are_counted() {
    watchdog("busy and idle workers", LONG_BOUND, || {
        let pool = Pool::builder().workers(2).build().expect("build");
        let (started_tx, started_rx) = mpsc::channel();
        let mut releases = Vec::new();
        for _ in 0..2 {
            let started = started_tx.clone();
            let (release_tx, release_rx) = mpsc::channel::<()>();
            releases.push(release_tx);
            // Each job holds its worker until released, so both jobs run at
            // once, one on each worker.
            pool.spawn(Priority::HIGH, move || {
                started.send(()).expect("test alive");
                release_rx.recv().expect("test alive");
            })
            .expect("spawn");
        }
        started_rx.recv().expect("a job started");
        started_rx.recv().expect("the other job started");
        let m = pool.metrics();
        assert_eq!((m.workers.total, m.workers.busy, m.workers.idle), (2, 2, 0), "{m:?}");
        assert_eq!(m.levels[0].running(), 2, "{m:?}");
        for release in releases {
            release.send(()).expect("job alive");
        }
        // With nothing left to do both workers park; the watchdog bounds
        // the wait.
        while pool.metrics().workers.idle < 2 {
            thread::yield_now();
        }
        let m = pool.metrics();
        assert_eq!((m.workers.busy, m.levels[0].completed), (0, 2), "{m:?}");
        pool.shutdown();
    });
}

#[test]
fn a_held_worker_is_busy_and_the_level_behind_it_starves() {
    watchdog("starvation", LONG_BOUND, || {
        let pool = Pool::builder().workers(1).levels(2).wait_metrics(true).build().expect("build");
        let (started_tx, started_rx) = mpsc::channel();
        let (release_tx, release_rx) = mpsc::channel::<()>();
        pool.spawn(Priority::HIGH, move || {
            started_tx.send(()).expect("test alive");
            release_rx.recv().expect("test alive");
        })
        .expect("spawn");
        started_rx.recv().expect("the high job started");

        let before_spawn = Instant::now();
        pool.spawn(Priority::LOW, || {}).expect("spawn");
        let after_spawn = Instant::now();
        let waited_at_least = after_spawn.elapsed();
        let m = pool.metrics();
        let waited_at_most = before_spawn.elapsed();

        assert_eq!((m.workers.total, m.workers.busy, m.workers.idle), (1, 1, 0), "{m:?}");
        let low = &m.levels[1];
        assert_eq!((low.backlog, low.started), (1, 0), "{low:?}");
        // The LOW level started nothing since its job was queued, so the
        // figure is that job's age: between these two causal bounds.
        let oldest = low.oldest_wait.expect("wait metrics are on");
        assert!(
            waited_at_least <= oldest && oldest <= waited_at_most,
            "{waited_at_least:?} {oldest:?} {waited_at_most:?}"
        );
        assert_eq!(m.levels[0].oldest_wait, Some(Duration::ZERO), "nothing queued at HIGH");
        let later = pool.metrics().levels[1].oldest_wait.expect("wait metrics are on");
        assert!(later >= oldest, "a starving level's figure only grows");

        let held_for = after_spawn.elapsed();
        release_tx.send(()).expect("job alive");
        let spawner = pool.spawner();
        pool.shutdown();
        let low = &spawner.metrics().levels[1];
        assert_eq!(low.oldest_wait, Some(Duration::ZERO));
        let wait = low.wait.as_ref().expect("wait metrics are on");
        assert_eq!(wait.count, 1);
        // The LOW job could not start before the HIGH job was released.
        assert!(u128::from(wait.max_us) >= held_for.as_micros(), "{wait:?} vs {held_for:?}");
    });
}

#[test]
fn without_wait_metrics_there_are_no_wait_figures() {
    let pool = Pool::builder().workers(1).build().expect("build");
    pool.submit(Priority::HIGH, || ()).expect("submit").join().expect("join");
    let m = pool.metrics();
    assert!(m.levels.iter().all(|l| l.wait.is_none() && l.oldest_wait.is_none()), "{m:?}");
}

#[test]
fn a_job_taken_from_another_workers_deque_is_a_steal() {
    watchdog("steal", LONG_BOUND, || {
        let pool = Pool::builder().workers(2).build().expect("build");
        let spawner = pool.spawner();
        // The parent pushes the child onto its own worker's deque and then
        // blocks until the child has run, so only the other worker can run
        // it, and only by stealing it. (It blocks on a channel: joining the
        // child's handle would run the child inline, `runtime/help.rs`.)
        let parent = pool
            .submit(Priority::HIGH, move || {
                let (tx, rx) = std::sync::mpsc::channel();
                spawner.spawn(Priority::HIGH, move || tx.send(7).expect("parent alive")).expect("spawn from a job");
                rx.recv().expect("child")
            })
            .expect("submit");
        assert_eq!(parent.join().expect("parent"), 7);
        let spawner = pool.spawner();
        pool.shutdown();
        assert!(spawner.metrics().workers.steals >= 1);
    });
}

#[test]
fn since_covers_the_interval() {
    let pool = Pool::builder().workers(1).wait_metrics(true).build().expect("build");
    pool.submit(Priority::LOW, || ()).expect("submit").join().expect("join");
    let spawner = pool.spawner();
    let first = spawner.metrics();
    for _ in 0..5 {
        pool.spawn(Priority::LOW, || {}).expect("spawn");
    }
    pool.shutdown();
    let window = spawner.metrics().since(&first);
    let low = &window.levels[1];
    // (The first job's completion may fall on either side of `first`: its
    // handle resolves before its worker counts it as completed.)
    assert_eq!((low.submitted, low.started), (5, 5));
    assert_eq!(low.wait.as_ref().map(|w| w.count), Some(5));
}

/// Jobs cancelled through a `JobHandle` or a `CancelHandle` before they
/// start, jobs that expire (by the deadline timer, or found expired by the
/// worker that pops them) and a panicking job: at rest each is counted
/// exactly once, in its own figure at its level; a job that never started
/// is not counted as started and gets no job hook.
#[test]
fn cancelled_and_expired_jobs_are_counted_exactly_at_rest() {
    quiet_deliberate_panics();
    watchdog("cancelled and expired counts", LONG_BOUND, || {
        let befores = Arc::new(AtomicUsize::new(0));
        let afters = Arc::new(Mutex::new((0usize, 0usize))); // (completed, panicked)
        let pool = Pool::builder()
            .workers(1)
            .levels(3)
            .panic_handler(|_| {})
            .before_job({
                let befores = Arc::clone(&befores);
                move |_| {
                    befores.fetch_add(1, Ordering::SeqCst);
                }
            })
            .after_job({
                let afters = Arc::clone(&afters);
                move |_, outcome, _| {
                    let mut afters = afters.lock().expect("lock");
                    match outcome {
                        JobOutcome::Completed => afters.0 += 1,
                        JobOutcome::Panicked => afters.1 += 1,
                        _ => unreachable!("no other outcome yet"),
                    }
                }
            })
            .build()
            .expect("build");
        let spawner = pool.spawner();

        // Hold the only worker, so that everything below waits in a queue.
        let (started_tx, started_rx) = mpsc::channel();
        let release = Latch::new();
        let _release_on_failure = OnDrop({
            let release = release.clone();
            move || release.open()
        });
        pool.spawn(Priority::level(0), {
            let release = release.clone();
            move || {
                started_tx.send(()).expect("test alive");
                release.wait();
            }
        })
        .expect("spawn");
        started_rx.recv().expect("the blocker started");

        // Level 1: twelve jobs; six cancelled before they start (four
        // through their JobHandle, two through a CancelHandle), one panics.
        let mut kept = Vec::new();
        for i in 0..10 {
            let handle = pool
                .submit(Priority::level(1), move || {
                    if i == 9 {
                        std::panic::panic_any(DELIBERATE);
                    }
                })
                .expect("submit");
            if i < 4 {
                assert_eq!(handle.cancel(), CancelOutcome::Prevented);
            } else {
                kept.push(handle);
            }
        }
        for _ in 0..2 {
            let cancel = pool.job(Priority::level(1)).spawn(|| {}).expect("spawn");
            assert_eq!(cancel.cancel(), CancelOutcome::Prevented);
        }

        // Level 2: two plain jobs and four that expire. The first expiring
        // job's closure blocks the timer thread while it is dropped there,
        // so the timer cannot reach the others: the worker finds them
        // expired when it pops them.
        let (dropping_tx, dropping_rx) = mpsc::channel();
        let timer_free = Latch::new();
        // Opens the gate if an assertion fails below, before the pool is
        // dropped (which joins the timer thread).
        let _free_timer_on_failure = OnDrop({
            let timer_free = timer_free.clone();
            move || timer_free.open()
        });
        let stuck = OnDrop({
            let timer_free = timer_free.clone();
            move || {
                let _ = dropping_tx.send(());
                timer_free.wait();
            }
        });
        let first = pool.job(Priority::LOW).max_wait(Duration::ZERO).submit(move || drop(stuck)).expect("submit");
        dropping_rx.recv().expect("the timer expires the first job");
        let expiring: Vec<_> =
            (0..3).map(|_| pool.job(Priority::LOW).max_wait(Duration::ZERO).submit(|| ()).expect("submit")).collect();
        for _ in 0..2 {
            pool.spawn(Priority::LOW, || {}).expect("spawn");
        }

        // The worker is held: nothing started, and the dead entries are
        // still queued (counted in the backlog until they are popped).
        let m = spawner.metrics();
        check_sample(&m, None, 1);
        let (l1, l2) = (&m.levels[1], &m.levels[2]);
        assert_eq!((l1.started, l1.cancelled + l1.backlog), (0, 12), "{l1:?}");
        assert_eq!((l2.started, l2.expired + l2.backlog), (0, 6), "{l2:?}");

        // Release the worker and wait until it has counted all 19 jobs as
        // ended, one way or another (how, is checked below).
        release.open();
        let m = wait_for_metrics(&spawner, |m| {
            m.levels.iter().map(|l| l.completed + l.panicked + l.cancelled + l.expired).sum::<u64>() >= 19
        });
        let check = |m: &Metrics, rejected: u64| {
            check_at_rest(m);
            let summary: Vec<_> = m
                .levels
                .iter()
                .map(|l| (l.submitted, l.started, l.completed, l.panicked, l.cancelled, l.expired, l.rejected))
                .collect();
            assert_eq!(
                summary,
                [
                    (1 + rejected, 1, 1, 0, 0, 0, rejected),
                    (12 + rejected, 6, 5, 1, 6, 0, rejected),
                    (6 + rejected, 2, 2, 0, 0, 4, rejected),
                ],
                "(submitted, started, completed, panicked, cancelled, expired, rejected) per level"
            );
        };
        check(&m, 0);

        // Only the nine jobs that ran got their hooks.
        assert_eq!(befores.load(Ordering::SeqCst), 9);
        assert_eq!(*afters.lock().expect("lock"), (8, 1));

        for handle in kept {
            assert!(matches!(handle.join(), Ok(()) | Err(JobError::Panicked(_))));
        }
        for handle in expiring {
            assert!(matches!(handle.join(), Err(JobError::Expired)));
        }
        timer_free.open();
        assert!(matches!(first.join(), Err(JobError::Expired)));
        pool.shutdown();
        for level in 0..3 {
            spawner.spawn(Priority::level(level), || {}).expect_err("spawn after shutdown");
        }
        check(&spawner.metrics(), 1);
    });
}

/// `shutdown_now`: the jobs its sweep cancels, the dead entries of jobs
/// cancelled or expired earlier that it discards, and the jobs that running
/// jobs spawn during it (cancelled by the workers, or by the sweep) are
/// each counted once; the counts match its report.
#[test]
fn shutdown_now_counts_every_job_it_cancels_or_discards() {
    watchdog("shutdown_now counts", LONG_BOUND, || {
        const HELD: usize = 2;
        const CHILDREN: usize = 3;
        let pool = Pool::builder().workers(HELD).levels(2).build().expect("build");
        let spawner = pool.spawner();

        // Hold both workers; once released, each spawns children (accepted,
        // since a running job spawns them, and then cancelled).
        let (started_tx, started_rx) = mpsc::channel();
        let release = Latch::new();
        let _release_on_failure = OnDrop({
            let release = release.clone();
            move || release.open()
        });
        for _ in 0..HELD {
            let (started_tx, release, spawner) = (started_tx.clone(), release.clone(), spawner.clone());
            pool.spawn(Priority::HIGH, move || {
                started_tx.send(()).expect("test alive");
                release.wait();
                for _ in 0..CHILDREN {
                    spawner.spawn(Priority::LOW, || unreachable!("spawned during shutdown_now")).expect("from a job");
                }
            })
            .expect("spawn");
        }
        for _ in 0..HELD {
            started_rx.recv().expect("a blocker started");
        }

        // Queued: HIGH 5 (2 cancelled through their handles first); LOW 7
        // plain and 2 expired by the timer. Every closure still queued
        // reports when it is dropped.
        let (dropped_tx, dropped_rx) = mpsc::channel();
        let guard = || {
            let dropped_tx = dropped_tx.clone();
            OnDrop(move || {
                let _ = dropped_tx.send(());
            })
        };
        for i in 0..5 {
            if i < 2 {
                let handle = pool.submit(Priority::HIGH, || unreachable!("cancelled")).expect("submit");
                assert_eq!(handle.cancel(), CancelOutcome::Prevented);
            } else {
                let guard = guard();
                pool.spawn(Priority::HIGH, move || drop(guard)).expect("spawn");
            }
        }
        for _ in 0..7 {
            let guard = guard();
            pool.spawn(Priority::LOW, move || drop(guard)).expect("spawn");
        }
        for _ in 0..2 {
            let expired = pool.job(Priority::LOW).max_wait(Duration::ZERO).submit(|| ()).expect("submit");
            assert!(matches!(expired.join(), Err(JobError::Expired)));
        }

        let stopper = thread::spawn(move || pool.shutdown_now());
        // The sweep has begun (and the pool is aborting) once a queued
        // closure is dropped; only then may the blockers spawn children.
        for _ in 0..3 + 7 {
            dropped_rx.recv().expect("the sweep drops every queued closure");
        }
        release.open();
        let report = stopper.join().expect("shutdown_now");
        assert_eq!(report.by_level(), [3, 7 + HELD * CHILDREN]);

        let m = spawner.metrics();
        check_sample(&m, None, HELD);
        check_at_rest(&m);
        let (high, low) = (&m.levels[0], &m.levels[1]);
        let children = (HELD * CHILDREN) as u64;
        assert_eq!(
            (high.submitted, high.started, high.completed, high.cancelled, high.expired),
            (HELD as u64 + 5, HELD as u64, HELD as u64, 3 + 2, 0),
            "{high:?}"
        );
        assert_eq!(
            (low.submitted, low.started, low.cancelled, low.expired),
            (7 + 2 + children, 0, 7 + children, 2),
            "{low:?}"
        );
    });
}

/// Per level: (offered, completed, panicked, cancelled, expired).
type Tally = [(u64, u64, u64, u64, u64); LEVELS];

/// Submitters mix plain spawns, jobs cancelled right after they are queued
/// (through a `JobHandle` or a `CancelHandle`), jobs whose deadline has
/// already passed and jobs with a short queue-wait limit, a few of them
/// panicking, while a sampler checks every snapshot. Each job's fate is
/// learned from its handle (or its cancel's answer); at rest the metrics
/// must agree with those fates exactly, level by level.
#[test]
fn racing_readers_see_consistent_counts_with_cancels_and_deadlines() {
    quiet_deliberate_panics();
    watchdog("racing readers with cancels and deadlines", 2 * LONG_BOUND, || {
        const MIXERS: usize = 4;
        const JOBS: usize = 2_500;
        let pool =
            Pool::builder().workers(3).levels(LEVELS).wait_metrics(true).panic_handler(|_| {}).build().expect("build");
        let spawner = pool.spawner();
        let sampler = Sampler::start(&spawner, 3);

        let mixers: Vec<_> = (0..MIXERS)
            .map(|t| {
                let spawner = spawner.clone();
                thread::spawn(move || {
                    let mut tally: Tally = [(0, 0, 0, 0, 0); LEVELS];
                    let mut handles = Vec::new();
                    for i in 0..JOBS {
                        let level = (t + i) % LEVELS;
                        let panics = i % 97 == 5;
                        let job = move || {
                            if panics {
                                std::panic::panic_any(DELIBERATE);
                            }
                        };
                        let priority = Priority::level(level);
                        tally[level].0 += 1;
                        match i % 5 {
                            0 => {
                                spawner.spawn(priority, job).expect("spawn");
                                let counts = &mut tally[level];
                                if panics { counts.2 += 1 } else { counts.1 += 1 }
                            }
                            1 => {
                                let handle = spawner.submit(priority, job).expect("submit");
                                // Prevented, or too late: the handle says which.
                                let _ = handle.cancel();
                                handles.push((level, handle));
                            }
                            2 => {
                                let job = spawner.job(priority).max_wait(Duration::ZERO).submit(job);
                                handles.push((level, job.expect("submit")));
                            }
                            3 => {
                                let wait = Duration::from_micros(fastrand::u64(0..200));
                                handles
                                    .push((level, spawner.job(priority).max_wait(wait).submit(job).expect("submit")));
                            }
                            _ => {
                                let cancel = spawner.job(priority).spawn(job).expect("spawn");
                                let counts = &mut tally[level];
                                match cancel.cancel() {
                                    CancelOutcome::Prevented => counts.3 += 1,
                                    _ if panics => counts.2 += 1,
                                    _ => counts.1 += 1,
                                }
                            }
                        }
                    }
                    for (level, handle) in handles {
                        let counts = &mut tally[level];
                        match handle.join() {
                            Ok(()) => counts.1 += 1,
                            Err(JobError::Panicked(_)) => counts.2 += 1,
                            Err(JobError::Cancelled) => counts.3 += 1,
                            Err(JobError::Expired) => counts.4 += 1,
                            Err(other) => panic!("unexpected {other:?}"),
                        }
                    }
                    tally
                })
            })
            .collect();
        let mut expected: Tally = [(0, 0, 0, 0, 0); LEVELS];
        for mixer in mixers {
            for (total, counts) in expected.iter_mut().zip(mixer.join().expect("mixer")) {
                *total = (
                    total.0 + counts.0,
                    total.1 + counts.1,
                    total.2 + counts.2,
                    total.3 + counts.3,
                    total.4 + counts.4,
                );
            }
        }
        pool.shutdown();
        let samples = sampler.stop();
        eprintln!("racing readers with cancels and deadlines: {samples} samples");

        let m = spawner.metrics();
        check_sample(&m, None, 3);
        check_at_rest(&m);
        for (level, (l, want)) in m.levels.iter().zip(expected).enumerate() {
            let got = (l.submitted, l.completed, l.panicked, l.cancelled, l.expired);
            assert_eq!(got, want, "level {level}: (submitted, completed, panicked, cancelled, expired)");
            assert!(want.3 > 0 && want.4 > 0, "level {level}: the mix had no cancelled or no expired job: {want:?}");
            assert_eq!(l.wait.as_ref().map(|w| w.count), Some(l.started), "one wait per started job, level {level}");
        }
    });
}

/// Grow from 1 to 4 workers while jobs hold them, shrink back to 1, grow
/// to 3: the worker figures are exact at every point of rest, and a
/// sampler running throughout sees the bounds hold (busy + idle <= total,
/// retired <= started, nothing going back) while workers come and go.
#[test]
fn worker_figures_follow_a_resize() {
    watchdog("worker figures during a resize", LONG_BOUND, || {
        let pool = Pool::builder().workers(1).levels(2).build().expect("build");
        let spawner = pool.spawner();
        let sampler = Sampler::start(&spawner, 4);
        let workers = |m: &Metrics| (m.workers.total, m.workers.current, m.workers.started, m.workers.retired);
        let settled = |size: usize| move |m: &Metrics| m.workers.total == size && m.workers.current == size;

        let m = wait_for_metrics(&spawner, settled(1));
        assert_eq!(workers(&m), (1, 1, 1, 0));

        // Grow to 4 while four jobs hold every worker: all four busy.
        let (started_tx, started_rx) = mpsc::channel();
        let release = Latch::new();
        let _release_on_failure = OnDrop({
            let release = release.clone();
            move || release.open()
        });
        let held: Vec<_> = (0..4)
            .map(|_| {
                let (started_tx, release) = (started_tx.clone(), release.clone());
                pool.submit(Priority::LOW, move || {
                    started_tx.send(()).expect("test alive");
                    release.wait();
                })
                .expect("submit")
            })
            .collect();
        pool.set_workers(4).expect("grow");
        for _ in 0..4 {
            started_rx.recv().expect("a held job started");
        }
        let m = spawner.metrics();
        assert_eq!((workers(&m), m.workers.busy, m.workers.idle), ((4, 4, 4, 0), 4, 0), "{m:?}");

        // Shrink to 1 while they run: nobody can retire before its job ends.
        pool.set_workers(1).expect("shrink");
        let m = spawner.metrics();
        assert_eq!((workers(&m), m.workers.busy), ((4, 4, 4, 0), 4), "{m:?}");
        release.open();
        for handle in held {
            handle.join().expect("held job");
        }
        // (The last held job's handle resolves just before its worker
        // counts it finished: wait for that too.)
        let m = wait_for_metrics(&spawner, |m| settled(1)(m) && m.workers.retired == 3 && m.workers.busy == 0);
        assert_eq!(workers(&m), (1, 1, 4, 3), "{m:?}");

        // Grow to 3 again; jobs keep flowing through the resizes.
        for i in 0..200 {
            pool.spawn(Priority::level(i % 2), || {}).expect("spawn");
        }
        pool.set_workers(3).expect("grow again");
        let m = wait_for_metrics(&spawner, settled(3));
        assert_eq!(workers(&m), (3, 3, 6, 3), "{m:?}");
        assert_eq!(
            (pool.workers(), pool.workers_started(), pool.workers_retired()),
            (3, 6, 3),
            "the snapshot agrees with the pool"
        );

        pool.shutdown();
        let samples = sampler.stop();
        eprintln!("worker figures during a resize: {samples} samples");
        let m = spawner.metrics();
        check_at_rest(&m);
        assert_eq!(workers(&m), (0, 0, 6, 3), "workers that exit at shutdown do not retire: {m:?}");
        let jobs: u64 = m.levels.iter().map(|l| l.completed).sum();
        assert_eq!(jobs, 4 + 200);
    });
}

/// Random resizes (1 to 4 workers) while submitters queue jobs of mixed
/// kinds and a sampler checks every snapshot; at rest the worker figures
/// agree with the pool and the job counts are exact.
#[test]
fn random_resizes_keep_the_bounds_and_exact_counts() {
    watchdog("random resizes", 2 * LONG_BOUND, || {
        const MAX: usize = 4;
        const JOBS: usize = 3_000;
        let pool = Pool::builder().workers(2).levels(LEVELS).build().expect("build");
        let spawner = pool.spawner();
        // Workers told to retire stay in `total` until they exit, while new
        // ones start: with resizes back to back, how many threads are
        // present at once has no useful bound.
        let sampler = Sampler::start_with(&spawner, MAX, usize::MAX);
        let submitter = thread::spawn({
            let spawner = spawner.clone();
            move || {
                let mut cancelled = [0u64; LEVELS];
                for i in 0..JOBS {
                    let priority = Priority::level(i % LEVELS);
                    if i % 3 == 0 {
                        let cancel = spawner.job(priority).spawn(|| {}).expect("spawn");
                        if cancel.cancel() == CancelOutcome::Prevented {
                            cancelled[i % LEVELS] += 1;
                        }
                    } else {
                        spawner.spawn(priority, thread::yield_now).expect("spawn");
                    }
                }
                cancelled
            }
        });
        let mut rng = fastrand::Rng::with_seed(7);
        let mut last = 2;
        while !submitter.is_finished() {
            last = rng.usize(1..=MAX);
            pool.set_workers(last).expect("resize");
            thread::yield_now();
        }
        let cancelled = submitter.join().expect("submitter");

        let m = wait_for_metrics(&spawner, |m| {
            m.workers.total == last && m.workers.current == last && m.workers.started - m.workers.retired == last as u64
        });
        assert_eq!(
            (m.workers.started, m.workers.retired),
            (pool.workers_started() as u64, pool.workers_retired() as u64),
            "the snapshot agrees with the pool: {m:?}"
        );
        pool.shutdown();
        let samples = sampler.stop();
        eprintln!("random resizes: {samples} samples");
        let m = spawner.metrics();
        check_at_rest(&m);
        for (level, l) in m.levels.iter().enumerate() {
            let offered = (JOBS / LEVELS) as u64;
            assert_eq!((l.submitted, l.cancelled, l.expired), (offered, cancelled[level], 0), "level {level}: {l:?}");
        }
        assert_eq!((m.workers.total, m.workers.current), (0, 0));
    });
}
