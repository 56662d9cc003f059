//! [`Builder`]: the user's choices, turned into a validated
//! [`Config`](crate::config::Config) when the pool is built.

use std::any::Any;
use std::fmt;
use std::time::Duration;

use super::pool::Pool;
use crate::config::{
    Config, DEFAULT_KEEP_ALIVE, DropPolicy, MAX_LEVELS, PanicHandler, ThreadNameFn, UserCode, print_panic,
    validate_limits,
};
use crate::error::{BuildError, BuildErrorKind};
use crate::hooks::{JobInfo, JobOutcome, Monitoring};
use crate::isolation::IsolationOptions;
use crate::queue::Priority;
use crate::sync::plain::{Arc, Mutex};

/// Configures and starts a [`Pool`].
///
/// ```
/// use priopool::{Pool, Priority};
///
/// let pool = Pool::builder()
///     .workers(4)
///     .levels(3)
///     .thread_name(|i| format!("render-{i}"))
///     .build()?;
/// pool.spawn(Priority::level(1), || println!("a medium-priority job"))?;
/// pool.shutdown();
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// A dynamic pool sizes itself between two limits:
///
/// ```
/// use std::time::Duration;
/// use priopool::{Pool, Priority};
///
/// let pool = Pool::builder()
///     .min_workers(1) // kept even when idle
///     .max_workers(8) // started while jobs wait and no worker is idle
///     .keep_alive(Duration::from_secs(30)) // idle this long above the minimum: exit
///     .build()?;
/// assert_eq!(pool.workers(), 1);
/// pool.spawn(Priority::HIGH, || println!("runs on one of 1..=8 workers"))?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// The pool drops the code it was given (thread name function, panic
/// handler, hooks) once a shutdown has drained it and each worker thread
/// has exited, so that code may hold the pool's own
/// [`Spawner`](crate::Spawner) without keeping the pool's memory alive.
#[must_use = "a builder does nothing until `build` is called"]
pub struct Builder {
    workers: Option<usize>,
    min_workers: Option<usize>,
    max_workers: Option<usize>,
    keep_alive: Duration,
    levels: usize,
    thread_name: Option<ThreadNameFn>,
    stack_size: Option<usize>,
    panic_handler: Option<PanicHandler>,
    /// Hooks and wait metrics; set by the monitoring options below.
    monitoring: Monitoring,
    capacities: Vec<(Priority, usize)>,
    on_drop: DropPolicy,
    /// Reserved threads and OS priority: set by the options in
    /// `api/isolation.rs`.
    pub(super) isolation: IsolationOptions,
}

impl Builder {
    pub(crate) fn new() -> Builder {
        Builder {
            workers: None,
            min_workers: None,
            max_workers: None,
            keep_alive: DEFAULT_KEEP_ALIVE,
            levels: 2,
            thread_name: None,
            stack_size: None,
            panic_handler: None,
            monitoring: Monitoring::default(),
            capacities: Vec::new(),
            on_drop: DropPolicy::Drain,
            isolation: IsolationOptions::default(),
        }
    }

    /// A fixed pool of `n` worker threads, `1..=MAX_WORKERS`: all start at
    /// build time and stay until shutdown (or until
    /// [`Pool::set_workers`] changes the size). Default, when neither this
    /// nor [`Builder::min_workers`]/[`Builder::max_workers`] is called: the
    /// number of logical CPUs (`num_cpus::get()`). Cannot be combined with
    /// `min_workers`/`max_workers`.
    pub fn workers(mut self, n: usize) -> Builder {
        self.workers = Some(n);
        self
    }

    /// Makes the pool dynamic and sets the number of workers it starts at
    /// build time and keeps when idle, `0..=max_workers`. Default: 1 when
    /// only [`Builder::max_workers`] is given.
    ///
    /// With 0, an idle pool holds no threads at all and the first job
    /// after an idle spell pays for starting one (tens of µs).
    pub fn min_workers(mut self, n: usize) -> Builder {
        self.min_workers = Some(n);
        self
    }

    /// Makes the pool dynamic and sets the most workers it may run,
    /// `1..=MAX_WORKERS`: while jobs wait and no worker is idle, the pool
    /// starts one more worker per job pushed, up to this number. Default:
    /// the larger of `min_workers` and the number of logical CPUs when only
    /// [`Builder::min_workers`] is given.
    pub fn max_workers(mut self, n: usize) -> Builder {
        self.max_workers = Some(n);
        self
    }

    /// How long a worker above the pool's minimum may stay idle (parked,
    /// with nothing queued) before it exits. Must be longer than zero.
    /// Default: [`DEFAULT_KEEP_ALIVE`] (10 s). Has no effect while the
    /// pool is fixed (its minimum equals its maximum), but applies if
    /// [`Pool::set_worker_limits`] later makes it dynamic.
    pub fn keep_alive(mut self, idle: Duration) -> Builder {
        self.keep_alive = idle;
        self
    }

