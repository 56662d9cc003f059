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
//! # Order within a level
//!
//! The owner takes its newest spawned job first, as rayon's workers and
//! Java's `ForkJoinPool` (its default, not `asyncMode`) do: a job spawned
//! by a job runs next on the same worker, while its data is in cache, and
//! a tree of jobs is walked mostly depth first, so far fewer of its jobs
//! wait at once than breadth first (half its leaves). Peers steal the
//! oldest.
//!
//! Newest first alone lets a stream of newer jobs starve older ones: a job
//! that spawns its successor at its level would keep its worker off every
//! job queued before it in that deque, and, since the own deque comes
//! before the level's injector (`queue/levels.rs`, "The pick rule"), off
//! every job from outside at that level, while no peer is free to take
//! them. So the owner's takes at a level go in rounds of
//! `2 × OLDEST_EVERY` ([`OLDEST_EVERY`] is 32): the `OLDEST_EVERY`-th take
//! of a round is the deque's oldest job, taken from the stealers' end, and
//! the last is the level's injector's oldest, or if it has none the
//! deque's oldest again (tokio caps its LIFO slot, and checks its global
//! queue at an interval, 31 ticks or self-tuned; Go every 61 ticks; for
//! the same reasons). A round counts the
//! worker's takes of its own spawned jobs at the level, and the injector's
//! turn; fork halves do not count. So a job with `i` jobs queued before it
//! in its worker's deque is taken within `(i + 1) × 2 × OLDEST_EVERY` of
//! that worker's counted takes at its level, or stolen sooner; and a job
//! in a level's injector with `i` jobs ahead of it waits for at most
//! `(i + 1) × 2 × OLDEST_EVERY` counted takes at its level by any one
//! worker (a worker with no spawned job there takes from the injector
//! anyway). An oldest-first take that loses the race for the oldest job to
//! a peer's steal (`Steal::Retry`) takes the newest instead: the bound
//! holds all the same, as that peer took the job's oldest predecessor (or
//! the job). The levels are unchanged by this: each take is still the pick
//! rule's, never one of a less urgent level while a more urgent job waits.
//!
//! # Fork halves
//!
//! Beside each level's deque of spawned jobs there is a LIFO deque of
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
//! figure ([`SharedQueues::len`]). One counts as a job only if the pick
//! rule takes it: a peer's steal, or the joiner's own worker while it
//! helps inside the join's first closure (waiting on a handle, say); a
//! half its join pops back runs as a plain call.

use std::cell::Cell;

use crossbeam_utils::CachePadded;

use super::deque::{Steal, Stealer, Worker};
use crate::sync::{Arc, AtomicBool, Ordering};

/// How often the owner takes its oldest spawned job instead of its newest:
/// every `OLDEST_EVERY`-th job it takes off a level's deque of spawned jobs
/// (see the module docs, "Order within a level"). 2 under loom, so that a
/// model reaches the oldest-first take in a few steps.
pub(crate) const OLDEST_EVERY: u32 = if cfg!(loom) { 2 } else { 32 };

/// What a worker's deques hold: jobs `T`, and fork halves `T::Fork`, which
/// become jobs when the pick rule takes them.
pub(crate) trait Queued: Sized {
    type Fork: Into<Self>;
}

/// A worker's own deques, one per level, and its copy of their flags.
pub(crate) struct LocalQueues<T: Queued> {
    levels: Box<[LocalLevel<T>]>,
    shared: Arc<SharedQueues<T>>,
    /// The level below 0 whose injector gave the owner's last pick its
    /// job, if it did (`queue/levels.rs`, "The pick rule").
    hot: Cell<Option<usize>>,
}

/// One level of a worker's own queues: each piece a pick of that level
/// needs, side by side.
struct LocalLevel<T: Queued> {
    deque: Worker<T>,
    /// The fork halves: a LIFO deque.
    forks: Worker<T::Fork>,
    /// The owner's copy of the shared `occupied` flag (it is its only
    /// writer), so that a push to a deque already flagged writes nothing
    /// shared.
    flagged: Cell<bool>,
    /// The owner's copy of the shared `forked` flag.
    fork_flagged: Cell<bool>,
    /// Whether the owner's last try of the level's injector found a job
    /// there, or lost a race for one (`queue/levels.rs`, "Trying an
    /// injector").
    injector_busy: Cell<bool>,
    /// How many spawned jobs the owner took at this level in the current
    /// round of `2 × OLDEST_EVERY` takes (see the module docs).
    taken: Cell<u32>,
}

/// What peers reach of a worker's deques: a stealer and an occupied flag
/// per level.
pub(crate) struct SharedQueues<T: Queued> {
    levels: Box<[SharedLevel<T>]>,
}

/// One level of what peers reach.
struct SharedLevel<T: Queued> {
    stealer: Stealer<T>,
    fork_stealer: Stealer<T::Fork>,
    occupied: CachePadded<AtomicBool>,
    forked: CachePadded<AtomicBool>,
}

