//! A worker thread's side of monitoring: its counters, its hooks and its
//! log events (what is counted, and why so, is in `metrics/counters.rs`).

use std::cell::Cell;
use std::time::{Duration, Instant};

use crossbeam_utils::CachePadded;

use super::registry::Registry;
use crate::config::UserCode;
use crate::hooks::{self, JobInfo, JobOutcome, log_event};
use crate::job::Job;
use crate::metrics::{LevelCounters, WorkerCounters};
use crate::queue::levels::Source;
use crate::sync;
use crate::sync::plain::Arc;

/// A worker thread's side of monitoring. Owned by the worker thread.
pub(crate) struct WorkerProbe {
    /// The pool, for taking the worker off the roster when the probe drops.
    registry: sync::Arc<Registry>,
    index: usize,
    counters: Arc<WorkerCounters>,
    /// `counters.levels`, one pointer closer.
    levels: Arc<[CachePadded<LevelCounters>]>,
    /// The user's code, held from the worker's start to its end (see
    /// `config::UserCode`).
    user_code: Arc<UserCode>,
    /// Whether a job needs more than its counters: a queue wait to measure
    /// or a job hook to call. When not, the per-job work is two counter
    /// bumps on a line this worker owns, inlined into the worker loop.
    detailed: bool,
    /// The running job's details, when `detailed`: kept here rather than
    /// carried through the worker loop, which then moves only two words.
    detail: Cell<Option<Detail>>,
}

/// A job between its start and its end: its level's counters.
pub(crate) struct Running<'a> {
    counters: &'a LevelCounters,
}

struct Detail {
    info: JobInfo,
    /// When the job itself began, if an `after_job` hook wants its run time.
    began: Option<Instant>,
}

impl WorkerProbe {
    /// Puts worker `index` on the roster. Call before its thread is
    /// spawned, so that the roster never misses a worker that is about to
    /// run (which would let another worker believe it was the last); the
    /// worker leaves the roster when the probe is dropped, at the end of its
    /// thread or with the thread's closure if the thread could not start.
    pub(crate) fn attach(registry: &sync::Arc<Registry>, index: usize, user_code: Arc<UserCode>) -> WorkerProbe {
        let monitoring = &user_code.monitoring;
        let detailed = monitoring.wait_metrics || monitoring.before_job.is_some() || monitoring.after_job.is_some();
        let counters = registry.metrics.attach();
        let levels = counters.levels();
        WorkerProbe {
            registry: sync::Arc::clone(registry),
            index,
            counters,
            levels,
            user_code,
            detailed,
            detail: Cell::new(None),
        }
    }

    /// Logs the start and runs the `on_thread_start` hook. Call before the
    /// thread registers as a worker for spawns (`worker::CURRENT`).
    pub(crate) fn thread_started(&self) {
        log_event!(
            debug,
            "worker {} started on thread {:?}",
            self.index,
            sync::plain::thread::current().name().unwrap_or("<unnamed>")
        );
        if let Some(hook) = &self.user_code.monitoring.on_thread_start {
            self.guarded("on_thread_start", || hook(self.index));
        }
    }

    /// Runs the `on_thread_stop` hook and logs the worker's exit. Call
    /// after the thread stopped being a worker for spawns.
    pub(crate) fn thread_stopping(&self) {
        if let Some(hook) = &self.user_code.monitoring.on_thread_stop {
            self.guarded("on_thread_stop", || hook(self.index));
        }
        log_event!(debug, "worker {} exited", self.index);
    }

    /// Marks the worker parked (`true`) or searching again (`false`).
    pub(crate) fn set_idle(&self, idle: bool) {
        self.counters.set_parked(idle);
    }

