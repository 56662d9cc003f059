//! The worker thread: its local deques, its loop, and how a job running on
//! it spawns onto those deques.
//!
//! # The loop
//!
//! ```text
//! loop {
//!     surplus (limits.rs)? retire: exit before taking another job
//!     pick (`queue/levels.rs`):  Found   -> claim the job (`job/task.rs`) and run it
//!                                     (panics caught), or discard it unrun
//!                                     if it was cancelled or has expired
//!                                     (or the pool is aborting); finish it
//!                          Contended -> back off briefly, pick again
//!                          Empty   -> spin a few rounds (crossbeam Backoff,
//!                                     a few µs; a reserved thread never
//!                                     yields, see `reserved.rs`), then: drained? exit
//!                                                      else sleep (`sleep.rs`;
//!                                     the re-check also runs the drain
//!                                     check of `lifecycle.rs` once intake
//!                                     is closed), with a keep-alive
//!                                     deadline above the pool's minimum:
//!                                     timed out? retire
//! }
//! on exit: leave the worker set (jobs left in the own deques stay
//!          stealable, see `workers.rs`); if retired, pass on any wake-up
//!          (limits.rs)
//! ```
//!
//! A reserved thread (`reserved.rs`) runs the same loop with its own
//! levels only: no surplus check, no keep-alive deadline, its own sleeper
//! list. With bounded starvation (`queue/aging.rs`) a worker's pick tries a
//! due level first.
//!
//! A running job is never preempted; priority is applied at every job
//! boundary, because every pick starts again from level 0. The surplus
//! check comes before every pick, so a worker told to leave by a resize
//! takes no new job after its current one.
//!
//! # Thread-locals
//!
//! `CURRENT` holds the deques of the worker whose loop runs on the thread,
//! so that a spawn from a running job goes to them and is admitted past a
//! closed intake (`lifecycle.rs`). A thread's thread-locals are destroyed
//! when it exits, in the reverse order of their first use, and a panic in a
//! thread-local destructor aborts the process. A thread-local of the user's
//! that was set up before `CURRENT` may spawn on a pool, or drop one, after
//! `CURRENT` is gone, so `CURRENT` is read with `try_with`. A pool dropped
//! there may still run its jobs on the thread (`run_here`), with no deques
//! to spawn into: `LOOP`, which has no destructor, says that a loop of the
//! pool runs on the thread, so that such a job's spawn goes to the
//! injector and is admitted past a closed intake like any job's, and a
//! shutdown called from it does not wait for itself. `LOOP_POOL`, over the
//! same window and with no destructor either (its `Arc` is in a
//! `ManuallyDrop`, released by the loop on the way out), holds that pool,
//! for `priopool::spawn`, which has no handle to name it.
//!
//! `OWNER` marks a worker thread for its whole life, hooks and thread-local
//! destructors included, which is longer than `CURRENT`'s window. A
//! shutdown called there (the pool dropped in `on_thread_start`,
//! `on_thread_stop`, or a thread-local destructor of the worker) must not
//! join the pool's threads, its own among them; it closes intake and
//! returns, as from a job (`is_own_thread`). `OWNER` has no destructor, so
//! it never becomes unreadable.

use std::cell::{Cell, RefCell};
use std::io;
use std::mem::ManuallyDrop;
use std::panic::{self, AssertUnwindSafe};
use std::rc::Rc;

use super::probe::WorkerProbe;
use super::registry::Registry;
use super::reserved::{self, Role, RoleBackoff};
use super::workers::{Peer, Peers};
use crate::job::task::{Discarded, Outcome};
use crate::job::{Job, NEVER_RAN};
use crate::queue::aging::Aging;
use crate::queue::levels::{Pick, Source};
use crate::queue::local::LocalQueues;
use crate::sleep::Wake;
use crate::sync::{Arc, Parker, thread, thread_local};

