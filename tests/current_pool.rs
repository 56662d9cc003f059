//! `priopool::spawn`: from a running job, a spawn on that job's own pool
//! with no handle. Each job runs exactly once and on the right pool, also
//! with two pools, during the pool's drain, on a full bounded level, and
//! for a job that a pool's drop runs in a thread-local destructor; the job
//! hooks count as the job. Outside any pool's jobs (a plain thread, a
//! thread hook) the job comes back with `SpawnErrorKind::NotInPool`.
//!
//! Seen failing: with `spawn` answering `NotInPool` everywhere, every test
//! but the outside one; with `spawn` refusing once intake has closed (as a
//! spawn from outside is refused), the drain test; on d487951, which found
//! the pool through the worker's deques alone (`CURRENT`, gone by then),
//! the thread-local destructor test; with `spawn` passing
//! `WhenFull::Refuse`, the full-level test; with the pool found over the
//! worker thread's whole run, its thread hooks included, the hooks test.

mod common;

use std::cell::RefCell;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, mpsc};
use std::thread;

use common::{BOUND, Tally, recv, watchdog};
use priopool::{Pool, Priority, SpawnErrorKind};

/// The name prefix of the thread this runs on.
fn pool_of_thread() -> String {
    thread::current().name().unwrap_or("").split('-').next().unwrap_or("").to_owned()
}

#[test]
fn from_a_job_each_spawned_job_runs_once_on_that_pool() {
    watchdog("priopool::spawn on two pools", BOUND, || {
        const JOBS: usize = 1_000;
        let build = |name: &'static str| {
            Pool::builder().workers(2).thread_name(move |i| format!("{name}-{i}")).build().expect("the pool builds")
        };
        let (a, b) = (build("pa"), build("pb"));
        for (pool, name) in [(&a, "pa"), (&b, "pb")] {
            let runs: Arc<Vec<AtomicUsize>> = Arc::new((0..JOBS).map(|_| AtomicUsize::new(0)).collect());
            let (wrong_tx, wrong_rx) = mpsc::channel();
            let done = Arc::new(Tally::default());
            let (r, d) = (Arc::clone(&runs), Arc::clone(&done));
            pool.spawn(Priority::LOW, move || {
                for i in 0..JOBS {
                    let (runs, done, wrong) = (Arc::clone(&r), Arc::clone(&d), wrong_tx.clone());
                    let priority = if i % 2 == 0 { Priority::HIGH } else { Priority::LOW };
                    priopool::spawn(priority, move || {
                        runs[i].fetch_add(1, Ordering::Relaxed);
                        if pool_of_thread() != name {
                            wrong.send(pool_of_thread()).expect("the test waits");
                        }
                        done.add();
                    })
                    .unwrap_or_else(|e| panic!("a spawn from a job of {name} was refused: {e}"));
                }
            })
            .expect("the pool is open");
            done.wait_for(JOBS);
            assert!(pool.wait_idle());
            let counts: Vec<usize> = runs.iter().map(|n| n.load(Ordering::Relaxed)).collect();
            assert!(counts.iter().all(|&n| n == 1), "{name}: a job ran other than once: {counts:?}");
            assert_eq!(
                wrong_rx.try_iter().collect::<Vec<_>>(),
                Vec::<String>::new(),
                "{name}: jobs ran on another pool"
            );
        }
        a.shutdown();
        b.shutdown();
    });
}

#[test]
fn outside_any_pool_the_job_comes_back() {
    let ran = Arc::new(AtomicUsize::new(0));
    let r = Arc::clone(&ran);
    let refused = priopool::spawn(Priority::HIGH, move || {
        r.fetch_add(1, Ordering::Relaxed);
    })
    .expect_err("no pool runs on the test thread");
    assert_eq!(refused.kind(), SpawnErrorKind::NotInPool);
    assert!(refused.to_string().contains("outside the jobs of a pool"), "{refused}");
    refused.into_inner()();
    assert_eq!(ran.load(Ordering::Relaxed), 1, "the job came back intact and ran once, on the caller");
}

