//! The crate's errors: building a pool, handing it a job, and a job's fate.

use std::any::Any;
use std::error::Error;
use std::fmt;
use std::io;

use crate::isolation::IsolationError;
use crate::sync::plain::{Mutex, PoisonError};

/// Why [`Builder::build`](crate::Builder::build) refused to make a pool.
///
/// The message says what to change. The kind is private so that new causes
/// can be added without breaking callers; [`Error::source`] gives the OS
/// error when a worker thread could not be started.
#[derive(Debug)]
pub struct BuildError {
    kind: BuildErrorKind,
}

pub(crate) enum BuildErrorKind {
    Limits(LimitsError),
    FixedAndDynamic,
    ZeroKeepAlive,
    NoLevels,
    TooManyLevels { asked: usize, max: usize },
    ThreadSpawn { index: usize, source: io::Error },
    ZeroCapacity { level: usize },
    CapacityOfUnknownLevel { level: usize, levels: usize },
    Isolation(IsolationError),
}

// `Limits` prints as its cause alone (`BuildError { kind: NoWorkers }`), so
// that the shared `LimitsError` changed no `{:?}` output.
impl fmt::Debug for BuildErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BuildErrorKind::Limits(cause) => fmt::Debug::fmt(cause, f),
            BuildErrorKind::FixedAndDynamic => f.write_str("FixedAndDynamic"),
            BuildErrorKind::ZeroKeepAlive => f.write_str("ZeroKeepAlive"),
            BuildErrorKind::NoLevels => f.write_str("NoLevels"),
            BuildErrorKind::TooManyLevels { asked, max } => {
                f.debug_struct("TooManyLevels").field("asked", asked).field("max", max).finish()
            }
            BuildErrorKind::ThreadSpawn { index, source } => {
                f.debug_struct("ThreadSpawn").field("index", index).field("source", source).finish()
            }
            BuildErrorKind::ZeroCapacity { level } => f.debug_struct("ZeroCapacity").field("level", level).finish(),
            BuildErrorKind::CapacityOfUnknownLevel { level, levels } => {
                f.debug_struct("CapacityOfUnknownLevel").field("level", level).field("levels", levels).finish()
            }
            BuildErrorKind::Isolation(cause) => fmt::Debug::fmt(cause, f),
        }
    }
}

impl BuildError {
    pub(crate) fn new(kind: BuildErrorKind) -> BuildError {
        BuildError { kind }
    }
}

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            BuildErrorKind::Limits(LimitsError::NoWorkers) => {
                f.write_str("a pool needs at least one worker: pass workers(n) or max_workers(n) with n >= 1")
            }
            BuildErrorKind::Limits(LimitsError::TooManyWorkers { asked, max }) => write!(
                f,
                "{asked} workers is more than the {max} a pool supports: pass workers(n) or max_workers(n) with n <= {max}"
            ),
            BuildErrorKind::Limits(LimitsError::MinAboveMax { min, max }) => {
                write!(f, "min_workers({min}) is above max_workers({max}): lower min_workers or raise max_workers")
            }
            BuildErrorKind::FixedAndDynamic => f.write_str(
                "workers(n) fixes the pool's size and min_workers/max_workers make it dynamic: call one or the other",
            ),
            BuildErrorKind::ZeroKeepAlive => {
                f.write_str("keep_alive must be longer than zero: pass a positive Duration, such as 10 seconds")
            }
            BuildErrorKind::NoLevels => {
                f.write_str("a pool needs at least one priority level: pass levels(k) with k >= 1")
            }
            BuildErrorKind::TooManyLevels { asked, max } => {
                write!(
                    f,
                    "{asked} priority levels is more than the {max} a pool supports: pass levels(k) with k <= {max}"
                )
            }
            BuildErrorKind::ThreadSpawn { index, source } => {
                write!(
                    f,
                    "the OS refused to start worker thread {index} ({source}): lower workers(n) or stack_size(bytes)"
                )
            }
            BuildErrorKind::ZeroCapacity { level } => write!(
                f,
                "capacity(level {level}, 0) would refuse every job: pass a capacity of at least 1, or none for an unbounded level"
            ),
            BuildErrorKind::CapacityOfUnknownLevel { level, levels } => write!(
                f,
                "capacity is given for priority level {level}, but the pool is built with levels({levels}), which are 0 to {}: raise levels(k) or fix the level",
                levels - 1
            ),
            BuildErrorKind::Isolation(cause) => fmt::Display::fmt(cause, f),
        }
    }
}

