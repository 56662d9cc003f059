//! The job: the unit of work a queue holds ([`Job`]), the cell of a
//! cancellable job (`task.rs`) and its state machine (`state.rs`), and the
//! running job's view of it ([`JobContext`]).

mod context;
pub(crate) mod erase;
pub(crate) mod state;
pub(crate) mod task;

use std::any::Any;
use std::num::NonZeroU64;
use std::panic::{self, AssertUnwindSafe};

pub use self::context::JobContext;
use self::erase::{Erased, PartRef};
use self::state::Unrun;
use self::task::{Abandoned, Discarded, KeptPanic, Outcome, Payload, TaskCell};
use crate::queue::local::Queued;
use crate::sync::Ordering;
use crossbeam_utils::CachePadded;

use crate::sync::plain::{Arc, AtomicU64, Mutex, lock};

/// When a job was queued: nanoseconds since the pool's epoch, plus one (so
/// that it is never zero and `Option<Stamp>` costs no extra word). Stamped
/// only by pools that measure queue waits (see `metrics/counters.rs`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Stamp(NonZeroU64);

impl Stamp {
    /// The stamp of `nanos` nanoseconds since the epoch.
    pub(crate) fn from_nanos(nanos: u64) -> Stamp {
        Stamp(NonZeroU64::MIN.saturating_add(nanos))
    }

    /// The raw value: nanoseconds since the epoch, plus one.
    pub(crate) fn raw(self) -> u64 {
        self.0.get()
    }
}

/// A type-erased job, run at most once: either a boxed closure (a plain
/// [`Pool::spawn`](crate::Pool::spawn)), or a thin entry pointing at a
/// cancellable task cell (everything with a handle or options).
///
/// A closure that captures nothing is zero-sized and boxing it does not
/// allocate, so an empty spawned job costs only the queue slot it sits in.
/// When the pool measures queue waits, the job is wrapped with the time it
/// was queued ([`Job::stamped`]); otherwise it carries nothing more.
pub(crate) struct Job(Kind);

/// Two variants, one of them a thin pointer: the enum fits in the closure
/// variant's two words (its vtable pointer is never null), so a queue slot
/// holds 16 bytes. Tasks and stamped jobs pay one more small allocation.
enum Kind {
    Closure(Box<dyn FnOnce() + Send + 'static>),
    Other(Box<Other>),
}

enum Other {
    /// A task cell's entry, and the epoch it was pushed with (`state.rs`,
    /// "Promotion").
    Task(Arc<dyn TaskCell>, u64),
    Stamped(Kind, Stamp),
    /// A fork half of a `join` taken off its worker's fork deque.
    Fork(PartRef),
    /// The entry of a scoped job its scope's owner may claim.
    Claimable(Claimable),
}

/// The cell of a scoped job that its scope's owner may claim and run
/// inline while it waits (`forkjoin/scope.rs`): whoever takes the closure
/// out runs it, or drops it unrun.
pub(crate) type ClaimCell = Mutex<Option<Erased>>;

/// The queue entry of a [`ClaimCell`]. A worker's claim moves the closure
/// into `taken`; an entry found empty was claimed by the owner, which
/// counted the job as run ahead of its entry (`runtime/help.rs`), so it is
/// discarded as such wherever it is taken off: by a worker, the sweep or
/// `cancel_queued` (`metrics/counters/ahead.rs`).
pub(crate) struct Claimable {
    cell: Arc<ClaimCell>,
    taken: Option<Erased>,
}

impl Claimable {
    fn claim(&mut self) -> Result<(), Discarded> {
        self.taken = lock(&self.cell).take();
        match self.taken {
            Some(_) => Ok(()),
            None => Err(Discarded { ahead: true, panic: None }),
        }
    }
}

impl Drop for Claimable {
    /// A scoped job borrows from its scope's stack: an entry dropped
    /// without running or cancelling its job drops the job too, so that
    /// the scope's count is completed (`forkjoin/scope.rs`).
    fn drop(&mut self) {
        drop(lock(&self.cell).take());
    }
}

/// What [`Job::cancel`] did.
pub(crate) enum Cancelled {
    /// This call dropped the job unrun; the payload is its closure's
    /// destructor's panic, if it panicked.
    Now(Option<Payload>),
    /// The entry was dead: its job had already ended (cancelled or expired
    /// earlier), or was promoted to another level (`state.rs`,
    /// "Promotion"), and counted then; or (`ahead`) its waiter ran it
    /// (`runtime/help.rs`). The entry was discarded.
    Before {
        /// The entry's job was run by its waiter, ahead of this entry.
        ahead: bool,
    },
}

impl Job {
    /// A job whose panics reach the pool's panic handler. A closure that
    /// is already a `Box<dyn FnOnce() + Send>` is kept as it is, not boxed
    /// again (the type test is resolved at compile time).
    pub(crate) fn new<F: FnOnce() + Send + 'static>(f: F) -> Job {
        let mut f = Some(f);
        if let Some(boxed) = (&mut f as &mut dyn Any).downcast_mut::<Option<Box<dyn FnOnce() + Send>>>() {
            return Job(Kind::Closure(boxed.take().expect("just wrapped")));
        }
        Job(Kind::Closure(Box::new(f.expect("just wrapped"))))
    }

