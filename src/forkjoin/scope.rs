//! `scope`: jobs that borrow from the caller's stack, and the wait for all
//! of them.
//!
//! # The count
//!
//! A scope counts its unfinished jobs in `pending`, plus one for its own
//! closure while that runs. A spawn adds one before its job is queued; a
//! job subtracts one as the very last thing it does with the scope, after
//! its closure (and the closure's captures) are gone, also when it panics
//! or is dropped unrun (cancelled by `shutdown_now`). The scope's caller
//! subtracts its own one when its closure returns or panics, then waits
//! until `pending` is zero (`Acquire`, against the jobs' `AcqRel`
//! subtractions: every job's effects are visible when `scope` returns). A
//! spawn comes from the scope's closure or from one of its jobs while it
//! runs, each holding one of the counted units, so the count cannot reach
//! zero while a spawn is possible, and once zero it stays zero. This is
//! the invariant of `erase.rs`: `scope` does not return, nor unwind, until
//! every job is done with what it borrows.
//!
//! # The wake-up
//!
//! The job whose subtraction reaches zero unparks the scope's owner: the
//! waiting worker's parker, or a parker of the calling thread when it is
//! not one of the pool's workers. The scope's state is shared (`Arc`), so
//! the job may touch it after its subtraction; the owner re-checks the
//! count after every wake-up, and a `Parker` keeps a token that arrives
//! before the park, so no wake-up is lost. Loom models 7 and 7b check the
//! count and the wake-up (`loom_tests/`).
//!
//! # Waiting
//!
//! On one of the pool's workers the owner waits by helping
//! (`runtime/help.rs`). Jobs spawned at levels its pick does not take (less
//! urgent than the owner's job, or beyond a reserved thread's bound when
//! the owner is a less urgent job that thread claimed) are also kept in the
//! scope (`claimable`), so that the owner can
//! claim one that has not started and run it inline (a spawn of one unparks
//! the owner, which may be parked waiting). A claimed job is counted and
//! hooked as a job of its level when the owner runs it, as a handle's job
//! claimed by its waiter is; the queue entry it leaves behind
//! (`Job::claimable`) is found empty and discarded as run ahead
//! (`metrics/counters/ahead.rs`) wherever it is taken off: by a worker,
//! `cancel_queued` or the `shutdown_now` sweep, none of which counts it
//! again. Jobs at the levels its pick takes are found by it. Elsewhere the
//! owner blocks.
//!
//! # Panics
//!
//! The first panic of a job is kept and later ones dropped; `scope`
//! resumes the closure's own panic if it panicked, else the kept one, once
//! every job has finished. A job cancelled before it started (by
//! `shutdown_now` or a shutdown that cancels the backlog, or by
//! `Pool::cancel_queued`, which takes scoped jobs off their queue as any
//! other) counts as a panic with [`JOB_CANCELLED`] as its message.

use std::marker::PhantomData;
use std::panic::{self, AssertUnwindSafe};

use crate::capacity::WhenFull;
use crate::error::SpawnError;
use crate::job::erase::{Borrowing, UnwindGuard, erase};
use crate::job::task::{KeptPanic, Payload};
use crate::job::{ClaimCell, Job, drop_payload};
use crate::queue::Priority;
use crate::runtime::help;
use crate::runtime::registry::Registry;
use crate::runtime::worker::Local;
use crate::sync::plain::{self, Mutex, lock};
use crate::sync::{Arc, AtomicUsize, Ordering, Parker, Unparker};

/// The panic message of a scoped job cancelled before it started.
pub(crate) const JOB_CANCELLED: &str = "priopool::Scope: a job was cancelled before it ran (by cancel_queued, or by shutdown_now or a shutdown that cancels the backlog)";

/// A set of jobs that may borrow from the stack of the caller of
/// [`Pool::scope`](crate::Pool::scope): the scope ends only when every job
/// spawned in it has finished. Each job gets a `&Scope` too, to spawn more
/// jobs into the same scope.
///
/// `'scope` is the lifetime of the borrows the jobs may hold.
pub struct Scope<'scope> {
    state: plain::Arc<ScopeState>,
    registry: Arc<Registry>,
    /// Invariant in `'scope`, as `std::thread::Scope`: jobs of one scope
    /// cannot be passed off as jobs of a longer one.
    _borrows: PhantomData<&'scope mut &'scope ()>,
}

