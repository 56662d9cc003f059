//! `shutdown_now` and `shutdown_timeout(0)` while running jobs wait for
//! children they would claim and run inline: through `JobHandle::join`,
//! `join_timeout`, the handle awaited as a future, or a scope whose jobs
//! are less urgent than their owner (claimable). A parent may promote its
//! child before it waits (a promotion cannot race the claim from outside:
//! the waiter holds the only `JobHandle`; loom model 9d covers that race);
//! a controller cancels children by handle, by group and with
//! `cancel_queued` (also right after the shutdown, racing the abort's
//! claims), and resizes the pool (a dynamic pool retires workers after
//! 1 ms idle); children may carry start deadlines that expire at the
//! claim; some parents keep spawning and waiting across the shutdown;
//! producers from outside spawn with deadlines and every `WhenFull` on
//! bounded levels until the shutdown refuses them.
//!
//! Found a scope on a reserved thread waiting for ever for a job beyond
//! the thread's bound (tests/issue_reserved_scope_owner.rs; seed 301434).
//! Known to catch `claim_task` or a scope's `claim_one` running a child
//! inline while the pool aborts (the fix of d082508 undone: "spawned after
//! the sweep, ran", within 200 rounds).
//!
//! Seeded (fastrand): each round draws its pool and program from its seed
//! (`ABORT_WAITERS_SEED`, `ABORT_WAITERS_ROUNDS` to explore), printed on
//! failure. Checked exactly, once the pool is at rest after the shutdown:
//!
//! * every job ran once or was dropped unrun once, and a handle's result
//!   agrees;
//! * a child spawned after a `shutdown_timeout(0)` had returned (its sweep
//!   over) never runs, however its parent waits for it;
//! * per level `submitted = completed + panicked + cancelled + expired +
//!   promoted + rejected`, backlog 0; in total `completed` = jobs run,
//!   `cancelled + expired` = accepted jobs dropped unrun, `rejected` =
//!   refused spawns, `promoted` = promotions that moved a job, no panic.

mod common;

use std::future::Future;
use std::panic::{self, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};
use std::thread;
use std::time::{Duration, Instant};

use common::stall_watchdog;
use common::ticket::{self, Fates};
use priopool::{
    CancelHandle, JobError, JobGroup, JobHandle, JoinTimeoutError, Pool, Priority, PromoteOutcome, ShutdownReport,
    SpawnErrorKind, Spawner, WhenFull,
};

const LEVELS: usize = 3;
const IDS: usize = 1 << 15;
const ROUNDS: u64 = 40;

static PROGRESS: AtomicUsize = AtomicUsize::new(0);

/// What every job of a round shares.
struct Ledger {
    runs: Vec<AtomicU8>,
    dropped: Vec<AtomicU8>,
    refused: Vec<AtomicBool>,
    /// Spawned after the sweep of a `shutdown_timeout(0)`: must not run.
    forbidden: Vec<AtomicBool>,
    next: AtomicUsize,
    moved: AtomicUsize,
    /// Set once `shutdown_timeout(0)` has returned.
    swept: AtomicBool,
    cancels: Mutex<Vec<CancelHandle>>,
    /// The group new jobs may join, and whether they still may (closed
    /// before the shutdown: a job that joins a group cancelled already is
    /// cancelled at its spawn, which `CancelledJobs` rightly leaves out).
    group: Mutex<(JobGroup, bool)>,
    /// Spawns into a group under way.
    grouping: AtomicUsize,
}

impl Ledger {
    fn new() -> Arc<Ledger> {
        Arc::new(Ledger {
            runs: (0..IDS).map(|_| AtomicU8::new(0)).collect(),
            dropped: (0..IDS).map(|_| AtomicU8::new(0)).collect(),
            refused: (0..IDS).map(|_| AtomicBool::new(false)).collect(),
            forbidden: (0..IDS).map(|_| AtomicBool::new(false)).collect(),
            next: AtomicUsize::new(0),
            moved: AtomicUsize::new(0),
            swept: AtomicBool::new(false),
            cancels: Mutex::new(Vec::new()),
            group: Mutex::new((JobGroup::new(), true)),
            grouping: AtomicUsize::new(0),
        })
    }

