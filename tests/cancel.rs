//! Cancellation: through a handle before and while a job runs, through a
//! `CancelHandle` from another thread, racing the workers, and by
//! `Pool::shutdown_now`.
//!
//! A job cancelled before it starts never runs, and its closure is dropped
//! before `cancel` returns, also when an earlier cancel or `shutdown_now`
//! is still dropping it on another thread (before the fix the second
//! `cancel` said `Prevented` at once, the captures alive; seen by letting
//! it return or block, from `/proc`, before the drop may end), though not
//! when called from that destructor itself; when cancels race the workers,
//! exactly one side wins each job. `shutdown_now` cancels and drops every queued job before
//! it returns, while the workers are still busy, and also the jobs that
//! running jobs spawn during it; from inside a job it does not wait for
//! itself.

mod common;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak, mpsc};
use std::thread;
use std::time::Duration;

use common::{BOUND, LONG_BOUND, Latch, OnDrop, drop_counter, drop_reporter, recv, watchdog};
use priopool::{CancelHandle, CancelOutcome, JobContext, JobError, JobHandle, Pool, Priority, SpawnErrorKind};

/// A one-worker pool whose worker is held by a job blocked on the returned
/// latch; the job has started when this returns.
fn held_pool(levels: usize) -> (Pool, Latch, JobHandle<&'static str>) {
    let pool = Pool::builder().workers(1).levels(levels).build().unwrap();
    let latch = Latch::new();
    let (started_tx, started) = mpsc::channel();
    let gate = latch.clone();
    let holder = pool
        .submit(Priority::HIGH, move || {
            started_tx.send(()).unwrap();
            gate.wait();
            "holder"
        })
        .unwrap();
    recv(&started, "start of the holding job");
    (pool, latch, holder)
}

#[test]
fn cancel_before_start_drops_the_closure_before_returning_and_the_job_never_runs() {
    let (pool, latch, holder) = held_pool(2);
    let drops = Arc::new(AtomicUsize::new(0));
    let ran = Arc::new(AtomicBool::new(false));
    let guard = drop_counter(&drops);
    let ran_in_job = Arc::clone(&ran);
    let job = pool
        .submit(Priority::HIGH, move || {
            let _guard = guard;
            ran_in_job.store(true, Ordering::SeqCst);
        })
        .unwrap();

    assert_eq!(job.cancel(), CancelOutcome::Prevented);
    // Structural: the only worker is held, so only `cancel` can have dropped it.
    assert_eq!(drops.load(Ordering::SeqCst), 1, "cancel() returned before dropping the closure");
    assert!(job.is_finished());
    assert_eq!(job.cancel(), CancelOutcome::Prevented, "a second cancel reports the same");

    latch.open();
    assert_eq!(holder.join().unwrap(), "holder");
    assert!(matches!(job.join(), Err(JobError::Cancelled)));
    pool.shutdown();
    assert!(!ran.load(Ordering::SeqCst), "a cancelled job ran");
    assert_eq!(drops.load(Ordering::SeqCst), 1, "the closure was dropped twice");
}

/// A queued job whose closure, when dropped, says so on the returned
/// receiver and then waits for `release`; the weak pointer is to one of its
/// captures, freed only after that wait.
fn slow_to_drop(pool: &Pool, release: &Latch) -> (JobHandle<()>, mpsc::Receiver<()>, Weak<()>) {
    let capture = Arc::new(());
    let alive = Arc::downgrade(&capture);
    let (dropping_tx, dropping) = mpsc::channel();
    let release = release.clone();
    let slow = OnDrop(move || {
        let _keep = &capture;
        let _ = dropping_tx.send(());
        release.wait();
    });
    let job = pool.submit(Priority::LOW, move || drop(slow)).unwrap();
    (job, dropping, alive)
}

