//! The cell a cancellable job lives in ([`Task`]), shared by its queue
//! entry, its handle and the deadline timer; its states are in `state.rs`.
//!
//! A job given through [`Pool::submit`](crate::Pool::submit) or a
//! [`JobBuilder`](crate::JobBuilder) is one `Arc<Task>`: the queue holds a
//! thin entry pointing at it ([`Job::task`](super::Job::task)), the
//! [`JobHandle`](crate::JobHandle) and any
//! [`CancelHandle`](crate::CancelHandle) hold another pointer, and the
//! deadline timer a weak one. The closure sits in the cell behind a mutex,
//! and whoever moves the job out of `QUEUED` takes it out: a worker to run
//! it, a canceller or the timer to drop it at once. The queue entry stays
//! where it is; the worker that later pops it finds the job already ended
//! and discards the entry. Until then the entry is queued, for the drain
//! (`lifecycle.rs`) and for the metrics, which count the job as cancelled
//! or expired at that pop, when it leaves the backlog.
//!
//! A worker that pops an entry first *claims* the job ([`TaskCell::claim`]:
//! the deadline check and `QUEUED → RUNNING`) and only then counts it as
//! started and runs it ([`TaskCell::run`]), so a job that never began is
//! never counted as started, and gets no job hooks.

use std::any::Any;
use std::panic::{self, AssertUnwindSafe};
use std::time::Instant;

use super::context::JobContext;
use super::state::{
    CANCEL_REQUESTED, CANCELLED, CANCELLING, CancelOutcome, EXPIRING, QUEUED, RUNNING, Refused, TaskState, Unrun,
};
use super::{DropPanics, UNTAKEN};
use crate::error::{JobError, PanicPayload};
use crate::sync::plain::{Arc, Mutex, lock};

/// A panic payload.
pub(crate) type Payload = Box<dyn Any + Send + 'static>;

/// What a job's handle receives.
pub(crate) type JobResult<T> = Result<T, JobError>;

/// How a job that ran ended.
pub(crate) enum Outcome {
    /// It returned normally.
    Completed,
    /// It panicked. The payload is here if nobody else has it yet (a
    /// spawned job); `None` if it was already handed to a
    /// [`JobHandle`](crate::JobHandle).
    Panicked(Option<Payload>),
}

/// A popped job that will not run: how it ended, and the panic of its
/// closure's destructor if that panicked when the job was dropped now.
pub(crate) struct Discarded {
    pub(crate) fate: Fate,
    pub(crate) panic: Option<Payload>,
}

/// Why a popped entry is discarded, for the metrics of its level.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Fate {
    /// Its job ended unrun.
    Unrun(Unrun),
    /// Its job was promoted to another level; the entry is dead
    /// (`state.rs`, "Promotion") and the job lives on at that level.
    Promoted,
}

/// What [`TaskCell::abandon`] did.
pub(crate) enum Abandoned {
    /// This call moved the job out of `QUEUED` and dropped its closure. The
    /// payload is the closure's destructor's panic, if it panicked.
    Dropped(Option<Payload>),
    /// The job had already left `QUEUED`; nothing was done.
    NotQueued,
    /// The entry asking is dead: the job was promoted past it; nothing
    /// was done.
    Dead,
}

/// The type-erased face of a [`Task`].
pub(crate) trait TaskCell: Send + Sync {
    /// The job's state (also reachable as its [`JobContext`]).
    fn state(&self) -> &TaskState;

    /// Called by the worker that popped the job's queue entry, pushed with
    /// `epoch`: moves the job to `RUNNING` if it is still queued, its
    /// deadline has not passed and the entry is live. Otherwise the entry
    /// is discarded: the job expires now if the deadline has passed, or it
    /// had already ended (cancelled or expired), or the entry is dead (the
    /// job was promoted; `state.rs`).
    fn claim(&self, epoch: u64) -> Result<(), Discarded>;

    /// Runs a job this worker [claimed](TaskCell::claim); a result that
    /// nobody takes is dropped here, reporting a panic to `drops`.
    fn run(&self, drops: &DropPanics) -> Outcome;

    /// Drops the job unrun if it is still queued, and completes its handle
    /// with the matching error. With `Some(epoch)`, on behalf of a queue
    /// entry pushed with it: only if that entry is live.
    fn abandon(&self, how: Unrun, epoch: Option<u64>) -> Abandoned;

