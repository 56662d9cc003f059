//! Features where they meet: bounded levels with producers waiting for
//! room, while jobs are cancelled (handles, groups, `cancel_queued`),
//! promoted into and out of the bounded levels, expire, spawn children
//! with `priopool::spawn`, join children they promoted, and open scopes
//! whose jobs they may claim; on fixed and dynamic pools resized at run
//! time, with and without a reserved thread, bounded starvation and
//! queue-wait metrics; then every kind of shutdown
//! (and drop, with each `on_drop` policy) racing producers.
//!
//! Seeded (fastrand): each round draws its pool and its program from its
//! seed (`CROSSFIRE_SEED`, `CROSSFIRE_ROUNDS` to explore), printed on
//! failure. Every job carries a ticket that records whether it ran and
//! whether it was dropped unrun. Checked exactly:
//!
//! * every job ran once or was dropped unrun once (refused jobs come back
//!   and are dropped by the test), and a handle's result agrees;
//! * at rest (`wait_idle`): `queued(p) == 0` at every level; per level the
//!   figures add up (`submitted = completed + panicked + cancelled +
//!   expired + promoted + rejected`), and in total `completed` = jobs run,
//!   `cancelled + expired` = accepted jobs dropped unrun, `rejected` =
//!   refused spawns, `promoted` = promotions that moved a job, and the job
//!   hooks ran once per job started (`before_job`) and ended (`after_job`);
//! * every slot of a bounded level came back exactly once: with every
//!   thread held, `try_spawn` takes exactly the capacity, then is refused;
//! * after the shutdown: the `CancelledJobs` of `shutdown_now` is exactly
//!   the accepted jobs it dropped, a graceful shutdown or drop drops none,
//!   and a `TimedOut` report's `still_running` covers every job dropped
//!   that it does not count cancelled.
//!
//! Known to catch `cancel_queued` not giving a slot back and a refused
//! promotion keeping its slot (the slot check fails, or producers wait
//! for room for ever and the stall watchdog fails the test), and a scoped job its owner ran counted
//! cancelled by `cancel_queued` (tests/issue_scope_claimed_cancel.rs).

mod common;

use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use common::ticket::{self, Fates};
use common::{Gate, stall_watchdog};
use priopool::{
    DropPolicy, JobError, JobGroup, JobHandle, Pool, Priority, PromoteOutcome, ShutdownReport, SpawnErrorKind, Spawner,
    WhenFull,
};

const LEVELS: usize = 3;
const IDS: usize = 1 << 14;
const PRODUCERS: usize = 3;
const OPS: usize = 120;
const ROUNDS: u64 = 24;

/// Operations done by the producers: the watchdog's progress. A level whose
/// slot leaked stays full and stops its waiting producers, and so this.
static PROGRESS: AtomicUsize = AtomicUsize::new(0);

#[derive(Default)]
struct Ledger {
    runs: Vec<AtomicU8>,
    dropped: Vec<AtomicU8>,
    refused: Vec<AtomicBool>,
    next: AtomicUsize,
    /// Promotions that moved a job.
    moved: AtomicUsize,
}

impl Ledger {
    fn new() -> Arc<Ledger> {
        Arc::new(Ledger {
            runs: (0..IDS).map(|_| AtomicU8::new(0)).collect(),
            dropped: (0..IDS).map(|_| AtomicU8::new(0)).collect(),
            refused: (0..IDS).map(|_| AtomicBool::new(false)).collect(),
            ..Ledger::default()
        })
    }

    fn ticket(self: &Arc<Ledger>) -> Ticket {
        let id = self.next.fetch_add(1, Ordering::SeqCst);
        assert!(id < IDS, "more jobs than tickets");
        Ticket::new(id, Arc::clone(self))
    }

    fn used(&self) -> usize {
        self.next.load(Ordering::SeqCst)
    }

    fn resolved(&self) -> bool {
        (0..self.used()).all(|id| self.runs[id].load(Ordering::SeqCst) + self.dropped[id].load(Ordering::SeqCst) >= 1)
    }
}

type Ticket = ticket::Ticket<Ledger>;

impl Fates for Ledger {
    fn runs(&self, id: usize) -> &AtomicU8 {
        &self.runs[id]
    }

    fn dropped(&self, id: usize) -> &AtomicU8 {
        &self.dropped[id]
    }
}

#[derive(Clone, Copy, Debug)]
enum Shutdown {
    Graceful,
    Now,
    TimeoutZero,
    Drop,
}

