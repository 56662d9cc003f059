//! Jobs run ahead of their entry: the counts of a job that its waiter
//! claimed and ran inline while its entry stays queued.
//!
//! A worker that waits on a job's handle, or in a scope, may claim the job
//! (a scoped job less urgent than its own, `forkjoin/scope.rs`) and run it
//! inline (`runtime/help.rs`); the job is counted `started` then, while its
//! live entry stays queued until some thread pops and discards it (a dead
//! entry left by an earlier promotion is reaped as usual). The claimer
//! counts `ahead`, at the live entry's level, before it claims (and takes
//! it back if the claim is lost), so before the job is counted started and
//! before anyone can find the entry claimed; whoever takes that entry
//! counts `ahead_gone` (not `reaped`: no fate was counted) after taking
//! it. A snapshot reads, after `started`, the fates and `reaped`,
//! `ahead_gone`, then `ahead`, then the entries, and leaves `ahead −
//! ahead_gone` of them out of `entries`: every entry counted gone was
//! claimed before (so `ahead_gone <= ahead` as read) and is out of the
//! queues read after it, and every claim whose `started` the snapshot saw
//! is in `ahead`. So no job is in both `started` and `entries`; a claim or
//! a pop between the reads, or a lost claim not yet taken back, only makes
//! the sum lag.

use super::MetricsCore;
use crate::sync::Ordering;

impl MetricsCore {
    /// Counts a job of `level` that a waiting worker is about to claim to
    /// run inline: before the claim (see the module docs); its entry is
    /// still queued.
    pub(crate) fn ran_ahead(&self, level: usize) {
        self.swept[level].ahead.fetch_add(1, Ordering::Release);
    }

    /// Takes back a [`MetricsCore::ran_ahead`] whose claim was lost.
    pub(crate) fn claim_lost(&self, level: usize) {
        self.swept[level].ahead.fetch_sub(1, Ordering::Release);
    }

    /// Records a [`MetricsCore::ran_ahead`] whose claim won: the job left
    /// the backlog now, a take for `oldest_wait` (`counters.rs`, "Queue
    /// waits and the oldest job's wait").
    pub(crate) fn claim_won(&self, level: usize) {
        self.took(level);
    }

    /// Counts the dead entry of such a job taken off its queue (by a worker,
    /// the sweep or `cancel_queued`): counted nowhere else, since the job
    /// was; a take for `oldest_wait` all the same.
    pub(crate) fn ahead_gone(&self, level: usize) {
        self.took(level);
        self.swept[level].ahead_gone.fetch_add(1, Ordering::Release);
    }

    /// The entries `queued` reads at `level`, less those of jobs run ahead
    /// of them: `ahead_gone`, then `ahead`, then the entries (module docs).
    pub(super) fn live_entries(&self, level: usize, queued: impl FnOnce() -> usize) -> u64 {
        let swept = &self.swept[level];
        let gone = swept.ahead_gone.load(Ordering::Acquire);
        let ahead = swept.ahead.load(Ordering::Acquire);
        (queued() as u64).saturating_sub(ahead.saturating_sub(gone))
    }
}