impl<T: Queued> LocalQueues<T> {
    /// Empty deques, one per level.
    pub(crate) fn new(levels: usize) -> LocalQueues<T> {
        let own: Box<[LocalLevel<T>]> = (0..levels)
            .map(|_| LocalLevel {
                deque: Worker::new_lifo(),
                forks: Worker::new_lifo(),
                flagged: Cell::new(false),
                fork_flagged: Cell::new(false),
                injector_busy: Cell::new(false),
                taken: Cell::new(0),
            })
            .collect();
        let shared = Arc::new(SharedQueues {
            levels: own
                .iter()
                .map(|level| SharedLevel {
                    stealer: level.deque.stealer(),
                    fork_stealer: level.forks.stealer(),
                    occupied: CachePadded::new(AtomicBool::new(false)),
                    forked: CachePadded::new(AtomicBool::new(false)),
                })
                .collect(),
        });
        LocalQueues { levels: own, shared, hot: Cell::new(None) }
    }

    /// The half the peers reach.
    pub(crate) fn shared(&self) -> &Arc<SharedQueues<T>> {
        &self.shared
    }

    /// Pushes a job onto the deque for `level`, flagging it first.
    #[inline]
    pub(crate) fn push(&self, level: usize, job: T) {
        let own = &self.levels[level];
        if !own.flagged.replace(true) {
            self.raised(&self.shared.levels[level].occupied, level);
        }
        own.deque.push(job);
    }

    /// The owner's copy of a flag of its deque at `level` was just raised,
    /// before a push into that deque: raises the one peers read (`shared`),
    /// and forgets the shortcut's level if it is less urgent
    /// ([`LocalQueues::cool`]).
    #[inline]
    fn raised(&self, shared: &AtomicBool, level: usize) {
        // Before the push: a reader that can see the job sees the flag
        // (the push's own release, or the pusher's fence; `sleep.rs`).
        shared.store(true, Ordering::Relaxed);
        self.cool(level);
    }

    /// The level below 0 whose injector gave the last pick its job, if
    /// one did.
    #[inline]
    pub(crate) fn hot(&self) -> Option<usize> {
        self.hot.get()
    }

    /// Records where the last pick found its job.
    #[inline]
    pub(crate) fn set_hot(&self, hot: Option<usize>) {
        self.hot.set(hot);
    }

    /// Whether the owner's deques for `level` may hold a job (its copies
    /// of the flags: exact for the owner).
    #[inline]
    pub(crate) fn own_may_hold(&self, level: usize) -> bool {
        let own = &self.levels[level];
        own.flagged.get() || own.fork_flagged.get()
    }

    /// Forgets the shortcut's level if `level` is more urgent: called when
    /// a deque of the owner's at `level` gets its first job. The walk that
    /// recorded that level found every more urgent own deque empty, so
    /// until one gets a job again the shortcut passes over none of them
    /// (`queue/levels.rs`, "The pick rule").
    #[inline]
    fn cool(&self, level: usize) {
        if self.hot.get().is_some_and(|hot| level < hot) {
            self.hot.set(None);
        }
    }

    /// Whether the owner's last try of `level`'s injector found a job
    /// there, or lost a race for one.
    #[inline]
    pub(crate) fn injector_busy(&self, level: usize) -> bool {
        self.levels[level].injector_busy.get()
    }

    /// Records what the owner's try of `level`'s injector found.
    #[inline]
    pub(crate) fn set_injector_busy(&self, level: usize, busy: bool) {
        self.levels[level].injector_busy.set(busy);
    }

    /// Pushes a fork half onto the fork deque for `level`, flagging it
    /// first.
    pub(crate) fn push_fork(&self, level: usize, job: T::Fork) {
        let own = &self.levels[level];
        if !own.fork_flagged.replace(true) {
            self.raised(&self.shared.levels[level].forked, level);
        }
        own.forks.push(job);
    }

    /// Pops the newest fork half of `level`, clearing the flag if there is
    /// none (see the module docs for what it returns to a join).
    #[inline]
    pub(crate) fn pop_fork(&self, level: usize) -> Option<T::Fork> {
        self.pop_fork_of(&self.levels[level], level)
    }

    #[inline]
    fn pop_fork_of(&self, own: &LocalLevel<T>, level: usize) -> Option<T::Fork> {
        if !own.fork_flagged.get() {
            return None;
        }
        let job = own.forks.pop();
        if job.is_none() {
            own.fork_flagged.set(false);
            self.shared.levels[level].forked.store(false, Ordering::Release);
        }
        job
    }

