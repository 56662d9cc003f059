//! [`JobBuilder`]: a job with options (a deadline, a maximum queue wait,
//! a context), started by [`Pool::job`](crate::Pool::job) or
//! [`Spawner::job`](crate::Spawner::job).

use std::fmt;
use std::time::{Duration, Instant};

use super::group::JobGroup;
use super::handle::{CancelHandle, JobHandle};
use crate::capacity::WhenFull;
use crate::error::SpawnError;
use crate::job::task::{Task, TaskCell};
use crate::job::{Job, JobContext};
use crate::queue::Priority;
use crate::runtime::registry::{Registry, Slot};
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
///
/// A `JobBuilder` is `Clone`: describe a kind of job once and start many.
/// (A [`deadline`](JobBuilder::deadline) is an instant, the same for every
/// clone; a [`max_wait`](JobBuilder::max_wait) counts from each spawn.)
///
/// ```
/// use std::time::Duration;
/// use priopool::{JobGroup, Pool, Priority, WhenFull};
///
/// let pool = Pool::builder().workers(2).build()?;
/// let batch = JobGroup::new();
/// let reindex = pool.job(Priority::LOW).name("reindex").group(&batch).when_full(WhenFull::Refuse);
/// let parts: Vec<_> = (0..4).map(|i| reindex.clone().submit(move || i * 2)).collect::<Result<_, _>>()?;
/// let interactive = pool.job(Priority::HIGH).name("request").max_wait(Duration::from_millis(200));
/// assert_eq!(interactive.clone().submit(|| "ok")?.join()?, "ok");
/// assert_eq!(parts.into_iter().map(|p| p.join()).sum::<Result<i32, _>>()?, 12);
/// # Ok::<(), Box<dyn std::error::Error + Send + Sync>>(())
/// ```
#[must_use = "a JobBuilder does nothing until spawn or submit is called"]
#[derive(Clone)]
pub struct JobBuilder<'a> {
    registry: &'a Arc<Registry>,
    priority: Priority,
    deadline: Option<Instant>,
    max_wait: Option<Duration>,
    name: Option<plain::Arc<str>>,
    when_full: WhenFull,
    group: Option<JobGroup>,
}

impl<'a> JobBuilder<'a> {
    pub(crate) fn new(registry: &'a Arc<Registry>, priority: Priority) -> JobBuilder<'a> {
        JobBuilder {
            registry,
            priority,
            deadline: None,
            max_wait: None,
            name: None,
            when_full: WhenFull::Wait,
            group: None,
        }
    }

    /// A *start* deadline: the latest time the job may start, not finish.
    /// A job that no worker has started
    /// by `at` never runs: its closure is dropped when `at` passes (by the
    /// pool's deadline timer thread, or by a worker that pops it later,
    /// whichever comes first) and its handle yields
    /// [`JobError::Expired`](crate::JobError::Expired). A deadline already
    /// past when the job is submitted expires it at once. The deadline
    /// bounds the start only: a job that started in time runs to its end
    /// (to bound the run too, have the job watch its
    /// [`JobContext`] and cancel it).
    ///
    /// On a level at its [capacity](crate::Builder::capacity), the spawn
    /// waits for room at most until `at` (or less, as
    /// [`when_full`](JobBuilder::when_full) says): past it, the job could
    /// only expire, so the spawn returns
    /// [`SpawnErrorKind::Full`](crate::SpawnErrorKind::Full) with the job
    /// instead of queueing it.
    ///
    /// Given more than once, or together with
    /// [`max_wait`](JobBuilder::max_wait), the earliest deadline applies.
    #[doc(alias = "timeout")]
    #[doc(alias = "expire")]
    pub fn deadline(mut self, at: Instant) -> JobBuilder<'a> {
        self.deadline = Some(self.deadline.map_or(at, |earlier| earlier.min(at)));
        self
    }

