//! Priority levels, the per-level injectors and the rule that picks the next
//! job.
//!
//! # The pick rule
//!
//! Level 0 is the most urgent. Each time a worker looks for its next job it
//! walks the levels from 0 upwards and, within a level, tries in turn
//!
//! 1. its own local deque for that level,
//! 2. that level's [`Injector`] (`steal_batch_and_pop`, which moves a batch
//!    into the local deque and pops one job of it),
//! 3. the other workers' [`Stealer`]s for that level.
//!
//! It moves on to a less urgent level only when the level's *queued count*
//! is zero. The count is raised before a job is pushed and lowered right
//! after a worker pops it, so it also covers jobs that are briefly invisible
//! to stealers: a job being pushed, or a batch in flight between the
//! injector and a worker's deque. When the count says a job waits but no
//! source yields it, the pick reports [`Pick::Contended`] and the worker
//! retries from level 0 after a short backoff: it never falls through to a
//! lower level past a waiting job.
//!
//! Skipping an empty level costs one atomic load, so a worker does not try
//! `levels × workers` steals per job when most levels are empty.
//!
//! This module starts no threads: everything in it can be exercised from a
//! single test thread.

use std::fmt;

use crossbeam_utils::CachePadded;

use crate::deque::{Injector, Steal, Stealer, Worker};
use crate::job::Job;
use crate::sync::{AtomicUsize, Ordering, spin_loop};

/// How urgent a job is: one of the pool's priority levels.
///
/// Level 0 ([`Priority::HIGH`]) is the most urgent; a pool built with
/// `k` levels accepts levels `0..k`. [`Priority::LOW`] always names the
/// pool's *least* urgent level (`k - 1`), whatever `k` is, so code written
/// for a two-level pool keeps its meaning when levels are added.
///
/// There is no `MEDIUM`: with three levels, the middle one is
/// `Priority::level(1)`. Equality compares what was written, not the level
/// it resolves to in some pool: `Priority::level(1) != Priority::LOW` even
/// though both name level 1 of a two-level pool. For the same reason
/// `Priority` is not `Ord`.
///
/// A `Priority` is resolved against a pool when a job is spawned; a level
/// the pool does not have is reported as [`SpawnError`](crate::SpawnError)
/// with kind [`SpawnErrorKind::UnknownLevel`](crate::SpawnErrorKind::UnknownLevel).
///
/// ```
/// use priopool::Priority;
/// assert_eq!(Priority::HIGH, Priority::level(0));
/// assert_eq!(Priority::level(3).to_string(), "level 3");
/// assert_eq!(Priority::LOW.to_string(), "lowest level");
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct Priority(Repr);

#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
enum Repr {
    Level(usize),
    Lowest,
}

impl Priority {
    /// The most urgent level, level 0.
    pub const HIGH: Priority = Priority(Repr::Level(0));

    /// The least urgent level of whichever pool the job is given to.
    pub const LOW: Priority = Priority(Repr::Lowest);

    /// Priority level `index`; 0 is the most urgent.
    pub const fn level(index: usize) -> Priority {
        Priority(Repr::Level(index))
    }

    /// The level index this priority asks for, whatever the pool (`None`
    /// for [`Priority::LOW`], which every pool has).
    pub(crate) fn asked(self) -> Option<usize> {
        match self.0 {
            Repr::Level(i) => Some(i),
            Repr::Lowest => None,
        }
    }

    /// The level index this priority names in a pool with `levels` levels,
    /// or `None` if that pool has no such level.
    pub(crate) fn resolve(self, levels: usize) -> Option<usize> {
        match self.0 {
            Repr::Level(i) if i < levels => Some(i),
            Repr::Level(_) => None,
            Repr::Lowest => levels.checked_sub(1),
        }
    }
}

impl fmt::Display for Priority {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Repr::Level(i) => write!(f, "level {i}"),
            Repr::Lowest => f.write_str("lowest level"),
        }
    }
}

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
pub(crate) enum Pick {
    /// A job of the given level, already counted out of the queued count,
    /// and where it came from.
    Found(usize, Job, Source),
    /// A job waits at some level but could not be taken this time (a
    /// `Steal::Retry`, or a job still in flight): back off and pick again.
    Contended,
    /// Every level's queued count was zero.
    Empty,
}

/// The shared, per-level half of the queues: one injector and one queued
/// count per priority level.
pub(crate) struct Levels {
    injectors: Box<[Injector<Job>]>,
    /// Jobs of each level that are queued anywhere (injector or any local
    /// deque) or in flight between two queues, counted in once their push
    /// has completed and out right after a worker pops them. A worker may
    /// pop a job before its pusher has counted it in, so the raw value can
    /// dip below zero for a moment: it is a wrapping counter read as a
    /// signed number, and a negative value reads as zero.
    queued: Box<[CachePadded<AtomicUsize>]>,
}

