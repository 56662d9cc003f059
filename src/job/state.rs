//! The state machine of a cancellable job: which of a worker, a canceller
//! and the deadline timer gets the job's closure.
//!
//! # States
//!
//! | state              | the job                               | closure in the cell | handle yields        |
//! |--------------------|---------------------------------------|---------------------|----------------------|
//! | `QUEUED`           | waits in a queue                      | yes                 | (pending)            |
//! | `RUNNING`          | runs on a worker                      | no (the worker has it) | (pending)         |
//! | `CANCEL_REQUESTED` | runs; its context reports cancelled   | no                  | (pending)            |
//! | `DONE`             | returned or panicked                  | no (consumed)       | its value or panic   |
//! | `CANCELLING`       | never ran, never will                 | no (being dropped)  | (pending)            |
//! | `CANCELLED`        | never ran, never will                 | no (dropped)        | `JobError::Cancelled`|
//! | `EXPIRING`         | never ran: deadline passed first      | no (being dropped)  | (pending)            |
//! | `EXPIRED`          | never ran: deadline passed first      | no (dropped)        | `JobError::Expired`  |
//!
//! # Transitions
//!
//! | from                          | to                 | made by                                                        |
//! |-------------------------------|--------------------|----------------------------------------------------------------|
//! | `QUEUED`                      | `RUNNING`          | a worker that popped the live entry before the deadline; a worker waiting on the job's handle (`runtime/help.rs`), through the live entry's epoch, whose entry the popper then discards |
//! | `QUEUED`                      | `CANCELLING`       | `cancel()` on a handle; `shutdown_now` (its sweep, or a worker) |
//! | `QUEUED`                      | `EXPIRING`         | the timer at the deadline; a worker that pops it after it      |
//! | `CANCELLING`, `EXPIRING`      | `CANCELLED`, `EXPIRED` | the same thread, once it has dropped the closure           |
//! | `RUNNING`                     | `CANCEL_REQUESTED` | `cancel()` on a handle                                         |
//! | `RUNNING`, `CANCEL_REQUESTED` | `DONE`             | the worker, when the closure returns or panics                 |
//!
//! Every transition out of `QUEUED` is a compare-exchange from `QUEUED`, so
//! among a worker, a waiter, any number of cancellers and the timer exactly
//! one wins;
//! only the winner locks the body and takes the closure out, so the lock is
//! never contended. The winner of `CANCELLING` or `EXPIRING` drops the
//! closure, then stores `CANCELLED` or `EXPIRED`, then completes the handle,
//! so whoever sees the final state or the handle's error also sees the
//! closure (and everything it captured) dropped. `DONE` is likewise stored
//! before the value is sent, so a `cancel()` after a successful
//! `join_timeout` answers [`CancelOutcome::TooLate`].
//!
//! # A cancel that loses to a drop in progress
//!
//! A `cancel()` that finds `CANCELLING` or `EXPIRING` waits until the
//! winner has dropped the closure and stored the final state before it
//! answers, since [`CancelOutcome::Prevented`] promises the closure
//! dropped (and `TooLate` then means the same). The winner records its
//! thread in `dropper` before it runs the destructor, and clears it with
//! the final store under `dropper`'s lock before it notifies; a waiter
//! checks both under that lock, so no wake-up is lost.
//! A `cancel()` made by the destructor itself, on the dropping thread, does
//! not wait for itself. Workers, the timer and the sweep never wait: an
//! entry they find in a transient state is discarded with its fate, so a
//! destructor that blocks on the pool (say, one that owns the `Pool` and
//! shuts it down) cannot deadlock it.
//!
//! # Promotion: entries, epochs and levels
//!
//! A queued job can be moved to another level
//! ([`JobHandle::promote`](crate::JobHandle::promote)). Its cell stays the
//! same (handles, the timer and the context keep pointing at it); a new
//! queue entry is pushed at the new level, and the old one becomes dead.
//! The state word holds, beside the state, the job's *level* and an
//! *epoch*: each queue entry carries the epoch it was pushed with, and only
//! an entry whose epoch is the cell's can take the job out of `QUEUED` (a
//! worker's claim, the expiry at pop, the sweep's cancel). A promotion is
//! one compare-exchange from `QUEUED` at level `l`, epoch `e` to `QUEUED`
//! at the new level, epoch `e + 1`, so it races the other transitions out
//! of `QUEUED` exactly as they race each other, with no ABA: a claim
//! through the old entry compares the whole word and fails. The handle's
//! `cancel` and the timer act on the job, not on an entry, and ignore the
//! epoch. A worker waiting on the job's handle claims it through the live
//! entry (`TaskState::live_entry`), so a claim racing a promotion is one
//! more move out of `QUEUED` at some epoch; once claimed, the job is no
//! longer `QUEUED` and cannot be promoted.
//!
//! Every fate is counted at a level (`job::JobTally`): cancelled or
//! expired by the winner of the move out of `QUEUED`, promoted by the
//! winner of the move to a new epoch. Each counts at the level in the word
//! its compare-exchange replaced, never at a level read before or after it,
//! so a cancel or an expiry racing a promotion counts at the level of the
//! entry live at that moment, and each level's figures add up at rest
//! (`tests/promote.rs` checks this under races). The level and the epoch
//! change only in `QUEUED`, so later stores keep them. A dead entry,
//! whatever the state, is discarded and counted as reaped where it leaves
//! its queue (`metrics/counters.rs`).
//!
//! Orderings: the compare-exchanges are `AcqRel` and the loads `Acquire`;
//! the closure and the result travel through the body mutex and the
//! oneshot channel, which synchronise on their own, so the state only has to
//! order itself.

