//! Join timeouts, per-job deadlines and `shutdown_timeout`.
//!
//! `join_timeout(0)` on a running job returns at once, and the handle it
//! hands back still joins. A job whose deadline passes while every worker
//! is busy expires then, its closure dropped by the timer (not at
//! shutdown); a deadline already past never runs. `shutdown_timeout` with
//! every worker stuck returns and reports the timeout; it stays bounded
//! while the timer thread is in a slow destructor of an expired closure
//! (before the fix it joined the timer without a bound), and reports
//! `Drained` only once every thread is joined, `DrainedDetached` with the
//! count when a stop hook or the timer outlasts the bound (before the fix:
//! `Drained` with both workers still in their stop hooks).
//!
//! No assertion here depends on how long anything takes: a worker is held
//! on a latch that the test opens, so "returned at once" and "expired while
//! the worker was busy" are structural, and every wait has a watchdog.

mod common;

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::task::Context;
use std::thread;
use std::time::{Duration, Instant};

use common::{BOUND, Latch, OnDrop, drop_counter, drop_reporter, recv, watchdog};
use priopool::{CancelOutcome, JobError, JobHandle, JoinTimeoutError, Pool, Priority, ShutdownReport};

/// A pool of `workers` workers, each held by a job blocked on the returned
/// latch; every holding job has started when this returns.
fn held_pool(workers: usize) -> (Pool, Latch, Vec<JobHandle<usize>>) {
    let pool = Pool::builder().workers(workers).build().unwrap();
    let latch = Latch::new();
    let (started_tx, started) = mpsc::channel();
    let holders = (0..workers)
        .map(|i| {
            let (gate, started_tx) = (latch.clone(), started_tx.clone());
            pool.submit(Priority::HIGH, move || {
                started_tx.send(()).unwrap();
                gate.wait();
                i
            })
            .unwrap()
        })
        .collect();
    for _ in 0..workers {
        recv(&started, "start of a holding job");
    }
    (pool, latch, holders)
}

#[test]
fn join_timeout_zero_on_a_running_job_returns_at_once_and_the_handle_still_joins() {
    let (pool, latch, mut holders) = held_pool(1);
    let holder = holders.pop().unwrap();
    // The job cannot end before the latch opens, and only this thread opens
    // it: had join_timeout(0) waited, the watchdog would fire.
    let holder = watchdog("join_timeout(0)", BOUND, move || match holder.join_timeout(Duration::ZERO) {
        Err(JoinTimeoutError::TimedOut(handle)) => handle,
        other => panic!("expected a timeout, got {other:?}"),
    });
    assert!(!holder.is_finished());
    latch.open();
    assert_eq!(watchdog("join", BOUND, move || holder.join().unwrap()), 0);
    pool.shutdown();
}

#[test]
fn join_after_a_timed_out_join_timeout_still_gets_the_value() {
    let (pool, latch, mut holders) = held_pool(1);
    let holder = holders.pop().unwrap();
    let error = holder.join_timeout(Duration::from_millis(5)).unwrap_err();
    assert!(error.is_timeout());
    assert_eq!(error.to_string(), "the job did not end within the join timeout");
    let holder = error.into_handle().unwrap();
    latch.open();
    assert_eq!(watchdog("join", BOUND, move || holder.join().unwrap()), 0);
    pool.shutdown();
}

#[test]
fn join_timeout_returns_the_value_or_the_error_of_an_ended_job() {
    let pool = Pool::builder().workers(1).build().unwrap();
    let ok = pool.submit(Priority::HIGH, || "value").unwrap();
    assert_eq!(ok.join_timeout(BOUND).unwrap(), "value");
    let panicked = pool.submit(Priority::HIGH, || panic!("boom")).unwrap();
    match panicked.join_timeout(BOUND) {
        Err(JoinTimeoutError::Job(error)) => assert!(error.is_panic()),
        other => panic!("expected the job's panic, got {other:?}"),
    }
    // An enormous timeout (no representable deadline) waits without bound.
    let huge = pool.submit(Priority::HIGH, || 1).unwrap();
    assert_eq!(huge.join_timeout(Duration::MAX).unwrap(), 1);
    pool.shutdown();
}