    /// A ticket for a new job; `inside`: spawned by a running job, so
    /// forbidden to run if the sweep is already over.
    fn ticket(self: &Arc<Ledger>, inside: bool) -> Ticket {
        let id = self.next.fetch_add(1, Ordering::SeqCst);
        assert!(id < IDS, "more jobs than tickets");
        if inside && self.swept.load(Ordering::SeqCst) {
            self.forbidden[id].store(true, Ordering::SeqCst);
        }
        Ticket::new(id, Arc::clone(self))
    }

    fn used(&self) -> usize {
        self.next.load(Ordering::SeqCst)
    }

    fn resolved(&self) -> bool {
        (0..self.used()).all(|id| self.runs[id].load(Ordering::SeqCst) + self.dropped[id].load(Ordering::SeqCst) >= 1)
    }

    /// The group to join, if new jobs still may: counted under way until
    /// [`Ledger::grouped`].
    fn join_group(&self) -> Option<JobGroup> {
        let group = self.group.lock().unwrap();
        group.1.then(|| {
            self.grouping.fetch_add(1, Ordering::SeqCst);
            group.0.clone()
        })
    }

    fn grouped(&self, group: Option<JobGroup>) {
        if group.is_some() {
            self.grouping.fetch_sub(1, Ordering::SeqCst);
        }
    }

    /// Cancels the group and starts a new one.
    fn cancel_group(&self) {
        let mut group = self.group.lock().unwrap();
        std::mem::take(&mut group.0).cancel();
    }

    /// No job joins a group from now on, once the spawns under way end.
    fn close_groups(&self) {
        self.group.lock().unwrap().1 = false;
        while self.grouping.load(Ordering::SeqCst) > 0 {
            thread::yield_now();
        }
    }

    fn refuse(&self, id: usize) {
        self.refused[id].store(true, Ordering::SeqCst);
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
    Now,
    TimeoutZero,
}

#[derive(Debug)]
struct Plan {
    seed: u64,
    dynamic: bool,
    workers: usize,
    reserved: bool,
    capacities: Vec<(usize, usize)>,
    shutdown: Shutdown,
    wait_metrics: bool,
    /// Producer operations before the shutdown.
    ops_before: usize,
}

impl Plan {
    fn draw(seed: u64) -> Plan {
        let mut rng = fastrand::Rng::with_seed(seed);
        let mut capacities = Vec::new();
        for level in 0..LEVELS {
            if rng.u8(0..3) == 0 {
                capacities.push((level, rng.usize(1..=4)));
            }
        }
        Plan {
            seed,
            dynamic: rng.bool(),
            workers: rng.usize(1..=3),
            reserved: rng.u8(0..4) == 0,
            capacities,
            shutdown: if rng.bool() { Shutdown::Now } else { Shutdown::TimeoutZero },
            wait_metrics: rng.bool(),
            ops_before: rng.usize(5..120),
        }
    }