    /// Moves a queued job to a new epoch, killing its queue entry, for a
    /// push at another level (`state.rs`, "Promotion"); `None` if the job
    /// is no longer queued.
    fn promote(&self) -> Option<u64>;
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

    fn claim(&self, epoch: u64) -> Result<(), Discarded> {
        let state = self.state();
        let ended = || Discarded { fate: Fate::Unrun(state.unrun_fate()), panic: None };
        let dead = Discarded { fate: Fate::Promoted, panic: None };
        if state.is_past_deadline() {
            return Err(match self.abandon(Unrun::Expired, Some(epoch)) {
                Abandoned::Dropped(panic) => Discarded { fate: Fate::Unrun(Unrun::Expired), panic },
                Abandoned::NotQueued => ended(),
                Abandoned::Dead => dead,
            });
        }
        match state.transition_at(Some(epoch), QUEUED, RUNNING) {
            Ok(()) => Ok(()),
            Err(Refused::Dead) => Err(dead),
            Err(Refused::Elsewhere) => Err(ended()),
        }
    }

    fn run(&self, drops: &DropPanics) -> Outcome {
        let state = self.state();
        let Some(Body { job, result }) = self.take() else {
            // Unreachable: only the winner of QUEUED -> RUNNING runs the job.
            debug_assert!(false, "a claimed job found no closure");
            return Outcome::Completed;
        };
        let outcome = panic::catch_unwind(AssertUnwindSafe(|| job(&self.context)));
        state.set_done();
        // A dropped handle only means nobody wants the result: it comes
        // back from `send` and is dropped here, outside the job's run.
        let unwanted = |result: JobResult<T>| drops.drop_caught(UNTAKEN, move || drop(result));
        let send = |sender: oneshot::Sender<JobResult<T>>, result| {
            if let Err(unsent) = sender.send(result) {
                unwanted(unsent.into_inner());
            }
        };
        match (outcome, result) {
            (Ok(value), Some(sender)) => {
                send(sender, Ok(value));
                Outcome::Completed
            }
            (Ok(value), None) => {
                unwanted(Ok(value));
                Outcome::Completed
            }
            (Err(payload), Some(sender)) => {
                send(sender, Err(JobError::Panicked(PanicPayload::new(payload))));
                Outcome::Panicked(None)
            }
            (Err(payload), None) => Outcome::Panicked(Some(payload)),
        }
    }

    fn abandon(&self, how: Unrun, epoch: Option<u64>) -> Abandoned {
        let state = self.state();
        match state.transition_at(epoch, QUEUED, how.state()) {
            Ok(()) => {}
            Err(Refused::Dead) => return Abandoned::Dead,
            Err(Refused::Elsewhere) => return Abandoned::NotQueued,
        }
        state.dropping();
        let Some(Body { job, result }) = self.take() else {
            debug_assert!(false, "the winner of a transition out of QUEUED found no closure");
            state.dropped(how);
            return Abandoned::Dropped(None);
        };
        // Drop the closure first, then settle the state, then complete the
        // handle: whoever sees either also sees everything it captured
        // dropped (`state.rs`).
        let panic = panic::catch_unwind(AssertUnwindSafe(move || drop(job))).err();
        state.dropped(how);
        if let Some(sender) = result {
            let _ = sender.send(Err(how.error()));
        }
        Abandoned::Dropped(panic)
    }

    fn promote(&self) -> Option<u64> {
        self.state().next_epoch()
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
        match state.load() {
            QUEUED => match task.abandon(Unrun::Cancelled, None) {
                Abandoned::Dropped(None) => return CancelOutcome::Prevented,
                Abandoned::Dropped(Some(payload)) => panic::resume_unwind(payload),
                // A worker, the timer or another canceller got there first
                // (no entry asks here, so none is dead).
                Abandoned::NotQueued | Abandoned::Dead => continue,
            },
            RUNNING => {
                if state.transition(RUNNING, CANCEL_REQUESTED) {
                    state.wake_waiters();
                    return CancelOutcome::Requested;
                }
            }
            CANCEL_REQUESTED => return CancelOutcome::Requested,
            // Another thread is dropping the closure: the answer promises
            // it dropped, so wait (`state.rs`).
            CANCELLING | EXPIRING => {
                state.wait_dropped();
                return match state.unrun() {
                    Some(Unrun::Cancelled) => CancelOutcome::Prevented,
                    _ => CancelOutcome::TooLate,
                };
            }
            CANCELLED => return CancelOutcome::Prevented,
            _ => return CancelOutcome::TooLate,
        }
    }
}
