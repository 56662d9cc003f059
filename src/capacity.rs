//! Bounded levels: a level with a capacity holds at most that many queue
//! entries, and a spawn from outside the pool that finds it full waits for
//! room, as a send on a full Go buffered channel does, or is refused
//! (`try_spawn`) or gives up after a while (`spawn_timeout`).
//!
//! # What is counted
//!
//! Per bounded level, `used`: the entries admitted and not yet taken off a
//! queue. A spawn takes a slot before its job is admitted (so a producer
//! waiting for room holds up no drain, `lifecycle.rs`), and the slot is
//! given back when the entry is taken off its queue, to run or to be
//! discarded (`worker.rs`'s `execute`, the sweeps of `abort.rs`), or when
//! the spawn fails after taking it. The entry of a cancelled job holds its
//! slot until a worker (or a sweep) takes it off, which is as soon as a
//! worker reaches it. Unbounded levels (the default) count nothing: their
//! spawns and takes pay one branch on a field fixed at build time, and no
//! shared read-modify-write.
//!
//! # Spawns from inside the pool never wait
//!
//! A job that waits for room in its own pool can wait for ever: the room
//! is made by workers, and it holds one (with one worker, or all workers
//! in such jobs, nothing moves; this is how a blocking bounded executor
//! deadlocks). So a spawn from one of the pool's running jobs that would
//! wait (`spawn`, `submit`, the timed variants) takes a slot *over* the
//! capacity instead: it is admitted, and `used` may exceed the capacity by
//! the number of such spawns, until their entries are taken. The same
//! holds for a spawn from anywhere else on one of the pool's worker
//! threads (`worker::is_own_thread`: its `on_thread_start` hook, say, or
//! a logger called there), which holds its worker just as well, though it
//! is otherwise a spawn from outside. `try_spawn` and `try_submit`, which
//! never wait, refuse it with `SpawnErrorKind::Full` there as anywhere.
//!
//! # No lost wake-up
//!
//! A producer that finds no room registers as a waiter under the level's
//! lock (`waiters += 1`, `SeqCst`), then tries again for a slot under the
//! same lock (`SeqCst` compare-exchange on `used`), and only then waits on
//! the condition variable, which releases the lock atomically. A taker
//! gives a slot back with a `SeqCst` `fetch_sub` on `used` and then loads
//! `waiters` (`SeqCst`). In the single total order of these `SeqCst`
//! operations, either the taker's load comes after the producer's
//! increment, and the taker takes the lock and notifies (the lock orders
//! the notification after the producer's wait began, or before its retry,
//! which then sees the room); or it comes before, and then so does the
//! `fetch_sub`, and the producer's retry sees the room. Either way a
//! producer never sleeps while a slot is free. Closing intake wakes every
//! waiter the same way (the flag is stored before the lock is taken), and
//! a waiter checks it under the lock before waiting. One `notify_one` per
//! slot given back: a woken producer always tries for a slot before it
//! looks at its deadline, so a wake-up is never wasted on a producer that
//! gives up while a slot is free. `tests/capacity.rs` checks this with many
//! producers and exact counts, and fails (hangs) without the notification.

use std::time::{Duration, Instant};

// Std's primitives even under loom: this protocol is checked by the exact
// counts of tests/capacity.rs, not modelled (see `sync.rs`).
use crate::sync::Ordering;
use crate::sync::plain::{AtomicU64, AtomicUsize, Condvar, Mutex, lock, wait_for};

