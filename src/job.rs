//! The unit of work a queue holds.

use std::any::Any;
use std::panic::{self, AssertUnwindSafe};

use crate::metrics::Stamp;

/// How a job ended.
pub(crate) enum Outcome {
    /// It returned normally.
    Completed,
    /// It panicked. The payload is here if nobody else has it yet (a
    /// spawned job); `None` if it was already handed to a
    /// [`JobHandle`](crate::JobHandle).
    Panicked(Option<Box<dyn Any + Send>>),
}

/// A type-erased job: a boxed closure, run at most once. The closure returns
/// `true` if it caught a panic of its own and delivered it elsewhere.
///
/// A closure that captures nothing is zero-sized and boxing it does not
/// allocate, so an empty job costs only the queue slot it sits in (two
/// words). When the pool measures queue waits, the job is wrapped with the
/// time it was queued ([`Job::stamped`]); otherwise it carries nothing more.
pub(crate) struct Job(Box<dyn Task>);

/// The body of a job.
trait Task: Send + 'static {
    /// Runs the body; `true` if it caught and delivered its own panic.
    fn call(self: Box<Self>) -> bool;

    /// When the job was queued, if it was stamped.
    fn queued_at(&self) -> Option<Stamp> {
        None
    }
}

impl<F: FnOnce() -> bool + Send + 'static> Task for F {
    fn call(self: Box<Self>) -> bool {
        (*self)()
    }
}

/// A job stamped with the time it was queued (see `metrics.rs`).
struct Stamped {
    task: Box<dyn Task>,
    at: Stamp,
}

impl Task for Stamped {
    fn call(self: Box<Self>) -> bool {
        self.task.call()
    }

    fn queued_at(&self) -> Option<Stamp> {
        Some(self.at)
    }
}

impl Job {
    /// A job whose panics reach the pool's panic handler.
    pub(crate) fn new(f: impl FnOnce() + Send + 'static) -> Job {
        Job(Box::new(move || {
            f();
            false
        }))
    }

    /// A job that catches its own panics and delivers them itself; `f`
    /// returns whether it did.
    pub(crate) fn self_reporting(f: impl FnOnce() -> bool + Send + 'static) -> Job {
        Job(Box::new(f))
    }

    /// The job, stamped with the time `at` it is queued, if there is one.
    /// Stamping costs an allocation, which is why only pools that measure
    /// queue waits do it.
    pub(crate) fn stamped(self, at: Option<Stamp>) -> Job {
        match at {
            Some(at) => Job(Box::new(Stamped { task: self.0, at })),
            None => self,
        }
    }

    /// When the job was queued, if it was [stamped](Job::stamped).
    pub(crate) fn queued_at(&self) -> Option<Stamp> {
        self.0.queued_at()
    }

    /// Runs the job, catching a panic instead of letting it unwind into the
    /// worker. The closure and everything it captured are dropped inside the
    /// guard too, so a panicking destructor is caught as well.
    pub(crate) fn run(self) -> Outcome {
        match panic::catch_unwind(AssertUnwindSafe(move || self.0.call())) {
            Ok(false) => Outcome::Completed,
            Ok(true) => Outcome::Panicked(None),
            Err(payload) => Outcome::Panicked(Some(payload)),
        }
    }
}

/// The message of a panic payload, when it is a string (as `panic!` makes).
pub(crate) fn panic_message(payload: &(dyn Any + Send)) -> &str {
    payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("<non-string panic payload>")
}
