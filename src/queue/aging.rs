//! Opt-in bounded starvation ([`Builder::max_passes`](crate::Builder::max_passes)):
//! strict priority lets a steady stream of urgent jobs keep a less urgent
//! job queued forever; with a bound `k`, a worker passes over a level that
//! holds jobs at most a bounded number of times in a row.
//!
//! # The rule
//!
//! Each worker keeps, per level, a count of *passes*: jobs of more urgent
//! levels it started in a row while that level held a job (as far as the
//! hints of `levels.rs` tell, read just after the start). A start at a
//! level resets its count, and so does finding the level empty. When some
//! level's count has reached `k`, the worker's next pick tries that level
//! first (the most urgent such level, if several): its own deque, the
//! injector, then its peers, as the pick rule does for one level. If the
//! level has nothing any more, the count resets and the pick walks the
//! levels as usual.
//!
//! Only a job whose closure begins is a start. A dead entry (its job
//! promoted to another level, cancelled, or expired: `job/state.rs`) that
//! a pick takes starts nothing, so the counts go back to what they were
//! before that pick: else a due level's dead entry would pass for its
//! turn, and the live job behind it would wait `k` more passes for each
//! dead entry ahead of it (`tests/aging_dead_entries.rs`).
//!
//! # The bound
//!
//! While a level holds a job, one worker starts at most `k + L − 2` jobs
//! of more urgent levels in a row before it starts one of that level, `L`
//! being the number of levels: `k` passes make the level due, and the due
//! levels more urgent than it (at most `L − 2` of them) may each be served
//! once first. With two levels the bound is `k`. It is a bound per worker
//! and per level, not per job: the order within a level (`queue/local.rs`)
//! still decides which of its jobs goes. It counts the worker loop's starts only: a job that waits
//! (`runtime/help.rs`) helps with jobs no less urgent than itself, however
//! many, with no count. A pick that loses a race for the due level's job
//! to another thread walks the levels as usual and may start a more urgent
//! job first: one pass more, while some other thread takes a job of that
//! level (no model or test covers that race). `tests/aging.rs` checks the
//! bound with a property test.
//!
//! This is tokio's global-queue interval (its workers take from the
//! shared queue every so many ticks however full their local queue is:
//! 31 on the current-thread runtime, self-tuned from 61 to about 200 µs
//! of polling on the multi-thread one; Go's scheduler every 61st) made
//! per level and counted only while a level waits; the interval itself is
//! our own. Strict priority (no bound) stays the default, and reserved
//! threads always pick strictly.

use std::cell::Cell;

/// One worker's pass counts, one per level.
pub(crate) struct Aging {
    max_passes: u32,
    passes: Box<[Cell<u32>]>,
    /// The counts before the last [`Aging::started`], for [`Aging::undo`].
    before: Box<[Cell<u32>]>,
}

impl Aging {
    /// Counts for `levels` levels, bounded by `max_passes` (at least 1).
    pub(crate) fn new(levels: usize, max_passes: u32) -> Aging {
        let zeros = || (0..levels).map(|_| Cell::new(0)).collect();
        Aging { max_passes, passes: zeros(), before: zeros() }
    }

    /// The level this worker should try first on its next pick: the most
    /// urgent one whose count has reached the bound.
    pub(crate) fn due(&self) -> Option<usize> {
        self.passes.iter().position(|passes| passes.get() >= self.max_passes)
    }

    /// A due level turned out empty: it is no longer passed over.
    pub(crate) fn found_empty(&self, level: usize) {
        self.passes[level].set(0);
    }

    /// This worker started a job of level `taken`: each less urgent level
    /// that `holds` a job counts one more pass, the others and `taken`
    /// start again from zero.
    pub(crate) fn started(&self, taken: usize, holds: impl Fn(usize) -> bool) {
        for (before, passes) in self.before.iter().zip(&self.passes) {
            before.set(passes.get());
        }
        self.passes[taken].set(0);
        for (level, passes) in self.passes.iter().enumerate().skip(taken + 1) {
            passes.set(if holds(level) { passes.get() + 1 } else { 0 });
        }
    }

    /// The job the last [`Aging::started`] counted never started (a dead
    /// entry: its job promoted away, cancelled or expired): the counts go
    /// back to what they were before it.
    pub(crate) fn undo(&self) {
        for (before, passes) in self.before.iter().zip(&self.passes) {
            passes.set(before.get());
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn a_level_passed_over_k_times_is_due_and_resets_when_served() {
        let aging = Aging::new(3, 2);
        aging.started(0, |_| true);
        assert_eq!(aging.due(), None);
        aging.started(0, |level| level == 2);
        // Level 1 was found empty on the second start: it reset.
        assert_eq!(aging.due(), Some(2));
        aging.started(2, |_| true);
        assert_eq!(aging.due(), None);
        aging.started(0, |_| true);
        aging.started(1, |_| true);
        assert_eq!(aging.due(), Some(2));
        aging.found_empty(2);
        assert_eq!(aging.due(), None);
    }

    #[test]
    fn a_start_undone_leaves_the_counts_as_they_were() {
        let aging = Aging::new(3, 2);
        aging.started(0, |_| true);
        aging.started(0, |_| true);
        assert_eq!(aging.due(), Some(1));
        // A dead entry of level 1: not its turn.
        aging.started(1, |_| true);
        aging.undo();
        assert_eq!(aging.due(), Some(1));
        aging.started(1, |_| true);
        assert_eq!(aging.due(), Some(2));
    }
}
