//! Helpers shared by the integration tests: the bounds that turn a hang
//! into a failure, watchdogs that apply them, a latch and bounded receives,
//! gate jobs that hold workers, a drop guard, counters that can be waited
//! on, a panic hook that keeps intentional panics out of the test output,
//! readers of the process's threads in `/proc` (Linux), and ways to lower a
//! test thread's scheduling priority (Linux).
//!
//! # How the tests order events without sleeping
//!
//! No assertion depends on how fast anything runs, and no sleep orders two
//! events:
//!
//! * [`Gate`] jobs hold every worker while a batch is queued, so the batch
//!   is complete before the pool picks any of it and only the pick rule
//!   decides the order.
//! * [`prove_alive`] makes counters exact when read after it (every worker
//!   has finished what it ran before); so does `Pool::wait_idle`.
//! * The shutdown probe (`shutdown.rs`, `no_job_lost.rs`, `hooks.rs`): a
//!   thread spawns no-op jobs from outside until one is refused, the
//!   observable moment intake closed; jobs or hooks that must spawn during
//!   the drain wait for it on a [`Latch`] or a channel.
//! * Drops are seen through [`OnDrop`] guards and channels.
//! * Every wait is bounded, by a [`watchdog`] around it or around the test
//!   body ([`CASE_BOUND`] per proptest case), a [`soak_watchdog`] around a
//!   long test, or a bound of its own ([`Latch::wait`], [`recv`]). The
//!   proptests bound `max_shrink_time` too, since shrinking a hanging case
//!   costs one bound per step.
//! * Polling is only for states the pool reaches on its own (intake
//!   closed, workers asleep, retired or exited).
//!
//! Each test binary uses a different subset of these helpers.
#![allow(dead_code)]

pub mod ticket;

use std::any::Any;
use std::panic;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Barrier, Condvar, Mutex, Once};
use std::thread;
use std::time::{Duration, Instant};

use priopool::{Metrics, Pool, Priority, Spawner};

// The bounds. Each is far above what a healthy pool needs: it only turns a
// hang into a failure with a message, and no assertion depends on it.

/// One proptest case, or one round of a repeated test.
pub const CASE_BOUND: Duration = Duration::from_secs(10);

/// The configuration of the proptests: `cases` cases, failures saved beside
/// the test's source, and shrinking bounded too (a hanging case costs
/// [`CASE_BOUND`] each time it is shrunk).
pub fn case_config(cases: u32) -> proptest::test_runner::Config {
    proptest::test_runner::Config {
        cases,
        max_shrink_time: 60_000,
        failure_persistence: Some(Box::new(proptest::test_runner::FileFailurePersistence::WithSource("regressions"))),
        ..proptest::test_runner::Config::default()
    }
}

/// How long a pool may take to reach a state on its own (workers asleep,
/// retired or exited) before the test fails saying what it sees. Shorter
/// than [`STALL`], so that this message wins.
pub const SETTLE: Duration = Duration::from_secs(15);

/// How long the jobs of a [`Gate`] may take to start.
pub const START_BOUND: Duration = Duration::from_secs(20);

/// How long a [`soak_watchdog`] test may make no progress at all.
pub const STALL: Duration = Duration::from_secs(20);

/// One wait ([`Latch::wait`], [`recv`]), or one short test body.
pub const BOUND: Duration = Duration::from_secs(30);

/// One long test ([`soak_watchdog`]'s overall bound). Also how long a job
/// may wait for the test (a cancellation, say) before it gives up: longer
/// than [`BOUND`], so that the test's watchdog fails it first.
pub const LONG_BOUND: Duration = Duration::from_secs(60);

/// Starts `body` on a thread named after `what`; the receiver hears when
/// it has returned (or is disconnected if it panicked).
fn start_body<T: Send + 'static>(
    what: &str,
    body: impl FnOnce() -> T + Send + 'static,
) -> (thread::JoinHandle<T>, mpsc::Receiver<()>) {
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
    (thread, done_rx)
}

