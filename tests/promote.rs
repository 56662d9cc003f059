//! `JobHandle::promote`: a queued job moves to another level and runs
//! there, exactly once; it is counted as promoted at the old level when
//! the promotion is decided, and its old entry is discarded; the figures
//! are exact at rest, per level, even with fates racing promotions;
//! promote racing the job's start, its cancellation and `shutdown_now`
//! never runs a job twice or loses one.
//!
//! Seen failing on a broken core: with a claim that ignores the entry's
//! epoch (`transition_at(None, ..)` in `TaskCell::claim`), a dead entry
//! starts its job at a level the job has left, and the last test's at-rest
//! identity fails at the level the job was moved to; that test's own docs
//! say how it catches a fate counted at the wrong level.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::thread;

use common::{BOUND, Latch, recv, watchdog};
use priopool::{CancelOutcome, Metrics, Pool, Priority, PromoteOutcome, SpawnErrorKind};

/// Holds the only worker of `pool` in a LOW job until the latch opens.
fn hold(pool: &Pool) -> Latch {
    let release = Latch::new();
    let (tx, rx) = mpsc::channel();
    let held = release.clone();
    pool.spawn(Priority::LOW, move || {
        tx.send(()).unwrap();
        held.wait();
    })
    .unwrap();
    recv(&rx, "the gate job");
    release
}

/// At rest every level's figures add up, promoted entries included.
fn assert_exact(m: &Metrics) {
    common::assert_at_rest(m, "at rest");
}

#[test]
fn a_promoted_job_runs_first_at_its_new_level_and_is_counted_there() {
    watchdog("promote", BOUND, || {
        let pool = Pool::builder().workers(1).build().unwrap();
        let release = hold(&pool);
        let order = Arc::new(Mutex::new(Vec::new()));
        let handles: Vec<_> = (0..5)
            .map(|i| {
                let order = Arc::clone(&order);
                pool.submit(Priority::LOW, move || order.lock().unwrap().push(i)).unwrap()
            })
            .collect();
        assert_eq!(handles[3].promote(Priority::HIGH), Ok(PromoteOutcome::Moved));
        // Promoted again, within the same level: moves again.
        assert_eq!(handles[3].promote(Priority::HIGH), Ok(PromoteOutcome::Moved));
        // Promoted, then cancelled: never runs; counted cancelled at HIGH.
        assert_eq!(handles[4].promote(Priority::HIGH), Ok(PromoteOutcome::Moved));
        assert_eq!(handles[4].cancel(), CancelOutcome::Prevented);
        // The live backlog: job 3's latest entry at HIGH, jobs 0 to 2 at
        // LOW; the dead entries (job 3's first at HIGH, job 4's, and the
        // two left at LOW) are queued but out of it from the moment the
        // promotion or the cancel is decided.
        assert_eq!((pool.queued(Priority::HIGH), pool.queued(Priority::LOW)), (Some(1), Some(3)));
        release.open();
        for handle in handles {
            let _ = handle.join();
        }
        assert_eq!(*order.lock().unwrap(), [3, 0, 1, 2]);
        let done = pool.submit(Priority::LOW, || ()).unwrap();
        assert_eq!(done.promote(Priority::level(2)), Err(SpawnErrorKind::UnknownLevel { level: 2, levels: 2 }));
        done.join().unwrap();
        // A started job is too late to promote.
        let (started_tx, started_rx) = mpsc::channel();
        let (go_tx, go_rx) = mpsc::channel::<()>();
        let running = pool
            .submit(Priority::LOW, move || {
                started_tx.send(()).unwrap();
                go_rx.recv().ok();
            })
            .unwrap();
        recv(&started_rx, "the running job");
        assert_eq!(running.promote(Priority::HIGH), Ok(PromoteOutcome::TooLate));
        go_tx.send(()).unwrap();
        running.join().unwrap();
        let spawner = pool.spawner();
        pool.shutdown();
        let m = spawner.metrics();
        assert_exact(&m);
        let (high, low) = (&m.levels[0], &m.levels[1]);
        // HIGH: job 3's first entry (dead: moved again), its second (ran),
        // job 4's (cancelled).
        assert_eq!((high.submitted, high.started, high.cancelled, high.promoted), (3, 1, 1, 1));
        // LOW: the gate, jobs 0 to 4, `done`, `running`; 3 and 4 moved.
        assert_eq!((low.submitted, low.started, low.promoted), (8, 6, 2));
    });
}