/// A worker's own deques, one per level, and what a job running on it
/// needs to wait by helping (`help.rs`): the pool, the worker's parker,
/// probe and view of its peers, and the running job's level. Reachable from
/// the jobs it runs through `CURRENT`; single-threaded (`Rc`, cells).
pub(crate) struct Local {
    registry_id: usize,
    pub(crate) queues: LocalQueues<Job>,
    pub(crate) registry: Arc<Registry>,
    pub(crate) index: usize,
    pub(crate) parker: Parker,
    /// Counters, hooks and log events (`probe.rs`).
    pub(crate) probe: WorkerProbe,
    peers: RefCell<Peers>,
    peers_generation: Cell<usize>,
    /// Rotates the first peer tried, to spread steals over victims.
    tick: Cell<usize>,
    /// The highest level its pick may take: the last one, or a reserved
    /// thread's bound (`reserved.rs`); a waiting job's help stays within it.
    upto: usize,
    /// The level of the job running on this worker (the innermost one, if
    /// a waiting job runs another); `None` between jobs.
    level: Cell<Option<usize>>,
    /// A worker or a reserved thread (`reserved.rs`); a waiting job on it
    /// backs off by it (`help.rs`).
    pub(crate) role: Role,
}

#[cfg(not(loom))]
thread_local! {
    /// The deques of the pool worker running on this thread, if any.
    static CURRENT: RefCell<Option<Rc<Local>>> = const { RefCell::new(None) };
    /// The id of the pool this thread was started for, if it is a worker
    /// thread; never cleared. It has no destructor, so it can be read for
    /// as long as the thread runs.
    static OWNER: Cell<Option<usize>> = const { Cell::new(None) };
    /// The id of the pool whose worker loop runs on this thread, over the
    /// same window as `CURRENT`; it has no destructor, so it stays readable
    /// where `CURRENT` is gone (see the module docs).
    static LOOP: Cell<Option<usize>> = const { Cell::new(None) };
    /// The pool whose worker loop runs on this thread, over `LOOP`'s
    /// window; no destructor, as `LOOP` (see the module docs).
    static LOOP_POOL: RefCell<Option<ManuallyDrop<Arc<Registry>>>> = const { RefCell::new(None) };
}

// loom's `thread_local!` takes no `const` initialiser.
#[cfg(loom)]
thread_local! {
    static CURRENT: RefCell<Option<Rc<Local>>> = RefCell::new(None);
    static OWNER: Cell<Option<usize>> = Cell::new(None);
    static LOOP: Cell<Option<usize>> = Cell::new(None);
    static LOOP_POOL: RefCell<Option<ManuallyDrop<Arc<Registry>>>> = RefCell::new(None);
}

/// The local deques of the current thread if it is a worker of registry
/// `registry_id`; `None` once `CURRENT` is destroyed (see the module docs).
#[inline]
pub(crate) fn current_local(registry_id: usize) -> Option<Rc<Local>> {
    CURRENT
        .try_with(|current| current.borrow().as_ref().filter(|l| l.registry_id == registry_id).cloned())
        .ok()
        .flatten()
}

/// Whether a worker loop of registry `registry_id` runs on the current
/// thread, its deques reachable or not (see the module docs).
#[inline]
pub(crate) fn runs_loop_of(registry_id: usize) -> bool {
    LOOP.with(|running| running.get() == Some(registry_id))
}

/// Runs `f` with the pool whose worker loop runs on the current thread, if
/// any, its deques reachable or not (see the module docs). No borrow of a
/// thread-local is held while `f` runs: a spawn may run user code (a
/// growing pool's thread name function) that drops a pool, whose shutdown
/// may run a loop here (`run_here`). The pool is cloned only where
/// `CURRENT` is gone.
pub(crate) fn with_loop_pool<R>(f: impl FnOnce(Option<&Arc<Registry>>) -> R) -> R {
    if let Some(local) = current_worker() {
        return f(Some(&local.registry));
    }
    let pool = LOOP_POOL.with(|pool| pool.borrow().as_deref().cloned());
    f(pool.as_ref())
}

/// The worker running on the current thread, of whichever pool, if any.
pub(crate) fn current_worker() -> Option<Rc<Local>> {
    CURRENT.try_with(|current| current.borrow().clone()).ok().flatten()
}

