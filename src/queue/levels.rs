//! The per-level queues and the pick rule, generic over the job type `T`,
//! with no threads: every function here can be driven from one test thread
//! with plain integers as jobs.
//!
//! # The queues are the truth
//!
//! A job is pushed once, into its level's [`Injector`] (from outside the
//! pool) or into the spawning worker's own deque for its level (from a
//! running job), and taken once, by one worker, with a single-job pop or
//! steal. No job ever moves between queues, so from the moment its push
//! completes until it is taken a job is visible in the queue it was pushed
//! into. Nothing else decides whether a job waits: no count can hide a job
//! that is there, and no count can make a worker wait for a job that is not
//! there yet.
//!
//! Two cheap hints keep a worker from trying `1 + workers` steals on an
//! empty level. An injector is skipped when [`Injector::is_empty`] says so
//! (see "Trying an injector" below). A peer's deque is skipped when its
//! *occupied* flag is clear (`queue/local.rs`): set by its owner before a
//! push, cleared by its owner
//! when its own pop finds the deque empty, so a clear flag is never wrong
//! about a job whose push happened before the read. A hint may read high (a
//! push under way, a deque whose jobs were stolen): the worker then tries
//! the source, finds it empty and moves on.
//!
//! # The pick rule
//!
//! Level 0 is the most urgent. Each time a worker looks for its next job it
//! walks the levels from 0 upwards and, within a level, tries in turn
//!
//! 1. its own deque for that level,
//! 2. that level's [`Injector`],
//! 3. the other workers' [`Stealer`]s for that level
//!
//! (the loop crossbeam-deque's crate docs teach, once per level, with
//! single-job steals as rayon does), except that one take in every round
//! of the own deque's turns tries the injector first (`queue/local.rs`,
//! "Order within a level"). It moves on to a less urgent level only
//! when every source of the level answered empty. A source that answered
//! [`Steal::Retry`] (another thread won the race for its front job) means a
//! job is there: the pick reports [`Pick::Contended`] and the worker picks
//! again from level 0 after a short backoff, never falling through past it.
//!
//! The walk over the more urgent levels and the take from a less urgent one
//! are two steps, and jobs may be pushed between them: a job pushed after a
//! more urgent one could be taken while that one waits (one pusher, a
//! preempted worker, and another worker emptying the level meanwhile are
//! enough). So a job taken below level 0 from a shared source (the injector
//! or a peer) is kept only if the more urgent levels still look empty
//! afterwards; otherwise it goes into the worker's own deque for its level,
//! at the back, and the walk starts again from level 0. Every more urgent
//! job pushed before the taken one is visible to that second look (the take
//! synchronises with the push), so a job starts only when no more urgent job
//! pushed before it waits in a queue. A job from the worker's own deque
//! needs no second look: it was put there before this walk began. A job put
//! back (a more urgent job pushed between the walk and the take, or one in
//! a peer's deque that the shortcut below did not walk to) stays visible,
//! its wait bounded, but not always ahead of the level's later jobs from
//! outside. The take reached a shared source because the own deque for the
//! level was empty or on the injector's turn (`queue/local.rs`), so the
//! job is the newest there: the next of its level the worker takes, unless
//! the more urgent jobs that run first push jobs at its level, which newest
//! first takes before it. It then waits under the own deque's rule
//! (`queue/local.rs`, "Order within a level": within
//! `(i + 1) × 2 × OLDEST_EVERY` of the worker's counted takes at its level,
//! `i` the jobs queued before it there), and a job from outside pushed
//! after it may be taken first, on an injector's turn meanwhile.
//!
//! A worker whose last job came from the injector of a level below 0
//! tries that injector first on its next pick, before the walk, when its
//! own deque for that level is empty (*the shortcut*). What keeps the rule
//! is the second look, not the walk: the job is kept only if the more
//! urgent levels still look empty after the take; else it goes to the back
//! of the own deque (empty until then, so a level's order on one worker
//! holds) and the walk starts from level 0. The walk before a take only
//! finds more urgent jobs sooner. Under a flood of one level the shortcut
//! skips that walk on most picks: a worker's instructions per job from
//! outside fell from 491 to 405 (callgrind, one worker).
//!
//! The shortcut is not taken while a more urgent injector holds a job
//! (two loads per injector, lines that only pushes to those levels write):
//! a HIGH job from outside that waits when a worker ends its LOW job then
//! starts without a LOW steal first, which pulls a line the other workers
//! take turns on, nor a push back and a walk (the figures:
//! `docs/benchmarks.md`, "What moved C"). Nor is it once the worker has
//! pushed a job into its own deque for a more urgent level, as when its
//! last job spawned a more urgent one: that push forgets the shortcut's
//! level (`queue/local.rs`), else a job of the level put back would wait
//! in the own deque, older than one that the more urgent job spawns at the
//! level later, and the own deque's oldest-first take (`queue/local.rs`,
//! "Order within a level") could run it first, where the walk runs the own
//! deque's job first. More urgent jobs in peers' deques are left to the
//! second look.
//!
//! # Trying an injector
//!
//! [`Injector::is_empty`] reads the queue's head and its tail, the line
//! every push writes; [`Injector::steal`] reads the tail only when the
//! head's block is the queue's last, so stealers of a long queue leave
//! the pushers' line alone. A test of `is_empty` before each steal made
//! every take of a busy level pull that line from the pusher's core, and
//! the pusher then waited for it back on its next push (`perf annotate`:
//! nine tenths of a push's cycles). But a steal from an empty injector
//! costs a `SeqCst` fence, where `is_empty` costs two loads (of lines
//! nobody writes, on a level nobody pushes to). So each worker remembers,
//! per level, whether its last try of the injector found a job (or lost a
//! race for one): if so it steals at once, else it tests `is_empty` first.
//! Either way the worker reads the injector itself, so the choice changes
//! the cost of a try, never its answer.
//!
//! # What a stalled pusher can delay
//!
//! crossbeam's injector hands out slots in push order, and a push claims
//! its slot before writing the job into it. A thread whose steal claims the
//! slot of a pusher stopped between those two steps (a few instructions of
//! the pusher's: a preemption, a signal handler, a debugger) waits in that
//! steal until the pusher runs again; the injector gives it no way to
//! decline. That thread is a worker, which then takes nothing else
//! meanwhile, or the sweep of `shutdown_now`/`shutdown_timeout`. Other
//! workers go on taking every other job, of every level, the ones behind
//! that slot included. So a stalled pusher delays the job it is pushing, and
//! one worker per stalled push: with as many stalled pushes as workers (one
//! worker: one stall) nothing runs until a pusher resumes. The injector
//! also makes other pushers of the same level wait when the stalled push
//! is the one that must link the queue's next block (one push in 63).
//! Nothing else in the pool waits for a pusher; no count or flag stands
//! for a job that is not in its queue yet.
use super::deque::{Injector, Steal};
use super::local::{LocalQueues, Queued, SharedQueues};
use crate::sync::spin_loop;