#[test]
fn join_timeout_and_join_work_after_the_handle_was_polled_as_a_future() {
    let (pool, latch, mut holders) = held_pool(1);
    let mut holder = holders.pop().unwrap();
    let waker = futures::task::noop_waker();
    assert!(Pin::new(&mut holder).poll(&mut Context::from_waker(&waker)).is_pending());
    let holder = match holder.join_timeout(Duration::ZERO) {
        Err(JoinTimeoutError::TimedOut(handle)) => handle,
        other => panic!("expected a timeout, got {other:?}"),
    };
    let holder = holder.join_timeout(Duration::from_millis(1)).unwrap_err().into_handle().unwrap();
    latch.open();
    assert_eq!(watchdog("join", BOUND, move || holder.join().unwrap()), 0);
    pool.shutdown();
}

#[test]
fn a_job_not_started_by_its_deadline_expires_while_the_workers_are_busy() {
    let (pool, latch, holders) = held_pool(1);
    let drops = Arc::new(AtomicUsize::new(0));
    let ran = Arc::new(AtomicBool::new(false));
    let (guard, ran_in_job) = (drop_counter(&drops), Arc::clone(&ran));
    let late = pool
        .job(Priority::HIGH)
        .max_wait(Duration::from_millis(2))
        .submit(move || {
            let _guard = guard;
            ran_in_job.store(true, Ordering::SeqCst);
        })
        .unwrap();
    // The only worker is held until after this join: the deadline timer,
    // not a worker, expired the job and dropped its closure.
    let result = watchdog("join of the expiring job", BOUND, move || late.join().map_err(|e| e.to_string()));
    assert_eq!(result, Err(JobError::Expired.to_string()));
    assert_eq!(drops.load(Ordering::SeqCst), 1, "the expired closure was not dropped when the handle completed");
    latch.open();
    for holder in holders {
        holder.join().unwrap();
    }
    pool.shutdown();
    assert!(!ran.load(Ordering::SeqCst), "an expired job ran");
    assert_eq!(drops.load(Ordering::SeqCst), 1);
}

#[test]
fn a_spawned_job_with_a_deadline_expires_and_its_closure_is_dropped_at_once() {
    let (pool, latch, holders) = held_pool(1);
    let drops = Arc::new(AtomicUsize::new(0));
    let (dropped_tx, dropped) = mpsc::channel();
    let guard = drop_reporter(7, &drops, &dropped_tx);
    let handle =
        pool.job(Priority::LOW).deadline(Instant::now() + Duration::from_millis(2)).spawn(move || drop(guard)).unwrap();
    assert_eq!(recv(&dropped, "drop of the expired closure"), 7);
    // The worker is still held: the drop was the timer's.
    assert!(handle.is_finished());
    assert_eq!(handle.cancel(), CancelOutcome::TooLate);
    latch.open();
    for holder in holders {
        holder.join().unwrap();
    }
    pool.shutdown();
    assert_eq!(drops.load(Ordering::SeqCst), 1);
}

#[test]
fn a_deadline_already_past_expires_the_job_even_on_an_idle_pool() {
    let pool = Pool::builder().workers(2).build().unwrap();
    let ran = Arc::new(AtomicUsize::new(0));
    let handles: Vec<_> = (0..50)
        .map(|_| {
            let ran = Arc::clone(&ran);
            // `now` is past by the time any worker or the timer checks it.
            pool.job(Priority::HIGH)
                .deadline(Instant::now())
                .submit(move || ran.fetch_add(1, Ordering::SeqCst))
                .unwrap()
        })
        .chain((0..50).map(|_| {
            let ran = Arc::clone(&ran);
            // A zero queue wait is a deadline already past.
            pool.job(Priority::LOW).max_wait(Duration::ZERO).submit(move || ran.fetch_add(1, Ordering::SeqCst)).unwrap()
        }))
        .collect();
    for handle in handles {
        assert!(watchdog("join", BOUND, move || handle.join()).is_err_and(|e| e.is_expired()));
    }
    pool.shutdown();
    assert_eq!(ran.load(Ordering::SeqCst), 0);
}

