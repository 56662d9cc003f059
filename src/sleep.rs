//! How idle workers fall asleep and how a new job wakes one of them.
//!
//! # States
//!
//! | state    | in `sleepers` | what the worker does                          |
//! |----------|---------------|-----------------------------------------------|
//! | active   | no            | runs a job or searches with the pick rule     |
//! | spinning | no            | a bounded number of further searches (µs)     |
//! | sleepy   | yes           | re-checks for work once, after registering    |
//! | asleep   | yes           | blocked in [`Parker::park`]; uses no CPU      |
//!
//! A waker moves a worker from `sleepy`/`asleep` back to `active` by taking
//! it off the list and unparking it. A `sleepy` worker that finds work on its
//! re-check takes itself off the list. An `asleep` worker with a keep-alive
//! deadline (dynamic pools, `scaling.rs`) whose deadline passes takes itself
//! off the list too, and may then retire.
//!
//! # The protocol
//!
//! Falling asleep (worker):
//! 1. Lock `sleepers`, push `(id, unparker)`, increment `sleeping` (SeqCst),
//!    unlock.
//! 2. Re-check: is any level's queued count non-zero, or is the pool
//!    drained for shutdown? (SeqCst loads.) If so, take itself off the list
//!    (if a waker has not already) and go back to work.
//! 3. Park. After waking, take itself off the list if it is still on it
//!    (a spurious wake-up) and go back to work.
//!
//! Falling asleep with a deadline (a worker above a dynamic pool's minimum,
//! see `scaling.rs`): steps 1 and 2 as above, then
//! 3. Park until woken or the deadline passes. Then, under the lock: if a
//!    waker took the worker off the list, the wake-up is its to honour: go
//!    back to work (report [`Wake::Work`]) even if the deadline has passed,
//!    never retire. Else, if the deadline has passed, take itself off the
//!    list and report [`Wake::TimedOut`]. Else (an early return) park again.
//!
//! Waking (after a push):
//! 1. Push the job and count it in (`Levels::count_in`, SeqCst).
//! 2. Load `sleeping` (SeqCst). If zero, done: no lock on the fast path.
//! 3. Otherwise lock `sleepers`, pop the most recently registered worker
//!    (its cache is warmest), decrement `sleeping`, unlock, unpark it.
//!
//! # Why no wake-up is lost
//!
//! Step 1 of each side is a SeqCst write and step 2 a SeqCst read of the
//! other side's location (the store-buffering, or Dekker, pattern): in the
//! single total order of SeqCst operations, either the sleeper's re-check
//! comes after the job was counted in, and the sleeper does not sleep; or
//! the waker's load comes after the sleeper registered, and the waker finds
//! it on the list (it was pushed under the lock before `sleeping` was
//! raised) and unparks it. A `Parker` keeps the token of an `unpark` that
//! arrives before `park`, so the window between step 2 and step 3 is safe.
//!
//! Invariant: *whenever a job is queued, at least one worker is active,
//! spinning or sleepy, or a waker is about to unpark one.* A woken worker
//! searches until the pick rule reports every level empty, so one wake-up
//! per push is enough; waking only one avoids a thundering herd.
//!
//! Shutdown uses the same argument with the drained flag in place of the
//! queued counts ([`Sleep::wake_all`] after the last job finishes).
//!
//! The design follows the shape of rayon-core's sleep module (an idle
//! thread announces itself, then re-checks before blocking) with a plain
//! mutex-protected list of sleepers in place of rayon's packed counters: the
//! lock is only taken when a worker is about to block or one must be woken.

use std::time::Instant;

use crate::sync::{AtomicUsize, Mutex, Ordering, Parker, Unparker, lock, park_until};

/// How a [`Sleep::sleep`] ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Wake {
    /// Go back to work: there was work on the re-check, a waker took the
    /// worker off the list, or the park ended without a deadline.
    Work,
    /// The deadline passed with the worker still on the list; it is off the
    /// list now, and no waker counted on it.
    TimedOut,
}

/// The registry of sleeping workers.
pub(crate) struct Sleep {
    /// How many workers are on `sleepers`; changed only under its lock, read
    /// without it by wakers as the fast-path check.
    sleeping: AtomicUsize,
    /// Registered sleepers: worker id and how to wake it. LIFO.
    sleepers: Mutex<Vec<(usize, Unparker)>>,
}

impl Sleep {
    pub(crate) fn new() -> Sleep {
        Sleep { sleeping: AtomicUsize::new(0), sleepers: Mutex::new(Vec::new()) }
    }

    /// Puts worker `id` to sleep on `parker` unless `has_work` says, after
    /// the worker is registered, that there is something to do. With a
    /// `deadline`, the sleep can end in [`Wake::TimedOut`]; without one it
    /// always ends in [`Wake::Work`].
    pub(crate) fn sleep(
        &self,
        id: usize,
        parker: &Parker,
        deadline: Option<Instant>,
        has_work: impl Fn() -> bool,
    ) -> Wake {
        {
            let mut sleepers = lock(&self.sleepers);
            sleepers.push((id, parker.unparker().clone()));
            self.sleeping.fetch_add(1, Ordering::SeqCst);
        }
        if has_work() {
            self.deregister(id);
            return Wake::Work;
        }
        let Some(deadline) = deadline else {
            parker.park();
            self.deregister(id);
            return Wake::Work;
        };
        loop {
            park_until(parker, deadline);
            let mut sleepers = lock(&self.sleepers);
            let Some(pos) = sleepers.iter().position(|&(i, _)| i == id) else {
                return Wake::Work;
            };
            if Instant::now() >= deadline {
                sleepers.remove(pos);
                self.sleeping.fetch_sub(1, Ordering::SeqCst);
                return Wake::TimedOut;
            }
        }
    }

    /// Takes `id` off the list if no waker did. A waker that already took
    /// it has left a token in its parker; the next `park` then returns at
    /// once and the worker searches one extra time, which is harmless.
    fn deregister(&self, id: usize) {
        let mut sleepers = lock(&self.sleepers);
        if let Some(pos) = sleepers.iter().position(|&(i, _)| i == id) {
            sleepers.remove(pos);
            self.sleeping.fetch_sub(1, Ordering::SeqCst);
        }
    }

    /// Wakes one sleeping worker, if any, and says whether it did. Call
    /// after counting in and pushing a job.
    pub(crate) fn wake_one(&self) -> bool {
        if self.sleeping.load(Ordering::SeqCst) == 0 {
            return false;
        }
        let woken = {
            let mut sleepers = lock(&self.sleepers);
            let woken = sleepers.pop();
            if woken.is_some() {
                self.sleeping.fetch_sub(1, Ordering::SeqCst);
            }
            woken
        };
        match woken {
            Some((_, unparker)) => {
                unparker.unpark();
                true
            }
            None => false,
        }
    }

    /// Wakes every sleeping worker (shutdown).
    pub(crate) fn wake_all(&self) {
        let woken = {
            let mut sleepers = lock(&self.sleepers);
            self.sleeping.fetch_sub(sleepers.len(), Ordering::SeqCst);
            std::mem::take(&mut *sleepers)
        };
        for (_, unparker) in woken {
            unparker.unpark();
        }
    }
}
