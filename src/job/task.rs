//! The cell a cancellable job lives in, shared by its queue entry, its
//! handle and the deadline timer, and the state machine that decides which
//! of them gets the closure.
//!
//! A job given through [`Pool::submit`](crate::Pool::submit) or a
//! [`JobBuilder`](crate::JobBuilder) is one `Arc<Task>`: the queue holds a
//! thin entry pointing at it ([`Job`](crate::job::Job) `::task`), the
//! [`JobHandle`](crate::JobHandle) and any
//! [`CancelHandle`](crate::CancelHandle) hold another pointer, and the
//! deadline timer a weak one. The closure sits in the cell behind a mutex,
//! and whoever moves the job out of `QUEUED` takes it out: a worker to run
//! it, a canceller or the timer to drop it at once. The queue entry stays
//! where it is; the worker that later pops it finds the job already ended,
//! discards the entry and counts the job finished (the drain accounting of
//! `shutdown.rs` is unchanged: a cancelled or expired job is outstanding
//! until its entry is popped). The metrics count the job as cancelled or
//! expired at that pop too, when it leaves the backlog (see `metrics.rs`).
//!
//! A worker that pops an entry first *claims* the job ([`TaskCell::claim`]:
//! the deadline check and `QUEUED → RUNNING`) and only then counts it as
//! started and runs it ([`TaskCell::run`]), so a job that never began is
//! never counted as started, and gets no job hooks.
//!
//! # States
//!
//! | state              | the job                               | closure in the cell | handle yields        |
//! |--------------------|---------------------------------------|---------------------|----------------------|
//! | `QUEUED`           | waits in a queue                      | yes                 | (pending)            |
//! | `RUNNING`          | runs on a worker                      | no (the worker has it) | (pending)         |
//! | `CANCEL_REQUESTED` | runs; its context reports cancelled   | no                  | (pending)            |
//! | `DONE`             | returned or panicked                  | no (consumed)       | its value or panic   |
//! | `CANCELLED`        | never ran, never will                 | no (dropped)        | `JobError::Cancelled`|
//! | `EXPIRED`          | never ran: deadline passed first      | no (dropped)        | `JobError::Expired`  |
//!
//! # Transitions
//!
//! | from                          | to                 | made by                                                        |
//! |-------------------------------|--------------------|----------------------------------------------------------------|
//! | `QUEUED`                      | `RUNNING`          | a worker that popped the entry before the deadline             |
//! | `QUEUED`                      | `CANCELLED`        | `cancel()` on a handle; `shutdown_now` (its sweep, or a worker) |
//! | `QUEUED`                      | `EXPIRED`          | the timer at the deadline; a worker that pops it after it      |
//! | `RUNNING`                     | `CANCEL_REQUESTED` | `cancel()` on a handle                                         |
//! | `RUNNING`, `CANCEL_REQUESTED` | `DONE`             | the worker, when the closure returns or panics                 |
//!
//! Every transition out of `QUEUED` is a compare-exchange from `QUEUED`, so
//! among a worker, any number of cancellers and the timer exactly one wins;
//! only the winner locks the body and takes the closure out, so the lock is
//! never contended. The winner of `CANCELLED` or `EXPIRED` drops the closure
//! *before* completing the handle, so whoever sees the handle's error also
//! sees the closure (and everything it captured) dropped. `DONE` is stored
//! before the value is sent, so a `cancel()` after a successful
//! `join_timeout` answers [`CancelOutcome::TooLate`].
//!
//! Orderings: the compare-exchanges are `AcqRel` and the loads `Acquire`;
//! the closure and the result travel through the body mutex and the
//! oneshot channel, which synchronise on their own, so the state only has to
//! order itself.

use std::any::Any;
use std::panic::{self, AssertUnwindSafe};
use std::time::{Duration, Instant};

use crate::context::JobContext;
use crate::error::{JobError, PanicPayload};
use crate::job::Outcome;
use crate::sync::Ordering;
use crate::sync::plain::{Arc, AtomicU8, Condvar, Mutex, lock, wait, wait_timeout};

