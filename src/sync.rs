//! The one place the crate takes its synchronisation primitives from: no
//! other module imports `std::sync`, `std::thread` or crossbeam-utils'
//! parker and backoff.
//!
//! * **Modelled** (this module's top level): the atomics, locks, threads,
//!   thread-locals and parkers of the protocols the loom models explore: the
//!   pick rule's counts, sleep, lifecycle, limits, the worker set and loop,
//!   the registry and `shutdown_now`; and a job's state word with the lock
//!   and condition variable beside it (`job/state.rs`), whose races with
//!   promotion the models explore (a plain word there hides them: loom
//!   then never reorders a claim against a promotion's compare-exchange).
//!   Normally std's (and crossbeam-utils'
//!   `Parker` and `Backoff`); built with `RUSTFLAGS="--cfg loom"` they are
//!   the [loom] model checker's, so the models (`loom_tests/` and
//!   `limits::loom_models`) explore the interleavings of the *real* protocol
//!   code, not of a copy.
//! * **Plain** ([`plain`]): always std's. They serve state that no invariant
//!   of those protocols depends on: metric counters, the rest of job cells
//!   and handles (`Arc<dyn TaskCell>` needs std's unsized coercion, which
//!   loom's `Arc` lacks), the deadline timer (loom has no `Weak`), hooks,
//!   panic payloads. A plain lock inside a model is safe while nothing
//!   modelled happens under it (loom switches threads only at modelled
//!   operations), which holds for each of them but a job group's, whose
//!   pruning reads members' state words under it (`api/group.rs`; no model
//!   uses groups).
//!
//! Under loom, besides:
//!
//! * `Parker`/`Unparker` are a stand-in on loom's `Mutex<bool>` and
//!   `Condvar` with the same promise: an `unpark` before `park` is not lost.
//! * Time does not pass: [`park_until`] returns at once and [`has_passed`]
//!   says every deadline has passed (a worker parked with a keep-alive times
//!   out unless a waker took it off the sleeper list first; the models
//!   explore both orders), [`sleep_for`] yields, a bounded condition-variable
//!   wait never times out, and [`is_finished`] says every thread has
//!   finished (so `shutdown_timeout` joins like `shutdown`).
//! * `Backoff` has one round: a snooze yields to the model's scheduler and
//!   completes it, so an idle worker spins once before the sleep protocol.
//! * The deadline timer refuses to start (`runtime/timer.rs`): no model
//!   uses deadlines.
//!
//! [loom]: https://docs.rs/loom/0.7

#[cfg(not(loom))]
pub(crate) use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering, fence};
#[cfg(not(loom))]
pub(crate) use std::sync::{Arc, Condvar, Mutex};
#[cfg(not(loom))]
pub(crate) use std::{thread, thread_local};

#[cfg(not(loom))]
pub(crate) use crossbeam_utils::Backoff;
#[cfg(not(loom))]
pub(crate) use crossbeam_utils::sync::{Parker, Unparker};

#[cfg(not(loom))]
pub(crate) use self::plain::{lock, wait_for};

#[cfg(loom)]
pub(crate) use loom::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering, fence};
#[cfg(loom)]
pub(crate) use loom::sync::{Arc, Condvar, Mutex};
#[cfg(loom)]
pub(crate) use loom::{thread, thread_local};

#[cfg(loom)]
pub(crate) use self::model::{Backoff, Parker, Unparker, lock, wait_for};

