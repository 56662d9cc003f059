//! Loom models of the pool's protocols. Run them with `.ci/loom.sh`.
//!
//! Each model runs the crate's real code (the worker loop, the sleep
//! protocol, the lifecycle, the pick rule, growth and retirement of dynamic
//! pools, and the metrics roster the worker loop touches) on loom's
//! instrumented primitives (see `sync.rs`) and queue stand-ins (see
//! `queue/deque.rs`); loom then explores every interleaving of the model's threads
//! up to `LOOM_MAX_PREEMPTIONS` preemptions (capped lower for some models,
//! see the constants below). A lost wake-up shows up as loom's "deadlock"
//! failure (a thread waits for a job that no awake worker will run), a
//! leaked pool as "Arc leaked", and a broken count as a failed assertion.
//! `limits::loom_models` holds two more models, of retirement racing the
//! sleep protocol with the calls composed by hand.
//!
//! Models 1 to 6 are here; 7 and 7b (a scope) are in `scope.rs`, 8 and 8b
//! (reserved threads) in `reserved.rs`, 9 to 9d (promotion) in
//! `promote.rs`. `docs/design.md` ("Invariants")
//! lists which invariant each model checks.

use std::sync::Once;

use loom::sync::Condvar;

use crate::job::Job;
use crate::queue::levels::{Levels, Pick};
use crate::queue::local::{LocalQueues, SharedQueues};
use crate::sync::{Arc, AtomicUsize, Mutex, Ordering, lock, thread};
use crate::{Builder, Pool, Priority, SpawnErrorKind};

/// The preemption bound when `LOOM_MAX_PREEMPTIONS` is not set. Without a
/// bound loom explores every interleaving, which for the pool-level models
/// takes far longer than CI allows.
const DEFAULT_PREEMPTIONS: usize = 3;

/// The most preemptions a model with two spinning workers and a third thread
/// is explored with, whatever `LOOM_MAX_PREEMPTIONS` says. A worker that
/// finds a job counted but not yet pushed yields and picks again. Choosing
/// which thread runs after a yield costs loom no preemption, so from two
/// preemptions on it also explores the unfair schedules in which the two
/// workers yield to each other forever while the thread that is pushing the
/// job never runs again: a single interleaving then exceeds any branch
/// limit (measured: model 5b fails after 444 s on a 20,000-branch path).
/// No real scheduler starves a runnable thread like that, and the pool's
/// progress assumes a fair one; the single-worker models cover the same
/// protocols at the full bound.
const MAX_PREEMPTIONS_TWO_WORKERS: usize = 1;

/// The most preemptions the pool-level dynamic-pool model (6) is explored
/// with, whatever `LOOM_MAX_PREEMPTIONS` says. Its executions are long (a
/// worker thread is started, runs a job, times out, retires, and another
/// may start), so the state space grows about seventeenfold per
/// preemption: about 785,000 interleavings at 4 (some 130 s on one core),
/// 41,000 at 3 (7 s). A bound of 3 still finds a job stranded by a
/// retirement that skips its re-checks (found already at 2), and
/// `limits::loom_models` check the same races, composed by hand, at the
/// full bound.
const MAX_PREEMPTIONS_DYNAMIC: usize = 3;

/// The most preemptions model 1c (two pushers and one worker) is explored
/// with (2). Its race, a worker taking one pusher's job while the other
/// pusher is preempted mid-push and then parking, is reached at 2; the
/// same race without the pool around it is
/// `levels::loom_models::a_returned_spawn_is_never_hidden_by_a_preempted_one`.
const MAX_PREEMPTIONS_TWO_PUSHERS: usize = 2;

/// The most preemptions models 2 and 2b (shutdown racing a spawn, and a
/// zero timeout racing a spinning worker) are explored with: about 47,000
/// and 30,000 interleavings (a few seconds each) at 3; at 4 they take
/// minutes, since every thread that ends or falls asleep runs the drain
/// check. A
/// drain check that reads the spawns under way with plain loads instead of
/// read-modify-writes (the stranded-job race of `lifecycle.rs`) fails here
/// at 2 already.
const MAX_PREEMPTIONS_SHUTDOWN_RACE: usize = 3;

/// The payload of the panics the models cause on purpose.
const PLANNED_PANIC: &str = "priopool loom model: a planned panic";

/// Checks `f` under loom with the crate's bounds; see [`model_capped`].
fn model(f: impl Fn() + Sync + Send + 'static) {
    model_capped(usize::MAX, f);
}