    /// The number of priority levels, `1..=MAX_LEVELS`. Default: 2, so that
    /// [`Priority::HIGH`](crate::Priority::HIGH) is level 0 and
    /// [`Priority::LOW`](crate::Priority::LOW) is level 1.
    pub fn levels(mut self, k: usize) -> Builder {
        self.levels = k;
        self
    }

    /// Names worker thread `index` (0-based) `name(index)`. Default:
    /// `priopool-{index}`. Indexes are never reused: a dynamic pool's
    /// replacement workers get new ones. `name` may be called on any
    /// thread that gives the pool a job (growth starts a worker there); a
    /// panic in it is caught and the default name used, as it is for a name
    /// containing a NUL byte (which no OS thread name can hold).
    pub fn thread_name(mut self, name: impl Fn(usize) -> String + Send + Sync + 'static) -> Builder {
        self.thread_name = Some(Arc::new(name));
        self
    }

    /// The stack size of each worker thread, in bytes. Default: the
    /// standard library's (2 MiB unless `RUST_MIN_STACK` says otherwise).
    /// A size below the platform's minimum (`PTHREAD_STACK_MIN` on Linux,
    /// 16 KiB on x86-64) gets that minimum. The stack holds a job's own
    /// frames and, while it waits in a `join` or a scope, those of the jobs
    /// its worker runs meanwhile, nested: a job that overflows it aborts
    /// the process, as on any thread.
    pub fn stack_size(mut self, bytes: usize) -> Builder {
        self.stack_size = Some(bytes);
        self
    }

    /// Called on the worker thread with the payload of every panic of a job
    /// given to [`Pool::spawn`] (a job given to [`Pool::submit`] reports its
    /// panic through its [`JobHandle`](crate::JobHandle) instead, and a
    /// scoped job or a `join` half to its scope or `join`, which resumes
    /// it). A panic
    /// in the handler itself is caught and ignored. Default: print the
    /// message to stderr. Either way the panic is counted in
    /// [`Pool::panic_count`]. A destructor that panics outside a job's run
    /// is not a job panic and does not come here: see
    /// [`Metrics::drop_panics`](crate::Metrics::drop_panics).
    ///
    /// The handler runs after the panic has unwound, so the standard
    /// library's panic hook has already printed its own message (for
    /// `submit` jobs too), as it does for every panic in the process;
    /// replace it with [`std::panic::set_hook`] to silence or redirect it.
    pub fn panic_handler(mut self, handler: impl Fn(Box<dyn Any + Send>) + Send + Sync + 'static) -> Builder {
        self.panic_handler = Some(Arc::new(handler));
        self
    }

    /// Bounds the backlog of the level `priority` names to `n` queued jobs
    /// (`n >= 1`), like a Go buffered channel: a spawn from outside the pool
    /// that finds the level full waits for room ([`Pool::spawn`],
    /// [`Pool::submit`]), is refused at once with the job handed back
    /// ([`Pool::try_spawn`], [`Pool::try_submit`], kind
    /// [`SpawnErrorKind::Full`](crate::SpawnErrorKind::Full), or
    /// [`SpawnErrorKind::Shutdown`](crate::SpawnErrorKind::Shutdown) once the
    /// pool shuts down), or waits at
    /// most a given time ([`Pool::spawn_timeout`], [`Pool::submit_timeout`];
    /// [`JobBuilder::when_full`](crate::JobBuilder::when_full) for jobs with
    /// options). A shutdown wakes the waiting spawns, which are then
    /// refused. Default: every level unbounded (a spawn never waits). Given
    /// twice for a level, the last call applies.
    ///
    /// A job holds its slot from its spawn until a worker takes it off the
    /// queue to run it (or to discard it, cancelled or expired); running
    /// jobs hold none. Not the number of jobs in flight, then, but the
    /// queue entries: what a producer may run ahead of the workers. A job
    /// cancelled, expired or promoted away while queued leaves the
    /// backlog ([`Pool::queued`]) at once but keeps its slot until a worker
    /// reaches its dead entry (or [`Pool::cancel_queued`] or a shutdown
    /// sweeps it), so while every worker is busy a level may be full with
    /// a backlog below `n`, even 0.
    ///
    /// **Spawns from inside the pool's own jobs never wait for room**: a job
    /// that waited for a worker to make room could wait for ever, since it
    /// holds a worker itself (in a one-worker pool, at once). Nor do spawns
    /// from the pool's worker threads outside their jobs (a thread hook, a
    /// logger called there), which hold their worker as well. Their `spawn`,
    /// `submit` and timed variants are admitted *over* the capacity instead,
    /// so the backlog may exceed `n` by the jobs spawned that way;
    /// `try_spawn` and `try_submit` refuse them when the level is full, as
    /// anywhere. Each level's capacity and the spawns that waited for room
    /// are in [`LevelMetrics`](crate::LevelMetrics).
    ///
    /// # Errors
    ///
    /// [`Builder::build`] fails when `n` is 0 or `priority` names a level
    /// the pool does not have.
    pub fn capacity(mut self, priority: impl Into<Priority>, n: usize) -> Builder {
        self.capacities.push((priority.into(), n));
        self
    }