/// Runs `body` on its own thread and returns its result, or fails the test
/// with a message naming `what` if `body` has not finished after `bound`.
///
/// A panic in `body` (a failed assertion) is passed on unchanged. On a
/// timeout the stuck thread is left behind: the test fails at once instead
/// of hanging the whole test binary.
pub fn watchdog<T: Send + 'static>(what: &str, bound: Duration, body: impl FnOnce() -> T + Send + 'static) -> T {
    let (thread, done_rx) = start_body(what, body);
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

/// As [`watchdog`], for a body whose length depends on how much CPU the
/// machine gives it (producers that spawn until refused, say): fails the
/// test only if `progress`, read every 250 ms, stays the same for
/// [`STALL`]. A hang stops it; a starved but working body does not.
pub fn stall_watchdog<T: Send + 'static>(
    what: &str,
    progress: impl Fn() -> usize,
    body: impl FnOnce() -> T + Send + 'static,
) -> T {
    let (thread, done_rx) = start_body(what, body);
    watch_progress(what, thread, &done_rx, progress, None)
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

/// As [`watchdog`], for a long test: fails it if the body does not finish
/// within [`LONG_BOUND`], or if `progress` does not move for [`STALL`].
pub fn soak_watchdog<T: Send + 'static>(what: &str, body: impl FnOnce(Progress) -> T + Send + 'static) -> T {
    let progress = Progress::default();
    let body_progress = progress.clone();
    let (thread, done_rx) = start_body(what, move || body(body_progress));
    watch_progress(what, thread, &done_rx, || progress.get(), Some(LONG_BOUND))
}

/// Waits for a body started by [`start_body`]: fails the test if
/// `progress`, read every 250 ms, stays the same for [`STALL`], or if the
/// body runs past `overall`; passes on the body's panic.
fn watch_progress<T>(
    what: &str,
    thread: thread::JoinHandle<T>,
    done_rx: &mpsc::Receiver<()>,
    progress: impl Fn() -> usize,
    overall: Option<Duration>,
) -> T {
    let start = Instant::now();
    let mut last = (progress(), Instant::now());
    loop {
        match done_rx.recv_timeout(Duration::from_millis(250)) {
            Ok(()) | Err(RecvTimeoutError::Disconnected) => break,
            Err(RecvTimeoutError::Timeout) => {}
        }
        let now = progress();
        if now != last.0 {
            last = (now, Instant::now());
        }
        assert!(
            last.1.elapsed() < STALL,
            "watchdog: `{what}` made no progress for {STALL:?} (stuck at {now}): a deadlock, a lost wake-up or a lost job"
        );
        if let Some(bound) = overall {
            assert!(start.elapsed() < bound, "watchdog: `{what}` not finished after {bound:?} (at {now}): hung");
        }
    }
    match thread.join() {
        Ok(value) => value,
        Err(payload) => panic::resume_unwind(payload),
    }
}

/// The `n`th Fibonacci number, computed with a `priopool::join` at every
/// step: a tree of forks for the fork-join tests.
pub fn fib(n: u64) -> u64 {
    if n < 2 {
        return n;
    }
    let (a, b) = priopool::join(|| fib(n - 1), || fib(n - 2));
    a + b
}

/// A one-way gate: threads wait until it is opened; once open it stays
/// open. Clones share the gate.
#[derive(Clone, Default)]
pub struct Latch(Arc<(Mutex<bool>, Condvar)>);

impl Latch {
    pub fn new() -> Latch {
        Latch::default()
    }

    pub fn open(&self) {
        let (open, opened) = &*self.0;
        *open.lock().unwrap_or_else(|e| e.into_inner()) = true;
        opened.notify_all();
    }

    /// Waits until the latch is open; panics (failing the job, hence the
    /// test) after [`BOUND`].
    pub fn wait(&self) {
        assert!(self.wait_timeout(BOUND), "latch never opened within {BOUND:?}");
    }

    /// Waits until the latch is open, at most `bound`; says whether it is.
    pub fn wait_timeout(&self, bound: Duration) -> bool {
        let (open, opened) = &*self.0;
        let open = open.lock().unwrap_or_else(|e| e.into_inner());
        *opened.wait_timeout_while(open, bound, |open| !*open).unwrap_or_else(|e| e.into_inner()).0
    }
}