impl Error for BuildError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        match &self.kind {
            BuildErrorKind::ThreadSpawn { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// Worker limits no pool can have, found by `config::validate_limits` for
/// both the builder and a resize. Each of [`BuildError`] and [`ResizeError`]
/// wraps it and says what to change in the calls its user made.
#[derive(Clone, Copy, Debug)]
pub(crate) enum LimitsError {
    NoWorkers,
    TooManyWorkers { asked: usize, max: usize },
    MinAboveMax { min: usize, max: usize },
}

/// Why [`Pool::set_workers`](crate::Pool::set_workers) or
/// [`Pool::set_worker_limits`](crate::Pool::set_worker_limits) failed.
///
/// The message says what to change. Invalid limits leave the pool as it
/// was. A refused thread start (the OS thread limit, or memory for the
/// stacks) is different: the new limits are in force and the pool keeps
/// running with the workers it has, growing again when work arrives;
/// [`Error::source`] gives the OS error.
#[derive(Debug)]
pub struct ResizeError {
    kind: ResizeErrorKind,
}

pub(crate) enum ResizeErrorKind {
    Limits(LimitsError),
    ThreadSpawn { running: usize, source: io::Error },
}

// As `BuildErrorKind`: `Limits` prints as its cause alone.
impl fmt::Debug for ResizeErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ResizeErrorKind::Limits(cause) => fmt::Debug::fmt(cause, f),
            ResizeErrorKind::ThreadSpawn { running, source } => {
                f.debug_struct("ThreadSpawn").field("running", running).field("source", source).finish()
            }
        }
    }
}

impl ResizeError {
    pub(crate) fn new(kind: ResizeErrorKind) -> ResizeError {
        ResizeError { kind }
    }

    /// Whether the limits were applied but a worker thread could not be
    /// started, so that the pool runs with fewer workers than its minimum
    /// for now.
    pub fn is_thread_spawn(&self) -> bool {
        matches!(self.kind, ResizeErrorKind::ThreadSpawn { .. })
    }
}

impl fmt::Display for ResizeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            ResizeErrorKind::Limits(LimitsError::NoWorkers) => f.write_str(
                "a pool needs at least one worker: pass n >= 1 to set_workers, or max >= 1 to set_worker_limits",
            ),
            ResizeErrorKind::Limits(LimitsError::TooManyWorkers { asked, max }) => {
                write!(f, "{asked} workers is more than the {max} a pool supports: pass at most {max}")
            }
            ResizeErrorKind::Limits(LimitsError::MinAboveMax { min, max }) => {
                write!(f, "the minimum of {min} workers is above the maximum of {max}: pass min <= max")
            }
            ResizeErrorKind::ThreadSpawn { running, source } => write!(
                f,
                "the OS refused to start a worker thread ({source}); the new limits apply and the pool keeps running \
                 with {running} workers: retry later, or lower the size or stack_size(bytes)"
            ),
        }
    }
}

