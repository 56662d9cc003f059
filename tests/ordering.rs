//! The priority rule, seen from outside the pool.
//!
//! * One worker: jobs queued while the worker is held by a gate job run in
//!   priority order; within a level, in submission order when queued from
//!   outside (one producer), by the own deque's rule when queued by a job
//!   on that worker (newest first; of every 64 takes, the 32nd the oldest,
//!   the 64th the injector's: `queue/local.rs`, "Order within a level"). A
//!   chain of newer jobs starves neither an older one nor one from outside. A batch of low jobs the worker has already
//!   taken into its deque does not delay a high job that arrives after it.
//! * One worker, jobs queued from outside that spawn jobs of their own: the
//!   worker's own deque for a level comes before that level's injector
//!   (`queue/levels.rs`, "The pick rule"), also when the worker's last job
//!   came from that injector (the shortcut).
//! * W workers (1 to 4; 2 levels, and 4): with every worker held by a gate
//!   job, a batch is queued and the gates released. A job of level `l` may
//!   start only when at most `W - 1` jobs of more urgent levels have not yet
//!   started. Any more would mean a worker took a less urgent job while a
//!   more urgent one was still queued.
//!
//! Why `W - 1`: a worker takes a level-`l` job only after reading a zero
//! queued count at every more urgent level. Once the gates have let the
//! whole batch be queued, those counts only fall, so by then every more
//! urgent job had been taken off the queues. A job taken but not yet
//! started is held by its worker between the pick and the job's first
//! instruction; a worker holds at most one, and the worker starting the
//! level-`l` job holds none: at most `W - 1` are pending.
//!
//! Known to catch a pick that scans the levels least urgent first (every
//! test), one that pops a local deque before scanning the levels (the
//! stolen-batch test), own deques taken only oldest first or only newest
//! first (the local-jobs test; the chain test catches the second too), and
//! a shortcut taken while a more urgent own deque holds a job (the
//! grandchild test, with `LocalQueues::cool` disabled). A pick
//! that falls through past a counted job still in flight is too narrow a
//! window to hit from outside; a unit test in `src/queue/levels/tests.rs` covers it.
//!
//! Every case runs under a watchdog, so a lost wake-up fails the test with a
//! message instead of hanging it.

mod common;

use std::collections::VecDeque;
use std::hint::black_box;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use common::{CASE_BOUND, Gate, watchdog};
use priopool::{JobHandle, Pool, Priority};
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;

/// How one job of a batch is handed to the pool.
#[derive(Clone, Copy, Debug)]
enum Via {
    Spawn,
    Submit,
}

fn via() -> impl Strategy<Value = Via> {
    prop_oneof![Just(Via::Spawn), Just(Via::Submit)]
}

/// Queues `job` at `level` the way `via` says; a submitted job's handle is
/// kept in `handles` so the test can check it completed.
fn queue(
    spawner: &priopool::Spawner,
    level: usize,
    via: Via,
    handles: &mut Vec<JobHandle<()>>,
    job: impl FnOnce() + Send + 'static,
) {
    match via {
        Via::Spawn => spawner.spawn(Priority::level(level), job).expect("spawn refused"),
        Via::Submit => handles.push(spawner.submit(Priority::level(level), job).expect("submit refused")),
    }
}

/// The expected run order on one worker: by level, then by submission.
fn priority_order(batch: &[(usize, Via)]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..batch.len()).collect();
    order.sort_by_key(|&i| batch[i].0); // stable: submission order within a level
    order
}

/// How often a worker takes the oldest job of its own deque for a level
/// instead of the newest: `OLDEST_EVERY` in `src/queue/local.rs`.
const OLDEST_EVERY: usize = 32;

/// A model of one worker's own deque for a level (`queue/local.rs`, "Order
/// within a level"): newest first, in rounds of `2 × OLDEST_EVERY` takes
/// whose `OLDEST_EVERY`-th take is the oldest, and whose last is the
/// injector's turn ([`OwnDeque::injector_turn`]), else the oldest again.
struct OwnDeque<J> {
    jobs: VecDeque<J>,
    taken: usize,
}