/// Where the pick rule found a job.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Source {
    /// The worker's own deque.
    Local,
    /// The level's injector.
    Injector,
    /// Another worker's deque: a steal.
    Peer,
}

/// What one pass of the pick rule found.
pub(crate) enum Pick<T> {
    /// A job of the given level, and where it came from.
    Found(usize, T, Source),
    /// A job waits at some level but could not be taken this time (a
    /// `Steal::Retry`): back off and pick again.
    Contended,
    /// Every source of every level answered empty.
    Empty,
}

/// What one level's sources gave.
enum Take<T> {
    Job(T, Source),
    /// Some source answered `Retry`, none gave a job.
    Retry,
    Empty,
}

/// The shared, per-level half of the queues: one injector per priority
/// level. (The deques are each worker's, `queue/local.rs`.)
pub(crate) struct Levels<T> {
    injectors: Box<[Injector<T>]>,
}

impl<T: Queued> Levels<T> {
    pub(crate) fn new(levels: usize) -> Levels<T> {
        Levels { injectors: (0..levels).map(|_| Injector::new()).collect() }
    }

    /// The number of priority levels.
    pub(crate) fn len(&self) -> usize {
        self.injectors.len()
    }

    /// Pushes a job onto the level's injector (a spawn from outside).
    pub(crate) fn inject(&self, level: usize, job: T) {
        self.injectors[level].push(job);
    }

    /// Whether the level's injector is empty (a snapshot).
    pub(crate) fn injector_is_empty(&self, level: usize) -> bool {
        self.injectors[level].is_empty()
    }

    /// Test oracle: whether the level's injector holds a job, read under
    /// the stand-in queue's lock.
    #[cfg(all(test, loom))]
    pub(crate) fn injector_holds_any(&self, level: usize) -> bool {
        self.injectors[level].holds(|_| true)
    }

    /// Whether `level` has a job visible in one of its queues: the injector
    /// or one of `peers`' deques. A snapshot.
    #[inline]
    fn holds<P: AsRef<SharedQueues<T>>>(&self, level: usize, peers: &[P]) -> bool {
        // Plain loops here and in the second look: written with `any`,
        // their `try_fold` was not inlined, 29 instructions more per job
        // from outside (callgrind, one worker).
        if !self.injectors[level].is_empty() {
            return true;
        }
        for peer in peers {
            if peer.as_ref().holds(level) {
                return true;
            }
        }
        false
    }

