//! The one place the crate takes its synchronisation primitives from.
//!
//! Every atomic, lock and parker that the sleep/wake protocol and the
//! shutdown state machine use is imported from here, never from `std`
//! directly, so that a model checker can later swap them for instrumented
//! versions without touching the protocols themselves.

pub(crate) use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, AtomicUsize, Ordering};
pub(crate) use std::sync::{Arc, Condvar, Mutex, MutexGuard, Weak};

pub(crate) use crossbeam_utils::sync::{Parker, Unparker};

/// Parks on `parker` until it is unparked or `deadline` passes (a worker's
/// keep-alive, see `scaling.rs`). It may also return early; callers check
/// the deadline themselves. Under a model checker, where time does not
/// pass, a stand-in may return at once.
pub(crate) fn park_until(parker: &Parker, deadline: std::time::Instant) {
    parker.park_deadline(deadline);
}

/// Locks `mutex`, ignoring poisoning.
///
/// The crate never runs user code while holding one of its own locks, so a
/// poisoned lock can only mean a bug in a panic-free critical section of
/// ours; the data behind it is still consistent, and refusing it would turn
/// one failure into many.
pub(crate) fn lock<T: ?Sized>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Waits on `condvar`, ignoring poisoning (see [`lock`]).
pub(crate) fn wait<'a, T>(condvar: &Condvar, guard: MutexGuard<'a, T>) -> MutexGuard<'a, T> {
    condvar.wait(guard).unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Waits on `condvar` for at most `timeout`, ignoring poisoning (see
/// [`lock`]). Spurious and timed-out wake-ups look alike: callers re-check.
pub(crate) fn wait_timeout<'a, T>(
    condvar: &Condvar,
    guard: MutexGuard<'a, T>,
    timeout: std::time::Duration,
) -> MutexGuard<'a, T> {
    condvar.wait_timeout(guard, timeout).unwrap_or_else(std::sync::PoisonError::into_inner).0
}