impl Levels {
    pub(crate) fn new(levels: usize) -> Levels {
        Levels {
            injectors: (0..levels).map(|_| Injector::new()).collect(),
            queued: (0..levels).map(|_| CachePadded::new(AtomicUsize::new(0))).collect(),
        }
    }

    /// The number of priority levels.
    pub(crate) fn len(&self) -> usize {
        self.injectors.len()
    }

    /// Counts a job in right *after* it was pushed at `level`.
    ///
    /// After, not before: were the count raised first, a pusher preempted
    /// between the two steps would leave workers spinning on a count whose
    /// job they cannot see (`Pick::Contended`) until the OS ran the pusher
    /// again, milliseconds on a busy machine, with both cores taken by the
    /// spinning workers. Counting in after the push means the only jobs a
    /// count can cover invisibly are in a worker's own hands (a batch in
    /// flight, a pop not yet counted out), which a few instructions settle.
    ///
    /// A read-modify-write (`AcqRel`): it is the pusher's half of the sleep
    /// protocol (see `sleep.rs`) and of the retirement and searching
    /// re-checks (see `scaling.rs`); the other half is
    /// [`Levels::any_queued`] on the same count.
    pub(crate) fn count_in(&self, level: usize) {
        self.queued[level].fetch_add(1, Ordering::AcqRel);
    }

    /// Pushes a job onto the level's injector; count it in with
    /// [`Levels::count_in`] next.
    pub(crate) fn inject(&self, level: usize, job: Job) {
        self.injectors[level].push(job);
    }

    /// Whether any level has a queued job: the re-check of a worker that has
    /// announced itself (registered as a sleeper, retired, or stopped
    /// searching) and must not miss a job pushed meanwhile.
    ///
    /// Each count is read with a read-modify-write that adds zero, not with
    /// a load: an RMW reads the latest value in the count's modification
    /// order and, being `AcqRel`, makes the caller's announcement *happen
    /// before* anything a later [`Levels::count_in`] of that level is
    /// followed by. That is the whole argument for "no lost wake-up" (see
    /// `sleep.rs`) and "no stranded job" on retirement (see `scaling.rs`),
    /// and it needs only one location's modification order, which loom
    /// models exactly. It costs one RMW per level, only on those cold paths.
    pub(crate) fn any_queued(&self) -> bool {
        self.queued.iter().any(|q| positive(q.fetch_add(0, Ordering::AcqRel)) > 0)
    }

    /// How many jobs are queued at all levels together (the pool's backlog).
    /// Read by a pusher deciding whether to grow the pool, after its own
    /// count-in (see `scaling.rs`). `Acquire`: every change to a count is a
    /// read-modify-write.
    pub(crate) fn backlog(&self) -> usize {
        self.queued.iter().map(|q| positive(q.load(Ordering::Acquire))).sum()
    }

    /// How many jobs are queued at `level` right now (a snapshot).
    ///
    /// `Acquire`: every change to the count is a read-modify-write, and the
    /// increments are releases, so a reader sees everything a submitter did
    /// before counting in any job this value includes (the metrics rely on
    /// it: a job's `submitted` count precedes its count-in).
    pub(crate) fn queued(&self, level: usize) -> usize {
        positive(self.queued[level].load(Ordering::Acquire))
    }

    /// Whether `level`'s injector is empty (the loom models' oracle).
    #[cfg(all(test, loom))]
    pub(crate) fn injector_is_empty(&self, level: usize) -> bool {
        self.injectors[level].is_empty()
    }

    /// One pass of the pick rule for the worker owning `local` (one deque per
    /// level). `peers` are every worker's stealers, one per level, the
    /// caller's own included (stealing from oneself finds nothing and is
    /// harmless); the scan of peers starts at `start` to spread contention.
    pub(crate) fn pick<P: AsRef<[Stealer<Job>]>>(&self, local: &[Worker<Job>], peers: &[P], start: usize) -> Pick {
        for (level, queued) in self.queued.iter().enumerate() {
            if positive(queued.load(Ordering::Acquire)) == 0 {
                continue;
            }
            return match self.take(level, &local[level], peers, start) {
                Some((job, source)) => {
                    queued.fetch_sub(1, Ordering::Release);
                    Pick::Found(level, job, source)
                }
                // The level has a job (queued count > 0) that no source gave
                // us: never fall through to a less urgent level past it.
                None => Pick::Contended,
            };
        }
        Pick::Empty
    }

    /// Tries the sources of one level in order: local deque, injector, peers.
    fn take<P: AsRef<[Stealer<Job>]>>(
        &self,
        level: usize,
        local: &Worker<Job>,
        peers: &[P],
        start: usize,
    ) -> Option<(Job, Source)> {
        if let Some(job) = local.pop() {
            return Some((job, Source::Local));
        }
        if let Some(job) = first_success(|| self.injectors[level].steal_batch_and_pop(local)) {
            return Some((job, Source::Injector));
        }
        let n = peers.len();
        (0..n)
            .find_map(|i| first_success(|| peers[(start + i) % n].as_ref()[level].steal_batch_and_pop(local)))
            .map(|job| (job, Source::Peer))
    }