impl Error for ResizeError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        match &self.kind {
            ResizeErrorKind::ThreadSpawn { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// A job the pool did not accept, handed back to the caller.
///
/// The pool never drops a rejected closure: [`SpawnError::into_inner`]
/// returns it, so the caller can run it elsewhere, retry, or drop it on
/// purpose. [`SpawnError::kind`] says why it was refused.
///
/// It is `Send + Sync` for any `F: Send`, even a closure that captures
/// something not `Sync` (an `mpsc::Receiver`, a `Cell`): the job is only
/// ever handed back by value, so it is kept behind a lock that nothing
/// takes by reference. With `F: 'static` (every closure the pool takes),
/// `?` converts it into `Box<dyn Error + Send + Sync>` or `anyhow::Error`.
/// A closure's type cannot be written down; a function that returns the
/// error names [`ErasedSpawnError`] and converts with [`SpawnError::erase`]:
///
/// ```
/// use priopool::{ErasedSpawnError, Pool, Priority, SpawnError};
///
/// fn start_batch(pool: &Pool) -> Result<(), ErasedSpawnError> {
///     let receiver = std::sync::mpsc::channel::<u32>().1; // Send, not Sync
///     pool.spawn(Priority::LOW, move || drop(receiver)).map_err(SpawnError::erase)
/// }
/// # let pool = Pool::builder().workers(1).build()?;
/// # start_batch(&pool)?;
/// # Ok::<(), Box<dyn std::error::Error + Send + Sync>>(())
/// ```
pub struct SpawnError<F> {
    job: Mutex<F>,
    kind: SpawnErrorKind,
}

/// A [`SpawnError`] whose job's type is erased ([`SpawnError::erase`]), so
/// that a function can name it in its return type. The job is still inside:
/// `into_inner().downcast::<F>()` gives the closure back.
pub type ErasedSpawnError = SpawnError<Box<dyn Any + Send>>;

/// Why a job was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SpawnErrorKind {
    /// The pool has begun shutting down and takes no new jobs from outside.
    /// (Jobs spawned by the pool's own running jobs are still accepted
    /// during the drain.)
    Shutdown,
    /// The priority names a level the pool does not have.
    UnknownLevel {
        /// The level asked for.
        level: usize,
        /// How many levels the pool has (valid levels are `0..levels`).
        levels: usize,
    },
    /// The job has a deadline, and the pool's deadline timer thread (started
    /// with the first such job) could not be started because the OS refused
    /// a new thread. Retrying may succeed; a job without a deadline needs no
    /// timer.
    TimerUnavailable,
    /// The job's level is at its capacity (see
    /// [`Builder::capacity`](crate::Builder::capacity)) and the spawn was
    /// not to wait for room (`try_spawn`, `try_submit`), or the room did not
    /// come within its wait (`spawn_timeout`, `submit_timeout`) or before
    /// the job's start deadline (`JobBuilder::deadline`, `max_wait`). Once the
    /// pool shuts down, a spawn from outside it is refused with
    /// [`SpawnErrorKind::Shutdown`] instead, full level or not.
    Full,
    /// [`priopool::spawn`](crate::spawn) was called on a thread that runs
    /// no pool's job (a worker thread's hooks `on_thread_start` and
    /// `on_thread_stop` run none), so there is no pool to spawn on: use
    /// [`Pool::spawn`](crate::Pool::spawn) or a [`Spawner`](crate::Spawner)
    /// there.
    NotInPool,
}

impl fmt::Display for SpawnErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            SpawnErrorKind::Shutdown => f.write_str("the pool is shutting down and accepts no new jobs"),
            SpawnErrorKind::UnknownLevel { level, levels } => {
                write!(f, "priority level {level} does not exist: this pool was built with levels({levels}), which are 0 to {}", levels - 1)
            }
            SpawnErrorKind::TimerUnavailable => f.write_str(
                "the OS refused to start the pool's deadline timer thread: retry, or submit the job without a deadline",
            ),
            SpawnErrorKind::Full => f.write_str(
                "the job's priority level is at its capacity: retry later, or let the spawn wait for room (spawn, submit)",
            ),
            SpawnErrorKind::NotInPool => f.write_str(
                "priopool::spawn was called outside the jobs of a pool, so there is no pool to spawn on: use Pool::spawn or a Spawner",
            ),
        }
    }
}

impl Error for SpawnErrorKind {}

impl<F> SpawnError<F> {
    pub(crate) fn new(job: F, kind: SpawnErrorKind) -> SpawnError<F> {
        SpawnError { job: Mutex::new(job), kind }
    }

    /// Why the job was refused.
    pub fn kind(&self) -> SpawnErrorKind {
        self.kind
    }

    /// The refused closure, unrun.
    pub fn into_inner(self) -> F {
        self.job.into_inner().unwrap_or_else(PoisonError::into_inner)
    }

    /// The same error with the job's type erased, for a return type that
    /// must be written down; see [`ErasedSpawnError`].
    pub fn erase(self) -> ErasedSpawnError
    where
        F: Send + 'static,
    {
        let kind = self.kind;
        SpawnError::new(Box::new(self.into_inner()), kind)
    }
}

