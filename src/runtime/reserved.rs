//! Reserved threads and the OS priority of the regular workers: the run
//! time of the options in `isolation.rs`.
//!
//! # Reserved threads
//!
//! A reserved thread runs the worker loop of `worker.rs` with
//! [`Role::Reserved`]: its pick walks only the levels `0..walk`
//! (`Levels::pick_upto`), with the same second look after a take, so
//! that it never starts a job while a more urgent one pushed before it
//! waits; it sleeps on the reserved list of `sleep.rs` and re-checks only
//! its levels; it is not counted in the pool's size (`limits.rs`), so it is
//! never surplus, never parks with a deadline and never retires. It stops
//! only when the pool is drained, like every worker, and the drain check
//! counts its loop (`sleep.rs`, "Every worker asleep").
//!
//! A job on a reserved thread that waits for other jobs of the pool
//! (`help.rs`) claims and runs what it waits for, whatever its level, as
//! on a worker: the exception to "only its levels", which the builder's
//! docs state; what it helps with meanwhile stays within
//! `min(its level, the bound)`.
//!
//! Jobs a job on a reserved thread spawns go to that thread's own deques,
//! as on any worker. It takes those of its levels itself; those of the
//! other levels are stolen by the workers, which see its deques as a
//! peer's (the wake after such a push goes to a regular worker, `sleep.rs`).
//!
//! # Which sleeper a push wakes
//!
//! [`wakes_reserved`]: a push at a reserved level wakes a reserved sleeper
//! first, else a regular one (`Sleep::wake_one_at`); any other push never
//! wakes a reserved one (either may fall back to a waiting worker whose
//! bound admits the level). A reserved sleeper is idle and runs at the
//! process's priority while the workers run at a higher nice value, so it
//! is the thread that starts the job first; when every reserved thread is
//! busy, an idle worker is.
//!
//! # Idle: spin, never yield
//!
//! After an empty pick a regular worker spins and then yields its CPU a few
//! times before it sleeps (crossbeam's `Backoff::snooze`). A reserved
//! thread spins [`IDLE_SPINS`] rounds of `Backoff::spin` and sleeps; after
//! a contended steal, and while a job on it waits (`help.rs`), it spins too
//! ([`RoleBackoff`]). It never yields: a yield hands its CPU to a worker at
//! a higher nice value, and Linux's scheduler may then keep it off the CPU
//! for the rest of that worker's time slice (milliseconds) although it is
//! runnable. A HIGH job pushed meanwhile wakes nobody, since the thread is
//! neither asleep nor running, and waits out the slice. `perf sched
//! latency` on `examples/http_server.rs` under its flood (2026-12-06): the
//! reserved thread's longest wait for a CPU fell from 2.8 ms to 0.14 ms,
//! and `/health`'s p99 from 1.2–1.4 ms to 0.14–0.2 ms (docs/benchmarks.md).
//!
//! # The nice value
//!
//! [`lower_priority`] runs first thing on a regular worker's own thread
//! (never on a caller's thread, as `worker::run_here` borrows one). Linux
//! keeps the nice value per thread, a new thread inherits its creator's,
//! and an unprivileged thread may raise it but not lower it back. So the
//! target is absolute: the nice value of the thread that built the pool
//! (read by [`ReservedState::new`]) plus `worker_nice`. A worker started
//! from another worker (the pool growing while a job spawns) inherited
//! the target and is left alone, instead of adding `worker_nice` a second
//! time. Reserved threads start at build time on the building thread and
//! keep its nice value.

use std::cell::Cell;

use super::registry::Registry;
use crate::sleep::Class;
use crate::sync::plain::AtomicU64;
use crate::sync::{AtomicUsize, Backoff, Ordering};

/// What a worker loop runs as.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Role {
    /// One of the pool's workers: takes every level, counts in its size.
    Regular,
    /// A reserved thread: takes the levels `0..walk` only.
    Reserved { walk: usize },
}

impl Role {
    /// The sleeper list it sleeps on.
    pub(crate) fn class(self) -> Class {
        match self {
            Role::Regular => Class::Regular,
            Role::Reserved { .. } => Class::Reserved,
        }
    }

    /// How many levels, from 0, its pick walks in a pool of `levels`.
    pub(crate) fn walk(self, levels: usize) -> usize {
        match self {
            Role::Regular => levels,
            Role::Reserved { walk } => walk,
        }
    }
}

/// Rounds of `Backoff::spin` (1, 2, 4, … 64 spin hints; a few µs in all)
/// a reserved thread spins after an empty pick before it sleeps (see the
/// module docs). One under loom, where a spin is a yield to the model.
const IDLE_SPINS: u32 = if cfg!(loom) { 1 } else { 7 };

/// How a thread backs off after an empty or a contended pick, in the
/// worker loop and in a waiting job's wait (`help.rs`): a worker spins and
/// then yields (crossbeam's `Backoff::snooze`), a reserved thread only
/// spins, [`IDLE_SPINS`] rounds (see the module docs, "Idle").
pub(crate) struct RoleBackoff {
    backoff: Backoff,
    /// The rounds a reserved thread has spun since the last reset.
    spins: Cell<u32>,
    yields: bool,
}

