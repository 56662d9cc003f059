//! Regression: a thread name with a NUL byte makes `std::thread::Builder`
//! panic, and the pool let that panic out.
//!
//! `Builder::thread_name` is user input; the pool hands its result to
//! `std::thread::Builder::name`, whose `spawn` panics on an interior NUL
//! ("thread name may not contain interior null bytes"). The panic unwinds
//! out of `worker::start`: `Builder::build` panics instead of starting (or
//! returning a `BuildError`), and in a dynamic pool it unwinds out of
//! `Spawner::spawn` *after* the job was queued and a worker slot reserved
//! in `live`. The slot is never given back, so a pool with
//! `max_workers(1)` believes it has its worker and never starts one: the
//! accepted job never runs and shutdown waits for it forever.
//!
//! Fixed: such a name falls back to the default name, as a panicking name
//! function does.

mod common;

use std::panic::{self, AssertUnwindSafe};
use std::sync::mpsc;
use std::time::Duration;

use common::watchdog;
use priopool::{Pool, Priority};

const BOUND: Duration = Duration::from_secs(3);

fn with_nul(index: usize) -> String {
    format!("bad\0name-{index}")
}

#[test]
fn a_thread_name_with_a_nul_byte_does_not_panic_the_build() {
    watchdog("build", 2 * BOUND, || {
        let built = panic::catch_unwind(|| Pool::builder().workers(2).thread_name(with_nul).build());
        let pool = built.expect("build panicked on a thread name with a NUL byte").expect("the pool starts");
        let answer = pool.submit(Priority::HIGH, || 42).unwrap();
        assert_eq!(answer.join().unwrap(), 42);
        pool.shutdown();
    });
}

#[test]
fn a_thread_name_with_a_nul_byte_does_not_panic_a_spawn_that_grows_the_pool() {
    watchdog("spawn and shutdown", 2 * BOUND, || {
        let pool = Pool::builder().min_workers(0).max_workers(1).thread_name(with_nul).build().unwrap();
        let (ran_tx, ran_rx) = mpsc::channel();
        let spawned =
            panic::catch_unwind(AssertUnwindSafe(|| pool.spawn(Priority::HIGH, move || ran_tx.send(()).unwrap())));
        if !matches!(spawned, Ok(Ok(()))) {
            // The pool's shutdown would wait forever for the stranded job.
            std::mem::forget(pool);
            panic!("spawn panicked (or refused the job) while starting a worker named with a NUL byte");
        }
        assert!(ran_rx.recv_timeout(BOUND).is_ok(), "the accepted job never ran");
        pool.shutdown();
    });
}
