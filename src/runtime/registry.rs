//! The state every worker and every [`Spawner`](crate::Spawner) shares, and
//! the paths through it: a job's way in (admit, queue, wake or grow), a
//! job's end, resizing, and shutting down.

use std::time::Instant;

use super::abort::Abort;
use super::reserved::{self, ReservedState, Role};
use super::timer::Timer;
use super::worker::{self, Local};
use super::workers::WorkerSet;
use crate::capacity::{Capacity, NoRoom, WhenFull};
use crate::config::{Config, validate_limits};
use crate::error::{BuildError, BuildErrorKind, ResizeError, ResizeErrorKind, SpawnError, SpawnErrorKind};
use crate::job::erase::PartRef;
use crate::job::task::{Meta, TaskCell};
use crate::job::{Job, JobTally, drop_payload};

/// A job's cell, as a handle holds it.
pub(crate) type TaskHandle = plain::Arc<dyn TaskCell>;
use crate::lifecycle::{Lifecycle, Spawning};
use crate::limits::Limits;
use crate::metrics::{Metrics, MetricsCore, ThreadCounts};
use crate::queue::Priority;
use crate::queue::levels::Levels;
use crate::sleep::Sleep;
use crate::sync::{Arc, AtomicUsize, Ordering, plain};

/// Shared pool state. Owned through `Arc` by the `Pool`, every `Spawner`
/// and every worker thread.
pub(crate) struct Registry {
    /// Distinguishes this pool's worker threads from other pools'.
    pub(crate) id: usize,
    pub(crate) config: Config,
    pub(crate) levels: Levels<Job>,
    pub(crate) sleep: Sleep,
    pub(crate) lifecycle: Lifecycle,
    pub(crate) workers: WorkerSet,
    pub(crate) limits: Limits,
    /// `shutdown_now` state and the drained latch (`abort.rs`).
    pub(crate) abort: Abort,
    /// Expires jobs at their deadlines; started lazily (`timer.rs`).
    pub(crate) timer: Timer,
    /// The bounded levels' slots (`capacity.rs`).
    pub(crate) capacity: Capacity,
    pub(crate) metrics: MetricsCore,
    /// Reserved threads running, refused nice values (`reserved.rs`).
    pub(crate) reserved: ReservedState,
    panics: AtomicUsize,
    /// Whether the end of the shutdown has been logged (`log_shutdown_done`).
    #[cfg(feature = "log")]
    done_logged: plain::AtomicBool,
}

/// A job's ticket between admission and injection: its level and where it
/// comes from.
pub(crate) struct Admission {
    level: usize,
    from: From,
}

/// What `make` (see [`Registry::spawn`]) is told about an admitted job:
/// its level, its deadline, and the pool's tally, for a task's [`Meta`].
pub(crate) struct Slot<'a> {
    pub(crate) level: usize,
    pub(crate) deadline: Option<Instant>,
    pub(crate) tally: &'a JobTally,
}

impl Slot<'_> {
    /// The [`Meta`] of a task in this slot, named `name`.
    pub(crate) fn meta(&self, name: Option<plain::Arc<str>>) -> Meta {
        Meta { deadline: self.deadline, level: self.level, tally: self.tally.clone(), name }
    }
}

/// Where a spawn comes from.
enum From {
    /// A running job of this pool: its worker's local deques.
    Job(std::rc::Rc<Local>),
    /// A running job of this pool whose worker's deques are out of reach
    /// (a loop `run_here` runs in a thread-local destructor, `worker.rs`):
    /// the injector, admitted as a job's spawn is.
    Loop,
    /// Outside the pool: a spawn under way, until it ends.
    Outside(Spawning),
}