    /// The second look after a take of `job` at `level` from a shared
    /// source (see the module docs): the job back if no more urgent level
    /// has a visible job; else `None`, the job kept for later at the back
    /// of `local`'s deque for its level. Also for a caller whose `peers`
    /// changed since the take. Always inlined: on the shortcut's path a
    /// call cost 8 instructions per job (callgrind, one worker).
    #[inline(always)]
    pub(crate) fn second_look<P: AsRef<SharedQueues<T>>>(
        &self,
        level: usize,
        job: T,
        local: &LocalQueues<T>,
        peers: &[P],
    ) -> Option<T> {
        for more in 0..level {
            if self.holds(more, peers) {
                local.push(level, job);
                return None;
            }
        }
        Some(job)
    }

    /// Whether any level has a visible job: the re-check of a worker that
    /// has announced itself (as a sleeper, a retiree or a searcher that
    /// stopped) and must not miss a job pushed meanwhile, and of the drain.
    /// `peers` must include every worker's queues, retired workers' that
    /// still hold jobs too. Its caller fences first (see `sleep.rs`).
    pub(crate) fn any_queued<P: AsRef<SharedQueues<T>>>(&self, peers: &[P]) -> bool {
        self.any_queued_upto(self.len() - 1, peers)
    }

    /// Whether a level at least as urgent as `upto` has a visible job: the
    /// re-check of a reserved thread, which takes only levels `0..=upto`
    /// (`sleep.rs`), and of a waiting worker about to park
    /// (`runtime/help.rs`).
    pub(crate) fn any_queued_upto<P: AsRef<SharedQueues<T>>>(&self, upto: usize, peers: &[P]) -> bool {
        (0..=upto.min(self.len() - 1)).any(|level| self.holds(level, peers))
    }

    /// How many jobs are queued at `level` right now: a snapshot, exact at
    /// rest, which may include jobs whose push is under way.
    pub(crate) fn queued<P: AsRef<SharedQueues<T>>>(&self, level: usize, peers: &[P]) -> usize {
        self.injectors[level].len() + peers.iter().map(|p| p.as_ref().len(level)).sum::<usize>()
    }

    /// Takes one job of `level` off its injector or one of `peers`'
    /// deques (never a fork half), oldest first in each; `None` once every one of them answered
    /// empty (a lost race is tried again). For cancelling a level's whole
    /// backlog, where the pick rule's order across levels does not matter.
    pub(crate) fn take_at<P: AsRef<SharedQueues<T>>>(&self, level: usize, peers: &[P]) -> Option<T> {
        loop {
            let mut retry = false;
            let sources = std::iter::once(self.injectors[level].steal())
                .chain(peers.iter().map(|p| p.as_ref().steal_spawned(level)));
            for steal in sources {
                match steal {
                    Steal::Success(job) => return Some(job),
                    Steal::Retry => retry = true,
                    Steal::Empty => {}
                }
            }
            if !retry {
                return None;
            }
            spin_loop();
        }
    }

    /// How many jobs wait in the injectors (spawned from outside and not
    /// taken yet), all levels together: the backlog a pusher weighs before
    /// growing the pool (`limits.rs`).
    pub(crate) fn injected(&self) -> usize {
        self.injectors.iter().map(Injector::len).sum()
    }

    /// One pass of the pick rule for the worker owning `local`. `peers` are
    /// every worker's queues, the caller's own included (stealing from
    /// oneself finds nothing and is harmless); the scan of peers starts at
    /// `start` to spread contention.
    pub(crate) fn pick<P: AsRef<SharedQueues<T>>>(&self, local: &LocalQueues<T>, peers: &[P], start: usize) -> Pick<T> {
        self.pick_upto(local, peers, start, self.len() - 1)
    }