/// Checks `f` under loom, with at most `cap` preemptions per interleaving
/// (and at most `LOOM_MAX_PREEMPTIONS`, default [`DEFAULT_PREEMPTIONS`]).
fn model_capped(cap: usize, f: impl Fn() + Sync + Send + 'static) {
    silence_planned_panics();
    let mut builder = loom::model::Builder::new();
    let bound = builder.preemption_bound.unwrap_or(DEFAULT_PREEMPTIONS).min(cap);
    builder.preemption_bound = Some(bound);
    // A pool-level execution takes a few hundred scheduling decisions; the
    // default cap of 1,000 is close enough to fail on a long interleaving.
    builder.max_branches = builder.max_branches.max(20_000);
    let iterations = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = std::sync::Arc::clone(&iterations);
    builder.check(move || {
        counted.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        f();
    });
    // Shown with `--nocapture`: how much of the state space was explored.
    let explored = iterations.load(std::sync::atomic::Ordering::Relaxed);
    println!("explored {explored} interleavings with at most {bound} preemptions");
}

/// Keeps the default panic hook from printing the planned panics once per
/// explored interleaving; every other panic is reported as usual.
fn silence_planned_panics() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if info.payload().downcast_ref::<&str>() != Some(&PLANNED_PANIC) {
                default(info);
            }
        }));
    });
}

/// A fixed pool of `workers` threads and `levels` priority levels whose
/// panic handler accepts only the planned panic.
fn pool(workers: usize, levels: usize) -> Pool {
    build(Pool::builder().workers(workers).levels(levels))
}

/// A dynamic pool of `min..=max` workers and one level (its keep-alive runs
/// out at once: time does not pass under loom, see `sync.rs`).
fn dynamic_pool(min: usize, max: usize) -> Pool {
    build(Pool::builder().min_workers(min).max_workers(max).levels(1))
}

/// Builds `builder` with a panic handler that accepts only the planned
/// panic.
fn build(builder: Builder) -> Pool {
    builder
        .panic_handler(|payload| {
            // The pool catches a panicking handler too, so an assertion here
            // would be swallowed: a model job that panics by surprise (a
            // failed `expect` inside it) must stop the whole run instead.
            let message = crate::job::panic_message(payload.as_ref());
            if message != PLANNED_PANIC {
                eprintln!("a model's job panicked unexpectedly: {message}");
                std::process::abort();
            }
        })
        .build()
        .expect("a model's pool builds")
}

/// A one-shot flag a thread can block on (loom's mutex and condvar, so a
/// wait that can never end is reported by loom as a deadlock).
#[derive(Clone)]
struct Latch(Arc<(Mutex<bool>, Condvar)>);

impl Latch {
    fn new() -> Latch {
        Latch(Arc::new((Mutex::new(false), Condvar::new())))
    }

    fn set(&self) {
        let (flag, condvar) = &*self.0;
        *lock(flag) = true;
        condvar.notify_all();
    }

    fn wait(&self) {
        let (flag, condvar) = &*self.0;
        let mut set = lock(flag);
        while !*set {
            set = condvar.wait(set).expect("the latch's lock is never poisoned");
        }
    }
}

/// A shared counter for the models' exact counts.
fn counter() -> Arc<AtomicUsize> {
    Arc::new(AtomicUsize::new(0))
}

// ---------------------------------------------------------------------------
// (1) A push racing a worker that is falling asleep.
// ---------------------------------------------------------------------------

/// A job spawned from outside while the only worker searches, registers as
/// a sleeper, re-checks or parks, is run without any second push: the main
/// thread waits for it *before* shutting down (shutdown wakes every worker
/// and would hide a lost wake-up).
#[test]
fn model_1_push_racing_a_worker_falling_asleep() {
    model(|| {
        let pool = pool(1, 1);
        let ran = Latch::new();
        let done = ran.clone();
        pool.spawn(Priority::HIGH, move || done.set()).expect("the pool is open");
        ran.wait();
    });
}

/// The same race inside the pool: a running job spawns a child onto its own
/// worker's deque and then blocks until the child has run, so only the
/// other worker (searching, falling asleep or asleep) can take it, by
/// stealing. Proves the wake-up after a local push and stealing from a
/// peer's deque.
#[test]
fn model_1b_child_job_is_stolen_by_a_peer_falling_asleep() {
    model_capped(MAX_PREEMPTIONS_TWO_WORKERS, || {
        let pool = pool(2, 1);
        let spawner = pool.spawner();
        let parent_done = Latch::new();
        let parent_signal = parent_done.clone();
        pool.spawn(Priority::HIGH, move || {
            let child_ran = Latch::new();
            let child_signal = child_ran.clone();
            spawner.spawn(Priority::HIGH, move || child_signal.set()).expect("a running job may spawn");
            child_ran.wait();
            parent_signal.set();
        })
        .expect("the pool is open");
        parent_done.wait();
    });
}