    /// Moves every job left in `local` (one deque per level) to the
    /// injectors, so that a worker that exits strands nothing. The queued
    /// counts do not change: the jobs stay queued at the same level.
    pub(crate) fn drain_into_injectors(&self, local: &[Worker<Job>]) {
        for (level, deque) in local.iter().enumerate() {
            while let Some(job) = deque.pop() {
                self.injectors[level].push(job);
            }
        }
    }
}

/// A raw queued count read as a signed number, negative values as zero
/// (see `Levels::queued`).
fn positive(raw: usize) -> usize {
    usize::try_from(raw as isize).unwrap_or(0)
}

/// Runs `steal` until it stops answering `Retry` a few times in a row, and
/// returns the job if one was stolen. A persistent `Retry` is reported as no
/// job: the queued count keeps the caller from mistaking it for "empty".
fn first_success(mut steal: impl FnMut() -> Steal<Job>) -> Option<Job> {
    for _ in 0..4 {
        match steal() {
            Steal::Success(job) => return Some(job),
            Steal::Empty => return None,
            Steal::Retry => spin_loop(),
        }
    }
    None
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    fn job() -> Job {
        Job::new(|| {})
    }

    #[test]
    fn low_resolves_to_the_last_level() {
        assert_eq!(Priority::LOW.resolve(2), Some(1));
        assert_eq!(Priority::LOW.resolve(5), Some(4));
        assert_eq!(Priority::HIGH.resolve(1), Some(0));
        assert_eq!(Priority::level(2).resolve(2), None);
        assert_eq!(Priority::LOW.resolve(0), None);
    }

    #[test]
    fn picks_the_most_urgent_level_first() {
        let levels = Levels::new(3);
        let local: Vec<_> = (0..3).map(|_| Worker::new_fifo()).collect();
        for level in [2, 1, 2, 0] {
            levels.count_in(level);
            levels.inject(level, job());
        }
        let mut order = Vec::new();
        while let Pick::Found(level, _, _) = levels.pick::<Vec<Stealer<Job>>>(&local, &[], 0) {
            order.push(level);
        }
        assert_eq!(order, [0, 1, 2, 2]);
        assert!(!levels.any_queued());
    }

    #[test]
    fn a_counted_but_invisible_job_blocks_lower_levels() {
        let levels = Levels::new(2);
        let local: Vec<_> = (0..2).map(|_| Worker::new_fifo()).collect();
        levels.count_in(1);
        levels.inject(1, job());
        levels.count_in(0); // a high job counted but in flight between two queues
        assert!(matches!(levels.pick::<Vec<Stealer<Job>>>(&local, &[], 0), Pick::Contended));
        levels.inject(0, job());
        assert!(matches!(levels.pick::<Vec<Stealer<Job>>>(&local, &[], 0), Pick::Found(0, _, _)));
        assert!(matches!(levels.pick::<Vec<Stealer<Job>>>(&local, &[], 0), Pick::Found(1, _, _)));
    }

    #[test]
    fn a_job_popped_before_its_count_in_reads_as_none_queued() {
        let levels = Levels::new(2);
        let local: Vec<_> = (0..2).map(|_| Worker::new_fifo()).collect();
        levels.inject(0, job()); // pushed; its pusher has not counted it in yet
        levels.count_in(1);
        levels.inject(1, job());
        // Level 0's count is zero, so the pick takes level 1 and counts it out.
        assert!(matches!(levels.pick::<Vec<Stealer<Job>>>(&local, &[], 0), Pick::Found(1, _, _)));
        levels.count_in(0);
        assert_eq!(levels.queued(0), 1);
        assert!(matches!(levels.pick::<Vec<Stealer<Job>>>(&local, &[], 0), Pick::Found(0, _, _)));
        // A pop that overtakes the count-in: the raw count dips below zero
        // and reads as zero until the pusher counts in.
        levels.inject(0, job());
        levels.queued[0].fetch_sub(1, Ordering::Release);
        assert_eq!(levels.queued(0), 0);
        assert!(!levels.any_queued());
        levels.count_in(0);
        assert_eq!(levels.queued(0), 0);
    }

    #[test]
    fn steals_from_peers_and_drains_into_injectors() {
        let levels = Levels::new(2);
        let victim: Vec<_> = (0..2).map(|_| Worker::new_fifo()).collect();
        let thief: Vec<_> = (0..2).map(|_| Worker::new_fifo()).collect();
        levels.count_in(1);
        victim[1].push(job());
        let stealers: Vec<_> = victim.iter().map(Worker::stealer).collect();
        assert!(matches!(levels.pick(&thief, &[stealers], 0), Pick::Found(1, _, Source::Peer)));

        levels.count_in(0);
        victim[0].push(job());
        levels.drain_into_injectors(&victim);
        assert!(victim[0].is_empty());
        assert!(matches!(levels.pick::<Vec<Stealer<Job>>>(&thief, &[], 0), Pick::Found(0, _, Source::Injector)));
    }
}
