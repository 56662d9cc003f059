//! Configuring a pool: [`Builder`] turns user choices into a validated
//! [`Config`].

use std::any::Any;
use std::fmt;
use std::time::Duration;

use crate::error::{BuildError, BuildErrorKind};
use crate::hooks::Monitoring;
use crate::job::panic_message;
use crate::pool::Pool;
use crate::sync::plain::Arc;

/// The most priority levels a pool may have.
pub const MAX_LEVELS: usize = 64;

/// The most worker threads a pool may have.
pub const MAX_WORKERS: usize = 1 << 15;

/// How long an idle worker above a dynamic pool's minimum stays parked
/// before it exits, unless [`Builder::keep_alive`] says otherwise.
pub const DEFAULT_KEEP_ALIVE: Duration = Duration::from_secs(10);

pub(crate) type ThreadNameFn = Arc<dyn Fn(usize) -> String + Send + Sync>;
pub(crate) type PanicHandler = Arc<dyn Fn(Box<dyn Any + Send>) + Send + Sync>;

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
    /// Hooks and wait metrics; set by the methods in hooks.rs.
    pub(crate) monitoring: Monitoring,
}

/// A validated configuration (crate-internal).
pub(crate) struct Config {
    /// Workers started at build time and kept when idle.
    pub(crate) min_workers: usize,
    /// The most workers growth may start. Equal to `min_workers` for a
    /// fixed pool.
    pub(crate) max_workers: usize,
    pub(crate) keep_alive: Duration,
    pub(crate) levels: usize,
    pub(crate) thread_name: ThreadNameFn,
    pub(crate) stack_size: Option<usize>,
    pub(crate) panic_handler: PanicHandler,
    pub(crate) monitoring: Monitoring,
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
    pub fn stack_size(mut self, bytes: usize) -> Builder {
        self.stack_size = Some(bytes);
        self
    }

    /// Called on the worker thread with the payload of every panic of a job
    /// given to [`Pool::spawn`] (a job given to [`Pool::submit`] reports its
    /// panic through its [`JobHandle`](crate::JobHandle) instead). A panic
    /// in the handler itself is caught and ignored. Default: print the
    /// message to stderr. Either way the panic is counted in
    /// [`Pool::panic_count`].
    pub fn panic_handler(mut self, handler: impl Fn(Box<dyn Any + Send>) + Send + Sync + 'static) -> Builder {
        self.panic_handler = Some(Arc::new(handler));
        self
    }

    /// Validates the configuration and starts the worker threads.
    ///
    /// # Errors
    ///
    /// A [`BuildError`] whose message says what to change when `workers`,
    /// `max_workers` or `levels` is 0 or above its maximum, when
    /// `min_workers` is above `max_workers`, when `workers` is combined with
    /// `min_workers`/`max_workers`, when `keep_alive` is zero, or when the OS
    /// refuses to start a thread (then the threads already started are
    /// stopped and joined before this returns).
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
        if max_workers == 0 {
            return Err(BuildError::new(BuildErrorKind::NoWorkers));
        }
        if max_workers > MAX_WORKERS {
            return Err(BuildError::new(BuildErrorKind::TooManyWorkers { asked: max_workers, max: MAX_WORKERS }));
        }
        if min_workers > max_workers {
            return Err(BuildError::new(BuildErrorKind::MinAboveMax { min: min_workers, max: max_workers }));
        }
        if self.keep_alive.is_zero() {
            return Err(BuildError::new(BuildErrorKind::ZeroKeepAlive));
        }
        if self.levels == 0 {
            return Err(BuildError::new(BuildErrorKind::NoLevels));
        }
        if self.levels > MAX_LEVELS {
            return Err(BuildError::new(BuildErrorKind::TooManyLevels { asked: self.levels, max: MAX_LEVELS }));
        }
        Ok(Config {
            min_workers,
            max_workers,
            keep_alive: self.keep_alive,
            levels: self.levels,
            thread_name: self.thread_name.unwrap_or_else(|| Arc::new(|i| format!("priopool-{i}"))),
            stack_size: self.stack_size,
            panic_handler: self.panic_handler.unwrap_or_else(|| Arc::new(print_panic)),
            monitoring: self.monitoring,
        })
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
            .finish_non_exhaustive()
    }
}

fn print_panic(payload: Box<dyn Any + Send>) {
    let thread = crate::sync::plain::thread::current();
    let name = thread.name().unwrap_or("<unnamed>");
    eprintln!("priopool: a job panicked on thread '{name}': {}", panic_message(payload.as_ref()));
}