impl Registry {
    /// Creates the registry and starts `config.min_workers` threads. On
    /// failure the threads already started are stopped and joined.
    pub(crate) fn start(config: Config) -> Result<Arc<Registry>, BuildError> {
        static NEXT_ID: plain::AtomicUsize = plain::AtomicUsize::new(0);
        let wait_metrics = config.user_code().is_some_and(|code| code.monitoring.wait_metrics);
        let registry = Arc::new(Registry {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            levels: Levels::new(config.levels),
            sleep: Sleep::new(),
            lifecycle: Lifecycle::new(),
            workers: WorkerSet::new(),
            limits: Limits::new(config.min_workers, config.max_workers, config.keep_alive),
            abort: Abort::new(config.levels),
            timer: Timer::new(),
            capacity: Capacity::new(&config.capacities),
            metrics: MetricsCore::new(config.levels, wait_metrics),
            reserved: ReservedState::new(config.isolation.worker_nice),
            panics: AtomicUsize::new(0),
            #[cfg(feature = "log")]
            done_logged: plain::AtomicBool::new(false),
            config,
        });
        let initial = registry.limits.set_limits(registry.config.min_workers, registry.config.max_workers);
        for index in 0..initial {
            if let Err(source) = Registry::start_reserved(&registry, false) {
                Registry::shutdown(&registry);
                return Err(BuildError::new(BuildErrorKind::ThreadSpawn { index, source }));
            }
        }
        if let Err((reserved, source)) = reserved::start_all(&registry) {
            Registry::shutdown(&registry);
            let index = initial + reserved;
            return Err(BuildError::new(BuildErrorKind::ThreadSpawn { index, source }));
        }
        Ok(registry)
    }