/// Promotions from another thread race the jobs' starts on two workers,
/// some jobs are also cancelled: every job runs at most once, and exactly
/// once unless cancelled in time; the figures are exact at rest.
#[test]
fn promote_racing_start_and_cancel_never_runs_a_job_twice() {
    const JOBS: usize = 20_000;
    watchdog("promote race", BOUND, || {
        let pool = Pool::builder().workers(2).levels(3).build().unwrap();
        let runs: Arc<Vec<AtomicUsize>> = Arc::new((0..JOBS).map(|_| AtomicUsize::new(0)).collect());
        let handles: Vec<_> = (0..JOBS)
            .map(|i| {
                let runs = Arc::clone(&runs);
                pool.submit(Priority::LOW, move || {
                    runs[i].fetch_add(1, Ordering::Relaxed);
                    // A little work, so that the promoter, which starts
                    // from the back, meets the workers midway.
                    for _ in 0..200 {
                        std::hint::black_box(i);
                    }
                })
                .unwrap()
            })
            .collect();
        let cancels: Vec<_> = handles.iter().skip(1).step_by(7).map(|h| h.cancel_handle()).collect();
        let promoter = thread::spawn(move || {
            let mut moved = 0;
            for (i, handle) in handles.iter().enumerate().rev() {
                let to = if i % 2 == 0 { Priority::HIGH } else { Priority::level(1) };
                for _ in 0..(1 + i % 3) {
                    if handle.promote(to) == Ok(PromoteOutcome::Moved) {
                        moved += 1;
                    }
                }
            }
            moved
        });
        let mut cancelled = 0;
        for cancel in &cancels {
            if cancel.cancel() == CancelOutcome::Prevented {
                cancelled += 1;
            }
        }
        let moved = promoter.join().unwrap();
        let spawner = pool.spawner();
        pool.shutdown();
        let ran: usize = runs.iter().map(|r| r.load(Ordering::Relaxed)).sum();
        assert!(runs.iter().all(|r| r.load(Ordering::Relaxed) <= 1), "a job ran twice");
        assert_eq!(ran + cancelled, JOBS);
        let m = spawner.metrics();
        assert_exact(&m);
        let promoted: u64 = m.levels.iter().map(|l| l.promoted).sum();
        assert_eq!(promoted, moved as u64);
        let started: u64 = m.levels.iter().map(|l| l.started).sum();
        let cancelled_counted: u64 = m.levels.iter().map(|l| l.cancelled).sum();
        assert_eq!((started as usize, cancelled_counted as usize), (ran, cancelled));
        println!("{moved} promotions, {cancelled} cancellations, {ran} runs");
    });
}

/// `shutdown_now` with promoted jobs queued cancels each job once, and
/// counts each promotion as promoted, not cancelled.
#[test]
fn shutdown_now_cancels_a_promoted_job_once() {
    watchdog("promote and shutdown_now", BOUND, || {
        let pool = Pool::builder().workers(1).build().unwrap();
        let release = hold(&pool);
        let handles: Vec<_> = (0..100).map(|_| pool.submit(Priority::LOW, || ()).unwrap()).collect();
        for handle in handles.iter().step_by(2) {
            assert_eq!(handle.promote(Priority::HIGH), Ok(PromoteOutcome::Moved));
        }
        let spawner = pool.spawner();
        let opener = thread::spawn(move || {
            // Let shutdown_now sweep first, then let the gate job end.
            thread::sleep(std::time::Duration::from_millis(20));
            release.open();
        });
        let cancelled = pool.shutdown_now();
        opener.join().unwrap();
        assert!(handles.iter().all(|h| h.is_finished()));
        let m = spawner.metrics();
        assert_exact(&m);
        assert_eq!(m.levels[0].cancelled + m.levels[1].cancelled, 100, "{cancelled:?}");
        assert_eq!((m.levels[1].promoted, m.levels[0].submitted), (50, 50));
        assert_eq!(spawner.submit(Priority::LOW, || ()).map(drop).map_err(|e| e.kind()), Err(SpawnErrorKind::Shutdown));
    });
}