impl<J> OwnDeque<J> {
    fn new() -> Self {
        OwnDeque { jobs: VecDeque::new(), taken: 0 }
    }

    fn push(&mut self, job: J) {
        self.jobs.push_back(job);
    }

    fn pop(&mut self) -> Option<J> {
        let taken = self.taken + 1;
        let job = if taken.is_multiple_of(OLDEST_EVERY) { self.jobs.pop_front() } else { self.jobs.pop_back() }?;
        self.taken = taken % (2 * OLDEST_EVERY);
        Some(job)
    }

    /// Takes the level's injector's oldest job on the injector's turn.
    fn injector_turn<T>(&mut self, injector: &mut VecDeque<T>) -> Option<T> {
        if self.taken + 1 != 2 * OLDEST_EVERY {
            return None;
        }
        let job = injector.pop_front()?;
        self.taken = 0;
        Some(job)
    }
}

/// The expected run order on one worker of a batch queued by a job on
/// that worker: by level, then by the own deque's rule ([`OwnDeque`]).
fn own_deque_order(levels: usize, batch: &[(usize, Via)]) -> Vec<usize> {
    let mut own: Vec<OwnDeque<usize>> = (0..levels).map(|_| OwnDeque::new()).collect();
    for (i, &(level, _)) in batch.iter().enumerate() {
        own[level].push(i);
    }
    own.iter_mut().flat_map(|deque| std::iter::from_fn(|| deque.pop())).collect()
}

/// One worker held by a gate; the batch is queued from the test thread.
fn one_worker_from_outside(levels: usize, batch: Vec<(usize, Via)>) -> Result<(), TestCaseError> {
    let pool = Pool::builder().workers(1).levels(levels).build().expect("build");
    let spawner = pool.spawner();
    let log = Arc::new(Mutex::new(Vec::new()));
    let mut handles = Vec::new();

    let gate = Gate::hold(&pool, 1);
    for (i, &(level, via)) in batch.iter().enumerate() {
        let log = Arc::clone(&log);
        queue(&spawner, level, via, &mut handles, move || log.lock().unwrap().push(i));
    }
    gate.release();
    pool.shutdown();

    for handle in handles {
        prop_assert!(handle.join().is_ok(), "a submitted job failed");
    }
    let ran = log.lock().unwrap().clone();
    prop_assert_eq!(ran, priority_order(&batch), "run order (job indices) differs from priority order");
    Ok(())
}

/// One worker; the batch is queued by a job running on that worker, so it
/// goes to the worker's local deques instead of the injectors.
fn one_worker_from_a_job(levels: usize, batch: Vec<(usize, Via)>) -> Result<(), TestCaseError> {
    let pool = Pool::builder().workers(1).levels(levels).build().expect("build");
    let spawner = pool.spawner();
    let log = Arc::new(Mutex::new(Vec::new()));

    let producer = {
        let log = Arc::clone(&log);
        let batch = batch.clone();
        pool.submit(Priority::LOW, move || {
            let mut handles = Vec::new();
            for (i, &(level, via)) in batch.iter().enumerate() {
                let log = Arc::clone(&log);
                queue(&spawner, level, via, &mut handles, move || log.lock().unwrap().push(i));
            }
            handles
        })
        .expect("submit refused")
    };
    let handles = producer.join().expect("the producer job failed");
    pool.shutdown();

    for handle in handles {
        prop_assert!(handle.join().is_ok(), "a submitted job failed");
    }
    let ran = log.lock().unwrap().clone();
    prop_assert_eq!(ran, own_deque_order(levels, &batch), "run order (job indices) differs from the own deque's");
    Ok(())
}