    /// The one way of a job into the pool, under `spawn`, `submit` and
    /// every [`JobBuilder`](crate::JobBuilder) method: takes a slot if the
    /// level is bounded (waiting for room as `when_full` says:
    /// `capacity.rs`), admits the job at `priority`, makes its queue entry
    /// (and what the caller gets back) with `make`, queues it and, if it has
    /// a `deadline`, schedules its expiry on the timer (started here if need
    /// be). A refused job is handed back in the error, unrun.
    #[inline]
    pub(crate) fn spawn<F, H>(
        this: &Arc<Registry>,
        priority: Priority,
        job: F,
        when_full: WhenFull,
        deadline: Option<Instant>,
        make: impl FnOnce(F, Slot<'_>) -> (Job, H),
    ) -> Result<H, SpawnError<F>> {
        let admission = match Registry::admit(this, priority, when_full) {
            Ok(admission) => admission,
            Err(kind) => return Err(SpawnError::new(job, kind)),
        };
        if deadline.is_some() && this.timer.start(this).is_err() {
            this.capacity.give_back(admission.level);
            Registry::end_spawn(this, admission);
            return Err(SpawnError::new(job, SpawnErrorKind::TimerUnavailable));
        }
        let (entry, handle) = make(job, Slot { level: admission.level, deadline, tally: &this.metrics.tally });
        // Only a job with a deadline pays for a second pointer to its cell.
        let expiry = deadline.and_then(|at| Some((at, entry.task_cell()?.clone())));
        Registry::inject(this, admission, entry);
        if let Some((at, task)) = expiry {
            this.timer.schedule(at, &task);
        }
        Ok(handle)
    }

    /// Moves the queued job of `task` to `priority`'s level: a new entry
    /// there, the old one dead (`job/state.rs`, "Promotion"). `Ok(false)`:
    /// the job was no longer queued, nothing was pushed. Refused, changing
    /// nothing, if the level does not exist or intake is closed and the
    /// caller is not one of the pool's jobs (as a spawn would be, but not
    /// counted as rejected: the job was accepted before). The new entry
    /// never waits for room on a bounded level: it takes a slot there over
    /// the capacity, as a spawn from inside the pool does (`capacity.rs`),
    /// since the job already holds one at its old level until its dead
    /// entry is taken off.
    pub(crate) fn promote(this: &Arc<Registry>, task: &TaskHandle, priority: Priority) -> Result<bool, SpawnErrorKind> {
        let levels = this.levels.len();
        let level = priority
            .resolve(levels)
            .ok_or(SpawnErrorKind::UnknownLevel { level: priority.asked().unwrap_or(levels), levels })?;
        let from = match Registry::inside(this.id) {
            Some(from) => from,
            None => From::Outside(this.lifecycle.begin_spawn().ok_or(SpawnErrorKind::Shutdown)?),
        };
        let admission = Admission { level, from };
        // Cannot fail: a slot taken as from inside never waits or refuses.
        let _ = this.capacity.take(level, WhenFull::Wait, || true, || false);
        match task.promote(level) {
            Some(epoch) => {
                Registry::inject(this, admission, Job::task_at(plain::Arc::clone(task), epoch));
                Ok(true)
            }
            None => {
                this.capacity.give_back(level);
                Registry::end_spawn(this, admission);
                Ok(false)
            }
        }
    }

    /// Checks that `priority` names a level, takes a slot on a bounded
    /// level (before the spawn counts as under way, so that a producer
    /// waiting for room holds up no drain), and checks that intake is open
    /// (or the caller is one of this pool's running jobs; see
    /// `lifecycle.rs`).
    #[inline]
    fn admit(this: &Arc<Registry>, priority: Priority, when_full: WhenFull) -> Result<Admission, SpawnErrorKind> {
        let levels = this.levels.len();
        let level = priority
            .resolve(levels)
            .ok_or(SpawnErrorKind::UnknownLevel { level: priority.asked().unwrap_or(levels), levels })?;
        let inside = Registry::inside(this.id);
        // A spawn from a worker thread outside its jobs (a thread hook) never
        // waits for room either: the thread holds its worker (`capacity.rs`).
        let own_thread = || inside.is_some() || worker::is_own_thread(this.id);
        // A running job's spawn is admitted past a closed intake (`lifecycle.rs`).
        let closed = || inside.is_none() && this.lifecycle.is_closed();
        if let Err(no_room) = this.capacity.take(level, when_full, own_thread, closed) {
            this.metrics.rejected(level);
            return Err(match no_room {
                NoRoom::Full => SpawnErrorKind::Full,
                NoRoom::Closed => SpawnErrorKind::Shutdown,
            });
        }
        if let Some(from) = inside {
            return Ok(Admission { level, from });
        }
        match this.lifecycle.begin_spawn() {
            Some(spawning) => Ok(Admission { level, from: From::Outside(spawning) }),
            None => {
                this.capacity.give_back(level);
                this.metrics.rejected(level);
                // The refused spawn may have kept a drain check from
                // succeeding.
                Registry::try_drain(this);
                Err(SpawnErrorKind::Shutdown)
            }
        }
    }

    /// Where a spawn on registry `id` from the calling thread comes from,
    /// if from one of its running jobs.
    /// `LOOP` first: one read of a cell, all a spawn from outside pays.
    #[inline]
    fn inside(id: usize) -> Option<From> {
        if !worker::runs_loop_of(id) {
            return None;
        }
        Some(worker::current_local(id).map_or(From::Loop, From::Job))
    }

    /// Ends an admitted spawn from outside (see `lifecycle.rs`). One that
    /// ends after `shutdown_now` or `shutdown_timeout` began to abort may
    /// have pushed its job after their sweep. A running worker loop will
    /// pop and cancel it (none exits while the job is queued); with none
    /// running, and none to start once the workers were detached, the
    /// spawner sweeps itself, so that the job is cancelled, not stranded.
    #[inline]
    fn end_spawn(this: &Arc<Registry>, admission: Admission) {
        if let From::Outside(spawning) = admission.from
            && this.lifecycle.end_spawn(spawning)
        {
            Registry::ended_after_close(this);
        }
    }

    /// [`Registry::end_spawn`] of a spawn that ended after intake closed.
    #[cold]
    fn ended_after_close(this: &Arc<Registry>) {
        if this.abort.is_aborting() && this.sleep.regular_loops() == 0 {
            super::abort::sweep(this);
        }
        Registry::try_drain(this);
    }

    /// Queues an admitted job: on the spawning worker's own deque if there
    /// is one, else on the level's injector; then wakes one sleeper, or
    /// grows the pool if there is none (see [`Registry::notify`]).
    #[inline]
    fn inject(this: &Arc<Registry>, admission: Admission, job: Job) {
        let level = admission.level;
        match &admission.from {
            From::Job(local) => {
                let stamp = this.metrics.stamp_queued(level, || local.queues.is_empty_at(level));
                local.queues.push(level, job.stamped(stamp));
                Registry::notify_local(this, level, local);
            }
            From::Loop | From::Outside(_) => {
                let stamp = this.metrics.stamp_queued(level, || this.levels.injector_is_empty(level));
                this.levels.inject(level, job.stamped(stamp));
                if !this.wake_for(level) {
                    Registry::grow_if_backlogged(this, || this.levels.injected());
                }
            }
        }
        Registry::end_spawn(this, admission);
    }

    /// Counts a job panic (in [`Registry::panics`]), before the job's
    /// handle can report it.
    pub(crate) fn count_panic(&self) {
        self.panics.fetch_add(1, Ordering::Release);
    }

    /// Queues a fork half of `join` (`forkjoin/join.rs`) on the running
    /// job's worker, at `level`: its fork deque, where the joiner pops it
    /// back unless a peer steals it first. Always accepted, as any spawn
    /// from a running job (`lifecycle.rs`), and outside any level's
    /// capacity (`capacity.rs`). Its joiner takes it if nobody
    /// else does, so it needs no wake-up for its own sake, only for
    /// parallelism: a sleeper is woken if one is seen (`Sleep::hint_at`),
    /// and the pool does not grow for it. Its queue wait is not measured
    /// (it is counted as a job only when the pick rule takes it, `queue/local.rs`).
    pub(crate) fn push_fork(this: &Arc<Registry>, local: &Local, level: usize, half: PartRef) {
        local.queues.push_fork(level, half);
        this.sleep.hint_at(level, reserved::wakes_reserved(this, level));
    }

    /// Wakes a sleeper for a job just pushed at `level` onto `local`'s
    /// deques, or grows the pool if there is none.
    #[inline]
    fn notify_local(this: &Arc<Registry>, level: usize, local: &Local) {
        if !this.wake_for(level) {
            Registry::grow_if_backlogged(this, || this.levels.injected() + local.queues.len());
        }
    }

    /// Wakes one sleeper that can take a job just pushed at `level`
    /// (`Sleep::wake_one_at`): a reserved thread first if the level is
    /// reserved (`reserved.rs`), else a worker, else a waiting worker that
    /// may take it. Says whether it woke one.
    #[inline]
    fn wake_for(&self, level: usize) -> bool {
        self.sleep.wake_one_at(level, reserved::wakes_reserved(self, level))
    }

    /// How many jobs have panicked so far.
    pub(crate) fn panics(&self) -> usize {
        self.panics.load(Ordering::Acquire)
    }

    /// How many jobs are queued at `level` (a snapshot), the entries of
    /// cancelled or expired jobs left out, as in the metrics.
    pub(crate) fn queued(&self, level: usize) -> usize {
        let (_, peers) = self.workers.snapshot();
        self.metrics.backlog(level, || self.levels.queued(level, &peers))
    }

    /// A snapshot of the pool's metrics.
    pub(crate) fn metrics(&self) -> Metrics {
        let (started, retired) = self.workers.thread_counts();
        let threads = ThreadCounts {
            current: self.limits.current(),
            started,
            retired,
            reserved: self.reserved.running(),
            nice_refused: self.reserved.nice_refused(),
        };
        let (_, peers) = self.workers.snapshot();
        let mut metrics = self.metrics.snapshot(|level| self.levels.queued(level, &peers), threads);
        for (level, figures) in metrics.levels.iter_mut().enumerate() {
            (figures.capacity, figures.full_waits) = self.capacity.figures(level);
        }
        metrics
    }

    /// Called by a shutdown that finds jobs outstanding and no worker thread
    /// left: tries to start one and, if the OS refuses, runs the jobs on the
    /// calling thread, so that shutdown still runs every accepted job.
    fn restart(this: &Arc<Registry>) {
        Registry::notify(this);
        Registry::try_drain(this);
        if this.limits.counts().live == 0 && !this.lifecycle.is_drained() {
            eprintln!(
                "priopool: no worker thread could be started; shutdown runs the remaining jobs on its own thread"
            );
            worker::run_here(this);
        }
    }

    /// Whether the pool is at rest: no spawn from outside under way, no
    /// queue holding an entry, every worker asleep. This is the drain check of `lifecycle.rs` (without its
    /// closed intake), under the sleepers' lock, so it is never true while
    /// a job runs or waits; a spawn may of course begin right after.
    pub(crate) fn is_idle(this: &Arc<Registry>) -> bool {
        let (_, peers) = this.workers.snapshot();
        this.sleep.is_idle(|| !this.lifecycle.spawns_under_way() && !this.levels.any_queued(&peers))
    }

    /// Closes intake: the first step of every shutdown (`lifecycle.rs`).
    /// Logs the shutdown's start once, before the close, so before any
    /// drain can end it: only the first close logs (a `Pool` dropped after
    /// `shutdown_now` or `shutdown_timeout` closes again), and a pool's
    /// closes come one after another, from its owner (its shutdown call,
    /// then its drop).
    pub(crate) fn close_intake(this: &Arc<Registry>) {
        #[cfg(feature = "log")]
        if !this.lifecycle.is_closed() {
            crate::hooks::log_event!(info, "shutdown begun: closing intake");
        }
        this.lifecycle.close();
        // Producers waiting for room see the close and are refused.
        this.capacity.wake_all();
        Registry::try_drain(this);
    }

    /// The drain check of `lifecycle.rs`, step 3: if intake is closed, no
    /// spawn from outside is under way, no queue holds a job and every
    /// worker is asleep, records the drain and wakes every worker so that
    /// they exit, opens the drained latch, and stops the deadline timer.
    /// Once drained, outside a loop of this pool, it lets go of the user's
    /// code (`config::UserCode`). Call it after any change that may
    /// complete the drain (`lifecycle.rs`, step 3), and on a worker's way
    /// out; it is cheap until intake is closed.
    pub(crate) fn try_drain(this: &Arc<Registry>) {
        if !this.lifecycle.is_closed() {
            return;
        }
        if !this.lifecycle.is_drained() {
            Registry::drain_check(this);
        }
        // Not inside a loop of this pool, where a spawn from the user's
        // destructors would count as a job's and be admitted after the
        // drain: that loop's worker lets go on its way out (`worker.rs`).
        if this.lifecycle.is_drained() && !worker::runs_loop_of(this.id) {
            // No thread starts any more; each worker keeps its own clone to
            // its end. A destructor of the user's captures that panics
            // counts as a hook panic.
            if let Some(payload) = this.config.release_user_code() {
                this.metrics.hook_panicked();
                drop_payload(payload);
            }
        }
    }

    /// The drain check of [`Registry::try_drain`], on a pool not drained yet.
    fn drain_check(this: &Arc<Registry>) {
        let (_, peers) = this.workers.snapshot();
        let drained = this.sleep.wake_all_if_idle(|| {
            if this.lifecycle.spawns_under_way() || this.levels.any_queued(&peers) {
                return false;
            }
            this.lifecycle.set_drained();
            true
        });
        if drained {
            this.abort.set_drained();
            this.timer.stop();
            // A pool whose workers all retired before the drain has no last
            // worker to log the end.
            #[cfg(feature = "log")]
            this.log_shutdown_done(this.metrics.workers_on_roster());
        }
    }

    /// Logs the end of the shutdown once the pool is drained and no worker
    /// is left on the metrics roster (`workers`: how many are, read after
    /// the caller's change), by whichever of the two changes comes last:
    /// the last worker's exit (`probe.rs`), or the drain of a pool with no
    /// worker left. Both read the roster under its lock, and the drain is
    /// set before its roster read and read after a worker's detach, so at
    /// least one of them sees both; the flag makes it exactly one.
    #[cfg(feature = "log")]
    pub(crate) fn log_shutdown_done(&self, workers: usize) {
        if workers == 0 && self.lifecycle.is_drained() && !self.done_logged.swap(true, Ordering::AcqRel) {
            crate::hooks::log_event!(info, "shutdown done: every accepted job has ended and every worker has exited");
        }
    }

    /// Closes intake and, unless called from one of this pool's own threads
    /// (`worker::is_own_thread`: a job, a hook), waits for the drain and
    /// joins every worker thread ever started (retired ones included) and
    /// the deadline timer.
    pub(crate) fn shutdown(this: &Arc<Registry>) {
        Registry::close_intake(this);
        if !worker::is_own_thread(this.id) {
            this.workers.join_all(|| this.lifecycle.is_drained(), || Registry::restart(this));
            this.timer.join();
        }
    }
}

// Growing and shrinking: the rules are `limits.rs`'s; these are the steps
// that start and join threads.
impl Registry {
    /// Makes sure a job just queued (or left behind) will be taken: wakes one
    /// sleeper, or if there is none, grows the pool when the rules allow.
    pub(crate) fn notify(this: &Arc<Registry>) {
        if !this.sleep.wake_one() {
            Registry::grow_if_backlogged(this, || this.levels.injected());
        }
    }