/// Cancels `job` on a thread named `name` while another thread is dropping
/// its closure (blocked on `release`), opens `release` once that cancel
/// has returned or blocks, and returns the cancel's outcome with how many
/// strong pointers to the closure's capture were alive when it returned.
#[cfg(target_os = "linux")]
fn cancel_while_dropped(job: &JobHandle<()>, alive: Weak<()>, release: &Latch, name: &str) -> (CancelOutcome, usize) {
    let again = job.cancel_handle();
    let (report_tx, report) = mpsc::channel();
    thread::Builder::new()
        .name(name.to_owned())
        .spawn(move || {
            let outcome = again.cancel();
            report_tx.send((outcome, alive.strong_count())).unwrap();
        })
        .unwrap();
    let early = common::recv_unless_asleep(&report, name);
    release.open();
    early.unwrap_or_else(|| recv(&report, "the second cancel's outcome"))
}

#[cfg(target_os = "linux")]
#[test]
fn cancel_returns_prevented_only_once_an_earlier_cancel_has_dropped_the_closure() {
    watchdog("two cancels of one job", BOUND, || {
        let (pool, latch, holder) = held_pool(2);
        let release = Latch::new();
        let (job, dropping, alive) = slow_to_drop(&pool, &release);
        let first = job.cancel_handle();
        let first = thread::spawn(move || first.cancel());
        recv(&dropping, "the first cancel dropping the closure");
        let (outcome, alive_then) = cancel_while_dropped(&job, alive, &release, "cancel-again");
        assert_eq!(outcome, CancelOutcome::Prevented);
        assert_eq!(alive_then, 0, "cancel() said Prevented while the closure's captures were still alive");
        assert_eq!(first.join().unwrap(), CancelOutcome::Prevented);
        assert!(matches!(job.join(), Err(JobError::Cancelled)));
        latch.open();
        holder.join().unwrap();
        pool.shutdown();
    });
}

#[cfg(target_os = "linux")]
#[test]
fn cancel_returns_prevented_only_once_shutdown_now_has_dropped_the_closure() {
    watchdog("cancel racing shutdown_now's sweep", BOUND, || {
        let (pool, latch, holder) = held_pool(2);
        let release = Latch::new();
        let (job, dropping, alive) = slow_to_drop(&pool, &release);
        let stopping = thread::spawn(move || pool.shutdown_now().total());
        recv(&dropping, "the sweep dropping the closure");
        let (outcome, alive_then) = cancel_while_dropped(&job, alive, &release, "cancel-in-sweep");
        assert_eq!(outcome, CancelOutcome::Prevented);
        assert_eq!(alive_then, 0, "cancel() said Prevented while the sweep was still dropping the closure");
        latch.open();
        assert_eq!(holder.join().unwrap(), "holder");
        assert_eq!(stopping.join().unwrap(), 1);
    });
}

#[test]
fn a_cancel_from_the_closures_own_destructor_does_not_wait_for_itself() {
    watchdog("cancel from the closure's destructor", BOUND, || {
        let (pool, latch, holder) = held_pool(2);
        let own: Arc<OnceLock<CancelHandle>> = Arc::default();
        let (inner_tx, inner) = mpsc::channel();
        let in_drop = Arc::clone(&own);
        let guard = OnDrop(move || {
            let _ = inner_tx.send(in_drop.get().map(CancelHandle::cancel));
        });
        let job = pool.submit(Priority::LOW, move || drop(guard)).unwrap();
        assert!(own.set(job.cancel_handle()).is_ok());
        assert_eq!(job.cancel(), CancelOutcome::Prevented);
        assert_eq!(recv(&inner, "the destructor's cancel"), Some(CancelOutcome::Prevented));
        latch.open();
        holder.join().unwrap();
        pool.shutdown();
    });
}

#[test]
fn cancel_after_the_job_ended_is_too_late() {
    let pool = Pool::builder().workers(1).build().unwrap();
    let job = pool.submit(Priority::LOW, || 7).unwrap();
    let canceller = job.cancel_handle();
    let job = watchdog("join", BOUND, move || job.join().map_err(|e| e.to_string()));
    assert_eq!(job, Ok(7));
    assert_eq!(canceller.cancel(), CancelOutcome::TooLate);
    assert!(canceller.is_finished());
}