    /// The pick rule over levels `0..=upto` only: what a worker waiting
    /// inside a job of level `upto` may take (`runtime/help.rs`), and a
    /// reserved thread's pick (`runtime/reserved.rs`). `Empty` says those
    /// levels are empty; less urgent ones are not looked at.
    pub(crate) fn pick_upto<P: AsRef<SharedQueues<T>>>(
        &self,
        local: &LocalQueues<T>,
        peers: &[P],
        start: usize,
        upto: usize,
    ) -> Pick<T> {
        let upto = upto.min(self.len() - 1);
        // The shortcut (see the module docs): the injector that gave the
        // last job first, unless a more urgent injector holds a job; the
        // second look deciding.
        if let Some(level) = local.hot().filter(|&hot| hot <= upto && !local.own_may_hold(hot))
            && self.injectors[..level].iter().all(Injector::is_empty)
            && let Steal::Success(job) = self.injectors[level].steal()
            && let Some(job) = self.second_look(level, job, local, peers)
        {
            return Pick::Found(level, job, Source::Injector);
        }
        'walk: loop {
            for level in 0..=upto {
                match self.take(level, local, peers, start) {
                    Take::Job(job, source) => {
                        // A job from the own deque needs no second look.
                        let job = if level > 0 && source != Source::Local {
                            match self.second_look(level, job, local, peers) {
                                Some(job) => job,
                                None => continue 'walk,
                            }
                        } else {
                            job
                        };
                        local.set_hot((level > 0 && source == Source::Injector).then_some(level));
                        return Pick::Found(level, job, source);
                    }
                    Take::Retry => return Pick::Contended,
                    Take::Empty => {}
                }
            }
            return Pick::Empty;
        }
    }

    /// Tries the sources of `level` alone, as one level of the pick rule
    /// does, with no look at the other levels: the pick of a level that
    /// bounded starvation says is due (`queue/aging.rs`), which passes over
    /// more urgent jobs on purpose.
    pub(crate) fn pick_level<P: AsRef<SharedQueues<T>>>(
        &self,
        level: usize,
        local: &LocalQueues<T>,
        peers: &[P],
        start: usize,
    ) -> Pick<T> {
        match self.take(level, local, peers, start) {
            Take::Job(job, source) => Pick::Found(level, job, source),
            Take::Retry => Pick::Contended,
            Take::Empty => Pick::Empty,
        }
    }

    /// Whether `level` has a visible job (the hints; a snapshot): what
    /// bounded starvation counts a pass against (`queue/aging.rs`).
    pub(crate) fn level_holds<P: AsRef<SharedQueues<T>>>(&self, level: usize, peers: &[P]) -> bool {
        self.holds(level, peers)
    }

    /// Tries the sources of one level in order: own deque, injector, peers.
    #[inline]
    fn take<P: AsRef<SharedQueues<T>>>(
        &self,
        level: usize,
        local: &LocalQueues<T>,
        peers: &[P],
        start: usize,
    ) -> Take<T> {
        let mut retry = false;
        let injector = &self.injectors[level];
        // The injector's turn (`queue/local.rs`, "Order within a level").
        if local.injector_turn(level)
            && !injector.is_empty()
            && let Steal::Success(job) = first_success(|| injector.steal())
        {
            local.took_on_injector_turn(level);
            return Take::Job(job, Source::Injector);
        }
        if let Some(job) = local.pop(level) {
            return Take::Job(job, Source::Local);
        }
        // See the module docs, "Trying an injector".
        if local.injector_busy(level) || !injector.is_empty() {
            let outcome = first_success(|| injector.steal());
            local.set_injector_busy(level, !matches!(outcome, Steal::Empty));
            match outcome {
                Steal::Success(job) => return Take::Job(job, Source::Injector),
                Steal::Retry => retry = true,
                Steal::Empty => {}
            }
        }
        let n = peers.len();
        if n > 0 {
            // From `start % n` round to `start % n - 1`, with no division
            // per peer.
            let first = start % n;
            for peer in peers[first..].iter().chain(&peers[..first]) {
                let peer = peer.as_ref();
                if !peer.may_hold(level) {
                    continue;
                }
                match first_success(|| peer.steal(level)) {
                    Steal::Success(job) => return Take::Job(job, Source::Peer),
                    Steal::Retry => retry = true,
                    Steal::Empty => {}
                }
            }
        }
        if retry { Take::Retry } else { Take::Empty }
    }
}

/// How many times [`first_success`] tries a steal that answers `Retry`:
/// once under loom, so that a model can show one lost race.
const STEAL_TRIES: u32 = if cfg!(loom) { 1 } else { 4 };

/// Runs `steal` until it stops answering `Retry`, at most [`STEAL_TRIES`]
/// times.
#[inline]
fn first_success<T>(mut steal: impl FnMut() -> Steal<T>) -> Steal<T> {
    let mut outcome = steal();
    let mut tries = 1;
    while tries < STEAL_TRIES && matches!(outcome, Steal::Retry) {
        spin_loop();
        outcome = steal();
        tries += 1;
    }
    outcome
}

#[cfg(all(test, not(loom)))]
mod tests;

#[cfg(all(test, loom))]
mod loom_models;