    /// Pops a job of `level`: the newest fork half, else a spawned job
    /// (the newest, or the oldest on every [`OLDEST_EVERY`]-th take),
    /// clearing a flag whose deque it finds empty. A deque not flagged is
    /// empty (only the owner pushes), so that case touches nothing: a pop
    /// fences even on an empty deque, and every pick tries every level's
    /// own deques.
    #[inline]
    pub(crate) fn pop(&self, level: usize) -> Option<T> {
        let own = &self.levels[level];
        if let Some(job) = self.pop_fork_of(own, level) {
            return Some(job.into());
        }
        if !own.flagged.get() {
            return None;
        }
        let taken = own.taken.get() + 1;
        // The oldest's turn, or the injector's that found it empty.
        let oldest = if taken.is_multiple_of(OLDEST_EVERY) { self.take_oldest(level) } else { None };
        let job = oldest.or_else(|| own.deque.pop());
        if job.is_some() {
            own.taken.set(taken % (2 * OLDEST_EVERY));
        } else {
            own.flagged.set(false);
            self.shared.levels[level].occupied.store(false, Ordering::Release);
        }
        job
    }

    /// Whether the owner's next take at `level` is the injector's turn
    /// (see the module docs): its last take there was the
    /// `2 × OLDEST_EVERY − 1`th of the round.
    #[inline]
    pub(crate) fn injector_turn(&self, level: usize) -> bool {
        self.levels[level].taken.get() + 1 == 2 * OLDEST_EVERY
    }

    /// Ends the round of takes at `level`: the injector's turn gave a job.
    #[cold]
    pub(crate) fn took_on_injector_turn(&self, level: usize) {
        self.levels[level].taken.set(0);
    }

    /// The oldest spawned job of the owner's deque at `level`, taken from
    /// the end peers steal from; `None` if the deque is empty or a peer's
    /// steal raced this one (the caller then pops the newest).
    #[cold]
    fn take_oldest(&self, level: usize) -> Option<T> {
        match self.shared.levels[level].stealer.steal() {
            Steal::Success(job) => Some(job),
            Steal::Empty | Steal::Retry => None,
        }
    }

    /// How many jobs the deques hold, all levels together (the owner's
    /// view; a snapshot).
    pub(crate) fn len(&self) -> usize {
        self.levels.iter().map(|own| own.deque.len() + own.forks.len()).sum()
    }

    /// Whether every deque is empty.
    pub(crate) fn is_empty(&self) -> bool {
        self.levels.iter().all(|own| own.deque.is_empty() && own.forks.is_empty())
    }

    /// Whether the deques for `level` are empty (the owner's view).
    #[inline]
    pub(crate) fn is_empty_at(&self, level: usize) -> bool {
        let own = &self.levels[level];
        own.deque.is_empty() && own.forks.is_empty()
    }
}

impl<T: Queued> SharedQueues<T> {
    /// Whether the deques for `level` may hold a job (the flags).
    #[inline]
    pub(crate) fn may_hold(&self, level: usize) -> bool {
        let level = &self.levels[level];
        level.forked.load(Ordering::Acquire) || level.occupied.load(Ordering::Acquire)
    }

    /// Whether the deques for `level` hold a job: the flags, then the deques.
    #[inline]
    pub(crate) fn holds(&self, level: usize) -> bool {
        let level = &self.levels[level];
        (level.forked.load(Ordering::Acquire) && !level.fork_stealer.is_empty())
            || (level.occupied.load(Ordering::Acquire) && !level.stealer.is_empty())
    }

    /// How many spawned jobs the deque for `level` holds (a snapshot; fork
    /// halves are not counted, see the module docs).
    pub(crate) fn len(&self, level: usize) -> usize {
        self.levels[level].stealer.len()
    }

    /// Steals the oldest job of `level`: a fork half first (the largest
    /// piece of a divided job), else a spawned job. `Retry` if either
    /// answered so and neither gave a job.
    pub(crate) fn steal(&self, level: usize) -> Steal<T> {
        let level = &self.levels[level];
        let mut retry = false;
        if level.forked.load(Ordering::Acquire) {
            match level.fork_stealer.steal() {
                Steal::Success(job) => return Steal::Success(job.into()),
                Steal::Retry => retry = true,
                Steal::Empty => {}
            }
        }
        if level.occupied.load(Ordering::Acquire) {
            match level.stealer.steal() {
                Steal::Empty => {}
                outcome => return outcome,
            }
        }
        if retry { Steal::Retry } else { Steal::Empty }
    }

    /// Steals the oldest spawned job of `level`, never a fork half (a part
    /// of a running job, not a queued one): for `Pool::cancel_queued`.
    pub(crate) fn steal_spawned(&self, level: usize) -> Steal<T> {
        let level = &self.levels[level];
        if !level.occupied.load(Ordering::Acquire) {
            return Steal::Empty;
        }
        level.stealer.steal()
    }

    /// Test oracle: whether the deques for `level` hold a job, read under
    /// the stand-in queue's lock.
    #[cfg(all(test, loom))]
    pub(crate) fn holds_any(&self, level: usize) -> bool {
        let level = &self.levels[level];
        level.stealer.holds(|_| true) || level.fork_stealer.holds(|_| true)
    }

    /// Whether every deque is empty: nothing is pushed into a departed
    /// worker's deques, so once true it stays true.
    pub(crate) fn is_empty(&self) -> bool {
        self.levels.iter().all(|level| level.stealer.is_empty() && level.fork_stealer.is_empty())
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
