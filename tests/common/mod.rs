//! Helpers shared by the integration tests: a watchdog that turns a hang into
//! a failure with a message, a latch, gate jobs that hold workers, and a
//! panic hook that keeps intentional panics out of the test output.
//!
//! Each test binary uses a different subset of these helpers.
#![allow(dead_code)]

use std::any::Any;
use std::panic;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Barrier, Condvar, Mutex, Once};
use std::thread;
use std::time::Duration;

use priopool::{Pool, Priority, Spawner};

/// Every panic a test causes on purpose carries this text (or the
/// [`Intentional`] payload), so the hook installed by
/// [`quiet_intentional_panics`] can keep it out of the output.
pub const MARKER: &str = "intentional test panic";

/// A non-string panic payload for tests that check payloads are passed on
/// untouched.
#[derive(Debug, PartialEq, Eq)]
pub struct Intentional(pub usize);

/// How long a gate job may take to start before the test gives up. Far
/// above what a healthy pool needs; it only turns a hang into a failure.
pub const START_BOUND: Duration = Duration::from_secs(20);

/// Runs `body` on its own thread and returns its result, or fails the test
/// with a message naming `what` if `body` has not finished after `bound`.
///
/// A panic in `body` (a failed assertion) is passed on unchanged. On a
/// timeout the stuck thread is left behind: the test fails at once instead
/// of hanging the whole test binary.
pub fn watchdog<T: Send + 'static>(what: &str, bound: Duration, body: impl FnOnce() -> T + Send + 'static) -> T {
    let (done_tx, done_rx) = mpsc::channel();
    let thread = thread::Builder::new()
        .name(format!("test body: {what}"))
        .spawn(move || {
            let value = body();
            // The receiver may be gone after a timeout; nothing to do then.
            let _ = done_tx.send(());
            value
        })
        .expect("the OS refused to start a test thread");
    match done_rx.recv_timeout(bound) {
        // Disconnected: `body` panicked before sending; join passes the panic on.
        Ok(()) | Err(RecvTimeoutError::Disconnected) => match thread.join() {
            Ok(value) => value,
            Err(payload) => panic::resume_unwind(payload),
        },
        Err(RecvTimeoutError::Timeout) => {
            panic!("watchdog: `{what}` did not finish within {bound:?}: a deadlock, a lost wake-up or a lost job")
        }
    }
}

/// A one-shot gate: threads wait until it is opened; once open it stays open.
#[derive(Default)]
pub struct Latch {
    open: Mutex<bool>,
    opened: Condvar,
}

impl Latch {
    pub fn new() -> Arc<Latch> {
        Arc::new(Latch::default())
    }

    pub fn open(&self) {
        *self.open.lock().unwrap_or_else(|e| e.into_inner()) = true;
        self.opened.notify_all();
    }

    pub fn wait(&self) {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        while !*open {
            open = self.opened.wait(open).unwrap_or_else(|e| e.into_inner());
        }
    }
}

/// `n` gate jobs, each holding one worker of a pool until released.
///
/// [`Gate::hold`] returns only once every gate job has *started*, so `n`
/// equal to the pool's worker count means every worker is busy and
/// anything queued afterwards waits. Dropping the gate releases it, so a
/// failing test does not also deadlock the pool's shutdown.
pub struct Gate {
    latch: Arc<Latch>,
}

impl Gate {
    /// Holds `n` workers of `pool`; see [`Gate`].
    pub fn hold(pool: &Pool, n: usize) -> Gate {
        Gate::hold_via(&pool.spawner(), n)
    }

    /// As [`Gate::hold`], through a spawner.
    pub fn hold_via(spawner: &Spawner, n: usize) -> Gate {
        let latch = Latch::new();
        let (started_tx, started_rx) = mpsc::channel();
        for _ in 0..n {
            let latch = Arc::clone(&latch);
            let started_tx = started_tx.clone();
            spawner
                .spawn(Priority::HIGH, move || {
                    let _ = started_tx.send(());
                    latch.wait();
                })
                .expect("a gate job was refused");
        }
        for i in 0..n {
            if started_rx.recv_timeout(START_BOUND).is_err() {
                latch.open();
                panic!(
                    "only {i} of {n} gate jobs started within {START_BOUND:?}: a worker is missing or slept through a job"
                );
            }
        }
        Gate { latch }
    }

    /// Lets the gate jobs finish.
    pub fn release(self) {
        // Drop does it.
    }
}

impl Drop for Gate {
    fn drop(&mut self) {
        self.latch.open();
    }
}

/// Proves that `workers` workers of `spawner`'s pool are alive and take
/// jobs: `workers` jobs that all wait on one barrier with this thread can
/// only get through it if each runs on its own live worker at the same
/// time. It also means every worker has finished whatever it ran before
/// (a worker runs one job at a time), which makes counters such as
/// `Pool::panic_count` exact afterwards. A dead worker makes this hang:
/// call it under a [`watchdog`].
pub fn prove_alive(spawner: &Spawner, workers: usize) {
    let barrier = Arc::new(Barrier::new(workers + 1));
    let handles: Vec<_> = (0..workers)
        .map(|_| {
            let barrier = Arc::clone(&barrier);
            spawner.submit(Priority::LOW, move || barrier.wait().is_leader()).expect("a barrier job was refused")
        })
        .collect();
    barrier.wait();
    for handle in handles {
        handle.join().expect("a barrier job failed");
    }
}

/// Whether a panic payload is one the tests raise on purpose.
pub fn is_intentional(payload: &(dyn Any + Send)) -> bool {
    payload.downcast_ref::<&str>().is_some_and(|s| s.contains(MARKER))
        || payload.downcast_ref::<String>().is_some_and(|s| s.contains(MARKER))
        || payload.is::<Intentional>()
}

/// The text of a string panic payload.
pub fn message(payload: &(dyn Any + Send)) -> Option<&str> {
    payload.downcast_ref::<&str>().copied().or_else(|| payload.downcast_ref::<String>().map(String::as_str))
}

/// Installs, once per test binary, a panic hook that stays silent for the
/// panics the tests raise on purpose and hands every other panic to the
/// previous hook. Panic hooks are global to the binary and tests run in
/// parallel, so the hook decides from the payload alone: any test's real
/// failure is still printed.
pub fn quiet_intentional_panics() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        let previous = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            if !is_intentional(info.payload()) {
                previous(info);
            }
        }));
    });
}
