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

use std::cell::Cell;

use crossbeam_utils::CachePadded;

use super::deque::{Steal, Stealer, Worker};
use crate::sync::{Arc, AtomicBool, Ordering};

/// A worker's own deques, one per level, and its copy of their flags.
pub(crate) struct LocalQueues<T> {
    deques: Box<[Worker<T>]>,
    /// The owner's copy of `shared.occupied` (it is their only writer), so
    /// that a push to a deque already flagged writes nothing shared.
    flagged: Box<[Cell<bool>]>,
    shared: Arc<SharedQueues<T>>,
}

/// What peers reach of a worker's deques: a stealer and an occupied flag
/// per level.
pub(crate) struct SharedQueues<T> {
    stealers: Box<[Stealer<T>]>,
    occupied: Box<[CachePadded<AtomicBool>]>,
}

impl<T> LocalQueues<T> {
    /// Empty FIFO deques, one per level.
    pub(crate) fn new(levels: usize) -> LocalQueues<T> {
        let deques: Box<[Worker<T>]> = (0..levels).map(|_| Worker::new_fifo()).collect();
        let shared = Arc::new(SharedQueues {
            stealers: deques.iter().map(Worker::stealer).collect(),
            occupied: (0..levels).map(|_| CachePadded::new(AtomicBool::new(false))).collect(),
        });
        LocalQueues { deques, flagged: (0..levels).map(|_| Cell::new(false)).collect(), shared }
    }

    /// The half the peers reach.
    pub(crate) fn shared(&self) -> &Arc<SharedQueues<T>> {
        &self.shared
    }

    /// Pushes a job onto the deque for `level`, flagging it first.
    pub(crate) fn push(&self, level: usize, job: T) {
        if !self.flagged[level].replace(true) {
            // Before the push: a reader that can see the job sees the flag
            // (the push's own release, or the pusher's fence; `sleep.rs`).
            self.shared.occupied[level].store(true, Ordering::Relaxed);
        }
        self.deques[level].push(job);
    }

    /// Pops the oldest job of the deque for `level`, clearing its flag if
    /// there is none. A deque not flagged is empty (only the owner pushes),
    /// so that case touches nothing: a FIFO pop is a read-modify-write even
    /// on an empty deque, and every pick tries every level's own deque.
    pub(crate) fn pop(&self, level: usize) -> Option<T> {
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
        self.deques.iter().map(Worker::len).sum()
    }

    /// Whether every deque is empty.
    pub(crate) fn is_empty(&self) -> bool {
        self.deques.iter().all(Worker::is_empty)
    }

    /// Whether the deque for `level` is empty (the owner's view).
    pub(crate) fn is_empty_at(&self, level: usize) -> bool {
        self.deques[level].is_empty()
    }
}

impl<T> SharedQueues<T> {
    /// Whether the deque for `level` may hold a job (the flag).
    pub(crate) fn may_hold(&self, level: usize) -> bool {
        self.occupied[level].load(Ordering::Acquire)
    }

    /// Whether the deque for `level` holds a job: the flag, then the deque.
    pub(crate) fn holds(&self, level: usize) -> bool {
        self.may_hold(level) && !self.stealers[level].is_empty()
    }

    /// How many jobs the deque for `level` holds (a snapshot).
    pub(crate) fn len(&self, level: usize) -> usize {
        self.stealers[level].len()
    }

    /// Steals the oldest job of the deque for `level`.
    pub(crate) fn steal(&self, level: usize) -> Steal<T> {
        self.stealers[level].steal()
    }

    /// Test oracle: whether the deque for `level` holds a job, read under
    /// the stand-in queue's lock.
    #[cfg(all(test, loom))]
    pub(crate) fn holds_any(&self, level: usize) -> bool {
        self.stealers[level].holds(|_| true)
    }

    /// Whether every deque is empty: nothing is pushed into a departed
    /// worker's deques, so once true it stays true.
    pub(crate) fn is_empty(&self) -> bool {
        self.stealers.iter().all(Stealer::is_empty)
    }
}

impl<T> AsRef<SharedQueues<T>> for SharedQueues<T> {
    fn as_ref(&self) -> &SharedQueues<T> {
        self
    }
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