/// What a spawn does when its level is full.
///
/// Only levels given a [`Builder::capacity`](crate::Builder::capacity) are
/// ever full. A spawn from one of the pool's own jobs or worker threads
/// never waits: see [`Builder::capacity`](crate::Builder::capacity).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum WhenFull {
    /// Wait for room, however long it takes (or until the pool shuts
    /// down, or the job's start deadline passes): the default, and what
    /// `spawn` and `submit` do.
    #[default]
    Wait,
    /// Return at once with [`SpawnErrorKind::Full`](crate::SpawnErrorKind::Full)
    /// (or [`SpawnErrorKind::Shutdown`](crate::SpawnErrorKind::Shutdown)
    /// once the pool shuts down), handing the job back: what `try_spawn` and
    /// `try_submit` do.
    Refuse,
    /// Wait for room at most this long, then return with
    /// [`SpawnErrorKind::Full`](crate::SpawnErrorKind::Full): what
    /// `spawn_timeout` and `submit_timeout` do. A duration too large to add
    /// to `Instant::now()` waits without bound.
    WaitAtMost(Duration),
}

/// Why no slot was taken.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum NoRoom {
    /// The level stayed full (refused at once, or for the whole wait).
    Full,
    /// Intake closed while waiting.
    Closed,
}

/// The capacities of a pool's levels.
pub(crate) struct Capacity {
    /// Whether any level is bounded: the one branch unbounded pools pay.
    any: bool,
    levels: Box<[Option<Bound>]>,
}

struct Bound {
    limit: usize,
    used: AtomicUsize,
    waiters: AtomicUsize,
    lock: Mutex<()>,
    room: Condvar,
    /// Spawns that found the level full and waited (figures for metrics).
    full_waits: AtomicU64,
}

impl Capacity {
    /// `limits[level]`: the level's capacity, or `None` for unbounded.
    pub(crate) fn new(limits: &[Option<usize>]) -> Capacity {
        let levels: Box<[Option<Bound>]> = limits
            .iter()
            .map(|limit| {
                limit.map(|limit| Bound {
                    limit,
                    used: AtomicUsize::new(0),
                    waiters: AtomicUsize::new(0),
                    lock: Mutex::new(()),
                    room: Condvar::new(),
                    full_waits: AtomicU64::new(0),
                })
            })
            .collect();
        Capacity { any: levels.iter().any(Option::is_some), levels }
    }

    /// The level's bound, if it has one.
    #[inline]
    fn bound(&self, level: usize) -> Option<&Bound> {
        if !self.any {
            return None;
        }
        self.levels.get(level).and_then(Option::as_ref)
    }

    /// Takes a slot at `level` for a spawn; a no-op for an unbounded level.
    /// `inside`: whether the spawn comes from one of the pool's own threads,
    /// which never waits (see the module docs); asked only of a full level.
    /// `closed`: whether intake has closed to this spawn, checked before a
    /// refusal and while waiting.
    #[inline]
    pub(crate) fn take(
        &self,
        level: usize,
        when_full: WhenFull,
        inside: impl FnOnce() -> bool,
        closed: impl Fn() -> bool,
    ) -> Result<(), NoRoom> {
        match self.bound(level) {
            None => Ok(()),
            Some(bound) => bound.take(when_full, inside, closed),
        }
    }

    /// Gives back the slot of an entry of `level` taken off its queue, or of
    /// a spawn that failed after taking it; a no-op for an unbounded level.
    #[inline]
    pub(crate) fn give_back(&self, level: usize) {
        if let Some(bound) = self.bound(level) {
            bound.give_back();
        }
    }

    /// Wakes every waiting producer, to see that intake closed.
    pub(crate) fn wake_all(&self) {
        for bound in self.levels.iter().flatten() {
            drop(lock(&bound.lock));
            bound.room.notify_all();
        }
    }

    /// The level's capacity and how many spawns have waited for room there.
    pub(crate) fn figures(&self, level: usize) -> (Option<u64>, u64) {
        match self.levels.get(level).and_then(Option::as_ref) {
            None => (None, 0),
            Some(bound) => (Some(bound.limit as u64), bound.full_waits.load(Ordering::Relaxed)),
        }
    }
}

