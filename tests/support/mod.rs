//! Helpers shared by the cancellation, deadline and future tests: a latch
//! to hold a worker, a guard that reports when a closure is dropped, and a
//! watchdog that fails a test instead of letting it hang.
#![allow(dead_code)] // each test file uses a different subset

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::Duration;

/// How long any single wait in these tests may take before the test fails.
/// Generous: it only bounds a hang; no assertion depends on it.
pub const BOUND: Duration = Duration::from_secs(30);

/// How long a job may wait for something the test does (a cancellation,
/// say) before it gives up: longer than [`BOUND`], so that the watchdog
/// fails the test first, and bounded, so that a failed test's pool can
/// still shut down.
pub const JOB_BOUND: Duration = Duration::from_secs(60);

/// A one-way gate: jobs wait until the test opens it.
#[derive(Clone, Default)]
pub struct Latch(Arc<(Mutex<bool>, Condvar)>);

impl Latch {
    pub fn new() -> Latch {
        Latch::default()
    }

    pub fn open(&self) {
        *self.0.0.lock().unwrap() = true;
        self.0.1.notify_all();
    }

    /// Waits for `open`; panics (failing the job, hence the test) after
    /// [`BOUND`].
    pub fn wait(&self) {
        let (open, signal) = &*self.0;
        let (open, timeout) = signal.wait_timeout_while(open.lock().unwrap(), BOUND, |open| !*open).unwrap();
        assert!(*open && !timeout.timed_out(), "latch never opened within {BOUND:?}");
    }
}

/// Captured by a job's closure: counts (and reports on a channel) when the
/// closure is dropped, run or not.
pub struct DropGuard {
    id: usize,
    drops: Arc<AtomicUsize>,
    report: Option<mpsc::Sender<usize>>,
}

impl DropGuard {
    pub fn new(id: usize, drops: &Arc<AtomicUsize>) -> DropGuard {
        DropGuard { id, drops: Arc::clone(drops), report: None }
    }

    pub fn reporting(id: usize, drops: &Arc<AtomicUsize>, report: &mpsc::Sender<usize>) -> DropGuard {
        DropGuard { id, drops: Arc::clone(drops), report: Some(report.clone()) }
    }
}

impl Drop for DropGuard {
    fn drop(&mut self) {
        self.drops.fetch_add(1, Ordering::SeqCst);
        if let Some(report) = &self.report {
            let _ = report.send(self.id);
        }
    }
}

/// Runs `f` on its own thread and returns its result, failing the test with
/// `what` if it takes longer than [`BOUND`].
pub fn within<T: Send + 'static>(what: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let _ = tx.send(f());
    });
    match rx.recv_timeout(BOUND) {
        Ok(value) => value,
        Err(mpsc::RecvTimeoutError::Timeout) => panic!("watchdog: {what} did not finish within {BOUND:?}"),
        Err(mpsc::RecvTimeoutError::Disconnected) => panic!("{what} panicked"),
    }
}

/// Receives one message, failing the test with `what` after [`BOUND`].
pub fn recv<T>(rx: &mpsc::Receiver<T>, what: &str) -> T {
    rx.recv_timeout(BOUND).unwrap_or_else(|_| panic!("watchdog: no {what} within {BOUND:?}"))
}