    /// The queue entry of a scoped job its scope's owner may claim.
    pub(crate) fn claimable(cell: Arc<ClaimCell>) -> Job {
        Job(Kind::Other(Box::new(Other::Claimable(Claimable { cell, taken: None }))))
    }

    /// The queue entry of a task cell.
    pub(crate) fn task(task: Arc<dyn TaskCell>) -> Job {
        Job::task_at(task, 0)
    }

    /// A queue entry of a task cell for `epoch`: the entry of a promoted
    /// job (`state.rs`, "Promotion").
    pub(crate) fn task_at(task: Arc<dyn TaskCell>, epoch: u64) -> Job {
        Job(Kind::Other(Box::new(Other::Task(task, epoch))))
    }

    /// The task cell behind this entry, if it is one (unstamped: call
    /// before [`Job::stamped`]).
    pub(crate) fn task_cell(&self) -> Option<&Arc<dyn TaskCell>> {
        match &self.0 {
            Kind::Other(other) => match &**other {
                Other::Task(task, _) => Some(task),
                Other::Stamped(..) | Other::Fork(_) | Other::Claimable(_) => None,
            },
            Kind::Closure(_) => None,
        }
    }

    /// Whether this is a fork half of a `join` (see `From<PartRef>`).
    pub(crate) fn is_fork(&self) -> bool {
        matches!(&self.0, Kind::Other(other) if matches!(**other, Other::Fork(_)))
    }

    /// The job, stamped with the time `at` it is queued, if there is one.
    /// Stamping costs an allocation, which is why only pools that measure
    /// queue waits do it.
    #[inline]
    pub(crate) fn stamped(self, at: Option<Stamp>) -> Job {
        match at {
            Some(at) => self.stamp(at),
            None => self,
        }
    }

    #[cold]
    fn stamp(self, at: Stamp) -> Job {
        Job(Kind::Other(Box::new(Other::Stamped(self.0, at))))
    }

    /// When the job was queued, if it was [stamped](Job::stamped).
    pub(crate) fn queued_at(&self) -> Option<Stamp> {
        match &self.0 {
            Kind::Other(other) => match **other {
                Other::Stamped(_, at) => Some(at),
                Other::Task(..) | Other::Fork(_) | Other::Claimable(_) => None,
            },
            Kind::Closure(_) => None,
        }
    }

    /// Claims a popped job for running, before it is counted as started: a
    /// closure always can be; a task cannot if it was cancelled or has
    /// expired (see [`TaskCell::claim`]), nor a claimable scoped job its
    /// owner took first ([`Claimable`]), and is then discarded, unrun.
    /// Only the worker that popped the entry calls this, once.
    #[inline]
    pub(crate) fn claim(&mut self) -> Result<(), Discarded> {
        // A plain spawned job (the hot path) pays one branch here.
        if let Kind::Closure(_) = self.0 {
            return Ok(());
        }
        Job::claim_kind(&mut self.0)
    }

    #[inline(never)]
    fn claim_kind(kind: &mut Kind) -> Result<(), Discarded> {
        match kind {
            Kind::Closure(_) => Ok(()),
            Kind::Other(other) => match &mut **other {
                Other::Task(task, epoch) => task.claim(*epoch),
                Other::Stamped(kind, _) => Job::claim_kind(kind),
                Other::Fork(_) => Ok(()),
                Other::Claimable(entry) => entry.claim(),
            },
        }
    }