use std::time::{Duration, Instant};

use crate::error::JobError;
// Modelled, unlike the rest of a job cell: see `sync.rs`.
use crate::sync::thread::{self, ThreadId};
use crate::sync::{AtomicU64, Condvar, Mutex, Ordering, lock, wait_for, wait_until};

pub(super) const QUEUED: u8 = 0;
pub(super) const RUNNING: u8 = 1;
pub(super) const CANCEL_REQUESTED: u8 = 2;
pub(super) const DONE: u8 = 3;
pub(super) const CANCELLED: u8 = 4;
pub(super) const EXPIRED: u8 = 5;
pub(super) const CANCELLING: u8 = 6;
pub(super) const EXPIRING: u8 = 7;

/// The state word: the state in the low [`STATE_BITS`] bits, the job's
/// level in the next [`LEVEL_BITS`], the epoch above (see "Promotion").
const STATE_BITS: u32 = 8;
const LEVEL_BITS: u32 = 8;
const STATE_MASK: u64 = (1 << STATE_BITS) - 1;
const LEVEL_MASK: u64 = ((1 << LEVEL_BITS) - 1) << STATE_BITS;
const EPOCH_SHIFT: u32 = STATE_BITS + LEVEL_BITS;
const _: () = assert!(crate::config::MAX_LEVELS <= 1 << LEVEL_BITS);

/// The state part of a state word.
fn state_of(word: u64) -> u8 {
    (word & STATE_MASK) as u8
}

/// The level part of a state word.
fn level_of(word: u64) -> usize {
    ((word & LEVEL_MASK) >> STATE_BITS) as usize
}

/// The epoch part of a state word.
fn epoch_of(word: u64) -> u64 {
    word >> EPOCH_SHIFT
}

/// What [`JobHandle::cancel`](crate::JobHandle::cancel) and
/// [`CancelHandle::cancel`](crate::CancelHandle::cancel) achieved.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum CancelOutcome {
    /// The job had not started and never will: its closure (and everything
    /// it captured) was dropped before `cancel` returned, and its handle
    /// yields [`JobError::Cancelled`]. Also the answer when an earlier
    /// cancellation (or [`Pool::shutdown_now`](crate::Pool::shutdown_now))
    /// already did this; if another thread is still dropping the closure,
    /// `cancel` waits for that drop to end. (Called from the closure's own
    /// destructor, it answers at once: the drop is under way.)
    Prevented,
    /// The job is running. Its [`JobContext`](crate::JobContext) now reports
    /// [`is_cancelled`](crate::JobContext::is_cancelled) and wakes its
    /// [`wait_for_cancel`](crate::JobContext::wait_for_cancel); the job ends when
    /// its own code returns, and its handle yields what it returned (a
    /// thread cannot be stopped from outside).
    Requested,
    /// The job had already ended: it returned, panicked or expired (an
    /// expired job's closure dropped, as for `Prevented`). Nothing changed.
    TooLate,
}

/// The non-generic half of a task: its state, deadline, and the condition
/// variable that [`JobContext::wait_for_cancel`] and a `cancel()` waiting
/// for a drop in progress sleep on.
pub(crate) struct TaskState {
    /// The state, the job's level and the epoch of its live queue entry
    /// (see "Promotion").
    state: AtomicU64,
    deadline: Option<Instant>,
    /// The thread dropping the closure while the state is `CANCELLING` or
    /// `EXPIRING` (see the module docs). The lock pairs with `signal` so
    /// that a waiter cannot miss a change made between its check and its
    /// wait.
    dropper: Mutex<Option<ThreadId>>,
    /// Notified on a cancellation request and when a drop in progress ends.
    signal: Condvar,
}

