//! Helpers shared by the integration tests: watchdogs that turn a hang into
//! a failure with a message (one with a single bound, one that also fails a
//! long test that stops making progress), a latch, a countable tally, gate
//! jobs that hold workers, a panic hook that keeps intentional panics out of
//! the test output, and readers of the process's threads in `/proc`
//! (Linux).
//!
//! Each test binary uses a different subset of these helpers.
#![allow(dead_code)]

use std::any::Any;
use std::panic;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Barrier, Condvar, Mutex, Once};
use std::thread;
use std::time::{Duration, Instant};

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

/// The overall bound of [`soak_watchdog`]: a long test fails after it
/// instead of hanging CI.
pub const SOAK_BOUND: Duration = Duration::from_secs(60);

/// How long a [`soak_watchdog`] test may make no progress at all before it
/// is declared hung.
pub const STALL: Duration = Duration::from_secs(20);

/// Panics with [`MARKER`], which [`quiet_intentional_panics`] keeps quiet.
pub fn intentional_panic() -> ! {
    panic::panic_any(MARKER)
}

/// A counter that can be waited on: jobs `add` to it, the test blocks in
/// `wait_for` until it reaches a value (no polling, no sleeping).
#[derive(Default)]
pub struct Tally {
    count: Mutex<usize>,
    changed: Condvar,
}

impl Tally {
    pub fn add(&self) {
        *self.count.lock().unwrap_or_else(|e| e.into_inner()) += 1;
        self.changed.notify_all();
    }

    pub fn get(&self) -> usize {
        *self.count.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn wait_for(&self, n: usize) {
        let mut count = self.count.lock().unwrap_or_else(|e| e.into_inner());
        while *count < n {
            count = self.changed.wait(count).unwrap_or_else(|e| e.into_inner());
        }
    }
}

/// A counter the body of a [`soak_watchdog`] raises as it makes progress.
#[derive(Clone, Default)]
pub struct Progress(Arc<AtomicUsize>);

impl Progress {
    pub fn step(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }

    pub fn get(&self) -> usize {
        self.0.load(Ordering::Relaxed)
    }
}

/// Runs `body` on its own thread and returns its result. Fails the test
/// with a message naming `what` if the body does not finish within
/// [`SOAK_BOUND`], or if `progress` does not move for [`STALL`]; a panic in
/// the body is passed on unchanged. The watchdog only bounds a hang: no
/// assertion depends on how fast anything runs.
pub fn soak_watchdog<T: Send + 'static>(what: &str, body: impl FnOnce(Progress) -> T + Send + 'static) -> T {
    let progress = Progress::default();
    let (done_tx, done_rx) = mpsc::channel();
    let body_progress = progress.clone();
    let worker = thread::Builder::new()
        .name(format!("watched: {what}"))
        .spawn(move || {
            let value = body(body_progress);
            let _ = done_tx.send(());
            value
        })
        .expect("the OS refused to start a test thread");
    let start = Instant::now();
    let mut last = (progress.get(), Instant::now());
    loop {
        match done_rx.recv_timeout(Duration::from_millis(250)) {
            Ok(()) | Err(RecvTimeoutError::Disconnected) => break,
            Err(RecvTimeoutError::Timeout) => {}
        }
        let now = progress.get();
        if now != last.0 {
            last = (now, Instant::now());
        }
        assert!(
            last.1.elapsed() < STALL,
            "{what}: no progress for {STALL:?} (stuck at step {now}): hung (a lost wake-up or a stuck shutdown?)"
        );
        assert!(start.elapsed() < SOAK_BOUND, "{what}: not finished after {SOAK_BOUND:?} (at step {now}): hung");
    }
    match worker.join() {
        Ok(value) => value,
        Err(payload) => panic::resume_unwind(payload),
    }
}

/// A thread of this process, as `/proc/self/task/<tid>` describes it.
#[cfg(target_os = "linux")]
#[derive(Debug)]
pub struct Task {
    pub tid: u32,
    /// The thread's name (`comm`, at most 15 bytes).
    pub name: String,
    /// The scheduler state letter: `R` running, `S` asleep (interruptible,
    /// e.g. blocked on a futex), `D`, `T`, `Z`, ...
    pub state: char,
}

/// Every thread of this process; threads that end while being read are
/// skipped.
#[cfg(target_os = "linux")]
pub fn tasks() -> Vec<Task> {
    let mut tasks = Vec::new();
    let Ok(entries) = std::fs::read_dir("/proc/self/task") else {
        return tasks;
    };
    for entry in entries.flatten() {
        let Some(tid) = entry.file_name().to_str().and_then(|s| s.parse().ok()) else { continue };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else { continue };
        // "tid (comm) S ...": comm may itself hold spaces or parentheses, so
        // the state is the first field after the *last* ')'.
        let Some(close) = stat.rfind(')') else { continue };
        let Some(state) = stat[close + 1..].trim_start().chars().next() else { continue };
        let Some(open) = stat.find('(') else { continue };
        tasks.push(Task { tid, name: stat[open + 1..close].to_owned(), state });
    }
    tasks
}

/// How many threads this process has.
#[cfg(target_os = "linux")]
pub fn thread_count() -> usize {
    std::fs::read_dir("/proc/self/task").map(|entries| entries.count()).unwrap_or(0)
}

/// Closures not dropped yet: raised before every spawn attempt, lowered
/// when the closure is dropped, whether it ran, was cancelled or was handed
/// back. Reaching zero means every closure was dropped; dropping one twice
/// would take it below zero, which panics.
#[derive(Default)]
pub struct Pending {
    count: Mutex<usize>,
    zero: Condvar,
}

impl Pending {
    pub fn add(&self) {
        *self.count.lock().unwrap() += 1;
    }

    pub fn done(&self) {
        let mut count = self.count.lock().unwrap();
        *count = count.checked_sub(1).expect("a job's closure was dropped twice");
        if *count == 0 {
            self.zero.notify_all();
        }
    }

    pub fn wait_for_zero(&self) {
        let mut count = self.count.lock().unwrap();
        while *count != 0 {
            count = self.zero.wait(count).unwrap();
        }
    }
}

/// Lowers `Pending` when the closure holding it is dropped.
pub struct PendingGuard(pub Arc<Pending>);

impl Drop for PendingGuard {
    fn drop(&mut self) {
        self.0.done();
    }
}