    /// Runs a [claimed](Job::claim) job, catching a panic instead of letting
    /// it unwind into the worker. The closure and everything it captured are
    /// dropped inside the guard too, so a panicking destructor is caught as
    /// well, as the job's panic. `ended(panicked)` is called once the job
    /// has returned or panicked and before anyone can learn that it has (its
    /// handle, its cell's state): the worker counts the job there, so that a
    /// handle that reports the end finds it counted. A result that nobody
    /// takes (its handle is gone) is dropped outside the job's run,
    /// reporting to `tally`.
    #[inline]
    pub(crate) fn run(self, tally: &JobTally, ended: impl FnOnce(bool)) -> Outcome {
        Job::run_kind(self.0, tally, ended)
    }

    fn run_kind(kind: Kind, tally: &JobTally, ended: impl FnOnce(bool)) -> Outcome {
        match kind {
            Kind::Closure(f) => {
                let outcome = match panic::catch_unwind(AssertUnwindSafe(f)) {
                    Ok(()) => Outcome::Completed,
                    Err(payload) if payload.is::<KeptPanic>() => Outcome::Panicked(None),
                    Err(payload) => Outcome::Panicked(Some(payload)),
                };
                ended(matches!(outcome, Outcome::Panicked(_)));
                outcome
            }
            Kind::Other(other) => match *other {
                // The task catches the job's panic itself, and a panic from
                // dropping a result nobody took; this guard is a backstop,
                // so that nothing after them can unwind into the worker.
                Other::Task(task, _) => {
                    let mut ended = Some(ended);
                    let outcome = panic::catch_unwind(AssertUnwindSafe(|| {
                        task.run(tally, &mut |panicked| {
                            if let Some(ended) = ended.take() {
                                ended(panicked);
                            }
                        })
                    }))
                    .unwrap_or_else(|p| Outcome::Panicked(Some(p)));
                    if let Some(ended) = ended.take() {
                        ended(matches!(outcome, Outcome::Panicked(_)));
                    }
                    outcome
                }
                Other::Stamped(kind, _) => Job::run_kind(kind, tally, ended),
                Other::Fork(part) => Job::run_kind(Kind::Closure(Box::new(move || part.run())), tally, ended),
                Other::Claimable(mut entry) => match entry.taken.take() {
                    Some(job) => Job::run_kind(Kind::Closure(job), tally, ended),
                    None => {
                        debug_assert!(false, "a claimable entry ran unclaimed");
                        ended(false);
                        Outcome::Completed
                    }
                },
            },
        }
    }

    /// Drops the job of `level` without running it; a task's handle yields
    /// [`JobError::Cancelled`](crate::JobError::Cancelled). A job whose fate
    /// this call decides is counted in `tally` before anyone can see it.
    pub(crate) fn cancel(self, level: usize, tally: &JobTally) -> Cancelled {
        Job::cancel_kind(self.0, level, tally)
    }

    fn cancel_kind(kind: Kind, level: usize, tally: &JobTally) -> Cancelled {
        match kind {
            Kind::Closure(f) => {
                let panic = panic::catch_unwind(AssertUnwindSafe(move || drop(f))).err();
                tally.fated(level, Unrun::Cancelled);
                Cancelled::Now(panic)
            }
            Kind::Other(other) => match *other {
                Other::Task(task, epoch) => match task.abandon(Unrun::Cancelled, Some(epoch)) {
                    Abandoned::Dropped(panic) => Cancelled::Now(panic),
                    Abandoned::NotQueued => Cancelled::Before { ahead: task.state().ran_ahead_of(epoch) },
                },
                Other::Stamped(kind, _) => Job::cancel_kind(kind, level, tally),
                Other::Fork(part) => Job::cancel_kind(Kind::Closure(Box::new(move || part.run())), level, tally),
                Other::Claimable(mut entry) => match entry.taken.take().or_else(|| lock(&entry.cell).take()) {
                    Some(job) => Job::cancel_kind(Kind::Closure(job), level, tally),
                    // Its owner ran it, counted ahead of this entry.
                    None => Cancelled::Before { ahead: true },
                },
            },
        }
    }

