//! priopool itself, through its public API.
//!
//! Design (see the crate docs): one crossbeam injector per priority level
//! plus a work-stealing deque per worker and level. A spawn from outside goes to the
//! injector of its level; a spawn from inside a job goes to that worker's
//! local deque. Workers look at the more urgent injectors first.
//!
//! Built with `levels(2)`: `Level::High` maps to `Priority::HIGH`,
//! `Level::Low` to `Priority::LOW`. `shutdown` is `Pool::shutdown`: it runs
//! every accepted job and joins the workers.
//!
//! Two rows: `priopool` as built by default (per-worker counters for
//! `Pool::metrics` are always on), and `priopool+waits` with
//! `wait_metrics(true)`, which also stamps every job and records its queue
//! wait in a histogram: the row that shows what that option costs.

use priopool::{Pool, Priority, Spawner};

use super::{Level, Peer, Spawn};

/// Running pool; `WAITS`: built with `wait_metrics(true)`.
pub struct Priopool<const WAITS: bool>(Pool);

/// Spawn handle: priopool's own `Spawner`.
#[derive(Clone)]
pub struct PriopoolHandle(Spawner);

fn priority(level: Level) -> Priority {
    match level {
        Level::High => Priority::HIGH,
        Level::Low => Priority::LOW,
    }
}

impl Spawn for PriopoolHandle {
    fn spawn<F: FnOnce() + Send + 'static>(&self, level: Level, job: F) {
        if self.0.spawn(priority(level), job).is_err() {
            panic!("priopool: spawn refused");
        }
    }

    /// `submit` and `join` on its `JobHandle`: priopool's own way back.
    fn round_trip(&self) {
        let handle = self.0.submit(Priority::HIGH, || ()).unwrap_or_else(|_| panic!("priopool: submit refused"));
        handle.join().expect("the job completes");
    }
}

impl<const WAITS: bool> Peer for Priopool<WAITS> {
    const NAME: &'static str = if WAITS { "priopool+waits" } else { "priopool" };
    type Handle = PriopoolHandle;

    fn start(workers: usize) -> Self {
        let pool = Pool::builder()
            .workers(workers)
            .levels(2)
            .wait_metrics(WAITS)
            .build()
            .unwrap_or_else(|_| panic!("build priopool with {workers} workers"));
        Priopool(pool)
    }

    fn handle(&self) -> PriopoolHandle {
        PriopoolHandle(self.0.spawner())
    }

    fn shutdown(self) {
        self.0.shutdown();
    }
}
