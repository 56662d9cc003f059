//! Loom models 8 and 8b: reserved threads, the wake-up of a reserved level and the drain.

use super::*;

/// A fixed pool of one worker and one reserved thread (level 0), two
/// levels, with its panic handler as [`build`]'s.
fn reserved_pool() -> Pool {
    build(Pool::builder().workers(1).reserved_threads(1).levels(2))
}

/// The only worker runs a LOW job that blocks until a HIGH job has run, and
/// the HIGH job is pushed while the reserved thread searches, registers,
/// re-checks or parks: the push must wake the reserved thread (the worker
/// it could also wake is busy), so the HIGH job runs and the LOW job ends
/// without shutdown's help. Waking only a regular sleeper (`wake_one` for
/// a reserved level) deadlocks here.
#[test]
fn model_8_a_high_push_wakes_the_reserved_thread_while_the_worker_is_busy() {
    model_capped(MAX_PREEMPTIONS_TWO_WORKERS, || {
        let pool = reserved_pool();
        let (high_ran, low_done) = (Latch::new(), Latch::new());
        let (wait_high, signal_low) = (high_ran.clone(), low_done.clone());
        pool.spawn(Priority::LOW, move || {
            wait_high.wait();
            signal_low.set();
        })
        .expect("the pool is open");
        pool.spawn(Priority::HIGH, move || high_ran.set()).expect("the pool is open");
        low_done.wait();
    });
}

/// Shutdown of a pool with a reserved thread while a HIGH job on it (or on
/// the worker) spawns a HIGH and a LOW child: the drain counts the reserved
/// thread's loop, so it is not declared while that job runs, and every job
/// runs exactly once before shutdown returns; every thread is joined.
#[test]
fn model_8b_shutdown_drains_a_pool_with_a_reserved_thread() {
    model_capped(MAX_PREEMPTIONS_TWO_WORKERS, || {
        let pool = reserved_pool();
        let spawner = pool.spawner();
        let ran = counter();
        let parent_ran = Arc::clone(&ran);
        pool.spawn(Priority::HIGH, move || {
            for priority in [Priority::HIGH, Priority::LOW] {
                let child_ran = Arc::clone(&parent_ran);
                spawner
                    .spawn(priority, move || {
                        child_ran.fetch_add(1, Ordering::SeqCst);
                    })
                    .expect("a running job may spawn");
            }
            parent_ran.fetch_add(1, Ordering::SeqCst);
        })
        .expect("the pool is open");
        drop(pool);
        assert_eq!(ran.load(Ordering::SeqCst), 3, "shutdown returned before every job ran");
    });
}