    /// Counts the start of `job` at `level`, found at `source`; measures its
    /// queue wait and runs the `before_job` hook if asked to.
    #[inline]
    pub(crate) fn job_starting(&self, registry: &Registry, level: usize, source: Source, job: &Job) -> Running<'_> {
        if source == Source::Peer {
            self.counters.stole();
        }
        let counters = &self.levels[level];
        counters.started();
        if self.detailed {
            self.detail.set(Some(self.start_detail(registry, level, job)));
        }
        Running { counters }
    }

    #[inline(never)]
    fn start_detail(&self, registry: &Registry, level: usize, job: &Job) -> Detail {
        let queue_wait = job.queued_at().map(|queued| {
            let now = registry.metrics.now();
            self.levels[level].took(now);
            let waited = Duration::from_nanos(now.raw().saturating_sub(queued.raw()));
            self.counters.record_wait(level, waited);
            waited
        });
        let info = JobInfo { level, worker: self.index, queue_wait, name: job.name().cloned() };
        let monitoring = &self.user_code.monitoring;
        if let Some(hook) = &monitoring.before_job {
            self.guarded("before_job", || hook(info.clone()));
        }
        Detail { info, began: monitoring.after_job.as_ref().map(|_| Instant::now()) }
    }

    /// Counts a dead entry of `level`, found at `source`, that this worker
    /// took off a queue and discarded (its job's fate, cancelled, expired
    /// or promoted away, was counted when it was decided: `job::JobTally`).
    /// No hook runs for it: it never started there.
    #[inline]
    pub(crate) fn job_discarded(&self, registry: &Registry, level: usize, source: Source) {
        if source == Source::Peer {
            self.counters.stole();
        }
        let counters = &self.levels[level];
        if registry.metrics.wait_metrics() {
            // Progress of the level's queue, for `oldest_wait`.
            counters.took(registry.metrics.now());
        }
        counters.reaped();
    }

    /// Runs `run`, a job started inside the running one (by a worker that
    /// waits, `help.rs`), keeping the running job's details for its own
    /// `after_job`.
    #[inline]
    pub(crate) fn nested<R>(&self, run: impl FnOnce() -> R) -> R {
        if !self.detailed {
            return run();
        }
        let outer = self.detail.take();
        let result = run();
        self.detail.set(outer);
        result
    }

    /// Runs the `after_job` hook and counts the end of a job (last, so that
    /// the worker counts as busy through its hooks). Called before the
    /// job's handle can learn that it ended (`Job::run`).
    #[inline]
    pub(crate) fn job_ended(&self, running: &Running<'_>, panicked: bool) {
        if self.detailed {
            self.end_detail(panicked);
        }
        running.counters.finished(panicked);
    }

    /// Logs the panic of a job of `level` named `name` (feature `log`).
    #[cold]
    #[cfg_attr(not(feature = "log"), allow(unused_variables))]
    pub(crate) fn log_panic(&self, level: usize, name: Option<&str>, payload: Option<&(dyn std::any::Any + Send)>) {
        log_event!(
            warn,
            "a job at level {level}{} panicked on worker {}: {}",
            name.map(|name| format!(" named {name:?}")).unwrap_or_default(),
            self.index,
            // A submitted job hands its payload to its JobHandle, a scoped
            // job or a stolen join half to its scope or join (`KeptPanic`),
            // before the worker sees the outcome.
            payload.map_or("(its JobHandle, scope or join has the payload)", crate::job::panic_message)
        );
    }

    #[inline(never)]
    fn end_detail(&self, panicked: bool) {
        let Some(detail) = self.detail.take() else { return };
        let run_time = detail.began.map(|began| began.elapsed()).unwrap_or_default();
        if let Some(hook) = &self.user_code.monitoring.after_job {
            let outcome = if panicked { JobOutcome::Panicked } else { JobOutcome::Completed };
            self.guarded("after_job", || hook(detail.info, outcome, run_time));
        }
    }
}

impl WorkerProbe {
    /// Hands the panic of a spawned job (counted already) to the panic
    /// handler.
    pub(crate) fn job_panicked(&self, payload: Option<Box<dyn std::any::Any + Send>>) {
        if let Some(payload) = payload {
            let handler = &self.user_code.panic_handler;
            // A panicking handler must not take the worker down with it, nor
            // may the payload of its panic (see `job::drop_payload`).
            if let Err(again) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| handler(payload))) {
                crate::job::drop_payload(again);
            }
        }
    }

    /// Runs a call of the user's hook `hook`, catching and counting a panic.
    fn guarded(&self, hook: &str, call: impl FnOnce()) {
        hooks::guarded(hook, || self.registry.metrics.hook_panicked(), call);
    }
}

impl Drop for WorkerProbe {
    /// Takes the worker off the roster, folding its counts into the retired
    /// totals; the last worker of a drained pool logs the end of the
    /// shutdown (`Registry::log_shutdown_done`).
    fn drop(&mut self) {
        let registry = &*self.registry;
        #[cfg_attr(not(feature = "log"), allow(unused_variables))]
        let remaining = registry.metrics.detach(&self.counters);
        #[cfg(feature = "log")]
        registry.log_shutdown_done(remaining);
    }
}