#[derive(Debug)]
struct Plan {
    seed: u64,
    dynamic: bool,
    workers: usize,
    reserved: bool,
    capacities: Vec<(usize, usize)>,
    on_drop: DropPolicy,
    shutdown: Shutdown,
    /// Bounded starvation (`Builder::max_passes`).
    max_passes: Option<u32>,
    /// Queue-wait histograms: every job stamped (wrapped) when queued.
    wait_metrics: bool,
}

impl Plan {
    fn draw(seed: u64) -> Plan {
        let mut rng = fastrand::Rng::with_seed(seed);
        let mut capacities = vec![(LEVELS - 1, rng.usize(1..=4))];
        if rng.bool() {
            capacities.push((1, rng.usize(1..=4)));
        }
        if rng.u8(0..4) == 0 {
            capacities.push((0, rng.usize(2..=4)));
        }
        Plan {
            seed,
            dynamic: rng.bool(),
            workers: rng.usize(1..=3),
            reserved: rng.bool(),
            capacities,
            on_drop: if rng.bool() { DropPolicy::Drain } else { DropPolicy::CancelBacklog },
            shutdown: [Shutdown::Graceful, Shutdown::Now, Shutdown::TimeoutZero, Shutdown::Drop][rng.usize(0..4)],
            max_passes: rng.bool().then(|| rng.u32(1..4)),
            wait_metrics: rng.bool(),
        }
    }

    fn build(&self, hooks: &Hooks) -> Pool {
        let (before, after) = (Arc::clone(&hooks.before), Arc::clone(&hooks.after));
        let mut builder = Pool::builder()
            .before_job(move |_| {
                before.fetch_add(1, Ordering::SeqCst);
            })
            .after_job(move |_, _, _| {
                after.fetch_add(1, Ordering::SeqCst);
            })
            .levels(LEVELS)
            .on_drop(self.on_drop)
            .wait_metrics(self.wait_metrics);
        if let Some(k) = self.max_passes {
            builder = builder.max_passes(k);
        }
        builder = if self.dynamic {
            builder.min_workers(0).max_workers(self.workers).keep_alive(Duration::from_millis(1))
        } else {
            builder.workers(self.workers)
        };
        if self.reserved {
            builder = builder.reserved_threads(1).reserved_levels(Priority::HIGH);
        }
        for &(level, n) in &self.capacities {
            builder = builder.capacity(Priority::level(level), n);
        }
        builder.build().unwrap()
    }

    fn restore(&self, pool: &Pool) {
        if self.dynamic {
            pool.set_worker_limits(0, self.workers).unwrap();
        } else {
            pool.set_workers(self.workers).unwrap();
        }
    }
}

type Handles = Arc<Mutex<Vec<(usize, JobHandle<()>)>>>;

/// How many times the job hooks ran.
#[derive(Default)]
struct Hooks {
    before: Arc<AtomicUsize>,
    after: Arc<AtomicUsize>,
}

/// The body of a job: runs its ticket, sometimes spawns a child with
/// `priopool::spawn`, sometimes submits one, promotes it and joins it.
fn body(mut ticket: Ticket, spawner: Spawner, kids: u8, rng_seed: u64) -> impl FnOnce() + Send + 'static {
    move || {
        ticket.run();
        let mut rng = fastrand::Rng::with_seed(rng_seed);
        for _ in 0..rng.usize(0..50) {
            std::hint::spin_loop();
        }
        if kids == 0 {
            return;
        }
        let ledger = Arc::clone(&ticket.ledger);
        match rng.u8(0..4) {
            0 => {
                let child = body(ledger.ticket(), spawner.clone(), kids - 1, rng.u64(..));
                if let Err(error) = priopool::spawn(Priority::level(rng.usize(0..LEVELS)), child) {
                    panic!("a spawn from a running job was refused: {:?}", error.kind());
                }
            }
            1 => {
                let child_ticket = ledger.ticket();
                let id = child_ticket.id;
                let child = body(child_ticket, spawner.clone(), kids - 1, rng.u64(..));
                let handle = match spawner.submit(Priority::level(rng.usize(0..LEVELS)), child) {
                    Ok(handle) => handle,
                    Err(error) => panic!("a submit from a running job was refused: {:?}", error.kind()),
                };
                if let Ok(PromoteOutcome::Moved) = handle.promote(Priority::level(rng.usize(0..LEVELS))) {
                    ledger.moved.fetch_add(1, Ordering::SeqCst);
                }
                check_result(&ledger, id, handle.join());
            }
            2 => {}
            _ => {
                // A scope whose job its owner may claim (a level less urgent
                // than this job's) and `cancel_queued` may cancel: then the
                // scope panics saying so, and the job was dropped unrun.
                let child = ledger.ticket();
                let level = Priority::level(rng.usize(0..LEVELS));
                let scoped = panic::catch_unwind(AssertUnwindSafe(|| {
                    spawner.scope(|s| {
                        let mut child = child;
                        s.spawn(level, move |_| child.run()).unwrap();
                    })
                }));
                if let Err(payload) = scoped {
                    let message = payload.downcast_ref::<&str>().copied().unwrap_or_default();
                    assert!(message.contains("cancel_queued"), "a scope panicked: {message:?}");
                }
            }
        }
    }
}