impl RoleBackoff {
    pub(crate) fn new(role: Role) -> RoleBackoff {
        RoleBackoff { backoff: Backoff::new(), spins: Cell::new(0), yields: role == Role::Regular }
    }

    /// Starts over: the thread found work.
    pub(crate) fn reset(&self) {
        self.backoff.reset();
        self.spins.set(0);
    }

    /// Whether the thread has backed off enough to sleep instead.
    pub(crate) fn is_spent(&self) -> bool {
        if self.yields { self.backoff.is_completed() } else { self.spins.get() >= IDLE_SPINS }
    }

    /// One round of backing off.
    pub(crate) fn round(&self) {
        if self.yields {
            self.backoff.snooze();
        } else {
            self.spins.set(self.spins.get().saturating_add(1));
            self.backoff.spin();
        }
    }
}

/// The run-time figures of reserved threads and worker priorities, for
/// the metrics, and the base the priorities are set from.
pub(crate) struct ReservedState {
    /// The nice value of the thread that built the pool, if read (Linux).
    base_nice: Option<i32>,
    /// Reserved threads whose loop is running or about to.
    running: AtomicUsize,
    /// Worker threads whose nice value the OS refused to raise.
    nice_refused: AtomicU64,
}

impl ReservedState {
    /// Reads the calling thread's nice value if the workers are to run
    /// above it (`worker_nice` > 0): call it on the thread that builds the
    /// pool (see the module docs).
    pub(crate) fn new(worker_nice: i32) -> ReservedState {
        let base_nice = if worker_nice > 0 { current_nice() } else { None };
        ReservedState { base_nice, running: AtomicUsize::new(0), nice_refused: AtomicU64::new(0) }
    }

    /// A reserved thread is being started (`true`) or has left its loop or
    /// failed to start (`false`).
    pub(crate) fn count(&self, running: bool) {
        if running {
            self.running.fetch_add(1, Ordering::Relaxed);
        } else {
            self.running.fetch_sub(1, Ordering::Relaxed);
        }
    }

    /// Reserved threads running now (a snapshot).
    pub(crate) fn running(&self) -> usize {
        self.running.load(Ordering::Relaxed)
    }

    /// Worker threads whose nice value the OS refused to raise, so far.
    pub(crate) fn nice_refused(&self) -> u64 {
        self.nice_refused.load(Ordering::Relaxed)
    }
}

/// Whether a push at `level` may wake a reserved sleeper, and first (see
/// the module docs).
pub(crate) fn wakes_reserved(registry: &Registry, level: usize) -> bool {
    level < registry.config.isolation.reserved_walk
}

/// Starts the reserved threads of a pool being built; on an OS refusal,
/// the index of the thread refused and the error.
pub(crate) fn start_all(registry: &crate::sync::Arc<Registry>) -> Result<(), (usize, std::io::Error)> {
    let isolation = registry.config.isolation;
    for index in 0..isolation.reserved_threads {
        registry.reserved.count(true);
        match super::worker::start(registry, Role::Reserved { walk: isolation.reserved_walk }, false) {
            Ok(true) => {}
            Ok(false) => registry.reserved.count(false),
            Err(error) => {
                registry.reserved.count(false);
                return Err((index, error));
            }
        }
    }
    Ok(())
}

/// Raises the calling worker thread's nice value to the pool's base plus
/// `worker_nice` (see the module docs); counts and logs a refusal.
pub(crate) fn lower_priority(registry: &Registry, index: usize) {
    // No base: the pool asked for no nice value (or none is read here).
    let Some(base) = registry.reserved.base_nice else { return };
    let Some(now) = current_nice() else { return };
    let target = (base + registry.config.isolation.worker_nice).min(crate::isolation::MAX_NICE);
    if target <= now {
        // There already: a worker started from another worker inherited
        // the target.
        return;
    }
    if let Err(error) = set_nice(target) {
        registry.reserved.nice_refused.fetch_add(1, Ordering::Relaxed);
        crate::hooks::log_event!(warn, "worker {index}: the OS refused to set its nice value to {target}: {error}");
        #[cfg(not(feature = "log"))]
        let _ = (index, error);
    }
}

/// The calling thread's nice value; `None` where it is not read.
#[cfg(all(target_os = "linux", not(loom), not(miri)))]
fn current_nice() -> Option<i32> {
    // `None`: the calling thread (Linux keeps the nice value per thread).
    rustix::process::getpriority_process(None).ok()
}

/// Sets the calling thread's nice value.
#[cfg(all(target_os = "linux", not(loom), not(miri)))]
fn set_nice(nice: i32) -> std::io::Result<()> {
    Ok(rustix::process::setpriority_process(None, nice)?)
}

/// Not Linux (or a loom model, or miri): nothing is read, so nothing is
/// set.
#[cfg(not(all(target_os = "linux", not(loom), not(miri))))]
fn current_nice() -> Option<i32> {
    None
}

#[cfg(not(all(target_os = "linux", not(loom), not(miri))))]
fn set_nice(_nice: i32) -> std::io::Result<()> {
    Ok(())
}
