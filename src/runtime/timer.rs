//! The deadline timer: one thread per pool, started with the pool's first
//! job that has a deadline, that expires queued jobs when their deadline
//! passes.
//!
//! A job with a deadline is scheduled here after it is queued. The thread
//! keeps a min-heap of `(deadline, weak pointer to the task)` and sleeps on
//! a condition variable until the earliest deadline (or until a new, earlier
//! one arrives). At a deadline it calls [`TaskCell::abandon`] with
//! [`Unrun::Expired`]: if the job is still queued, the timer wins the
//! `QUEUED → EXPIRED` transition (see `job/state.rs`), drops the closure on the
//! timer thread and completes the handle with `JobError::Expired`; if a
//! worker started it first, or it was cancelled, nothing happens. The
//! job's queue entry stays in its queue until a worker pops and discards
//! it. Workers also check the deadline when they pop a job, so a job is
//! never started late even if the timer has not fired yet.
//!
//! Jobs without a deadline never touch the timer, and a pool whose jobs
//! have no deadlines never starts the thread.
//!
//! Entries of jobs that started or were cancelled stay in the heap until
//! their deadline. To keep a stream of long deadlines on short jobs from
//! growing the heap without bound, a push that finds the heap twice as
//! large as after the last clean-up drops every entry whose job is no
//! longer queued (amortised O(1) per push).
//!
//! Lifetime: the thread stops when the pool is drained (nothing is queued
//! then, so nothing can expire) or when the pool's registry is dropped, and
//! is joined by `Pool::shutdown` after the workers; `Pool::shutdown_timeout`
//! joins it only if it exits by its deadline, since it may still be running
//! the destructor of an expired closure (which also delays the expiry of
//! the jobs behind it, though never their start: workers check deadlines
//! at pop).
//!
//! A destructor that panics there is not a job panic (the job never ran): it
//! is counted in `Metrics::drop_panics` (`job::JobTally`, of which the
//! thread holds a clone) and logged.
//!
//! The timer is not part of the loom models: its thread would be an
//! unmodelled OS thread inside a model. Under `cfg(loom)`
//! [`Timer::start`] refuses, so a spawn with a deadline is handed back with
//! `TimerUnavailable` (see `sync.rs`).

// Under loom the thread never starts, so its loop is compiled out and what
// only it uses is unused there.
#![cfg_attr(loom, allow(dead_code, unused_imports))]

use std::cmp::Ordering as CmpOrdering;
use std::collections::BinaryHeap;
use std::io;
use std::time::{Duration, Instant};

use super::registry::Registry;
use crate::job::state::Unrun;
use crate::job::task::{Abandoned, TaskCell};
use crate::job::{JobTally, NEVER_RAN};
use crate::sync::Ordering;
use crate::sync::plain::thread::{self, JoinHandle};
use crate::sync::plain::{Arc, AtomicBool, Condvar, Mutex, MutexGuard, Weak, lock, wait_for};

/// Below this many entries the heap is never cleaned up.
const MIN_CLEANUP: usize = 64;

pub(crate) struct Timer {
    shared: Arc<Shared>,
}

struct Shared {
    state: Mutex<State>,
    /// Signalled when the earliest deadline moves earlier, or on stop.
    changed: Condvar,
    /// Set while the thread expires a job: from before the job's move out
    /// of `QUEUED` until it has ended (see [`Timer::expiring`]).
    expiring: AtomicBool,
}

struct State {
    heap: BinaryHeap<Entry>,
    /// Sequence numbers break ties between equal deadlines (FIFO).
    next_seq: u64,
    /// Clean up when the heap reaches this size.
    cleanup_at: usize,
    thread: Option<JoinHandle<()>>,
    started: bool,
    stopped: bool,
}

struct Entry {
    at: Instant,
    seq: u64,
    task: Weak<dyn TaskCell>,
}