/// Receives one message, failing the test with `what` after [`BOUND`].
pub fn recv<T>(rx: &mpsc::Receiver<T>, what: &str) -> T {
    rx.recv_timeout(BOUND).unwrap_or_else(|_| panic!("watchdog: no {what} within {BOUND:?}"))
}

/// Receives `n` messages, failing the test with how many came if the next
/// one takes longer than [`BOUND`].
pub fn recv_n<T>(rx: &mpsc::Receiver<T>, n: usize, what: &str) -> Vec<T> {
    (0..n)
        .map(|i| rx.recv_timeout(BOUND).unwrap_or_else(|_| panic!("only {i} of {n} {what} arrived within {BOUND:?}")))
        .collect()
}

/// `n` gate jobs, each holding one worker of a pool until released.
///
/// [`Gate::hold`] returns only once every gate job has *started*, so `n`
/// equal to the pool's worker count means every worker is busy and
/// anything queued afterwards waits. Dropping the gate releases it, so a
/// failing test does not also deadlock the pool's shutdown.
pub struct Gate {
    latch: Latch,
}

impl Gate {
    /// Holds `n` workers of `pool`; see [`Gate`].
    pub fn hold(pool: &Pool, n: usize) -> Gate {
        Gate::hold_via(&pool.spawner(), n)
    }

    /// As [`Gate::hold`], through a spawner.
    pub fn hold_via(spawner: &Spawner, n: usize) -> Gate {
        Gate { latch: start_holders(spawner, n, Priority::HIGH) }
    }

    /// Lets the gate jobs finish.
    pub fn release(self) {
        // Drop does it.
    }
}

/// Holds `n` threads of `pool` in jobs of `priority` until the latch
/// opens; returns once every one has started. Unlike [`Gate`], opening is
/// left to the caller (and not done on a panic).
pub fn hold_at(pool: &Pool, n: usize, priority: Priority) -> Latch {
    start_holders(&pool.spawner(), n, priority)
}

/// Spawns `n` jobs of `priority` that wait for the returned latch, and
/// returns once every one has started (opening the latch and failing the
/// test if they do not within [`START_BOUND`]).
fn start_holders(spawner: &Spawner, n: usize, priority: Priority) -> Latch {
    let latch = Latch::new();
    let (started_tx, started_rx) = mpsc::channel();
    for _ in 0..n {
        let latch = latch.clone();
        let started_tx = started_tx.clone();
        spawner
            .spawn(priority, move || {
                let _ = started_tx.send(());
                latch.wait();
            })
            .expect("a holding job was refused");
    }
    for i in 0..n {
        if started_rx.recv_timeout(START_BOUND).is_err() {
            latch.open();
            panic!(
                "only {i} of {n} holding jobs started within {START_BOUND:?}: a worker is missing or slept through a job"
            );
        }
    }
    latch
}