    fn build(&self) -> Pool {
        let mut builder = Pool::builder().levels(LEVELS).wait_metrics(self.wait_metrics);
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
}

/// A job: runs its ticket, then (if `depth` allows) spawns children and
/// waits for them in one of the ways a waiter claims.
fn body(mut ticket: Ticket, spawner: Spawner, depth: u8, seed: u64) -> impl FnOnce() + Send + 'static {
    move || {
        ticket.run();
        let ledger = Arc::clone(&ticket.ledger);
        drop(ticket);
        let mut rng = fastrand::Rng::with_seed(seed);
        for _ in 0..rng.usize(0..200) {
            std::hint::spin_loop();
        }
        if depth == 0 {
            return;
        }
        // A looper keeps spawning and waiting across the shutdown.
        let looper = rng.u8(0..6) == 0;
        let rounds = if looper { rng.usize(10..40) } else { rng.usize(1..=2) };
        for _ in 0..rounds {
            if looper {
                thread::sleep(Duration::from_micros(rng.u64(0..300)));
            }
            match rng.u8(0..5) {
                0..=2 => wait_handle(&ledger, &spawner, depth, &mut rng),
                _ => wait_scope(&ledger, &spawner, depth, &mut rng),
            }
        }
    }
}

/// Submits a child (options drawn) and waits for it through its handle.
fn wait_handle(ledger: &Arc<Ledger>, spawner: &Spawner, depth: u8, rng: &mut fastrand::Rng) {
    let ticket = ledger.ticket(true);
    let id = ticket.id;
    let child = body(ticket, spawner.clone(), depth - 1, rng.u64(..));
    let mut builder = spawner.job(Priority::level(rng.usize(0..LEVELS)));
    match rng.u8(0..4) {
        0 => builder = builder.max_wait(Duration::from_micros(rng.u64(0..100))),
        1 => builder = builder.deadline(Instant::now() + Duration::from_micros(rng.u64(0..500))),
        _ => {}
    }
    let group = if rng.bool() { ledger.join_group() } else { None };
    if let Some(group) = &group {
        builder = builder.group(group);
    }
    if rng.u8(0..4) == 0 {
        builder = builder.when_full(WhenFull::Refuse);
    }
    let submitted = builder.submit(child);
    ledger.grouped(group);
    let handle = match submitted {
        Ok(handle) => handle,
        Err(error) => {
            assert_eq!(error.kind(), SpawnErrorKind::Full, "job {id}: refused from inside");
            ledger.refuse(id);
            return;
        }
    };
    if rng.u8(0..3) == 0
        && let Ok(PromoteOutcome::Moved) = handle.promote(Priority::level(rng.usize(0..LEVELS)))
    {
        ledger.moved.fetch_add(1, Ordering::SeqCst);
    }
    ledger.cancels.lock().unwrap().push(handle.cancel_handle());
    let result = match rng.u8(0..4) {
        0 => join_in_steps(handle, rng),
        1 => await_on(handle),
        _ => handle.join(),
    };
    check_result(ledger, id, result);
}

/// Awaits `handle` as a future, polled on this thread with a waker that
/// unparks it (nestable, unlike `futures::executor::block_on`: a claimed
/// child may await its own child on the same thread).
fn await_on(mut handle: JobHandle<()>) -> Result<(), JobError> {
    struct Unpark(thread::Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Waker::from(Arc::new(Unpark(thread::current())));
    let mut cx = Context::from_waker(&waker);
    loop {
        if let Poll::Ready(result) = Pin::new(&mut handle).poll(&mut cx) {
            return result;
        }
        thread::park_timeout(Duration::from_millis(1));
    }
}

fn join_in_steps(mut handle: JobHandle<()>, rng: &mut fastrand::Rng) -> Result<(), JobError> {
    loop {
        match handle.join_timeout(Duration::from_micros(rng.u64(0..200))) {
            Ok(()) => return Ok(()),
            Err(JoinTimeoutError::Job(error)) => return Err(error),
            Err(JoinTimeoutError::TimedOut(again)) => handle = again,
        }
    }
}

/// A scope with one or two children at drawn levels (claimable when less
/// urgent than this job); a child cancelled unrun makes the scope panic.
fn wait_scope(ledger: &Arc<Ledger>, spawner: &Spawner, depth: u8, rng: &mut fastrand::Rng) {
    let children: Vec<_> = (0..rng.usize(1..=2))
        .map(|_| {
            let ticket = ledger.ticket(true);
            (Priority::level(rng.usize(0..LEVELS)), body(ticket, spawner.clone(), depth - 1, rng.u64(..)))
        })
        .collect();
    let scoped = panic::catch_unwind(AssertUnwindSafe(|| {
        spawner.scope(|s| {
            for (level, child) in children {
                s.spawn(level, move |_| child()).unwrap_or_else(|e| panic!("scope spawn refused: {:?}", e.kind()));
            }
        })
    }));
    if let Err(payload) = scoped {
        let message = common::message(&*payload).unwrap_or_default();
        assert!(message.contains("cancelled before it ran"), "a scope panicked: {message:?}");
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

/// A producer from outside: parents with options until refused by the
/// shutdown.
fn produce(spawner: Spawner, ledger: Arc<Ledger>, ops: Arc<AtomicUsize>, seed: u64) {
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut handles = Vec::new();
    loop {
        let level = Priority::level(rng.usize(0..LEVELS));
        let ticket = ledger.ticket(false);
        let id = ticket.id;
        let job = body(ticket, spawner.clone(), rng.u8(0..3), rng.u64(..));
        let mut builder = spawner.job(level);
        match rng.u8(0..4) {
            0 => builder = builder.max_wait(Duration::from_micros(rng.u64(0..300))),
            1 => builder = builder.deadline(Instant::now() + Duration::from_micros(rng.u64(0..2_000))),
            _ => {}
        }
        builder = builder.when_full(match rng.u8(0..3) {
            0 => WhenFull::Wait,
            1 => WhenFull::Refuse,
            _ => WhenFull::WaitAtMost(Duration::from_micros(rng.u64(0..300))),
        });
        let group = if rng.bool() { ledger.join_group() } else { None };
        if let Some(group) = &group {
            builder = builder.group(group);
        }
        let submitted = builder.submit(job);
        ledger.grouped(group);
        match submitted {
            Ok(handle) => {
                ledger.cancels.lock().unwrap().push(handle.cancel_handle());
                handles.push((id, handle));
            }
            Err(error) => {
                let shutdown = error.kind() == SpawnErrorKind::Shutdown;
                assert!(shutdown || error.kind() == SpawnErrorKind::Full, "job {id}: {:?}", error.kind());
                ledger.refuse(id);
                drop(error);
                if shutdown {
                    break;
                }
            }
        }
        ops.fetch_add(1, Ordering::SeqCst);
        PROGRESS.fetch_add(1, Ordering::Relaxed);
        if rng.u8(0..8) == 0 {
            thread::sleep(Duration::from_micros(rng.u64(0..200)));
        }
    }
    for (id, handle) in handles {
        check_result(&ledger, id, handle.join());
    }
}

/// Cancels, cancels groups and levels, resizes, then shuts down.
fn control(pool: Pool, plan: &Plan, ledger: &Arc<Ledger>, ops: &AtomicUsize) -> (Spawner, u64, Report) {
    let mut rng = fastrand::Rng::with_seed(plan.seed ^ 0x00c0_ffee);
    let spawner = pool.spawner();
    while ops.load(Ordering::SeqCst) < plan.ops_before {
        match rng.u8(0..10) {
            0..=3 => {
                let cancels = ledger.cancels.lock().unwrap();
                if !cancels.is_empty() {
                    let _ = cancels[rng.usize(0..cancels.len())].cancel();
                }
            }
            4 => ledger.cancel_group(),
            5 => {
                pool.cancel_queued(Priority::level(rng.usize(0..LEVELS)));
            }
            6 => {
                let max = rng.usize(1..=3);
                if plan.dynamic {
                    pool.set_worker_limits(rng.usize(0..=max), max).unwrap();
                } else {
                    pool.set_workers(max).unwrap();
                }
            }
            _ => {}
        }
        thread::sleep(Duration::from_micros(rng.u64(0..100)));
    }
    // Every cancel so far is counted (each counts before it returns); only
    // the abort cancels from here on, until the post-shutdown cancels below.
    ledger.close_groups();
    let before: u64 = pool.metrics().levels.iter().map(|l| l.cancelled).sum();
    let report = match plan.shutdown {
        Shutdown::Now => Report::Now(pool.shutdown_now().total()),
        Shutdown::TimeoutZero => {
            let report = pool.shutdown_timeout(Duration::ZERO);
            ledger.swept.store(true, Ordering::SeqCst);
            match report {
                ShutdownReport::TimedOut { cancelled, .. } => Report::AtMost(cancelled.total()),
                _ => Report::AtMost(0),
            }
        }
    };
    // Cancels racing the abort's claims.
    for _ in 0..rng.usize(0..20) {
        let cancels = ledger.cancels.lock().unwrap();
        if !cancels.is_empty() {
            let _ = cancels[rng.usize(0..cancels.len())].cancel();
        }
        drop(cancels);
        if rng.bool() {
            ledger.cancel_group();
        }
        thread::yield_now();
    }
    (spawner, before, report)
}

/// What the shutdown said it cancelled: exactly (`shutdown_now` returns
/// once the pool drained: every cancel by the abort is in it) or a part
/// (`shutdown_timeout` returns after its sweep).
enum Report {
    Now(usize),
    AtMost(usize),
}

fn round(plan: &Plan) {
    let ledger = Ledger::new();
    let pool = plan.build();
    let ops = Arc::new(AtomicUsize::new(0));
    let producers: Vec<_> = (0..2u64)
        .map(|p| {
            let (spawner, ledger, ops) = (pool.spawner(), Arc::clone(&ledger), Arc::clone(&ops));
            let seed = plan.seed.wrapping_mul(31).wrapping_add(p);
            thread::spawn(move || produce(spawner, ledger, ops, seed))
        })
        .collect();
    let (spawner, cancelled_before, report) = control(pool, plan, &ledger, &ops);
    for producer in producers {
        producer.join().unwrap();
    }
    let waited = Instant::now();
    while !ledger.resolved() {
        assert!(waited.elapsed() < Duration::from_secs(20), "a job neither ran nor was dropped");
        thread::sleep(Duration::from_millis(1));
    }
    // At rest: detached workers may still be finishing their counts (a
    // worker that pops a closure while aborting drops it, which the ledger
    // sees, before counting it cancelled), so wait until every offer is in
    // the figures; a job counted wrong for good fails the checks below.
    let offers = ledger.used() + ledger.moved.load(Ordering::SeqCst);
    let metrics = loop {
        let m = spawner.metrics();
        let submitted: u64 = m.levels.iter().map(|l| l.submitted).sum();
        let rest = m.levels.iter().all(|l| l.backlog == 0 && l.running() == 0);
        if rest && submitted as usize == offers || waited.elapsed() > Duration::from_secs(20) {
            break m;
        }
        thread::sleep(Duration::from_millis(1));
    };
    let used = ledger.used();
    for id in 0..used {
        let runs = ledger.runs[id].load(Ordering::SeqCst);
        let dropped = ledger.dropped[id].load(Ordering::SeqCst);
        assert_eq!(runs + dropped, 1, "job {id} ran {runs} times and was dropped {dropped} times");
        if ledger.forbidden[id].load(Ordering::SeqCst) {
            assert_eq!(runs, 0, "job {id}, spawned after the sweep, ran");
        }
    }
    common::assert_at_rest(&metrics, "after the shutdown");
    let runs: usize = (0..used).map(|id| usize::from(ledger.runs[id].load(Ordering::SeqCst))).sum();
    let refused = (0..used).filter(|&id| ledger.refused[id].load(Ordering::SeqCst)).count();
    let dropped: usize = (0..used).map(|id| usize::from(ledger.dropped[id].load(Ordering::SeqCst))).sum();
    let forbidden = (0..used).filter(|&id| ledger.forbidden[id].load(Ordering::SeqCst)).count();
    let sum = |f: fn(&priopool::LevelMetrics) -> u64| metrics.levels.iter().map(f).sum::<u64>() as usize;
    assert_eq!(sum(|l| l.completed), runs, "completed: {metrics:?}");
    assert_eq!(sum(|l| l.panicked), 0, "panicked: {metrics:?}");
    assert_eq!(sum(|l| l.cancelled) + sum(|l| l.expired), dropped - refused, "cancelled + expired: {metrics:?}");
    assert_eq!(sum(|l| l.rejected), refused, "rejected: {metrics:?}");
    assert_eq!(sum(|l| l.promoted), ledger.moved.load(Ordering::SeqCst), "promoted: {metrics:?}");
    assert_eq!(sum(|l| l.submitted), used + ledger.moved.load(Ordering::SeqCst), "submitted: {metrics:?}");
    let by_abort = sum(|l| l.cancelled) - cancelled_before as usize;
    match report {
        Report::Now(total) => assert_eq!(total, by_abort, "shutdown_now's CancelledJobs: {metrics:?}"),
        Report::AtMost(total) => assert!(total <= by_abort, "{total} reported cancelled of {by_abort}"),
    }
    eprintln!(
        "  {used} jobs: {runs} ran, {} cancelled, {} expired, {refused} refused, {} promoted, {forbidden} after the sweep",
        sum(|l| l.cancelled),
        sum(|l| l.expired),
        sum(|l| l.promoted),
    );
}

#[test]
fn waiters_claiming_during_an_abort_account_for_every_job() {
    stall_watchdog(
        "abort waiters",
        || PROGRESS.load(Ordering::Relaxed),
        || {
            let base = std::env::var("ABORT_WAITERS_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(0xab07);
            let rounds = std::env::var("ABORT_WAITERS_ROUNDS").ok().and_then(|s| s.parse().ok()).unwrap_or(ROUNDS);
            for seed in base..base + rounds {
                let plan = Plan::draw(seed);
                eprintln!("round {plan:?}");
                round(&plan);
                PROGRESS.fetch_add(1, Ordering::Relaxed);
            }
        },
    );
}
