//! The one place the crate takes its synchronisation primitives from.
//!
//! Every atomic, lock and parker that the sleep/wake protocol and the
//! shutdown state machine use is imported from here, never from `std`
//! directly, so that a model checker can later swap them for instrumented
//! versions without touching the protocols themselves.

pub(crate) use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
pub(crate) use std::sync::{Arc, Mutex, MutexGuard};

pub(crate) use crossbeam_utils::sync::{Parker, Unparker};

/// Locks `mutex`, ignoring poisoning.
///
/// The crate never runs user code while holding one of its own locks, so a
/// poisoned lock can only mean a bug in a panic-free critical section of
/// ours; the data behind it is still consistent, and refusing it would turn
/// one failure into many.
pub(crate) fn lock<T: ?Sized>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}
