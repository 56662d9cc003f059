//! Cancelling a batch at once: a `JobGroup` cancels every queued job of the
//! group and signals its running ones; `Pool::cancel_queued` cancels a
//! level's whole backlog. Counts are exact: every job either ran or was
//! cancelled, once, and the metrics agree as soon as the call returns.
//!
//! Seen failing on a group that forgot the jobs added after it was
//! cancelled (the late job ran), and on a level sweep that skipped the
//! workers' own deques (the children of a job survived).

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, mpsc};

use common::{BOUND, Gate, LONG_BOUND, Latch, drop_counter, recv, watchdog};
use priopool::{JobContext, JobGroup, Pool, Priority};

/// A pool of `workers` whose workers are all held by HIGH gate jobs
/// (they have all started when this returns).
fn held(workers: usize) -> (Pool, Gate) {
    let pool = Pool::builder().workers(workers).build().unwrap();
    let gate = Gate::hold(&pool, workers);
    (pool, gate)
}

#[test]
fn a_group_cancels_its_queued_jobs_and_signals_its_running_ones() {
    watchdog("group cancel", BOUND, || {
        let pool = Pool::builder().workers(2).build().unwrap();
        let group = JobGroup::new();
        // Two running members that wait for the signal, holding both workers.
        let (started_tx, started) = mpsc::channel();
        let running: Vec<_> = (0..2)
            .map(|_| {
                let started_tx = started_tx.clone();
                pool.job(Priority::HIGH)
                    .group(&group)
                    .submit_with_context(move |ctx: &JobContext| {
                        started_tx.send(()).unwrap();
                        ctx.wait_for_cancel(BOUND)
                    })
                    .unwrap()
            })
            .collect();
        recv(&started, "a running member");
        recv(&started, "a running member");
        let (drops, ran) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let outsider = pool.submit(Priority::LOW, || "not in the group").unwrap();
        let queued: Vec<_> = (0..1_000)
            .map(|i| {
                let (guard, ran) = (drop_counter(&drops), Arc::clone(&ran));
                let job = pool.job(Priority::LOW).group(&group).name(format!("member {i}"));
                job.submit(move || {
                    let _guard = guard;
                    ran.fetch_add(1, Ordering::SeqCst);
                })
                .unwrap()
            })
            .collect();
        assert_eq!(group.cancel(), 1_000);
        assert!(group.is_cancelled());
        assert_eq!(drops.load(Ordering::SeqCst), 1_000, "every closure dropped before cancel returned");
        let low = pool.metrics().level(Priority::LOW).unwrap().clone();
        assert_eq!(low.cancelled, 1_000, "counted at once");
        for handle in running {
            assert!(handle.join().unwrap(), "the running member saw the signal");
        }
        for handle in queued {
            assert!(handle.join().unwrap_err().is_cancelled());
        }
        assert_eq!(outsider.join().unwrap(), "not in the group");
        assert!(pool.wait_idle());
        assert_eq!(ran.load(Ordering::SeqCst), 0);
        let low = pool.metrics().level(Priority::LOW).unwrap().clone();
        assert_eq!((low.submitted, low.completed, low.cancelled, low.backlog), (1_001, 1, 1_000, 0));
    });
}

#[test]
fn a_job_added_to_a_cancelled_group_never_runs() {
    watchdog("late member", BOUND, || {
        let pool = Pool::builder().workers(1).build().unwrap();
        let group = JobGroup::new();
        assert_eq!(group.cancel(), 0);
        let ran = Arc::new(AtomicUsize::new(0));
        for _ in 0..100 {
            let ran = Arc::clone(&ran);
            let handle = pool.job(Priority::HIGH).group(&group).spawn(move || {
                ran.fetch_add(1, Ordering::SeqCst);
            });
            assert!(handle.unwrap().is_finished(), "cancelled as it was queued");
        }
        assert!(pool.wait_idle());
        assert_eq!(ran.load(Ordering::SeqCst), 0);
        assert_eq!(pool.metrics().levels[0].cancelled, 100);
    });
}

