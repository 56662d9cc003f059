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
//! (`lifecycle.rs`); the metrics count the job as cancelled or expired at
//! once, by the winner, before the job's state settles and its handle is
//! completed (`job::JobTally`), and keep the dead entry out of the backlog
//! (`metrics/counters.rs`).
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
    CANCEL_REQUESTED, CANCELLED, CANCELLING, CancelOutcome, EXPIRING, QUEUED, RUNNING, TaskState, Unrun,
};
use super::{JobTally, UNTAKEN, WAKER};
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
    /// [`JobHandle`](crate::JobHandle), a scope or a `join` ([`KeptPanic`]).
    Panicked(Option<Payload>),
}

/// What a job unwinds with after handing its panic to the one that waits
/// for it, a scope (`forkjoin/scope.rs`) or the `join` whose half a peer
/// stole (`forkjoin/join.rs`), which resumes it: the run counts the job as
/// panicked, as a task whose panic went to its handle, with no payload for
/// the panic handler. (Their closures cannot return that to the run: they
/// are plain closures to it.)
pub(crate) struct KeptPanic;

impl KeptPanic {
    /// Unwinds with this marker: the caller has handed its panic on.
    pub(crate) fn resume() -> ! {
        std::panic::resume_unwind(Box::new(KeptPanic))
    }
}

/// A popped job that will not run: how it ended, and the panic of its
/// closure's destructor if that panicked when the job was dropped now.
pub(crate) struct Discarded {
    /// Its waiter ran it (`runtime/help.rs`): the entry was the job's
    /// live entry, with no fate counted (see `TaskState::ran_ahead_of`).
    pub(crate) ahead: bool,
    pub(crate) panic: Option<Payload>,
}

/// What [`TaskCell::abandon`] did.
pub(crate) enum Abandoned {
    /// This call moved the job out of `QUEUED` and dropped its closure. The
    /// payload is the closure's destructor's panic, if it panicked.
    Dropped(Option<Payload>),
    /// The job had already left `QUEUED`, or the entry asking is dead (the
    /// job was promoted past it); nothing was done.
    NotQueued,
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

    /// Runs a job this worker [claimed](TaskCell::claim), calling
    /// `ended(panicked)` when the closure has returned or panicked and
    /// before the job's state or handle says so; a result that nobody takes
    /// is dropped here, reporting a panic to `tally`.
    fn run(&self, tally: &JobTally, ended: &mut dyn FnMut(bool)) -> Outcome;

    /// The job's name, if it was given one.
    fn name(&self) -> Option<&Arc<str>>;

    /// The pool's tally, where the job's fate and the destructor panics of
    /// its handle are counted.
    fn tally(&self) -> &JobTally;

    /// Drops the job unrun if it is still queued, and completes its handle
    /// with the matching error. With `Some(epoch)`, on behalf of a queue
    /// entry pushed with it: only if that entry is live.
    fn abandon(&self, how: Unrun, epoch: Option<u64>) -> Abandoned;

    /// Moves a queued job to `level` and a new epoch, killing its queue
    /// entry, for a push there (`state.rs`, "Promotion"), and counts it
    /// promoted at the level it left; returns the new entry's epoch, or
    /// `None` if the job is no longer queued.
    fn promote(&self, level: usize) -> Option<u64>;
}

/// A job's closure and where its result goes.
struct Body<G, T> {
    job: G,
    /// `None` for a spawned job: no one waits for its value, and its panic
    /// goes to the pool's panic handler.
    result: Option<oneshot::Sender<JobResult<T>>>,
}

/// The cell: the job's context (which holds its state), its body, and
/// what it carries for counting and reporting.
pub(crate) struct Task<G, T> {
    context: JobContext,
    body: Mutex<Option<Body<G, T>>>,
    meta: Meta,
}

/// What a task carries besides its closure: its deadline, the level it is
/// queued at first (then kept in its state word, where its fate is counted:
/// `state.rs`, "Promotion"), the tally that counts it, and its name.
pub(crate) struct Meta {
    pub(crate) deadline: Option<Instant>,
    pub(crate) level: usize,
    pub(crate) tally: JobTally,
    pub(crate) name: Option<Arc<str>>,
}