#[test]
fn during_the_drain_a_jobs_spawns_are_accepted_and_run() {
    watchdog("priopool::spawn during the drain", BOUND, || {
        let pool = Pool::builder().workers(2).build().expect("the pool builds");
        let spawner = pool.spawner();
        let ran = Arc::new(AtomicUsize::new(0));
        let (result_tx, result_rx) = mpsc::channel();
        let r = Arc::clone(&ran);
        pool.spawn(Priority::LOW, move || {
            // Wait until intake has closed: a spawn from outside the pool
            // (this helper thread) is refused from then on.
            thread::spawn(move || while spawner.spawn(Priority::LOW, || ()).is_ok() {})
                .join()
                .expect("the probe thread");
            let outcome = priopool::spawn(Priority::HIGH, move || {
                r.fetch_add(1, Ordering::Relaxed);
            });
            result_tx.send(outcome.map_err(|e| e.kind())).expect("the test waits");
        })
        .expect("the pool is open");
        pool.shutdown();
        assert_eq!(recv(&result_rx, "the draining job's spawn"), Ok(()));
        assert_eq!(ran.load(Ordering::Relaxed), 1, "shutdown returned before the accepted job ran");
    });
}

#[test]
fn an_unknown_level_is_refused_with_the_job() {
    watchdog("priopool::spawn at a level the pool lacks", BOUND, || {
        let pool = Pool::builder().workers(1).levels(2).build().expect("the pool builds");
        let (tx, rx) = mpsc::channel();
        pool.spawn(Priority::LOW, move || {
            let refused = priopool::spawn(Priority::level(5), || ()).expect_err("level 5 does not exist");
            tx.send(refused.kind()).expect("the test waits");
        })
        .expect("the pool is open");
        assert_eq!(recv(&rx, "the refusal"), SpawnErrorKind::UnknownLevel { level: 5, levels: 2 });
        pool.shutdown();
    });
}

thread_local! {
    static HOLD: RefCell<Option<Pool>> = const { RefCell::new(None) };
}

/// A job that a pool's drop runs on the dropping thread (`run_here`: the OS
/// refuses every thread start, `stack_size(1 << 46)`) in a thread-local
/// destructor, after the pool's own thread-locals are gone, is a running
/// job of the pool: its spawn is accepted, as a `Spawner`'s is there
/// (`issue_tls_run_here_spawn.rs`). The refused `priopool::spawn` on the
/// plain thread after `HOLD` is set up is the first use of the pool's
/// thread-locals there, so they are destroyed before `HOLD`.
#[test]
fn a_job_run_by_a_pool_dropped_in_a_thread_local_destructor_spawns_on_it() {
    watchdog("priopool::spawn from a job run in a thread-local destructor", BOUND, || {
        let (result_tx, result_rx) = mpsc::channel();
        let ran = Arc::new(AtomicUsize::new(0));
        let r = Arc::clone(&ran);
        thread::spawn(move || {
            let pool =
                Pool::builder().min_workers(0).max_workers(2).stack_size(1 << 46).build().expect("the pool builds");
            let spawner = pool.spawner();
            HOLD.with(|hold| *hold.borrow_mut() = Some(pool));
            let outside = priopool::spawn(Priority::LOW, || ()).map_err(|e| e.kind());
            assert_eq!(outside, Err(SpawnErrorKind::NotInPool), "a plain thread runs no pool's job");
            spawner
                .spawn(Priority::LOW, move || {
                    let child = priopool::spawn(Priority::LOW, move || {
                        r.fetch_add(1, Ordering::Relaxed);
                    });
                    result_tx.send(child.map_err(|e| e.kind())).expect("the test waits");
                })
                .expect("the pool is open");
            // The thread ends: `HOLD`'s destructor drops the pool, whose
            // shutdown runs the job and its child here.
        })
        .join()
        .expect("the thread exits normally");
        assert_eq!(recv(&result_rx, "the job's spawn"), Ok(()), "a running job of the pool was refused");
        assert_eq!(ran.load(Ordering::Relaxed), 1, "the child ran once, before the pool's drop returned");
    });
}

