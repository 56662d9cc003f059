//! A worker's own deques, one per level, and what its peers see of them.
//!
//! Each deque has an *occupied* flag beside its stealer, the hint peers read
//! before trying to steal (`queue/levels.rs`): only the owner writes it. It
//! sets the flag before a push into a deque it last saw empty, and clears
//! it when its own pop finds the deque empty. No other thread pushes into
//! the deque, so a clear never hides a job: a deque whose flag reads clear
//! holds no job whose push happened before the read. A flag may read set
//! over an empty deque (peers stole its jobs); a peer then tries one steal
//! for nothing, until the owner's next pop clears it.
//!
//! A job's spawn thus writes a line only its own worker writes, and a take
//! none at all: no counter that every worker updates, which would bounce
//! between cores on every job of a fan-out.
//!
//! Beside each level's FIFO deque of spawned jobs there is a LIFO deque of
//! *fork halves*, the second closure of a `join` (`forkjoin/join.rs`), with
//! its own flag under the same rule. The owner pops its newest half back
//! ([`LocalQueues::pop_fork`]); peers steal the oldest, as from the other
//! deque. To the pick rule a level's two deques are one source: the owner's
//! pop and a peer's steal try the fork deque first, and a flag, a count or
//! an emptiness test covers both. Joins nest on the owner's stack, so when
//! a join pops, the half it pushed is the newest in its deque, or stolen,
//! and then every older half is stolen too (steals take the oldest first):
//! the pop returns that join's own half or nothing.
//!
//! Fork halves are parts of running jobs: they are left out of the backlog
//! figure ([`SharedQueues::len`]), and count as jobs only if a peer steals
//! and runs one (the joiner runs its own half as a plain call).

use std::cell::Cell;

use crossbeam_utils::CachePadded;

use super::deque::{Steal, Stealer, Worker};
use crate::sync::{Arc, AtomicBool, Ordering};

/// What a worker's deques hold: jobs `T`, and fork halves `T::Fork`, which
/// become jobs when the pick rule takes them.
pub(crate) trait Queued: Sized {
    type Fork: Into<Self>;
}

/// A worker's own deques, one per level, and its copy of their flags.
pub(crate) struct LocalQueues<T: Queued> {
    deques: Box<[Worker<T>]>,
    /// The fork halves, one LIFO deque per level.
    forks: Box<[Worker<T::Fork>]>,
    /// The owner's copy of `shared.forked`.
    fork_flagged: Box<[Cell<bool>]>,
    /// The owner's copy of `shared.occupied` (it is their only writer), so
    /// that a push to a deque already flagged writes nothing shared.
    flagged: Box<[Cell<bool>]>,
    /// Per level, whether the owner's last try of the level's injector
    /// found a job there (`queue/levels.rs`, "Trying an injector").
    injector_busy: Box<[Cell<bool>]>,
    shared: Arc<SharedQueues<T>>,
}

/// What peers reach of a worker's deques: a stealer and an occupied flag
/// per level.
pub(crate) struct SharedQueues<T: Queued> {
    stealers: Box<[Stealer<T>]>,
    occupied: Box<[CachePadded<AtomicBool>]>,
    fork_stealers: Box<[Stealer<T::Fork>]>,
    forked: Box<[CachePadded<AtomicBool>]>,
}

impl<T: Queued> LocalQueues<T> {
    /// Empty FIFO deques, one per level.
    pub(crate) fn new(levels: usize) -> LocalQueues<T> {
        let deques: Box<[Worker<T>]> = (0..levels).map(|_| Worker::new_fifo()).collect();
        let forks: Box<[Worker<T::Fork>]> = (0..levels).map(|_| Worker::new_lifo()).collect();
        let flags = || (0..levels).map(|_| CachePadded::new(AtomicBool::new(false))).collect();
        let shared = Arc::new(SharedQueues {
            stealers: deques.iter().map(Worker::stealer).collect(),
            occupied: flags(),
            fork_stealers: forks.iter().map(Worker::stealer).collect(),
            forked: flags(),
        });
        let cells = || (0..levels).map(|_| Cell::new(false)).collect();
        LocalQueues { deques, flagged: cells(), forks, fork_flagged: cells(), injector_busy: cells(), shared }
    }

    /// The half the peers reach.
    pub(crate) fn shared(&self) -> &Arc<SharedQueues<T>> {
        &self.shared
    }

    /// Pushes a job onto the deque for `level`, flagging it first.
    #[inline]
    pub(crate) fn push(&self, level: usize, job: T) {
        if !self.flagged[level].replace(true) {
            // Before the push: a reader that can see the job sees the flag
            // (the push's own release, or the pusher's fence; `sleep.rs`).
            self.shared.occupied[level].store(true, Ordering::Relaxed);
        }
        self.deques[level].push(job);
    }

    /// Whether the owner's last try of `level`'s injector found a job
    /// there, or lost a race for one.
    #[inline]
    pub(crate) fn injector_busy(&self, level: usize) -> bool {
        self.injector_busy[level].get()
    }

    /// Records what the owner's try of `level`'s injector found.
    #[inline]
    pub(crate) fn set_injector_busy(&self, level: usize, busy: bool) {
        self.injector_busy[level].set(busy);
    }

    /// Pushes a fork half onto the fork deque for `level`, flagging it
    /// first.
    pub(crate) fn push_fork(&self, level: usize, job: T::Fork) {
        if !self.fork_flagged[level].replace(true) {
            self.shared.forked[level].store(true, Ordering::Relaxed);
        }
        self.forks[level].push(job);
    }

