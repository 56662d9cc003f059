//! A job that waits for other jobs of its pool: the worker helps instead of
//! blocking.
//!
//! A job of level `l` waits for *what it waits for*: a `join`'s second half
//! (`forkjoin/join.rs`), the jobs of a `scope` (`forkjoin/scope.rs`), or a
//! [`JobHandle`](crate::JobHandle)'s job of the same pool. On one of the
//! pool's workers the wait ([`wait_until`]) loops over:
//!
//! 1. **Done?** Return.
//! 2. **Claim.** If what it waits for has a part that has not started, take
//!    it and run it inline (the join's half popped back, the handle's job
//!    claimed `QUEUED → RUNNING`, a scope job taken out of its cell),
//!    whatever its level: it is the waiting job's own work, so this is
//!    priority inheritance, not a pick (a HIGH job waiting for a queued LOW
//!    job runs it now instead of waiting behind other LOW work). While
//!    `shutdown_now` aborts the pool, a handle's job or a scope job found
//!    so is cancelled instead, as a pop would cancel it (`abort.rs`); a
//!    join's half popped back still runs (`forkjoin/join.rs`).
//! 3. **Help.** Otherwise take one job by the pick rule over levels `0..=l`
//!    only (`Levels::pick_upto`) and run it, as the worker loop would; on a
//!    reserved thread (`reserved.rs`) over `0..=min(l, its bound)`, with no
//!    due-level aging (that is the worker loop's alone).
//! 4. **Park.** Nothing to claim and those levels empty (after a short
//!    spin): park as a *waiter* (`sleep.rs`, "Waiting workers"), woken by a
//!    push at a level `<= l` or by whoever ends what it waits for.
//!
//! # The rule and its bound
//!
//! *A waiting job never runs a job less urgent than itself, unless that job
//! belongs to what it waits for.* So a HIGH job that waits is never stuck
//! behind an unrelated LOW job it picked up (rayon issue #957: a thread
//! waiting in `join` runs an unrelated hours-long job and the waiter is
//! stuck behind it). What it may wait behind: jobs at least as urgent as
//! itself (which the pick rule would have preferred to it anyway), and the
//! parts of what it waits for; each of those runs to its end, since a
//! running job is never preempted, and may itself wait under the same rule.
//!
//! Why waiting cannot deadlock a pool that has a worker free to run what is
//! awaited: an awaited part is either not started (then its waiter claims
//! it in step 2, so even a one-worker pool finishes a job that joins a job
//! it submitted), or running on some worker, which finishes it or waits in
//! turn under the same rule. A wait can still hang on what no worker can
//! run: a job that waits for a job stuck in user code, or for a job of
//! another pool whose workers are all busy.
//!
//! The wait parks only after its re-check, with the same fence as an idle
//! worker, so a job pushed meanwhile at a level it may take is either seen
//! or wakes a sleeper that may take it (`sleep.rs`). The end of what it
//! waits for unparks it directly. Jobs helped, and a handle's or a scope's
//! job claimed, are counted, hooked and guarded as in the worker loop,
//! nested inside the waiting job (which keeps its own `after_job` details,
//! `probe.rs`), a claimed job's entry counted as run ahead
//! ([`claim_and_run`]); a join's half popped back is no job of its own
//! (`queue/local.rs`).
//!
//! A thread that is not one of the pool's workers (or a worker of another
//! pool) does not help: it blocks ([`block_until`]).

use std::rc::Rc;
use std::time::Instant;

use super::reserved::RoleBackoff;
use super::worker::{self, Local};
use crate::job::task::TaskCell;
use crate::job::{Job, NEVER_RAN};
use crate::queue::levels::{Pick, Source};
use crate::sync::plain::Arc;
use crate::sync::{Parker, spin_until};

/// How a waiting job reaches its worker: `Some` if the calling thread is a
/// worker of pool `registry_id`, running a job.
pub(crate) fn helper(registry_id: usize) -> Option<Rc<Local>> {
    worker::current_local(registry_id)
}

/// Waits on worker `local` until `done` holds, helping meanwhile (see the
/// module docs): `claim` takes and runs one part of what is awaited and
/// says whether it found one. `done` must read with `Acquire` what ends
/// the wait, and the thread ending it must then unpark `local.parker`.
/// With a `deadline`, `done` must hold once it has passed.
pub(crate) fn wait_until(
    local: &Local,
    deadline: Option<Instant>,
    done: impl Fn() -> bool,
    mut claim: impl FnMut() -> bool,
) {
    // Between jobs (a hook), no level is known: take only the most urgent.
    // A reserved thread stays within its own levels too.
    let upto = local.level().unwrap_or(0).min(local.upto());
    let backoff = RoleBackoff::new(local.role);
    loop {
        if done() {
            return;
        }
        if claim() {
            backoff.reset();
            continue;
        }
        match local.pick_upto(upto) {
            Pick::Found(level, job, source) => {
                local.probe.nested(|| local.execute(level, source, job));
                backoff.reset();
            }
            Pick::Contended => backoff.round(),
            Pick::Empty if !backoff.is_spent() => backoff.round(),
            Pick::Empty => {
                let has_work = || done() || local.any_queued_upto(upto);
                local.registry.sleep.wait(local.index, &local.parker, upto, deadline, has_work);
            }
        }
    }
}

