//! Shutdown and refusals: the drain runs every accepted job (including jobs
//! spawned during the drain), dropping the pool does the same, shutting
//! down from inside one of the pool's own jobs neither deadlocks nor loses
//! the jobs still queued (nor one it spawns afterwards), and refused jobs
//! (after shutdown, or at a level the pool does not have) come back to the
//! caller. Also the builder's errors (no or too many workers or levels, an
//! OS that refuses a thread) and what `Priority::LOW` resolves to.
//!
//! Known to catch refusing spawns from inside jobs after the close (the
//! drain and shutdown-from-inside tests), accepting spawns from outside
//! after it (the drain and spawn-after-shutdown tests), joining the workers
//! even from inside a job (both shutdown-from-inside tests, through their
//! watchdog), a refused job dropped and reported as accepted (the refusal
//! and drain tests), and a pick that scans the levels least urgent first
//! (`low_is_the_last_level`).

mod common;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::thread;

use common::{BOUND, Gate, Latch, watchdog};
use priopool::{MAX_LEVELS, MAX_WORKERS, Pool, Priority, SpawnErrorKind, Spawner};

/// Spawns a tree of `fanout`-ary jobs `depth` generations deep from inside
/// the pool, counting each job in `ran` when it runs. Returns how many jobs
/// the tree has.
fn tree(spawner: Spawner, ran: Arc<AtomicUsize>, level: usize, depth: u32, fanout: usize) -> impl FnOnce() + Send {
    move || {
        ran.fetch_add(1, Ordering::SeqCst);
        if depth == 0 {
            return;
        }
        for c in 0..fanout {
            let child = tree(spawner.clone(), Arc::clone(&ran), (level + c) % 3, depth - 1, fanout);
            // Inside a running job: accepted even while the pool drains.
            spawner.spawn(Priority::level((level + c) % 3), child).expect("a job's spawn was refused during the drain");
        }
    }
}

fn tree_size(depth: u32, fanout: usize) -> usize {
    (0..=depth).map(|d| fanout.pow(d)).sum()
}

/// Parents block until intake has closed, then spawn trees of children, so
/// the children are spawned during the drain. A probe thread detects the
/// close from outside (its spawns start being refused) and only then lets
/// the parents go. The test thread meanwhile shuts the pool down (or drops
/// it) and must find, once that returns, that every job ran.
fn drain_runs_everything(by_drop: bool) {
    const PARENTS: usize = 6;
    const DEPTH: u32 = 3;
    const FANOUT: usize = 3;
    let pool = Pool::builder().workers(2).levels(3).build().expect("build");
    let spawner = pool.spawner();
    let ran = Arc::new(AtomicUsize::new(0));
    let closed = Latch::new();
    let mut handles = Vec::new();

    for p in 0..PARENTS {
        let (spawner, ran, closed) = (spawner.clone(), Arc::clone(&ran), closed.clone());
        handles.push(
            pool.submit(Priority::level(p % 3), move || {
                closed.wait();
                tree(spawner, ran, p % 3, DEPTH, FANOUT)();
                p
            })
            .expect("submit refused"),
        );
    }

    // The probe: spawns no-op jobs from outside until one is refused.
    let probe = {
        let (spawner, closed) = (spawner.clone(), closed.clone());
        let probes_ran = Arc::new(AtomicUsize::new(0));
        let handle = thread::spawn({
            let probes_ran = Arc::clone(&probes_ran);
            move || {
                let mut accepted = 0;
                loop {
                    let probes_ran = Arc::clone(&probes_ran);
                    match spawner.spawn(Priority::HIGH, move || {
                        probes_ran.fetch_add(1, Ordering::SeqCst);
                    }) {
                        Ok(()) => accepted += 1,
                        Err(error) => {
                            assert_eq!(error.kind(), SpawnErrorKind::Shutdown);
                            break;
                        }
                    }
                    thread::yield_now();
                }
                closed.open();
                accepted
            }
        });
        (handle, probes_ran)
    };

    if by_drop {
        drop(pool);
    } else {
        pool.shutdown();
    }

    // The pool has drained and joined its workers: everything has run.
    let expected = PARENTS * tree_size(DEPTH, FANOUT);
    assert_eq!(ran.load(Ordering::SeqCst), expected, "jobs spawned during the drain were lost");
    let (probe, probes_ran) = probe;
    let accepted = probe.join().expect("the probe thread panicked");
    assert_eq!(probes_ran.load(Ordering::SeqCst), accepted, "accepted probe jobs were lost");
    let mut parents: Vec<usize> = handles.into_iter().map(|h| h.join().expect("a parent failed")).collect();
    parents.sort();
    assert_eq!(parents, (0..PARENTS).collect::<Vec<_>>());
}

#[test]
fn shutdown_runs_every_accepted_job_including_those_spawned_during_the_drain() {
    watchdog("shutdown drain", BOUND, || drain_runs_everything(false));
}

