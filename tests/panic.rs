//! Panic isolation: a panicking job never takes a worker down, every panic
//! is counted, spawned jobs' payloads reach the panic handler (each once)
//! and submitted jobs' payloads reach their handles. A panicking handler,
//! the default handler, non-string payloads (passed on untouched) and a
//! panicking destructor in a job's captures are survived too.
//!
//! "Every worker is still alive" is proved, not assumed: `prove_alive` runs
//! W jobs that all wait on one barrier with the test thread, which only
//! works if W live workers take them at the same time.
//!
//! Known to catch jobs run without `catch_unwind` (every test), a panic
//! handler run unguarded (the panicking-handler test), and submitted panics
//! counted twice (the tests that check `panic_count`).

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, mpsc};

use common::{
    BOUND, Intentional, MARKER, is_intentional, message, prove_alive, quiet_intentional_panics, recv_n, watchdog,
};
use priopool::{JobError, Pool, Priority, Spawner};

/// Submits `n` jobs of real (if tiny) work and checks every result.
fn completes_new_work(spawner: &Spawner, n: u64) {
    let handles: Vec<_> = (0..n)
        .map(|i| spawner.submit(Priority::level((i % 2) as usize), move || i * i).expect("submit refused"))
        .collect();
    let sum: u64 = handles.into_iter().map(|h| h.join().expect("a healthy job failed")).sum();
    assert_eq!(sum, (0..n).map(|i| i * i).sum::<u64>());
}

#[test]
fn a_thousand_panics_leave_every_worker_alive() {
    quiet_intentional_panics();
    watchdog("1,000 panicking jobs", BOUND, || {
        const WORKERS: usize = 4;
        const JOBS: usize = 1_000;
        let (payload_tx, payload_rx) = mpsc::channel::<String>();
        let pool = Pool::builder()
            .workers(WORKERS)
            .levels(3)
            .panic_handler(move |payload| {
                let text = message(payload.as_ref()).unwrap_or("<non-string payload>").to_owned();
                payload_tx.send(text).expect("the test stopped listening");
            })
            .build()
            .expect("build");

        // Even jobs are spawned (their panics go to the handler), odd jobs
        // are submitted (their panics go to their handles).
        let mut handles = Vec::new();
        for i in 0..JOBS {
            let priority = Priority::level(i % 3);
            if i % 2 == 0 {
                pool.spawn(priority, move || panic!("{MARKER} {i}")).expect("spawn refused");
            } else {
                handles.push((
                    i,
                    pool.submit(priority, move || -> u8 { panic!("{MARKER} {i}") }).expect("submit refused"),
                ));
            }
        }

        for (i, handle) in handles {
            match handle.join() {
                Err(error @ JobError::Panicked(_)) => {
                    assert!(error.is_panic() && !error.is_cancelled());
                    let JobError::Panicked(payload) = error else { unreachable!() };
                    let payload = payload.into_inner();
                    assert_eq!(message(payload.as_ref()), Some(format!("{MARKER} {i}").as_str()));
                }
                other => panic!("submitted job {i}: expected JobError::Panicked, got {other:?}"),
            }
        }
        let mut received = recv_n(&payload_rx, JOBS / 2, "panic payloads");
        received.sort();
        let mut expected: Vec<String> = (0..JOBS).step_by(2).map(|i| format!("{MARKER} {i}")).collect();
        expected.sort();
        assert_eq!(received, expected, "the handler must get every spawned job's payload, once");

        // Every worker is alive, and has finished everything it ran before,
        // so the count is final.
        prove_alive(&pool.spawner(), WORKERS);
        assert_eq!(pool.workers(), WORKERS);
        assert_eq!(pool.panic_count(), JOBS, "spawned and submitted panics are all counted, once");
        completes_new_work(&pool.spawner(), 200);
        assert_eq!(pool.panic_count(), JOBS);

        pool.shutdown();
        // The handler (and its sender) is gone with the pool: nothing more came.
        assert_eq!(payload_rx.iter().count(), 0, "the handler got payloads of submitted or healthy jobs");
    });
}

#[test]
fn a_panicking_panic_handler_does_not_kill_workers() {
    quiet_intentional_panics();
    watchdog("panicking panic handler", BOUND, || {
        const WORKERS: usize = 3;
        const JOBS: usize = 300;
        let (called_tx, called_rx) = mpsc::channel();
        let pool = Pool::builder()
            .workers(WORKERS)
            .panic_handler(move |payload| {
                called_tx.send(()).expect("the test stopped listening");
                panic!("{MARKER}: the handler itself panics (job payload: {:?})", message(payload.as_ref()));
            })
            .build()
            .expect("build");
        for i in 0..JOBS {
            pool.spawn(Priority::LOW, move || panic!("{MARKER} {i}")).expect("spawn refused");
        }
        recv_n(&called_rx, JOBS, "handler calls");
        prove_alive(&pool.spawner(), WORKERS);
        assert_eq!(pool.workers(), WORKERS);
        assert_eq!(pool.panic_count(), JOBS);
        completes_new_work(&pool.spawner(), 100);
        pool.shutdown();
    });
}