impl Entry {
    fn key(&self) -> (Instant, u64) {
        (self.at, self.seq)
    }
}

// `BinaryHeap` is a max-heap: order entries by reversed key so the earliest
// deadline is on top.
impl Ord for Entry {
    fn cmp(&self, other: &Entry) -> CmpOrdering {
        other.key().cmp(&self.key())
    }
}

impl PartialOrd for Entry {
    fn partial_cmp(&self, other: &Entry) -> Option<CmpOrdering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for Entry {
    fn eq(&self, other: &Entry) -> bool {
        self.key() == other.key()
    }
}

impl Eq for Entry {}

impl Timer {
    pub(crate) fn new() -> Timer {
        Timer {
            shared: Arc::new(Shared {
                state: Mutex::new(State {
                    heap: BinaryHeap::new(),
                    next_seq: 0,
                    cleanup_at: MIN_CLEANUP,
                    thread: None,
                    started: false,
                    stopped: false,
                }),
                changed: Condvar::new(),
                expiring: AtomicBool::new(false),
            }),
        }
    }

    /// Starts the timer thread of `registry` if it is not running yet.
    ///
    /// # Errors
    ///
    /// The OS error if the thread could not be started (a later call tries
    /// again).
    #[cfg(not(loom))]
    pub(crate) fn start(&self, registry: &Registry) -> io::Result<()> {
        let mut state = lock(&self.shared.state);
        if state.started || state.stopped {
            return Ok(());
        }
        let shared = Arc::clone(&self.shared);
        let drops = registry.metrics.tally.clone();
        let thread = thread::Builder::new().name("priopool-timer".to_owned()).spawn(move || run(&shared, &drops))?;
        state.thread = Some(thread);
        state.started = true;
        Ok(())
    }

    /// Under loom the timer thread does not run (see the module docs).
    ///
    /// # Errors
    ///
    /// Always: `ErrorKind::Unsupported`.
    #[cfg(loom)]
    pub(crate) fn start(&self, _registry: &Registry) -> io::Result<()> {
        Err(io::Error::new(io::ErrorKind::Unsupported, "the deadline timer does not run under loom"))
    }

    /// Expires `task` at `at` unless it has left its queue by then. Call
    /// after [`Timer::start`] succeeded.
    pub(crate) fn schedule(&self, at: Instant, task: &Arc<dyn TaskCell>) {
        let mut state = lock(&self.shared.state);
        if state.stopped {
            return;
        }
        if state.heap.len() >= state.cleanup_at {
            state.heap.retain(|entry| entry.task.upgrade().is_some_and(|task| task.state().is_queued()));
            state.cleanup_at = (state.heap.len() * 2).max(MIN_CLEANUP);
        }
        let earliest = state.heap.peek().is_none_or(|top| at < top.at);
        let seq = state.next_seq;
        state.next_seq += 1;
        state.heap.push(Entry { at, seq, task: Arc::downgrade(task) });
        drop(state);
        if earliest {
            self.shared.changed.notify_one();
        }
    }

    /// Tells the thread to exit; does not wait for it. Idempotent.
    pub(crate) fn stop(&self) {
        self.shared.stop();
    }

    /// Stops the thread and waits for it to exit, unless called on the
    /// timer thread itself (a job's closure dropped there may own the pool).
    pub(crate) fn join(&self) {
        self.join_until(None);
    }

    /// Stops the thread and joins it if it exits by `deadline` (`None`: no
    /// deadline), polling every millisecond as `WorkerSet::join_until` does
    /// when there is one; otherwise detaches it. The thread may be late: it
    /// runs user code, the destructor of an expired job's closure. Returns
    /// whether the thread is gone (joined, or never started); the timer
    /// thread itself (a closure that owned the pool, dropped there) is not.
    pub(crate) fn join_until(&self, deadline: Option<Instant>) -> bool {
        self.shared.stop();
        let Some(thread) = lock(&self.shared.state).thread.take() else { return true };
        if thread.thread().id() == thread::current().id() {
            return false;
        }
        loop {
            if deadline.is_none() || thread.is_finished() {
                if thread.join().is_err() {
                    eprintln!("priopool: the deadline timer thread panicked (a bug in priopool)");
                }
                return true;
            }
            if deadline.is_some_and(|deadline| Instant::now() >= deadline) {
                // Detached: it exits once the destructor returns.
                return false;
            }
            thread::sleep(Duration::from_millis(1));
        }
    }