/// Cancels a group while two workers run its jobs: every job runs or is
/// cancelled, exactly once, and `cancel` counts the cancelled ones.
#[test]
fn a_group_cancel_racing_the_workers_counts_every_job_once() {
    const JOBS: usize = 2_000;
    watchdog("racing group cancel", LONG_BOUND, || {
        for _ in 0..20 {
            let pool = Pool::builder().workers(2).build().unwrap();
            let group = JobGroup::new();
            let ran = Arc::new(AtomicUsize::new(0));
            let handles: Vec<_> = (0..JOBS)
                .map(|_| {
                    let ran = Arc::clone(&ran);
                    pool.job(Priority::LOW)
                        .group(&group)
                        .submit(move || {
                            ran.fetch_add(1, Ordering::SeqCst);
                        })
                        .unwrap()
                })
                .collect();
            let prevented = group.cancel();
            let cancelled = handles.into_iter().map(|h| h.join()).filter(Result::is_err).count();
            assert_eq!(cancelled, prevented);
            assert_eq!(ran.load(Ordering::SeqCst) + prevented, JOBS);
            assert_eq!(pool.metrics().levels[1].cancelled as usize, prevented);
        }
    });
}

#[test]
fn cancel_queued_empties_one_level_and_leaves_the_others() {
    watchdog("cancel_queued", BOUND, || {
        let (pool, gate) = held(2);
        let drops = Arc::new(AtomicUsize::new(0));
        for _ in 0..300 {
            let guard = drop_counter(&drops);
            pool.spawn(Priority::LOW, move || drop(guard)).unwrap();
        }
        let handles: Vec<_> = (0..200).map(|_| pool.submit(Priority::LOW, || ()).unwrap()).collect();
        let high: Vec<_> = (0..10).map(|i| pool.submit(Priority::HIGH, move || i).unwrap()).collect();
        assert_eq!(pool.cancel_queued(Priority::LOW), 500);
        assert_eq!(drops.load(Ordering::SeqCst), 300);
        assert_eq!(pool.queued(Priority::LOW), Some(0));
        assert_eq!(pool.cancel_queued(Priority::level(7)), 0, "no such level");
        for handle in handles {
            assert!(handle.join().unwrap_err().is_cancelled());
        }
        gate.release();
        for (i, handle) in high.into_iter().enumerate() {
            assert_eq!(handle.join().unwrap(), i);
        }
        assert!(pool.wait_idle());
        let m = pool.metrics();
        let low = m.level(Priority::LOW).unwrap();
        assert_eq!((low.cancelled, low.completed, low.backlog), (500, 0, 0));
    });
}

/// Jobs a running job spawned wait on its worker's own deque: a one-worker
/// pool whose only worker runs the parent cannot take them, and
/// `cancel_queued` must find them there.
#[test]
fn cancel_queued_reaches_a_workers_own_deque() {
    watchdog("cancel_queued children", BOUND, || {
        let pool = Pool::builder().workers(1).build().unwrap();
        let spawner = pool.spawner();
        let (children_tx, children) = mpsc::channel();
        let parent_done = Latch::new();
        let parent_gate = parent_done.clone();
        pool.spawn(Priority::HIGH, move || {
            let handles: Vec<_> = (0..50).map(|_| spawner.submit(Priority::LOW, || ()).unwrap()).collect();
            children_tx.send(handles).unwrap();
            parent_gate.wait();
        })
        .unwrap();
        let children = recv(&children, "the children");
        assert_eq!(pool.cancel_queued(Priority::LOW), 50);
        parent_done.open();
        for child in children {
            assert!(child.join().unwrap_err().is_cancelled());
        }
        assert!(pool.wait_idle());
        assert_eq!(pool.metrics().level(Priority::LOW).unwrap().cancelled, 50);
    });
}