#[test]
fn the_default_handler_counts_and_survives() {
    quiet_intentional_panics();
    watchdog("default panic handler", BOUND, || {
        const WORKERS: usize = 2;
        let pool = Pool::builder().workers(WORKERS).build().expect("build");
        // Submitted panics do not go through the handler; wait on their
        // handles, then let the barrier flush the spawned ones.
        let handles: Vec<_> = (0..20)
            .map(|i| {
                pool.spawn(Priority::HIGH, move || panic!("{MARKER} spawned {i}")).expect("spawn refused");
                pool.submit(Priority::LOW, move || -> () { panic!("{MARKER} submitted {i}") }).expect("submit refused")
            })
            .collect();
        for handle in handles {
            assert!(handle.join().is_err_and(|e| e.is_panic()));
        }
        // The barrier jobs are LOW, so every HIGH job was taken before them;
        // the barrier then proves each worker finished its previous job.
        prove_alive(&pool.spawner(), WORKERS);
        assert_eq!(pool.panic_count(), 40);
        completes_new_work(&pool.spawner(), 50);
        pool.shutdown();
    });
}

#[test]
fn payloads_are_passed_on_untouched() {
    quiet_intentional_panics();
    watchdog("non-string payloads", BOUND, || {
        let (payload_tx, payload_rx) = mpsc::channel();
        let pool = Pool::builder()
            .workers(2)
            .panic_handler(move |payload| {
                let value = payload.downcast::<Intentional>().map(|b| b.0).ok();
                payload_tx.send(value).expect("the test stopped listening");
            })
            .build()
            .expect("build");

        let handle = pool.submit(Priority::HIGH, || -> () { std::panic::panic_any(Intentional(7)) }).expect("submit");
        match handle.join() {
            Err(JobError::Panicked(payload)) => {
                let payload = payload.into_inner();
                assert!(is_intentional(payload.as_ref()));
                assert_eq!(payload.downcast_ref::<Intentional>(), Some(&Intentional(7)));
            }
            other => panic!("expected JobError::Panicked(Intentional(7)), got {other:?}"),
        }

        pool.spawn(Priority::LOW, || std::panic::panic_any(Intentional(11))).expect("spawn");
        assert_eq!(recv_n(&payload_rx, 1, "payloads"), [Some(11)]);
        pool.shutdown();
    });
}

/// A value whose destructor panics. The pool drops a job's captures inside
/// its panic guard, so this panic must be caught like any other.
struct PanicsOnDrop(usize);

impl Drop for PanicsOnDrop {
    fn drop(&mut self) {
        panic!("{MARKER}: dropping capture {}", self.0);
    }
}

#[test]
fn a_panicking_destructor_in_a_job_is_caught() {
    quiet_intentional_panics();
    watchdog("panicking destructors", BOUND, || {
        const WORKERS: usize = 2;
        let ran = Arc::new(AtomicUsize::new(0));
        let pool = Pool::builder().workers(WORKERS).build().expect("build");
        let mut handles = Vec::new();
        for i in 0..50 {
            let (bomb, ran) = (PanicsOnDrop(i), Arc::clone(&ran));
            if i % 2 == 0 {
                pool.spawn(Priority::HIGH, move || {
                    let _bomb = bomb;
                    ran.fetch_add(1, Ordering::SeqCst);
                })
                .expect("spawn refused");
            } else {
                handles.push(
                    pool.submit(Priority::HIGH, move || {
                        let _bomb = bomb;
                        ran.fetch_add(1, Ordering::SeqCst);
                    })
                    .expect("submit refused"),
                );
            }
        }
        for handle in handles {
            assert!(handle.join().is_err_and(|e| e.is_panic()), "a panicking destructor is the job's panic");
        }
        prove_alive(&pool.spawner(), WORKERS);
        assert_eq!(ran.load(Ordering::SeqCst), 50);
        assert_eq!(pool.panic_count(), 50);
        completes_new_work(&pool.spawner(), 50);
        pool.shutdown();
    });
}

/// `JobError` and `SpawnErrorKind` convert into `Box<dyn Error + Send +
/// Sync>` (and so into `anyhow::Error`) with `?`.
#[test]
fn errors_are_send_and_sync() {
    fn boxed<E: std::error::Error + Send + Sync + 'static>(error: E) -> Box<dyn std::error::Error + Send + Sync> {
        Box::new(error)
    }
    let pool = Pool::builder().workers(1).build().expect("build");
    let handle = pool.submit(Priority::HIGH, || -> u8 { panic!("{MARKER} sync") }).expect("submit");
    let error = boxed(handle.join().expect_err("the job panicked"));
    assert!(error.to_string().contains("sync"), "{error}");
    let refused = pool.spawn(Priority::level(9), || {}).expect_err("level 9 does not exist");
    assert!(boxed(refused.kind()).to_string().contains("level 9"));
}
