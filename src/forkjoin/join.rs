//! `join`: run two closures, potentially in parallel, and wait for both.
//!
//! On a worker of a pool, inside a job of level `l`, `join(a, b)` pushes
//! `b` as a *fork half* onto the worker's fork deque for `l`
//! (`queue/local.rs`), wakes a sleeper that may take it if there is one
//! (nothing more when none is idle), runs `a` on the calling thread, then
//! pops the newest fork half back. Joins nest on the thread's stack and
//! peers steal the oldest half first, so that pop returns `b` itself, not
//! stolen, or nothing: `b` was stolen and runs, or ran, on another worker.
//! Then the worker waits for it by helping (`runtime/help.rs`). A stolen
//! half is a job of level `l` like any other: the pick rule takes it only
//! when no more urgent job waits.
//!
//! Costs per join: no allocation (the half lives on the joiner's stack and
//! the fork deque holds a two-word entry to it, `job/erase.rs`; a peer that
//! steals it wraps it into a job, one allocation then), a push and a pop on
//! a deque only this worker pushes to, and a look for a sleeper (one load,
//! no fence, when none sleeps: `Sleep::hint_at`). The value of `b` comes
//! back through a [`Slot`] on the joiner's stack. A half popped back runs
//! as a plain call, not counted as a job in `Metrics` (when one is,
//! `queue/local.rs`, "Fork halves").
//!
//! If `a` or `b` panics, the join still waits for the other half, then
//! resumes the panic (the first closure's if both panicked). A half
//! cancelled by `shutdown_now` before it started is reported the same way,
//! with a panic saying so.
//!
//! The approach follows rayon-core's `join` (a stack-allocated job, popped
//! back when not stolen, a latch the thief sets); the pool's own parts are
//! the per-level fork deques and the waiting rule of `runtime/help.rs`.

use std::panic::{self, AssertUnwindSafe};
use std::thread;

use crate::job::drop_payload;
use crate::job::erase::{Slot, StackPart, UnwindGuard};
use crate::job::task::{KeptPanic, Payload};
use crate::runtime::help;
use crate::runtime::registry::Registry;
use crate::runtime::worker::{self, Local};
use crate::sync::Ordering;
use crate::sync::Unparker;
use crate::sync::plain::AtomicBool;

/// The panic message of a join whose second half `shutdown_now` cancelled.
pub(crate) const HALF_CANCELLED: &str =
    "priopool::join: the second closure was cancelled by shutdown_now before it ran";

/// Runs `a` and `b`, potentially in parallel, and returns both values.
///
/// Inside a job of a pool (on one of its workers, at the job's priority
/// level), `b` is offered to the pool's idle workers while the calling
/// worker runs `a`; if none took `b` by then, the caller runs it too.
/// While it waits for a `b` that another worker took, the calling worker
/// runs other jobs, but never a job less urgent than its own: see the
/// [crate docs](crate#jobs-that-wait-for-jobs) for the exact rule.
///
/// Outside any pool's worker, `join` runs `a` and then `b` on the calling
/// thread. To start fork-join work from outside, use [`Pool::join`] or
/// [`Pool::scope`](crate::Pool::scope).
///
/// The closures may borrow from the caller's stack: `join` returns only
/// when both have finished.
///
/// # Panics
///
/// If `a` or `b` panics, `join` waits for the other one and then resumes
/// the panic (`a`'s if both panicked). If `shutdown_now` cancels `b`
/// before it started, `join` panics saying so.
///
/// ```
/// use priopool::{Pool, Priority};
///
/// fn sum(v: &[u64]) -> u64 {
///     if v.len() <= 1024 {
///         return v.iter().sum();
///     }
///     let (left, right) = v.split_at(v.len() / 2);
///     let (l, r) = priopool::join(|| sum(left), || sum(right));
///     l + r
/// }
///
/// let pool = Pool::builder().workers(2).build()?;
/// let data: Vec<u64> = (0..100_000).collect();
/// let total = pool.submit(Priority::LOW, move || sum(&data))?.join()?;
/// assert_eq!(total, 99_999 * 100_000 / 2);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// [`Pool::join`]: crate::Pool::join
pub fn join<A, B, RA, RB>(a: A, b: B) -> (RA, RB)
where
    A: FnOnce() -> RA,
    B: FnOnce() -> RB + Send,
    RB: Send,
{
    match worker::current_worker() {
        Some(local) => {
            let level = local.level().unwrap_or(local.registry.levels.len() - 1);
            fork(&local, level, a, b)
        }
        None => sequential(a, b),
    }
}

/// Runs `a`, then `b`, on the calling thread; both run even if `a` panics.
pub(crate) fn sequential<A, B, RA, RB>(a: A, b: B) -> (RA, RB)
where
    A: FnOnce() -> RA,
    B: FnOnce() -> RB,
{
    let ra = panic::catch_unwind(AssertUnwindSafe(a));
    let rb = panic::catch_unwind(AssertUnwindSafe(b));
    finish(ra, rb)
}

/// Both values, or the first panic. The other side's value or payload is
/// dropped before the panic is resumed, under `catch_unwind`: dropped
/// during the unwind, a destructor's panic would abort the process.
#[inline]
pub(crate) fn finish<RA, RB>(ra: thread::Result<RA>, rb: thread::Result<RB>) -> (RA, RB) {
    match (ra, rb) {
        (Ok(ra), Ok(rb)) => (ra, rb),
        (ra, rb) => resume_first(ra, rb),
    }
}

