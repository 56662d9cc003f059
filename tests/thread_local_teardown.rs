//! Thread-local teardown: a pool used from a thread-local destructor never
//! aborts the process.
//!
//! When a thread exits, its thread-locals are destroyed one by one, in the
//! reverse order of their first use, and a panic inside one of those
//! destructors is not an unwind but "fatal runtime error: thread local
//! panicked on drop" and SIGABRT. priopool keeps thread-locals of its own
//! (whether the thread is one of its workers); they are first used by the
//! first spawn on the thread, so a thread-local set up before that one is
//! destroyed after it. Here such a thread-local
//!
//! - owns a pool (`thread_local! { static POOL: Pool }` used as
//!   `POOL.with(|p| p.spawn(..))`: built before priopool's own
//!   thread-local is first used, dropped after it is gone);
//! - spawns through a `Spawner` in its `Drop`;
//! - on a worker thread, set up by `on_thread_start`, owns the pool and
//!   drops it when that worker retires: the worker shuts down its own pool
//!   after its loop has ended, and must not join itself.
//!
//! Each test passing is the check: before the fix the whole test binary
//! died with SIGABRT ("cannot access a Thread Local Storage value during
//! or after destruction"; for the worker, once that was fixed, "failed to
//! join thread: Resource deadlock avoided").
//!
//! A worker's thread-local destructors are user code that runs after the
//! worker has left its loop: a retired worker still in them must not hold
//! up a resize (which reaps retired threads) or a `shutdown_timeout`
//! beyond its bound. Before the fix both joined it and waited out the
//! destructor (here one that waits for the test, at most 5 s: the check is
//! that the call returned while it still waited).

mod common;

use std::cell::RefCell;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use common::{BOUND, Latch, OnDrop, recv, watchdog};
use priopool::{Pool, Priority, ShutdownReport, Spawner};

#[test]
fn a_pool_in_a_thread_local_is_used_and_dropped_at_thread_exit_without_aborting() {
    thread_local! {
        static POOL: Pool = Pool::builder().workers(1).build().expect("build");
    }
    watchdog("a pool in a thread-local", BOUND, || {
        let (ran_tx, ran) = mpsc::channel();
        thread::spawn(move || {
            POOL.with(|pool| pool.spawn(Priority::LOW, move || ran_tx.send("ran").unwrap()).expect("spawn"));
        })
        .join()
        .expect("the thread exits normally");
        // The pool's drop at thread exit ran the job (graceful shutdown).
        assert_eq!(recv(&ran, "the job"), "ran");
    });
}

#[test]
fn a_thread_local_destructor_spawns_after_priopools_own_thread_locals_are_gone() {
    type AtExit = OnDrop<Box<dyn FnMut()>>;
    thread_local! {
        static ON_EXIT: RefCell<Option<AtExit>> = const { RefCell::new(None) };
    }
    watchdog("a spawn from a thread-local destructor", BOUND, || {
        let pool = Pool::builder().workers(1).build().expect("build");
        let (ran_tx, ran) = mpsc::channel();
        let spawner = pool.spawner();
        thread::spawn(move || {
            // First used before any spawn on this thread: destroyed after
            // priopool's own thread-locals.
            let mut spawn_on_exit = Some((spawner.clone(), ran_tx));
            ON_EXIT.with(|slot| {
                *slot.borrow_mut() = Some(OnDrop(Box::new(move || {
                    if let Some((spawner, ran_tx)) = spawn_on_exit.take() {
                        spawner.spawn(Priority::LOW, move || ran_tx.send("at exit").unwrap()).expect("spawn at exit");
                    }
                })));
            });
            spawner.spawn(Priority::LOW, || {}).expect("spawn");
        })
        .join()
        .expect("the thread exits normally");
        assert_eq!(recv(&ran, "the job spawned at thread exit"), "at exit");
        pool.shutdown();
    });
}