fn check_result(ledger: &Ledger, id: usize, result: Result<(), JobError>) {
    match result {
        Ok(()) => assert_eq!(ledger.runs[id].load(Ordering::SeqCst), 1, "job {id}: joined Ok but not run once"),
        Err(JobError::Cancelled | JobError::Expired) => {
            assert_eq!(ledger.runs[id].load(Ordering::SeqCst), 0, "job {id}: cancelled but ran");
            assert_eq!(ledger.dropped[id].load(Ordering::SeqCst), 1, "job {id}: cancelled but not dropped");
        }
        Err(error) => panic!("job {id}: {error}"),
    }
}

/// One producer of the main phase: `OPS` spawns and submits of every
/// kind, at random levels, some with deadlines, groups and `WhenFull`.
fn produce(spawner: Spawner, ledger: Arc<Ledger>, handles: Handles, group: Arc<Mutex<JobGroup>>, seed: u64) {
    let mut rng = fastrand::Rng::with_seed(seed);
    for _ in 0..OPS {
        let level = Priority::level(rng.usize(0..LEVELS));
        let ticket = ledger.ticket();
        let id = ticket.id;
        let job = body(ticket, spawner.clone(), rng.u8(0..3), rng.u64(..));
        let kind = rng.u8(0..5);
        let refused = |kind: SpawnErrorKind| {
            assert_eq!(kind, SpawnErrorKind::Full, "job {id}: refused while the pool runs");
        };
        macro_rules! refuse {
            ($error:expr) => {{
                let error = $error;
                refused(error.kind());
                let job = error.into_inner();
                // The ticket inside is dropped unrun: marked refused first.
                ledger.refused[id].store(true, Ordering::SeqCst);
                drop(job);
            }};
        }
        match kind {
            0 => {
                if let Err(error) = spawner.spawn(level, job) {
                    refuse!(error);
                }
            }
            1 => {
                if let Err(error) = spawner.try_spawn(level, job) {
                    refuse!(error);
                }
            }
            2 => {
                if let Err(error) = spawner.spawn_timeout(level, Duration::from_micros(rng.u64(0..300)), job) {
                    refuse!(error);
                }
            }
            _ => {
                let mut builder = spawner.job(level);
                match rng.u8(0..4) {
                    0 => builder = builder.max_wait(Duration::from_micros(rng.u64(0..200))),
                    1 => builder = builder.deadline(Instant::now() + Duration::from_micros(rng.u64(0..2_000))),
                    _ => {}
                }
                if rng.bool() {
                    builder = builder.group(&group.lock().unwrap().clone());
                }
                builder = builder.when_full(match rng.u8(0..3) {
                    0 => WhenFull::Wait,
                    1 => WhenFull::Refuse,
                    _ => WhenFull::WaitAtMost(Duration::from_micros(rng.u64(0..300))),
                });
                match builder.submit(job) {
                    Ok(handle) => handles.lock().unwrap().push((id, handle)),
                    Err(error) => refuse!(error),
                }
            }
        }
        PROGRESS.fetch_add(1, Ordering::Relaxed);
        if rng.u8(0..8) == 0 {
            thread::sleep(Duration::from_micros(rng.u64(0..200)));
        }
    }
}

/// The controller of the main phase: cancels, promotes, cancels groups and
/// levels, and resizes the pool, until `done`.
fn control(pool: &Pool, plan: &Plan, ledger: &Ledger, handles: &Handles, group: &Mutex<JobGroup>, done: &AtomicBool) {
    let mut rng = fastrand::Rng::with_seed(plan.seed ^ 0x00c0_ffee);
    while !done.load(Ordering::SeqCst) {
        match rng.u8(0..10) {
            0..=2 => {
                let handles = handles.lock().unwrap();
                if !handles.is_empty() {
                    let _ = handles[rng.usize(0..handles.len())].1.cancel();
                }
            }
            3..=6 => {
                let handles = handles.lock().unwrap();
                if !handles.is_empty() {
                    let to = Priority::level(rng.usize(0..LEVELS));
                    if let Ok(PromoteOutcome::Moved) = handles[rng.usize(0..handles.len())].1.promote(to) {
                        ledger.moved.fetch_add(1, Ordering::SeqCst);
                    }
                }
            }
            7 => {
                let old = std::mem::take(&mut *group.lock().unwrap());
                old.cancel();
            }
            8 => {
                pool.cancel_queued(Priority::level(rng.usize(0..LEVELS)));
            }
            _ => {
                let max = rng.usize(1..=3);
                if plan.dynamic {
                    pool.set_worker_limits(rng.usize(0..=max), max).unwrap();
                } else {
                    pool.set_workers(max).unwrap();
                }
            }
        }
        thread::sleep(Duration::from_micros(rng.u64(0..100)));
    }
}