/// A worker busy with the first of many queued low jobs still walks the
/// levels from the most urgent before each next one: a high job that
/// arrives while the first low job runs is the next job to start.
#[test]
fn queued_low_jobs_do_not_delay_a_later_high_job() {
    watchdog("queued low jobs", CASE_BOUND, || {
        const LOWS: usize = 16;
        let pool = Pool::builder().workers(1).levels(2).build().expect("build");
        let log = Arc::new(Mutex::new(Vec::new()));
        let (running_tx, running_rx) = std::sync::mpsc::channel();
        let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
        let go_rx = Arc::new(Mutex::new(go_rx));

        let gate = Gate::hold(&pool, 1);
        for i in 0..LOWS {
            let (log, running_tx, go_rx) = (Arc::clone(&log), running_tx.clone(), Arc::clone(&go_rx));
            pool.spawn(Priority::LOW, move || {
                log.lock().unwrap().push(format!("low {i}"));
                if i == 0 {
                    // The rest of the low jobs are queued behind this one.
                    running_tx.send(()).expect("test gone");
                    go_rx.lock().unwrap().recv().expect("test gone");
                }
            })
            .expect("spawn refused");
        }
        gate.release();
        running_rx.recv_timeout(CASE_BOUND).expect("the first low job did not start");
        let high_log = Arc::clone(&log);
        pool.spawn(Priority::HIGH, move || high_log.lock().unwrap().push("high".to_owned())).expect("spawn refused");
        go_tx.send(()).expect("the first low job is gone");
        pool.shutdown();

        let log = log.lock().unwrap();
        assert_eq!(log.len(), LOWS + 1);
        assert_eq!(log[..2], ["low 0", "high"], "run order: {log:?}");
    });
}

/// One worker: a low job from outside spawns a high one, which spawns a
/// low one when it runs. That low job waits in the worker's own deque, so
/// it runs before the low job still in the injector (the pick rule), even
/// though the worker's last low job came from that injector (the shortcut
/// is not taken while a more urgent job waits in the worker's own deque).
///
/// A shortcut taken anyway would put the injector's job back into the own
/// deque before the grandchild is spawned; newest first would still run the
/// grandchild first, so the worker's next take off its low deque is made
/// the oldest-first one: a first job from outside queues `OLDEST_EVERY -
/// 1` empty low jobs there, taken before the parent starts.
#[test]
fn a_grandchild_in_the_own_deque_runs_before_the_injector() {
    watchdog("grandchild", CASE_BOUND, || {
        let pool = Pool::builder().workers(1).levels(2).build().expect("build");
        let spawner = pool.spawner();
        let log = Arc::new(Mutex::new(Vec::new()));
        let gate = Gate::hold(&pool, 1);
        let record = |log: &Arc<Mutex<Vec<&'static str>>>, name| {
            let log = Arc::clone(log);
            move || log.lock().unwrap().push(name)
        };
        let warm = spawner.clone();
        spawner
            .spawn(Priority::LOW, move || {
                for _ in 1..OLDEST_EVERY {
                    warm.spawn(Priority::LOW, || {}).expect("spawn refused");
                }
            })
            .expect("spawn refused");
        let (parent_log, inner) = (Arc::clone(&log), spawner.clone());
        spawner
            .spawn(Priority::LOW, move || {
                parent_log.lock().unwrap().push("parent");
                let (child_log, inner2) = (Arc::clone(&parent_log), inner.clone());
                inner
                    .spawn(Priority::HIGH, move || {
                        child_log.lock().unwrap().push("child");
                        inner2.spawn(Priority::LOW, record(&child_log, "grandchild")).expect("spawn refused");
                    })
                    .expect("spawn refused");
            })
            .expect("spawn refused");
        spawner.spawn(Priority::LOW, record(&log, "next")).expect("spawn refused");
        gate.release();
        pool.shutdown();
        assert_eq!(*log.lock().unwrap(), ["parent", "child", "grandchild", "next"]);
    });
}

