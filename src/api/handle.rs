//! [`JobHandle`]: the submitter's end of a job's result, and
//! [`CancelHandle`], a shareable way to cancel a job.

use std::cell::RefCell;
use std::fmt;
use std::future::{Future, IntoFuture};
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};

use std::error::Error;

use crate::error::{JobError, SpawnErrorKind};
use crate::job::state::CancelOutcome;
use crate::job::task::{self, JobResult, Meta, Task, TaskCell};
use crate::job::{Job, JobContext, UNTAKEN};
use crate::queue::Priority;
use crate::runtime::help;
use crate::runtime::registry::Registry;
use crate::runtime::worker::Local;
use crate::sync::plain::thread::{self, Thread};
use crate::sync::plain::{Arc, Mutex, PoisonError, lock};
use crate::sync::{spin_until, wait_until};

/// The result of a job given to [`Pool::submit`](crate::Pool::submit) or
/// [`JobBuilder::submit`](crate::JobBuilder::submit): collect it by
/// blocking ([`JobHandle::join`], [`JobHandle::join_timeout`]) or by
/// awaiting the handle, which is a [`Future`] that works under any async
/// runtime (it needs none).
///
/// Dropping a handle neither cancels nor loses the job: it still runs. Its
/// result is dropped on the worker thread, or by the handle's drop if the
/// job ended first; a panic in that destructor is caught either way, never
/// reaches the thread dropping the handle, and is counted in
/// [`Metrics::drop_panics`](crate::Metrics::drop_panics) (the job itself
/// returned). To stop a job, call [`JobHandle::cancel`].
///
/// Joining from inside a job of the same pool does not block the worker:
/// if the job has not started, the waiting worker runs it inline (whatever
/// its level); otherwise it runs other jobs at least as urgent as its own
/// until the job ends (see the [crate docs](crate#jobs-that-wait-for-jobs)).
/// So a job may wait for a job it submitted, even in a one-worker pool.
/// Awaiting the handle inside a job (under some executor's `block_on`)
/// runs the job inline if it has not started, but does not help otherwise.
///
/// ```
/// use std::time::Duration;
/// use priopool::{JoinTimeoutError, Pool, Priority};
///
/// let pool = Pool::builder().workers(1).build()?;
/// let handle = pool.submit(Priority::HIGH, || 6 * 7)?;
/// let answer = match handle.join_timeout(Duration::from_secs(5)) {
///     Ok(answer) => answer,
///     Err(JoinTimeoutError::TimedOut(handle)) => handle.join()?, // still usable
///     Err(JoinTimeoutError::Job(error)) => return Err(error.into()),
/// };
/// assert_eq!(answer, 42);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[must_use = "dropping a JobHandle discards the job's result (the job still runs)"]
pub struct JobHandle<T> {
    /// Behind a lock only so that the handle (and a [`JoinTimeoutError`]
    /// holding it) is `Sync` for any `T: Send`: the receiver is not. Every
    /// use but [`JobHandle::is_finished`] has the handle by value or `&mut`
    /// and reaches it without locking.
    result: Mutex<Receiving<T>>,
    /// The job's cell; its tally counts a panic from dropping an unclaimed
    /// result.
    task: Arc<dyn TaskCell>,
    /// The pool: for [`JobHandle::promote`], and a worker of that pool
    /// waiting for the job helps (`runtime/help.rs`); as a
    /// [`Spawner`](crate::Spawner), it does not keep the pool running.
    registry: crate::sync::Arc<Registry>,
}

/// The oneshot receiver, in whichever form it was last used.
enum Receiving<T> {
    /// Not polled yet: blocking receives use the channel's own parking.
    Blocking(oneshot::Receiver<JobResult<T>>),
    /// Polled as a future at least once (the channel's receiver cannot go
    /// back); blocking receives poll it with a waker that unparks the thread.
    Async(oneshot::AsyncReceiver<JobResult<T>>),
    /// The future returned `Ready`: the result was handed out.
    Taken,
}

/// A cloneable, `Send + Sync` handle that can cancel one job from any
/// thread, while another thread waits on its [`JobHandle`] (or when there
/// is no `JobHandle`: [`JobBuilder::spawn`](crate::JobBuilder::spawn)
/// returns one of these).
#[derive(Clone)]
pub struct CancelHandle {
    task: Arc<dyn TaskCell>,
}