/// Two threads each push a job while the only worker runs, searches or falls
/// asleep; either pusher may be preempted anywhere in its spawn. Both jobs
/// run without any further push: whichever push the worker's re-check
/// misses, its pusher's fence and load of `sleeping` find the sleeper. The
/// main thread waits for both before shutting down.
#[test]
fn model_1c_two_pushers_racing_a_worker_falling_asleep() {
    model_capped(MAX_PREEMPTIONS_TWO_PUSHERS, || {
        let pool = pool(1, 1);
        let spawner = pool.spawner();
        let (ran_a, ran_b) = (Latch::new(), Latch::new());
        let done_b = ran_b.clone();
        let pusher = thread::spawn(move || {
            spawner.spawn(Priority::HIGH, move || done_b.set()).expect("the pool is open");
        });
        let done_a = ran_a.clone();
        pool.spawn(Priority::HIGH, move || done_a.set()).expect("the pool is open");
        ran_a.wait();
        ran_b.wait();
        pusher.join().expect("the pusher does not panic");
    });
}

// ---------------------------------------------------------------------------
// (2) Shutdown racing a submit from another thread.
// ---------------------------------------------------------------------------

/// A producer thread spawns while the main thread shuts the pool down. The
/// job is either accepted and has run by the time shutdown returns, or
/// handed back unrun with `SpawnErrorKind::Shutdown`; never both, never
/// neither; and shutdown returns.
#[test]
fn model_2_shutdown_racing_a_spawn_from_another_thread() {
    model_capped(MAX_PREEMPTIONS_SHUTDOWN_RACE, || {
        let pool = pool(1, 1);
        let spawner = pool.spawner();
        let ran = counter();
        let job_ran = Arc::clone(&ran);
        let producer = thread::spawn(move || {
            let job = move || {
                job_ran.fetch_add(1, Ordering::SeqCst);
            };
            match spawner.spawn(Priority::HIGH, job) {
                Ok(()) => true,
                Err(refused) => {
                    assert_eq!(refused.kind(), SpawnErrorKind::Shutdown);
                    drop(refused.into_inner()); // handed back, unrun
                    false
                }
            }
        });
        drop(pool); // shutdown: must return
        let ran_by_shutdown = ran.load(Ordering::SeqCst);
        let accepted = producer.join().expect("the producer does not panic");
        assert_eq!(ran_by_shutdown, usize::from(accepted), "accepted = {accepted}, yet ran {ran_by_shutdown} times");
        assert_eq!(ran.load(Ordering::SeqCst), usize::from(accepted));
    });
}

/// A job is queued, then `shutdown_timeout(0)` races the worker, which may
/// not have started, may be spinning after an empty pick, may be taking or
/// running the job, or asleep. Whatever the report says is exact: `Drained` or
/// `DrainedDetached` only once the job ran; `TimedOut` counts the job as
/// cancelled only if it never runs, and otherwise as still running unless
/// it had ended by the time the call returned. The job ends exactly once
/// either way. (A report that counts only busy workers as still running,
/// not one that took the job and has not started it, fails the third
/// assertion.)
#[test]
fn model_2b_shutdown_timeout_zero_racing_a_spinning_worker() {
    /// Counts the closure's drop, which ends the job whether it ran or not.
    struct Ended(Arc<AtomicUsize>, Latch);
    impl Drop for Ended {
        fn drop(&mut self) {
            self.0.fetch_add(1, Ordering::SeqCst);
            self.1.set();
        }
    }
    model_capped(MAX_PREEMPTIONS_SHUTDOWN_RACE, || {
        let pool = pool(1, 1);
        let (ran, ended, latch) = (counter(), counter(), Latch::new());
        let (job_ran, guard) = (Arc::clone(&ran), Ended(Arc::clone(&ended), latch.clone()));
        pool.spawn(Priority::HIGH, move || {
            let _guard = guard;
            job_ran.fetch_add(1, Ordering::SeqCst);
        })
        .expect("the pool is open");
        let report = pool.shutdown_timeout(std::time::Duration::ZERO);
        let ended_by_return = ended.load(Ordering::SeqCst);
        latch.wait(); // loom reports a deadlock if the job never ends
        let ran = ran.load(Ordering::SeqCst);
        assert_eq!(ended.load(Ordering::SeqCst), 1, "the job ended once");
        match report {
            crate::ShutdownReport::Drained | crate::ShutdownReport::DrainedDetached { .. } => {
                assert_eq!((ended_by_return, ran), (1, 1), "reported drained before the job ran");
            }
            crate::ShutdownReport::TimedOut { cancelled, still_running } => {
                if cancelled.total() == 1 {
                    assert_eq!((ended_by_return, ran), (1, 0), "a job reported cancelled ran, or was dropped late");
                } else if still_running == 0 {
                    assert_eq!(
                        (ended_by_return, ran),
                        (1, 1),
                        "a job neither cancelled nor running at the return had not ended"
                    );
                }
            }
            crate::ShutdownReport::Detached => panic!("called from outside the pool"),
        }
    });
}