/// A job of the pool whose level is at its capacity spawns there at once:
/// neither refused with `Full` nor left waiting for room that only the
/// worker it holds could make (the pool's one worker runs it).
#[test]
fn from_a_job_a_full_level_takes_the_job_without_waiting() {
    watchdog("priopool::spawn on a full level", BOUND, || {
        let pool = Pool::builder().workers(1).levels(2).capacity(Priority::LOW, 1).build().expect("the pool builds");
        let (go_tx, go_rx) = mpsc::channel::<()>();
        let (result_tx, result_rx) = mpsc::channel();
        let done = Arc::new(Tally::default());
        let d = Arc::clone(&done);
        pool.spawn(Priority::HIGH, move || {
            go_rx.recv().expect("the test releases the job");
            let child = priopool::spawn(Priority::LOW, move || d.add());
            result_tx.send(child.map_err(|e| e.kind())).expect("the test waits");
        })
        .expect("the pool is open");
        // The worker holds the HIGH job: this LOW job stays queued, and the
        // level is full until the HIGH job has ended.
        let d = Arc::clone(&done);
        pool.spawn(Priority::LOW, move || d.add()).expect("the level has room");
        let full = pool.try_spawn(Priority::LOW, || ()).map_err(|e| e.kind());
        assert_eq!(full, Err(SpawnErrorKind::Full), "the level is full");
        go_tx.send(()).expect("the job waits");
        assert_eq!(recv(&result_rx, "the job's spawn"), Ok(()), "a job's spawn on a full level was refused");
        done.wait_for(2);
        assert!(pool.wait_idle());
        assert_eq!(done.get(), 2, "the queued job and the child ran once each");
        pool.shutdown();
    });
}

/// The thread hooks run outside the worker's jobs: `priopool::spawn` there
/// hands the job back with `NotInPool`. The job hooks run around a job on
/// its worker and count as that job: their spawns are accepted and run.
#[test]
fn the_thread_hooks_are_not_in_a_pool_the_job_hooks_are() {
    watchdog("priopool::spawn from hooks", BOUND, || {
        let (hook_tx, hook_rx) = mpsc::channel::<(&str, Result<(), SpawnErrorKind>)>();
        let ran = Arc::new(Tally::default());
        let spawn_from = move |tx: &mpsc::Sender<_>, hook: &'static str, ran: &Arc<Tally>| {
            let ran = Arc::clone(ran);
            let outcome = priopool::spawn(Priority::LOW, move || ran.add()).map_err(|e| e.kind());
            let _ = tx.send((hook, outcome));
        };
        // The job hooks spawn around the first job only (a spawned job
        // would call them again).
        let first = Arc::new(AtomicUsize::new(0));
        let (t1, t2, t3, t4) = (hook_tx.clone(), hook_tx.clone(), hook_tx.clone(), hook_tx);
        let (r1, r2, r3, r4) = (Arc::clone(&ran), Arc::clone(&ran), Arc::clone(&ran), Arc::clone(&ran));
        let (f1, f2) = (Arc::clone(&first), Arc::clone(&first));
        let pool = Pool::builder()
            .workers(1)
            .on_thread_start(move |_| spawn_from(&t1, "on_thread_start", &r1))
            .on_thread_stop(move |_| spawn_from(&t2, "on_thread_stop", &r2))
            .before_job(move |_| {
                if f1.load(Ordering::SeqCst) == 0 {
                    spawn_from(&t3, "before_job", &r3);
                }
            })
            .after_job(move |_, _, _| {
                if f2.fetch_add(1, Ordering::SeqCst) == 0 {
                    spawn_from(&t4, "after_job", &r4);
                }
            })
            .build()
            .expect("the pool builds");
        pool.spawn(Priority::LOW, || ()).expect("the pool is open");
        ran.wait_for(2);
        pool.shutdown();
        // Every hook has run: the worker has been joined.
        let mut outcomes: Vec<_> = hook_rx.try_iter().collect();
        outcomes.sort_by_key(|&(hook, _)| hook);
        assert_eq!(
            outcomes,
            [
                ("after_job", Ok(())),
                ("before_job", Ok(())),
                ("on_thread_start", Err(SpawnErrorKind::NotInPool)),
                ("on_thread_stop", Err(SpawnErrorKind::NotInPool)),
            ]
        );
        assert_eq!(ran.get(), 2, "the job hooks' jobs ran once each, the thread hooks' none");
    });
}
