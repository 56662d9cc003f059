//! The crate's only `unsafe` code: what safe Rust cannot say about jobs
//! that borrow from the stack of the job or thread waiting for them.
//!
//! * [`erase`] turns a boxed job that borrows for `'a` into a `'static` one,
//!   so that it can sit in the pool's queues beside every other job.
//! * [`StackPart`] is a job that lives on its waiter's stack (a `join`'s
//!   fork half), reached from the queues through a [`PartRef`]: no
//!   allocation unless a peer steals it.
//! * [`Slot`] hands one value from the thread that runs such a job to the
//!   thread waiting for it, without a lock.
//!
//! Both rest on one invariant, kept by their only callers, `join` and
//! `scope`: **the waiting frame does not end, by returning or by unwinding,
//! until the job has run or been dropped, and the job's last touch of
//! borrowed data (the closure's captures and the slot) happens before the
//! release store that ends the wait**, from a frame that does not hold
//! the captures by value: a by-value argument's references (a closure's
//! captures included) stay protected until its call returns, under the
//! aliasing model Miri checks, so a wait ended inside such a call lets the
//! waiter touch data still protected for the job (`join.rs` keeps `b` in a
//! slot and [puts](Slot::put) `b`'s outcome before it publishes it,
//! `scope.rs` runs its jobs through a box). `join` waits for the half's
//! slot to be [published](Slot::publish) (`join.rs`); `scope` waits for
//! its count of unfinished jobs to reach zero (`scope.rs`); neither wait
//! can unwind (the waits catch every panic of the jobs they run, and an
//! unexpected unwind out of them aborts the process). rayon-core,
//! crossbeam's scoped threads and `std::thread::scope` rest on the same
//! invariant.
//!
//! For a [`StackPart`], "the job has run or been dropped" means its one
//! [`PartRef`] was run or dropped: either calls the part's closure once
//! (with `true`, or with `false` for "cancelled unrun"), and the closure's
//! last act on the part is the release store that ends the wait (a half
//! that panicked as a job of its own then unwinds with a payload of its
//! own, touching nothing of the part: `KeptPanic` in `job/task.rs`). No
//! reference to the part is held while the closure runs, so none dangles
//! once it has ended the wait (the approach of rayon-core's `JobRef`).

#![allow(unsafe_code)]

use std::cell::{Cell, UnsafeCell};
use std::mem;
use std::ptr::NonNull;

use crate::sync::Ordering;
use crate::sync::plain::AtomicBool;

/// A job that borrows for `'a`.
pub(crate) type Borrowing<'a> = Box<dyn FnOnce() + Send + 'a>;

/// A job the queues can hold.
pub(crate) type Erased = Box<dyn FnOnce() + Send + 'static>;

