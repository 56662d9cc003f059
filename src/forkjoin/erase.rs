//! The crate's only `unsafe` code: what safe Rust cannot say about jobs
//! that borrow from the stack of the job or thread waiting for them.
//!
//! * [`erase`] turns a boxed job that borrows for `'a` into a `'static` one,
//!   so that it can sit in the pool's queues beside every other job.
//! * [`Slot`] hands one value from the thread that runs such a job to the
//!   thread waiting for it, without a lock.
//!
//! Both rest on one invariant, kept by their only callers, `join` and
//! `scope`: **the waiting frame does not end, by returning or by unwinding,
//! until the job has run or been dropped, and the job's last touch of
//! borrowed data (the closure's captures and the slot) happens before the
//! release store that ends the wait.** `join` waits for the half's slot to
//! be [filled](Slot::put) (`join.rs`); `scope` waits for its count of
//! unfinished jobs to reach zero (`scope.rs`); neither wait can unwind (the
//! waits catch every panic of the jobs they run, and an unexpected unwind
//! out of them aborts the process). rayon-core, crossbeam's scoped threads
//! and `std::thread::scope` rest on the same invariant.

#![allow(unsafe_code)]

use std::cell::UnsafeCell;
use std::mem;

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

/// A place for one value, filled once by the thread that runs a job and
/// emptied once by the thread that waits for it.
pub(crate) struct Slot<T> {
    value: UnsafeCell<Option<T>>,
    full: AtomicBool,
}

// SAFETY: the value is written by one thread before `full` is stored with
// `Release`, and read by one thread only after it loaded `full == true`
// with `Acquire` (see `put` and `take`): the two accesses never overlap and
// the write happens before the read. Moving the value between threads
// needs `T: Send`.
unsafe impl<T: Send> Sync for Slot<T> {}

impl<T> Slot<T> {
    pub(crate) fn new() -> Slot<T> {
        Slot { value: UnsafeCell::new(None), full: AtomicBool::new(false) }
    }

    /// Whether the value is there (`Acquire`: its write is visible).
    #[inline]
    pub(crate) fn is_full(&self) -> bool {
        self.full.load(Ordering::Acquire)
    }

    /// Stores the value. Call once per slot, from the one thread that runs
    /// (or drops) the job the slot belongs to. After this returns the slot
    /// may be gone: the waiter may have taken the value and left.
    ///
    #[inline]
    pub(crate) fn put(&self, value: T) {
        debug_assert!(!self.full.load(Ordering::Relaxed), "a fork-join slot filled twice");
        // SAFETY: no other thread reads the value before `full` is set
        // below, and no other thread writes it: the job is run or dropped
        // once, and only that run or drop calls `put`.
        unsafe { *self.value.get() = Some(value) };
        self.full.store(true, Ordering::Release);
    }

    /// Takes the value; `None` if it is not there yet (`full` not seen).
    /// Only the waiter calls this.
    pub(crate) fn take(&self) -> Option<T> {
        if !self.is_full() {
            return None;
        }
        // SAFETY: `full` was loaded `true` with `Acquire`, so the one write
        // happened before this read and no write follows it (`put` is
        // called once); only the waiter, the one thread holding the slot
        // after the job filled it, calls this, once.
        unsafe { (*self.value.get()).take() }
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