impl<T: Send + 'static> JobHandle<T> {
    /// Wraps `f`, which takes the job's context, into a job of `registry`'s
    /// pool described by `meta`; returns its queue entry and its handle.
    pub(crate) fn with_context(
        f: impl FnOnce(&JobContext) -> T + Send + 'static,
        meta: Meta,
        registry: &crate::sync::Arc<Registry>,
    ) -> (Job, JobHandle<T>) {
        let (task, receiver) = Task::submitted(f, meta);
        let handle = JobHandle {
            result: Mutex::new(Receiving::Blocking(receiver)),
            task: Arc::clone(&task),
            registry: crate::sync::Arc::clone(registry),
        };
        (Job::task(task), handle)
    }
}

impl<T> JobHandle<T> {
    /// The job's cell.
    pub(crate) fn task(&self) -> &Arc<dyn TaskCell> {
        &self.task
    }

    /// The receiver, reached through `&mut` without locking.
    fn receiving(&mut self) -> &mut Receiving<T> {
        self.result.get_mut().unwrap_or_else(PoisonError::into_inner)
    }

    /// Waits until the job has ended and returns its value. From inside a
    /// job of the same pool the worker helps meanwhile instead of blocking
    /// (see [the type's docs](JobHandle)); elsewhere the thread tries for a few
    /// microseconds (spinning, then yielding), then blocks.
    ///
    /// # Errors
    ///
    /// [`JobError::Panicked`] with the panic payload if the job panicked;
    /// [`JobError::Cancelled`] if it was cancelled before it started;
    /// [`JobError::Expired`] if its deadline passed before it started.
    ///
    /// # Panics
    ///
    /// If the handle was awaited to completion before (its future returned
    /// `Ready`), since the result was already handed out.
    pub fn join(mut self) -> Result<T, JobError> {
        if let Some(local) = self.helper() {
            return self.wait_helping(&local, None).unwrap_or_else(|| unreachable!("no deadline"));
        }
        match std::mem::replace(self.receiving(), Receiving::Taken) {
            Receiving::Blocking(receiver) => {
                spin_recv(&receiver, None).unwrap_or_else(|| receiver.recv().unwrap_or(Err(JobError::Cancelled)))
            }
            Receiving::Async(mut receiver) => match block_on(&mut receiver, None) {
                Some(result) => result,
                None => unreachable!("a wait without a deadline cannot time out"),
            },
            Receiving::Taken => panic!("JobHandle::join after the handle's future returned Ready"),
        }
    }

    /// Waits at most `timeout` for the job to end and returns its value. A
    /// zero `timeout` checks once and returns at once; a `timeout` too large
    /// to add to `Instant::now()` waits without bound. From inside a job of
    /// the same pool the worker helps while it waits, as in
    /// [`JobHandle::join`] (a job it runs meanwhile may end after the
    /// timeout: jobs are not preempted).
    ///
    /// # Errors
    ///
    /// [`JoinTimeoutError::TimedOut`] if the job had not ended by then: it
    /// holds this handle, usable as before (join again, cancel, drop).
    /// [`JoinTimeoutError::Job`] with the [`JobError`] if the job ended
    /// without a value, as in [`JobHandle::join`].
    ///
    /// # Panics
    ///
    /// As [`JobHandle::join`].
    pub fn join_timeout(mut self, timeout: Duration) -> Result<T, JoinTimeoutError<T>> {
        if let Some(local) = self.helper()
            && !timeout.is_zero()
        {
            let deadline = Instant::now().checked_add(timeout);
            return match self.wait_helping(&local, deadline) {
                Some(result) => result.map_err(JoinTimeoutError::Job),
                None => Err(JoinTimeoutError::TimedOut(self)),
            };
        }
        let received = match self.receiving() {
            Receiving::Blocking(receiver) if timeout.is_zero() => match receiver.try_recv() {
                Ok(result) => Some(result),
                Err(oneshot::TryRecvError::Empty) => None,
                Err(oneshot::TryRecvError::Disconnected) => Some(Err(JobError::Cancelled)),
            },
            Receiving::Blocking(receiver) => {
                let start = Instant::now();
                spin_recv(receiver, start.checked_add(timeout)).or_else(|| {
                    match receiver.recv_timeout(timeout.saturating_sub(start.elapsed())) {
                        Ok(result) => Some(result),
                        Err(oneshot::RecvTimeoutError::Timeout) => None,
                        Err(oneshot::RecvTimeoutError::Disconnected) => Some(Err(JobError::Cancelled)),
                    }
                })
            }
            // No representable deadline (`None`) waits without bound.
            Receiving::Async(receiver) => block_on(receiver, Instant::now().checked_add(timeout)),
            Receiving::Taken => panic!("JobHandle::join_timeout after the handle's future returned Ready"),
        };
        match received {
            Some(result) => result.map_err(JoinTimeoutError::Job),
            None => Err(JoinTimeoutError::TimedOut(self)),
        }
    }

