//! A job that a pool's drop runs on the dropping thread (`run_here`, a pool
//! whose thread starts the OS refuses), in a thread-local destructor after
//! the pool's own thread-locals are gone, may still spawn: design.md,
//! "A spawn from a running job of the pool is always accepted". Found by
//! an attack on the pool (F3): the child was refused with `Shutdown`, 3 of
//! 3 runs, until `LOOP` (src/runtime/worker.rs) marked the thread.
//!
//! `stack_size(1 << 46)` makes the OS refuse every thread start (public
//! API, no unsafe); the pool is moved into a thread-local set up before
//! the first spawn, so it is destroyed after the pool's own.
mod common;

use std::cell::RefCell;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::watchdog;
use priopool::{Pool, Priority};

thread_local! {
    static HOLD: RefCell<Option<Pool>> = const { RefCell::new(None) };
}

#[test]
fn a_job_run_by_a_pool_dropped_in_a_tls_destructor_can_spawn_children() {
    watchdog("tls run_here", Duration::from_secs(60), || {
        let ran = Arc::new(AtomicUsize::new(0));
        let refused = Arc::new(AtomicUsize::new(0));
        let (r, f) = (Arc::clone(&ran), Arc::clone(&refused));
        std::thread::spawn(move || {
            let pool = Pool::builder().min_workers(0).max_workers(2).stack_size(1 << 46).build().unwrap();
            let spawner = pool.spawner();
            // HOLD first: destroyed after the pool's own thread-locals.
            HOLD.with(|h| *h.borrow_mut() = Some(pool));
            let (r2, f2) = (Arc::clone(&r), Arc::clone(&f));
            let child_spawner = spawner.clone();
            spawner
                .spawn(Priority::LOW, move || {
                    r2.fetch_add(1, Ordering::SeqCst);
                    let r3 = Arc::clone(&r2);
                    if child_spawner
                        .spawn(Priority::LOW, move || {
                            r3.fetch_add(1, Ordering::SeqCst);
                        })
                        .is_err()
                    {
                        f2.fetch_add(1, Ordering::SeqCst);
                    }
                })
                .expect("accepted: the pool is open");
            // The thread ends: its thread-locals are destroyed, the pool's
            // drop runs the job here.
        })
        .join()
        .unwrap();
        eprintln!("ran {}, refused {}", ran.load(Ordering::SeqCst), refused.load(Ordering::SeqCst));
        assert_eq!(refused.load(Ordering::SeqCst), 0, "a spawn from a running job of the pool was refused");
        assert_eq!(ran.load(Ordering::SeqCst), 2, "the job and its child ran");
    });
}

/// Control: the same pool dropped plainly (not in a thread-local
/// destructor) runs the job and its child on the dropping thread.
#[test]
fn control_the_same_pool_dropped_plainly() {
    watchdog("plain run_here", Duration::from_secs(60), || {
        let ran = Arc::new(AtomicUsize::new(0));
        let refused = Arc::new(AtomicUsize::new(0));
        let pool = Pool::builder().min_workers(0).max_workers(2).stack_size(1 << 46).build().unwrap();
        let spawner = pool.spawner();
        let (r2, f2) = (Arc::clone(&ran), Arc::clone(&refused));
        pool.spawner()
            .spawn(Priority::LOW, move || {
                r2.fetch_add(1, Ordering::SeqCst);
                let r3 = Arc::clone(&r2);
                if spawner
                    .spawn(Priority::LOW, move || {
                        r3.fetch_add(1, Ordering::SeqCst);
                    })
                    .is_err()
                {
                    f2.fetch_add(1, Ordering::SeqCst);
                }
            })
            .unwrap();
        drop(pool);
        assert_eq!((ran.load(Ordering::SeqCst), refused.load(Ordering::SeqCst)), (2, 0));
    });
}