/// Link `i` of a chain of `links` LOW jobs, each spawned by the one
/// before: logs `i`, then spawns the next link.
fn chain_link(spawner: priopool::Spawner, log: Arc<Mutex<Vec<usize>>>, i: usize, links: usize) {
    log.lock().unwrap().push(i);
    if i + 1 < links {
        let next = spawner.clone();
        spawner.spawn(Priority::LOW, move || chain_link(next, log, i + 1, links)).expect("spawn refused");
    }
}

/// One worker: a job queues one job, then starts a chain of jobs, each
/// spawning the next, all at one level. Newest first alone would run the
/// whole chain first; the oldest-first take runs the first job by the
/// `OLDEST_EVERY`-th job taken off the deque (the bound in
/// `queue/local.rs`, "Order within a level", with no job queued before it).
#[test]
fn a_chain_of_newer_jobs_does_not_starve_an_older_one() {
    watchdog("chain", CASE_BOUND, || {
        const LINKS: usize = 4 * OLDEST_EVERY;
        let pool = Pool::builder().workers(1).levels(2).build().expect("build");
        let (spawner, log) = (pool.spawner(), Arc::new(Mutex::new(Vec::new())));
        let (inner, first_log) = (spawner.clone(), Arc::clone(&log));
        spawner
            .spawn(Priority::LOW, move || {
                let older = Arc::clone(&first_log);
                inner.spawn(Priority::LOW, move || older.lock().unwrap().push(usize::MAX)).expect("spawn refused");
                let next = inner.clone();
                inner.spawn(Priority::LOW, move || chain_link(next, first_log, 0, LINKS)).expect("spawn refused");
            })
            .expect("spawn refused");
        pool.shutdown();
        let log = log.lock().unwrap();
        assert_eq!(log.len(), LINKS + 1);
        let at = log.iter().position(|&i| i == usize::MAX).expect("the older job ran");
        assert!(at < OLDEST_EVERY, "the older job was the {}th job taken off the deque: {log:?}", at + 1);
    });
}

/// One worker: a job from outside starts a chain of jobs, each spawning
/// the next at its level, and waits until the test has queued another job
/// from outside at that level. The worker's own deque comes before the
/// level's injector, so without the injector's turn that job would wait
/// for the whole chain; with it, it is the `2 × OLDEST_EVERY`-th job taken
/// after the chain's first (`queue/local.rs`, "Order within a level").
#[test]
fn a_chain_of_jobs_from_a_job_does_not_starve_a_job_from_outside() {
    watchdog("chain against outside", CASE_BOUND, || {
        const LINKS: usize = 8 * OLDEST_EVERY;
        let pool = Pool::builder().workers(1).levels(2).build().expect("build");
        let (spawner, log) = (pool.spawner(), Arc::new(Mutex::new(Vec::new())));
        let (queued_tx, queued_rx) = std::sync::mpsc::channel::<()>();
        let (inner, chain_log) = (spawner.clone(), Arc::clone(&log));
        spawner
            .spawn(Priority::LOW, move || {
                queued_rx.recv().expect("test gone");
                chain_link(inner, chain_log, 0, LINKS);
            })
            .expect("spawn refused");
        let outside = Arc::clone(&log);
        spawner.spawn(Priority::LOW, move || outside.lock().unwrap().push(usize::MAX)).expect("spawn refused");
        queued_tx.send(()).expect("the first link is gone");
        pool.shutdown();
        let log = log.lock().unwrap();
        assert_eq!(log.len(), LINKS + 1);
        let at = log.iter().position(|&i| i == usize::MAX).expect("the job from outside ran");
        assert_eq!(at, 2 * OLDEST_EVERY, "the job from outside ran after link {}: {log:?}", log[at - 1]);
    });
}

/// One job of a W-worker batch: its level and how long it busy-works once
/// started (iterations of a trivial loop; only varies the interleavings).
#[derive(Clone, Copy)]
struct Item {
    level: usize,
    spin: u16,
    via: Via,
}

impl std::fmt::Debug for Item {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?} at level {} (spin {})", self.via, self.level, self.spin)
    }
}