// ---------------------------------------------------------------------------
// (3) Two workers racing for the last high job while a low job is queued.
// ---------------------------------------------------------------------------

/// Where the high-priority jobs of a pick-rule model start.
#[derive(Clone, Copy)]
enum HighJobs {
    /// One high job in the level-0 injector.
    OneInInjector,
    /// One high job in worker 0's local level-0 deque: worker 0 pops it,
    /// worker 1 can only steal it.
    OneInDeque,
    /// Two high jobs in the injector: each worker may take one.
    TwoInInjector,
    /// Three high jobs in the injector: a steal can lose the race for the
    /// front job (`Steal::Retry`) while high jobs are still queued.
    ThreeInInjector,
}

/// Two threads run the real pick rule ([`Levels::pick`]) over the real
/// queues until every level is empty. Whenever one of them takes the
/// low job, every high job must already be taken: in no queue and not in
/// flight. Every job is taken exactly once.
fn race_for_the_last_high_job(highs: HighJobs) {
    model(move || {
        let levels = Arc::new(Levels::new(2));
        let locals: Vec<LocalQueues<Job>> = (0..2).map(|_| LocalQueues::new(2)).collect();
        let peers: Arc<Vec<Arc<SharedQueues<Job>>>> =
            Arc::new(locals.iter().map(|local| Arc::clone(local.shared())).collect());

        levels.inject(1, Job::new(|| {}));
        let high_count = match highs {
            HighJobs::OneInInjector | HighJobs::OneInDeque => 1,
            HighJobs::TwoInInjector => 2,
            HighJobs::ThreeInInjector => 3,
        };
        for _ in 0..high_count {
            match highs {
                HighJobs::OneInDeque => locals[0].push(0, Job::new(|| {})),
                _ => levels.inject(0, Job::new(|| {})),
            }
        }

        let racers: Vec<_> = locals
            .into_iter()
            .enumerate()
            .map(|(index, local)| {
                let levels = Arc::clone(&levels);
                let peers = Arc::clone(&peers);
                thread::spawn(move || {
                    let mut taken = [0usize; 2];
                    loop {
                        match levels.pick(&local, &peers, index) {
                            Pick::Found(level, _job, _source) => {
                                if level == 1 {
                                    // The truth, read under the queues' locks.
                                    let high_left =
                                        levels.injector_holds_any(0) || peers.iter().any(|peer| peer.holds_any(0));
                                    assert!(!high_left, "worker {index} took the low job while a high job waited");
                                }
                                taken[level] += 1;
                            }
                            Pick::Contended => thread::yield_now(),
                            Pick::Empty => return taken,
                        }
                    }
                })
            })
            .collect();
        let mut taken = [0usize; 2];
        for racer in racers {
            let by_racer = racer.join().expect("a racer does not panic");
            taken[0] += by_racer[0];
            taken[1] += by_racer[1];
        }
        assert_eq!(taken, [high_count, 1], "every job is taken exactly once");
        assert!(!levels.any_queued(&peers));
    });
}

#[test]
fn model_3_race_for_the_last_high_job_in_the_injector() {
    race_for_the_last_high_job(HighJobs::OneInInjector);
}

#[test]
fn model_3b_race_for_the_last_high_job_in_a_worker_deque() {
    race_for_the_last_high_job(HighJobs::OneInDeque);
}

#[test]
fn model_3c_race_for_two_high_jobs_in_the_injector() {
    race_for_the_last_high_job(HighJobs::TwoInInjector);
}

#[test]
fn model_3d_race_for_high_jobs_after_a_lost_steal() {
    race_for_the_last_high_job(HighJobs::ThreeInInjector);
}

// ---------------------------------------------------------------------------
// (4) A job panicking while shutdown is in progress.
// ---------------------------------------------------------------------------