#[test]
fn drop_without_shutdown_runs_every_accepted_job() {
    watchdog("drop drain", BOUND, || drain_runs_everything(true));
}

#[test]
fn spawn_after_shutdown_hands_the_job_back() {
    watchdog("spawn after shutdown", BOUND, || {
        for by_drop in [false, true] {
            let pool = Pool::builder().workers(2).build().expect("build");
            let spawner = pool.spawner();
            if by_drop {
                drop(pool);
            } else {
                pool.shutdown();
            }

            let ran = Arc::new(AtomicBool::new(false));
            let job = {
                let ran = Arc::clone(&ran);
                move || ran.store(true, Ordering::SeqCst)
            };
            let error = spawner.spawn(Priority::HIGH, job).expect_err("a spawn after shutdown was accepted");
            assert_eq!(error.kind(), SpawnErrorKind::Shutdown);
            assert!(error.to_string().contains("shutting down"), "unhelpful message: {error}");
            assert!(!ran.load(Ordering::SeqCst), "a refused job ran");
            // The very closure comes back: running it by hand sets the flag.
            (error.into_inner())();
            assert!(ran.load(Ordering::SeqCst));

            let error = spawner.submit(Priority::LOW, || 42).expect_err("a submit after shutdown was accepted");
            assert_eq!(error.kind(), SpawnErrorKind::Shutdown);
            assert_eq!((error.into_inner())(), 42);
        }
    });
}

#[test]
fn a_level_out_of_range_hands_the_job_back() {
    watchdog("level out of range", BOUND, || {
        let pool = Pool::builder().workers(1).levels(3).build().expect("build");
        for level in [3, 4, 63, 64, 1_000] {
            let ran = Arc::new(AtomicBool::new(false));
            let job = {
                let ran = Arc::clone(&ran);
                move || ran.store(true, Ordering::SeqCst)
            };
            let error = pool.spawn(Priority::level(level), job).expect_err("an unknown level was accepted");
            assert_eq!(error.kind(), SpawnErrorKind::UnknownLevel { level, levels: 3 });
            let text = error.to_string();
            assert!(text.contains(&level.to_string()) && text.contains('3'), "unhelpful message: {text}");
            (error.into_inner())();
            assert!(ran.load(Ordering::SeqCst));

            let error = pool.submit(Priority::level(level), move || level).expect_err("an unknown level was accepted");
            assert_eq!(error.kind(), SpawnErrorKind::UnknownLevel { level, levels: 3 });
            assert_eq!((error.into_inner())(), level);
            assert_eq!(pool.queued(Priority::level(level)), None);
        }
        // The pool is unharmed.
        assert_eq!(pool.submit(Priority::level(2), || 5).expect("submit").join().expect("join"), 5);
        pool.shutdown();
    });
}

#[test]
fn the_largest_level_is_reported_as_asked() {
    let pool = Pool::builder().workers(1).levels(3).build().expect("build");
    let error = pool.spawn(Priority::level(usize::MAX), || {}).expect_err("an unknown level was accepted");
    assert_eq!(error.kind(), SpawnErrorKind::UnknownLevel { level: usize::MAX, levels: 3 });
}

#[test]
fn bad_configurations_are_build_errors() {
    let cases = [
        (Pool::builder().workers(0), "workers(n)"),
        (Pool::builder().workers(MAX_WORKERS + 1), "workers(n)"),
        (Pool::builder().workers(1).levels(0), "levels(k)"),
        (Pool::builder().workers(1).levels(MAX_LEVELS + 1), "levels(k)"),
        (Pool::builder().workers(1).levels(65), "levels(k)"),
    ];
    for (builder, hint) in cases {
        let shown = format!("{builder:?}");
        let error = builder.build().expect_err(&format!("{shown} built a pool"));
        let text = error.to_string();
        assert!(text.contains(hint), "the message for {shown} should say what to change ({hint}): {text}");
    }
    // The limits themselves are fine.
    let pool = Pool::builder().workers(1).levels(MAX_LEVELS).build().expect("64 levels");
    assert_eq!(pool.levels(), MAX_LEVELS);
    pool.shutdown();
}

/// A thread the OS will not start (a 64 TiB stack) is a `BuildError` with
/// the OS error as its source, not a panic. Should some OS grant such a
/// stack anyway, the pool is simply shut down again.
#[test]
fn an_os_refusal_to_start_a_thread_is_a_build_error() {
    watchdog("OS refusal", BOUND, || match Pool::builder().workers(2).stack_size(1 << 46).build() {
        Err(error) => {
            let text = error.to_string();
            assert!(text.contains("stack_size"), "the message should say what to change: {text}");
            assert!(std::error::Error::source(&error).is_some(), "the OS error should be the source");
        }
        Ok(pool) => pool.shutdown(),
    });
}

/// What the jobs of [`shutdown_from_inside`] report.
#[derive(Debug, PartialEq, Eq)]
enum Event {
    /// The job that shut the pool down got past it, and its own spawn
    /// afterwards was (true) or was not accepted.
    ShutdownReturned {
        child_accepted: bool,
    },
    Queued(usize),
    Child,
}