impl<F> fmt::Debug for SpawnError<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SpawnError").field("kind", &self.kind).finish_non_exhaustive()
    }
}

impl<F> fmt::Display for SpawnError<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.kind, f)
    }
}

impl<F> Error for SpawnError<F> {}

/// Why a submitted job produced no value.
#[non_exhaustive]
pub enum JobError {
    /// The job panicked; this holds the payload `panic!` was given, for
    /// inspection or [`std::panic::resume_unwind`].
    Panicked(PanicPayload),
    /// The job was dropped without being run, so it never will be: it was
    /// cancelled before it started, by any of the ways
    /// [`LevelMetrics::cancelled`](crate::LevelMetrics::cancelled) lists
    /// (its handle, its group, [`Pool::cancel_queued`](crate::Pool::cancel_queued),
    /// [`Pool::shutdown_now`](crate::Pool::shutdown_now) and the shutdowns
    /// that cancel the backlog).
    Cancelled,
    /// The job's deadline passed before a worker started it, so it never
    /// ran; its closure was dropped when the deadline passed. See
    /// [`JobBuilder::deadline`](crate::JobBuilder::deadline).
    Expired,
}

/// The payload of a job's panic, as `panic!` gave it (usually a
/// `&'static str` or a `String`).
///
/// It is kept behind a lock so that [`JobError`] is `Send + Sync` (and
/// works with `?` into `Box<dyn Error + Send + Sync>` or `anyhow`) although a
/// panic payload is only `Send`. Take it out with
/// [`PanicPayload::into_inner`], for instance to
/// [`std::panic::resume_unwind`] it on the joining thread.
pub struct PanicPayload(Mutex<Box<dyn Any + Send + 'static>>);

impl PanicPayload {
    pub(crate) fn new(payload: Box<dyn Any + Send + 'static>) -> PanicPayload {
        PanicPayload(Mutex::new(payload))
    }

    /// The payload itself.
    pub fn into_inner(self) -> Box<dyn Any + Send + 'static> {
        self.0.into_inner().unwrap_or_else(PoisonError::into_inner)
    }

    /// The panic message, if the payload is a string (as `panic!` with a
    /// message makes it).
    pub fn message(&self) -> Option<String> {
        let payload = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        payload.downcast_ref::<&str>().map(|s| (*s).to_owned()).or_else(|| payload.downcast_ref::<String>().cloned())
    }
}

impl fmt::Debug for PanicPayload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.message() {
            Some(message) => fmt::Debug::fmt(&message, f),
            None => f.write_str("<non-string panic payload>"),
        }
    }
}

impl JobError {
    /// Whether the job panicked.
    pub fn is_panic(&self) -> bool {
        matches!(self, JobError::Panicked(_))
    }

    /// Whether the job was dropped without being run.
    pub fn is_cancelled(&self) -> bool {
        matches!(self, JobError::Cancelled)
    }

    /// Whether the job's deadline passed before it started.
    pub fn is_expired(&self) -> bool {
        matches!(self, JobError::Expired)
    }
}

impl fmt::Debug for JobError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JobError::Panicked(payload) => f.debug_tuple("Panicked").field(payload).finish(),
            JobError::Cancelled => f.write_str("Cancelled"),
            JobError::Expired => f.write_str("Expired"),
        }
    }
}

impl fmt::Display for JobError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JobError::Panicked(payload) => {
                write!(f, "the job panicked: {}", payload.message().as_deref().unwrap_or("<non-string panic payload>"))
            }
            JobError::Cancelled => f.write_str("the job was cancelled before it started, so it never ran"),
            JobError::Expired => f.write_str("the job's deadline passed before it started, so it never ran"),
        }
    }
}

impl Error for JobError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_limits_error_prints_as_its_cause() {
        let build = BuildError::new(BuildErrorKind::Limits(LimitsError::NoWorkers));
        assert_eq!(format!("{build:?}"), "BuildError { kind: NoWorkers }");
        let resize = ResizeError::new(ResizeErrorKind::Limits(LimitsError::MinAboveMax { min: 3, max: 2 }));
        assert_eq!(format!("{resize:?}"), "ResizeError { kind: MinAboveMax { min: 3, max: 2 } }");
    }
}
