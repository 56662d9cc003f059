//! The pools that `compare.rs` measures, each behind the same two traits.
//!
//! [`Peer`] owns a running pool: it starts it with a given number of
//! workers and shuts it down. [`Spawn`] is the cheap handle that queues a
//! job; it is `Clone + Send + Sync` so a job can carry one and spawn more
//! jobs from inside the pool (scenario B).
//!
//! Both traits are generic over the job type rather than taking a
//! `Box<dyn FnOnce()>`: each pool then gets the closure exactly as its own
//! API would, and a pool that boxes internally boxes once, not twice.
//! Scenarios are written once as generic functions and run against every
//! peer through [`Visit`] and [`visit_all`].

pub mod heap_condvar;
pub mod priopool_peer;
pub mod rayon_peer;
pub mod threadpool_peer;
pub mod two_channel;

/// How urgent a job is. Two levels are all the scenarios need.
///
/// `High` sorts before `Low`, so "smaller is more urgent".
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// Run before any queued `Low` job.
    High,
    /// The least urgent level.
    Low,
}

/// The boxed job type used by the pools written in this module.
pub type Job = Box<dyn FnOnce() + Send + 'static>;

/// A handle that queues jobs on a running pool.
///
/// Contract, for every implementation:
/// - `spawn` queues `job` to run exactly once on one of the pool's workers,
///   never on the calling thread, and returns without waiting for it;
/// - a pool with priorities starts a queued `High` job before any queued
///   `Low` one; a pool without them ignores `level` (its name says so);
/// - `spawn` may be called from inside a job of the same pool;
/// - jobs must not panic (the bench's jobs never do): what a panic does is
///   up to each pool.
pub trait Spawn: Clone + Send + Sync + 'static {
    /// Queues `job` at `level`.
    fn spawn<F: FnOnce() + Send + 'static>(&self, level: Level, job: F);

    /// Queues a job the caller has already boxed, the way a user whose jobs
    /// are `Box<dyn FnOnce() + Send>` would: through the pool's own API,
    /// which may box it again (the default), or as it is where the pool
    /// stores boxed jobs.
    fn spawn_boxed(&self, level: Level, job: Job) {
        self.spawn(level, job);
    }

    /// Runs one empty job and waits for it, from outside the pool: the way
    /// the pool's API returns a result to the submitter. Default: spawn a
    /// job that replies on a one-shot channel (crossbeam's `bounded(1)`),
    /// and block on the reply, as a user of a pool without handles would.
    fn round_trip(&self) {
        let (reply, answer) = crossbeam_channel::bounded(1);
        self.spawn(Level::High, move || {
            let _ = reply.send(());
        });
        answer.recv().expect("the job replies");
    }
}

/// A running pool under test.
pub trait Peer: Sized + 'static {
    /// Row label in the report.
    const NAME: &'static str;
    /// The handle jobs carry.
    type Handle: Spawn;
    /// Starts a pool with exactly `workers` worker threads.
    fn start(workers: usize) -> Self;
    /// A new handle on this pool.
    fn handle(&self) -> Self::Handle;
    /// Runs every job already queued, then stops the workers and waits for
    /// them to be gone (where the pool's API allows; see each peer's docs).
    fn shutdown(self);
}

/// Something to run once per peer type; see [`visit_all`].
pub trait Visit {
    /// Called once for each peer, in report order.
    fn visit<P: Peer>(&mut self);
}

/// Names of all peers, in the order [`visit_all`] visits them.
pub const NAMES: [&str; 7] = [
    priopool_peer::Priopool::<false>::NAME,
    priopool_peer::Priopool::<true>::NAME,
    rayon_peer::RayonLifo::NAME,
    rayon_peer::RayonFifo::NAME,
    threadpool_peer::ThreadpoolCrate::NAME,
    two_channel::TwoChannel::NAME,
    heap_condvar::HeapCondvar::NAME,
];

/// Calls `v.visit::<P>()` for every peer, in the order of [`NAMES`].
pub fn visit_all<V: Visit>(v: &mut V) {
    v.visit::<priopool_peer::Priopool<false>>();
    v.visit::<priopool_peer::Priopool<true>>();
    v.visit::<rayon_peer::RayonLifo>();
    v.visit::<rayon_peer::RayonFifo>();
    v.visit::<threadpool_peer::ThreadpoolCrate>();
    v.visit::<two_channel::TwoChannel>();
    v.visit::<heap_condvar::HeapCondvar>();
}
