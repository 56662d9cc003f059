//! The worker thread: its local deques, its loop, and how a job running on
//! it spawns onto those deques.
//!
//! # The loop
//!
//! ```text
//! loop {
//!     pick (priority.rs):  Found   -> run the job (panics caught), finish it
//!                          Contended -> back off briefly, pick again
//!                          Empty   -> spin a few rounds (crossbeam Backoff,
//!                                     a few µs), then: drained? exit
//!                                                      else sleep (sleep.rs)
//! }
//! ```
//!
//! A running job is never preempted; priority is applied at every job
//! boundary, because every pick starts again from level 0.

use std::cell::RefCell;
use std::io;
use std::rc::Rc;

use crossbeam_utils::Backoff;

use crate::deque::Worker;
use crate::job::{Job, Outcome};
use crate::metrics::WorkerProbe;
use crate::priority::{Pick, Source};
use crate::registry::Registry;
use crate::sync::{Arc, Parker};
use crate::workers::{Peer, Peers};

/// A worker's own deques, one per level, reachable from the jobs it runs.
pub(crate) struct Local {
    registry_id: usize,
    deques: Box<[Worker<Job>]>,
}

impl Local {
    /// Pushes a job (already counted in) onto this worker's deque for `level`.
    pub(crate) fn push(&self, level: usize, job: Job) {
        self.deques[level].push(job);
    }
}

thread_local! {
    /// The deques of the pool worker running on this thread, if any.
    static CURRENT: RefCell<Option<Rc<Local>>> = const { RefCell::new(None) };
}

/// The local deques of the current thread if it is a worker of registry
/// `registry_id`.
pub(crate) fn current_local(registry_id: usize) -> Option<Rc<Local>> {
    CURRENT.with_borrow(|current| current.as_ref().filter(|l| l.registry_id == registry_id).cloned())
}

/// Starts worker thread `index` of `registry` and records it in the set.
pub(crate) fn start(registry: &Arc<Registry>, index: usize) -> io::Result<()> {
    let deques: Box<[Worker<Job>]> = (0..registry.levels.len()).map(|_| Worker::new_fifo()).collect();
    let peer = Peer { stealers: deques.iter().map(Worker::stealer).collect() };
    let local = Local { registry_id: registry.id, deques };
    let probe = WorkerProbe::attach(registry, index);

    let mut thread = std::thread::Builder::new().name((registry.config.thread_name)(index));
    if let Some(bytes) = registry.config.stack_size {
        thread = thread.stack_size(bytes);
    }
    // Publish the stealers before the thread runs; a peer that steals from
    // them before the thread starts finds them empty, which is harmless.
    registry.workers.add_peer(peer);
    let registry_for_thread = Arc::clone(registry);
    let handle = thread.spawn(move || WorkerThread::new(registry_for_thread, index, local, probe).run())?;
    registry.workers.add_thread(handle);
    Ok(())
}

struct WorkerThread {
    registry: Arc<Registry>,
    index: usize,
    local: Rc<Local>,
    parker: Parker,
    peers: Peers,
    peers_generation: usize,
    /// Rotates the first peer tried, to spread steals over victims.
    tick: usize,
    /// Counters, hooks and log events (metrics.rs).
    probe: WorkerProbe,
}

impl WorkerThread {
    fn new(registry: Arc<Registry>, index: usize, local: Local, probe: WorkerProbe) -> WorkerThread {
        let (peers_generation, peers) = registry.workers.snapshot();
        WorkerThread {
            probe,
            registry,
            index,
            local: Rc::new(local),
            parker: Parker::new(),
            peers,
            peers_generation,
            tick: index,
        }
    }

    fn run(mut self) {
        // The thread start and stop hooks run outside the window in which
        // CURRENT is set: a spawn from them is not "from a running job",
        // which keeps the drain proof of shutdown.rs valid.
        self.probe.thread_started(&self.registry);
        CURRENT.set(Some(Rc::clone(&self.local)));
        let idle = Backoff::new();
        let contention = Backoff::new();
        loop {
            match self.pick() {
                Pick::Found(level, job, source) => {
                    self.execute(level, source, job);
                    idle.reset();
                    contention.reset();
                }
                Pick::Contended => contention.snooze(),
                Pick::Empty if !idle.is_completed() => idle.snooze(),
                Pick::Empty => {
                    let registry = &*self.registry;
                    if registry.lifecycle.is_drained() {
                        break;
                    }
                    self.probe.set_idle(true);
                    registry.sleep.sleep(self.index, &self.parker, || {
                        registry.levels.any_queued() || registry.lifecycle.is_drained()
                    });
                    self.probe.set_idle(false);
                    idle.reset();
                }
            }
        }
        CURRENT.set(None);
        // Nothing is queued once the pool is drained; this keeps the promise
        // that an exiting worker strands no job even if that ever changes.
        self.registry.levels.drain_into_injectors(&self.local.deques);
        self.probe.thread_stopping(&self.registry);
    }

    fn pick(&mut self) -> Pick {
        if self.registry.workers.generation() != self.peers_generation {
            (self.peers_generation, self.peers) = self.registry.workers.snapshot();
        }
        self.tick = self.tick.wrapping_add(1);
        self.registry.levels.pick(&self.local.deques, &self.peers, self.tick)
    }

    fn execute(&self, level: usize, source: Source, job: Job) {
        let running = self.probe.job_starting(&self.registry, level, source, &job);
        let outcome = job.run();
        self.probe.job_ended(&self.registry, running, &outcome);
        if let Outcome::Panicked(payload) = outcome {
            self.registry.job_panicked(payload);
        }
        self.registry.lifecycle.finish(|| self.registry.sleep.wake_all());
    }
}