/// `lock`, `wait` and `wait_for` for the `Mutex`, `MutexGuard` and
/// `Condvar` in scope: std's in [`plain`], loom's in the model.
///
/// They ignore poisoning. The crate never runs user code while holding one
/// of its own locks, so a poisoned lock can only mean a bug in a panic-free
/// critical section of ours; the data behind it is still consistent, and
/// refusing it would turn one failure into many.
macro_rules! lock_helpers {
    () => {
        /// Locks `mutex`, ignoring poisoning.
        pub(crate) fn lock<T: ?Sized>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
            mutex.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
        }

        /// Waits on `condvar`, ignoring poisoning.
        pub(crate) fn wait<'a, T>(condvar: &Condvar, guard: MutexGuard<'a, T>) -> MutexGuard<'a, T> {
            condvar.wait(guard).unwrap_or_else(std::sync::PoisonError::into_inner)
        }

        /// Waits on `condvar` for at most `left` (`None`: until notified),
        /// ignoring poisoning. Spurious, notified and timed-out wake-ups look
        /// alike: callers re-check, as [`wait_until`](super::wait_until) does.
        pub(crate) fn wait_for<'a, T>(
            condvar: &Condvar,
            guard: MutexGuard<'a, T>,
            left: Option<std::time::Duration>,
        ) -> MutexGuard<'a, T> {
            match left {
                None => wait(condvar, guard),
                Some(left) => condvar.wait_timeout(guard, left).unwrap_or_else(std::sync::PoisonError::into_inner).0,
            }
        }
    };
}

/// The standard library's primitives, never loom's: for the state outside
/// the modelled protocols (see the module docs).
pub(crate) mod plain {
    pub(crate) use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize};
    pub(crate) use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError, Weak};
    pub(crate) use std::{thread, thread_local};

    lock_helpers!();
}

/// The one deadline-bounded wait of the crate: calls `block` until `ready`
/// holds or `deadline` passes (`None`: no deadline), and returns `state`
/// with whether `ready` held. `block(state, left)` blocks for at most
/// `left` (`None`: until woken) and may return early for any reason;
/// `ready` is checked before every block and after the last one. `state` is
/// what the wait needs to hold across blocks: a lock guard, or `()`.
pub(crate) fn wait_until<S>(
    mut state: S,
    deadline: Option<std::time::Instant>,
    mut ready: impl FnMut(&mut S) -> bool,
    mut block: impl FnMut(S, Option<std::time::Duration>) -> S,
) -> (S, bool) {
    loop {
        if ready(&mut state) {
            return (state, true);
        }
        let left = match deadline {
            None => None,
            Some(deadline) => match deadline.checked_duration_since(std::time::Instant::now()) {
                Some(left) if !left.is_zero() => Some(left),
                _ => return (state, false),
            },
        };
        state = block(state, left);
    }
}

/// Tries `ready` while backing off (`Backoff::snooze`: spinning, then
/// yielding, a few microseconds in all), never past `deadline`; says
/// whether it held. crossbeam's channels do the same before they park
/// (std's spin more briefly): a wait whose end comes meanwhile costs no
/// park and no wake-up.
/// Under loom it gives up at once: the park loop after it checks `ready`
/// first anyway, and every try more multiplies a model's interleavings.
pub(crate) fn spin_until(deadline: Option<std::time::Instant>, mut ready: impl FnMut() -> bool) -> bool {
    if cfg!(loom) {
        return false;
    }
    let backoff = Backoff::new();
    loop {
        if ready() {
            return true;
        }
        if backoff.is_completed() || deadline.is_some_and(has_passed) {
            return false;
        }
        backoff.snooze();
    }
}

/// Parks on `parker` until it is unparked or `deadline` passes (a worker's
/// keep-alive, see `limits.rs`). It may also return early; callers check
/// the deadline with [`has_passed`]. Under loom, where time does not pass,
/// it returns at once and leaves any token in the parker (as a real park
/// that times out just before an `unpark` does).
pub(crate) fn park_until(parker: &Parker, deadline: std::time::Instant) {
    #[cfg(not(loom))]
    parker.park_deadline(deadline);
    #[cfg(loom)]
    let _ = (parker, deadline);
}

/// Whether `deadline` has passed. Under loom every deadline has: see the
/// module docs.
pub(crate) fn has_passed(deadline: std::time::Instant) -> bool {
    #[cfg(not(loom))]
    return std::time::Instant::now() >= deadline;
    #[cfg(loom)]
    {
        let _ = deadline;
        true
    }
}

/// Sleeps for `pause` (a back-off between retries). Under loom, where time
/// does not pass, it yields to the model's scheduler instead.
pub(crate) fn sleep_for(pause: std::time::Duration) {
    #[cfg(not(loom))]
    std::thread::sleep(pause);
    #[cfg(loom)]
    {
        let _ = pause;
        loom::thread::yield_now();
    }
}