/// Forgets the lifetime `'a` of `job`'s borrows.
///
/// The caller must keep what `job` borrows alive until it has run or been
/// dropped (see the module docs): that is, wait for it.
pub(crate) fn erase(job: Borrowing<'_>) -> Erased {
    // SAFETY: only the lifetime bound of the trait object changes; layout
    // and vtable are the same. `join` and `scope`, the only callers, do not
    // let the frame that owns the borrowed data end before the job has run
    // or been dropped (the module's invariant), so the job never touches
    // borrowed data after `'a` ends.
    unsafe { mem::transmute::<Borrowing<'_>, Erased>(job) }
}

/// A job on its waiter's stack: a closure called once, with `true` to run
/// it or `false` when its entry is dropped unrun.
pub(crate) struct StackPart<F> {
    job: UnsafeCell<Option<F>>,
    /// Whether the part's one [`PartRef`] was made (the owner's flag).
    referenced: Cell<bool>,
}

impl<F: FnOnce(bool) + Send> StackPart<F> {
    pub(crate) fn new(job: F) -> StackPart<F> {
        StackPart { job: UnsafeCell::new(Some(job)), referenced: Cell::new(false) }
    }

    /// The part's queue entry. The caller must not let the part's frame end
    /// until the entry has been run or dropped (the module's invariant).
    ///
    /// # Panics
    ///
    /// On a second call: a part has one entry.
    pub(crate) fn entry(&self) -> PartRef {
        assert!(!self.referenced.replace(true), "a stack part has one entry");
        PartRef { part: NonNull::from(self).cast(), call: StackPart::<F>::call }
    }

    /// Takes the closure out of the part at `part` and calls it.
    ///
    /// # Safety
    ///
    /// `part` points at a live `StackPart<F>`, and this is called once per
    /// part, by its `PartRef`.
    unsafe fn call(part: NonNull<()>, run: bool) {
        let part = part.cast::<StackPart<F>>().as_ptr();
        // SAFETY: the part is alive (the waiter does not end its frame
        // before the closure's last act on it) and its `job` is touched by nobody
        // else: the owner stops touching it once it made the entry, and the
        // entry is consumed by its one call. No reference outlives this
        // statement, so none dangles once the closure ends the wait.
        let job = unsafe { (*UnsafeCell::raw_get(&raw const (*part).job)).take() };
        if let Some(job) = job {
            job(run);
        }
    }
}

/// The queue entry of a [`StackPart`], its lifetime erased: running it or
/// dropping it calls the part's closure, once.
pub(crate) struct PartRef {
    part: NonNull<()>,
    call: unsafe fn(NonNull<()>, bool),
}

// SAFETY: the entry only calls the part's closure, which is `Send`, once
// (see `StackPart::call`), on whichever thread runs or drops the entry.
unsafe impl Send for PartRef {}

impl PartRef {
    /// Runs the part.
    pub(crate) fn run(self) {
        let (part, call) = (self.part, self.call);
        mem::forget(self);
        // SAFETY: the entry is consumed here (forgotten, so its drop does
        // not call again), and the part is alive (`StackPart::entry`).
        unsafe { call(part, true) }
    }
}

impl Drop for PartRef {
    fn drop(&mut self) {
        // SAFETY: as in `run`: a dropped entry was not run.
        unsafe { (self.call)(self.part, false) }
    }
}

/// A place for one value, filled once by one thread and emptied once by
/// one thread, the same or another: the outcome of a `join`'s half on its
/// way to the joiner, and the half's closure on its way from the joiner to
/// whoever runs or drops the half (`join.rs`).
///
/// Every byte of it, padding included, is inside one `UnsafeCell`. The
/// filler's `&Slot` (an argument, protected until its call returns) may
/// outlive the slot: the waiter may free its frame as soon as it sees the
/// slot full. Under the aliasing model Miri checks, freeing memory under a
/// live protector is undefined behaviour except for bytes inside an
/// `UnsafeCell`; with the value and the flag as two fields, the padding
/// between them was such a byte (Miri with Tree Borrows caught it,
/// `tests/miri_forkjoin.rs`).
pub(crate) struct Slot<T>(UnsafeCell<SlotCells<T>>);

struct SlotCells<T> {
    value: Option<T>,
    full: AtomicBool,
}

// SAFETY: the value is written once, by one thread, before `full` is
// stored with `Release`, and read once, by one thread, only after it
// loaded `full == true` with `Acquire` (see `put`, `publish` and `take`):
// the two accesses never overlap and the write happens before the read.
// `full` is only ever reached through shared references, as an atomic.
// Moving the value between threads needs `T: Send`.
unsafe impl<T: Send> Sync for Slot<T> {}

impl<T> Slot<T> {
    pub(crate) fn new() -> Slot<T> {
        Slot(UnsafeCell::new(SlotCells { value: None, full: AtomicBool::new(false) }))
    }

    /// The flag, shared by both threads.
    #[inline]
    fn full(&self) -> &AtomicBool {
        // SAFETY: the cell is never reached mutably as a whole: `put` and
        // `take` write and read `value` through the raw pointer's field
        // place only, so a shared reference to the other field, `full`,
        // aliases no mutable one.
        unsafe { &(*self.0.get()).full }
    }

    /// Whether the value is there (`Acquire`: its write is visible).
    #[inline]
    pub(crate) fn is_full(&self) -> bool {
        self.full().load(Ordering::Acquire)
    }

    /// Stores the value, not yet visible to the taker: [`publish`] makes
    /// it so. Call once per slot.
    ///
    /// Two calls, not one, because `value` is an argument: its references
    /// stay protected until this returns under the aliasing model Miri
    /// checks (Tree Borrows), so a `put` that also ended the wait would let
    /// the taker touch, or free, what the value borrows while they still
    /// are (`tests/miri_forkjoin.rs` caught it, a half that returns a
    /// borrow of the joiner's stack).
    ///
    /// [`publish`]: Slot::publish
    #[inline]
    pub(crate) fn put(&self, value: T) {
        debug_assert!(!self.full().load(Ordering::Relaxed), "a fork-join slot filled twice");
        // SAFETY: no other thread reads the value before `full` is set
        // (`publish`), and no other thread writes it: `put` is called once
        // per slot (in `join.rs`: by the joiner before it makes the half's
        // entry, and by the half's one run or drop). The write goes through
        // the field's place, creating no reference to the cell.
        unsafe { (*self.0.get()).value = Some(value) };
    }

    /// Makes the value [`put`](Slot::put) before visible to the taker
    /// (`Release`). After this returns the slot may be gone: the taker may
    /// have taken the value and left.
    #[inline]
    pub(crate) fn publish(&self) {
        self.full().store(true, Ordering::Release);
    }

    /// Takes the value; `None` if it is not there yet (`full` not seen).
    /// Call it from one thread only: the joiner for the outcome, the
    /// half's run or drop for the closure.
    pub(crate) fn take(&self) -> Option<T> {
        if !self.is_full() {
            return None;
        }
        // SAFETY: `full` was loaded `true` with `Acquire`, so the one write
        // happened before this read and no write follows it (`put` is
        // called once, before `publish`); one thread takes, once (the
        // joiner, or the half's one run or drop). The read goes through the
        // field's place, as in `put`.
        unsafe { (*self.0.get()).value.take() }
    }
}

/// Aborts the process if dropped while the thread unwinds: held by a frame
/// that waits for jobs borrowing from it, across code that is not meant to
/// unwind, so that a bug there cannot end the frame while a job still
/// borrows from it. [`UnwindGuard::defuse`] it once the wait is over.
pub(crate) struct UnwindGuard;

impl UnwindGuard {
    /// The wait is over: nothing borrows from the frame any more.
    pub(crate) fn defuse(self) {
        mem::forget(self);
    }
}

impl Drop for UnwindGuard {
    fn drop(&mut self) {
        eprintln!("priopool: a fork-join wait unwound while jobs still borrow from its frame; aborting");
        std::process::abort();
    }
}
