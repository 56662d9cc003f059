//! The pool's lifecycle: accepting jobs, closing intake, and knowing when the
//! drain is complete, with no counter that every job touches.
//!
//! # Shutdown, step by step
//!
//! 1. `close` sets the `CLOSED` bit of `state`. From then on a spawn from
//!    outside the pool is refused and its closure handed back. Jobs spawned
//!    by the pool's own running jobs are still accepted: they are part of
//!    the work being drained.
//! 2. Workers keep running every queued job, and the jobs those spawn.
//! 3. The pool is *drained* when intake is closed, no spawn from outside is
//!    under way, every queue is empty and every worker is asleep. Whoever
//!    may have made the last of these true checks them all
//!    (`Registry::try_drain`): `close` itself, a worker about to sleep, a
//!    worker loop that ends, a spawn from outside that ends (or is refused)
//!    after the close, and the `shutdown_now` sweep. The check runs under the sleepers' lock
//!    (`Sleep::wake_all_if_idle`), so no worker can wake meanwhile; if it
//!    holds, it sets `DRAINED`, wakes every worker, opens the drained latch
//!    `shutdown_timeout` waits on, and stops the deadline timer.
//! 4. A worker that finds nothing to pick and sees `DRAINED` exits.
//! 5. The thread that called `shutdown` (or dropped the pool) joins every
//!    worker thread, unless it *is* one of them, in a job or a hook (see
//!    `Pool::shutdown`).
//!
//! # Why a job is never accepted and then stranded
//!
//! A spawn from outside raises its thread's stripe of `spawning` with a
//! read-modify-write and only then reads `CLOSED`; it lowers the stripe
//! (another read-modify-write) after its push and its wake-up. The drain
//! check reads `CLOSED` (`Acquire`) and then every stripe with a
//! read-modify-write that adds zero (`AcqRel`). Read-modify-writes of one
//! stripe are totally ordered (its modification order), and each reads the
//! one before it, so for each spawn one of two things holds:
//!
//! * the spawn's raise comes first: the check reads the stripe raised and
//!   does not declare the drain, or reads it lowered again, which it
//!   acquires, so the spawn's push happens before the check's look at the
//!   queues, which then sees the job;
//! * the check's read comes first: the close (which the check acquired)
//!   happens before the spawn's raise, which acquires the check's read, so
//!   the spawn reads `CLOSED` and is refused.
//!
//! A spawn that lowers its stripe after a check read it raised reads
//! `CLOSED` in turn (by the same argument) and runs the check again, so a
//! check that declined because of a spawn is never the last one. A job
//! spawned from inside a running job cannot race the drain at all: its
//! worker is awake until the job has ended, and the job is in its queue by
//! then.
//!
//! The stripes spread the spawners over cache lines: a thread's spawns
//! touch only its own stripe's line, which no worker reads on the way of a
//! job; only a drain check, once intake is closed, reads them all.
//!
//! The proof needs only the modification order of each stripe, which the
//! loom models check exactly.

use crossbeam_utils::CachePadded;

use crate::sync::{AtomicUsize, Ordering};

/// The `state` bit set once intake is closed.
const CLOSED: usize = 1;
/// The `state` bit set once the pool is drained (see the module docs).
const DRAINED: usize = 2;

/// How many stripes the count of spawns under way is spread over (one
/// under loom, where every thread uses stripe 0; see [`stripe`]).
#[cfg(not(loom))]
const STRIPES: usize = 16;
#[cfg(loom)]
const STRIPES: usize = 1;

/// Intake and drain state.
pub(crate) struct Lifecycle {
    /// `CLOSED` | `DRAINED`; set with read-modify-writes, never cleared.
    state: AtomicUsize,
    /// Spawns from outside the pool under way, spread over stripes by
    /// spawning thread.
    spawning: Box<[CachePadded<AtomicUsize>]>,
}

/// A spawn from outside, admitted and under way: its stripe of `spawning`.
#[must_use = "the spawn must be ended with `Lifecycle::end_spawn`"]
pub(crate) struct Spawning(usize);