impl TaskState {
    /// The state of a job queued at `level` (below [`MAX_LEVELS`](crate::MAX_LEVELS)).
    pub(crate) fn new(deadline: Option<Instant>, level: usize) -> TaskState {
        let word = QUEUED as u64 | ((level as u64) << STATE_BITS) & LEVEL_MASK;
        TaskState { state: AtomicU64::new(word), deadline, dropper: Mutex::new(None), signal: Condvar::new() }
    }

    /// Whether the job still waits in a queue.
    pub(crate) fn is_queued(&self) -> bool {
        self.load() == QUEUED
    }

    /// Whether the job has ended: returned, panicked, cancelled or expired
    /// (its closure possibly still being dropped: the fate is sealed), and
    /// is counted in the metrics. `DONE` is stored after the count
    /// (`Job::run`); a fate being dropped is counted before the dropper
    /// records itself (`task.rs`), so a fate still being decided (no dropper
    /// yet) does not count as ended. Never blocks but for the short lock.
    pub(crate) fn has_ended(&self) -> bool {
        match self.load() {
            DONE | CANCELLED | EXPIRED => true,
            CANCELLING | EXPIRING => {
                let dropper = lock(&self.dropper);
                dropper.is_some() || matches!(self.load(), CANCELLED | EXPIRED)
            }
            _ => false,
        }
    }

    /// How a job that will not run ends, its closure dropped or being
    /// dropped: `None` unless it left `QUEUED` for a cancellation or expiry.
    pub(super) fn unrun(&self) -> Option<Unrun> {
        match self.load() {
            CANCELLING | CANCELLED => Some(Unrun::Cancelled),
            EXPIRING | EXPIRED => Some(Unrun::Expired),
            _ => None,
        }
    }

    /// Whether the entry pushed with `epoch`, which found the job out of
    /// `QUEUED`, is its live entry and the job was not cancelled or
    /// expired: a worker waiting for it on its handle claimed it and ran it
    /// inline (`runtime/help.rs`), which counted it, and the entry is only
    /// discarded. A dead entry (the job was promoted away from it) is not:
    /// its fate, `promoted`, was counted then.
    pub(crate) fn ran_ahead_of(&self, epoch: u64) -> bool {
        let word = self.state.load(Ordering::Acquire);
        epoch_of(word) == epoch && matches!(state_of(word), RUNNING | CANCEL_REQUESTED | DONE)
    }

    /// The level and the epoch of the job's live entry (see "Promotion"):
    /// a waiter claims the job through it (`runtime/help.rs`).
    pub(crate) fn live_entry(&self) -> (usize, u64) {
        let word = self.state.load(Ordering::Acquire);
        (level_of(word), epoch_of(word))
    }

    /// Whether a running job was asked to stop.
    pub(crate) fn is_cancel_requested(&self) -> bool {
        self.load() == CANCEL_REQUESTED
    }

    /// The state now (one of the constants above).
    pub(super) fn load(&self) -> u8 {
        state_of(self.state.load(Ordering::Acquire))
    }

    /// Stores `state`, keeping the level and the epoch. Only for a job out
    /// of `QUEUED`, whose level and epoch no longer change.
    fn store(&self, state: u8) {
        let word = self.state.load(Ordering::Acquire);
        self.state.store((word & !STATE_MASK) | state as u64, Ordering::Release);
    }

    /// Records that the job returned or panicked.
    pub(super) fn set_done(&self) {
        self.store(DONE);
    }

    /// Whether the job's deadline, if it has one, has passed.
    pub(super) fn is_past_deadline(&self) -> bool {
        self.deadline.is_some_and(|deadline| Instant::now() >= deadline)
    }

    /// Moves the job from `from` to `to`, whatever its epoch; `false` if
    /// it was not in `from`.
    pub(super) fn transition(&self, from: u8, to: u8) -> bool {
        self.transition_at(None, from, to).is_some()
    }

    /// Moves the job from `from` to `to`, keeping its level and epoch;
    /// with `Some(epoch)`, only if the job's epoch is that entry's (see
    /// "Promotion"). Returns the job's level as the move found it, where a
    /// fate it decides is counted; `None` if the job was not in `from` or
    /// the entry is dead.
    pub(super) fn transition_at(&self, epoch: Option<u64>, from: u8, to: u8) -> Option<usize> {
        let mut word = self.state.load(Ordering::Acquire);
        loop {
            if epoch.is_some_and(|epoch| epoch != epoch_of(word)) || state_of(word) != from {
                return None;
            }
            let next = (word & !STATE_MASK) | to as u64;
            match self.state.compare_exchange(word, next, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => return Some(level_of(word)),
                Err(seen) => word = seen,
            }
        }
    }