/// A panic payload.
pub(crate) type Payload = Box<dyn Any + Send + 'static>;

/// What a job's handle receives.
pub(crate) type JobResult<T> = Result<T, JobError>;

const QUEUED: u8 = 0;
const RUNNING: u8 = 1;
const CANCEL_REQUESTED: u8 = 2;
const DONE: u8 = 3;
const CANCELLED: u8 = 4;
const EXPIRED: u8 = 5;

/// What [`JobHandle::cancel`](crate::JobHandle::cancel) and
/// [`CancelHandle::cancel`](crate::CancelHandle::cancel) achieved.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum CancelOutcome {
    /// The job had not started and never will: its closure (and everything
    /// it captured) was dropped before `cancel` returned, and its handle
    /// yields [`JobError::Cancelled`]. Also the answer when an earlier
    /// cancellation (or [`Pool::shutdown_now`](crate::Pool::shutdown_now))
    /// already did this.
    Prevented,
    /// The job is running. Its [`JobContext`] now reports
    /// [`is_cancelled`](JobContext::is_cancelled) and wakes its
    /// [`wait_for_cancel`](JobContext::wait_for_cancel); the job ends when
    /// its own code returns, and its handle yields what it returned (a
    /// thread cannot be stopped from outside).
    Requested,
    /// The job had already ended: it returned, panicked or expired. Nothing
    /// changed.
    TooLate,
}

/// The non-generic half of a task: its state, deadline, and the condition
/// variable [`JobContext::wait_for_cancel`] sleeps on.
pub(crate) struct TaskState {
    state: AtomicU8,
    deadline: Option<Instant>,
    /// Guards nothing; pairs with `cancel_signal` so that a waiter cannot
    /// miss a cancellation made between its check and its wait.
    waiters: Mutex<()>,
    cancel_signal: Condvar,
}

impl TaskState {
    pub(crate) fn new(deadline: Option<Instant>) -> TaskState {
        TaskState { state: AtomicU8::new(QUEUED), deadline, waiters: Mutex::new(()), cancel_signal: Condvar::new() }
    }

    /// Whether the job still waits in a queue.
    pub(crate) fn is_queued(&self) -> bool {
        self.state.load(Ordering::Acquire) == QUEUED
    }

    /// Whether the job has ended: returned, panicked, cancelled or expired.
    pub(crate) fn has_ended(&self) -> bool {
        matches!(self.state.load(Ordering::Acquire), DONE | CANCELLED | EXPIRED)
    }

    /// How a job that ended without running ended: `None` unless it is
    /// `CANCELLED` or `EXPIRED`.
    fn unrun(&self) -> Option<Unrun> {
        match self.state.load(Ordering::Acquire) {
            CANCELLED => Some(Unrun::Cancelled),
            EXPIRED => Some(Unrun::Expired),
            _ => None,
        }
    }

    /// The fate of a job whose popped entry found it out of `QUEUED`: only
    /// the popper moves it to `RUNNING`, so it was cancelled or expired.
    pub(crate) fn unrun_fate(&self) -> Unrun {
        let fate = self.unrun();
        debug_assert!(fate.is_some(), "a popped entry found its job neither queued nor ended unrun");
        fate.unwrap_or(Unrun::Cancelled)
    }

    /// Whether a running job was asked to stop.
    pub(crate) fn is_cancel_requested(&self) -> bool {
        self.state.load(Ordering::Acquire) == CANCEL_REQUESTED
    }

    /// Moves the job from `from` to `to`; `false` if it was not in `from`.
    fn transition(&self, from: u8, to: u8) -> bool {
        self.state.compare_exchange(from, to, Ordering::AcqRel, Ordering::Acquire).is_ok()
    }

