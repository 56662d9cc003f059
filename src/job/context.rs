//! [`JobContext`]: what a running job can learn about its own cancellation.

use std::fmt;
use std::time::Duration;

use super::state::TaskState;

/// The running job's view of its own cancellation, passed to a job given
/// through [`JobBuilder::submit_with_context`](crate::JobBuilder::submit_with_context)
/// or [`JobBuilder::spawn_with_context`](crate::JobBuilder::spawn_with_context).
///
/// Rust cannot stop a thread from outside, so cancelling a job that has
/// already started is cooperative: [`JobHandle::cancel`](crate::JobHandle::cancel)
/// sets a flag that the job reads with [`JobContext::is_cancelled`], and
/// wakes the job if it waits in [`JobContext::wait_for_cancel`]. A job that
/// never looks keeps running to its end. `JobContext` is `Sync`, so a job
/// may lend it to threads it scopes.
///
/// # Long loops
///
/// Check the flag every few iterations (it is one atomic load) and return
/// early with whatever the job's type says "stopped" (here `None`):
///
/// ```
/// use priopool::{JobContext, Pool, Priority};
///
/// let pool = Pool::builder().workers(1).build()?;
/// let sum = pool.job(Priority::LOW).submit_with_context(|ctx: &JobContext| {
///     let mut sum = 0u64;
///     for i in 0..10_000_000u64 {
///         if i % 4096 == 0 && ctx.is_cancelled() {
///             return None;
///         }
///         sum = sum.wrapping_add(i);
///     }
///     Some(sum)
/// })?;
/// sum.cancel(); // may arrive before the job starts (it then never runs), or while it loops
/// # let _ = sum.join();
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// # Blocking calls
///
/// A call that blocks cannot see the flag while it blocks. Cut the wait
/// into bounded slices and check between them: give the call a timeout
/// (`recv_timeout`, `TcpStream::set_read_timeout`, a lock's `try_lock_for`,
/// ...) and loop while the job is not cancelled. Where the job only has to
/// wait, [`JobContext::wait_for_cancel`] sleeps and wakes early on a
/// cancellation:
///
/// ```
/// use std::sync::mpsc;
/// use std::time::Duration;
/// use priopool::{JobContext, Pool, Priority};
///
/// let pool = Pool::builder().workers(1).build()?;
/// let (_reply_tx, reply) = mpsc::channel::<String>(); // a reply that never comes
/// let call = pool.job(Priority::HIGH).submit_with_context(move |ctx: &JobContext| {
///     loop {
///         match reply.recv_timeout(Duration::from_millis(20)) {
///             Ok(answer) => return Some(answer),
///             Err(mpsc::RecvTimeoutError::Timeout) if !ctx.is_cancelled() => continue,
///             Err(_) => return None, // cancelled, or the other side is gone
///         }
///     }
/// })?;
/// call.cancel();
/// assert!(matches!(call.join(), Ok(None) | Err(_)));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct JobContext {
    state: TaskState,
}

impl JobContext {
    pub(crate) fn new(state: TaskState) -> JobContext {
        JobContext { state }
    }

    pub(crate) fn state(&self) -> &TaskState {
        &self.state
    }

    /// Whether someone asked this job to stop (through its
    /// [`JobHandle`](crate::JobHandle) or a
    /// [`CancelHandle`](crate::CancelHandle)). Once `true`, stays `true`.
    /// Never blocks: one atomic load.
    pub fn is_cancelled(&self) -> bool {
        self.state.is_cancel_requested()
    }

    /// Sleeps for at most `timeout`, waking early when the job is
    /// cancelled; returns [`JobContext::is_cancelled`]. Use it in place of
    /// `thread::sleep` in a job that polls or backs off. A `timeout` too
    /// large to add to `Instant::now()` waits for the cancellation alone.
    pub fn wait_for_cancel(&self, timeout: Duration) -> bool {
        self.state.wait_for_cancel(timeout)
    }
}

impl fmt::Debug for JobContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JobContext").field("cancelled", &self.is_cancelled()).finish_non_exhaustive()
    }
}