/// Whether the calling thread is part of pool `registry_id`, so that it must
/// neither wait for the pool's drain nor join the pool's threads: one of the
/// pool's worker threads (in a job, in a hook, or in its thread-local
/// destructors after its loop), or a thread running one of the pool's jobs
/// (`run_here`). See the module docs.
pub(crate) fn is_own_thread(registry_id: usize) -> bool {
    OWNER.with(|owner| owner.get() == Some(registry_id)) || runs_loop_of(registry_id)
}

/// Starts a worker thread of `registry` with a fresh index, as `role`
/// (`reserved.rs`), and records it in the set; `searching`: it counts as
/// searching until it finds a job or sleeps (see `limits.rs`). A regular
/// worker's slot in the worker count is already reserved. `Ok(false)`: not
/// started, the pool has shut down.
pub(crate) fn start(registry: &Arc<Registry>, role: Role, searching: bool) -> io::Result<bool> {
    // Released at the drain (`config::UserCode`): nothing to start for.
    let Some(user_code) = registry.config.user_code() else { return Ok(false) };
    let (index, peer, queues) = new_worker(registry);
    // The name function is user code: a panic in it must not unwind into a
    // spawn (the job is already queued) with a slot reserved, and neither
    // may the panic of `thread::Builder::spawn` on a name with a NUL byte.
    let name = panic::catch_unwind(AssertUnwindSafe(|| (user_code.thread_name)(index)))
        .map_err(crate::job::drop_payload)
        .ok()
        .filter(|name| !name.contains('\0'))
        .unwrap_or_else(|| format!("priopool-{index}"));
    let mut thread = thread::Builder::new().name(name);
    if let Some(bytes) = registry.config.stack_size {
        thread = thread.stack_size(bytes);
    }
    let registry_for_thread = Arc::clone(registry);
    // On the roster before the thread runs (see `WorkerProbe::attach`).
    let probe = WorkerProbe::attach(registry, index, user_code);
    registry.workers.start(peer, move |gone| {
        thread.spawn(move || {
            // First, so that it is destroyed after any thread-local of the
            // user's (`workers.rs`).
            gone.arm();
            WorkerThread::new(registry_for_thread, index, role, queues, searching, probe).run(true)
        })
    })
}

/// Runs a worker loop on the calling thread until the pool is drained: the
/// last resort of a shutdown that finds jobs queued and no worker thread
/// (a pool with a minimum of zero workers whose thread starts the OS
/// refused).
pub(crate) fn run_here(registry: &Arc<Registry>) {
    // Released at the drain, which this loop runs only before.
    let Some(user_code) = registry.config.user_code() else { return };
    let (index, peer, queues) = new_worker(registry);
    registry.workers.add_peer(peer);
    let probe = WorkerProbe::attach(registry, index, user_code);
    WorkerThread::new(Arc::clone(registry), index, Role::Regular, queues, false, probe).run(false);
}

/// A fresh worker index, its local deques and the stealers for its peers.
fn new_worker(registry: &Registry) -> (usize, Peer, LocalQueues<Job>) {
    let index = registry.workers.next_index();
    let queues = LocalQueues::new(registry.levels.len());
    let peer = Peer { id: index, queues: Arc::clone(queues.shared()) };
    (index, peer, queues)
}

/// Why a worker's loop ended.
enum Exit {
    /// The pool is drained for shutdown.
    Drained,
    /// The worker retired: surplus after a resize, or idle past keep-alive.
    Retired,
}

struct WorkerThread {
    registry: Arc<Registry>,
    index: usize,
    local: Rc<Local>,
    /// Counted in the pool's `searching` figure (`limits.rs`).
    searching: bool,
    /// Pass counts of bounded starvation, if the pool has a bound and this
    /// is a regular worker (`queue/aging.rs`).
    aging: Option<Aging>,
}

