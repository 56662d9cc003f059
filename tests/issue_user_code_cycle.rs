//! A pool whose own code holds its `Spawner` is freed once it has shut
//! down: the thread name function, the panic handler and the hooks are
//! dropped by the shutdown that joins the pool's threads.
//!
//! A hook that spawns follow-up jobs must capture a `Spawner` of its own
//! pool (through a `OnceLock` filled after `build`, as tests/hooks.rs does).
//! That made a cycle: the pool's shared state held the hook, the hook held
//! the `Spawner`, and the `Spawner` held the shared state. Before the fix
//! nothing broke it, so every such pool, its queues, counters and histograms
//! (about 16 KB; valgrind's memcheck counted each "definitely lost") stayed
//! allocated after its `Pool` and every other `Spawner` were gone: a
//! service that builds and drops pools over days leaked one per cycle.
//!
//! Each test gives every piece of user code a capture that reports its
//! drop, ends the pool one way, and waits (bounded) for the report. The
//! code goes at the drain, so a destructor that spawns on the pool is
//! refused as an outsider's spawn, never accepted and then stranded.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

use common::{BOUND, Latch, OnDrop, SETTLE, watchdog};
use priopool::{Builder, Pool, Priority, SpawnErrorKind, Spawner};

/// How many pieces of user code [`with_user_code`] installs.
const PIECES: usize = 6;

/// The pool's `Spawner`, as its own code holds it, and a count of the
/// pieces of that code dropped.
#[derive(Clone, Default)]
struct Own {
    spawner: Arc<OnceLock<Spawner>>,
    dropped: Arc<AtomicUsize>,
    /// What a spawn from the after_job hook's destructor got: refused, as
    /// from any outsider once the pool has drained.
    last_spawn: Arc<Mutex<Option<Result<(), SpawnErrorKind>>>>,
}

impl Own {
    /// A capture for one piece of code: the pool's `Spawner`, and a guard
    /// that counts the piece's drop.
    fn capture(&self) -> (Arc<OnceLock<Spawner>>, OnDrop<impl FnMut() + Send + Sync + 'static>) {
        let dropped = Arc::clone(&self.dropped);
        (Arc::clone(&self.spawner), OnDrop(move || _ = dropped.fetch_add(1, Ordering::SeqCst)))
    }

    /// Waits (at most [`SETTLE`]) until every piece was dropped.
    fn wait_all_dropped(&self, how: &str) {
        let start = Instant::now();
        while self.dropped.load(Ordering::SeqCst) < PIECES {
            assert!(
                start.elapsed() < SETTLE,
                "{how}: {} of {PIECES} pieces of user code dropped; the rest keep the pool alive through its Spawner",
                self.dropped.load(Ordering::SeqCst)
            );
            thread::sleep(Duration::from_millis(1));
        }
        let last_spawn = *self.last_spawn.lock().expect("lock");
        assert_eq!(last_spawn, Some(Err(SpawnErrorKind::Shutdown)), "{how}: a spawn from a hook's destructor");
    }
}

/// A builder whose thread name function, panic handler and four hooks each
/// hold the pool's `Spawner` (through `own`) and use it.
fn with_user_code(builder: Builder, own: &Own) -> Builder {
    let (cell, name_guard) = own.capture();
    let builder = builder.thread_name(move |i| {
        let _ = (&cell, &name_guard);
        format!("cycle-{i}")
    });
    let (cell, handler_guard) = own.capture();
    let builder = builder.panic_handler(move |_| {
        let _ = &handler_guard;
        // A follow-up for a panicked job (refused once shut down).
        if let Some(spawner) = cell.get() {
            let _ = spawner.spawn(Priority::LOW, || {});
        }
    });
    let (cell, start_guard) = own.capture();
    let builder = builder.on_thread_start(move |_| {
        let _ = (&cell, &start_guard);
    });
    let (cell, stop_guard) = own.capture();
    let builder = builder.on_thread_stop(move |_| {
        let _ = (&cell, &stop_guard);
    });
    let (cell, before_guard) = own.capture();
    let builder = builder.before_job(move |_| {
        let _ = (&cell, &before_guard);
    });
    let (cell, after_guard) = own.capture();
    let (spawner, last_spawn) = (Arc::clone(&cell), Arc::clone(&own.last_spawn));
    let spawn_guard = OnDrop(move || {
        let spawned = spawner.get().map(|s| s.spawn(Priority::HIGH, || {}).map_err(|e| e.kind()));
        *last_spawn.lock().expect("lock") = spawned;
    });
    builder.after_job(move |info, _, _| {
        let _ = (&after_guard, &spawn_guard);
        if info.level == 0
            && let Some(spawner) = cell.get()
        {
            let _ = spawner.spawn(Priority::LOW, || {});
        }
    })
}