    /// The worker running on this thread, if it belongs to the job's pool.
    fn helper(&self) -> Option<Rc<Local>> {
        help::helper(self.registry.id)
    }

    /// Waits on worker `local` for the job to end, helping
    /// (`runtime/help.rs`), until `deadline` if there is one; `None` if it
    /// passed first. The receiver turns into its future form, polled with a
    /// waker that unparks the worker.
    fn wait_helping(&mut self, local: &Local, deadline: Option<Instant>) -> Option<JobResult<T>> {
        *self.receiving() = match std::mem::replace(self.receiving(), Receiving::Taken) {
            Receiving::Blocking(receiver) => Receiving::Async(receiver.into_future()),
            Receiving::Taken => panic!("JobHandle joined after the handle's future returned Ready"),
            other => other,
        };
        let Receiving::Async(receiver) = self.result.get_mut().unwrap_or_else(PoisonError::into_inner) else {
            unreachable!("just made async")
        };
        let waker = Waker::from(Arc::new(WorkerWaker(local.parker.unparker().clone())));
        let receiver = RefCell::new(receiver);
        let received = RefCell::new(None);
        let done = || {
            if received.borrow().is_some() {
                return true;
            }
            let mut cx = Context::from_waker(&waker);
            if let Poll::Ready(result) = Pin::new(&mut **receiver.borrow_mut()).poll(&mut cx) {
                *received.borrow_mut() = Some(result.unwrap_or(Err(JobError::Cancelled)));
                return true;
            }
            deadline.is_some_and(|deadline| Instant::now() >= deadline)
        };
        help::wait_until(local, deadline, done, || help::claim_task(local, &self.task));
        let received = received.into_inner();
        if received.is_some() {
            *self.receiving() = Receiving::Taken;
        }
        received
    }

    /// Whether the job has ended (returned, panicked, was cancelled or
    /// expired), so that [`JobHandle::join`] will not block. Never blocks.
    pub fn is_finished(&self) -> bool {
        match &*lock(&self.result) {
            Receiving::Blocking(receiver) => receiver.has_message() || receiver.is_closed(),
            Receiving::Async(receiver) => receiver.has_message() || receiver.is_closed(),
            Receiving::Taken => true,
        }
    }

    /// Cancels the job: if it has not started, it never will (its closure
    /// is dropped before this returns and the handle yields
    /// [`JobError::Cancelled`]); if it is running, its [`JobContext`]
    /// reports the request. See [`CancelOutcome`]. The handle stays usable.
    ///
    /// # Panics
    ///
    /// Resumes the panic of the closure's destructor if dropping it panicked
    /// (the job is cancelled and the handle completed first).
    pub fn cancel(&self) -> CancelOutcome {
        task::cancel(&*self.task)
    }

    /// Moves the job, if it has not started, to the level `to` names,
    /// typically a more urgent one (priority inheritance by hand: the
    /// caller's request became urgent, or a job is about to wait for this
    /// one). The job goes to the back of that level's queue, as a job
    /// spawned there now; its handles, deadline and context stay as they
    /// were. The move is counted in the old level's
    /// [`LevelMetrics::promoted`](crate::LevelMetrics::promoted) before
    /// `promote` returns, and the job at its new level from then on; its
    /// old queue entry is left dead, and discarded when a worker reaches
    /// it. On a bounded level ([`Builder::capacity`](crate::Builder::capacity))
    /// the moved job never waits for room: it is admitted over the
    /// capacity, as a spawn from one of the pool's jobs is. (See
    /// `src/job/state.rs`, "Promotion", for why it never runs twice.)
    ///
    /// Returns [`PromoteOutcome::Moved`], or [`PromoteOutcome::TooLate`] if
    /// the job had already started or ended (nothing changed). Promoting
    /// again moves it again.
    ///
    /// # Errors
    ///
    /// [`SpawnErrorKind::UnknownLevel`](crate::SpawnErrorKind::UnknownLevel)
    /// if `to` names no level of the pool, and
    /// [`SpawnErrorKind::Shutdown`](crate::SpawnErrorKind::Shutdown) if the
    /// pool has begun shutting down and the caller is not one of its
    /// running jobs; the job stays where it was (a shutdown still runs it).
    pub fn promote(&self, to: impl Into<Priority>) -> Result<PromoteOutcome, SpawnErrorKind> {
        match Registry::promote(&self.registry, &self.task, to.into())? {
            true => Ok(PromoteOutcome::Moved),
            false => Ok(PromoteOutcome::TooLate),
        }
    }