/// Each job is promoted back and forth between the three levels by one
/// thread while another cancels it, its start deadline passes (at the timer
/// or at a worker's pop) and the workers try to start it, all at once. A
/// cancel or an expiry that loses a compare-exchange to a promotion must
/// count its fate at the level the job then has: every level's figures add
/// up at rest, and across the levels they match what the handles say.
///
/// Seen failing on a broken core that reads the level for a fate outside
/// the compare-exchange that decides it (`TaskState::transition_at`
/// reading the level once before its loop; and the task's first level, as
/// a fixed field would): the fates land at a level the job had left, and
/// the at-rest identity fails at the level it was promoted to.
#[test]
fn fates_racing_promotions_are_counted_at_the_live_level() {
    const ROUNDS: usize = 1_000;
    const BATCH: usize = 64;
    const LEVELS: usize = 3;
    watchdog("fates racing promotions", BOUND, || {
        let pool = Pool::builder().workers(2).levels(LEVELS).build().unwrap();
        let barrier = Arc::new(std::sync::Barrier::new(2));
        let (batches_tx, batches_rx) = mpsc::channel::<Arc<Vec<priopool::JobHandle<usize>>>>();
        let (moved_tx, moved_rx) = mpsc::channel();
        let promoter = {
            let barrier = Arc::clone(&barrier);
            thread::spawn(move || {
                let mut moved = 0u64;
                for batch in batches_rx {
                    barrier.wait();
                    for (i, handle) in batch.iter().enumerate() {
                        // Back and forth until the job starts or ends.
                        for step in 0..8 {
                            match handle.promote(Priority::level((i + step) % LEVELS)) {
                                Ok(PromoteOutcome::Moved) => moved += 1,
                                _ => break,
                            }
                        }
                    }
                    drop(batch);
                    barrier.wait();
                }
                moved_tx.send(moved).unwrap();
            })
        };
        let (mut ran, mut cancelled, mut expired, mut prevented) = (0u64, 0u64, 0u64, 0u64);
        for round in 0..ROUNDS {
            let batch: Vec<_> = (0..BATCH)
                .map(|i| {
                    let job = pool.job(Priority::level(i % LEVELS));
                    // Every third job has a start deadline about now.
                    let job = if i % 3 == 0 {
                        job.deadline(std::time::Instant::now() + std::time::Duration::from_micros((i % 7) as u64 * 20))
                    } else {
                        job
                    };
                    job.submit(move || round * BATCH + i).unwrap()
                })
                .collect();
            let batch = Arc::new(batch);
            batches_tx.send(Arc::clone(&batch)).unwrap();
            barrier.wait();
            for handle in batch.iter().skip(round % 2).step_by(2) {
                if handle.cancel() == CancelOutcome::Prevented {
                    prevented += 1;
                }
            }
            barrier.wait();
            let batch = Arc::into_inner(batch).expect("the promoter let go of the batch");
            for handle in batch {
                match handle.join() {
                    Ok(_) => ran += 1,
                    Err(priopool::JobError::Cancelled) => cancelled += 1,
                    Err(priopool::JobError::Expired) => expired += 1,
                    Err(other) => panic!("a job ended with {other:?}"),
                }
            }
        }
        drop(batches_tx);
        let moved = moved_rx.recv().unwrap();
        promoter.join().unwrap();
        let spawner = pool.spawner();
        pool.shutdown();
        let m = spawner.metrics();
        assert_exact(&m);
        let total = |f: fn(&priopool::LevelMetrics) -> u64| m.levels.iter().map(f).sum::<u64>();
        assert_eq!(ran + cancelled + expired, (ROUNDS * BATCH) as u64);
        assert_eq!(cancelled, prevented);
        assert_eq!(
            (total(|l| l.completed), total(|l| l.cancelled), total(|l| l.expired), total(|l| l.promoted)),
            (ran, cancelled, expired, moved)
        );
        println!("{moved} promotions, {cancelled} cancellations, {expired} expiries, {ran} runs");
    });
}