fn assert_resolved(ledger: &Ledger, what: &str) {
    for id in 0..ledger.used() {
        let runs = ledger.runs[id].load(Ordering::SeqCst);
        let dropped = ledger.dropped[id].load(Ordering::SeqCst);
        assert_eq!(runs + dropped, 1, "{what}: job {id} ran {runs} times and was dropped {dropped} times");
    }
}

fn main_phase(pool: &Pool, plan: &Plan, ledger: &Arc<Ledger>, hooks: &Hooks) {
    let handles: Handles = Arc::default();
    let group = Arc::new(Mutex::new(JobGroup::new()));
    let done = AtomicBool::new(false);
    thread::scope(|s| {
        let producers: Vec<_> = (0..PRODUCERS as u64)
            .map(|p| {
                let (spawner, ledger, handles, group) =
                    (pool.spawner(), Arc::clone(ledger), Arc::clone(&handles), Arc::clone(&group));
                s.spawn(move || produce(spawner, ledger, handles, group, plan.seed.wrapping_mul(31).wrapping_add(p)))
            })
            .collect();
        s.spawn(|| control(pool, plan, ledger, &handles, &group, &done));
        for producer in producers {
            producer.join().unwrap();
        }
        done.store(true, Ordering::SeqCst);
    });
    plan.restore(pool);
    assert!(pool.wait_idle());
    for (id, handle) in std::mem::take(&mut *handles.lock().unwrap()) {
        check_result(ledger, id, handle.join());
    }
    assert_resolved(ledger, "at rest");

    // The figures at rest.
    let metrics = pool.metrics();
    common::assert_at_rest(&metrics, "at rest");
    for level in 0..LEVELS {
        assert_eq!(pool.queued(Priority::level(level)), Some(0), "queued at level {level}");
    }
    let used = ledger.used();
    let runs: usize = (0..used).map(|id| usize::from(ledger.runs[id].load(Ordering::SeqCst))).sum();
    let refused = (0..used).filter(|&id| ledger.refused[id].load(Ordering::SeqCst)).count();
    let dropped: usize = (0..used).map(|id| usize::from(ledger.dropped[id].load(Ordering::SeqCst))).sum();
    let sum = |f: fn(&priopool::LevelMetrics) -> u64| metrics.levels.iter().map(f).sum::<u64>() as usize;
    assert_eq!(sum(|l| l.completed), runs, "completed: {metrics:?}");
    assert_eq!(sum(|l| l.cancelled) + sum(|l| l.expired), dropped - refused, "cancelled + expired: {metrics:?}");
    assert_eq!(sum(|l| l.rejected), refused, "rejected: {metrics:?}");
    assert_eq!(sum(|l| l.promoted), ledger.moved.load(Ordering::SeqCst), "promoted: {metrics:?}");
    assert_eq!(sum(|l| l.submitted), used + ledger.moved.load(Ordering::SeqCst), "submitted: {metrics:?}");
    assert_eq!(hooks.before.load(Ordering::SeqCst), sum(|l| l.started), "before_job calls: {metrics:?}");
    assert_eq!(hooks.after.load(Ordering::SeqCst), runs, "after_job calls: {metrics:?}");

    eprintln!(
        "  {used} jobs: {runs} ran, {} cancelled, {} expired, {refused} refused, {} promoted, {} waits for room",
        sum(|l| l.cancelled),
        sum(|l| l.expired),
        sum(|l| l.promoted),
        sum(|l| l.full_waits)
    );
    // Every slot came back: with every thread held, each bounded level
    // takes exactly its capacity.
    let threads = plan.workers + usize::from(plan.reserved);
    pool.set_workers(plan.workers).unwrap();
    let gate = Gate::hold(pool, threads);
    for &(level, n) in &plan.capacities {
        let priority = Priority::level(level);
        for i in 0..n {
            if let Err(error) = pool.try_spawn(priority, || {}) {
                panic!("level {level}: slot {i} of {n} not given back: {:?}", error.kind());
            }
        }
        let error = pool.try_spawn(priority, || {}).expect_err("a slot given back twice");
        assert_eq!(error.kind(), SpawnErrorKind::Full, "level {level}");
    }
    drop(gate);
    plan.restore(pool);
    assert!(pool.wait_idle());
}