/// Every level's figures of a pool at rest add up: nothing queued,
/// every submitted job ended one way, every started one completed or
/// panicked.
pub fn assert_at_rest(m: &Metrics, what: &str) {
    for (level, l) in m.levels.iter().enumerate() {
        assert_eq!(l.backlog, 0, "{what}: level {level}: {l:?}");
        assert_eq!(
            l.submitted,
            l.completed + l.panicked + l.cancelled + l.expired + l.promoted + l.rejected,
            "{what}: level {level}: {l:?}"
        );
        assert_eq!(l.started, l.completed + l.panicked, "{what}: level {level}: {l:?}");
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

/// Runs its closure when dropped. Captured by a job, it runs when the job's
/// closure is dropped, whether the job ran, was cancelled, expired or was
/// handed back; held by the test, it also runs when the test fails.
pub struct OnDrop<F: FnMut()>(pub F);

impl<F: FnMut()> Drop for OnDrop<F> {
    fn drop(&mut self) {
        (self.0)();
    }
}

/// An [`OnDrop`] that counts its drop in `drops`.
pub fn drop_counter(drops: &Arc<AtomicUsize>) -> OnDrop<impl FnMut() + Send + 'static> {
    let drops = Arc::clone(drops);
    OnDrop(move || {
        drops.fetch_add(1, Ordering::SeqCst);
    })
}

/// As [`drop_counter`], and sends `id` on `report` when dropped.
pub fn drop_reporter(
    id: usize,
    drops: &Arc<AtomicUsize>,
    report: &mpsc::Sender<usize>,
) -> OnDrop<impl FnMut() + Send + 'static> {
    let (drops, report) = (Arc::clone(drops), report.clone());
    OnDrop(move || {
        drops.fetch_add(1, Ordering::SeqCst);
        let _ = report.send(id);
    })
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

/// Closures not dropped yet: raised before every spawn attempt, lowered by
/// the closure's [`Pending::guard`] when the closure is dropped, whether it
/// ran, was cancelled or was handed back. Reaching zero means every closure
/// was dropped; dropping one twice would take it below zero, which panics.
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

    /// Lowers the count when dropped: for the closure to capture.
    pub fn guard(self: &Arc<Self>) -> OnDrop<impl FnMut() + Send + 'static> {
        let pending = Arc::clone(self);
        OnDrop(move || pending.done())
    }

    pub fn wait_for_zero(&self) {
        let mut count = self.count.lock().unwrap();
        while *count != 0 {
            count = self.zero.wait(count).unwrap();
        }
    }
}

/// Every panic a test causes on purpose carries this text (or the
/// [`Intentional`] payload), so the hook installed by
/// [`quiet_intentional_panics`] can keep it out of the output.
pub const MARKER: &str = "intentional test panic";

/// A non-string panic payload for tests that check payloads are passed on
/// untouched.
#[derive(Debug, PartialEq, Eq)]
pub struct Intentional(pub usize);

