//! [`JobBuilder`]: a job with options (a deadline, a maximum queue wait,
//! a context), started by [`Pool::job`](crate::Pool::job) or
//! [`Spawner::job`](crate::Spawner::job).

use std::fmt;
use std::time::{Duration, Instant};

use super::handle::{CancelHandle, JobHandle};
use crate::error::SpawnError;
use crate::job::task::Task;
use crate::job::{Job, JobContext};
use crate::queue::Priority;
use crate::runtime::registry::Registry;
use crate::sync::{Arc, plain};

/// A job being described before it is handed to the pool: its priority
/// and options, then one of [`spawn`](JobBuilder::spawn),
/// [`submit`](JobBuilder::submit), [`spawn_with_context`](JobBuilder::spawn_with_context)
/// or [`submit_with_context`](JobBuilder::submit_with_context).
///
/// ```
/// use std::time::Duration;
/// use priopool::{Pool, Priority};
///
/// let pool = Pool::builder().workers(2).build()?;
/// // Worth doing only if it starts within 50 ms; otherwise the handle says
/// // `JobError::Expired` and the closure is dropped unrun.
/// let fresh = pool.job(Priority::LOW).max_wait(Duration::from_millis(50)).submit(|| 6 * 7)?;
/// match fresh.join() {
///     Ok(answer) => assert_eq!(answer, 42),
///     Err(error) => assert!(error.is_expired()),
/// }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// Without options, `pool.job(p).submit(f)` is the same as
/// `pool.submit(p, f)`.
#[must_use = "a JobBuilder does nothing until spawn or submit is called"]
pub struct JobBuilder<'a> {
    registry: &'a Arc<Registry>,
    priority: Priority,
    deadline: Option<Instant>,
    max_wait: Option<Duration>,
}

impl<'a> JobBuilder<'a> {
    pub(crate) fn new(registry: &'a Arc<Registry>, priority: Priority) -> JobBuilder<'a> {
        JobBuilder { registry, priority, deadline: None, max_wait: None }
    }

    /// The latest time the job may start. A job that no worker has started
    /// by `at` never runs: its closure is dropped when `at` passes (by the
    /// pool's deadline timer thread, or by a worker that pops it later,
    /// whichever comes first) and its handle yields
    /// [`JobError::Expired`](crate::JobError::Expired). A deadline already
    /// past when the job is submitted expires it at once. The deadline
    /// bounds the start only: a job that started in time runs to its end.
    ///
    /// Given more than once, or together with
    /// [`max_wait`](JobBuilder::max_wait), the earliest deadline applies.
    #[doc(alias = "timeout")]
    #[doc(alias = "expire")]
    pub fn deadline(mut self, at: Instant) -> JobBuilder<'a> {
        self.deadline = Some(self.deadline.map_or(at, |earlier| earlier.min(at)));
        self
    }

    /// The longest the job may wait in the queue, measured from the call to
    /// `spawn`/`submit`: the same as a [`deadline`](JobBuilder::deadline) of
    /// that instant plus `wait`. A zero `wait` is a deadline already past:
    /// the job expires at once and never runs. A `wait` too large to add to
    /// `Instant::now()` sets no deadline.
    #[doc(alias = "timeout")]
    pub fn max_wait(mut self, wait: Duration) -> JobBuilder<'a> {
        self.max_wait = Some(self.max_wait.map_or(wait, |shorter| shorter.min(wait)));
        self
    }

    /// Queues `job` with these options; the job's panics go to the pool's
    /// panic handler, as with [`Pool::spawn`](crate::Pool::spawn). The
    /// returned [`CancelHandle`] may be dropped.
    ///
    /// # Errors
    ///
    /// A [`SpawnError`] holding `job`, unrun, as for
    /// [`Spawner::spawn`](crate::Spawner::spawn), and with
    /// [`SpawnErrorKind::TimerUnavailable`](crate::SpawnErrorKind::TimerUnavailable) when the job has a deadline and
    /// the pool's timer thread could not be started.
    pub fn spawn<F>(self, job: F) -> Result<CancelHandle, SpawnError<F>>
    where
        F: FnOnce() + Send + 'static,
    {
        self.spawn_wrapped(job, |job| move |_: &JobContext| job())
    }

    /// As [`JobBuilder::spawn`], for a job that takes its [`JobContext`] to
    /// notice a cancellation.
    ///
    /// # Errors
    ///
    /// As [`JobBuilder::spawn`].
    pub fn spawn_with_context<F>(self, job: F) -> Result<CancelHandle, SpawnError<F>>
    where
        F: FnOnce(&JobContext) + Send + 'static,
    {
        self.spawn_wrapped(job, |job| job)
    }

    /// Queues `job` with these options and returns a [`JobHandle`] to its
    /// result.
    ///
    /// # Errors
    ///
    /// As [`JobBuilder::spawn`].
    pub fn submit<F, T>(self, job: F) -> Result<JobHandle<T>, SpawnError<F>>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        self.submit_wrapped(job, |job| move |_: &JobContext| job())
    }

    /// As [`JobBuilder::submit`], for a job that takes its [`JobContext`]
    /// to notice a cancellation; see [`JobContext`] for the patterns.
    ///
    /// # Errors
    ///
    /// As [`JobBuilder::spawn`].
    pub fn submit_with_context<F, T>(self, job: F) -> Result<JobHandle<T>, SpawnError<F>>
    where
        F: FnOnce(&JobContext) -> T + Send + 'static,
        T: Send + 'static,
    {
        self.submit_wrapped(job, |job| job)
    }
}

// The shared path of the four public methods: each wraps its closure into
// one that takes the context, then queues it with `Registry::spawn`.
impl JobBuilder<'_> {
    fn spawn_wrapped<F, G>(self, job: F, wrap: impl FnOnce(F) -> G) -> Result<CancelHandle, SpawnError<F>>
    where
        G: FnOnce(&JobContext) + Send + 'static,
    {
        self.queue(job, |job, deadline| {
            let task = Task::spawned(wrap(job), deadline);
            (Job::task(plain::Arc::clone(&task)), CancelHandle::new(task))
        })
    }

    fn submit_wrapped<F, G, T>(self, job: F, wrap: impl FnOnce(F) -> G) -> Result<JobHandle<T>, SpawnError<F>>
    where
        G: FnOnce(&JobContext) -> T + Send + 'static,
        T: Send + 'static,
    {
        let registry = self.registry;
        self.queue(job, |job, deadline| JobHandle::with_context(wrap(job), deadline, registry))
    }

    fn queue<F, H>(self, job: F, make: impl FnOnce(F, Option<Instant>) -> (Job, H)) -> Result<H, SpawnError<F>> {
        let deadline = self.effective_deadline();
        Registry::spawn(self.registry, self.priority, job, deadline, make)
    }

    fn effective_deadline(&self) -> Option<Instant> {
        let from_wait = self.max_wait.and_then(|wait| Instant::now().checked_add(wait));
        match (self.deadline, from_wait) {
            (Some(at), Some(other)) => Some(at.min(other)),
            (at, other) => at.or(other),
        }
    }
}

impl fmt::Debug for JobBuilder<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JobBuilder")
            .field("priority", &self.priority)
            .field("deadline", &self.deadline)
            .field("max_wait", &self.max_wait)
            .finish_non_exhaustive()
    }
}
