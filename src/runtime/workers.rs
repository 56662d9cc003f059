//! The set of workers: what peers need to steal from each other, and the
//! threads to join.
//!
//! The set is published as an immutable snapshot plus a generation number.
//! A worker keeps its snapshot and reloads it only when the generation has
//! moved, so stealing costs no lock and no reference count. Adding or
//! removing a worker publishes a new snapshot. Jobs never move between
//! queues (`queue/levels.rs`), so a worker that retires with jobs left in
//! its deques (its last job spawned them) stays in the snapshot as an
//! *orphan* until peers have stolen them all (the stealers keep the
//! deques' buffers alive); [`WorkerSet::prune_orphans`] then drops it. A
//! peer still holding an older snapshot may try to steal from an empty
//! orphan, which finds nothing and is harmless.
//!
//! # Threads
//!
//! Every thread started is recorded under one lock, and every one is joined:
//! a retiring thread hands its own handle to the `exited` list and joins the
//! ones there that have finished; resizing reaps the finished ones too;
//! shutdown joins whatever is left. Starting a thread happens under the
//! same lock, after checking that shutdown has not finished joining
//! (`sealed`), so no thread can be started behind its back.
//!
//! # When a thread has finished
//!
//! A thread in the list has done its work and its `on_thread_stop` hook,
//! but may still be running its thread-local destructors: user code (a
//! thread-local set up by a hook or a job), which may take any time, and
//! which `JoinHandle::is_finished` does not cover (it turns true when the
//! thread's main function returns, before they run). So each worker thread
//! first arms a thread-local of its own, [`Gone`], whose destructor raises a
//! flag: thread-locals are destroyed in the reverse order of their first
//! use, so the user's go before it, and the flag means the joins will not
//! wait for user code. A thread counts as finished when both say so. Only
//! shutdown (`join_all`) waits for unfinished threads, and `join_until` as
//! long as its deadline allows; a retiring worker and a resize skip them,
//! to be joined later. (Where an OS ran the destructors in another order,
//! a join would wait for the user's, as a plain join does.)

use std::cell::RefCell;
use std::time::{Duration, Instant};

use crate::job::Job;
use crate::queue::local::SharedQueues;
use crate::sync::plain::{self, AtomicBool};
use crate::sync::thread::JoinHandle;
use crate::sync::{Arc, AtomicUsize, Mutex, Ordering, arc_slice, has_passed, is_finished, lock, sleep_for};

/// What other workers can reach of one worker: its deques' stealers and
/// flags, one per level.
#[derive(Clone)]
pub(crate) struct Peer {
    /// The worker's index, unique for the pool's lifetime.
    pub(crate) id: usize,
    pub(crate) queues: Arc<SharedQueues<Job>>,
}

impl AsRef<SharedQueues<Job>> for Peer {
    fn as_ref(&self) -> &SharedQueues<Job> {
        &self.queues
    }
}

/// A snapshot of the workers, in the order they were added.
pub(crate) type Peers = Arc<[Peer]>;

pub(crate) struct WorkerSet {
    peers: Mutex<Peers>,
    /// Retired workers still in the snapshot because their deques held
    /// jobs when they left; how many, for a lock-free check.
    orphans: Mutex<Vec<usize>>,
    orphan_count: AtomicUsize,
    generation: AtomicUsize,
    threads: Mutex<Threads>,
    /// The next worker index: indexes are never reused, so that the sleeper
    /// list and thread names can key by them.
    next_index: AtomicUsize,
}

/// A worker thread: its handle, and its [`Gone`] flag.
struct Thread {
    handle: JoinHandle<()>,
    gone: Gone,
}

impl Thread {
    /// Whether joining the thread will not wait: it has returned and run
    /// its thread-local destructors (see the module docs).
    fn is_finished(&self) -> bool {
        // Under loom a thread-local of std's is never destroyed, and every
        // thread counts as finished anyway (`sync::is_finished`).
        is_finished(&self.handle) && (cfg!(loom) || self.gone.0.load(Ordering::Acquire))
    }
}

/// Raised when a worker thread's thread-locals have been destroyed; see
/// the module docs. The worker thread arms it with [`Gone::arm`].
#[derive(Clone, Default)]
pub(crate) struct Gone(plain::Arc<AtomicBool>);

/// The thread-local that raises a [`Gone`] flag when destroyed.
struct RaiseOnDrop(Gone);

impl Drop for RaiseOnDrop {
    fn drop(&mut self) {
        self.0.0.store(true, Ordering::Release);
    }
}

