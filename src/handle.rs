//! [`JobHandle`]: the submitter's end of a job's result.

use std::fmt;
use std::panic::{self, AssertUnwindSafe};

use crate::error::JobError;
use crate::job::Job;

type Slot<T> = oneshot::Receiver<Result<T, JobError>>;

/// The result of a job given to [`Pool::submit`](crate::Pool::submit), to be
/// collected with [`JobHandle::join`].
///
/// Dropping a handle neither cancels nor loses the job: it still runs, and
/// its value is dropped on the worker thread.
#[must_use = "dropping a JobHandle discards the job's result (the job still runs)"]
pub struct JobHandle<T> {
    result: Slot<T>,
}

impl<T: Send + 'static> JobHandle<T> {
    /// Wraps `f` into a job that catches its panic and sends the outcome to
    /// the returned handle.
    pub(crate) fn wrap(f: impl FnOnce() -> T + Send + 'static) -> (Job, JobHandle<T>) {
        let (tx, result) = oneshot::channel();
        let job = Job::self_reporting(move || {
            let outcome = panic::catch_unwind(AssertUnwindSafe(f)).map_err(JobError::Panicked);
            let panicked = outcome.is_err();
            // A dropped handle only means nobody wants the value.
            let _ = tx.send(outcome);
            panicked
        });
        (job, JobHandle { result })
    }
}

impl<T> JobHandle<T> {
    /// Blocks until the job has run and returns its value.
    ///
    /// # Errors
    ///
    /// [`JobError::Panicked`] with the panic payload if the job panicked;
    /// [`JobError::Cancelled`] if it was dropped without running.
    pub fn join(self) -> Result<T, JobError> {
        self.result.recv().unwrap_or(Err(JobError::Cancelled))
    }

    /// Whether the job has ended, so that [`JobHandle::join`] will not
    /// block. Never blocks.
    pub fn is_finished(&self) -> bool {
        self.result.has_message() || self.result.is_closed()
    }
}

impl<T> fmt::Debug for JobHandle<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JobHandle").field("finished", &self.is_finished()).finish()
    }
}
