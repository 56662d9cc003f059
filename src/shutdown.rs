//! The pool's lifecycle: accepting jobs, closing intake, and knowing when the
//! drain is complete.
//!
//! # Shutdown, step by step
//!
//! 1. `close` sets `closed` (SeqCst). From then on a spawn from outside the
//!    pool is refused and its closure handed back. Jobs spawned by the
//!    pool's own running jobs are still accepted: they are part of the work
//!    being drained.
//! 2. Workers keep running every queued job, and the jobs those spawn.
//! 3. Each finished job lowers `outstanding` (SeqCst). The job that brings it
//!    to zero after `closed` was set, or `close` itself when it finds zero,
//!    wakes every sleeping worker.
//! 4. A worker that finds nothing to pick, sees `closed` and `outstanding ==
//!    0` (the pool is *drained*), moves any stragglers from its local deques
//!    to the injectors (there are none when drained) and exits.
//! 5. The thread that called `shutdown` (or dropped the pool) joins every
//!    worker thread, unless it *is* one of them (see `Pool::shutdown`).
//!
//! # Why a job is never accepted and then stranded
//!
//! A spawn raises `outstanding` (SeqCst) and *then* reads `closed`; `close`
//! writes `closed` and *then* reads `outstanding`, as does every worker
//! deciding to exit. In the total order of SeqCst operations either the
//! spawn sees `closed` and refuses the job (lowering `outstanding` again), or
//! every later exit check sees `outstanding > 0` and the workers stay until
//! the job has run. A job spawned from inside a running job cannot race the
//! exit at all: its parent is still counted in `outstanding`.

use crate::sync::{AtomicBool, AtomicUsize, Ordering};

/// Counts accepted-but-unfinished jobs and holds the closed flag.
pub(crate) struct Lifecycle {
    closed: AtomicBool,
    /// Jobs accepted and not yet finished (queued or running).
    outstanding: AtomicUsize,
}

impl Lifecycle {
    pub(crate) fn new() -> Lifecycle {
        Lifecycle { closed: AtomicBool::new(false), outstanding: AtomicUsize::new(0) }
    }

    /// Admits one job, or refuses it because intake is closed. A job spawned
    /// by a running job of this pool (`from_job`) is admitted even when
    /// closed. Returns `false` on refusal, having undone its count; a refusal
    /// that completes the drain is reported through `on_drained`.
    pub(crate) fn admit(&self, from_job: bool, on_drained: impl FnOnce()) -> bool {
        self.outstanding.fetch_add(1, Ordering::SeqCst);
        if from_job || !self.closed.load(Ordering::SeqCst) {
            return true;
        }
        self.finish(on_drained);
        false
    }

    /// Marks one admitted job as finished; runs `on_drained` if that
    /// completed the drain of a closed pool.
    pub(crate) fn finish(&self, on_drained: impl FnOnce()) {
        if self.outstanding.fetch_sub(1, Ordering::SeqCst) == 1 && self.closed.load(Ordering::SeqCst) {
            on_drained();
        }
    }

    /// Closes intake; runs `on_drained` if nothing was outstanding.
    pub(crate) fn close(&self, on_drained: impl FnOnce()) {
        self.closed.store(true, Ordering::SeqCst);
        if self.outstanding.load(Ordering::SeqCst) == 0 {
            on_drained();
        }
    }

    /// How many admitted jobs have not finished (queued or running); a
    /// snapshot.
    pub(crate) fn outstanding(&self) -> usize {
        self.outstanding.load(Ordering::SeqCst)
    }

    /// Whether the pool is closed and every admitted job has finished:
    /// workers may exit.
    pub(crate) fn is_drained(&self) -> bool {
        self.closed.load(Ordering::SeqCst) && self.outstanding.load(Ordering::SeqCst) == 0
    }
}