#[test]
fn many_jobs_expire_and_jobs_within_their_deadline_run() {
    let (pool, latch, holders) = held_pool(1);
    let (dropped_tx, dropped) = mpsc::channel();
    let drops = Arc::new(AtomicUsize::new(0));
    let now = Instant::now();
    let mut expiring = Vec::new();
    // Submitted latest-deadline first, so the timer's heap reorders them.
    for id in (0..20).rev() {
        let guard = drop_reporter(id, &drops, &dropped_tx);
        let at = now + Duration::from_millis(1 + id as u64);
        expiring.push(pool.job(Priority::LOW).deadline(at).submit(move || drop(guard)).unwrap());
    }
    // Far deadlines and no deadline: these run once the worker is free.
    let patient: Vec<_> = (0..5)
        .map(|i| pool.job(Priority::LOW).max_wait(Duration::from_secs(3600)).submit(move || i).unwrap())
        .chain((5..10).map(|i| pool.submit(Priority::LOW, move || i).unwrap()))
        .collect();
    let mut order: Vec<usize> = (0..20).map(|_| recv(&dropped, "drop of an expired closure")).collect();
    order.sort_unstable();
    assert_eq!(order, (0..20).collect::<Vec<_>>());
    for handle in expiring {
        assert!(handle.join().is_err_and(|e| e.is_expired()));
    }
    latch.open();
    for holder in holders {
        holder.join().unwrap();
    }
    let values: Vec<_> = patient.into_iter().map(|h| watchdog("join", BOUND, move || h.join().unwrap())).collect();
    assert_eq!(values, (0..10).collect::<Vec<_>>());
    pool.shutdown();
}

#[test]
fn the_earliest_of_several_deadlines_applies() {
    let (pool, latch, holders) = held_pool(1);
    let job = pool
        .job(Priority::HIGH)
        .max_wait(Duration::from_secs(3600))
        .deadline(Instant::now() + Duration::from_secs(7200))
        .max_wait(Duration::from_millis(1))
        .submit(|| ())
        .unwrap();
    assert!(watchdog("join", BOUND, move || job.join()).is_err_and(|e| e.is_expired()));
    latch.open();
    for holder in holders {
        holder.join().unwrap();
    }
    pool.shutdown();
}

#[test]
fn shutdown_timeout_with_every_worker_stuck_returns_after_one_overall_bound() {
    let (pool, latch, holders) = held_pool(2);
    let queued: Vec<_> = (0..3).map(|i| pool.submit(Priority::LOW, move || i).unwrap()).collect();
    let spawned_runs = Arc::new(AtomicUsize::new(0));
    let runs = Arc::clone(&spawned_runs);
    pool.spawn(Priority::HIGH, move || {
        runs.fetch_add(1, Ordering::SeqCst);
    })
    .unwrap();
    // Both workers stay stuck until after the call returns: had it waited
    // for them, the watchdog would fire.
    let report = watchdog("shutdown_timeout", BOUND, move || pool.shutdown_timeout(Duration::from_millis(20)));
    match &report {
        ShutdownReport::TimedOut { cancelled, still_running } => {
            assert_eq!(cancelled.at(Priority::HIGH), 1);
            assert_eq!(cancelled.at(Priority::LOW), 3);
            assert_eq!(*still_running, 2);
        }
        other => panic!("expected a timeout, got {other:?}"),
    }
    assert!(report.timed_out() && !report.drained());
    for handle in queued {
        assert!(matches!(handle.join(), Err(JobError::Cancelled)));
    }
    latch.open();
    // The stuck jobs finish on their detached workers.
    for (i, holder) in holders.into_iter().enumerate() {
        assert_eq!(watchdog("join of a stuck job", BOUND, move || holder.join().unwrap()), i);
    }
    assert_eq!(spawned_runs.load(Ordering::SeqCst), 0);
}

