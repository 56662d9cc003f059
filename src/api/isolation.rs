//! The latency-isolation options of [`Builder`]: reserved threads, the OS
//! priority of the regular workers, and bounded starvation. Validated in
//! `isolation.rs`; what each does at run time is in `runtime/reserved.rs`
//! and `queue/aging.rs`.

use super::builder::Builder;
use crate::queue::Priority;

impl Builder {
    /// Starts `n` *reserved threads*, `0..=MAX_RESERVED_THREADS`, beside the
    /// pool's workers: threads that take only the jobs of the most urgent
    /// levels (level 0, unless [`Builder::reserved_levels`] says otherwise),
    /// so that such a job starts within a wake-up even while every worker is
    /// inside a long job of a less urgent level. Default: 0.
    ///
    /// A reserved thread follows the pick rule over its levels, sleeps in
    /// the kernel while they are empty (it uses no CPU while idle), runs
    /// the thread and job hooks, survives panicking jobs, drains at
    /// shutdown and counts in [`Metrics::workers`](crate::Metrics::workers)
    /// (`total`, and `reserved` apart), like a worker. It is not one of the
    /// pool's [`workers`](crate::Pool::workers): it starts at build time,
    /// stays until shutdown, and resizing never starts or retires one. A
    /// push at a reserved level wakes a sleeping reserved thread first,
    /// else an idle worker; the priority rule holds for reserved threads
    /// and workers alike. One exception to "only its levels": what a job
    /// running on a reserved thread waits for (a handle's job, its scope's
    /// jobs, the other half of its `join`) that no other thread has started,
    /// the reserved thread runs itself, whatever its level, as a worker
    /// does (priority inheritance: the urgent job would otherwise wait
    /// behind less urgent work).
    ///
    /// Reserved threads get the worker indexes after those of the workers
    /// started at build time (for [`thread_name`](Builder::thread_name) and
    /// the thread hooks): with `workers(2)`, they are 2, 3, ….
    ///
    /// With reserved threads, the workers run at a lower OS priority by
    /// default, so that the OS gives a woken reserved thread a CPU at once:
    /// see [`Builder::worker_nice`].
    ///
    /// # Errors
    ///
    /// [`build`](Builder::build) fails with a [`BuildError`](crate::BuildError)
    /// if `n > MAX_RESERVED_THREADS`, or if the OS refuses a thread.
    pub fn reserved_threads(mut self, n: usize) -> Builder {
        self.isolation.reserved_threads = n;
        self
    }

    /// The least urgent level reserved threads take: they take the levels
    /// from 0 to `up_to`'s, inclusive. Default: [`Priority::HIGH`], level 0
    /// only. `Priority::LOW` makes them take every level (they are then
    /// extra workers that never retire, at the process's priority).
    ///
    /// # Errors
    ///
    /// [`build`](Builder::build) fails if `up_to` names no level of the
    /// pool, or if the pool has no reserved threads.
    pub fn reserved_levels(mut self, up_to: impl Into<Priority>) -> Builder {
        self.isolation.reserved_up_to = Some(up_to.into());
        self
    }

    /// How much higher than the building thread's the workers' nice value
    /// is, `0..=MAX_NICE` (19): a lower OS scheduling priority; reserved
    /// threads keep the building thread's. 0 leaves the workers at the
    /// priority they start with. Default: [`DEFAULT_WORKER_NICE`](crate::DEFAULT_WORKER_NICE)
    /// (10) for a pool with reserved threads, 0 otherwise; the
    /// measurements behind that choice are in `docs/benchmarks.md`
    /// ("Latency isolation"): without it the threads outside the pool
    /// that an urgent request also needs (a connection's, say) compete
    /// with the busy workers as equals and wait for a time slice.
    ///
    /// A thread's nice value cannot be lowered again without privileges,
    /// so it is set once per worker thread, when it starts, not per job:
    /// a worker runs every level at the lowered priority (its jobs of
    /// level 0 too, which is why reserved threads exist). The value is
    /// the building thread's plus `n`, capped at 19, for every worker,
    /// also one started later from another worker's thread (a thread
    /// inherits its creator's nice value, and keeps it if it is higher).
    ///
    /// Linux only (`setpriority` on the thread, through `rustix`); on other
    /// systems it does nothing. A refusal by the OS (a seccomp filter, a
    /// container runtime) leaves the worker at its priority and is counted
    /// in [`WorkerMetrics::nice_refused`](crate::WorkerMetrics::nice_refused)
    /// (and logged with the `log` feature); the worker runs anyway.
    ///
    /// # Errors
    ///
    /// [`build`](Builder::build) fails if `n` is outside `0..=19`.
    pub fn worker_nice(mut self, n: i32) -> Builder {
        self.isolation.worker_nice = Some(n);
        self
    }

    /// Bounds starvation: while a level holds a job, a worker starts at
    /// most `k + L − 2` jobs of more urgent levels in a row before one of
    /// that level (`L` the number of levels; with two levels, `k`). Default:
    /// unset, strict priority: a steady stream of more urgent jobs may
    /// keep a less urgent one waiting for ever.
    ///
    /// With a bound, a worker may start a job of a level while more urgent
    /// jobs wait, on purpose; the priority rule of [`Pool`](crate::Pool)
    /// then holds except for those picks. The bound is per worker and per
    /// level (the order within the level decides which of its jobs goes), and
    /// counts only the jobs the worker's loop starts: the jobs a waiting job
    /// helps with (`JobHandle::join`, `join`, `scope`) run inside it, are not
    /// counted, and may be more, since a waiting job never takes a job less
    /// urgent than itself (`src/runtime/help.rs`). Reserved threads always
    /// pick strictly. The rule and its source
    /// (tokio's global-queue interval, made per level) are in
    /// `src/queue/aging.rs`; `tests/aging.rs` checks the bound.
    ///
    /// # Errors
    ///
    /// [`build`](Builder::build) fails if `k` is 0.
    pub fn max_passes(mut self, k: u32) -> Builder {
        self.isolation.max_passes = Some(k);
        self
    }
}