    /// Starts one more worker if the rules allow (`limits.rs`): the pool is
    /// below its maximum and `backlog()` exceeds the searching workers.
    #[inline]
    fn grow_if_backlogged(this: &Arc<Registry>, backlog: impl FnOnce() -> usize) {
        if this.limits.reserve_if_backlogged(backlog)
            && let Err(error) = Registry::start_reserved(this, true)
        {
            // Nobody waits for this start to report an error to: say it here.
            this.limits.report_spawn_failure(&error);
        }
    }

    /// Starts a worker into a slot already reserved in `live`, or gives the
    /// slot back. `searching`: the new worker is counted as searching.
    pub(crate) fn start_reserved(this: &Arc<Registry>, searching: bool) -> std::io::Result<()> {
        match worker::start(this, Role::Regular, searching) {
            Ok(true) => {
                this.limits.spawn_succeeded();
                Ok(())
            }
            // The pool has shut down and joined its threads: nothing needs
            // a worker any more.
            Ok(false) => {
                this.limits.release(searching);
                Ok(())
            }
            Err(error) => {
                this.limits.release(searching);
                Err(error)
            }
        }
    }

    /// Sets the worker limits at run time; see
    /// [`Pool::set_worker_limits`](crate::Pool::set_worker_limits).
    pub(crate) fn set_worker_limits(this: &Arc<Registry>, min: usize, max: usize) -> Result<(), ResizeError> {
        validate_limits(min, max).map_err(|e| ResizeError::new(ResizeErrorKind::Limits(e)))?;
        this.workers.reap();
        let reserved = this.limits.set_limits(min, max);
        // Sleeping surplus workers must see the surplus, and workers parked
        // without a deadline must re-arm one if the minimum went down.
        this.sleep.wake_all();
        for started in 0..reserved {
            if let Err(source) = Registry::start_reserved(this, false) {
                for _ in started + 1..reserved {
                    this.limits.release(false);
                }
                let running = this.limits.counts().live;
                return Err(ResizeError::new(ResizeErrorKind::ThreadSpawn { running, source }));
            }
        }
        Ok(())
    }

    /// A worker leaves for good (retired as surplus or idle): it stops
    /// being a steal target once its deques are empty (`empty`: already),
    /// passes on any wake-up it might have swallowed (`limits.rs`, case 2)
    /// and, if it runs on a thread of its own (`own_thread`; not the
    /// shutdown's last resort of `worker::run_here`), hands its thread to
    /// be joined, which counts it as retired.
    pub(crate) fn retire_worker(this: &Arc<Registry>, index: usize, own_thread: bool, empty: bool) {
        this.workers.remove_peer(index, empty);
        crate::sync::fence(Ordering::SeqCst);
        let (_, peers) = this.workers.snapshot();
        if this.levels.any_queued(&peers) {
            Registry::notify(this);
        }
        if own_thread {
            this.workers.retire_thread(index);
        }
    }
}