/// W workers held by gates, a random batch over `levels` levels, gates
/// released: checks the `W - 1` bound at the start of every job.
fn bounded_overtaking(workers: usize, levels: usize, batch: Vec<Item>) -> Result<(), TestCaseError> {
    let pool = Pool::builder().workers(workers).levels(levels).build().expect("build");
    let spawner = pool.spawner();
    // not_started[l]: jobs of level l in the batch that have not started yet.
    let not_started: Arc<Vec<AtomicUsize>> = Arc::new((0..levels).map(|_| AtomicUsize::new(0)).collect());
    for item in &batch {
        not_started[item.level].fetch_add(1, Ordering::SeqCst);
    }
    let violations = Arc::new(Mutex::new(Vec::<String>::new()));
    let started = Arc::new(AtomicUsize::new(0));
    let mut handles = Vec::new();

    let gate = Gate::hold(&pool, workers);
    for (job, &Item { level, spin, via }) in batch.iter().enumerate() {
        let (not_started, violations, started) =
            (Arc::clone(&not_started), Arc::clone(&violations), Arc::clone(&started));
        queue(&spawner, level, via, &mut handles, move || {
            // Counts only fall once the batch is queued, so this sum is
            // never more than the true count at the first load.
            let more_urgent_not_started: usize = not_started[..level].iter().map(|n| n.load(Ordering::SeqCst)).sum();
            if more_urgent_not_started > workers - 1 {
                violations.lock().unwrap().push(format!(
                    "job {job} (level {level}) started with {more_urgent_not_started} more urgent jobs not started"
                ));
            }
            not_started[level].fetch_sub(1, Ordering::SeqCst);
            started.fetch_add(1, Ordering::SeqCst);
            for i in 0..spin {
                black_box(i);
            }
        });
    }
    gate.release();
    pool.shutdown();

    for handle in handles {
        prop_assert!(handle.join().is_ok(), "a submitted job failed");
    }
    prop_assert_eq!(started.load(Ordering::SeqCst), batch.len(), "not every job of the batch ran");
    let violations = violations.lock().unwrap();
    prop_assert!(
        violations.is_empty(),
        "{workers} workers, at most {} more urgent jobs may be pending: {:#?}",
        workers - 1,
        *violations
    );
    Ok(())
}

/// A job queued from outside, and the levels of the jobs it spawns when
/// it runs (into the worker's own deques).
#[derive(Clone, Debug)]
struct Parent {
    level: usize,
    children: Vec<usize>,
}

/// A job's name in the run log: its parent's index, and `None` for the
/// parent itself or `Some(k)` for its `k`-th child.
type Ran = (usize, Option<usize>);

/// The expected run order on one worker: each pick walks the levels from 0
/// and takes a job of the worker's own deque for the level ([`OwnDeque`]),
/// else the oldest of its injector.
fn parents_and_children_order(levels: usize, batch: &[Parent]) -> Vec<Ran> {
    let mut injectors: Vec<VecDeque<Ran>> = vec![VecDeque::new(); levels];
    let mut own: Vec<OwnDeque<Ran>> = (0..levels).map(|_| OwnDeque::new()).collect();
    for (i, parent) in batch.iter().enumerate() {
        injectors[parent.level].push_back((i, None));
    }
    let mut order = Vec::new();
    while let Some(job) = (0..levels).find_map(|level| {
        let injector = &mut injectors[level];
        own[level].injector_turn(injector).or_else(|| own[level].pop()).or_else(|| injector.pop_front())
    }) {
        order.push(job);
        if let (i, None) = job {
            for (k, &level) in batch[i].children.iter().enumerate() {
                own[level].push((i, Some(k)));
            }
        }
    }
    order
}