impl Bound {
    /// One slot if there is room: a compare-exchange loop, never above the
    /// limit.
    fn try_take(&self) -> bool {
        let mut used = self.used.load(Ordering::SeqCst);
        while used < self.limit {
            match self.used.compare_exchange_weak(used, used + 1, Ordering::SeqCst, Ordering::SeqCst) {
                Ok(_) => return true,
                Err(now) => used = now,
            }
        }
        false
    }

    fn take(
        &self,
        when_full: WhenFull,
        inside: impl FnOnce() -> bool,
        closed: impl Fn() -> bool,
    ) -> Result<(), NoRoom> {
        if self.try_take() {
            return Ok(());
        }
        let deadline = match when_full {
            // A closed pool says so: the level may never have room again.
            WhenFull::Refuse => return Err(if closed() { NoRoom::Closed } else { NoRoom::Full }),
            _ if inside() => {
                // Over the capacity: see the module docs.
                self.used.fetch_add(1, Ordering::SeqCst);
                return Ok(());
            }
            WhenFull::Wait => None,
            WhenFull::WaitAtMost(wait) => Some(Instant::now().checked_add(wait)),
        };
        self.full_waits.fetch_add(1, Ordering::Relaxed);
        let mut guard = lock(&self.lock);
        self.waiters.fetch_add(1, Ordering::SeqCst);
        let outcome = loop {
            // A slot first, then intake, then the deadline: a woken producer
            // never leaves a free slot behind.
            if self.try_take() {
                break Ok(());
            }
            if closed() {
                break Err(NoRoom::Closed);
            }
            let left = match deadline {
                None | Some(None) => None,
                Some(Some(at)) => match at.checked_duration_since(Instant::now()) {
                    Some(left) if !left.is_zero() => Some(left),
                    _ => break Err(NoRoom::Full),
                },
            };
            guard = wait_for(&self.room, guard, left);
        };
        self.waiters.fetch_sub(1, Ordering::SeqCst);
        drop(guard);
        outcome
    }

    fn give_back(&self) {
        self.used.fetch_sub(1, Ordering::SeqCst);
        if self.waiters.load(Ordering::SeqCst) > 0 {
            drop(lock(&self.lock));
            self.room.notify_one();
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn a_bounded_level_refuses_at_its_capacity_and_takes_again_after_a_give_back() {
        let capacity = Capacity::new(&[None, Some(2)]);
        for _ in 0..10 {
            assert_eq!(capacity.take(0, WhenFull::Refuse, || false, || false), Ok(()));
        }
        assert_eq!(capacity.take(1, WhenFull::Refuse, || false, || false), Ok(()));
        assert_eq!(capacity.take(1, WhenFull::Refuse, || false, || false), Ok(()));
        assert_eq!(capacity.take(1, WhenFull::Refuse, || false, || false), Err(NoRoom::Full));
        let wait = WhenFull::WaitAtMost(Duration::ZERO);
        assert_eq!(capacity.take(1, wait, || false, || false), Err(NoRoom::Full));
        assert_eq!(capacity.take(1, WhenFull::Wait, || false, || true), Err(NoRoom::Closed));
        assert_eq!(capacity.take(1, WhenFull::Refuse, || false, || true), Err(NoRoom::Closed));
        // From inside the pool: admitted over the capacity, except `Refuse`.
        assert_eq!(capacity.take(1, WhenFull::Wait, || true, || false), Ok(()));
        assert_eq!(capacity.take(1, WhenFull::Refuse, || true, || false), Err(NoRoom::Full));
        // Three slots used of two: one given back leaves the level full.
        capacity.give_back(1);
        assert_eq!(capacity.take(1, WhenFull::Refuse, || false, || false), Err(NoRoom::Full));
        capacity.give_back(1);
        assert_eq!(capacity.take(1, WhenFull::Refuse, || false, || false), Ok(()));
        assert_eq!(capacity.figures(1), (Some(2), 2));
        assert_eq!(capacity.figures(0), (None, 0));
    }
}
