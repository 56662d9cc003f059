//! Thread-local teardown: a pool used from a thread-local destructor never
//! aborts the process.
//!
//! When a thread exits, its thread-locals are destroyed one by one, in the
//! reverse order of their first use, and a panic inside one of those
//! destructors is not an unwind but "fatal runtime error: thread local
//! panicked on drop" and SIGABRT. priopool keeps thread-locals of its own
//! (whether the thread is one of its workers); they are first used by the
//! first spawn on the thread, so a thread-local set up before that one is
//! destroyed after it. Here such a thread-local owns the pool
//! (`thread_local! { static POOL: Pool }` used as `POOL.with(|p|
//! p.spawn(..))`: built before priopool's own thread-local is first used,
//! dropped after it is gone), or spawns through a `Spawner` in its `Drop`.
//!
//! Each test passing is the check: before the fix the whole test binary
//! died with SIGABRT ("cannot access a Thread Local Storage value during
//! or after destruction").

mod common;

use std::cell::RefCell;
use std::sync::mpsc;
use std::thread;

use common::{BOUND, OnDrop, recv, watchdog};
use priopool::{Pool, Priority};

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
    thread_local! {
        static ON_EXIT: RefCell<Option<OnDrop<Box<dyn FnMut()>>>> = const { RefCell::new(None) };
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