#[test]
fn a_running_job_sees_the_cancellation_through_its_context() {
    let pool = Pool::builder().workers(1).build().unwrap();
    let (started_tx, started) = mpsc::channel();
    let (woken_tx, woken) = mpsc::channel();
    let latch = Latch::new();
    let gate = latch.clone();
    let job = pool
        .job(Priority::HIGH)
        .submit_with_context(move |ctx: &JobContext| {
            started_tx.send(()).unwrap();
            // Returns early only when cancelled; a lost wake-up fails the
            // test (watchdog) instead of hanging it.
            let cancelled = ctx.wait_for_cancel(LONG_BOUND);
            woken_tx.send(cancelled).unwrap();
            gate.wait(); // still running while the test cancels again
            assert!(ctx.is_cancelled());
            "stopped"
        })
        .unwrap();
    recv(&started, "start of the job");
    assert_eq!(job.cancel(), CancelOutcome::Requested);
    assert!(recv(&woken, "wake-up of wait_for_cancel by cancel()"));
    assert_eq!(job.cancel(), CancelOutcome::Requested, "a second request reports the same");
    latch.open();
    assert_eq!(watchdog("join of the cancelled job", BOUND, move || job.join().unwrap()), "stopped");
}

#[test]
fn wait_for_cancel_returns_false_when_nobody_cancels() {
    let pool = Pool::builder().workers(1).build().unwrap();
    let job =
        pool.job(Priority::HIGH).submit_with_context(|ctx| ctx.wait_for_cancel(Duration::from_millis(1))).unwrap();
    assert!(!watchdog("join", BOUND, move || job.join().unwrap()));
    let zero = pool.job(Priority::HIGH).submit_with_context(|ctx| ctx.wait_for_cancel(Duration::ZERO)).unwrap();
    assert!(!watchdog("join", BOUND, move || zero.join().unwrap()));
}

#[test]
fn a_cancel_handle_cancels_from_another_thread_while_this_one_joins() {
    let pool = Pool::builder().workers(1).build().unwrap();
    let (started_tx, started) = mpsc::channel();
    let job = pool
        .job(Priority::LOW)
        .submit_with_context(move |ctx: &JobContext| {
            started_tx.send(()).unwrap();
            assert!(ctx.wait_for_cancel(LONG_BOUND), "wait_for_cancel was not woken by cancel()");
            "cancelled while running"
        })
        .unwrap();
    let canceller = job.cancel_handle();
    let other = thread::spawn(move || {
        recv(&started, "start of the job");
        canceller.cancel()
    });
    assert_eq!(watchdog("join", BOUND, move || job.join().unwrap()), "cancelled while running");
    assert_eq!(other.join().unwrap(), CancelOutcome::Requested);
}

#[test]
fn a_spawned_job_with_options_can_be_cancelled_before_it_starts() {
    let (pool, latch, holder) = held_pool(2);
    let drops = Arc::new(AtomicUsize::new(0));
    let ran = Arc::new(AtomicBool::new(false));
    let (guard, ran_in_job) = (drop_counter(&drops), Arc::clone(&ran));
    let handle = pool
        .job(Priority::LOW)
        .spawn(move || {
            let _guard = guard;
            ran_in_job.store(true, Ordering::SeqCst);
        })
        .unwrap();
    assert!(!handle.is_finished());
    assert_eq!(handle.cancel(), CancelOutcome::Prevented);
    assert_eq!(drops.load(Ordering::SeqCst), 1);
    assert!(handle.is_finished());
    latch.open();
    holder.join().unwrap();
    pool.shutdown();
    assert!(!ran.load(Ordering::SeqCst));
}