/// On bounded levels a promotion never waits for room: the moved job is
/// admitted over the new level's capacity, and every slot (the dead
/// entry's at the old level, the new entry's, a too-late promotion's) is
/// given back, so both levels have their whole capacity again at rest.
/// Seen failing with the too-late promotion's slot kept: the HIGH spawn
/// after it is refused as `Full`.
#[test]
fn a_promotion_to_a_full_level_does_not_wait_and_leaks_no_slot() {
    watchdog("promote and capacity", BOUND, || {
        let pool = Pool::builder().workers(1).capacity(Priority::HIGH, 1).capacity(Priority::LOW, 2).build().unwrap();
        let release = hold(&pool);
        pool.try_spawn(Priority::HIGH, || ()).unwrap();
        let low = pool.try_submit(Priority::LOW, || ()).unwrap();
        assert_eq!(low.promote(Priority::HIGH), Ok(PromoteOutcome::Moved));
        release.open();
        low.join().unwrap();
        assert!(pool.wait_idle());
        assert_eq!(low_promote_too_late(&pool), Ok(PromoteOutcome::TooLate));
        assert!(pool.wait_idle());
        // Every slot is back: each level takes its capacity again at once.
        let release = hold(&pool);
        pool.try_spawn(Priority::HIGH, || ()).unwrap();
        for _ in 0..2 {
            pool.try_spawn(Priority::LOW, || ()).unwrap();
        }
        assert_eq!(pool.try_spawn(Priority::HIGH, || ()).map_err(|e| e.kind()), Err(SpawnErrorKind::Full));
        release.open();
        let spawner = pool.spawner();
        pool.shutdown();
        let m = spawner.metrics();
        assert_exact(&m);
        assert_eq!((m.levels[0].promoted, m.levels[1].promoted), (0, 1));
    });
}

/// Promotes a job that has already run: too late, and its slot at the new
/// level is given back.
fn low_promote_too_late(pool: &Pool) -> Result<PromoteOutcome, SpawnErrorKind> {
    let done = pool.try_submit(Priority::LOW, || ()).unwrap();
    while !done.is_finished() {
        thread::yield_now();
    }
    done.promote(Priority::HIGH)
}

/// A job waiting on a handle claims the awaited job through its live
/// entry, after a promotion too: the HIGH job on the only worker submits a
/// job at level 2 and promotes it to level 1, neither of which its wait may
/// pick, then joins it. The claim must use the new epoch, or it fails and
/// the waiter parks for good (seen: with the claim through epoch 0, the
/// watchdog fires). Counted once, at rest: started at level 1, promoted at
/// level 2, never both started and queued.
#[test]
fn a_waiting_job_claims_a_promoted_job_through_its_live_entry() {
    watchdog("join after promote", BOUND, || {
        let pool = Pool::builder().workers(1).levels(3).build().unwrap();
        let spawner = pool.spawner();
        let outer = pool
            .submit(Priority::HIGH, move || {
                let child = spawner.submit(Priority::level(2), || 7).unwrap();
                assert_eq!(child.promote(Priority::level(1)), Ok(PromoteOutcome::Moved));
                child.join().unwrap()
            })
            .unwrap();
        assert_eq!(outer.join().unwrap(), 7);
        assert!(pool.wait_idle());
        let m = pool.metrics();
        assert_exact(&m);
        assert_eq!((m.levels[1].completed, m.levels[2].promoted), (1, 1), "{m:?}");
    });
}