/// Panics with [`MARKER`], which [`quiet_intentional_panics`] keeps quiet.
pub fn intentional_panic() -> ! {
    panic::panic_any(MARKER)
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
/// panics the tests raise on purpose ([`is_intentional`]) and hands every
/// other panic to the previous hook. Panic hooks are global to the binary
/// and tests run in parallel, so the hook decides from the payload alone:
/// any test's real failure is still printed.
pub fn quiet_intentional_panics() {
    quiet_panics(is_intentional);
}

/// As [`quiet_intentional_panics`], with the binary's own test of which
/// payloads are intentional (for payload types of its own). The first call
/// in a binary installs the hook: every test of it must pass the same test.
pub fn quiet_panics(intentional: fn(&(dyn Any + Send)) -> bool) {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        let previous = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            if !intentional(info.payload()) {
                previous(info);
            }
        }));
    });
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
    for entry in std::fs::read_dir("/proc/self/task").expect("/proc/self/task is readable").flatten() {
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

/// The threads of this process whose name starts with `prefix`.
#[cfg(target_os = "linux")]
pub fn named(prefix: &str) -> Vec<Task> {
    tasks().into_iter().filter(|t| t.name.starts_with(prefix)).collect()
}

/// The threads named `prefix*`, read until there are `count` of them:
/// `/proc/self/task` read while other threads exit (another test's pool
/// retiring workers) may skip entries. Fails the test after [`SETTLE`].
#[cfg(target_os = "linux")]
pub fn named_all(prefix: &str, count: usize) -> Vec<Task> {
    let since = Instant::now();
    loop {
        let threads = named(prefix);
        if threads.len() == count {
            return threads;
        }
        assert!(since.elapsed() < SETTLE, "{count} threads named {prefix}* expected: {threads:?}");
        thread::sleep(Duration::from_millis(1));
    }
}

/// Receives a message on `rx`, unless the thread named `name` (set with
/// `thread::Builder::name`, at most 15 bytes) is first seen asleep in the
/// kernel: then `None`, and the thread is taken to wait for something the
/// caller does next. For a call that must block until the caller acts (the
/// fixed code) but returned at once before the fix: either way the test
/// proceeds without a sleep. "Asleep" means seen asleep twice, 2 ms apart,
/// with no voluntary context switch between: one sleep, not a brief block
/// on a lock (under load, a thread blocked on a contended lock for a moment
/// made a test release its workers too early). A thread asleep for another
/// reason for that long only makes the check pass early. Fails the test
/// after [`BOUND`].
#[cfg(target_os = "linux")]
pub fn recv_unless_asleep<T>(rx: &mpsc::Receiver<T>, name: &str) -> Option<T> {
    let since = Instant::now();
    let report = |rx: &mpsc::Receiver<T>| match rx.try_recv() {
        Ok(message) => Some(message),
        Err(mpsc::TryRecvError::Disconnected) => panic!("thread {name} ended without reporting"),
        Err(mpsc::TryRecvError::Empty) => None,
    };
    loop {
        if let Some(message) = report(rx) {
            return Some(message);
        }
        if let Some(task) = named(name).into_iter().find(|task| task.name == name && task.state == 'S') {
            let switches = voluntary_switches(task.tid);
            thread::sleep(Duration::from_millis(2));
            if let Some(message) = report(rx) {
                return Some(message);
            }
            let still = tasks().into_iter().any(|t| t.tid == task.tid && t.state == 'S');
            if still && switches.is_some() && voluntary_switches(task.tid) == switches {
                return None;
            }
        }
        assert!(since.elapsed() < BOUND, "thread {name} neither reported nor blocked within {BOUND:?}");
        thread::yield_now();
    }
}

/// How many times thread `tid` of this process gave up its CPU to wait
/// (`voluntary_ctxt_switches` in its `/proc` status), if readable.
#[cfg(target_os = "linux")]
fn voluntary_switches(tid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/self/task/{tid}/status")).ok()?;
    status.lines().find_map(|line| line.strip_prefix("voluntary_ctxt_switches:")).and_then(|n| n.trim().parse().ok())
}

/// How many threads this process has.
#[cfg(target_os = "linux")]
pub fn thread_count() -> usize {
    std::fs::read_dir("/proc/self/task").expect("/proc/self/task is readable").count()
}

/// Lowers the calling thread's priority to nice 4 (Linux; `thread-priority`
/// maps 36 on its 0..=99 scale to nice 4), so that a normal-priority thread
/// waking on the same CPU preempts it at once, wherever it is, yet it still
/// gets a fair share of a loaded CPU. Says whether it took effect; elsewhere
/// it does nothing and says `false`.
///
/// Used to preempt a spawner in the middle of a spawn often (the issue-11
/// reproductions): it changes how often an interleaving happens, never what
/// a test may assert.
pub fn lower_priority() -> bool {
    #[cfg(target_os = "linux")]
    {
        use thread_priority::{ThreadPriority, ThreadPriorityValue, set_current_thread_priority};
        ThreadPriorityValue::try_from(36u8)
            .is_ok_and(|value| set_current_thread_priority(ThreadPriority::Crossplatform(value)).is_ok())
    }
    #[cfg(not(target_os = "linux"))]
    false
}

/// Moves the calling thread to `SCHED_IDLE` (Linux): it runs only when no
/// other thread of normal priority wants its CPU, and is preempted at once,
/// wherever it is, when one does. Says whether it took effect; elsewhere it
/// does nothing and says `false`.
///
/// As [`lower_priority`], for the issue-11 reproductions only.
pub fn sched_idle() -> bool {
    #[cfg(target_os = "linux")]
    {
        use thread_priority::{
            NormalThreadSchedulePolicy, ThreadPriority, ThreadSchedulePolicy, set_thread_priority_and_policy,
            thread_native_id, thread_schedule_policy,
        };
        let idle = ThreadSchedulePolicy::Normal(NormalThreadSchedulePolicy::Idle);
        // The nice value it also sets may be refused (raising priority needs a
        // privilege) after the policy was changed: ask for the policy itself.
        let _ = set_thread_priority_and_policy(thread_native_id(), ThreadPriority::Min, idle);
        thread_schedule_policy().is_ok_and(|policy| policy == idle)
    }
    #[cfg(not(target_os = "linux"))]
    false
}