/// Builds a pool with `with_user_code`, gives it its `Spawner`, and runs a
/// few jobs (one panics, on purpose).
fn busy_pool(builder: Builder, own: &Own) -> Pool {
    let pool = with_user_code(builder, own).build().expect("build");
    assert!(own.spawner.set(pool.spawner()).is_ok(), "set once");
    for i in 0..16 {
        pool.spawn(Priority::level(i % 2), move || {
            if i == 5 {
                common::intentional_panic();
            }
        })
        .expect("spawn");
    }
    pool
}

#[test]
fn a_pool_whose_hooks_hold_its_spawner_is_freed_by_shutdown_and_by_drop() {
    common::quiet_intentional_panics();
    watchdog("user code dropped at shutdown", BOUND, || {
        for (how, end) in [
            ("shutdown", (|pool: Pool| pool.shutdown()) as fn(Pool)),
            ("drop", |pool: Pool| drop(pool)),
            ("shutdown_now", |pool: Pool| drop(pool.shutdown_now())),
            ("shutdown_timeout", |pool: Pool| drop(pool.shutdown_timeout(BOUND))),
        ] {
            for dynamic in [false, true] {
                let own = Own::default();
                end(busy_pool(two_workers(dynamic), &own));
                own.wait_all_dropped(&format!("{how}, dynamic: {dynamic}"));
            }
        }
    });
}

/// Two levels and two workers, fixed or (`dynamic`) from 0 to 2 with a
/// 1 ms keep-alive.
fn two_workers(dynamic: bool) -> Builder {
    let builder = Pool::builder().levels(2);
    if dynamic {
        builder.min_workers(0).max_workers(2).keep_alive(Duration::from_millis(1))
    } else {
        builder.workers(2)
    }
}

/// A `shutdown_timeout` that gives up leaves a job running on a detached
/// worker; the user code goes once that worker has exited.
#[test]
fn a_pool_whose_hooks_hold_its_spawner_is_freed_after_a_timed_out_shutdown() {
    common::quiet_intentional_panics();
    watchdog("user code dropped after a timed-out shutdown", BOUND, || {
        let own = Own::default();
        let pool = busy_pool(Pool::builder().workers(1), &own);
        let (started_tx, started) = mpsc::channel();
        let release = Latch::new();
        let held = release.clone();
        pool.spawn(Priority::HIGH, move || {
            started_tx.send(()).expect("test alive");
            held.wait();
        })
        .expect("spawn");
        common::recv(&started, "the long job");
        let report = pool.shutdown_timeout(Duration::ZERO);
        assert!(matches!(report, priopool::ShutdownReport::TimedOut { .. }), "{report:?}");
        release.open();
        own.wait_all_dropped("shutdown_timeout that timed out");
    });
}

/// Dropped by one of its own jobs, the pool cannot wait for its drain or
/// join its threads; the user code goes once the workers have run the
/// rest and exited on their own.
#[test]
fn a_pool_whose_hooks_hold_its_spawner_is_freed_when_dropped_in_its_own_job() {
    common::quiet_intentional_panics();
    watchdog("user code dropped after a drop inside a job", BOUND, || {
        for dynamic in [false, true] {
            let own = Own::default();
            let pool = busy_pool(two_workers(dynamic), &own);
            let spawner = own.spawner.get().expect("set").clone();
            spawner.spawn(Priority::LOW, move || drop(pool)).expect("spawn");
            drop(spawner);
            own.wait_all_dropped(&format!("dropped in its own job, dynamic: {dynamic}"));
        }
    });
}
