//! User hooks on the worker threads, the `log` events, and the builder
//! options that switch monitoring on.
//!
//! # Where each hook runs
//!
//! Every hook runs on the worker thread it concerns, in this order:
//!
//! ```text
//! worker thread starts ─▶ on_thread_start(index)      (outside the job window)
//!   for each job:           before_job(info)          ┐ the worker counts as busy;
//!                           the job                   │ a spawn from here is a spawn
//!                           after_job(info, outcome,  │ "from a running job"
//!                                     run time)       ┘
//! loop ends (drained)  ─▶ on_thread_stop(index)       (outside the job window)
//! ```
//!
//! The job hooks frame a job that *runs*: `before_job` fires only once the
//! worker has claimed the job (task.rs) and is about to call its closure,
//! and `after_job` then always follows. A job that never starts gets
//! neither: one cancelled (through its handle, or by `shutdown_now`) or
//! expired before a worker claimed it, whose queue entry the worker (or the
//! sweep of `shutdown_now`) discards. Such jobs are counted in
//! [`LevelMetrics::cancelled`](crate::LevelMetrics::cancelled) and
//! [`LevelMetrics::expired`](crate::LevelMetrics::expired) instead; so
//! `after_job` calls = `completed + panicked` and never report a job that
//! did not run as [`JobOutcome::Completed`].
//!
//! The thread start and stop hooks run while the thread is *not* registered
//! as a worker of the pool (the thread-local `CURRENT` of `worker.rs` is
//! unset), so a job they spawn is admitted like one from any outside thread:
//! refused once shutdown has begun. That keeps the drain proof of
//! `shutdown.rs` intact: only a thread whose running job is still counted as
//! outstanding may spawn past the close. `before_job` and `after_job` run
//! inside that window, while their job is still outstanding (it is finished
//! only after `after_job` returns), so their spawns are sound too.
//!
//! # A panicking hook
//!
//! Every hook call is wrapped in `catch_unwind`. A panic in a hook does not
//! kill the worker and does not change the job's outcome: the job still runs
//! (if `before_job` panicked) and is counted as it ended. The panic is
//! counted in [`Metrics::hook_panics`](crate::Metrics::hook_panics) and, with
//! the `log` feature, reported at `warn` level; its payload is then dropped.
//! (The standard panic hook has already printed the message to stderr, as
//! for any panic, unless the application replaced it.)

use std::any::Any;
use std::fmt;
use std::panic::{self, AssertUnwindSafe};
use std::time::Duration;

use crate::builder::Builder;
use crate::registry::Registry;
use crate::sync::plain::Arc;

/// Sends an event to the `log` facade when the `log` feature is on, and
/// compiles to nothing otherwise (its arguments are not even evaluated).
/// The logger is user code: a panic in it is caught and dropped, so that it
/// cannot take a worker down.
macro_rules! log_event {
    ($level:ident, $($arg:tt)+) => {{
        #[cfg(feature = "log")]
        {
            if let Err(payload) = ::std::panic::catch_unwind(::std::panic::AssertUnwindSafe(|| {
                ::log::$level!(target: "priopool", $($arg)+);
            })) {
                $crate::job::drop_payload(payload);
            }
        }
    }};
}
pub(crate) use log_event;

pub(crate) type ThreadHook = Arc<dyn Fn(usize) + Send + Sync>;
pub(crate) type BeforeJob = Arc<dyn Fn(JobInfo) + Send + Sync>;
pub(crate) type AfterJob = Arc<dyn Fn(JobInfo, JobOutcome, Duration) + Send + Sync>;

/// What the monitoring options of a [`Builder`] asked for.
#[derive(Clone, Default)]
pub(crate) struct Monitoring {
    /// Timestamp jobs to measure queue waits (see [`Builder::wait_metrics`]).
    pub(crate) wait_metrics: bool,
    pub(crate) on_thread_start: Option<ThreadHook>,
    pub(crate) on_thread_stop: Option<ThreadHook>,
    pub(crate) before_job: Option<BeforeJob>,
    pub(crate) after_job: Option<AfterJob>,
}

/// What a job hook is told about the job: passed to the
/// [`before_job`](Builder::before_job) and [`after_job`](Builder::after_job)
/// hooks.
///
/// Non-exhaustive: fields may be added (a deadline, for example).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[non_exhaustive]
pub struct JobInfo {
    /// The job's priority level, `0..levels` (0 is the most urgent); the
    /// [`Priority`](crate::Priority) it was spawned with, resolved against
    /// the pool ([`Priority::LOW`](crate::Priority::LOW) becomes
    /// `levels - 1`).
    pub level: usize,
    /// The index of the worker thread running it, the one its
    /// [`thread_name`](Builder::thread_name) was given.
    pub worker: usize,
    /// How long the job waited between being queued and starting, if the
    /// pool measures waits ([`Builder::wait_metrics`]); `None` otherwise.
    pub queue_wait: Option<Duration>,
}