#[test]
fn a_worker_thread_local_that_owns_the_pool_drops_it_at_the_workers_exit_without_aborting() {
    thread_local! {
        static OWNER: RefCell<Option<Guard>> = const { RefCell::new(None) };
    }
    /// Takes the pool out of the slot, if it is still there, and drops it
    /// when the worker's thread-locals are destroyed.
    struct Guard(Arc<Mutex<Option<Pool>>>, mpsc::Sender<Spawner>);
    impl Drop for Guard {
        fn drop(&mut self) {
            let pool = self.0.lock().unwrap().take();
            if let Some(pool) = pool {
                let spawner = pool.spawner();
                drop(pool);
                let _ = self.1.send(spawner);
            }
        }
    }
    watchdog("a worker's thread-local owns the pool", BOUND, || {
        let slot: Arc<Mutex<Option<Pool>>> = Arc::default();
        let (dropped_tx, dropped) = mpsc::channel();
        let hook_slot = Arc::clone(&slot);
        // Every worker sets the thread-local up before its loop first uses
        // priopool's own, so it is destroyed after them.
        let pool = Pool::builder()
            .workers(2)
            .on_thread_start(move |_| {
                let guard = Guard(Arc::clone(&hook_slot), dropped_tx.clone());
                OWNER.with(|owner| *owner.borrow_mut() = Some(guard));
            })
            .build()
            .expect("build");
        let (ran_tx, ran) = mpsc::channel();
        pool.spawn(Priority::LOW, move || ran_tx.send(()).unwrap()).expect("spawn");
        recv(&ran, "a job");
        let mut slot_guard = slot.lock().unwrap();
        // One worker retires; its thread-local takes the pool once the lock
        // is released, and drops it on the worker's own thread.
        slot_guard.insert(pool).set_workers(1).expect("shrink");
        drop(slot_guard);
        let spawner = recv(&dropped, "the pool's drop in a worker's thread-local");
        let refused = spawner.spawn(Priority::LOW, || {}).expect_err("the pool was shut down");
        assert_eq!(refused.kind(), priopool::SpawnErrorKind::Shutdown);
    });
}

/// How long a thread-local destructor below waits for the test at most;
/// only a failing test waits this long.
const HELD: Duration = Duration::from_secs(5);

/// A worker's thread-local whose destructor says it has begun, waits for
/// `release` (at most [`HELD`]), and then sets `finished`.
struct SlowExit {
    began: mpsc::Sender<()>,
    release: Latch,
    finished: Arc<AtomicBool>,
}

impl Drop for SlowExit {
    fn drop(&mut self) {
        let _ = self.began.send(());
        self.release.wait_timeout(HELD);
        self.finished.store(true, Ordering::SeqCst);
    }
}

thread_local! {
    static SLOW_EXIT: RefCell<Option<SlowExit>> = const { RefCell::new(None) };
}

/// A two-worker pool whose workers' thread-locals are [`SlowExit`]s, one of
/// which has retired and is in its thread-local destructor when this
/// returns; and the destructors' `release` and `finished`.
fn pool_with_a_worker_in_its_thread_local_teardown() -> (Pool, Latch, Arc<AtomicBool>) {
    let (began_tx, began) = mpsc::channel();
    let release = Latch::new();
    let finished = Arc::new(AtomicBool::new(false));
    let pool = {
        let (release, finished) = (release.clone(), Arc::clone(&finished));
        let began_tx = Mutex::new(began_tx);
        Pool::builder()
            .workers(2)
            .on_thread_start(move |_| {
                let began = began_tx.lock().unwrap().clone();
                let slow = SlowExit { began, release: release.clone(), finished: Arc::clone(&finished) };
                SLOW_EXIT.with(|slot| *slot.borrow_mut() = Some(slow));
            })
            .build()
            .expect("build")
    };
    pool.set_workers(1).expect("shrink");
    recv(&began, "the retired worker's thread-local destructor");
    (pool, release, finished)
}

#[test]
fn a_resize_does_not_wait_for_a_retired_workers_thread_local_destructors() {
    watchdog("a resize while a retired worker's thread-locals are destroyed", BOUND, || {
        let (pool, release, finished) = pool_with_a_worker_in_its_thread_local_teardown();
        pool.set_workers(2).expect("grow");
        let returned_during_the_teardown = !finished.load(Ordering::SeqCst);
        release.open();
        assert!(returned_during_the_teardown, "set_workers joined a thread still in its thread-local destructors");
        pool.shutdown();
    });
}

#[test]
fn shutdown_timeout_is_bounded_while_a_retired_workers_thread_locals_are_destroyed() {
    watchdog("shutdown_timeout while a retired worker's thread-locals are destroyed", BOUND, || {
        let (pool, release, finished) = pool_with_a_worker_in_its_thread_local_teardown();
        let report = pool.shutdown_timeout(Duration::from_millis(200));
        let returned_during_the_teardown = !finished.load(Ordering::SeqCst);
        release.open();
        assert!(returned_during_the_teardown, "shutdown_timeout joined a thread still in its thread-local destructors");
        // Both workers are in their thread-local destructors until released.
        assert_eq!(report, ShutdownReport::DrainedDetached { threads: 2 });
    });
}