/// Claims with `claim` a part of what a waiting job waits for (a handle's
/// job, a scoped job) and runs it on worker `local` as a job of `level`
/// nested in the waiting one, counted and hooked; says whether the claim
/// won. Its queue entry, left behind, is counted as run ahead
/// (`metrics/counters.rs`) before the claim, so before anyone can find the
/// entry empty and count it gone, and the count is taken back if the claim
/// is lost; a claim that won is a take of the level for `oldest_wait`.
pub(crate) fn claim_and_run(local: &Local, level: usize, claim: impl FnOnce() -> Option<Job>) -> bool {
    claim_then(local, level, claim, |job| local.probe.nested(|| local.run_claimed(level, Source::Local, job)))
}

/// As [`claim_and_run`] while `shutdown_now` aborts the pool, for a part
/// whose claim takes it out of a cell (a scoped job): the part is
/// cancelled instead of run, as the worker that popped its entry would
/// cancel it (`abort.rs`), and counted so: cancelled and reaped, its entry
/// left behind run ahead. (A task cannot be cancelled once claimed:
/// [`claim_task`] looks before it claims.)
pub(crate) fn claim_and_cancel(local: &Local, level: usize, claim: impl FnOnce() -> Option<Job>) -> bool {
    claim_then(local, level, claim, |job| {
        let tally = &local.registry.metrics.tally;
        local.discard(level, Source::Local, local.registry.abort.cancel(level, job, tally));
    })
}

/// The counting both claims share (see [`claim_and_run`]): the entry left
/// behind counted run ahead before the claim, taken back if it is lost.
fn claim_then(local: &Local, level: usize, claim: impl FnOnce() -> Option<Job>, then: impl FnOnce(Job)) -> bool {
    let metrics = &local.registry.metrics;
    metrics.ran_ahead(level);
    let Some(job) = claim() else {
        metrics.claim_lost(level);
        return false;
    };
    metrics.claim_won(level);
    then(job);
    true
}

/// Claims `task`, the job of a handle a job waits on, if it has not
/// started, and runs it inline on `local`, counted and hooked as a job of
/// its level (its queue entry is discarded when popped, `job/state.rs`);
/// says whether it ran it. The claim goes through the job's live entry,
/// whichever that is: after a promotion, the one at the new level. While
/// `shutdown_now` aborts the pool it cancels the job through that entry
/// instead, as the worker that popped it would (`abort.rs`), and says
/// `true` too: the entry, dead, is reaped where it leaves its queue.
///
/// A claim lost while the job is still queued was lost to a promotion
/// between the read of the live entry and the claim (the epoch moved on),
/// and is tried again at once: answering `false` then would let the wait
/// park while the job is claimable, and the promotion's push wakes only a
/// sleeper that may take its level, which the waiter may not (loom model
/// 9d). Each retry follows a promotion that won, so the loop is lock-free.
pub(crate) fn claim_task(local: &Local, task: &Arc<dyn TaskCell>) -> bool {
    while task.state().is_queued() {
        let (level, epoch) = task.state().live_entry();
        let mut job = Job::task_at(Arc::clone(task), epoch);
        if local.registry.abort.is_aborting() {
            // Cancelled now, or gone to another thread or a promotion (then
            // the loop looks again).
            if let Some(payload) = local.registry.abort.cancel(level, job, &local.registry.metrics.tally).panic {
                local.registry.metrics.tally.caught(NEVER_RAN, payload);
            }
            if !task.state().is_queued() {
                return true;
            }
            continue;
        }
        let claimed = claim_and_run(local, level, || match job.claim() {
            Ok(()) => Some(job),
            // It expired now, another thread took it first, or a promotion
            // moved it on (then the loop tries again); a dead entry is
            // counted where it leaves its queue.
            Err(discarded) => {
                if let Some(payload) = discarded.panic {
                    local.registry.metrics.tally.caught(NEVER_RAN, payload);
                }
                None
            }
        });
        if claimed {
            return true;
        }
    }
    false
}

/// Blocks the calling thread, which helps no pool, until `done` holds,
/// after a few microseconds of trying (`sync::spin_until`); `parker` is
/// the one whose unparker the thread ending the wait calls.
pub(crate) fn block_until(parker: &Parker, done: impl Fn() -> bool) {
    if spin_until(None, &done) {
        return;
    }
    while !done() {
        parker.park();
    }
}