    /// A [`CancelHandle`] for this job, to cancel it from another thread or
    /// task.
    pub fn cancel_handle(&self) -> CancelHandle {
        CancelHandle { task: Arc::clone(&self.task) }
    }

    /// What [`JobHandle::promote`] does, from another thread while this
    /// handle is joined: for the loom models (`loom_tests/promote.rs`).
    #[cfg(all(test, loom))]
    pub(crate) fn promoter(&self) -> impl Fn(Priority) -> Result<bool, SpawnErrorKind> + Send + use<T> {
        let (task, registry) = (Arc::clone(&self.task), crate::sync::Arc::clone(&self.registry));
        move |to| Registry::promote(&registry, &task, to)
    }
}

/// What [`JobHandle::promote`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum PromoteOutcome {
    /// The job had not started: it now waits at the new level.
    Moved,
    /// The job had already started or ended; nothing changed.
    TooLate,
}

/// Awaits the job's result. The output is what [`JobHandle::join`] returns.
/// The future needs no particular runtime: it is woken by the worker that
/// finishes the job (or by the canceller, or the deadline timer).
///
/// # Panics
///
/// If polled again after it returned `Ready`.
impl<T> Future for JobHandle<T> {
    type Output = Result<T, JobError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let receiving = this.result.get_mut().unwrap_or_else(PoisonError::into_inner);
        // The first poll turns the receiver into its future form for good.
        *receiving = match std::mem::replace(receiving, Receiving::Taken) {
            Receiving::Blocking(receiver) => Receiving::Async(receiver.into_future()),
            other => other,
        };
        let Receiving::Async(receiver) = receiving else {
            panic!("JobHandle polled after it returned Ready");
        };
        let mut polled = Pin::new(&mut *receiver).poll(cx);
        // Awaited inside a job of its pool: run the job inline if it has
        // not started, rather than block the worker on it.
        if polled.is_pending()
            && let Some(local) = help::helper(this.registry.id)
            && help::claim_task(&local, &this.task)
        {
            polled = Pin::new(receiver).poll(cx);
        }
        match polled {
            Poll::Ready(result) => {
                *receiving = Receiving::Taken;
                Poll::Ready(result.unwrap_or(Err(JobError::Cancelled)))
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

/// Drops a result the job left and nobody took under a guard: its
/// destructor's panic is counted (`job::JobTally`), not let loose in the
/// thread dropping the handle. The receiver is dropped whole, so that a
/// result that arrives meanwhile is covered too.
impl<T> Drop for JobHandle<T> {
    fn drop(&mut self) {
        let result = std::mem::replace(self.receiving(), Receiving::Taken);
        if !matches!(result, Receiving::Taken) {
            self.task.tally().drop_caught(UNTAKEN, move || drop(result));
        }
    }
}

impl<T> fmt::Debug for JobHandle<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JobHandle").field("finished", &self.is_finished()).finish()
    }
}

impl CancelHandle {
    pub(crate) fn new(task: Arc<dyn TaskCell>) -> CancelHandle {
        CancelHandle { task }
    }

    /// The job's cell.
    pub(crate) fn task(&self) -> &Arc<dyn TaskCell> {
        &self.task
    }

    /// Cancels the job, as [`JobHandle::cancel`].
    ///
    /// # Panics
    ///
    /// As [`JobHandle::cancel`].
    pub fn cancel(&self) -> CancelOutcome {
        task::cancel(&*self.task)
    }

    /// Whether the job has ended: returned, panicked, was cancelled or
    /// expired. Never blocks.
    pub fn is_finished(&self) -> bool {
        self.task.state().has_ended()
    }
}

impl fmt::Debug for CancelHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CancelHandle").field("finished", &self.is_finished()).finish()
    }
}