#[test]
fn shutdown_timeout_drains_when_the_jobs_finish_in_time() {
    let pool = Pool::builder().workers(2).build().unwrap();
    let handles: Vec<_> = (0..100).map(|i| pool.submit(Priority::LOW, move || i * 2).unwrap()).collect();
    let report = watchdog("shutdown_timeout", BOUND, move || pool.shutdown_timeout(BOUND));
    assert_eq!(report, ShutdownReport::Drained);
    for (i, handle) in handles.into_iter().enumerate() {
        assert_eq!(handle.join().unwrap(), i * 2);
    }
}

#[test]
fn shutdown_timeout_from_inside_a_job_detaches() {
    let pool = Pool::builder().workers(1).build().unwrap();
    let owner = Arc::new(Mutex::new(None::<Pool>));
    let owner_in_job = Arc::clone(&owner);
    let latch = Latch::new();
    let gate = latch.clone();
    let stopper = pool
        .submit(Priority::HIGH, move || {
            gate.wait();
            let pool = owner_in_job.lock().unwrap().take().expect("the test hands over the pool");
            pool.shutdown_timeout(Duration::from_secs(3600))
        })
        .unwrap();
    let after: Vec<_> = (0..3).map(|i| pool.submit(Priority::LOW, move || i).unwrap()).collect();
    *owner.lock().unwrap() = Some(pool);
    latch.open();
    assert_eq!(watchdog("join", BOUND, move || stopper.join().unwrap()), ShutdownReport::Detached);
    // The drain goes on: the queued jobs run.
    let values: Vec<_> = after.into_iter().map(|h| watchdog("join", BOUND, move || h.join().unwrap())).collect();
    assert_eq!(values, [0, 1, 2]);
}

#[test]
fn a_pool_whose_jobs_have_deadlines_shuts_down_cleanly() {
    // The timer thread is started, then stopped and joined by shutdown.
    for _ in 0..20 {
        let pool = Pool::builder().workers(1).build().unwrap();
        let job = pool.job(Priority::HIGH).max_wait(Duration::from_secs(3600)).submit(|| 1).unwrap();
        assert_eq!(job.join().unwrap(), 1);
        watchdog("shutdown", BOUND, move || pool.shutdown());
    }
}

/// How long a destructor or hook below waits for the test at most; only a
/// failing test waits this long.
const HELD: Duration = Duration::from_secs(5);

#[test]
fn shutdown_timeout_is_bounded_while_the_timer_drops_an_expired_closure() {
    watchdog("shutdown_timeout while the timer drops a closure", BOUND, || {
        let (pool, latch, holders) = held_pool(1);
        let (dropping_tx, dropping) = mpsc::channel();
        let (release, finished) = (Latch::new(), Arc::new(AtomicBool::new(false)));
        let slow = {
            let (release, finished) = (release.clone(), Arc::clone(&finished));
            OnDrop(move || {
                let _ = dropping_tx.send(());
                release.wait_timeout(HELD);
                finished.store(true, Ordering::SeqCst);
            })
        };
        // Expired at once: the timer thread drops the closure.
        let late = pool.job(Priority::LOW).max_wait(Duration::ZERO).submit(move || drop(slow)).unwrap();
        recv(&dropping, "the timer dropping the expired closure");
        latch.open();
        for holder in holders {
            holder.join().unwrap();
        }
        // Every job has ended; at rest, the worker has also discarded the
        // dead entry of the expired one.
        assert!(pool.wait_idle());
        let report = pool.shutdown_timeout(Duration::from_millis(200));
        let returned_during_the_drop = !finished.load(Ordering::SeqCst);
        release.open();
        assert!(returned_during_the_drop, "shutdown_timeout waited for the timer thread's destructor call");
        // The timer thread is detached; the worker too if it was slow to exit.
        assert!(matches!(report, ShutdownReport::DrainedDetached { threads: 1..=2 }), "{report:?}");
        assert!(matches!(late.join(), Err(JobError::Expired)));
    });
}