    /// 1 if the thread is expiring a job now (dropping its closure, its
    /// handle not yet completed), else 0; a snapshot for
    /// `ShutdownReport::TimedOut`'s upper bound. The flag is set before the
    /// job's move out of `QUEUED`, so a caller that has seen the job in
    /// `EXPIRING` (the sweep of `abort.rs`, whose cancel fails on it) reads
    /// 1, or 0 once the job has ended.
    pub(crate) fn expiring(&self) -> usize {
        usize::from(self.shared.expiring.load(Ordering::SeqCst))
    }

    /// Lets the thread run on unjoined: it exits on its own once the pool
    /// is drained.
    pub(crate) fn detach(&self) {
        drop(lock(&self.shared.state).thread.take());
    }
}

impl Drop for Timer {
    fn drop(&mut self) {
        self.shared.stop();
    }
}

impl Shared {
    fn stop(&self) {
        let mut state = lock(&self.state);
        state.stopped = true;
        state.heap.clear();
        drop(state);
        self.changed.notify_all();
    }

    fn wait<'a>(&self, state: MutexGuard<'a, State>, until: Option<Instant>) -> MutexGuard<'a, State> {
        wait_for(&self.changed, state, until.map(|at| at.saturating_duration_since(Instant::now())))
    }
}

/// The timer thread: expire what is due, then sleep until the next deadline.
#[cfg(not(loom))]
fn run(shared: &Shared, drops: &JobTally) {
    let mut state = lock(&shared.state);
    let mut due = Vec::new();
    while !state.stopped {
        let now = Instant::now();
        while state.heap.peek().is_some_and(|top| top.at <= now) {
            due.extend(state.heap.pop().map(|entry| entry.task));
        }
        if due.is_empty() {
            let until = state.heap.peek().map(|top| top.at);
            state = shared.wait(state, until);
            continue;
        }
        // User code (the closures' destructors) runs without the lock.
        drop(state);
        for task in due.drain(..) {
            let Some(task) = task.upgrade() else { continue };
            shared.expiring.store(true, Ordering::SeqCst);
            if let Abandoned::Dropped(Some(payload)) = task.abandon(Unrun::Expired, None) {
                drops.caught(NEVER_RAN, payload);
            }
            shared.expiring.store(false, Ordering::Release);
        }
        state = lock(&shared.state);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::JobContext;
    use crate::job::task::{Meta, Task};

    fn task() -> Arc<dyn TaskCell> {
        let meta = Meta { deadline: None, level: 0, tally: JobTally::new(1), name: None };
        Task::spawned(|_: &JobContext| {}, meta)
    }

    #[test]
    fn the_heap_yields_the_earliest_deadline_first_and_fifo_among_equals() {
        let now = Instant::now();
        let tasks: Vec<_> = (0..6).map(|_| task()).collect();
        let offsets = [5u64, 1, 3, 1, 0, 4];
        let mut heap = BinaryHeap::new();
        for (seq, (offset, task)) in offsets.iter().zip(&tasks).enumerate() {
            let at = now + std::time::Duration::from_millis(*offset);
            heap.push(Entry { at, seq: seq as u64, task: Arc::downgrade(task) });
        }
        let order: Vec<u64> = std::iter::from_fn(|| heap.pop().map(|entry| entry.seq)).collect();
        assert_eq!(order, [4, 1, 3, 2, 5, 0]);
    }
}
