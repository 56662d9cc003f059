//! The state every worker and every [`Spawner`](crate::Spawner) shares, and
//! the two paths through it: admitting a job and shutting down.

use std::any::Any;
use std::panic::{self, AssertUnwindSafe};

use crate::builder::Config;
use crate::error::{BuildError, BuildErrorKind, SpawnErrorKind};
use crate::hooks::log_event;
use crate::job::Job;
use crate::metrics::{Metrics, MetricsCore};
use crate::priority::{Levels, Priority};
use crate::shutdown::Lifecycle;
use crate::sleep::Sleep;
use crate::sync::{Arc, AtomicUsize, Ordering};
use crate::worker::{self, Local};
use crate::workers::WorkerSet;

/// Shared pool state. Owned through `Arc` by the `Pool`, every `Spawner`
/// and every worker thread.
pub(crate) struct Registry {
    /// Distinguishes this pool's worker threads from other pools'.
    pub(crate) id: usize,
    pub(crate) config: Config,
    pub(crate) levels: Levels,
    pub(crate) sleep: Sleep,
    pub(crate) lifecycle: Lifecycle,
    pub(crate) workers: WorkerSet,
    pub(crate) metrics: MetricsCore,
    panics: AtomicUsize,
}

/// A job's ticket between admission and injection: its level and, when the
/// spawn comes from one of this pool's workers, that worker's local deques.
pub(crate) struct Admission {
    level: usize,
    local: Option<std::rc::Rc<Local>>,
}

impl Registry {
    /// Creates the registry and starts `config.workers` threads. On failure
    /// the threads already started are stopped and joined.
    pub(crate) fn start(config: Config) -> Result<Arc<Registry>, BuildError> {
        static NEXT_ID: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let registry = Arc::new(Registry {
            id: NEXT_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            levels: Levels::new(config.levels),
            sleep: Sleep::new(),
            lifecycle: Lifecycle::new(),
            workers: WorkerSet::new(),
            metrics: MetricsCore::new(config.levels, config.monitoring.wait_metrics),
            panics: AtomicUsize::new(0),
            config,
        });
        for index in 0..registry.config.workers {
            if let Err(source) = worker::start(&registry, index) {
                registry.shutdown();
                return Err(BuildError::new(BuildErrorKind::ThreadSpawn { index, source }));
            }
        }
        Ok(registry)
    }

    /// Checks that `priority` names a level and that intake is open (or the
    /// caller is one of this pool's running jobs), and counts the job as
    /// outstanding.
    pub(crate) fn admit(&self, priority: Priority) -> Result<Admission, SpawnErrorKind> {
        let levels = self.levels.len();
        let level = priority
            .resolve(levels)
            .ok_or(SpawnErrorKind::UnknownLevel { level: priority.resolve(usize::MAX).unwrap_or(levels), levels })?;
        let local = worker::current_local(self.id);
        if self.lifecycle.admit(local.is_some(), || self.sleep.wake_all()) {
            Ok(Admission { level, local })
        } else {
            self.metrics.rejected(level);
            Err(SpawnErrorKind::Shutdown)
        }
    }

    /// Queues an admitted job: on the spawning worker's own deque if there
    /// is one, else on the level's injector; then wakes one sleeper.
    pub(crate) fn inject(&self, admission: Admission, job: Job) {
        let Admission { level, local } = admission;
        let job = job.stamped(self.metrics.stamp_queued(&self.levels, level));
        self.levels.count_in(level);
        match local {
            Some(local) => local.push(level, job),
            None => self.levels.inject(level, job),
        }
        self.sleep.wake_one();
    }

    /// Records the panic of a spawned job and hands it to the panic handler.
    pub(crate) fn job_panicked(&self, payload: Option<Box<dyn Any + Send>>) {
        self.panics.fetch_add(1, Ordering::Relaxed);
        if let Some(payload) = payload {
            let handler = &self.config.panic_handler;
            // A panicking handler must not take the worker down with it.
            let _ = panic::catch_unwind(AssertUnwindSafe(|| handler(payload)));
        }
    }

    /// How many jobs have panicked so far.
    pub(crate) fn panics(&self) -> usize {
        self.panics.load(Ordering::Relaxed)
    }

    /// A snapshot of the pool's metrics.
    pub(crate) fn metrics(&self) -> Metrics {
        self.metrics.snapshot(&self.levels)
    }

    /// Closes intake and, unless called from one of this pool's own worker
    /// threads, waits for the drain and joins every worker thread.
    pub(crate) fn shutdown(&self) {
        log_event!(info, "shutdown begun: intake closed, draining the accepted jobs");
        self.lifecycle.close(|| self.sleep.wake_all());
        if worker::current_local(self.id).is_none() {
            self.workers.join_all();
        }
    }
}
