//! The set of workers: what peers need to steal from each other, and the
//! threads to join at shutdown.
//!
//! The set is published as an immutable snapshot plus a generation number.
//! A worker keeps its snapshot and reloads it only when the generation has
//! moved, so stealing costs no lock and no reference count. Adding a worker
//! publishes a new snapshot; this is the seam through which a pool can grow
//! and shrink at run time.

use std::thread::JoinHandle;

use crate::deque::Stealer;
use crate::job::Job;
use crate::sync::{Arc, AtomicUsize, Mutex, Ordering, lock};

/// What other workers can reach of one worker: its stealers, one per level.
#[derive(Clone)]
pub(crate) struct Peer {
    pub(crate) stealers: Box<[Stealer<Job>]>,
}

impl AsRef<[Stealer<Job>]> for Peer {
    fn as_ref(&self) -> &[Stealer<Job>] {
        &self.stealers
    }
}

/// A snapshot of the workers, in the order they were added.
pub(crate) type Peers = Arc<[Peer]>;

pub(crate) struct WorkerSet {
    peers: Mutex<Peers>,
    generation: AtomicUsize,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

impl WorkerSet {
    pub(crate) fn new() -> WorkerSet {
        WorkerSet {
            peers: Mutex::new(Arc::from(Vec::new())),
            generation: AtomicUsize::new(0),
            threads: Mutex::new(Vec::new()),
        }
    }

    /// Publishes a new worker's stealers.
    pub(crate) fn add_peer(&self, peer: Peer) {
        let mut peers = lock(&self.peers);
        let mut next = peers.to_vec();
        next.push(peer);
        *peers = Arc::from(next);
        // Release: a worker that sees the new generation sees the snapshot.
        self.generation.fetch_add(1, Ordering::Release);
    }

    /// Records a started worker thread, to be joined at shutdown.
    pub(crate) fn add_thread(&self, thread: JoinHandle<()>) {
        lock(&self.threads).push(thread);
    }

    /// The generation of the current snapshot; changes whenever it does.
    pub(crate) fn generation(&self) -> usize {
        self.generation.load(Ordering::Acquire)
    }

    /// The current snapshot and its generation.
    pub(crate) fn snapshot(&self) -> (usize, Peers) {
        let peers = lock(&self.peers);
        (self.generation.load(Ordering::Acquire), Arc::clone(&peers))
    }

    /// How many workers have been started.
    pub(crate) fn len(&self) -> usize {
        lock(&self.peers).len()
    }

    /// Joins every worker thread started so far. Worker threads never
    /// unwind (jobs and handlers run under `catch_unwind`), so a join error
    /// would be a bug in the pool; it is reported on stderr, not hidden.
    pub(crate) fn join_all(&self) {
        let threads = std::mem::take(&mut *lock(&self.threads));
        for thread in threads {
            let name = thread.thread().name().map(str::to_owned);
            if thread.join().is_err() {
                eprintln!("priopool: worker thread {name:?} panicked outside a job (a bug in priopool)");
            }
        }
    }

    /// Forgets every worker thread started so far without joining it: the
    /// threads run on and exit by themselves (used when a shutdown gives up
    /// waiting for stuck jobs).
    pub(crate) fn detach_all(&self) {
        drop(std::mem::take(&mut *lock(&self.threads)));
    }
}