#[test]
fn cancelling_races_the_workers_and_exactly_one_side_wins_each_job() {
    watchdog("the race", BOUND, || {
        const JOBS: usize = 2_000;
        let pool = Pool::builder().workers(2).build().unwrap();
        let runs: Arc<Vec<AtomicUsize>> = Arc::new((0..JOBS).map(|_| AtomicUsize::new(0)).collect());
        let handles: Vec<_> = (0..JOBS)
            .map(|i| {
                let runs = Arc::clone(&runs);
                pool.submit(Priority::HIGH, move || runs[i].fetch_add(1, Ordering::SeqCst)).unwrap()
            })
            .collect();
        // Cancel from the back, where the workers have not arrived yet, while
        // they run from the front.
        let outcomes: Vec<_> =
            handles.iter().rev().map(JobHandle::cancel).collect::<Vec<_>>().into_iter().rev().collect();
        let mut prevented = 0;
        for (i, (handle, outcome)) in handles.into_iter().zip(outcomes).enumerate() {
            let result = handle.join();
            let runs = runs[i].load(Ordering::SeqCst);
            match outcome {
                CancelOutcome::Prevented => {
                    prevented += 1;
                    assert!(matches!(result, Err(JobError::Cancelled)), "job {i}: {result:?}");
                    assert_eq!(runs, 0, "job {i} ran after cancel() said it never would");
                }
                CancelOutcome::Requested | CancelOutcome::TooLate => {
                    assert!(result.is_ok(), "job {i}: {result:?}");
                    assert_eq!(runs, 1, "job {i}");
                }
                other => panic!("unexpected outcome {other:?}"),
            }
        }
        pool.shutdown();
        let total_runs: usize = runs.iter().map(|r| r.load(Ordering::SeqCst)).sum();
        assert_eq!(total_runs + prevented, JOBS);
    });
}

#[test]
fn shutdown_now_cancels_every_queued_job_before_it_returns_and_counts_them_by_level() {
    let (pool, latch, holder) = held_pool(2);
    let drops = Arc::new(AtomicUsize::new(0));
    let runs = Arc::new(AtomicUsize::new(0));
    let (dropped_tx, dropped) = mpsc::channel();
    let mut handles = Vec::new();
    for (id, priority) in
        [Priority::HIGH, Priority::HIGH, Priority::HIGH, Priority::LOW, Priority::LOW].into_iter().enumerate()
    {
        let (guard, runs) = (drop_reporter(id, &drops, &dropped_tx), Arc::clone(&runs));
        handles.push(
            pool.submit(priority, move || {
                let _guard = guard;
                runs.fetch_add(1, Ordering::SeqCst);
            })
            .unwrap(),
        );
    }
    for id in 5..7 {
        let (guard, runs) = (drop_reporter(id, &drops, &dropped_tx), Arc::clone(&runs));
        pool.spawn(Priority::LOW, move || {
            let _guard = guard;
            runs.fetch_add(1, Ordering::SeqCst);
        })
        .unwrap();
    }
    let spawner = pool.spawner();
    // The held worker is released only once all seven closures are dropped:
    // the sweep must drop them while the worker is still busy.
    let releaser = thread::spawn(move || {
        for _ in 0..7 {
            recv(&dropped, "drop of a queued closure");
        }
        latch.open();
    });
    let cancelled = watchdog("shutdown_now", BOUND, move || pool.shutdown_now());
    releaser.join().unwrap();

    assert_eq!(cancelled.at(Priority::HIGH), 3);
    assert_eq!(cancelled.at(Priority::LOW), 4);
    assert_eq!(cancelled.by_level(), &[3, 4]);
    assert_eq!(cancelled.total(), 7);
    assert_eq!(drops.load(Ordering::SeqCst), 7);
    assert_eq!(runs.load(Ordering::SeqCst), 0);
    assert_eq!(holder.join().unwrap(), "holder", "the running job was waited for");
    for handle in handles {
        assert!(matches!(handle.join(), Err(JobError::Cancelled)));
    }
    let refused = spawner.submit(Priority::HIGH, || ()).unwrap_err();
    assert_eq!(refused.kind(), SpawnErrorKind::Shutdown);
}

#[test]
fn shutdown_now_on_an_idle_pool_cancels_nothing() {
    let pool = Pool::builder().workers(2).levels(3).build().unwrap();
    let cancelled = watchdog("shutdown_now", BOUND, move || pool.shutdown_now());
    assert_eq!(cancelled.by_level(), &[0, 0, 0]);
}

