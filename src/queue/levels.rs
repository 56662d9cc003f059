//! The per-level queues and the pick rule, generic over the job type `T`,
//! with no threads: every function here can be driven from one test thread
//! with plain integers as jobs.
//!
//! # The pick rule
//!
//! Level 0 is the most urgent. Each time a worker looks for its next job it
//! walks the levels from 0 upwards and, within a level, tries in turn
//!
//! 1. its own local deque for that level,
//! 2. that level's [`Injector`] (a batch moved into the local deque),
//! 3. the other workers' [`Stealer`]s for that level
//!
//! (the loop crossbeam-deque's crate docs teach, once per level). It moves
//! on to a less urgent level only when the level's *queued count* is zero.
//! The count is raised right *after* a job is pushed ([`Levels::count_in`]
//! says why after) and lowered right after a worker pops it, so it also
//! covers jobs that are briefly invisible to stealers: a batch in flight
//! between the injector and a worker's deque. When the count says a job
//! waits but no source yields it, the pick reports [`Pick::Contended`] and
//! the worker retries from level 0 after a short backoff: it never falls
//! through to a lower level past a waiting job.
//!
//! The scan of the more urgent levels' counts and the take from a less
//! urgent level are two steps, and jobs may be pushed between them: were the
//! take to pop whatever a less urgent level holds by then, a job pushed
//! after a more urgent one could start while that one waits (one pusher, a
//! preempted worker, and another worker emptying the level meanwhile are
//! enough). So below level 0 a take from a shared source first moves its
//! batch into the local deque, *then* re-reads the more urgent counts, and
//! pops only if they are all zero; otherwise the pick starts again from
//! level 0 and the batch waits, counted and stealable, at the front of the
//! local deque. Whatever the take pops was pushed before the steal, so
//! every more urgent job counted in before it was pushed is counted in
//! before the re-read (the steal synchronises with the push), and a zero
//! means that job was already taken. A job already in the local deque needs
//! no re-read: it was moved there by an earlier pick, after its push. Level
//! 0 pops in one step (`steal_batch_and_pop`): nothing is more urgent.
//!
//! Skipping an empty level costs one atomic load, so a worker does not try
//! `levels × workers` steals per job when most levels are empty.
use crossbeam_utils::CachePadded;

use super::deque::{Injector, Steal, Stealer, Worker};
use crate::sync::{AtomicUsize, Ordering, spin_loop};

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
    /// A job of the given level, already counted out of the queued count,
    /// and where it came from.
    Found(usize, T, Source),
    /// A job waits at some level but could not be taken this time (a
    /// `Steal::Retry`, or a job still in flight): back off and pick again.
    Contended,
    /// Every level's queued count was zero.
    Empty,
}

/// What a take from one level's sources found.
enum Take<T> {
    /// A job, not yet counted out.
    Job(T, Source),
    /// A batch was moved into the local deque, but a more urgent job was
    /// counted in meanwhile.
    Passed,
    /// No source gave a job.
    Nothing,
}

/// The shared, per-level half of the queues: one injector and one queued
/// count per priority level.
pub(crate) struct Levels<T> {
    injectors: Box<[Injector<T>]>,
    /// Jobs of each level that are queued anywhere (injector or any local
    /// deque) or in flight between two queues, counted in once their push
    /// has completed and out right after a worker pops them. A worker may
    /// pop a job before its pusher has counted it in, so the raw value can
    /// dip below zero for a moment: it is a wrapping counter read as a
    /// signed number, and a negative value reads as zero.
    queued: Box<[CachePadded<AtomicUsize>]>,
}