impl WorkerThread {
    fn new(
        registry: Arc<Registry>,
        index: usize,
        role: Role,
        queues: LocalQueues<Job>,
        searching: bool,
        probe: WorkerProbe,
    ) -> WorkerThread {
        let (peers_generation, peers) = registry.workers.snapshot();
        let aging = match (role, registry.config.isolation.max_passes) {
            (Role::Regular, Some(k)) => Some(Aging::new(registry.levels.len(), k)),
            _ => None,
        };
        let local = Local {
            registry_id: registry.id,
            queues,
            upto: role.walk(registry.levels.len()) - 1,
            registry: Arc::clone(&registry),
            index,
            parker: Parker::new(),
            probe,
            peers: RefCell::new(peers),
            peers_generation: Cell::new(peers_generation),
            tick: Cell::new(index),
            level: Cell::new(None),
            role,
        };
        WorkerThread { registry, index, local: Rc::new(local), searching, aging }
    }

    /// The loop; `own_thread`: the worker was started by [`start`], on a
    /// thread of its own and into a slot of the pool's size (not by
    /// [`run_here`]).
    fn run(mut self, own_thread: bool) {
        if own_thread {
            OWNER.with(|owner| owner.set(Some(self.registry.id)));
            if self.local.role == Role::Regular {
                reserved::lower_priority(&self.registry, self.index);
            }
        }
        let (class, regular) = (self.local.role.class(), self.local.role == Role::Regular);
        // The thread start and stop hooks run outside the window in which
        // CURRENT is set: a spawn from them is not "from a running job",
        // which keeps the drain proof of `lifecycle.rs` valid.
        self.local.probe.thread_started();
        // `run_here` may run this loop on a worker of another pool (a job of
        // that pool shutting this one down): restore that pool's deques on
        // the way out, or its running job would pass for an outsider.
        // `try_with`: `run_here` may run in a thread-local destructor (a
        // pool dropped there), after `CURRENT` is gone; `LOOP` then still
        // marks its jobs as the pool's (see the module docs).
        let outer = CURRENT.try_with(|current| current.replace(Some(Rc::clone(&self.local)))).ok().flatten();
        let outer_loop = LOOP.with(|running| running.replace(Some(self.registry.id)));
        let outer_pool = LOOP_POOL.with(|pool| pool.replace(Some(ManuallyDrop::new(Arc::clone(&self.registry)))));
        let registry = Arc::clone(&self.registry);
        registry.sleep.enter_loop(class);
        let idle = RoleBackoff::new(self.local.role);
        let contention = RoleBackoff::new(self.local.role);
        let exit = loop {
            // Before every pick, so that a surplus worker never takes a job.
            if regular && registry.limits.is_surplus() && registry.limits.retire_surplus() {
                break Exit::Retired;
            }
            match self.pick() {
                Pick::Found(level, job, source) => {
                    self.stop_searching(true);
                    if !self.local.execute(level, source, job)
                        && let Some(aging) = &self.aging
                    {
                        // A dead entry started nothing (`queue/aging.rs`).
                        aging.undo();
                    }
                    idle.reset();
                    contention.reset();
                }
                Pick::Contended => contention.round(),
                Pick::Empty if !idle.is_spent() => {
                    self.start_searching();
                    idle.round();
                }
                Pick::Empty => {
                    if registry.lifecycle.is_drained() {
                        break Exit::Drained;
                    }
                    self.stop_searching(false);
                    registry.workers.prune_orphans();
                    // A reserved thread never retires: no deadline.
                    let deadline = registry.limits.keep_alive_deadline().filter(|_| regular);
                    self.local.probe.set_idle(true);
                    let wake = registry.sleep.sleep(self.index, class, &self.local.parker, deadline, || {
                        let (_, peers) = registry.workers.snapshot();
                        if registry.levels.any_queued_upto(self.local.upto, &peers)
                            || (regular && registry.limits.is_surplus())
                        {
                            return true;
                        }
                        Registry::try_drain(&registry);
                        registry.lifecycle.is_drained()
                    });
                    self.local.probe.set_idle(false);
                    if wake == Wake::TimedOut
                        && registry.limits.retire_idle(|| registry.levels.any_queued(&registry.workers.snapshot().1))
                    {
                        break Exit::Retired;
                    }
                    idle.reset();
                }
            }
        };
        let _ = CURRENT.try_with(|current| *current.borrow_mut() = outer);
        LOOP.with(|running| running.set(outer_loop));
        let own_pool = LOOP_POOL.with(|pool| pool.replace(outer_pool));
        drop(own_pool.map(ManuallyDrop::into_inner));
        self.stop_searching(false);
        // A retiring worker may hold jobs that its last job spawned; a
        // drained pool has none. They stay stealable (see `workers.rs`).
        let empty = self.local.queues.is_empty();
        self.local.probe.thread_stopping();
        match exit {
            Exit::Retired => Registry::retire_worker(&registry, self.index, own_thread, empty),
            Exit::Drained if !regular => registry.reserved.count(false),
            Exit::Drained if own_thread => registry.limits.left_at_shutdown(),
            Exit::Drained => {}
        }
        registry.sleep.leave_loop(class);
        // Every other worker may be asleep now: the drain check.
        Registry::try_drain(&registry);
    }

