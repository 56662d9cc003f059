//! `Pool::metrics`: the bounds every snapshot keeps while jobs race the
//! reader, exact counts at rest, worker states, steals and queue waits.
#![cfg(not(loom))] // real threads: see .ci/loom.sh for the models

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Once};
use std::thread;
use std::time::{Duration, Instant};

use priopool::{Metrics, Pool, Priority, SpawnErrorKind};

const DELIBERATE: &str = "deliberate panic (tests/metrics.rs)";

/// Keeps the deliberate panics of these tests off stderr; every other panic
/// (a failing assertion) is reported as usual.
fn quiet_deliberate_panics() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if info.payload().downcast_ref::<&str>() != Some(&DELIBERATE) {
                default(info);
            }
        }));
    });
}

/// Runs `body` on its own thread and fails with `what` if it has not
/// finished after `secs` seconds, instead of hanging the suite.
fn watchdog<T: Send + 'static>(secs: u64, what: &str, body: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    let runner = thread::spawn(move || {
        let _ = tx.send(body());
    });
    match rx.recv_timeout(Duration::from_secs(secs)) {
        Ok(value) => value,
        Err(RecvTimeoutError::Timeout) => panic!("{what}: not done after {secs} s; the pool looks stuck"),
        Err(RecvTimeoutError::Disconnected) => match runner.join() {
            Err(payload) => std::panic::resume_unwind(payload),
            Ok(()) => unreachable!("the body returned without sending"),
        },
    }
}

/// The bounds of `Metrics`, and that no count went down since `prev`.
fn check_sample(m: &Metrics, prev: Option<&Metrics>, workers: usize) {
    assert!(m.workers.total <= workers, "{m:?}");
    assert!(m.workers.busy + m.workers.idle <= m.workers.total, "{m:?}");
    for (level, l) in m.levels.iter().enumerate() {
        assert!(l.completed + l.panicked <= l.started, "level {level}: {l:?}");
        assert!(l.started + l.backlog + l.rejected <= l.submitted, "level {level}: {l:?}");
        if let Some(wait) = &l.wait {
            assert!(wait.count <= l.started, "level {level}: {l:?}");
            assert!(wait.p50_us <= wait.p99_us && wait.p99_us <= wait.max_us, "level {level}: {l:?}");
        }
        if let Some(oldest) = l.oldest_wait {
            assert!(oldest <= m.uptime, "level {level}: {l:?}, uptime {:?}", m.uptime);
        }
        if let Some(p) = prev.map(|p| &p.levels[level]) {
            let now = [l.submitted, l.started, l.completed, l.panicked, l.rejected];
            let before = [p.submitted, p.started, p.completed, p.panicked, p.rejected];
            assert!(now.iter().zip(&before).all(|(n, b)| n >= b), "level {level} went back: {p:?} then {l:?}");
        }
    }
    if let Some(p) = prev {
        assert!(m.workers.steals >= p.workers.steals && m.hook_panics >= p.hook_panics);
        assert!(m.uptime >= p.uptime);
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
    let stop = Arc::new(AtomicBool::new(false));
    let sampler = thread::spawn({
        let (spawner, stop) = (spawner.clone(), Arc::clone(&stop));
        move || {
            let mut prev: Option<Metrics> = None;
            let mut samples = 0u64;
            while !stop.load(Ordering::Acquire) {
                let m = spawner.metrics();
                check_sample(&m, prev.as_ref(), WORKERS);
                prev = Some(m);
                samples += 1;
            }
            samples
        }
    });

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
    stop.store(true, Ordering::Release);
    let samples = sampler.join().expect("sampler");
    assert!(samples > 0);
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
    assert_eq!((m.workers.total, m.workers.busy, m.workers.idle), (0, 0, 0), "every worker has exited");
    assert_eq!(m.hook_panics, 0);
    for (level, l) in m.levels.iter().enumerate() {
        let (jobs, panics) = expected[level];
        assert_eq!(l.submitted, jobs + 1, "level {level}: {l:?}");
        assert_eq!(l.rejected, 1, "level {level}: {l:?}");
        assert_eq!((l.started, l.completed, l.panicked), (jobs, jobs - panics, panics), "level {level}: {l:?}");
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
    watchdog(120, "racing readers, wait metrics off", || racing_readers(false));
}

#[test]
fn racing_readers_see_consistent_counts_and_waits() {
    watchdog(120, "racing readers, wait metrics on", || racing_readers(true));
}

#[test]
fn busy_and_idle_workers_are_counted() {
    watchdog(60, "busy and idle workers", || {
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
    watchdog(60, "starvation", || {
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
    watchdog(60, "steal", || {
        let pool = Pool::builder().workers(2).build().expect("build");
        let spawner = pool.spawner();
        // The parent pushes the child onto its own worker's deque and then
        // blocks until the child has run, so only the other worker can run
        // it, and only by stealing it.
        let parent = pool
            .submit(Priority::HIGH, move || {
                let child = spawner.submit(Priority::HIGH, || 7).expect("spawn from a job");
                child.join().expect("child")
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