impl<T> Levels<T> {
    pub(crate) fn new(levels: usize) -> Levels<T> {
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
    /// re-checks (see `limits.rs`); the other half is
    /// [`Levels::any_queued`] on the same count.
    pub(crate) fn count_in(&self, level: usize) {
        self.queued[level].fetch_add(1, Ordering::AcqRel);
    }

    /// Pushes a job onto the level's injector; count it in with
    /// [`Levels::count_in`] next.
    pub(crate) fn inject(&self, level: usize, job: T) {
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
    /// `sleep.rs`) and "no stranded job" on retirement (see `limits.rs`),
    /// and it needs only one location's modification order, which loom
    /// models exactly. It costs one RMW per level, only on those cold paths.
    pub(crate) fn any_queued(&self) -> bool {
        self.queued.iter().any(|q| positive(q.fetch_add(0, Ordering::AcqRel)) > 0)
    }

    /// How many jobs are queued at all levels together (the pool's backlog).
    /// Read by a pusher deciding whether to grow the pool, after its own
    /// count-in (see `limits.rs`). `Acquire`: every change to a count is a
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
    pub(crate) fn pick<P: AsRef<[Stealer<T>]>>(&self, local: &[Worker<T>], peers: &[P], start: usize) -> Pick<T> {
        'scan: loop {
            for (level, queued) in self.queued.iter().enumerate() {
                if positive(queued.load(Ordering::Acquire)) == 0 {
                    continue;
                }
                return match self.take(level, &local[level], peers, start) {
                    Take::Job(job, source) => {
                        queued.fetch_sub(1, Ordering::Release);
                        Pick::Found(level, job, source)
                    }
                    // A more urgent job was counted in meanwhile: take that
                    // one first (the batch waits in the local deque).
                    Take::Passed => continue 'scan,
                    // The level has a job (queued count > 0) that no source
                    // gave us: never fall through to a less urgent level
                    // past it.
                    Take::Nothing => Pick::Contended,
                };
            }
            return Pick::Empty;
        }
    }

    /// Tries the sources of one level in order: local deque, injector, peers.
    fn take<P: AsRef<[Stealer<T>]>>(&self, level: usize, local: &Worker<T>, peers: &[P], start: usize) -> Take<T> {
        if let Some(job) = local.pop() {
            return Take::Job(job, Source::Local);
        }
        let n = peers.len();
        let peer = |i: usize| &peers[(start + i) % n].as_ref()[level];
        if level == 0 {
            // Nothing is more urgent: pop in the same step as the steal.
            if let Some(job) = first_success(|| self.injectors[level].steal_batch_and_pop(local)) {
                return Take::Job(job, Source::Injector);
            }
            return (0..n)
                .find_map(|i| first_success(|| peer(i).steal_batch_and_pop(local)))
                .map_or(Take::Nothing, |job| Take::Job(job, Source::Peer));
        }
        let source = if first_success(|| self.injectors[level].steal_batch(local)).is_some() {
            Source::Injector
        } else if (0..n).any(|i| first_success(|| peer(i).steal_batch(local)).is_some()) {
            Source::Peer
        } else {
            return Take::Nothing;
        };
        // The re-read (see the module docs): `Acquire` loads, after a steal
        // that acquired the pushes of the batch's jobs.
        if self.queued[..level].iter().any(|q| positive(q.load(Ordering::Acquire)) > 0) {
            return Take::Passed;
        }
        // `None`: peers stole the whole batch back meanwhile.
        local.pop().map_or(Take::Nothing, |job| Take::Job(job, source))
    }

    /// Moves every job left in `local` (one deque per level) to the
    /// injectors, so that a worker that exits strands nothing. The queued
    /// counts do not change: the jobs stay queued at the same level.
    pub(crate) fn drain_into_injectors(&self, local: &[Worker<T>]) {
        for (level, deque) in local.iter().enumerate() {
            while let Some(job) = deque.pop() {
                self.injectors[level].push(job);
            }
        }
    }
}

/// A raw queued count read as a signed number, negative values as zero
/// (see the `queued` field of [`Levels`]).
fn positive(raw: usize) -> usize {
    usize::try_from(raw as isize).unwrap_or(0)
}

/// Runs `steal` until it stops answering `Retry` a few times in a row, and
/// returns the job if one was stolen. A persistent `Retry` is reported as no
/// job: the queued count keeps the caller from mistaking it for "empty".
fn first_success<T>(mut steal: impl FnMut() -> Steal<T>) -> Option<T> {
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

    /// One pass of the pick rule by a worker with no peers.
    fn pick(levels: &Levels<u32>, local: &[Worker<u32>]) -> Pick<u32> {
        levels.pick::<Vec<Stealer<u32>>>(local, &[], 0)
    }

    fn deques(levels: usize) -> Vec<Worker<u32>> {
        (0..levels).map(|_| Worker::new_fifo()).collect()
    }

    #[test]
    fn picks_the_most_urgent_level_first_and_fifo_within_a_level() {
        let levels = Levels::new(3);
        let local = deques(3);
        for (job, level) in [(1, 2), (2, 1), (3, 2), (4, 0)] {
            levels.inject(level, job);
            levels.count_in(level);
        }
        let mut order = Vec::new();
        while let Pick::Found(level, job, _) = pick(&levels, &local) {
            order.push((level, job));
        }
        assert_eq!(order, [(0, 4), (1, 2), (2, 1), (2, 3)]);
        assert!(!levels.any_queued());
    }

    #[test]
    fn a_counted_but_invisible_job_blocks_lower_levels() {
        let levels = Levels::new(2);
        let local = deques(2);
        levels.inject(1, 10);
        levels.count_in(1);
        levels.count_in(0); // a high job counted but in flight between two queues
        assert!(matches!(pick(&levels, &local), Pick::Contended));
        levels.inject(0, 20);
        assert!(matches!(pick(&levels, &local), Pick::Found(0, 20, _)));
        assert!(matches!(pick(&levels, &local), Pick::Found(1, 10, _)));
    }

    #[test]
    fn a_job_popped_before_its_count_in_reads_as_none_queued() {
        let levels = Levels::new(2);
        let local = deques(2);
        levels.inject(0, 1); // pushed; its pusher has not counted it in yet
        levels.inject(1, 2);
        levels.count_in(1);
        // Level 0's count is zero, so the pick takes level 1 and counts it out.
        assert!(matches!(pick(&levels, &local), Pick::Found(1, 2, _)));
        levels.count_in(0);
        assert_eq!(levels.queued(0), 1);
        assert!(matches!(pick(&levels, &local), Pick::Found(0, 1, _)));
        // A pop that overtakes the count-in: the raw count dips below zero
        // and reads as zero until the pusher counts in.
        levels.inject(0, 3);
        levels.queued[0].fetch_sub(1, Ordering::Release);
        assert_eq!(levels.queued(0), 0);
        assert!(!levels.any_queued());
        levels.count_in(0);
        assert_eq!(levels.queued(0), 0);
    }

    #[test]
    fn steals_from_peers_and_drains_into_injectors() {
        let levels = Levels::new(2);
        let victim = deques(2);
        let thief = deques(2);
        victim[1].push(1);
        levels.count_in(1);
        let stealers: Vec<_> = victim.iter().map(Worker::stealer).collect();
        assert!(matches!(levels.pick(&thief, &[stealers], 0), Pick::Found(1, 1, Source::Peer)));

        victim[0].push(2);
        levels.count_in(0);
        levels.drain_into_injectors(&victim);
        assert!(victim[0].is_empty());
        assert!(matches!(pick(&levels, &thief), Pick::Found(0, 2, Source::Injector)));
        assert_eq!(levels.backlog(), 0);
    }
}

#[cfg(all(test, loom))]
mod loom_models {
    use super::*;
    use crate::sync::{Arc, AtomicBool, thread};