    /// Moves a queued job to `level` and a new epoch (see "Promotion");
    /// returns the level it left and the new epoch, or `None` if the job is
    /// no longer queued.
    pub(super) fn next_epoch(&self, level: usize) -> Option<(usize, u64)> {
        let mut word = self.state.load(Ordering::Acquire);
        loop {
            if state_of(word) != QUEUED {
                return None;
            }
            let epoch = epoch_of(word) + 1;
            let next = QUEUED as u64 | ((level as u64) << STATE_BITS) & LEVEL_MASK | epoch << EPOCH_SHIFT;
            match self.state.compare_exchange(word, next, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => return Some((level_of(word), epoch)),
                Err(seen) => word = seen,
            }
        }
    }

    /// Blocks for at most `timeout`, or until a cancellation is requested;
    /// returns whether one was. A `timeout` too large for `Instant` waits
    /// without bound.
    pub(crate) fn wait_for_cancel(&self, timeout: Duration) -> bool {
        let deadline = Instant::now().checked_add(timeout);
        let (guard, _) = wait_until(
            lock(&self.dropper),
            deadline,
            |_| self.is_cancel_requested(),
            |guard, left| wait_for(&self.signal, guard, left),
        );
        drop(guard);
        self.is_cancel_requested()
    }

    /// Wakes every [`TaskState::wait_for_cancel`]. Taking the lock orders
    /// this after any waiter's check of the state: a waiter either saw the
    /// request, or is already waiting and gets the notification.
    pub(super) fn wake_waiters(&self) {
        drop(lock(&self.dropper));
        self.signal.notify_all();
    }

    /// Called by the winner of `QUEUED → CANCELLING` or `EXPIRING` before
    /// it drops the closure: records the dropping thread.
    pub(super) fn dropping(&self) {
        *lock(&self.dropper) = Some(thread::current().id());
    }

    /// Called by the same thread once the closure is dropped: stores the
    /// final state for `how` and wakes the cancels waiting for it.
    pub(super) fn dropped(&self, how: Unrun) {
        let mut dropper = lock(&self.dropper);
        *dropper = None;
        self.store(how.settled());
        drop(dropper);
        self.signal.notify_all();
    }

    /// Waits while another thread is dropping the closure (the state is
    /// `CANCELLING` or `EXPIRING`); returns at once on the dropping thread
    /// itself.
    pub(super) fn wait_dropped(&self) {
        let me = thread::current().id();
        let mut dropper = lock(&self.dropper);
        while matches!(self.load(), CANCELLING | EXPIRING) && *dropper != Some(me) {
            dropper = wait_for(&self.signal, dropper, None);
        }
    }
}

/// How a job can end without running.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Unrun {
    /// By a handle's `cancel`, or by `shutdown_now` (its sweep, or a worker
    /// while aborting).
    Cancelled,
    /// Its deadline passed before a worker claimed it.
    Expired,
}

impl Unrun {
    /// The state its winner moves the job to from `QUEUED`, while it drops
    /// the closure.
    pub(super) fn state(self) -> u8 {
        match self {
            Unrun::Cancelled => CANCELLING,
            Unrun::Expired => EXPIRING,
        }
    }

    /// The state once the closure is dropped.
    fn settled(self) -> u8 {
        match self {
            Unrun::Cancelled => CANCELLED,
            Unrun::Expired => EXPIRED,
        }
    }

    pub(super) fn error(self) -> JobError {
        match self {
            Unrun::Cancelled => JobError::Cancelled,
            Unrun::Expired => JobError::Expired,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The level travels with the epoch in one word: a promotion returns the
    /// level it replaced, a later move out of `QUEUED` finds the new one, and
    /// an entry of the old epoch can no longer move the job.
    #[test]
    fn the_level_moves_with_the_epoch() {
        let last = crate::config::MAX_LEVELS - 1;
        let state = TaskState::new(None, last);
        assert_eq!(state.next_epoch(2), Some((last, 1)));
        assert_eq!(state.next_epoch(0), Some((2, 2)));
        assert_eq!(state.transition_at(Some(1), QUEUED, RUNNING), None, "a dead entry");
        assert_eq!(state.transition_at(Some(2), QUEUED, CANCELLING), Some(0));
        assert_eq!(state.next_epoch(1), None, "no longer queued");
        state.store(CANCELLED);
        assert_eq!((state.load(), state.unrun()), (CANCELLED, Some(Unrun::Cancelled)));
    }
}
