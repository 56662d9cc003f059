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
//! worker has claimed the job (`job/task.rs`) and is about to call its closure,
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
//! as a worker of the pool (the thread-local `CURRENT` of `runtime/worker.rs` is
//! unset), so a job they spawn is admitted like one from any outside thread:
//! refused once shutdown has begun. That keeps the drain proof of
//! `lifecycle.rs` intact: only a worker that is awake, inside a job, may
//! spawn past the close. `before_job` and `after_job` run inside that
//! window (the worker is awake until after `after_job` returns), so their
//! spawns are sound too.
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

/// What the monitoring options of a [`Builder`](crate::Builder) asked for.
#[derive(Clone, Default)]
pub(crate) struct Monitoring {
    /// Timestamp jobs to measure queue waits (see [`Builder::wait_metrics`](crate::Builder::wait_metrics)).
    pub(crate) wait_metrics: bool,
    pub(crate) on_thread_start: Option<ThreadHook>,
    pub(crate) on_thread_stop: Option<ThreadHook>,
    pub(crate) before_job: Option<BeforeJob>,
    pub(crate) after_job: Option<AfterJob>,
}

/// What a job hook is told about the job: passed to the
/// [`before_job`](crate::Builder::before_job) and [`after_job`](crate::Builder::after_job)
/// hooks.
///
/// Non-exhaustive: fields may be added (a deadline, for example).
#[derive(Clone, PartialEq, Eq, Debug)]
#[non_exhaustive]
pub struct JobInfo {
    /// The job's priority level, `0..levels` (0 is the most urgent); the
    /// [`Priority`](crate::Priority) it was spawned with, resolved against
    /// the pool ([`Priority::LOW`](crate::Priority::LOW) becomes
    /// `levels - 1`).
    pub level: usize,
    /// The index of the worker thread running it, the one its
    /// [`thread_name`](crate::Builder::thread_name) was given.
    pub worker: usize,
    /// How long the job waited between being queued and starting, if the
    /// pool measures waits ([`Builder::wait_metrics`](crate::Builder::wait_metrics)); `None` otherwise.
    pub queue_wait: Option<Duration>,
    /// The job's name, if it was given one
    /// ([`JobBuilder::name`](crate::JobBuilder::name)).
    pub name: Option<Arc<str>>,
}

/// How a job that ran ended, as told to the [`after_job`](crate::Builder::after_job)
/// hook. (Jobs that never started, cancelled or expired, get no hook.)
///
/// Non-exhaustive: more outcomes may be added.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[non_exhaustive]
pub enum JobOutcome {
    /// The job returned.
    Completed,
    /// The job panicked (its payload went to the panic handler, or to its
    /// [`JobHandle`](crate::JobHandle), scope or `join`, as usual).
    Panicked,
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

/// Runs the call `call` of the hook named `hook`, catching a panic: the
/// panic is counted with `count` (first, so that the log event and the
/// payload's destructor already see it counted), logged (feature `log`), and
/// its payload dropped with `job::drop_payload`, in case the payload's
/// destructor panics too.
pub(crate) fn guarded(hook: &str, count: impl FnOnce(), call: impl FnOnce()) {
    if let Err(payload) = panic::catch_unwind(AssertUnwindSafe(call)) {
        count();
        report_hook_panic(hook, payload.as_ref());
        crate::job::drop_payload(payload);
    }
}

#[cfg_attr(not(feature = "log"), allow(unused_variables))]
fn report_hook_panic(hook: &str, payload: &(dyn Any + Send)) {
    log_event!(warn, "the {hook} hook panicked: {}", crate::job::panic_message(payload));
}
