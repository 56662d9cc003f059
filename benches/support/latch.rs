//! Completion counting without sleeps.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex, PoisonError};

/// Counts jobs down to zero; `wait` blocks until the count reaches zero.
///
/// `const`-constructible so a scenario can use a `static` one: a job that
/// calls `STATIC.count_down()` captures nothing, which keeps "empty" jobs
/// as small as a job can be (zero-sized closures).
///
/// Ordering: `count_down` decrements with `AcqRel`, so everything each
/// job did happens-before the decrement that reaches zero; that thread then
/// sets `done` under the mutex, and `wait` reads it under the same mutex.
pub struct CountLatch {
    left: AtomicUsize,
    done: Mutex<bool>,
    zero: Condvar,
}

impl CountLatch {
    /// A latch already at zero; call [`reset`](Self::reset) before use.
    pub const fn new() -> Self {
        CountLatch { left: AtomicUsize::new(0), done: Mutex::new(true), zero: Condvar::new() }
    }

    /// Arms the latch for `n` count-downs. Only call it when no job of a
    /// previous round can still count down.
    pub fn reset(&self, n: usize) {
        assert!(n > 0, "a latch for zero jobs would never open");
        *self.done.lock().unwrap_or_else(PoisonError::into_inner) = false;
        self.left.store(n, Ordering::Release);
    }

    /// Records one finished job.
    pub fn count_down(&self) {
        if self.left.fetch_sub(1, Ordering::AcqRel) == 1 {
            *self.done.lock().unwrap_or_else(PoisonError::into_inner) = true;
            self.zero.notify_all();
        }
    }

    /// Blocks until the count reaches zero.
    pub fn wait(&self) {
        let mut done = self.done.lock().unwrap_or_else(PoisonError::into_inner);
        while !*done {
            done = self.zero.wait(done).unwrap_or_else(PoisonError::into_inner);
        }
    }
}

/// Holds `n` workers inside gate jobs until [`open`](Self::open).
pub struct Gate {
    /// (workers inside, open)
    state: Mutex<(usize, bool)>,
    changed: Condvar,
}

impl Gate {
    /// A closed gate with nobody inside.
    pub fn new() -> Self {
        Gate { state: Mutex::new((0, false)), changed: Condvar::new() }
    }

    /// Body of a gate job: announce arrival, then block until opened.
    pub fn enter(&self) {
        let mut st = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        st.0 += 1;
        self.changed.notify_all();
        while !st.1 {
            st = self.changed.wait(st).unwrap_or_else(PoisonError::into_inner);
        }
    }

    /// Blocks until `n` gate jobs are inside.
    pub fn wait_inside(&self, n: usize) {
        let mut st = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        while st.0 < n {
            st = self.changed.wait(st).unwrap_or_else(PoisonError::into_inner);
        }
    }

    /// Lets every gate job, present and future, through.
    pub fn open(&self) {
        self.state.lock().unwrap_or_else(PoisonError::into_inner).1 = true;
        self.changed.notify_all();
    }
}