/// Wakes a waiting worker.
struct WorkerWaker(crate::sync::Unparker);

impl Wake for WorkerWaker {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.0.unpark();
    }
}

/// Wakes a blocked thread.
struct Unparker(Thread);

impl Wake for Unparker {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.0.unpark();
    }
}

/// Tries `receiver` for a few microseconds before the caller parks
/// (`sync::spin_until`), never past `deadline`. `None`: nothing came.
fn spin_recv<R>(receiver: &oneshot::Receiver<JobResult<R>>, deadline: Option<Instant>) -> Option<JobResult<R>> {
    let mut received = None;
    spin_until(deadline, || {
        received = match receiver.try_recv() {
            Ok(result) => Some(result),
            Err(oneshot::TryRecvError::Disconnected) => Some(Err(JobError::Cancelled)),
            Err(oneshot::TryRecvError::Empty) => None,
        };
        received.is_some()
    });
    received
}

/// Blocks the current thread on `receiver` until it is ready or `deadline`
/// passes (`None` if it did; a missing deadline waits without bound).
fn block_on<R>(receiver: &mut oneshot::AsyncReceiver<JobResult<R>>, deadline: Option<Instant>) -> Option<JobResult<R>> {
    let waker = Waker::from(Arc::new(Unparker(thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut received = None;
    wait_until(
        (),
        deadline,
        |()| match Pin::new(&mut *receiver).poll(&mut cx) {
            Poll::Ready(result) => {
                received = Some(result.unwrap_or(Err(JobError::Cancelled)));
                true
            }
            Poll::Pending => false,
        },
        |(), left| match left {
            None => thread::park(),
            Some(left) => thread::park_timeout(left),
        },
    );
    received
}

/// What [`JobHandle::join_timeout`] returns when it has no value to give.
///
/// A timeout hands the handle back, still usable: join it again, wait
/// longer, [cancel](JobHandle::cancel) the job, or drop the handle (which
/// does not cancel the job).
pub enum JoinTimeoutError<T> {
    /// The job did not end within the timeout; here is its handle.
    TimedOut(JobHandle<T>),
    /// The job ended without a value (it panicked, was cancelled or
    /// expired).
    Job(JobError),
}

impl<T> JoinTimeoutError<T> {
    /// Whether the wait timed out (the job had not ended).
    pub fn is_timeout(&self) -> bool {
        matches!(self, JoinTimeoutError::TimedOut(_))
    }

    /// The handle handed back by a timeout; `None` if the job ended.
    pub fn into_handle(self) -> Option<JobHandle<T>> {
        match self {
            JoinTimeoutError::TimedOut(handle) => Some(handle),
            JoinTimeoutError::Job(_) => None,
        }
    }
}

impl<T> fmt::Debug for JoinTimeoutError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JoinTimeoutError::TimedOut(handle) => f.debug_tuple("TimedOut").field(handle).finish(),
            JoinTimeoutError::Job(error) => f.debug_tuple("Job").field(error).finish(),
        }
    }
}

impl<T> fmt::Display for JoinTimeoutError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JoinTimeoutError::TimedOut(_) => f.write_str("the job did not end within the join timeout"),
            JoinTimeoutError::Job(error) => fmt::Display::fmt(error, f),
        }
    }
}

impl<T> Error for JoinTimeoutError<T> {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        match self {
            JoinTimeoutError::TimedOut(_) => None,
            JoinTimeoutError::Job(error) => Some(error),
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn spin_recv_takes_a_sent_result_reads_a_dropped_sender_as_cancelled_and_stops_at_its_deadline() {
        let (sender, receiver) = oneshot::channel::<JobResult<u32>>();
        assert!(spin_recv(&receiver, Some(Instant::now())).is_none(), "a past deadline: one try");
        assert!(spin_recv(&receiver, None).is_none(), "nothing sent: it gives up, to park");
        sender.send(Ok(7)).expect("the receiver is alive");
        assert!(matches!(spin_recv(&receiver, None), Some(Ok(7))));
        let (sender, receiver) = oneshot::channel::<JobResult<u32>>();
        drop(sender);
        assert!(matches!(spin_recv(&receiver, None), Some(Err(JobError::Cancelled))));
    }
}
