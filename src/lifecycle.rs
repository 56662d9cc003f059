//! The pool's lifecycle: accepting jobs, closing intake, and knowing when the
//! drain is complete.
//!
//! # Shutdown, step by step
//!
//! 1. `close` sets the `CLOSED` bit of `state`. From then on a spawn from
//!    outside the pool is refused and its closure handed back. Jobs spawned
//!    by the pool's own running jobs are still accepted: they are part of
//!    the work being drained.
//! 2. Workers keep running every queued job, and the jobs those spawn.
//! 3. Each finished job lowers the outstanding count in `state`. The job that
//!    brings it to zero after `CLOSED` was set, or `close` itself when it
//!    finds zero, runs `Registry::on_drained`: it wakes every sleeping
//!    worker, opens the drained latch `shutdown_timeout` waits on, and stops
//!    the deadline timer.
//! 4. A worker that finds nothing to pick and sees `state == CLOSED` (the
//!    pool is *drained*: closed, nothing outstanding) moves any stragglers
//!    from its local deques to the injectors (there are none when drained)
//!    and exits.
//! 5. The thread that called `shutdown` (or dropped the pool) joins every
//!    worker thread, unless it *is* one of them, in a job or a hook (see
//!    `Pool::shutdown`).
//!
//! # Why a job is never accepted and then stranded
//!
//! The closed flag and the outstanding count share one atomic word, and
//! every change to it is a read-modify-write that returns the word as it
//! was. A spawn's increment and `close`'s `fetch_or` are therefore totally
//! ordered (the word's modification order): either the spawn comes first,
//! and the word cannot read "closed, nothing outstanding" until that job has
//! finished, so no worker exits before running it; or `close` comes first,
//! the spawn's own increment returns the `CLOSED` bit, and the job is
//! refused (the increment is undone). A job spawned from inside a running
//! job cannot race the exit at all: its parent is still outstanding.
//!
//! Once drained the word stays drained, except for a moment while a refused
//! spawn's increment is undone; that undo sees the drain again and wakes
//! every sleeper again.
//!
//! The proof needs no `SeqCst` store-buffering argument, only the
//! modification order of one location; the loom models check it exactly
//! (loom treats `SeqCst` loads and stores as acquire/release, so a proof
//! that rested on them could not be model-checked).

use crate::sync::{AtomicUsize, Ordering};

/// The `state` bit set once intake is closed; the bits below it count the
/// jobs accepted and not yet finished (queued or running).
/// (The count would need 2^63 outstanding jobs, on a 64-bit target, to
/// reach the bit.)
const CLOSED: usize = 1 << (usize::BITS - 1);

/// Counts accepted-but-unfinished jobs and holds the closed flag.
pub(crate) struct Lifecycle {
    /// `CLOSED` | the number of outstanding jobs. Changed only by
    /// read-modify-writes (`AcqRel`: a worker that sees the drain also sees
    /// the effects of every finished job).
    state: AtomicUsize,
}

impl Lifecycle {
    pub(crate) fn new() -> Lifecycle {
        Lifecycle { state: AtomicUsize::new(0) }
    }

    /// Admits one job, or refuses it because intake is closed. A job spawned
    /// by a running job of this pool (`from_job`) is admitted even when
    /// closed. Returns `false` on refusal, having undone its count; a refusal
    /// that completes the drain is reported through `on_drained`.
    pub(crate) fn admit(&self, from_job: bool, on_drained: impl FnOnce()) -> bool {
        let before = self.state.fetch_add(1, Ordering::AcqRel);
        if from_job || before & CLOSED == 0 {
            return true;
        }
        self.finish(on_drained);
        false
    }

    /// Marks one admitted job as finished; runs `on_drained` if that
    /// completed the drain of a closed pool.
    pub(crate) fn finish(&self, on_drained: impl FnOnce()) {
        if self.state.fetch_sub(1, Ordering::AcqRel) == CLOSED | 1 {
            on_drained();
        }
    }

    /// Closes intake; runs `on_drained` if nothing was outstanding.
    pub(crate) fn close(&self, on_drained: impl FnOnce()) {
        if self.state.fetch_or(CLOSED, Ordering::AcqRel) == 0 {
            on_drained();
        }
    }

    /// How many admitted jobs have not finished (queued or running); a
    /// snapshot (`shutdown_timeout` reports it).
    pub(crate) fn outstanding(&self) -> usize {
        self.state.load(Ordering::Acquire) & !CLOSED
    }

    /// Whether the pool is closed and every admitted job has finished:
    /// workers may exit. `Acquire`: pairs with the `AcqRel` of the last
    /// `finish`.
    pub(crate) fn is_drained(&self) -> bool {
        self.state.load(Ordering::Acquire) == CLOSED
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use std::cell::Cell;

    use super::*;

    #[test]
    fn drains_once_the_last_outstanding_job_finishes() {
        let lifecycle = Lifecycle::new();
        let drains = Cell::new(0);
        let drained = || drains.set(drains.get() + 1);
        assert!(lifecycle.admit(false, drained));
        assert!(lifecycle.admit(false, drained));
        lifecycle.close(drained);
        assert_eq!(drains.get(), 0);
        assert!(!lifecycle.is_drained());
        assert!(!lifecycle.admit(false, drained), "intake is closed");
        assert!(lifecycle.admit(true, drained), "a running job may still spawn");
        assert_eq!(lifecycle.outstanding(), 3, "the closed bit is not counted");
        lifecycle.finish(drained);
        lifecycle.finish(drained);
        assert!(!lifecycle.is_drained());
        lifecycle.finish(drained);
        assert_eq!(drains.get(), 1);
        assert!(lifecycle.is_drained());
        assert_eq!(lifecycle.outstanding(), 0);
    }

    #[test]
    fn closing_an_idle_pool_drains_at_once_and_refusals_drain_again() {
        let lifecycle = Lifecycle::new();
        let drains = Cell::new(0);
        let drained = || drains.set(drains.get() + 1);
        lifecycle.close(drained);
        assert_eq!(drains.get(), 1);
        assert!(lifecycle.is_drained());
        // A refused spawn raises the count for a moment; undoing it reports
        // the drain again so that a worker that saw the raised count and
        // went to sleep is woken.
        assert!(!lifecycle.admit(false, drained));
        assert_eq!(drains.get(), 2);
        assert!(lifecycle.is_drained());
    }
}