/// Whether the thread of `handle` has finished, so that joining it will not
/// block. Under loom it says yes: a join in a model waits as long as needed
/// (time does not pass), so a bounded join behaves like an unbounded one.
pub(crate) fn is_finished<T>(handle: &thread::JoinHandle<T>) -> bool {
    #[cfg(not(loom))]
    return handle.is_finished();
    #[cfg(loom)]
    {
        let _ = handle;
        true
    }
}

/// An `Arc<[T]>` holding `items` (loom's `Arc` has no `From<Vec<T>>`).
pub(crate) fn arc_slice<T>(items: Vec<T>) -> Arc<[T]> {
    #[cfg(not(loom))]
    return Arc::from(items);
    #[cfg(loom)]
    return Arc::from_std(std::sync::Arc::from(items));
}

/// Tells the CPU (or, under loom, the model's scheduler) that the caller is
/// spinning on another thread's progress.
pub(crate) fn spin_loop() {
    #[cfg(not(loom))]
    std::hint::spin_loop();
    #[cfg(loom)]
    loom::hint::spin_loop();
}

/// Stand-ins for the primitives loom does not provide, and the lock helpers
/// for loom's mutex and condition variable.
#[cfg(loom)]
mod model {
    use loom::sync::{Arc, Condvar, Mutex, MutexGuard};

    lock_helpers!();

    /// Blocks a thread until its [`Unparker`] is called; a token left by an
    /// `unpark` that came first makes the next `park` return at once.
    pub(crate) struct Parker {
        unparker: Unparker,
    }

    /// Wakes the thread that owns the matching [`Parker`].
    #[derive(Clone)]
    pub(crate) struct Unparker {
        inner: Arc<(Mutex<bool>, Condvar)>,
    }

    impl Parker {
        pub(crate) fn new() -> Parker {
            Parker { unparker: Unparker { inner: Arc::new((Mutex::new(false), Condvar::new())) } }
        }

        /// Blocks until the token is set, then consumes it.
        pub(crate) fn park(&self) {
            let (token, condvar) = &*self.unparker.inner;
            let mut token = lock(token);
            while !*token {
                token = wait(condvar, token);
            }
            *token = false;
        }

        pub(crate) fn unparker(&self) -> &Unparker {
            &self.unparker
        }
    }

    impl Unparker {
        /// Sets the token and wakes the parked thread, if it is parked.
        pub(crate) fn unpark(&self) {
            let (token, condvar) = &*self.inner;
            *lock(token) = true;
            condvar.notify_one();
        }
    }

    /// Backoff for a model: one round, a yield. A worker whose pick found
    /// nothing spins once and picks again before it goes to the sleep
    /// protocol, so the models cover a job pushed while it spins.
    pub(crate) struct Backoff(std::cell::Cell<bool>);

    impl Backoff {
        pub(crate) fn new() -> Backoff {
            Backoff(std::cell::Cell::new(false))
        }

        pub(crate) fn reset(&self) {
            self.0.set(false);
        }

        pub(crate) fn snooze(&self) {
            self.0.set(true);
            loom::thread::yield_now();
        }

        pub(crate) fn spin(&self) {
            loom::thread::yield_now();
        }

        pub(crate) fn is_completed(&self) -> bool {
            self.0.get()
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    /// `spin_until` answers what `ready` said, stops at the first `true`,
    /// gives up after a bounded number of tries, and tries once even when
    /// its deadline has passed (a join whose job ended must not time out).
    #[test]
    fn spin_until_answers_ready_stops_at_it_and_tries_once_past_its_deadline() {
        let mut tries = 0;
        assert!(spin_until(None, || {
            tries += 1;
            tries == 3
        }));
        assert_eq!(tries, 3, "no try after ready held");
        let mut tries = 0;
        assert!(!spin_until(None, || {
            tries += 1;
            false
        }));
        assert!(tries > 1 && tries < 1_000, "a few tries, then give up: {tries}");
        let mut tries = 0;
        assert!(spin_until(Some(std::time::Instant::now()), || {
            tries += 1;
            true
        }));
        assert_eq!(tries, 1);
    }
}