/// What a scope's jobs and its owner share.
pub(crate) struct ScopeState {
    /// Unfinished jobs, plus one while the scope's closure runs.
    pending: AtomicUsize,
    /// Wakes the owner when `pending` reaches zero.
    owner: Unparker,
    /// The last level the owner's pick takes when the owner is one of the
    /// pool's workers (its job's level, at most a reserved thread's
    /// bound): jobs less urgent than it are kept in `claimable`.
    owner_level: Option<usize>,
    /// Jobs less urgent than the owner, for the owner to claim: level and
    /// cell (emptied by whoever runs the job).
    claimable: Mutex<Vec<(usize, plain::Arc<ClaimCell>)>>,
    /// The first panic of a job.
    panic: Mutex<Option<Payload>>,
}

impl ScopeState {
    /// A scope's state with its closure's unit counted.
    pub(crate) fn new(owner: Unparker, owner_level: Option<usize>) -> ScopeState {
        ScopeState {
            pending: AtomicUsize::new(1),
            owner,
            owner_level,
            claimable: Mutex::new(Vec::new()),
            panic: Mutex::new(None),
        }
    }

    /// Counts a job about to be queued.
    pub(crate) fn add(&self) {
        self.pending.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a job (or the closure) done; the last one wakes the owner.
    /// Call as the last touch of anything the job borrowed.
    pub(crate) fn complete(&self) {
        if self.pending.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.owner.unpark();
        }
    }

    /// Whether every job and the closure are done (`Acquire`).
    pub(crate) fn is_done(&self) -> bool {
        self.pending.load(Ordering::Acquire) == 0
    }

    /// Keeps the first panic; drops the others.
    fn panicked(&self, payload: Payload) {
        let mut first = lock(&self.panic);
        if first.is_none() {
            *first = Some(payload);
            return;
        }
        drop(first);
        drop_payload(payload);
    }

    /// Claims the most urgent claimable job not started yet and runs it on
    /// `local`; says whether it ran one.
    fn claim_one(&self, local: &Local) -> bool {
        loop {
            let next = {
                let mut claimable = lock(&self.claimable);
                let most_urgent = claimable.iter().enumerate().min_by_key(|(_, (level, _))| *level).map(|(at, _)| at);
                most_urgent.map(|at| claimable.swap_remove(at))
            };
            let Some((level, cell)) = next else { return false };
            let take = || lock(&cell).take().map(Job::new);
            let claimed = if local.registry.abort.is_aborting() {
                help::claim_and_cancel(local, level, take)
            } else {
                help::claim_and_run(local, level, take)
            };
            if claimed {
                return true;
            }
        }
    }
}

/// A job of a scope: its closure and its scope. Dropped unrun, it still
/// counts itself done.
struct Scoped<'scope, F> {
    job: Option<F>,
    scope: Scope<'scope>,
}

impl<'scope, F: FnOnce(&Scope<'scope>)> Scoped<'scope, F> {
    /// Runs the job, always as a job of the pool (`Job::run`): a panic
    /// goes to the scope, which resumes it, and the job then unwinds with
    /// [`KeptPanic`], so that the run counts it as panicked.
    ///
    /// Boxed, and so is what the queues hold of it (a pointer to it): an
    /// argument or a closure's captures passed by value hold the job's
    /// borrows, protected until that call returns under the aliasing model
    /// Miri checks (Tree Borrows), so `complete`, which lets the owner read
    /// what the job borrowed, would come while they still are. A box's
    /// contents are not (`tests/miri_forkjoin.rs` caught it).
    #[allow(clippy::boxed_local)] // The box is the point (above).
    fn run(mut this: Box<Self>) {
        let Some(job) = this.job.take() else { return };
        let scope = &this.scope;
        let panicked = match panic::catch_unwind(AssertUnwindSafe(move || job(scope))) {
            Ok(()) => false,
            Err(payload) => {
                this.scope.state.panicked(payload);
                true
            }
        };
        this.scope.state.complete();
        if panicked {
            KeptPanic::resume();
        }
    }
}

impl<F> Drop for Scoped<'_, F> {
    fn drop(&mut self) {
        if let Some(job) = self.job.take() {
            if let Err(payload) = panic::catch_unwind(AssertUnwindSafe(move || drop(job))) {
                drop_payload(payload);
            }
            self.scope.state.panicked(Box::new(JOB_CANCELLED));
            self.scope.state.complete();
        }
    }
}