    /// What dropping the [`Pool`] does with the jobs still queued: run them
    /// all ([`DropPolicy::Drain`], the default, as [`Pool::shutdown`]) or
    /// cancel them ([`DropPolicy::CancelBacklog`], as [`Pool::shutdown_now`]).
    /// Either way the drop waits for the running jobs and joins the
    /// workers. The explicit shutdown calls do what they say whatever this
    /// is.
    pub fn on_drop(mut self, policy: DropPolicy) -> Builder {
        self.on_drop = policy;
        self
    }

    /// Validates the configuration and starts the worker threads.
    ///
    /// # Errors
    ///
    /// A [`BuildError`] whose message says what to change when `workers`,
    /// `max_workers` or `levels` is 0 or above its maximum, when
    /// `min_workers` is above `max_workers`, when `workers` is combined with
    /// `min_workers`/`max_workers`, when `keep_alive` is zero, when an
    /// isolation option is out of range (see [`Builder::reserved_threads`]
    /// and the options after it), or when the OS
    /// refuses to start a thread (then the threads already started are
    /// stopped and joined before this returns); and as [`Builder::capacity`].
    pub fn build(self) -> Result<Pool, BuildError> {
        Pool::start(self.into_config()?)
    }

    fn into_config(self) -> Result<Config, BuildError> {
        let (min_workers, max_workers) = match (self.workers, self.min_workers, self.max_workers) {
            (Some(_), Some(_), _) | (Some(_), _, Some(_)) => {
                return Err(BuildError::new(BuildErrorKind::FixedAndDynamic));
            }
            (Some(n), None, None) => (n, n),
            (None, None, None) => (num_cpus::get(), num_cpus::get()),
            (None, min, max) => {
                let min = min.unwrap_or(1);
                (min, max.unwrap_or_else(|| min.max(num_cpus::get())))
            }
        };
        validate_limits(min_workers, max_workers).map_err(|e| BuildError::new(BuildErrorKind::Limits(e)))?;
        if self.keep_alive.is_zero() {
            return Err(BuildError::new(BuildErrorKind::ZeroKeepAlive));
        }
        if self.levels == 0 {
            return Err(BuildError::new(BuildErrorKind::NoLevels));
        }
        if self.levels > MAX_LEVELS {
            return Err(BuildError::new(BuildErrorKind::TooManyLevels { asked: self.levels, max: MAX_LEVELS }));
        }
        let mut capacities = vec![None; self.levels];
        for (priority, n) in self.capacities {
            let level =
                priority.resolve(self.levels).ok_or(BuildError::new(BuildErrorKind::CapacityOfUnknownLevel {
                    level: priority.asked().unwrap_or(self.levels),
                    levels: self.levels,
                }))?;
            if n == 0 {
                return Err(BuildError::new(BuildErrorKind::ZeroCapacity { level }));
            }
            capacities[level] = Some(n);
        }
        let isolation =
            self.isolation.validate(self.levels).map_err(|e| BuildError::new(BuildErrorKind::Isolation(e)))?;
        Ok(Config {
            capacities,
            on_drop: self.on_drop,
            min_workers,
            max_workers,
            keep_alive: self.keep_alive,
            levels: self.levels,
            stack_size: self.stack_size,
            user_code: Mutex::new(Some(Arc::new(UserCode {
                thread_name: self.thread_name.unwrap_or_else(|| Arc::new(|i| format!("priopool-{i}"))),
                panic_handler: self.panic_handler.unwrap_or_else(|| Arc::new(print_panic)),
                monitoring: self.monitoring,
            }))),
            isolation,
        })
    }
}

/// The monitoring options: queue-wait metrics and hooks (each hook's docs
/// say on which thread, and when, it runs).
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
    /// is treated as one from outside the pool, except that it never waits
    /// for room at a full level (see [`Builder::capacity`]). A panic in the hook is
    /// caught and counted (see [`Metrics::hook_panics`](crate::Metrics::hook_panics));
    /// the worker starts anyway.
    pub fn on_thread_start(mut self, hook: impl Fn(usize) + Send + Sync + 'static) -> Builder {
        self.monitoring.on_thread_start = Some(Arc::new(hook));
        self
    }

    /// Calls `hook(index)` on each worker thread as it exits, after its last
    /// job. At shutdown the pool is drained by then, so a spawn from the
    /// hook is refused with [`SpawnErrorKind::Shutdown`](crate::SpawnErrorKind::Shutdown);
    /// from a worker that retires, it is as one from
    /// [`on_thread_start`](Builder::on_thread_start)'s hook.
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

impl Default for Builder {
    fn default() -> Builder {
        Builder::new()
    }
}

impl fmt::Debug for Builder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Builder")
            .field("workers", &self.workers)
            .field("min_workers", &self.min_workers)
            .field("max_workers", &self.max_workers)
            .field("keep_alive", &self.keep_alive)
            .field("levels", &self.levels)
            .field("stack_size", &self.stack_size)
            .field("monitoring", &self.monitoring)
            .field("capacities", &self.capacities)
            .field("on_drop", &self.on_drop)
            .field("isolation", &self.isolation)
            .finish_non_exhaustive()
    }
}