#[test]
fn shutdown_now_does_not_count_jobs_already_cancelled_through_their_handle() {
    let (pool, latch, holder) = held_pool(2);
    let drops = Arc::new(AtomicUsize::new(0));
    let (dropped_tx, dropped) = mpsc::channel();
    let first = pool.submit(Priority::LOW, || ()).unwrap();
    let guard = drop_reporter(1, &drops, &dropped_tx);
    let second = pool.submit(Priority::LOW, move || drop(guard)).unwrap();
    assert_eq!(first.cancel(), CancelOutcome::Prevented);
    // Release the held worker only once the sweep has dropped `second`.
    let opener = thread::spawn(move || {
        recv(&dropped, "drop of the queued closure");
        latch.open();
    });
    let cancelled = watchdog("shutdown_now", BOUND, move || pool.shutdown_now());
    opener.join().unwrap();
    assert_eq!(cancelled.total(), 1);
    assert!(matches!(first.join(), Err(JobError::Cancelled)));
    assert!(matches!(second.join(), Err(JobError::Cancelled)));
    holder.join().unwrap();
}

#[test]
fn jobs_spawned_by_a_running_job_during_shutdown_now_are_cancelled_too() {
    let pool = Pool::builder().workers(1).build().unwrap();
    let spawner = pool.spawner();
    let runs = Arc::new(AtomicUsize::new(0));
    let drops = Arc::new(AtomicUsize::new(0));
    let (dropped_tx, dropped) = mpsc::channel();
    let (started_tx, started) = mpsc::channel();
    let (children_tx, children) = mpsc::channel();
    let parent_runs = Arc::clone(&runs);
    let parent = pool
        .submit(Priority::HIGH, move || {
            started_tx.send(()).unwrap();
            // The queued job's closure is dropped by shutdown_now's sweep,
            // so shutdown_now has begun when this returns.
            recv(&dropped, "drop of the queued job");
            let runs = Arc::clone(&parent_runs);
            spawner
                .spawn(Priority::LOW, move || {
                    runs.fetch_add(1, Ordering::SeqCst);
                })
                .unwrap();
            let runs = Arc::clone(&parent_runs);
            let child = spawner
                .submit(Priority::HIGH, move || {
                    runs.fetch_add(1, Ordering::SeqCst);
                })
                .unwrap();
            children_tx.send(child).unwrap();
        })
        .unwrap();
    recv(&started, "start of the parent");
    let (guard, queued_runs) = (drop_reporter(0, &drops, &dropped_tx), Arc::clone(&runs));
    pool.spawn(Priority::LOW, move || {
        let _guard = guard;
        queued_runs.fetch_add(1, Ordering::SeqCst);
    })
    .unwrap();

    let cancelled = watchdog("shutdown_now", BOUND, move || pool.shutdown_now());
    assert_eq!(cancelled.total(), 3, "{cancelled:?}");
    assert_eq!(runs.load(Ordering::SeqCst), 0);
    parent.join().unwrap();
    let child = recv(&children, "the child's handle");
    assert!(matches!(child.join(), Err(JobError::Cancelled)));
}

#[test]
fn shutdown_now_from_inside_a_job_cancels_the_queue_without_waiting_for_itself() {
    let pool = Pool::builder().workers(1).build().unwrap();
    let owner = Arc::new(Mutex::new(None::<Pool>));
    let owner_in_job = Arc::clone(&owner);
    let latch = Latch::new();
    let gate = latch.clone();
    let stopper = pool
        .submit(Priority::HIGH, move || {
            gate.wait();
            let pool = owner_in_job.lock().unwrap().take().expect("the test hands over the pool");
            pool.shutdown_now().total()
        })
        .unwrap();
    let queued: Vec<_> = (0..3).map(|i| pool.submit(Priority::LOW, move || i).unwrap()).collect();
    *owner.lock().unwrap() = Some(pool);
    latch.open();
    assert_eq!(watchdog("join of the stopping job", BOUND, move || stopper.join().unwrap()), 3);
    for handle in queued {
        assert!(matches!(handle.join(), Err(JobError::Cancelled)));
    }
}
