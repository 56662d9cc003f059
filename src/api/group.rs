//! [`JobGroup`]: a cancellation group that many jobs share, so that a batch
//! is cancelled with one call rather than one handle at a time.

use std::fmt;
use std::panic::{self, AssertUnwindSafe};

use crate::job::task::{self, TaskCell};
use crate::job::{NEVER_RAN, state::CancelOutcome};
use crate::sync::plain::{Arc, Mutex, Weak, lock};

/// A group of jobs cancelled together, like a shared cancellation token
/// (tokio's `CancellationToken`, Go's `context.WithCancel`): add a job with
/// [`JobBuilder::group`](crate::JobBuilder::group), then
/// [`JobGroup::cancel`] cancels every job of the group that has not
/// started (its closure is dropped unrun and its handle yields
/// [`JobError::Cancelled`](crate::JobError::Cancelled)) and asks every
/// running one to stop through its [`JobContext`](crate::JobContext).
///
/// Cancelling is for good: a job added to a cancelled group is cancelled as
/// soon as it is queued. A group may span pools. Clones share the group;
/// it is `Send + Sync`. The group holds its jobs weakly: a job that ended
/// costs it a few bytes until the next addition prunes it.
///
/// ```
/// use priopool::{JobGroup, Pool, Priority};
///
/// let pool = Pool::builder().workers(1).build()?;
/// let reindex = JobGroup::new();
/// let parts: Vec<_> = (0..100)
///     .map(|i| pool.job(Priority::LOW).group(&reindex).name(format!("reindex part {i}")).submit(move || i))
///     .collect::<Result<_, _>>()?;
/// let prevented = reindex.cancel(); // the user went away
/// let ran = parts.into_iter().filter_map(|part| part.join().ok()).count();
/// assert_eq!(prevented + ran, 100);
/// # Ok::<(), Box<dyn std::error::Error + Send + Sync>>(())
/// ```
#[derive(Clone, Default)]
pub struct JobGroup {
    shared: Arc<Mutex<Members>>,
}

#[derive(Default)]
struct Members {
    cancelled: bool,
    jobs: Vec<Weak<dyn TaskCell>>,
    /// Prune ended jobs when `jobs` reaches this length.
    prune_at: usize,
}

impl JobGroup {
    /// An empty group, not cancelled.
    pub fn new() -> JobGroup {
        JobGroup::default()
    }

    /// Cancels the group: every job of it that has not started never will
    /// (its closure is dropped before this returns), and every running one
    /// is asked to stop through its [`JobContext`](crate::JobContext).
    /// Jobs added later are cancelled as they are queued. Returns how many
    /// of the group's jobs were found cancelled and will never run: those
    /// this call cancelled, and those cancelled before it by anyone (their
    /// handles, [`Pool::cancel_queued`](crate::Pool::cancel_queued), a
    /// shutdown that cancels the backlog), as
    /// [`CancelOutcome::Prevented`](crate::CancelOutcome::Prevented) says;
    /// not those that expired. So the counts of two cancels may overlap.
    ///
    /// A panic in a cancelled closure's destructor is caught and counted in
    /// [`Metrics::drop_panics`](crate::Metrics::drop_panics), unlike
    /// [`JobHandle::cancel`](crate::JobHandle::cancel), which resumes it:
    /// one job's destructor must not stop the rest of the group from being
    /// cancelled.
    pub fn cancel(&self) -> usize {
        let jobs = {
            let mut members = lock(&self.shared);
            members.cancelled = true;
            std::mem::take(&mut members.jobs)
        };
        let jobs: Vec<_> = jobs.iter().filter_map(Weak::upgrade).collect();
        // The queued jobs first, then the signals: a running job told to
        // stop frees its worker, which must not find the rest still queued.
        let (queued, others): (Vec<_>, Vec<_>) = jobs.iter().partition(|job| job.state().is_queued());
        queued.into_iter().chain(others).filter(|job| cancel_quietly(&***job)).count()
    }

    /// Whether [`JobGroup::cancel`] has been called.
    pub fn is_cancelled(&self) -> bool {
        lock(&self.shared).cancelled
    }

    /// Adds a job just queued; cancels it at once if the group is cancelled.
    pub(crate) fn add(&self, job: &Arc<dyn TaskCell>) {
        {
            let mut members = lock(&self.shared);
            if !members.cancelled {
                if members.jobs.len() >= members.prune_at {
                    members.jobs.retain(|job| job.upgrade().is_some_and(|job| !job.state().has_ended()));
                    members.prune_at = (members.jobs.len() * 2).max(64);
                }
                members.jobs.push(Arc::downgrade(job));
                return;
            }
        }
        cancel_quietly(&**job);
    }
}

/// Cancels `job` as its handle would, but counts a panic of its closure's
/// destructor (`job::JobTally`) instead of resuming it; says whether this
/// call kept the job from running.
fn cancel_quietly(job: &dyn TaskCell) -> bool {
    match panic::catch_unwind(AssertUnwindSafe(|| task::cancel(job))) {
        Ok(outcome) => outcome == CancelOutcome::Prevented,
        Err(payload) => {
            // Only a prevented job's destructor runs in `cancel`.
            job.tally().caught(NEVER_RAN, payload);
            true
        }
    }
}

impl fmt::Debug for JobGroup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JobGroup").field("cancelled", &self.is_cancelled()).finish_non_exhaustive()
    }
}
