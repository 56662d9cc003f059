//! Panic isolation: a panicking job never takes a worker down, every panic
//! is counted, spawned jobs' payloads reach the panic handler (each once)
//! and submitted jobs' payloads reach their handles. A panicking handler,
//! the default handler, non-string payloads (passed on untouched) and a
//! panicking destructor in a job's captures are survived too.
//!
//! A destructor the pool runs outside a job's run is not a job panic: the
//! closure of a job that the timer expired or `shutdown_now` swept (before
//! the fix: counted in `panic_count` but not in `panicked`, and handed to
//! the panic handler on the timer or the sweeping thread), and a result
//! nobody took, whether the handle went before the job ended (counted as a
//! job panic before the fix) or after (the panic escaped into the thread
//! dropping the handle). Each is counted in `Metrics::drop_panics`.
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
use std::time::Duration;

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

/// A one-worker pool whose panic handler counts its calls, with its only
/// worker held by the returned gate.
fn held_pool_counting_handler_calls() -> (Pool, Arc<AtomicUsize>, common::Gate) {
    let calls = Arc::new(AtomicUsize::new(0));
    let handler_calls = Arc::clone(&calls);
    let pool = Pool::builder()
        .workers(1)
        .panic_handler(move |_| {
            handler_calls.fetch_add(1, Ordering::SeqCst);
        })
        .build()
        .expect("build");
    let gate = common::Gate::hold(&pool, 1);
    (pool, calls, gate)
}

#[test]
fn a_destructor_panic_of_a_job_the_timer_expired_is_not_a_job_panic() {
    quiet_intentional_panics();
    watchdog("an expired closure's panicking destructor", BOUND, || {
        let (pool, handler_calls, gate) = held_pool_counting_handler_calls();
        let bomb = PanicsOnDrop(0);
        let expired = pool.job(Priority::LOW).max_wait(Duration::ZERO).submit(move || drop(bomb)).expect("submit");
        // The timer expires jobs in deadline order, one after the other: once
        // the later one has expired, the timer is done with the first.
        let marker = pool.job(Priority::LOW).max_wait(Duration::ZERO).submit(|| ()).expect("submit");
        assert!(marker.join().is_err_and(|e| e.is_expired()));
        assert!(expired.join().is_err_and(|e| e.is_expired()), "the job never ran: it expired");
        assert_eq!(pool.panic_count(), 0, "a job that never ran counted as a panicked job");
        assert_eq!(handler_calls.load(Ordering::SeqCst), 0, "the panic handler ran on the timer thread");
        gate.release();
        let spawner = pool.spawner();
        pool.shutdown();
        let m = spawner.metrics();
        assert_eq!((m.levels[1].expired, m.levels[1].panicked), (2, 0));
        assert_eq!(m.drop_panics, 1);
    });
}

#[test]
fn a_destructor_panic_of_a_job_shutdown_now_swept_is_not_a_job_panic() {
    quiet_intentional_panics();
    watchdog("a swept closure's panicking destructor", BOUND, || {
        let (pool, handler_calls, gate) = held_pool_counting_handler_calls();
        let (dropping_tx, dropping) = mpsc::channel();
        let bomb = (common::OnDrop(move || dropping_tx.send(()).unwrap()), PanicsOnDrop(1));
        pool.spawn(Priority::LOW, move || drop(bomb)).expect("spawn");
        let spawner = pool.spawner();
        // The held worker is released once the sweep has dropped the closure.
        let releaser = std::thread::spawn(move || {
            common::recv(&dropping, "the sweep dropping the closure");
            gate.release();
        });
        assert_eq!(pool.shutdown_now().total(), 1);
        releaser.join().expect("releaser");
        assert_eq!(handler_calls.load(Ordering::SeqCst), 0, "the panic handler ran on the shutdown_now caller");
        let m = spawner.metrics();
        assert_eq!((m.levels[1].cancelled, m.levels[1].panicked), (1, 0));
        assert_eq!(m.drop_panics, 1);
    });
}

#[test]
fn a_job_output_whose_destructor_panics_never_escapes_into_the_thread_dropping_its_handle() {
    quiet_intentional_panics();
    watchdog("an unjoined output's panicking destructor", BOUND, || {
        let pool = Pool::builder().workers(1).build().expect("build");
        let handle = pool.submit(Priority::HIGH, || PanicsOnDrop(2)).expect("submit");
        // One worker runs jobs one at a time: once this one has run, the
        // first has ended and its value waits in the handle.
        pool.submit(Priority::LOW, || ()).expect("submit").join().expect("join");
        assert!(handle.is_finished());
        let dropped = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || drop(handle)));
        assert!(dropped.is_ok(), "the output's destructor panicked in the thread dropping the handle");
        assert_eq!(pool.panic_count(), 0, "the job itself returned");
        let m = pool.metrics();
        assert_eq!((m.levels[0].completed, m.levels[0].panicked), (1, 0));
        assert_eq!(m.drop_panics, 1);
        pool.shutdown();
    });
}

#[test]
fn a_job_output_nobody_takes_is_a_drop_panic_also_when_the_handle_went_first() {
    quiet_intentional_panics();
    watchdog("an output dropped on the worker", BOUND, || {
        let pool = Pool::builder().workers(1).build().expect("build");
        let latch = common::Latch::new();
        let gate = latch.clone();
        let handle = pool
            .submit(Priority::HIGH, move || {
                gate.wait();
                PanicsOnDrop(3)
            })
            .expect("submit");
        drop(handle);
        latch.open();
        prove_alive(&pool.spawner(), 1);
        assert_eq!(pool.panic_count(), 0, "the job itself returned");
        let m = pool.metrics();
        assert_eq!((m.levels[0].completed, m.levels[0].panicked), (1, 0));
        assert_eq!(m.drop_panics, 1);
        pool.shutdown();
    });
}
