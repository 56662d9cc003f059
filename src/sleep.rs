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
//! deadline (dynamic pools, `limits.rs`) whose deadline passes takes itself
//! off the list too, and may then retire.
//!
//! # The protocol
//!
//! Falling asleep (worker):
//! 1. Lock `sleepers`, push `(id, unparker)`, increment `sleeping`, unlock.
//! 2. Re-check: is any level's queued count non-zero, or is the pool
//!    drained for shutdown, or (dynamic pools) is the worker surplus? The
//!    counts are read with a read-modify-write (`Levels::any_queued`), not a
//!    load. If there is something to do, take itself off the list (if a
//!    waker has not already) and go back to work.
//! 3. Park. After waking, take itself off the list if it is still on it
//!    (a spurious wake-up) and go back to work.
//!
//! Falling asleep with a deadline (a worker above a dynamic pool's minimum,
//! see `limits.rs`): steps 1 and 2 as above, then
//! 3. Park until woken or the deadline passes. Then, under the lock: if a
//!    waker took the worker off the list, the wake-up is its to honour: go
//!    back to work (report [`Wake::Work`]) even if the deadline has passed,
//!    never retire. Else, if the deadline has passed, take itself off the
//!    list and report [`Wake::TimedOut`]. Else (an early return) park again.
//!
//! Waking (after a push):
//! 1. Push the job and count it in (`Levels::count_in`, a read-modify-write).
//! 2. Load `sleeping`. If zero, done: no lock on the fast path.
//! 3. Otherwise lock `sleepers`, pop the most recently registered worker
//!    (its cache is warmest), decrement `sleeping`, unlock, unpark it.
//!
//! # Why no wake-up is lost
//!
//! Sleeper step 2 and waker step 1 are both read-modify-writes (`AcqRel`)
//! of the same queued count, so one of them comes first in that count's
//! modification order. If the waker's comes first, the sleeper's re-check
//! reads the job and the sleeper does not park. If the sleeper's comes
//! first, the waker's increment reads from it (through any increments and
//! decrements in between, which are read-modify-writes too and so carry the
//! release sequence on), so the sleeper's registration in step 1 *happens
//! before* the waker's load of `sleeping`: the waker sees the sleeper
//! counted and finds it on the list (pushed under the lock before
//! `sleeping` was raised), unless somebody already took it off, which only
//! happens when it is being unparked or is already awake (and an awake
//! worker parks again only after a new registration and a new re-check, to
//! which the same argument applies). A `Parker` keeps the token of an
//! `unpark` that arrives before `park`, so the window between step 2 and
//! step 3 is safe. A worker that times out takes itself off the list under
//! the lock, so a waker either took it off first (and the worker honours
//! the wake-up) or does not find it; what then keeps the job from being
//! stranded is the retiring worker's own re-check (`limits.rs`, case 1),
//! by the same argument.
//!
//! A job is counted in *after* its push (see `Levels::count_in`), so a
//! worker may pop and count out a job before its pusher has counted it in,
//! and the count may read zero (or less, read as zero) although another job
//! waits: the sleeper's re-check then misses that job. But a count that
//! reads low is owed a count-in that comes after the re-check in the
//! count's modification order, and that pusher's load of `sleeping`, by the
//! argument above, sees the sleeper and wakes it; the woken worker searches
//! until every level is empty, which takes in the job the re-check missed.
//!
//! This is deliberately not the usual store-buffering (Dekker) argument over
//! `SeqCst` loads: the proof rests only on the modification order of one
//! location, which is what the loom models can check exactly (loom treats
//! `SeqCst` loads and stores as acquire/release, so it reports false lost
//! wake-ups for a Dekker pair). The price is paid on the cold path: a worker
//! about to park does one read-modify-write per level instead of one load;
//! the waker's fast path is unchanged.
//!
//! Invariant: *whenever a job is queued, at least one worker is active,
//! spinning or sleepy, or a waker is about to unpark one.* A woken worker
//! searches until the pick rule reports every level empty, so one wake-up
//! per push is enough; waking only one avoids a thundering herd.
//!
//! Shutdown and resizing rely on the `sleepers` lock instead: the thread
//! that completes the drain changes the lifecycle word (or a resize changes
//! the worker limits) and *then* takes the lock to wake everyone
//! ([`Sleep::wake_all`]). If it takes the lock after a sleeper registered,
//! it finds and unparks the sleeper; if before, its change happens before
//! the sleeper's re-check, which then sees the drain (or the surplus).
//!
//! The design follows the shape of rayon-core's sleep module (an idle
//! thread announces itself, then re-checks before blocking) with a plain
//! mutex-protected list of sleepers in place of rayon's packed counters: the
//! lock is only taken when a worker is about to block or one must be woken.

use std::time::Instant;

use crate::sync::{AtomicUsize, Mutex, Ordering, Parker, Unparker, has_passed, lock, park_until};

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
    /// without it by wakers as the fast-path check. `Relaxed` throughout:
    /// the lock orders the changes, and the fast-path load is ordered after
    /// a sleeper's registration by the queued count (see the module docs).
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
            self.sleeping.fetch_add(1, Ordering::Relaxed);
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
            if has_passed(deadline) {
                sleepers.remove(pos);
                self.sleeping.fetch_sub(1, Ordering::Relaxed);
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
            self.sleeping.fetch_sub(1, Ordering::Relaxed);
        }
    }

    /// How many workers are registered as sleepers (the loom models'
    /// oracle).
    #[cfg(all(test, loom))]
    pub(crate) fn sleepers(&self) -> usize {
        lock(&self.sleepers).len()
    }

    /// Wakes one sleeping worker, if any, and says whether it did. Call
    /// after pushing a job and counting it in.
    pub(crate) fn wake_one(&self) -> bool {
        if self.sleeping.load(Ordering::Relaxed) == 0 {
            return false;
        }
        let woken = {
            let mut sleepers = lock(&self.sleepers);
            let woken = sleepers.pop();
            if woken.is_some() {
                self.sleeping.fetch_sub(1, Ordering::Relaxed);
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
            self.sleeping.fetch_sub(sleepers.len(), Ordering::Relaxed);
            std::mem::take(&mut *sleepers)
        };
        for (_, unparker) in woken {
            unparker.unpark();
        }
    }
}