    /// Blocks for at most `timeout`, or until a cancellation is requested;
    /// returns whether one was. A `timeout` too large for `Instant` waits
    /// without bound.
    pub(crate) fn wait_for_cancel(&self, timeout: Duration) -> bool {
        let deadline = Instant::now().checked_add(timeout);
        let mut guard = lock(&self.waiters);
        while !self.is_cancel_requested() {
            guard = match deadline {
                None => wait(&self.cancel_signal, guard),
                Some(deadline) => match deadline.checked_duration_since(Instant::now()) {
                    Some(left) if !left.is_zero() => wait_timeout(&self.cancel_signal, guard, left),
                    _ => break,
                },
            };
        }
        drop(guard);
        self.is_cancel_requested()
    }

    /// Wakes every [`TaskState::wait_for_cancel`]. Taking the lock orders
    /// this after any waiter's check of the state: a waiter either saw the
    /// request, or is already waiting and gets the notification.
    fn wake_waiters(&self) {
        drop(lock(&self.waiters));
        self.cancel_signal.notify_all();
    }
}

/// How a job can end without running.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Unrun {
    /// By a handle's `cancel`, or by `shutdown_now` (its sweep, or a worker
    /// while aborting).
    Cancelled,
    /// Its deadline passed before a worker claimed it.
    Expired,
}

/// A popped job that will not run: how it ended, and the panic of its
/// closure's destructor if that panicked when the job was dropped now.
pub(crate) struct Discarded {
    pub(crate) fate: Unrun,
    pub(crate) panic: Option<Payload>,
}

impl Unrun {
    fn state(self) -> u8 {
        match self {
            Unrun::Cancelled => CANCELLED,
            Unrun::Expired => EXPIRED,
        }
    }

    fn error(self) -> JobError {
        match self {
            Unrun::Cancelled => JobError::Cancelled,
            Unrun::Expired => JobError::Expired,
        }
    }
}

/// What [`TaskCell::abandon`] did.
pub(crate) enum Abandoned {
    /// This call moved the job out of `QUEUED` and dropped its closure. The
    /// payload is the closure's destructor's panic, if it panicked.
    Dropped(Option<Payload>),
    /// The job had already left `QUEUED`; nothing was done.
    NotQueued,
}

/// The type-erased face of a [`Task`].
pub(crate) trait TaskCell: Send + Sync {
    /// The job's state (also reachable as its [`JobContext`]).
    fn state(&self) -> &TaskState;

    /// Called by the worker that popped the job's queue entry: moves the job
    /// to `RUNNING` if it is still queued and its deadline has not passed.
    /// Otherwise the job will not run: it expires now if the deadline has
    /// passed, or it had already ended (cancelled or expired).
    fn claim(&self) -> Result<(), Discarded>;

    /// Runs a job this worker [claimed](TaskCell::claim).
    fn run(&self) -> Outcome;

    /// Drops the job unrun if it is still queued, and completes its handle
    /// with the matching error.
    fn abandon(&self, how: Unrun) -> Abandoned;
}

/// A job's closure and where its result goes.
struct Body<G, T> {
    job: G,
    /// `None` for a spawned job: no one waits for its value, and its panic
    /// goes to the pool's panic handler.
    result: Option<oneshot::Sender<JobResult<T>>>,
}

/// The cell: the job's context (which holds its state) and its body.
pub(crate) struct Task<G, T> {
    context: JobContext,
    body: Mutex<Option<Body<G, T>>>,
}

impl<G, T> Task<G, T>
where
    G: FnOnce(&JobContext) -> T + Send + 'static,
    T: Send + 'static,
{
    /// A job whose value and panic go to the returned receiver.
    pub(crate) fn submitted(job: G, deadline: Option<Instant>) -> (Arc<dyn TaskCell>, oneshot::Receiver<JobResult<T>>) {
        let (sender, receiver) = oneshot::channel();
        (Task::with_body(Body { job, result: Some(sender) }, deadline), receiver)
    }

    /// A job with no handle: its value is dropped, its panic reported to
    /// the pool.
    pub(crate) fn spawned(job: G, deadline: Option<Instant>) -> Arc<dyn TaskCell> {
        Task::with_body(Body { job, result: None }, deadline)
    }

    fn with_body(body: Body<G, T>, deadline: Option<Instant>) -> Arc<dyn TaskCell> {
        Arc::new(Task { context: JobContext::new(TaskState::new(deadline)), body: Mutex::new(Some(body)) })
    }

    /// Takes the body out; only the winner of a transition out of `QUEUED`
    /// calls this, so it finds the body there.
    fn take(&self) -> Option<Body<G, T>> {
        lock(&self.body).take()
    }
}