    /// One pusher queues a HIGH job and then a LOW one while two workers
    /// pick, one of them possibly preempted between its scan of the counts
    /// and its take, with an earlier LOW job the other can take meanwhile.
    /// A worker whose pick returns the later LOW job must find the HIGH job
    /// already taken: it was counted in before the LOW job was pushed.
    /// (Popping in the same step as the steal, as level 0 does, fails here
    /// with one preemption.)
    #[test]
    fn a_pick_never_passes_a_job_pushed_before_the_one_it_takes() {
        const EARLY_LOW: u32 = 1;
        const HIGH: u32 = 2;
        const LATE_LOW: u32 = 3;
        let mut builder = loom::model::Builder::new();
        builder.preemption_bound = Some(builder.preemption_bound.unwrap_or(2).min(2));
        builder.check(|| {
            let levels = Arc::new(Levels::new(2));
            levels.inject(1, EARLY_LOW);
            levels.count_in(1);
            let pushed = Arc::new(AtomicBool::new(false));
            let locals: Vec<Vec<Worker<u32>>> = (0..2).map(|_| (0..2).map(|_| Worker::new_fifo()).collect()).collect();
            let peers: Arc<Vec<Vec<Stealer<u32>>>> =
                Arc::new(locals.iter().map(|deques| deques.iter().map(Worker::stealer).collect()).collect());
            let workers: Vec<_> = locals
                .into_iter()
                .enumerate()
                .map(|(index, local)| {
                    let (levels, peers, pushed) = (Arc::clone(&levels), Arc::clone(&peers), Arc::clone(&pushed));
                    thread::spawn(move || {
                        loop {
                            match levels.pick(&local, &peers, index) {
                                Pick::Found(_, job, _) => {
                                    if job == LATE_LOW {
                                        assert!(levels.injector_is_empty(0), "the late LOW job passed the HIGH one");
                                    }
                                    return;
                                }
                                Pick::Empty if pushed.load(Ordering::Acquire) => return,
                                Pick::Empty | Pick::Contended => thread::yield_now(),
                            }
                        }
                    })
                })
                .collect();
            levels.inject(0, HIGH);
            levels.count_in(0);
            levels.inject(1, LATE_LOW);
            levels.count_in(1);
            pushed.store(true, Ordering::Release);
            for worker in workers {
                worker.join().unwrap();
            }
        });
    }
}