    /// Counts this worker as searching, if the pool could grow (only then
    /// does the figure matter).
    fn start_searching(&mut self) {
        if !self.searching && self.local.role == Role::Regular && self.registry.limits.may_grow() {
            self.registry.limits.enter_searching();
            self.searching = true;
        }
    }

    /// The next job by the pick rule over this thread's levels; under
    /// bounded starvation (`queue/aging.rs`, regular workers only) a due
    /// level is tried first, and every job found counts a pass against the
    /// less urgent levels that hold one.
    fn pick(&self) -> Pick<Job> {
        let Some(aging) = &self.aging else { return self.local.pick_upto(self.local.upto) };
        let mut pick = None;
        if let Some(level) = aging.due() {
            match self.local.pick_level(level) {
                found @ Pick::Found(..) => pick = Some(found),
                Pick::Empty => aging.found_empty(level),
                // Another thread won a race at the due level: the walk
                // below may start a more urgent job first, one pass more
                // (`queue/aging.rs`, "The bound").
                Pick::Contended => {}
            }
        }
        let pick = pick.unwrap_or_else(|| self.local.pick_upto(self.local.upto));
        if let Pick::Found(level, ..) = &pick {
            aging.started(*level, |less| self.local.level_holds(less));
        }
        pick
    }

    /// Stops counting this worker as searching; having found a job while
    /// others still wait, it passes the baton (see `limits.rs`).
    fn stop_searching(&mut self, found_job: bool) {
        if std::mem::take(&mut self.searching)
            && self
                .registry
                .limits
                .leave_searching(found_job, || self.registry.levels.any_queued(&self.local.peers.borrow()))
        {
            Registry::notify(&self.registry);
        }
    }
}

impl Local {
    /// Runs a popped job, or discards it unrun: while `shutdown_now` aborts
    /// the pool (`abort.rs`), or when its claim fails because it was cancelled
    /// or has expired (`job/task.rs`). Only a job whose closure begins is counted
    /// as started and gets the job hooks; says whether it began.
    #[inline]
    pub(crate) fn execute(&self, level: usize, source: Source, mut job: Job) -> bool {
        let registry = &*self.registry;
        // Off its queue: a bounded level has room again (`capacity.rs`);
        // a fork half took none.
        if !job.is_fork() {
            registry.capacity.give_back(level);
        }
        let discarded = if registry.abort.is_aborting() {
            registry.abort.cancel(level, job, &registry.metrics.tally)
        } else {
            match job.claim() {
                Ok(()) => {
                    self.run_claimed(level, source, job);
                    return true;
                }
                Err(discarded) => discarded,
            }
        };
        self.discard(level, source, discarded);
        false
    }

    /// Runs a job of `level` that this worker [claimed](Job::claim), counted
    /// and hooked, its panic caught and reported.
    #[inline]
    pub(crate) fn run_claimed(&self, level: usize, source: Source, job: Job) {
        let registry = &*self.registry;
        #[cfg(feature = "log")]
        let name = job.name().cloned();
        #[cfg(not(feature = "log"))]
        let name: Option<std::sync::Arc<str>> = None;
        let running = self.probe.job_starting(registry, level, source, &job);
        let outer = self.level.replace(Some(level));
        // Counted finished before its handle or state can tell that it
        // ended (`Job::run`).
        let outcome = job.run(&registry.metrics.tally, |panicked| {
            self.probe.job_ended(&running, panicked);
            if panicked {
                registry.count_panic();
            }
        });
        self.level.set(outer);
        if let Outcome::Panicked(payload) = outcome {
            self.probe.log_panic(level, name.as_deref(), payload.as_deref());
            self.probe.job_panicked(payload);
        }
    }