/// [`finish`]'s panic path, out of line: inlined, its drops under
/// `catch_unwind` made every join about a third slower (the tree of
/// `benches/forkjoin.rs`: ×1.62 of rayon at `232359c`, ×2.03 at
/// `a806771`, which added them).
#[cold]
#[inline(never)]
fn resume_first<RA, RB>(ra: thread::Result<RA>, rb: thread::Result<RB>) -> ! {
    match (ra, rb) {
        (Err(payload), rb) => {
            drop_unwanted(rb);
            panic::resume_unwind(payload)
        }
        (Ok(ra), Err(payload)) => {
            drop_unwanted(Ok(ra));
            panic::resume_unwind(payload)
        }
        (Ok(_), Ok(_)) => unreachable!("both halves returned"),
    }
}

/// Drops a value or payload that a panic makes unwanted, catching (and
/// dropping with `drop_payload`) a panic of its destructor.
pub(crate) fn drop_unwanted<R>(outcome: thread::Result<R>) {
    match outcome {
        Ok(value) => {
            if let Err(payload) = panic::catch_unwind(AssertUnwindSafe(move || drop(value))) {
                drop_payload(payload);
            }
        }
        Err(payload) => drop_payload(payload),
    }
}

/// Where `b`'s outcome goes: the joiner's frame.
struct Done<'a, RB> {
    slot: Slot<thread::Result<RB>>,
    /// Set by the joiner when it popped the half back: then it runs the
    /// half itself and needs no wake-up.
    popped: AtomicBool,
    /// The joiner's worker's parker.
    joiner: &'a Unparker,
}

/// Hands `b`'s outcome, [put](Slot::put) in the slot, to the joiner and
/// wakes it. The joiner's frame, and `Done` in it, may be gone once the
/// slot is published, so the unparker is cloned before. It takes `Done`'s
/// parts, not `&Done`, and not the outcome: an argument's references stay
/// protected until the call returns (Tree Borrows), and the joiner may
/// touch, or free, what they point to as soon as it sees the slot full:
/// `Done`'s plain (non-`Cell`) bytes such as the `joiner` field, or what a
/// returned borrow points to (Miri caught both, `tests/miri_forkjoin.rs`).
/// The parts it gets are all atomics and cells, or live elsewhere.
fn set_done<RB>(slot: &Slot<thread::Result<RB>>, popped: &AtomicBool, joiner: &Unparker) {
    if popped.load(Ordering::Relaxed) {
        slot.publish();
    } else {
        let joiner = joiner.clone();
        slot.publish();
        joiner.unpark();
    }
}

/// `join` on worker `local`, forking `b` at `level` (see the module docs).
pub(crate) fn fork<A, B, RA, RB>(local: &Local, level: usize, a: A, b: B) -> (RA, RB)
where
    A: FnOnce() -> RA,
    B: FnOnce() -> RB + Send,
    RB: Send,
{
    let done = Done { slot: Slot::new(), popped: AtomicBool::new(false), joiner: local.parker.unparker() };
    // `b` waits in a slot of this frame, not among the half's captures:
    // the half's closure is called by value, and what it captures by value
    // stays protected until it returns under the aliasing model Miri
    // checks (Tree Borrows), past `set_done`, which lets this frame read
    // what `b` borrowed (`tests/miri_forkjoin.rs` caught it). So the half
    // captures only references to cells, which nothing forbids this frame
    // to use (and free) meanwhile, and the joiner's parker, which outlives
    // it.
    let waiting = Slot::new();
    waiting.put(b);
    waiting.publish();
    let (waiting, slot, popped, joiner) = (&waiting, &done.slot, &done.popped, done.joiner);
    // The half, on this stack: run (`true`), or dropped unrun by
    // `shutdown_now` (`false`), it fills the slot as its last act on this
    // frame. Run as a job (a peer stole it) and panicking, it then unwinds
    // with `KeptPanic`, touching nothing here, so that the run counts it as
    // panicked; its payload goes to this join.
    let half = StackPart::new(move |run: bool| {
        let b = waiting.take().unwrap_or_else(|| unreachable!("`b` is published before the half runs, once"));
        // Only this thread stores `popped`, before it runs the half itself.
        let as_job = !popped.load(Ordering::Relaxed);
        let outcome = if run {
            panic::catch_unwind(AssertUnwindSafe(b))
        } else {
            if let Err(payload) = panic::catch_unwind(AssertUnwindSafe(move || drop(b))) {
                drop_payload(payload);
            }
            Err(Box::new(HALF_CANCELLED) as Payload)
        };
        let kept = run && as_job && outcome.is_err();
        slot.put(outcome);
        set_done(slot, popped, joiner);
        if kept {
            KeptPanic::resume();
        }
    });
    // From here the frame waits for the half to run or be dropped before
    // it ends, also when `a` panics: `erase.rs`'s invariant.
    Registry::push_fork(&local.registry, local, level, half.entry());
    let guard = UnwindGuard;
    let ra = panic::catch_unwind(AssertUnwindSafe(a));
    if let Some(entry) = local.queues.pop_fork(level) {
        // `b` itself (see the module docs): the running job's own work, run
        // here as a plain call, even while `shutdown_now` aborts the pool,
        // and not counted as a job (`queue/local.rs`).
        done.popped.store(true, Ordering::Relaxed);
        entry.run();
    }
    if !done.slot.is_full() {
        help::wait_until(local, None, || done.slot.is_full(), || false);
    }
    let rb = done.slot.take();
    guard.defuse();
    finish(ra, rb.unwrap_or_else(|| unreachable!("the wait ends when the slot is full")))
}