plain::thread_local! {
    static GONE: RefCell<Option<RaiseOnDrop>> = const { RefCell::new(None) };
}

impl Gone {
    /// Called first thing on the new worker thread: its thread-local with a
    /// destructor is then the first one used, hence the last destroyed.
    pub(crate) fn arm(self) {
        GONE.with(|gone| *gone.borrow_mut() = Some(RaiseOnDrop(self)));
    }
}

#[derive(Default)]
struct Threads {
    /// Threads of workers that have not retired, by worker index.
    running: Vec<(usize, Thread)>,
    /// Threads of retired workers, finishing or finished, not yet joined.
    exited: Vec<Thread>,
    /// Shutdown has joined every thread: no more may start.
    sealed: bool,
    /// Worker threads started since the pool was built.
    started: usize,
    /// Worker threads retired since the pool was built (counted by the
    /// retiring thread under this lock, which its start was counted under
    /// before it could run: so `retired <= started` for any reader of both).
    retired: usize,
}

impl WorkerSet {
    pub(crate) fn new() -> WorkerSet {
        WorkerSet {
            peers: Mutex::new(arc_slice(Vec::new())),
            orphans: Mutex::new(Vec::new()),
            orphan_count: AtomicUsize::new(0),
            generation: AtomicUsize::new(0),
            threads: Mutex::new(Threads::default()),
            next_index: AtomicUsize::new(0),
        }
    }

    /// A worker index never used before in this pool.
    pub(crate) fn next_index(&self) -> usize {
        self.next_index.fetch_add(1, Ordering::Relaxed)
    }

    /// Publishes a new worker's stealers, starts its thread with `spawn`
    /// (which hands the thread the [`Gone`] flag to arm) and records the
    /// thread. Returns `Ok(false)`, starting nothing, if shutdown has
    /// already joined every thread; on a spawn error the stealers are
    /// withdrawn again.
    pub(crate) fn start(
        &self,
        peer: Peer,
        spawn: impl FnOnce(Gone) -> std::io::Result<JoinHandle<()>>,
    ) -> std::io::Result<bool> {
        let mut threads = lock(&self.threads);
        if threads.sealed {
            return Ok(false);
        }
        let id = peer.id;
        // Publish the stealers before the thread runs; a peer that steals
        // from them before the thread starts finds them empty, which is
        // harmless.
        self.add_peer(peer);
        let gone = Gone::default();
        match spawn(gone.clone()) {
            Ok(handle) => {
                threads.running.push((id, Thread { handle, gone }));
                threads.started += 1;
                Ok(true)
            }
            Err(error) => {
                self.remove_peer(id, true);
                Err(error)
            }
        }
    }

    /// Publishes the stealers of a worker that has no thread of its own
    /// (see `worker::run_here`).
    pub(crate) fn add_peer(&self, peer: Peer) {
        self.publish(|peers| peers.push(peer));
    }