    /// The highest level this worker's pick may take: the last one, or a
    /// reserved thread's bound (`reserved.rs`).
    pub(crate) fn upto(&self) -> usize {
        self.upto
    }

    /// Tries the sources of `level` alone (`Levels::pick_level`), with
    /// this worker's view of its peers: the pick of a level that bounded
    /// starvation says is due (`queue/aging.rs`).
    fn pick_level(&self, level: usize) -> Pick<Job> {
        self.refresh_peers();
        let tick = self.tick.get().wrapping_add(1);
        self.tick.set(tick);
        self.registry.levels.pick_level(level, &self.queues, &self.peers.borrow(), tick)
    }

    /// Whether `level` has a visible job, in this worker's view of its
    /// peers: what bounded starvation counts a pass against.
    fn level_holds(&self, level: usize) -> bool {
        self.registry.levels.level_holds(level, &self.peers.borrow())
    }

    /// The pick rule over levels `0..=upto` (`queue/levels.rs`), with this
    /// worker's view of its peers. Always inlined: as a call, its `Pick`
    /// went back through memory, 28 instructions per job (callgrind, one
    /// worker, from outside and from jobs alike), and from outside a
    /// throwaway harness with one worker read 17.6–19.3 Mjobs/s inlined
    /// against 11.0–15.5 (five interleaved pairs).
    #[inline(always)]
    pub(crate) fn pick_upto(&self, upto: usize) -> Pick<Job> {
        loop {
            self.refresh_peers();
            let tick = self.tick.get().wrapping_add(1);
            self.tick.set(tick);
            let pick = self.registry.levels.pick_upto(&self.queues, &self.peers.borrow(), tick, upto);
            // The pick's second look (`queue/levels.rs`) saw this snapshot;
            // a worker added since may hold a more urgent job pushed before
            // this one (its publication happens before that push, which
            // happens before this take, so the load below sees it).
            match pick {
                Pick::Found(level, job, source) if level > 0 && source != Source::Local && self.refresh_peers() => {
                    match self.registry.levels.second_look(level, job, &self.queues, &self.peers.borrow()) {
                        Some(job) => return Pick::Found(level, job, source),
                        None => continue,
                    }
                }
                pick => return pick,
            }
        }
    }

    /// Whether a level at least as urgent as `upto` holds a job, in this
    /// worker's view of its peers (a waiting worker's re-check).
    pub(crate) fn any_queued_upto(&self, upto: usize) -> bool {
        self.refresh_peers();
        self.registry.levels.any_queued_upto(upto, &self.peers.borrow())
    }

    /// Takes a new snapshot of the worker set if it changed; says whether.
    #[inline]
    fn refresh_peers(&self) -> bool {
        if self.registry.workers.generation() == self.peers_generation.get() {
            return false;
        }
        self.take_snapshot();
        true
    }

    /// [`Local::refresh_peers`]'s rare half, kept out of line so that the
    /// check inlines into every pick.
    #[cold]
    #[inline(never)]
    fn take_snapshot(&self) {
        let (generation, peers) = self.registry.workers.snapshot();
        self.peers_generation.set(generation);
        *self.peers.borrow_mut() = peers;
    }

    /// The level of the job running on this worker, if one runs.
    pub(crate) fn level(&self) -> Option<usize> {
        self.level.get()
    }

    /// Counts a popped job that will not run and finishes it. Off the hot
    /// path: only cancelled and expired jobs, and jobs popped while aborting.
    #[cold]
    pub(super) fn discard(&self, level: usize, source: Source, discarded: Discarded) {
        let registry = &*self.registry;
        if discarded.ahead {
            registry.metrics.ahead_gone(level);
        } else {
            self.probe.job_discarded(registry, level, source);
        }
        if let Some(payload) = discarded.panic {
            registry.metrics.tally.caught(NEVER_RAN, payload);
        }
    }
}
