//! The state every worker and every [`Spawner`](crate::Spawner) shares, and
//! the two paths through it: admitting a job and shutting down.

use std::any::Any;
use std::panic::{self, AssertUnwindSafe};

use crate::abort::Abort;
use crate::builder::Config;
use crate::error::{BuildError, BuildErrorKind, SpawnErrorKind};
use crate::hooks::log_event;
use crate::job::{Job, drop_payload};
use crate::metrics::{Metrics, MetricsCore, ThreadCounts};
use crate::priority::{Levels, Priority};
use crate::scaling::Scaling;
use crate::shutdown::Lifecycle;
use crate::sleep::Sleep;
use crate::sync::{Arc, AtomicUsize, Ordering, plain};
use crate::timer::Timer;
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
    pub(crate) scaling: Scaling,
    /// `shutdown_now` state and the drained latch (abort.rs).
    pub(crate) abort: Abort,
    /// Expires jobs at their deadlines; started lazily (timer.rs).
    pub(crate) timer: Timer,
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
    /// Creates the registry and starts `config.min_workers` threads. On
    /// failure the threads already started are stopped and joined.
    pub(crate) fn start(config: Config) -> Result<Arc<Registry>, BuildError> {
        static NEXT_ID: plain::AtomicUsize = plain::AtomicUsize::new(0);
        let registry = Arc::new(Registry {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            levels: Levels::new(config.levels),
            sleep: Sleep::new(),
            lifecycle: Lifecycle::new(),
            workers: WorkerSet::new(),
            scaling: Scaling::new(config.min_workers, config.max_workers, config.keep_alive),
            abort: Abort::new(config.levels),
            timer: Timer::new(),
            metrics: MetricsCore::new(config.levels, config.monitoring.wait_metrics),
            panics: AtomicUsize::new(0),
            config,
        });
        let initial = registry.scaling.set_limits(registry.config.min_workers, registry.config.max_workers);
        for index in 0..initial {
            if let Err(source) = Registry::start_reserved(&registry, false) {
                Registry::shutdown(&registry);
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
            .ok_or(SpawnErrorKind::UnknownLevel { level: priority.asked().unwrap_or(levels), levels })?;
        let local = worker::current_local(self.id);
        if self.lifecycle.admit(local.is_some(), || self.on_drained()) {
            Ok(Admission { level, local })
        } else {
            self.metrics.rejected(level);
            Err(SpawnErrorKind::Shutdown)
        }
    }

    /// Queues an admitted job: on the spawning worker's own deque if there
    /// is one, else on the level's injector; then wakes one sleeper, or
    /// grows the pool if there is none (see [`Registry::notify`]).
    pub(crate) fn inject(this: &Arc<Registry>, admission: Admission, job: Job) {
        let Admission { level, local } = admission;
        let job = job.stamped(this.metrics.stamp_queued(&this.levels, level));
        match local {
            Some(local) => local.push(level, job),
            None => this.levels.inject(level, job),
        }
        // After the push: see `Levels::count_in`.
        this.levels.count_in(level);
        Registry::notify(this);
    }

    /// Records the panic of a spawned job and hands it to the panic handler.
    pub(crate) fn job_panicked(&self, payload: Option<Box<dyn Any + Send>>) {
        self.panics.fetch_add(1, Ordering::Relaxed);
        if let Some(payload) = payload {
            let handler = &self.config.panic_handler;
            // A panicking handler must not take the worker down with it, nor
            // may the payload of its panic (see `job::drop_payload`).
            if let Err(again) = panic::catch_unwind(AssertUnwindSafe(|| handler(payload))) {
                drop_payload(again);
            }
        }
    }

    /// How many jobs have panicked so far.
    pub(crate) fn panics(&self) -> usize {
        self.panics.load(Ordering::Relaxed)
    }

    /// A snapshot of the pool's metrics.
    pub(crate) fn metrics(&self) -> Metrics {
        let (started, retired) = self.workers.thread_counts();
        let threads = ThreadCounts { current: self.scaling.current(), started, retired };
        self.metrics.snapshot(&self.levels, threads)
    }

    /// Called by a shutdown that finds jobs outstanding and no worker thread
    /// left: tries to start one and, if the OS refuses, runs the jobs on the
    /// calling thread, so that shutdown still runs every accepted job.
    fn restart(this: &Arc<Registry>) {
        Registry::notify(this);
        if this.scaling.counts().live == 0 && !this.lifecycle.is_drained() {
            eprintln!(
                "priopool: no worker thread could be started; shutdown runs the remaining jobs on its own thread"
            );
            worker::run_here(this);
        }
    }

    /// Runs when the last outstanding job of a closed pool finishes (and
    /// possibly again later): wakes every sleeper so the workers exit, opens
    /// the drained latch, and stops the deadline timer (nothing is queued
    /// any more).
    pub(crate) fn on_drained(&self) {
        self.sleep.wake_all();
        self.abort.set_drained();
        self.timer.stop();
    }

    /// Closes intake and, unless called from one of this pool's own worker
    /// threads, waits for the drain and joins every worker thread ever
    /// started (retired ones included) and the deadline timer.
    pub(crate) fn shutdown(this: &Arc<Registry>) {
        log_event!(info, "shutdown begun: intake closed, draining the accepted jobs");
        this.lifecycle.close(|| this.on_drained());
        if worker::current_local(this.id).is_none() {
            this.workers.join_all(|| this.lifecycle.is_drained(), || Registry::restart(this));
            this.timer.join();
        }
    }
}