/// Producers spawn until refused, while the pool is shut down as the plan
/// says; every accepted job is accounted for.
fn final_phase(pool: Pool, plan: &Plan, ledger: &Arc<Ledger>) {
    let before = ledger.used();
    let started = Arc::new(AtomicUsize::new(0));
    // Children would be spawned after a `TimedOut` report returned, by
    // jobs it counts as still running: no children then.
    let kids = if matches!(plan.shutdown, Shutdown::TimeoutZero) { 0 } else { 2 };
    let producers: Vec<_> = (0..2u64)
        .map(|p| {
            let (spawner, ledger, started) = (pool.spawner(), Arc::clone(ledger), Arc::clone(&started));
            let seed = plan.seed ^ (p + 1) << 40;
            thread::spawn(move || {
                let mut rng = fastrand::Rng::with_seed(seed);
                loop {
                    let ticket = ledger.ticket();
                    let id = ticket.id;
                    let job = body(ticket, spawner.clone(), rng.u8(0..=kids), rng.u64(..));
                    if let Err(error) = spawner.spawn(Priority::level(rng.usize(0..LEVELS)), job) {
                        assert_eq!(error.kind(), SpawnErrorKind::Shutdown, "job {id}");
                        ledger.refused[id].store(true, Ordering::SeqCst);
                        return;
                    }
                    started.fetch_add(1, Ordering::SeqCst);
                    PROGRESS.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    while started.load(Ordering::SeqCst) < 20 {
        thread::yield_now();
    }
    let mut now_cancelled = None;
    let mut timed_out = None;
    match plan.shutdown {
        Shutdown::Graceful => pool.shutdown(),
        Shutdown::Now => now_cancelled = Some(pool.shutdown_now().total()),
        Shutdown::TimeoutZero => timed_out = Some(pool.shutdown_timeout(Duration::ZERO)),
        Shutdown::Drop => drop(pool),
    }
    for producer in producers {
        producer.join().unwrap();
    }
    let waited = Instant::now();
    while !ledger.resolved() {
        assert!(waited.elapsed() < Duration::from_secs(20), "a job neither ran nor was dropped");
        thread::sleep(Duration::from_millis(1));
    }
    assert_resolved(ledger, "after the shutdown");
    let dropped = (before..ledger.used())
        .filter(|&id| ledger.dropped[id].load(Ordering::SeqCst) == 1 && !ledger.refused[id].load(Ordering::SeqCst))
        .count();
    eprintln!("  final phase: {} jobs, {dropped} dropped by the shutdown", ledger.used() - before);
    match (plan.shutdown, plan.on_drop) {
        (Shutdown::Graceful, _) | (Shutdown::Drop, DropPolicy::Drain) => {
            assert_eq!(dropped, 0, "a graceful shutdown dropped jobs")
        }
        (Shutdown::Now, _) => assert_eq!(now_cancelled, Some(dropped), "shutdown_now's CancelledJobs"),
        (Shutdown::TimeoutZero, _) => match timed_out.unwrap() {
            ShutdownReport::Drained | ShutdownReport::DrainedDetached { .. } => assert_eq!(dropped, 0),
            ShutdownReport::TimedOut { cancelled, still_running } => {
                assert!(cancelled.total() <= dropped, "{cancelled:?} of {dropped} jobs dropped");
                // A job the report does not count cancelled had not ended.
                let uncounted = dropped - cancelled.total();
                assert!(
                    uncounted <= still_running,
                    "{uncounted} jobs dropped uncounted, {still_running} still running"
                );
            }
            other => panic!("{other:?}"),
        },
        _ => {}
    }
}

#[test]
fn features_meet_and_every_job_is_accounted_for() {
    stall_watchdog(
        "crossfire",
        || PROGRESS.load(Ordering::Relaxed),
        || {
            let base = std::env::var("CROSSFIRE_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(0x5eed);
            let rounds = std::env::var("CROSSFIRE_ROUNDS").ok().and_then(|s| s.parse().ok()).unwrap_or(ROUNDS);
            for seed in base..base + rounds {
                let plan = Plan::draw(seed);
                eprintln!("round {plan:?}");
                let ledger = Ledger::new();
                let hooks = Hooks::default();
                let pool = plan.build(&hooks);
                main_phase(&pool, &plan, &ledger, &hooks);
                final_phase(pool, &plan, &ledger);
            }
        },
    );
}