#[test]
fn shutdown_timeout_reports_drained_only_once_every_thread_is_joined() {
    watchdog("shutdown_timeout while stop hooks run", BOUND, || {
        let release = Latch::new();
        let stopped = Arc::new(AtomicUsize::new(0));
        let pool = {
            let (release, stopped) = (release.clone(), Arc::clone(&stopped));
            Pool::builder()
                .workers(2)
                .on_thread_stop(move |_| {
                    release.wait_timeout(HELD);
                    stopped.fetch_add(1, Ordering::SeqCst);
                })
                .build()
                .unwrap()
        };
        // Nothing was ever queued and both workers are asleep: drained at
        // once. Both stop hooks wait for the test, so neither worker thread
        // can have exited. (`wait_idle` counts the loops that have begun: a
        // worker still starting up would be awake at the shutdown, as seen
        // twice in 120 runs beside the other tests; so wait for both idle.)
        while pool.metrics().workers.idle < 2 {
            thread::sleep(Duration::from_millis(1));
        }
        pool.wait_idle();
        let report = pool.shutdown_timeout(Duration::ZERO);
        let stopped_then = stopped.load(Ordering::SeqCst);
        release.open();
        assert_eq!(stopped_then, 0, "the stop hooks ran to their end before the call returned");
        assert_eq!(report, ShutdownReport::DrainedDetached { threads: 2 }, "both workers are still in their hooks");
        assert!(report.drained());
    });
}

#[cfg(target_os = "linux")]
#[test]
fn shutdown_timeout_reports_drained_when_every_thread_was_joined() {
    watchdog("shutdown_timeout of an idle pool", BOUND, || {
        let pool = Pool::builder().workers(2).thread_name(|i| format!("drained-{i}")).build().unwrap();
        let expiring = pool.job(Priority::LOW).max_wait(Duration::from_secs(3600)).submit(|| 1).unwrap();
        assert_eq!(expiring.join().unwrap(), 1);
        assert_eq!(pool.shutdown_timeout(BOUND), ShutdownReport::Drained);
        assert!(common::named("drained-").is_empty(), "Drained, but a worker thread is still alive");
    });
}

#[test]
fn an_expired_closure_that_owns_its_pool_shuts_it_down_from_the_timer_thread() {
    watchdog("a pool dropped by the timer", BOUND, || {
        let (pool, latch, holders) = held_pool(1);
        let slot = Arc::new(Mutex::new(None::<Pool>));
        let (events_tx, events) = mpsc::channel();
        let owner = {
            let slot = Arc::clone(&slot);
            OnDrop(move || {
                let pool = slot.lock().unwrap().take();
                events_tx.send("dropping").unwrap();
                // A graceful shutdown on the timer thread: it waits for the
                // drain, which includes this job's dead entry, popped by a
                // worker that must not wait for this destructor.
                drop(pool);
                events_tx.send("dropped").unwrap();
            })
        };
        let spawner = pool.spawner();
        *slot.lock().unwrap() = Some(pool);
        let late = spawner.job(Priority::LOW).max_wait(Duration::ZERO).submit(move || drop(owner)).unwrap();
        assert_eq!(recv(&events, "the timer dropping the closure"), "dropping");
        latch.open();
        assert_eq!(recv(&events, "the shutdown from the timer thread"), "dropped");
        for (i, holder) in holders.into_iter().enumerate() {
            assert_eq!(holder.join().unwrap(), i);
        }
        assert!(matches!(late.join(), Err(JobError::Expired)));
        assert!(spawner.spawn(Priority::LOW, || {}).is_err(), "the pool was shut down");
    });
}