/// A job spawns a child and then panics while the main thread shuts the
/// pool down. Shutdown returns; the child (accepted during the drain because
/// its parent is a running job) has run exactly once; the panic reached the
/// panic handler exactly once. (Shutdown returning at all means the drain
/// check succeeded: workers exit only when it has.)
#[test]
fn model_4_job_panicking_during_shutdown() {
    model(|| {
        let panics = counter();
        let handler_panics = Arc::clone(&panics);
        let pool = Pool::builder()
            .workers(1)
            .levels(1)
            .panic_handler(move |_| {
                handler_panics.fetch_add(1, Ordering::SeqCst);
            })
            .build()
            .expect("a model's pool builds");
        let spawner = pool.spawner();
        let child_runs = counter();
        let child_counter = Arc::clone(&child_runs);
        pool.spawn(Priority::HIGH, move || {
            let child = move || {
                child_counter.fetch_add(1, Ordering::SeqCst);
            };
            spawner.spawn(Priority::HIGH, child).expect("a running job may spawn, even during the drain");
            std::panic::panic_any(PLANNED_PANIC);
        })
        .expect("the pool is open");
        drop(pool); // shutdown: must return
        assert_eq!(child_runs.load(Ordering::SeqCst), 1);
        assert_eq!(panics.load(Ordering::SeqCst), 1);
    });
}

// ---------------------------------------------------------------------------
// (5) The last handle dropped while a worker is parked.
// ---------------------------------------------------------------------------

/// The pool is dropped at once, while its worker is starting, searching,
/// falling asleep or parked. Shutdown returns, the worker thread ends (loom
/// reports a deadlock if it stays parked) and the shared state is freed
/// (loom reports a leaked `Arc` otherwise).
#[test]
fn model_5_last_handle_dropped_while_the_worker_starts_or_sleeps() {
    model(|| {
        let pool = pool(1, 2);
        drop(pool);
    });
}

/// As model 5, but the pool is dropped only once its worker has registered
/// as a sleeper, so every interleaving has the worker sleepy or parked when
/// the last handle goes.
#[test]
fn model_5a_last_handle_dropped_while_the_worker_is_parked() {
    model(|| {
        let pool = pool(1, 2);
        while pool.registry().sleep.sleepers() == 0 {
            thread::yield_now();
        }
        drop(pool);
    });
}

/// The last handle is dropped inside one of the pool's own jobs while the
/// other worker is asleep: shutdown cannot join from there, so it only
/// closes intake; both workers must still drain and exit on their own, and
/// the shared state must be freed by the last of them.
#[test]
fn model_5b_last_handle_dropped_inside_a_job_while_a_peer_is_parked() {
    model_capped(MAX_PREEMPTIONS_TWO_WORKERS, || {
        let pool = pool(2, 1);
        let spawner = pool.spawner();
        spawner.spawn(Priority::HIGH, move || drop(pool)).expect("the pool is open");
    });
}

// ---------------------------------------------------------------------------
// (6) Dynamic pools: growth, keep-alive retirement and resizing racing
//     pushes, at pool level (`limits::loom_models` has the same races with
//     the calls composed by hand).
// ---------------------------------------------------------------------------

/// A pool of `0..=1` workers starts its worker for the first job, and the
/// worker's keep-alive runs out (at once, under loom) just as the second
/// job is pushed. Each job runs without any further push and without
/// shutdown's help: the retiring worker sees the job and takes its slot
/// back, or the pusher finds the slot free and starts a new worker, or wakes
/// the worker before it gives up. Then shutdown joins every thread ever
/// started, retired ones included.
#[test]
fn model_6_push_racing_a_worker_that_retires_after_its_keep_alive() {
    model_capped(MAX_PREEMPTIONS_DYNAMIC, || {
        let pool = dynamic_pool(0, 1);
        for _ in 0..2 {
            let ran = Latch::new();
            let done = ran.clone();
            pool.spawn(Priority::HIGH, move || done.set()).expect("the pool is open");
            ran.wait();
        }
        drop(pool);
    });
}

/// A fixed pool of two workers is resized to one while a job is pushed:
/// one worker retires as surplus (checked before every pick), and the job
/// runs without a second push whichever worker that is, even if the
/// surplus worker was the one woken for it (it passes the wake-up on).
#[test]
fn model_6b_push_racing_a_resize_that_retires_a_surplus_worker() {
    model_capped(MAX_PREEMPTIONS_TWO_WORKERS, || {
        let pool = pool(2, 1);
        let spawner = pool.spawner();
        let ran = Latch::new();
        let done = ran.clone();
        let pusher = thread::spawn(move || {
            spawner.spawn(Priority::HIGH, move || done.set()).expect("the pool is open");
        });
        pool.set_workers(1).expect("a valid size");
        ran.wait();
        pusher.join().expect("the pusher does not panic");
        drop(pool);
    });
}

mod promote;
mod reserved;
mod scope;