/// One worker held by a gate; the parents are queued from the test thread.
fn one_worker_parents_and_children(levels: usize, batch: Vec<Parent>) -> Result<(), TestCaseError> {
    let pool = Pool::builder().workers(1).levels(levels).build().expect("build");
    let spawner = pool.spawner();
    let log = Arc::new(Mutex::new(Vec::new()));
    let gate = Gate::hold(&pool, 1);
    for (i, parent) in batch.iter().enumerate() {
        let (log, children, inner) = (Arc::clone(&log), parent.children.clone(), spawner.clone());
        let job = move || {
            log.lock().unwrap().push((i, None));
            for (k, &level) in children.iter().enumerate() {
                let log = Arc::clone(&log);
                inner
                    .spawn(Priority::level(level), move || log.lock().unwrap().push((i, Some(k))))
                    .expect("spawn refused");
            }
        };
        spawner.spawn(Priority::level(parent.level), job).expect("spawn refused");
    }
    gate.release();
    pool.shutdown();
    let ran = log.lock().unwrap().clone();
    prop_assert_eq!(ran, parents_and_children_order(levels, &batch), "run order differs from the pick rule's");
    Ok(())
}

/// 1..24 parents over 2 to 4 levels, with 0..4 children each.
fn levels_and_parents() -> impl Strategy<Value = (usize, Vec<Parent>)> {
    (2..=4usize).prop_flat_map(|levels| {
        let parent = (0..levels, prop::collection::vec(0..levels, 0..4))
            .prop_map(|(level, children)| Parent { level, children });
        (Just(levels), prop::collection::vec(parent, 1..24))
    })
}

/// A batch of 1..64 jobs over `levels` levels.
fn batch(levels: usize) -> impl Strategy<Value = Vec<(usize, Via)>> {
    prop::collection::vec((0..levels, via()), 1..64)
}

fn items(levels: usize) -> impl Strategy<Value = Vec<Item>> {
    prop::collection::vec(
        (0..levels, 0..2_000u16, via()).prop_map(|(level, spin, via)| Item { level, spin, via }),
        1..64,
    )
}

/// A level count and a batch over that many levels.
fn levels_and_batch() -> impl Strategy<Value = (usize, Vec<(usize, Via)>)> {
    (1..=4usize).prop_flat_map(|levels| (Just(levels), batch(levels)))
}

proptest! {
    #![proptest_config(common::case_config(64))]

    #[test]
    fn one_worker_runs_in_priority_then_submission_order((levels, batch) in levels_and_batch()) {
        watchdog("one worker, from outside", CASE_BOUND, move || one_worker_from_outside(levels, batch))?;
    }

    #[test]
    fn one_worker_runs_local_jobs_in_priority_then_own_deque_order((levels, batch) in levels_and_batch()) {
        watchdog("one worker, from a job", CASE_BOUND, move || one_worker_from_a_job(levels, batch))?;
    }

    #[test]
    fn one_worker_runs_own_deque_then_injector_per_level((levels, batch) in levels_and_parents()) {
        watchdog("one worker, parents and children", CASE_BOUND, move || one_worker_parents_and_children(levels, batch))?;
    }

    #[test]
    fn high_overtakes_low_with_1_worker(batch in items(2)) {
        watchdog("W=1, 2 levels", CASE_BOUND, move || bounded_overtaking(1, 2, batch))?;
    }

    #[test]
    fn high_overtakes_low_with_2_workers(batch in items(2)) {
        watchdog("W=2, 2 levels", CASE_BOUND, move || bounded_overtaking(2, 2, batch))?;
    }

    #[test]
    fn high_overtakes_low_with_3_workers(batch in items(2)) {
        watchdog("W=3, 2 levels", CASE_BOUND, move || bounded_overtaking(3, 2, batch))?;
    }

    #[test]
    fn high_overtakes_low_with_4_workers(batch in items(2)) {
        watchdog("W=4, 2 levels", CASE_BOUND, move || bounded_overtaking(4, 2, batch))?;
    }

    #[test]
    fn four_levels_bounded_overtaking((workers, batch) in (1..=4usize, items(4))) {
        watchdog("4 levels", CASE_BOUND, move || bounded_overtaking(workers, 4, batch))?;
    }
}