impl Lifecycle {
    pub(crate) fn new() -> Lifecycle {
        Lifecycle {
            state: AtomicUsize::new(0),
            spawning: (0..STRIPES).map(|_| CachePadded::new(AtomicUsize::new(0))).collect(),
        }
    }

    /// Admits a spawn from outside the pool, or refuses it because intake
    /// is closed (`None`; the caller then runs the drain check, which the
    /// refused spawn may have delayed).
    #[inline]
    pub(crate) fn begin_spawn(&self) -> Option<Spawning> {
        let stripe = stripe();
        self.spawning[stripe].fetch_add(1, Ordering::AcqRel);
        if self.is_closed() {
            self.spawning[stripe].fetch_sub(1, Ordering::AcqRel);
            return None;
        }
        Some(Spawning(stripe))
    }

    /// Ends an admitted spawn, after its push and its wake-up; returns
    /// whether intake is closed by now (the caller then runs the drain
    /// check).
    #[inline]
    pub(crate) fn end_spawn(&self, spawning: Spawning) -> bool {
        self.spawning[spawning.0].fetch_sub(1, Ordering::AcqRel);
        self.is_closed()
    }

    /// Closes intake (the drain check comes next).
    pub(crate) fn close(&self) {
        self.state.fetch_or(CLOSED, Ordering::AcqRel);
    }

    /// Whether intake is closed. `Acquire`: a drain check that reads it set
    /// carries the close on to the spawns it reads (see the module docs).
    #[inline]
    pub(crate) fn is_closed(&self) -> bool {
        self.state.load(Ordering::Acquire) & CLOSED != 0
    }

    /// Whether any spawn from outside is under way (see the module docs).
    pub(crate) fn spawns_under_way(&self) -> bool {
        self.count_under_way() != 0
    }

    /// How many spawns from outside are under way: a read-modify-write of
    /// every stripe (see the module docs), a snapshot in which a spawn
    /// being refused is counted for a moment too. Each one that was
    /// admitted pushes its job after this read, or had pushed it before:
    /// what a `TimedOut` report adds for jobs queued after its sweep
    /// (`abort.rs`).
    pub(crate) fn count_under_way(&self) -> usize {
        self.spawning.iter().map(|stripe| stripe.fetch_add(0, Ordering::AcqRel)).sum()
    }

    /// Records the drain (under the sleepers' lock; see the module docs).
    pub(crate) fn set_drained(&self) {
        self.state.fetch_or(DRAINED, Ordering::Release);
    }

    /// Whether the pool is drained: workers may exit. `Acquire`: pairs with
    /// [`Lifecycle::set_drained`].
    pub(crate) fn is_drained(&self) -> bool {
        self.state.load(Ordering::Acquire) & DRAINED != 0
    }
}

/// The calling thread's stripe: threads take stripes in turn as they first
/// spawn. A thread whose thread-locals are being destroyed uses stripe 0.
/// (Under loom every thread uses stripe 0: an execution must touch the same
/// atomics each time it is replayed, and the turn taken would not be.)
#[cfg(loom)]
fn stripe() -> usize {
    0
}

#[cfg(not(loom))]
#[inline]
fn stripe() -> usize {
    use crate::sync::{plain, thread_local};
    static NEXT: plain::AtomicUsize = plain::AtomicUsize::new(0);
    thread_local! {
        static STRIPE: usize = NEXT.fetch_add(1, Ordering::Relaxed) % STRIPES;
    }
    STRIPE.try_with(|stripe| *stripe).unwrap_or(0)
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn spawns_are_refused_once_closed_and_tracked_until_they_end() {
        let lifecycle = Lifecycle::new();
        let spawn = lifecycle.begin_spawn().expect("open");
        assert!(lifecycle.spawns_under_way());
        lifecycle.close();
        assert!(lifecycle.is_closed() && !lifecycle.is_drained());
        assert!(lifecycle.begin_spawn().is_none(), "intake is closed");
        assert!(lifecycle.spawns_under_way(), "the admitted spawn is still under way");
        assert!(lifecycle.end_spawn(spawn), "it ends after the close");
        assert!(!lifecycle.spawns_under_way());
        lifecycle.set_drained();
        assert!(lifecycle.is_drained());
    }
}