    /// The job's name, if it was given one (a task with a name).
    pub(crate) fn name(&self) -> Option<&std::sync::Arc<str>> {
        match &self.0 {
            Kind::Other(other) => match &**other {
                Other::Task(task, _) => task.name(),
                Other::Stamped(Kind::Other(inner), _) => match &**inner {
                    Other::Task(task, _) => task.name(),
                    Other::Stamped(..) | Other::Fork(_) | Other::Claimable(_) => None,
                },
                Other::Stamped(Kind::Closure(_), _) | Other::Fork(_) | Other::Claimable(_) => None,
            },
            Kind::Closure(_) => None,
        }
    }
}

/// A worker's deques hold jobs, and fork halves as entries to their
/// joiner's stack (`erase.rs`).
impl Queued for Job {
    type Fork = PartRef;
}

/// A fork half taken by a peer (or by a waiting worker's pick) becomes a job
/// of its own: one allocation, paid only then. It is marked as a fork half:
/// it took no room at a bounded level (`capacity.rs`), so it gives none back.
impl From<PartRef> for Job {
    fn from(part: PartRef) -> Job {
        Job(Kind::Other(Box::new(Other::Fork(part))))
    }
}

/// What [`JobTally`] is told a job's closure was when it never ran.
pub(crate) const NEVER_RAN: &str = "the closure of a job that never ran";

/// What [`JobTally`] is told a job's result was when its handle was
/// dropped without it.
pub(crate) const UNTAKEN: &str = "the result of a job nobody took";

/// What [`JobTally`] is told panicked when completing a job's handle woke
/// the waker of whoever awaits it (an executor's code, run by the pool).
pub(crate) const WAKER: &str = "the waker of a job's awaited handle";

/// The counts a job's fate writes from wherever that fate is decided, off
/// the workers: the fates of jobs that left their level without running
/// there, per level, and the panics of destructors the pool runs for a job
/// outside its run.
///
/// **Fates.** A job that never runs is counted cancelled or expired by the
/// thread that decides it (`job/task.rs`: the winner of the move out of
/// `QUEUED`, before the job's handle can see the fate; `Job::cancel`
/// for a plain closure taken off a queue by `shutdown_now`), so that a
/// handle that reports the fate finds it counted. A job moved to another
/// level is counted promoted at its old level by the promoting call, the
/// winner of its move to a new entry (`job/state.rs`, "Promotion"). Each
/// is counted at the level the job's state word names when the deciding
/// compare-exchange succeeds, so a cancel or an expiry racing a promotion
/// counts at the level of the entry live at that moment. These are rare
/// and off the workers' path, so shared atomics do; how the snapshot keeps
/// a dead entry still queued out of the backlog is in
/// `metrics/counters.rs`.
///
/// **Destructor panics** ([`Metrics::drop_panics`](crate::Metrics::drop_panics)):
/// the closure of a job that never ran (cancelled, expired, swept by
/// `shutdown_now`: on a worker, the timer thread, a canceller or the
/// sweeping thread), and the value of a job that returned when nobody takes
/// it (its handle was dropped: on the worker, or in the handle's drop). Such
/// a panic is not the job's: the job never ran, or it returned. So it is
/// neither a job panic (the job's level counts it cancelled, expired or
/// completed; the panic handler, which receives job panics on the worker
/// thread, does not see it) nor let unwind into the pool or into the thread
/// dropping a handle. It is counted, logged (feature `log`), and its payload
/// dropped.
///
/// One per pool, in the metrics; each task cell holds a clone (its handle
/// reaches it there), since it may drop its job's value after the pool is
/// gone.
#[derive(Clone)]
pub(crate) struct JobTally(Arc<Tallies>);

struct Tallies {
    drop_panics: AtomicU64,
    /// Per level: jobs cancelled before they started, jobs expired, and
    /// jobs moved to another level.
    cancelled: Box<[CachePadded<AtomicU64>]>,
    expired: Box<[CachePadded<AtomicU64>]>,
    promoted: Box<[CachePadded<AtomicU64>]>,
}

/// The fates counted at one level so far ([`JobTally::fates`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Fates {
    pub(crate) cancelled: u64,
    pub(crate) expired: u64,
    pub(crate) promoted: u64,
}