    /// The longest the job may wait before it *starts*, measured from the
    /// call to `spawn`/`submit` (a wait for room on a full level included):
    /// the same as a [`deadline`](JobBuilder::deadline) of that instant plus
    /// `wait`, so it bounds the start only, not the run. A zero `wait` is a deadline already past:
    /// the job expires at once and never runs. A `wait` too large to add to
    /// `Instant::now()` sets no deadline.
    #[doc(alias = "timeout")]
    pub fn max_wait(mut self, wait: Duration) -> JobBuilder<'a> {
        self.max_wait = Some(self.max_wait.map_or(wait, |shorter| shorter.min(wait)));
        self
    }

    /// What the spawn does if the job's level is at its
    /// [capacity](crate::Builder::capacity): wait for room (the default),
    /// refuse at once, or wait at most a given time; see [`WhenFull`]. A
    /// spawn from one of the pool's own jobs or worker threads never waits.
    pub fn when_full(mut self, when_full: WhenFull) -> JobBuilder<'a> {
        self.when_full = when_full;
        self
    }

    /// Adds the job to `group`, so that [`JobGroup::cancel`] cancels it
    /// with the rest of the group (or at once, if the group is already
    /// cancelled). Given more than once, the last group applies.
    pub fn group(mut self, group: &JobGroup) -> JobBuilder<'a> {
        self.group = Some(group.clone());
        self
    }

    /// Names the job: the name is given to the job hooks
    /// ([`JobInfo::name`](crate::JobInfo::name)) and to the `log` event of
    /// its panic, so that a slow or failing job can be told apart. A name
    /// is shared, not copied, per job: `Arc<str>`, or anything that turns
    /// into one (`&str`, `String`). Default: none.
    pub fn name(mut self, name: impl Into<plain::Arc<str>>) -> JobBuilder<'a> {
        self.name = Some(name.into());
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
        let name = self.name.clone();
        self.queue(
            job,
            |job, slot| {
                let task = Task::spawned(wrap(job), slot.meta(name));
                (Job::task(plain::Arc::clone(&task)), CancelHandle::new(task))
            },
            CancelHandle::task,
        )
    }

    fn submit_wrapped<F, G, T>(self, job: F, wrap: impl FnOnce(F) -> G) -> Result<JobHandle<T>, SpawnError<F>>
    where
        G: FnOnce(&JobContext) -> T + Send + 'static,
        T: Send + 'static,
    {
        let name = self.name.clone();
        let registry = self.registry;
        self.queue(job, |job, slot| JobHandle::with_context(wrap(job), slot.meta(name), registry), JobHandle::task)
    }

    /// Queues the job that `make` wraps; a grouped job joins its group
    /// once queued, found through its handle with `task`.
    fn queue<F, H>(
        self,
        job: F,
        make: impl FnOnce(F, Slot<'_>) -> (Job, H),
        task: fn(&H) -> &plain::Arc<dyn TaskCell>,
    ) -> Result<H, SpawnError<F>> {
        let deadline = self.effective_deadline();
        let when_full = bounded_by(self.when_full, deadline);
        let group = self.group.as_ref();
        // Into the group before the job is queued: a group cancelled
        // already cancels it then, before any worker can take it.
        Registry::spawn(self.registry, self.priority, job, when_full, deadline, |job, slot| {
            let (entry, handle) = make(job, slot);
            if let Some(group) = group {
                group.add(task(&handle));
            }
            (entry, handle)
        })
    }

    fn effective_deadline(&self) -> Option<Instant> {
        let from_wait = self.max_wait.and_then(|wait| Instant::now().checked_add(wait));
        match (self.deadline, from_wait) {
            (Some(at), Some(other)) => Some(at.min(other)),
            (at, other) => at.or(other),
        }
    }
}

/// A job with a start deadline waits for room no longer than until that
/// deadline: past it the job could only expire, so the spawn gives up
/// then, with `Full`, and hands the job back.
fn bounded_by(when_full: WhenFull, deadline: Option<Instant>) -> WhenFull {
    let Some(at) = deadline else { return when_full };
    let left = at.saturating_duration_since(Instant::now());
    match when_full {
        WhenFull::Wait => WhenFull::WaitAtMost(left),
        WhenFull::WaitAtMost(wait) => WhenFull::WaitAtMost(wait.min(left)),
        WhenFull::Refuse => WhenFull::Refuse,
    }
}

impl fmt::Debug for JobBuilder<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JobBuilder")
            .field("priority", &self.priority)
            .field("deadline", &self.deadline)
            .field("max_wait", &self.max_wait)
            .field("name", &self.name)
            .field("when_full", &self.when_full)
            .field("group", &self.group)
            .finish_non_exhaustive()
    }
}