    /// Pops the newest fork half of `level`, clearing the flag if there is
    /// none (see the module docs for what it returns to a join).
    #[inline]
    pub(crate) fn pop_fork(&self, level: usize) -> Option<T::Fork> {
        if !self.fork_flagged[level].get() {
            return None;
        }
        let job = self.forks[level].pop();
        if job.is_none() {
            self.fork_flagged[level].set(false);
            self.shared.forked[level].store(false, Ordering::Release);
        }
        job
    }

    /// Pops a job of `level`: the newest fork half, else the oldest spawned
    /// job, clearing a flag whose deque it finds empty. A deque not flagged
    /// is empty (only the owner pushes), so that case touches nothing: a
    /// FIFO pop is a read-modify-write even on an empty deque, and every
    /// pick tries every level's own deques.
    #[inline]
    pub(crate) fn pop(&self, level: usize) -> Option<T> {
        if let Some(job) = self.pop_fork(level) {
            return Some(job.into());
        }
        if !self.flagged[level].get() {
            return None;
        }
        let job = self.deques[level].pop();
        if job.is_none() {
            self.flagged[level].set(false);
            self.shared.occupied[level].store(false, Ordering::Release);
        }
        job
    }

    /// How many jobs the deques hold, all levels together (the owner's
    /// view; a snapshot).
    pub(crate) fn len(&self) -> usize {
        self.deques.iter().map(Worker::len).sum::<usize>() + self.forks.iter().map(Worker::len).sum::<usize>()
    }

    /// Whether every deque is empty.
    pub(crate) fn is_empty(&self) -> bool {
        self.deques.iter().all(Worker::is_empty) && self.forks.iter().all(Worker::is_empty)
    }

    /// Whether the deques for `level` are empty (the owner's view).
    #[inline]
    pub(crate) fn is_empty_at(&self, level: usize) -> bool {
        self.deques[level].is_empty() && self.forks[level].is_empty()
    }
}

impl<T: Queued> SharedQueues<T> {
    /// Whether the deques for `level` may hold a job (the flags).
    #[inline]
    pub(crate) fn may_hold(&self, level: usize) -> bool {
        self.forked[level].load(Ordering::Acquire) || self.occupied[level].load(Ordering::Acquire)
    }

    /// Whether the deques for `level` hold a job: the flags, then the deques.
    #[inline]
    pub(crate) fn holds(&self, level: usize) -> bool {
        (self.forked[level].load(Ordering::Acquire) && !self.fork_stealers[level].is_empty())
            || (self.occupied[level].load(Ordering::Acquire) && !self.stealers[level].is_empty())
    }

    /// How many spawned jobs the deque for `level` holds (a snapshot; fork
    /// halves are not counted, see the module docs).
    pub(crate) fn len(&self, level: usize) -> usize {
        self.stealers[level].len()
    }

    /// Steals the oldest job of `level`: a fork half first (the largest
    /// piece of a divided job), else a spawned job. `Retry` if either
    /// answered so and neither gave a job.
    pub(crate) fn steal(&self, level: usize) -> Steal<T> {
        let mut retry = false;
        if self.forked[level].load(Ordering::Acquire) {
            match self.fork_stealers[level].steal() {
                Steal::Success(job) => return Steal::Success(job.into()),
                Steal::Retry => retry = true,
                Steal::Empty => {}
            }
        }
        if self.occupied[level].load(Ordering::Acquire) {
            match self.stealers[level].steal() {
                Steal::Empty => {}
                outcome => return outcome,
            }
        }
        if retry { Steal::Retry } else { Steal::Empty }
    }

    /// Steals the oldest spawned job of `level`, never a fork half (a part
    /// of a running job, not a queued one): for `Pool::cancel_queued`.
    pub(crate) fn steal_spawned(&self, level: usize) -> Steal<T> {
        if !self.occupied[level].load(Ordering::Acquire) {
            return Steal::Empty;
        }
        self.stealers[level].steal()
    }

    /// Test oracle: whether the deques for `level` hold a job, read under
    /// the stand-in queue's lock.
    #[cfg(all(test, loom))]
    pub(crate) fn holds_any(&self, level: usize) -> bool {
        self.stealers[level].holds(|_| true) || self.fork_stealers[level].holds(|_| true)
    }

    /// Whether every deque is empty: nothing is pushed into a departed
    /// worker's deques, so once true it stays true.
    pub(crate) fn is_empty(&self) -> bool {
        self.stealers.iter().all(Stealer::is_empty) && self.fork_stealers.iter().all(Stealer::is_empty)
    }
}

impl<T: Queued> AsRef<SharedQueues<T>> for SharedQueues<T> {
    fn as_ref(&self) -> &SharedQueues<T> {
        self
    }
}

/// The tests' jobs: numbers, forked as they are.
#[cfg(test)]
impl Queued for u32 {
    type Fork = u32;
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn the_owner_flags_before_a_push_and_clears_on_an_empty_pop() {
        let local = LocalQueues::new(2);
        let shared = Arc::clone(local.shared());
        assert!(!shared.may_hold(1));
        local.push(1, 7);
        assert!(shared.may_hold(1) && shared.holds(1) && !shared.may_hold(0));
        assert!(matches!(shared.steal(1), Steal::Success(7)));
        // Stolen: the flag stays up, over an empty deque, until the owner pops.
        assert!(shared.may_hold(1) && !shared.holds(1));
        assert_eq!(local.pop(1), None);
        assert!(!shared.may_hold(1));
        local.push(1, 8);
        assert_eq!((local.pop(1), shared.may_hold(1)), (Some(8), true));
        assert!(local.is_empty() && shared.is_empty());
    }
}