impl<G, T> TaskCell for Task<G, T>
where
    G: FnOnce(&JobContext) -> T + Send + 'static,
    T: Send + 'static,
{
    fn state(&self) -> &TaskState {
        self.context.state()
    }

    fn claim(&self) -> Result<(), Discarded> {
        let state = self.state();
        if state.deadline.is_some_and(|deadline| Instant::now() >= deadline) {
            return Err(match self.abandon(Unrun::Expired) {
                Abandoned::Dropped(panic) => Discarded { fate: Unrun::Expired, panic },
                Abandoned::NotQueued => Discarded { fate: state.unrun_fate(), panic: None },
            });
        }
        if state.transition(QUEUED, RUNNING) {
            Ok(())
        } else {
            Err(Discarded { fate: state.unrun_fate(), panic: None })
        }
    }

    fn run(&self) -> Outcome {
        let state = self.state();
        let Some(Body { job, result }) = self.take() else {
            // Unreachable: only the winner of QUEUED -> RUNNING runs the job.
            debug_assert!(false, "a claimed job found no closure");
            return Outcome::Completed;
        };
        let outcome = panic::catch_unwind(AssertUnwindSafe(|| job(&self.context)));
        state.state.store(DONE, Ordering::Release);
        match (outcome, result) {
            (Ok(value), Some(sender)) => {
                // A dropped handle only means nobody wants the value.
                let _ = sender.send(Ok(value));
                Outcome::Completed
            }
            (Ok(_), None) => Outcome::Completed,
            (Err(payload), Some(sender)) => {
                let _ = sender.send(Err(JobError::Panicked(PanicPayload::new(payload))));
                Outcome::Panicked(None)
            }
            (Err(payload), None) => Outcome::Panicked(Some(payload)),
        }
    }

    fn abandon(&self, how: Unrun) -> Abandoned {
        if !self.state().transition(QUEUED, how.state()) {
            return Abandoned::NotQueued;
        }
        let Some(Body { job, result }) = self.take() else {
            debug_assert!(false, "the winner of a transition out of QUEUED found no closure");
            return Abandoned::Dropped(None);
        };
        // Drop the closure first, so that whoever receives the error also
        // sees everything it captured dropped.
        let panic = panic::catch_unwind(AssertUnwindSafe(move || drop(job))).err();
        if let Some(sender) = result {
            let _ = sender.send(Err(how.error()));
        }
        Abandoned::Dropped(panic)
    }
}

/// Cancels `task` on behalf of a handle: see [`CancelOutcome`].
///
/// # Panics
///
/// Resumes the panic of the closure's destructor, if dropping the closure
/// of a queued job panicked (after the job was cancelled and its handle
/// completed).
pub(crate) fn cancel(task: &dyn TaskCell) -> CancelOutcome {
    let state = task.state();
    loop {
        match state.state.load(Ordering::Acquire) {
            QUEUED => match task.abandon(Unrun::Cancelled) {
                Abandoned::Dropped(None) => return CancelOutcome::Prevented,
                Abandoned::Dropped(Some(payload)) => panic::resume_unwind(payload),
                // A worker, the timer or another canceller got there first.
                Abandoned::NotQueued => continue,
            },
            RUNNING => {
                if state.transition(RUNNING, CANCEL_REQUESTED) {
                    state.wake_waiters();
                    return CancelOutcome::Requested;
                }
            }
            CANCEL_REQUESTED => return CancelOutcome::Requested,
            CANCELLED => return CancelOutcome::Prevented,
            _ => return CancelOutcome::TooLate,
        }
    }
}