    /// A worker leaves: its stealers leave the snapshot now if its deques
    /// are empty (`empty`), or once they are (an orphan).
    pub(crate) fn remove_peer(&self, id: usize, empty: bool) {
        if empty {
            self.publish(|peers| peers.retain(|p| p.id != id));
        } else {
            lock(&self.orphans).push(id);
            self.orphan_count.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Drops from the snapshot the orphans whose deques are empty now (no
    /// job is ever pushed into them again, so they stay empty). Cheap when
    /// there are none: one load.
    pub(crate) fn prune_orphans(&self) {
        if self.orphan_count.load(Ordering::Relaxed) == 0 {
            return;
        }
        let mut orphans = lock(&self.orphans);
        let (_, peers) = self.snapshot();
        let empty: Vec<usize> = orphans
            .iter()
            .copied()
            .filter(|&id| peers.iter().filter(|p| p.id == id).all(|p| p.queues.is_empty()))
            .collect();
        if empty.is_empty() {
            return;
        }
        orphans.retain(|id| !empty.contains(id));
        self.orphan_count.store(orphans.len(), Ordering::Relaxed);
        self.publish(|peers| peers.retain(|p| !empty.contains(&p.id)));
    }

    fn publish(&self, change: impl FnOnce(&mut Vec<Peer>)) {
        let mut peers = lock(&self.peers);
        let mut next = peers.to_vec();
        change(&mut next);
        *peers = arc_slice(next);
        // Release: a worker that sees the new generation sees the snapshot.
        self.generation.fetch_add(1, Ordering::Release);
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

    /// Called by retiring worker `id` as its last act: moves its own thread
    /// to the exited list and joins the threads that retired before it and
    /// have finished.
    pub(crate) fn retire_thread(&self, id: usize) {
        let earlier = {
            let mut threads = lock(&self.threads);
            let earlier = take_finished(&mut threads.exited);
            threads.retired += 1;
            // Absent if shutdown has already taken it to join.
            if let Some(pos) = threads.running.iter().position(|&(i, _)| i == id) {
                let (_, thread) = threads.running.swap_remove(pos);
                threads.exited.push(thread);
            }
            earlier
        };
        join(earlier);
    }

    /// How many worker threads have been started and how many have retired
    /// since the pool was built, read together: `retired <= started`.
    pub(crate) fn thread_counts(&self) -> (usize, usize) {
        let threads = lock(&self.threads);
        (threads.started, threads.retired)
    }

    /// Joins the threads of workers that have retired and finished so far.
    pub(crate) fn reap(&self) {
        let exited = take_finished(&mut lock(&self.threads).exited);
        join(exited);
    }

    /// Joins every worker thread, including threads started while it runs,
    /// until none is left and `drained()` holds; then seals the set so that
    /// no thread starts afterwards.
    ///
    /// If no thread is left but the pool is not drained (a pool with a
    /// minimum of zero workers whose thread starts were refused), it calls
    /// `restart` and tries again after a pause that doubles up to 100 ms.
    pub(crate) fn join_all(&self, drained: impl Fn() -> bool, restart: impl Fn()) {
        let mut pause = Duration::from_millis(1);
        loop {
            let batch = {
                let mut threads = lock(&self.threads);
                if threads.sealed {
                    // Joined or detached already: nothing is left to wait for.
                    return;
                }
                if threads.running.is_empty() && threads.exited.is_empty() && drained() {
                    threads.sealed = true;
                    return;
                }
                let mut batch = std::mem::take(&mut threads.exited);
                batch.extend(threads.running.drain(..).map(|(_, thread)| thread));
                batch
            };
            if batch.is_empty() {
                restart();
                sleep_for(pause);
                pause = (pause * 2).min(Duration::from_millis(100));
            } else {
                join(batch);
            }
        }
    }

    /// For a drained pool: joins the worker threads that have finished by
    /// `deadline` (polling every millisecond, since a thread can only be
    /// joined without a bound) and detaches the rest, as [`detach_all`]
    /// does. Returns how many it detached (0: every thread was joined). The
    /// threads of a drained pool are only running their `on_thread_stop`
    /// hooks and thread-local destructors, and exiting, so no job is left
    /// behind either way.
    ///
    /// [`detach_all`]: WorkerSet::detach_all
    pub(crate) fn join_until(&self, deadline: Option<Instant>) -> usize {
        loop {
            let (finished, left) = {
                let mut threads = lock(&self.threads);
                let mut finished = take_finished(&mut threads.exited);
                let (done, running): (Vec<_>, Vec<_>) =
                    std::mem::take(&mut threads.running).into_iter().partition(|(_, t)| t.is_finished());
                finished.extend(done.into_iter().map(|(_, thread)| thread));
                threads.running = running;
                let left = threads.running.len() + threads.exited.len();
                if left == 0 {
                    threads.sealed = true;
                }
                (finished, left)
            };
            join(finished);
            if left == 0 {
                return 0;
            }
            if deadline.is_some_and(has_passed) {
                self.detach_all();
                return left;
            }
            sleep_for(Duration::from_millis(1));
        }
    }

    /// Forgets every worker thread started so far without joining it, and
    /// seals the set: the threads run on and exit by themselves, and no new
    /// one starts (used when a shutdown gives up waiting for stuck jobs).
    pub(crate) fn detach_all(&self) {
        let mut threads = lock(&self.threads);
        let Threads { started, retired, .. } = *threads;
        *threads = Threads { sealed: true, started, retired, ..Threads::default() };
    }
}

/// Takes the threads that have finished out of `exited`, leaving the
/// others.
fn take_finished(exited: &mut Vec<Thread>) -> Vec<Thread> {
    let (finished, running) = std::mem::take(exited).into_iter().partition(Thread::is_finished);
    *exited = running;
    finished
}

/// Joins `threads`. Worker threads never unwind (jobs and handlers run under
/// `catch_unwind`), so a join error would be a bug in the pool; it is
/// reported on stderr, not hidden.
fn join(threads: Vec<Thread>) {
    for Thread { handle, .. } in threads {
        let name = handle.thread().name().map(str::to_owned);
        if handle.join().is_err() {
            eprintln!("priopool: worker thread {name:?} panicked outside a job (a bug in priopool)");
        }
    }
}