impl Fates {
    /// Every job counted here: each left a dead entry behind, or none if
    /// it was a plain closure reaped at once.
    pub(crate) fn sum(self) -> u64 {
        self.cancelled + self.expired + self.promoted
    }
}

impl JobTally {
    /// The tally of a pool of `levels` levels.
    pub(crate) fn new(levels: usize) -> JobTally {
        let counters = || (0..levels).map(|_| CachePadded::new(AtomicU64::new(0))).collect();
        JobTally(Arc::new(Tallies {
            drop_panics: AtomicU64::new(0),
            cancelled: counters(),
            expired: counters(),
            promoted: counters(),
        }))
    }

    /// Counts a job of `level` that will never run, decided now.
    pub(crate) fn fated(&self, level: usize, fate: Unrun) {
        bump_at(
            match fate {
                Unrun::Cancelled => &self.0.cancelled,
                Unrun::Expired => &self.0.expired,
            },
            level,
        );
    }

    /// Counts a job that left `level` for another, decided now.
    pub(crate) fn promoted(&self, level: usize) {
        bump_at(&self.0.promoted, level);
    }

    /// The fates of `level`'s jobs so far.
    pub(crate) fn fates(&self, level: usize) -> Fates {
        let read = |counters: &[CachePadded<AtomicU64>]| counters.get(level).map_or(0, |c| c.load(Ordering::Acquire));
        Fates { cancelled: read(&self.0.cancelled), expired: read(&self.0.expired), promoted: read(&self.0.promoted) }
    }

    /// Runs `drop` (of a closure or value that belonged to a job)
    /// catching a panic, and counts and reports the panic; `what` names
    /// what was dropped, for the log.
    pub(crate) fn drop_caught(&self, what: &str, drop: impl FnOnce()) {
        if let Err(payload) = panic::catch_unwind(AssertUnwindSafe(drop)) {
            self.caught(what, payload);
        }
    }

    /// Counts and reports the caught panic of a destructor run for a job
    /// outside its run, and drops its payload.
    #[cfg_attr(not(feature = "log"), allow(unused_variables))]
    pub(crate) fn caught(&self, what: &str, payload: Payload) {
        self.0.drop_panics.fetch_add(1, Ordering::Relaxed);
        crate::hooks::log_event!(
            warn,
            "dropping {what} panicked (not a job panic): {}",
            panic_message(payload.as_ref())
        );
        drop_payload(payload);
    }

    /// How many destructor panics there have been.
    pub(crate) fn count(&self) -> u64 {
        self.0.drop_panics.load(Ordering::Relaxed)
    }
}

/// Counts one at `level` (a level the pool does not have counts nowhere).
fn bump_at(counters: &[CachePadded<AtomicU64>], level: usize) {
    if let Some(counter) = counters.get(level) {
        counter.fetch_add(1, Ordering::Release);
    }
}

/// Drops a caught panic payload without letting its destructor unwind into
/// the pool: the drop runs under `catch_unwind`, and if it panics, the
/// payload of *that* panic is leaked rather than dropped, since its
/// destructor could panic in turn, without end. (A payload whose destructor
/// panics is rare; leaking one box then is the price of a worker that never
/// unwinds.)
pub(crate) fn drop_payload(payload: Box<dyn Any + Send>) {
    if let Err(again) = panic::catch_unwind(AssertUnwindSafe(move || drop(payload))) {
        std::mem::forget(again);
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

#[cfg(test)]
mod tests {
    /// A queue slot holds a job; two words keep the bytes per queued job at
    /// those of a plain boxed closure.
    #[test]
    fn a_job_is_two_words() {
        assert_eq!(std::mem::size_of::<super::Job>(), 2 * std::mem::size_of::<usize>());
    }

    /// A job handed over already boxed keeps its box: the entry points at
    /// the caller's allocation.
    #[test]
    fn a_boxed_closure_is_not_boxed_again() {
        let boxed: Box<dyn FnOnce() + Send> = Box::new({
            let captured = 7u64;
            move || assert_eq!(captured, 7)
        });
        let address = &*boxed as *const (dyn FnOnce() + Send) as *const u8;
        let job = super::Job::new(boxed);
        let super::Kind::Closure(inner) = &job.0 else { panic!("a closure job") };
        assert_eq!(&**inner as *const (dyn FnOnce() + Send) as *const u8, address);
    }
}