/// A job owns the pool through `Arc<Mutex<Option<Pool>>>` and shuts it
/// down (or drops it) while other jobs are still queued behind it. That
/// must return, the queued jobs must still run, and so must a job it
/// spawns afterwards; a spawn from outside is refused. The workers are
/// detached in this case, so completion is awaited through a channel with
/// a bound.
fn shutdown_from_inside(workers: usize, by_drop: bool) {
    const QUEUED: usize = 20;
    let pool = Pool::builder().workers(workers).levels(2).build().expect("build");
    let spawner = pool.spawner();
    let (events_tx, events_rx) = mpsc::channel();

    let gate = Gate::hold(&pool, workers);
    let owner = Arc::new(Mutex::new(Some(pool)));
    for i in 0..QUEUED {
        let events_tx = events_tx.clone();
        spawner
            .spawn(Priority::LOW, move || events_tx.send(Event::Queued(i)).expect("test gone"))
            .expect("spawn refused");
    }
    {
        let (owner, spawner, events_tx) = (Arc::clone(&owner), spawner.clone(), events_tx.clone());
        spawner
            .clone()
            .spawn(Priority::HIGH, move || {
                let pool = owner.lock().unwrap_or_else(|e| e.into_inner()).take().expect("the pool is gone");
                if by_drop {
                    drop(pool);
                } else {
                    pool.shutdown();
                }
                let child_tx = events_tx.clone();
                let child = spawner.spawn(Priority::LOW, move || child_tx.send(Event::Child).expect("test gone"));
                events_tx.send(Event::ShutdownReturned { child_accepted: child.is_ok() }).expect("test gone");
            })
            .expect("spawn refused");
    }
    drop(events_tx);
    gate.release();

    let mut queued = [false; QUEUED];
    let (mut returned, mut child) = (false, false);
    for _ in 0..QUEUED + 2 {
        match events_rx.recv_timeout(BOUND) {
            Ok(Event::ShutdownReturned { child_accepted }) => {
                assert!(child_accepted, "a spawn from inside a job was refused during the drain");
                returned = true;
            }
            Ok(Event::Queued(i)) => queued[i] = true,
            Ok(Event::Child) => child = true,
            Err(_) => panic!(
                "{workers} workers, by_drop {by_drop}: shutdown from inside returned: {returned}, child ran: \
                 {child}, queued jobs that ran: {}/{QUEUED}",
                queued.iter().filter(|&&q| q).count()
            ),
        }
    }
    assert!(returned && child && queued.iter().all(|&q| q));
    let refused = spawner.spawn(Priority::HIGH, || {}).expect_err("a spawn from outside was accepted after shutdown");
    assert_eq!(refused.kind(), SpawnErrorKind::Shutdown);
    assert!(owner.lock().unwrap_or_else(|e| e.into_inner()).is_none());
}

#[test]
fn shutdown_from_inside_a_job_does_not_deadlock() {
    watchdog("shutdown from inside a job", BOUND, || {
        for workers in [1, 2] {
            shutdown_from_inside(workers, false);
        }
    });
}

#[test]
fn drop_from_inside_a_job_does_not_deadlock() {
    watchdog("drop from inside a job", BOUND, || {
        for workers in [1, 2] {
            shutdown_from_inside(workers, true);
        }
    });
}

#[test]
fn low_is_the_last_level() {
    watchdog("Priority::LOW", BOUND, || {
        for levels in [1, 2, 5] {
            let last = levels - 1;
            let pool = Pool::builder().workers(1).levels(levels).build().expect("build");
            assert_eq!(pool.levels(), levels);
            let order = Arc::new(Mutex::new(Vec::new()));
            let record = |name: &'static str| {
                let order = Arc::clone(&order);
                move || order.lock().unwrap_or_else(|e| e.into_inner()).push(name)
            };

            // While the only worker is held, the queued counts are exact.
            let gate = Gate::hold(&pool, 1);
            pool.spawn(Priority::LOW, record("low 1")).expect("spawn");
            pool.spawn(Priority::level(last), record("last 2")).expect("spawn");
            pool.spawn(Priority::LOW, record("low 3")).expect("spawn");
            if levels > 1 {
                pool.spawn(Priority::level(last - 1), record("second last")).expect("spawn");
            }
            assert_eq!(pool.queued(Priority::LOW), Some(3), "{levels} levels");
            assert_eq!(pool.queued(Priority::level(last)), Some(3), "{levels} levels");
            for level in 0..last.saturating_sub(1) {
                assert_eq!(pool.queued(Priority::level(level)), Some(0), "{levels} levels");
            }
            gate.release();
            pool.shutdown();

            let mut expected = vec!["low 1", "last 2", "low 3"];
            if levels > 1 {
                expected.insert(0, "second last");
            }
            assert_eq!(*order.lock().unwrap_or_else(|e| e.into_inner()), expected, "{levels} levels");
        }
    });
}
