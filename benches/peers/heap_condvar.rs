//! Textbook priority pool #2: one locked binary heap, like Java's
//! `PriorityBlockingQueue` behind a `ThreadPoolExecutor`.
//!
//! Design: a `Mutex` guards a `BinaryHeap` of entries keyed by
//! `(level, sequence)`; the sequence number, taken under the same lock,
//! makes jobs of one level leave in the order they came (FIFO), which a bare
//! heap would not. `spawn` pushes and calls `notify_one` on a `Condvar`;
//! an idle worker waits on it and pops the most urgent entry. Jobs run with
//! the lock released.
//!
//! Shutdown (or drop) sets `closing`, wakes everyone and joins the workers. A worker
//! leaves only when it finds the heap empty and `closing` set, so every
//! accepted job runs, including jobs spawned by jobs while the pool drains.
//! The last worker to leave marks the pool dead under the lock; a later
//! `spawn` panics instead of queueing a job nobody would run.
//!
//! What it costs: one global lock taken twice per job (push, pop), a
//! `log n` heap sift under it, and a futex wake per spawn while workers
//! sleep.

use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::{self, JoinHandle};

use super::{Job, Level, Peer, Spawn};

struct Entry {
    level: Level,
    seq: u64,
    job: Job,
}

// `BinaryHeap` pops the greatest entry, so "greater" must mean "more
// urgent": the smaller level, then the smaller (older) sequence number.
impl Ord for Entry {
    fn cmp(&self, other: &Self) -> Ordering {
        other.level.cmp(&self.level).then_with(|| other.seq.cmp(&self.seq))
    }
}

impl PartialOrd for Entry {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for Entry {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Entry {}

struct State {
    heap: BinaryHeap<Entry>,
    next_seq: u64,
    closing: bool,
    /// Workers that have not left yet.
    live: usize,
}

struct Shared {
    state: Mutex<State>,
    ready: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // Jobs run outside the lock, so a poisoned lock can only come from a
        // bug in this file; the state is still consistent, keep going.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Running pool: the shared heap and the workers to join.
pub struct HeapCondvar {
    shared: Arc<Shared>,
    workers: Vec<JoinHandle<()>>,
}

/// Spawn handle: a reference to the shared heap.
#[derive(Clone)]
pub struct HeapCondvarHandle(Arc<Shared>);

impl Spawn for HeapCondvarHandle {
    fn spawn<F: FnOnce() + Send + 'static>(&self, level: Level, job: F) {
        self.spawn_boxed(level, Box::new(job));
    }

    fn spawn_boxed(&self, level: Level, job: Job) {
        let mut st = self.0.lock();
        if st.live == 0 {
            drop(st);
            panic!("heap+condvar pool: spawn after shutdown");
        }
        let seq = st.next_seq;
        st.next_seq += 1;
        st.heap.push(Entry { level, seq, job });
        drop(st);
        self.0.ready.notify_one();
    }
}

fn worker(shared: Arc<Shared>) {
    let mut st = shared.lock();
    loop {
        if let Some(entry) = st.heap.pop() {
            drop(st);
            (entry.job)();
            st = shared.lock();
        } else if st.closing {
            st.live -= 1;
            return;
        } else {
            st = shared.ready.wait(st).unwrap_or_else(PoisonError::into_inner);
        }
    }
}

impl Peer for HeapCondvar {
    const NAME: &'static str = "heap+condvar";
    type Handle = HeapCondvarHandle;

    fn start(workers: usize) -> Self {
        let shared = Arc::new(Shared {
            state: Mutex::new(State { heap: BinaryHeap::new(), next_seq: 0, closing: false, live: workers }),
            ready: Condvar::new(),
        });
        let workers = (0..workers)
            .map(|i| {
                let shared = Arc::clone(&shared);
                thread::Builder::new()
                    .name(format!("heap-condvar-{i}"))
                    .spawn(move || worker(shared))
                    .expect("spawn heap+condvar worker")
            })
            .collect();
        HeapCondvar { shared, workers }
    }

    fn handle(&self) -> HeapCondvarHandle {
        HeapCondvarHandle(Arc::clone(&self.shared))
    }

    fn shutdown(self) {
        drop(self);
    }
}

/// Dropping the pool shuts it down: drain, then join.
impl Drop for HeapCondvar {
    fn drop(&mut self) {
        self.shared.lock().closing = true;
        self.shared.ready.notify_all();
        for w in self.workers.drain(..) {
            // A worker only ends early if a job panicked; the bench's don't.
            let _ = w.join();
        }
    }
}
