//! Configuring a pool: [`Builder`] turns user choices into a validated
//! [`Config`].

use std::any::Any;
use std::fmt;
use std::sync::Arc;

use crate::error::{BuildError, BuildErrorKind};
use crate::hooks::Monitoring;
use crate::job::panic_message;
use crate::pool::Pool;

/// The most priority levels a pool may have.
pub const MAX_LEVELS: usize = 64;

/// The most worker threads a pool may have.
pub const MAX_WORKERS: usize = 1 << 15;

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
#[must_use = "a builder does nothing until `build` is called"]
pub struct Builder {
    workers: Option<usize>,
    levels: usize,
    thread_name: Option<ThreadNameFn>,
    stack_size: Option<usize>,
    panic_handler: Option<PanicHandler>,
    /// Hooks and wait metrics; set by the methods in hooks.rs.
    pub(crate) monitoring: Monitoring,
}

/// A validated configuration (crate-internal).
pub(crate) struct Config {
    pub(crate) workers: usize,
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
            levels: 2,
            thread_name: None,
            stack_size: None,
            panic_handler: None,
            monitoring: Monitoring::default(),
        }
    }

    /// The number of worker threads, `1..=MAX_WORKERS`. Default: the number
    /// of logical CPUs (`num_cpus::get()`).
    pub fn workers(mut self, n: usize) -> Builder {
        self.workers = Some(n);
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
    /// `priopool-{index}`.
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
    /// A [`BuildError`] whose message says what to change when `workers` or
    /// `levels` is 0 or above its maximum, or when the OS refuses to start a
    /// thread (then the threads already started are stopped and joined
    /// before this returns).
    pub fn build(self) -> Result<Pool, BuildError> {
        Pool::start(self.into_config()?)
    }

    fn into_config(self) -> Result<Config, BuildError> {
        let workers = self.workers.unwrap_or_else(num_cpus::get);
        if workers == 0 {
            return Err(BuildError::new(BuildErrorKind::NoWorkers));
        }
        if workers > MAX_WORKERS {
            return Err(BuildError::new(BuildErrorKind::TooManyWorkers { asked: workers, max: MAX_WORKERS }));
        }
        if self.levels == 0 {
            return Err(BuildError::new(BuildErrorKind::NoLevels));
        }
        if self.levels > MAX_LEVELS {
            return Err(BuildError::new(BuildErrorKind::TooManyLevels { asked: self.levels, max: MAX_LEVELS }));
        }
        Ok(Config {
            workers,
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
            .field("levels", &self.levels)
            .field("stack_size", &self.stack_size)
            .field("monitoring", &self.monitoring)
            .finish_non_exhaustive()
    }
}

fn print_panic(payload: Box<dyn Any + Send>) {
    let thread = std::thread::current();
    let name = thread.name().unwrap_or("<unnamed>");
    eprintln!("priopool: a job panicked on thread '{name}': {}", panic_message(payload.as_ref()));
}