impl<G, T> Task<G, T>
where
    G: FnOnce(&JobContext) -> T + Send + 'static,
    T: Send + 'static,
{
    /// A job whose value and panic go to the returned receiver.
    pub(crate) fn submitted(job: G, meta: Meta) -> (Arc<dyn TaskCell>, oneshot::Receiver<JobResult<T>>) {
        let (sender, receiver) = oneshot::channel();
        (Task::with_body(Body { job, result: Some(sender) }, meta), receiver)
    }

    /// A job with no handle: its value is dropped, its panic reported to
    /// the pool.
    pub(crate) fn spawned(job: G, meta: Meta) -> Arc<dyn TaskCell> {
        Task::with_body(Body { job, result: None }, meta)
    }

    fn with_body(body: Body<G, T>, meta: Meta) -> Arc<dyn TaskCell> {
        let context = JobContext::new(TaskState::new(meta.deadline, meta.level));
        Arc::new(Task { context, body: Mutex::new(Some(body)), meta })
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
        if state.is_past_deadline() {
            return Err(match self.abandon(Unrun::Expired, Some(epoch)) {
                Abandoned::Dropped(panic) => Discarded { ahead: false, panic },
                Abandoned::NotQueued => Discarded { ahead: state.ran_ahead_of(epoch), panic: None },
            });
        }
        match state.transition_at(Some(epoch), QUEUED, RUNNING) {
            Some(_) => Ok(()),
            None => Err(Discarded { ahead: state.ran_ahead_of(epoch), panic: None }),
        }
    }

    fn run(&self, tally: &JobTally, ended: &mut dyn FnMut(bool)) -> Outcome {
        let state = self.state();
        let Some(Body { job, result }) = self.take() else {
            // Unreachable: only the winner of QUEUED -> RUNNING runs the job.
            debug_assert!(false, "a claimed job found no closure");
            ended(false);
            return Outcome::Completed;
        };
        let outcome = panic::catch_unwind(AssertUnwindSafe(|| job(&self.context)));
        // Counted before the state and the handle can tell.
        ended(outcome.is_err());
        state.set_done();
        match (outcome, result) {
            (Ok(value), Some(sender)) => {
                complete(tally, sender, Ok(value));
                Outcome::Completed
            }
            (Ok(value), None) => {
                tally.drop_caught(UNTAKEN, move || drop(value));
                Outcome::Completed
            }
            (Err(payload), Some(sender)) => {
                complete(tally, sender, Err(JobError::Panicked(PanicPayload::new(payload))));
                Outcome::Panicked(None)
            }
            (Err(payload), None) => Outcome::Panicked(Some(payload)),
        }
    }

    fn name(&self) -> Option<&Arc<str>> {
        self.meta.name.as_ref()
    }

    fn tally(&self) -> &JobTally {
        &self.meta.tally
    }

    fn abandon(&self, how: Unrun, epoch: Option<u64>) -> Abandoned {
        let state = self.state();
        // The level the winning move found the job at: a promotion racing
        // this moves the level with the epoch, in the same word.
        let Some(level) = state.transition_at(epoch, QUEUED, how.state()) else {
            return Abandoned::NotQueued;
        };
        // Counted as it is decided, before the state settles or the handle
        // can tell.
        self.meta.tally.fated(level, how);
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
            complete(&self.meta.tally, sender, Err(how.error()));
        }
        Abandoned::Dropped(panic)
    }

    fn promote(&self, level: usize) -> Option<u64> {
        let (from, epoch) = self.state().next_epoch(level)?;
        // Counted as it is decided, at the level the move found the job at.
        self.meta.tally.promoted(from);
        Some(epoch)
    }
}

/// Completes a job's handle with `result`, on whichever thread decided the
/// job's end (a worker, a canceller, the timer, the sweep). Sending wakes
/// the waker of a handle being awaited: an executor's code, which may
/// panic; that panic, and one from dropping a result nobody takes (the
/// handle is gone), is caught and reported to `tally`, never let loose in
/// the pool's threads or mistaken for the job's own. The result is in the
/// channel before the waker runs, so it is delivered either way.
fn complete<T>(tally: &JobTally, sender: oneshot::Sender<JobResult<T>>, result: JobResult<T>) {
    match panic::catch_unwind(AssertUnwindSafe(move || sender.send(result))) {
        Ok(Ok(())) => {}
        // A dropped handle only means nobody wants the result: it comes
        // back from `send` and is dropped here, outside the job's run.
        Ok(Err(unsent)) => tally.drop_caught(UNTAKEN, move || drop(unsent.into_inner())),
        Err(payload) => tally.caught(WAKER, payload),
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