impl<'scope> Scope<'scope> {
    /// Queues `job` at `priority` as part of this scope. It may borrow
    /// anything that outlives the scope, and gets the scope to spawn more.
    /// A panic in `job` is kept and resumed by the `scope` call once every
    /// job has finished (see [`Pool::scope`](crate::Pool::scope)).
    ///
    /// From a job of the pool (a scoped job included) the job goes to the
    /// worker's own deque, as with [`Spawner::spawn`](crate::Spawner::spawn).
    ///
    /// # Errors
    ///
    /// As [`Spawner::spawn`](crate::Spawner::spawn): a [`SpawnError`]
    /// holding `job`, unrun, when `priority` names no level of the pool, or
    /// when the pool has begun shutting down and the caller is not one of
    /// its running jobs.
    pub fn spawn<F>(&self, priority: impl Into<Priority>, job: F) -> Result<(), SpawnError<F>>
    where
        F: FnOnce(&Scope<'scope>) + Send + 'scope,
    {
        let priority = priority.into();
        let level = priority.resolve(self.registry.levels.len());
        Registry::spawn(&self.registry, priority, job, WhenFull::Wait, None, |job, _| {
            self.state.add();
            let scoped = Box::new(Scoped { job: Some(job), scope: self.duplicate() });
            let erased = erase(Box::new(move || Scoped::run(scoped)) as Borrowing<'scope>);
            let entry = match (level, self.state.owner_level) {
                (Some(level), Some(owner)) if level > owner => {
                    let cell = plain::Arc::new(Mutex::new(Some(erased)));
                    lock(&self.state.claimable).push((level, plain::Arc::clone(&cell)));
                    // The owner may be parked, waiting: it can claim this.
                    self.state.owner.unpark();
                    Job::claimable(cell)
                }
                _ => Job::new(erased),
            };
            (entry, ())
        })
    }

    /// Another handle on the same scope, for a job.
    fn duplicate(&self) -> Scope<'scope> {
        Scope { state: plain::Arc::clone(&self.state), registry: Arc::clone(&self.registry), _borrows: PhantomData }
    }
}

impl std::fmt::Debug for Scope<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scope").field("pending", &self.state.pending.load(Ordering::Relaxed)).finish_non_exhaustive()
    }
}

/// `Pool::scope` and `Spawner::scope` on `registry`; see
/// [`Pool::scope`](crate::Pool::scope).
pub(crate) fn scope<'scope, OP, R>(registry: &Arc<Registry>, op: OP) -> R
where
    OP: FnOnce(&Scope<'scope>) -> R,
{
    let helper = help::helper(registry.id);
    // A thread that does not help parks on a parker of its own.
    let own_parker = helper.is_none().then(Parker::new);
    let (owner, owner_level) = match (&helper, &own_parker) {
        // The owner's pick takes levels up to its job's, and a reserved
        // thread's no further than its bound (`help.rs`): a job beyond is
        // kept claimable, or a reserved thread that claimed a less urgent
        // job would wait for a regular worker to steal its scope's jobs.
        (Some(local), _) => (local.parker.unparker().clone(), Some(local.level().unwrap_or(0).min(local.upto()))),
        (None, Some(parker)) => (parker.unparker().clone(), None),
        (None, None) => unreachable!("a thread that does not help has a parker"),
    };
    let state = plain::Arc::new(ScopeState::new(owner, owner_level));
    let scope = Scope { state: plain::Arc::clone(&state), registry: Arc::clone(registry), _borrows: PhantomData };
    // From here until every job is done, this frame must not end.
    let guard = UnwindGuard;
    let outcome = panic::catch_unwind(AssertUnwindSafe(|| op(&scope)));
    state.complete();
    match (&helper, &own_parker) {
        (Some(local), _) => help::wait_until(local, None, || state.is_done(), || state.claim_one(local)),
        (None, Some(parker)) => help::block_until(parker, || state.is_done()),
        (None, None) => unreachable!("a thread that does not help has a parker"),
    }
    guard.defuse();
    let job_panic = lock(&state.panic).take();
    match outcome {
        Err(payload) => {
            if let Some(other) = job_panic {
                drop_payload(other);
            }
            panic::resume_unwind(payload)
        }
        Ok(value) => match job_panic {
            Some(payload) => {
                // Dropped before the unwind, where its destructor's panic
                // would abort the process.
                super::join::drop_unwanted(Ok(value));
                panic::resume_unwind(payload)
            }
            None => value,
        },
    }
}