/// How a job that ran ended, as told to the [`after_job`](Builder::after_job)
/// hook. (Jobs that never started, cancelled or expired, get no hook.)
///
/// Non-exhaustive: more outcomes may be added.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[non_exhaustive]
pub enum JobOutcome {
    /// The job returned.
    Completed,
    /// The job panicked (its payload went to the panic handler or to its
    /// [`JobHandle`](crate::JobHandle), as usual).
    Panicked,
}

/// The monitoring options.
impl Builder {
    /// Measures how long each job waits in its queue, which fills
    /// [`LevelMetrics::wait`](crate::LevelMetrics::wait) and
    /// [`LevelMetrics::oldest_wait`](crate::LevelMetrics::oldest_wait) and
    /// gives hooks [`JobInfo::queue_wait`]. Default: off.
    ///
    /// It costs two clock reads per job (when it is queued and when it
    /// starts) and a histogram update on the worker, which is a measurable
    /// share of the cost of a very short job; the counters of
    /// [`Pool::metrics`](crate::Pool::metrics) are always on.
    pub fn wait_metrics(mut self, on: bool) -> Builder {
        self.monitoring.wait_metrics = on;
        self
    }

    /// Calls `hook(index)` on each worker thread when it starts, before it
    /// runs any job; `index` is the worker's index (as given to
    /// [`thread_name`](Builder::thread_name)). A job spawned from the hook
    /// is treated as one from outside the pool. A panic in the hook is
    /// caught and counted (see [`Metrics::hook_panics`](crate::Metrics::hook_panics));
    /// the worker starts anyway.
    pub fn on_thread_start(mut self, hook: impl Fn(usize) + Send + Sync + 'static) -> Builder {
        self.monitoring.on_thread_start = Some(Arc::new(hook));
        self
    }

    /// Calls `hook(index)` on each worker thread as it exits, after its last
    /// job. At shutdown the pool is drained by then, so a spawn from the
    /// hook is refused with [`SpawnErrorKind::Shutdown`](crate::SpawnErrorKind::Shutdown).
    /// A panic in the hook is caught and counted; the thread exits anyway.
    pub fn on_thread_stop(mut self, hook: impl Fn(usize) + Send + Sync + 'static) -> Builder {
        self.monitoring.on_thread_stop = Some(Arc::new(hook));
        self
    }

    /// Calls `hook(info)` on the worker thread just before each job runs. A
    /// panic in the hook is caught and counted; the job runs anyway. A job
    /// that never runs (cancelled, or expired, before it started) gets no
    /// call.
    ///
    /// The hook is on the path of every job: keep it short.
    pub fn before_job(mut self, hook: impl Fn(JobInfo) + Send + Sync + 'static) -> Builder {
        self.monitoring.before_job = Some(Arc::new(hook));
        self
    }

    /// Calls `hook(info, outcome, run_time)` on the worker thread just after
    /// each job ends; `run_time` is the job's own running time (not its
    /// queue wait and not the hooks'), measured with [`std::time::Instant`]
    /// only when this hook is set. A panic in the hook is caught and
    /// counted; the job keeps the outcome it had. It is called exactly once
    /// for each job that ran (the jobs [`before_job`](Builder::before_job)
    /// is called for), and for no other: a job that never runs (cancelled,
    /// or expired, before it started) gets no call.
    ///
    /// The hook is on the path of every job: keep it short.
    pub fn after_job(mut self, hook: impl Fn(JobInfo, JobOutcome, Duration) + Send + Sync + 'static) -> Builder {
        self.monitoring.after_job = Some(Arc::new(hook));
        self
    }
}

impl fmt::Debug for Monitoring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Monitoring")
            .field("wait_metrics", &self.wait_metrics)
            .field("on_thread_start", &self.on_thread_start.is_some())
            .field("on_thread_stop", &self.on_thread_stop.is_some())
            .field("before_job", &self.before_job.is_some())
            .field("after_job", &self.after_job.is_some())
            .finish()
    }
}

/// Runs the hook call `call`, catching a panic: the panic is counted, logged
/// (feature `log`) and its payload dropped with `job::drop_payload`, in case
/// the payload's destructor panics too.
pub(crate) fn guarded(registry: &Registry, hook: &str, call: impl FnOnce()) {
    if let Err(payload) = panic::catch_unwind(AssertUnwindSafe(call)) {
        registry.metrics.hook_panicked();
        report_hook_panic(hook, payload.as_ref());
        crate::job::drop_payload(payload);
    }
}

#[cfg_attr(not(feature = "log"), allow(unused_variables))]
fn report_hook_panic(hook: &str, payload: &(dyn Any + Send)) {
    log_event!(warn, "the {hook} hook panicked: {}", crate::job::panic_message(payload));
}
