//! No job lost, none run twice.
//!
//! proptest generates random *programs*: sequences of steps (spawns and
//! submits at random levels, submits whose handle is dropped at once, trees
//! of jobs that spawn jobs from inside the pool, trees that only grow once
//! the shutdown has begun, panicking jobs, producer threads that keep
//! spawning through `Spawner` clones while later steps run, out-of-range
//! levels, and a shutdown or drop at a random point). Every shutdown runs
//! beside a probe thread that spawns from outside until it is refused.
//!
//! Every job carries a [`Ticket`] that records in a [`Ledger`] whether it
//! ran and whether it was dropped without running. After the program the
//! test checks that
//!
//! * every accepted job ran exactly once and was never dropped unrun;
//! * every refused job came back in its `SpawnError`, unrun and not yet
//!   dropped (the test takes it out with `into_inner` and drops it, which the
//!   ticket records), with the expected `SpawnErrorKind`: the very closure
//!   came back, not merely an error;
//! * spawns from outside after the shutdown are refused with `Shutdown`,
//!   spawns from inside running jobs never are; a producer racing the
//!   shutdown is refused only once it has begun, is never accepted again once
//!   refused, and never accepted after it returned;
//! * submit handles give the job's value, or `JobError::Panicked` with the
//!   job's own panic for a panicking job; the panic handler got exactly the
//!   payloads of the accepted panicking spawns.
//!
//! A failing case shrinks to a short program printed one step per line, so
//! it reads as a recipe; its seed is saved in `tests/no_job_lost.regressions`,
//! to be committed with the fix.
//! [`shutdown_racing_producers_loses_nothing`] makes the race with the
//! shutdown certain rather than likely, with heavy jobs that widen the
//! window between a job's admission and its queueing.
//!
//! Known to catch workers that exit once intake is closed without waiting
//! for the outstanding jobs (the racing test, about 3 runs in 5: a timing
//! race), refusing spawns from inside jobs after the close, accepting spawns
//! from outside after it, jobs run without `catch_unwind`, no wake-up after
//! a push, and a refused job dropped and reported as accepted.

mod common;

use std::fmt;
use std::hint::black_box;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Barrier, Mutex, MutexGuard};
use std::thread;

use common::{CASE_BOUND, Latch, MARKER, message, quiet_intentional_panics, stall_watchdog, watchdog};
use priopool::{JobError, JobHandle, Pool, Priority, SpawnError, SpawnErrorKind, Spawner};
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;

/// Bytes of ballast the racing producers' jobs capture by value. The pool
/// copies a job into its box between admitting it and queueing it, so a
/// heavy job widens exactly the window in which a racing shutdown could
/// strand an admitted job.
const BALLAST: usize = 1 << 20;

/// One step of a generated program, run by the test thread in order.
#[derive(Clone)]
enum Step {
    /// `spawn` a job at `level`.
    Spawn { level: usize },
    /// `submit` a job at `level`; its handle is joined at the end, or
    /// dropped at once (which must not cancel the job).
    Submit { level: usize, drop_handle: bool },
    /// A job that panics, spawned or submitted.
    Panic { level: usize, submit: bool },
    /// A job that spawns `fanout` children from inside the pool (at the
    /// following levels, alternating spawn and submit), which do the same,
    /// down to `depth` generations.
    Nested { level: usize, depth: u32, fanout: usize },
    /// As `Nested`, but the root job first waits until the shutdown has
    /// begun (intake closed), so the whole tree is spawned during the
    /// drain. (A shutdown always comes: at the end if not before.)
    DrainTree { level: usize, depth: u32, fanout: usize },
    /// Starts `threads` producer threads that each spawn or submit `jobs`
    /// jobs through a `Spawner` clone, and goes on without waiting for
    /// them: they race the steps that follow, including a shutdown.
    Producers { threads: usize, jobs: usize },
    /// A spawn at a level the pool does not have.
    BadLevel { level: usize },
    /// Shuts the pool down (`Pool::shutdown`, or dropping the pool).
    Shutdown { by_drop: bool },
}

/// A pool configuration and the steps to run against it.
#[derive(Clone)]
struct Program {
    workers: usize,
    levels: usize,
    steps: Vec<Step>,
}

impl fmt::Debug for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Step::Spawn { level } => write!(f, "spawn a job at level {level}"),
            Step::Submit { level, drop_handle: false } => write!(f, "submit a job at level {level}"),
            Step::Submit { level, drop_handle: true } => {
                write!(f, "submit a job at level {level} and drop its handle at once")
            }
            Step::Panic { level, submit: false } => write!(f, "spawn a panicking job at level {level}"),
            Step::Panic { level, submit: true } => write!(f, "submit a panicking job at level {level}"),
            Step::Nested { level, depth, fanout } => {
                let jobs: usize = (0..=depth).map(|d| fanout.pow(d)).sum();
                write!(f, "spawn a job tree at level {level}: depth {depth}, fanout {fanout} ({jobs} jobs)")
            }
            Step::DrainTree { level, depth, fanout } => {
                let jobs: usize = (0..=depth).map(|d| fanout.pow(d)).sum();
                write!(
                    f,
                    "spawn a job tree at level {level} that grows once the shutdown begins: depth {depth}, fanout \
                     {fanout} ({jobs} jobs)"
                )
            }
            Step::Producers { threads, jobs } => {
                write!(f, "start {threads} producer threads × {jobs} jobs (spawn/submit), left running")
            }
            Step::BadLevel { level } => write!(f, "spawn at level {level} (out of range)"),
            Step::Shutdown { by_drop: false } => f.write_str("pool.shutdown()"),
            Step::Shutdown { by_drop: true } => f.write_str("drop(pool)"),
        }
    }
}

impl fmt::Debug for Program {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "Program: {} workers, {} levels", self.workers, self.levels)?;
        for (i, step) in self.steps.iter().enumerate() {
            writeln!(f, "  {i:>2}: {step:?}")?;
        }
        write!(f, "  then: shut down if not yet, join the producers, spawn once more from outside (must be refused)")
    }
}

/// Where a job came from, for failure messages.
#[derive(Clone, Copy)]
enum Origin {
    Step(usize),
    Producer { step: usize, thread: usize, n: usize },
    Child { step: usize, parent: usize },
    Probe { n: usize },
    AfterProgram,
}

impl fmt::Debug for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Origin::Step(step) => write!(f, "step {step}"),
            Origin::Producer { step, thread, n } => write!(f, "step {step}, producer {thread}, job {n}"),
            Origin::Child { step, parent } => write!(f, "step {step}, child of job #{parent}"),
            Origin::Probe { n } => write!(f, "shutdown probe {n}"),
            Origin::AfterProgram => f.write_str("the spawn after the program"),
        }
    }
}

/// What the pool must do with a job.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Expect {
    Accept,
    Refuse(SpawnErrorKind),
    /// A producer racing the shutdown: accepted, or refused with
    /// `Shutdown` once the shutdown has begun.
    AcceptOrShutdown,
}

/// Everything known about one job.
struct Record {
    origin: Origin,
    expect: Expect,
    panics: bool,
    submitted: bool,
    /// `Ok` if the pool accepted it, the refusal's kind otherwise.
    verdict: Option<Result<(), SpawnErrorKind>>,
    runs: u32,
    dropped_unrun: u32,
    /// When refused: the closure came back having neither run nor been dropped.
    handed_back_intact: bool,
    /// When refused: the test had already begun the shutdown.
    refused_after_shutdown_began: bool,
}

#[derive(Default)]
struct Ledger {
    records: Mutex<Vec<Record>>,
    /// Set by the test thread just before it shuts the pool down.
    shutdown_began: AtomicBool,
    /// Set by the test thread once the shutdown has returned.
    shutdown_done: AtomicBool,
    /// Opened once intake has closed: a probe's spawn was refused.
    closed: Latch,
    /// Handles of every accepted submit, with the job's id.
    handles: Mutex<Vec<(usize, JobHandle<usize>)>>,
    /// Messages of the payloads the panic handler received.
    handler_payloads: Mutex<Vec<String>>,
    /// Rule breaks seen while the program ran.
    notes: Mutex<Vec<String>>,
    /// Jobs registered, run or dropped unrun so far: what a
    /// [`stall_watchdog`] watches.
    events: AtomicUsize,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

/// Carried inside every job: records the run, or a drop without a run.
struct Ticket {
    id: usize,
    ledger: Arc<Ledger>,
    punched: bool,
}

impl Ticket {
    /// Records that the job runs; returns its id.
    fn punch(mut self) -> usize {
        self.punched = true;
        self.ledger.events.fetch_add(1, Ordering::Relaxed);
        lock(&self.ledger.records)[self.id].runs += 1;
        self.id
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        if !self.punched {
            self.ledger.events.fetch_add(1, Ordering::Relaxed);
            lock(&self.ledger.records)[self.id].dropped_unrun += 1;
        }
    }
}

impl Ledger {
    fn register(self: &Arc<Self>, origin: Origin, expect: Expect, panics: bool, submitted: bool) -> Ticket {
        self.events.fetch_add(1, Ordering::Relaxed);
        let mut records = lock(&self.records);
        records.push(Record {
            origin,
            expect,
            panics,
            submitted,
            verdict: None,
            runs: 0,
            dropped_unrun: 0,
            handed_back_intact: false,
            refused_after_shutdown_began: false,
        });
        Ticket { id: records.len() - 1, ledger: Arc::clone(self), punched: false }
    }

    /// Records the pool's answer for job `id`. A refused closure is taken
    /// back with `into_inner`, checked to be intact, and dropped (which its
    /// ticket records).
    fn settle<T, F>(&self, id: usize, answer: Result<T, SpawnError<F>>) -> Option<T> {
        match answer {
            Ok(value) => {
                lock(&self.records)[id].verdict = Some(Ok(()));
                Some(value)
            }
            Err(error) => {
                let began = self.shutdown_began.load(Ordering::SeqCst);
                let kind = error.kind();
                let job = error.into_inner();
                {
                    let mut records = lock(&self.records);
                    let record = &mut records[id];
                    record.verdict = Some(Err(kind));
                    record.refused_after_shutdown_began = began;
                    record.handed_back_intact = record.runs == 0 && record.dropped_unrun == 0;
                }
                drop(job);
                None
            }
        }
    }

    fn note(&self, note: String) {
        lock(&self.notes).push(note);
    }
}

/// What jobs and producer threads need to spawn more jobs.
#[derive(Clone)]
struct Ctx {
    ledger: Arc<Ledger>,
    spawner: Spawner,
    levels: usize,
}

impl Ctx {
    /// Spawns a job that captures `N` bytes of ballast; true if accepted.
    fn spawn_plain<const N: usize>(&self, origin: Origin, expect: Expect, level: usize) -> bool {
        let ticket = self.ledger.register(origin, expect, false, false);
        let id = ticket.id;
        let ballast = [0u8; N];
        let answer = self.spawner.spawn(Priority::level(level), move || {
            black_box(&ballast);
            ticket.punch();
        });
        self.ledger.settle(id, answer).is_some()
    }

    /// Submits a job that captures `N` bytes of ballast; true if accepted.
    fn submit_plain<const N: usize>(&self, origin: Origin, expect: Expect, level: usize) -> bool {
        let ticket = self.ledger.register(origin, expect, false, true);
        let id = ticket.id;
        let ballast = [0u8; N];
        let answer = self.spawner.submit(Priority::level(level), move || {
            black_box(&ballast);
            ticket.punch()
        });
        self.keep_handle(id, answer)
    }

    /// Job `n` of a producer thread that may race the shutdown: a spawn
    /// when `n` is even, a submit when odd. Notes a rule break if the job
    /// is accepted although the shutdown had already returned.
    fn produce<const N: usize>(&self, origin: Origin, level: usize, n: usize) -> bool {
        let after_shutdown = self.ledger.shutdown_done.load(Ordering::SeqCst);
        let accepted = if n.is_multiple_of(2) {
            self.spawn_plain::<N>(origin, Expect::AcceptOrShutdown, level)
        } else {
            self.submit_plain::<N>(origin, Expect::AcceptOrShutdown, level)
        };
        if accepted && after_shutdown {
            self.ledger.note(format!("{origin:?}: accepted after the shutdown had returned"));
        }
        accepted
    }

    fn keep_handle<F>(&self, id: usize, answer: Result<JobHandle<usize>, SpawnError<F>>) -> bool {
        match self.ledger.settle(id, answer) {
            Some(handle) => {
                lock(&self.ledger.handles).push((id, handle));
                true
            }
            None => false,
        }
    }
}

/// A job of a tree: runs, then spawns `fanout` children from inside the
/// pool, each one level further (wrapping), alternating spawn and submit.
fn tree_job(
    ctx: Ctx,
    ticket: Ticket,
    step: usize,
    level: usize,
    depth: u32,
    fanout: usize,
) -> Box<dyn FnOnce() + Send> {
    Box::new(move || {
        let parent = ticket.punch();
        if depth == 0 {
            return;
        }
        for c in 0..fanout {
            let child_level = (level + c + 1) % ctx.levels;
            let submitted = c % 2 == 1;
            let origin = Origin::Child { step, parent };
            let child_ticket = ctx.ledger.register(origin, Expect::Accept, false, submitted);
            let id = child_ticket.id;
            let child = tree_job(ctx.clone(), child_ticket, step, child_level, depth - 1, fanout);
            let priority = Priority::level(child_level);
            if submitted {
                ctx.keep_handle(
                    id,
                    ctx.spawner.submit(priority, move || {
                        child();
                        id
                    }),
                );
            } else {
                ctx.ledger.settle(id, ctx.spawner.spawn(priority, child));
            }
        }
    })
}

/// A producer thread: spawns and submits `jobs` jobs, and notes it if it is
/// ever accepted again after a refusal (intake must not reopen).
fn producer(ctx: Ctx, start: Arc<Barrier>, step: usize, thread: usize, jobs: usize) {
    start.wait();
    let mut refused_at = None;
    for n in 0..jobs {
        let origin = Origin::Producer { step, thread, n };
        let level = (thread + n) % ctx.levels;
        let accepted = ctx.produce::<0>(origin, level, n);
        match (accepted, refused_at) {
            (true, Some(earlier)) => ctx
                .ledger
                .note(format!("step {step}, producer {thread}: job {n} accepted after job {earlier} was refused")),
            (false, None) => refused_at = Some(n),
            _ => {}
        }
    }
}

/// Shuts `pool` down (or drops it) while a probe thread spawns from outside
/// until it is refused, then opens `ledger.closed` so that the waiting
/// `DrainTree` roots grow their trees during the drain.
fn shut_down(ctx: &Ctx, pool: Pool, by_drop: bool) {
    ctx.ledger.shutdown_began.store(true, Ordering::SeqCst);
    let probe = {
        let ctx = ctx.clone();
        thread::Builder::new()
            .name("shutdown probe".into())
            .spawn(move || {
                for n in 0.. {
                    if !ctx.produce::<0>(Origin::Probe { n }, ctx.levels - 1, n) {
                        break;
                    }
                    thread::yield_now();
                }
                ctx.ledger.closed.open();
            })
            .expect("the OS refused to start the probe thread")
    };
    if by_drop {
        drop(pool);
    } else {
        pool.shutdown();
    }
    ctx.ledger.shutdown_done.store(true, Ordering::SeqCst);
    if let Err(payload) = probe.join() {
        std::panic::resume_unwind(payload);
    }
}

/// Runs `program` and checks the ledger.
fn run(program: Program) -> Result<(), TestCaseError> {
    quiet_intentional_panics();
    let Program { workers, levels, ref steps } = program;
    let ledger = Arc::new(Ledger::default());
    let pool = Pool::builder()
        .workers(workers)
        .levels(levels)
        .panic_handler({
            let ledger = Arc::clone(&ledger);
            move |payload| {
                let text = message(payload.as_ref()).unwrap_or("<non-string payload>").to_owned();
                lock(&ledger.handler_payloads).push(text);
            }
        })
        .build()
        .expect("build");
    let ctx = Ctx { ledger: Arc::clone(&ledger), spawner: pool.spawner(), levels };
    let mut pool = Some(pool);
    let mut producers = Vec::new();

    for (step, action) in steps.iter().enumerate() {
        let origin = Origin::Step(step);
        let expect = if pool.is_some() { Expect::Accept } else { Expect::Refuse(SpawnErrorKind::Shutdown) };
        match *action {
            Step::Spawn { level } => {
                ctx.spawn_plain::<0>(origin, expect, level);
            }
            Step::Submit { level, drop_handle: false } => {
                ctx.submit_plain::<0>(origin, expect, level);
            }
            Step::Submit { level, drop_handle: true } => {
                let ticket = ledger.register(origin, expect, false, true);
                let id = ticket.id;
                let answer = ctx.spawner.submit(Priority::level(level), move || ticket.punch());
                drop(ledger.settle(id, answer));
            }
            Step::Panic { level, submit } => {
                let ticket = ledger.register(origin, expect, true, submit);
                let id = ticket.id;
                let priority = Priority::level(level);
                if submit {
                    let answer = ctx.spawner.submit(priority, move || -> usize {
                        let id = ticket.punch();
                        panic!("{MARKER}: job {id}")
                    });
                    ctx.keep_handle(id, answer);
                } else {
                    let answer = ctx.spawner.spawn(priority, move || {
                        let id = ticket.punch();
                        panic!("{MARKER}: job {id}")
                    });
                    ledger.settle(id, answer);
                }
            }
            Step::Nested { level, depth, fanout } => {
                let ticket = ledger.register(origin, expect, false, false);
                let id = ticket.id;
                let job = tree_job(ctx.clone(), ticket, step, level, depth, fanout);
                ledger.settle(id, ctx.spawner.spawn(Priority::level(level), job));
            }
            Step::DrainTree { level, depth, fanout } => {
                let ticket = ledger.register(origin, expect, false, false);
                let id = ticket.id;
                let tree = tree_job(ctx.clone(), ticket, step, level, depth, fanout);
                let closed = ledger.closed.clone();
                let job = move || {
                    closed.wait();
                    tree();
                };
                ledger.settle(id, ctx.spawner.spawn(Priority::level(level), job));
            }
            Step::Producers { threads, jobs } => {
                // The test thread waits at the start line too, so the
                // producers are spawning while the next steps run.
                let start = Arc::new(Barrier::new(threads + 1));
                for thread in 0..threads {
                    let (ctx, start) = (ctx.clone(), Arc::clone(&start));
                    producers.push(
                        thread::Builder::new()
                            .name(format!("producer {step}.{thread}"))
                            .spawn(move || producer(ctx, start, step, thread, jobs))
                            .expect("the OS refused to start a producer thread"),
                    );
                }
                start.wait();
            }
            Step::BadLevel { level } => {
                let expect = Expect::Refuse(SpawnErrorKind::UnknownLevel { level, levels });
                ctx.spawn_plain::<0>(origin, expect, level);
            }
            Step::Shutdown { by_drop } => {
                if let Some(pool) = pool.take() {
                    shut_down(&ctx, pool, by_drop);
                }
            }
        }
    }
    if let Some(pool) = pool.take() {
        shut_down(&ctx, pool, false);
    }
    for producer in producers {
        if let Err(payload) = producer.join() {
            std::panic::resume_unwind(payload);
        }
    }
    // However the program went, the pool is shut down now: a spawn from
    // outside must be refused and handed back.
    ctx.spawn_plain::<0>(Origin::AfterProgram, Expect::Refuse(SpawnErrorKind::Shutdown), levels - 1);

    check(&ledger)
}

/// Checks every record, every handle and the panic handler's payloads.
fn check(ledger: &Ledger) -> Result<(), TestCaseError> {
    let mut problems = Vec::new();
    problems.append(&mut lock(&ledger.notes));

    // Join every handle. The pool is shut down, so every accepted job has
    // run and no join blocks.
    let handles = std::mem::take(&mut *lock(&ledger.handles));
    for (id, handle) in handles {
        let panics = lock(&ledger.records)[id].panics;
        match (handle.join(), panics) {
            (Ok(value), false) if value == id => {}
            (Ok(value), _) => problems.push(format!("job #{id}: handle gave Ok({value})")),
            (Err(JobError::Panicked(payload)), true) => {
                let payload = payload.into_inner();
                let expected = format!("{MARKER}: job {id}");
                if message(payload.as_ref()) != Some(expected.as_str()) {
                    problems.push(format!("job #{id}: handle gave the wrong panic payload {:?}", message(&*payload)));
                }
            }
            (Err(error), _) => problems.push(format!("job #{id}: handle gave {error:?}")),
        }
    }

    let records = lock(&ledger.records);
    for (id, r) in records.iter().enumerate() {
        let mut fail =
            |what: String| problems.push(format!("job #{id} ({:?}, expected {:?}): {what}", r.origin, r.expect));
        match r.verdict {
            None => fail("the pool never answered".into()),
            Some(Ok(())) => {
                if let Expect::Refuse(kind) = r.expect {
                    fail(format!("accepted, but should have been refused with {kind:?}"));
                }
                if r.runs != 1 || r.dropped_unrun != 0 {
                    fail(format!(
                        "accepted, then ran {} times and was dropped unrun {} times",
                        r.runs, r.dropped_unrun
                    ));
                }
            }
            Some(Err(kind)) => {
                match r.expect {
                    Expect::Accept => fail(format!("refused with {kind:?}")),
                    Expect::Refuse(want) if want != kind => fail(format!("refused with {kind:?}")),
                    Expect::AcceptOrShutdown if kind != SpawnErrorKind::Shutdown => {
                        fail(format!("refused with {kind:?}"))
                    }
                    Expect::AcceptOrShutdown if !r.refused_after_shutdown_began => {
                        fail("refused with Shutdown before the shutdown began".into())
                    }
                    _ => {}
                }
                if !r.handed_back_intact || r.runs != 0 || r.dropped_unrun != 1 {
                    fail(format!(
                        "refused, but the closure was not handed back intact (intact: {}, runs: {}, drops unrun: {})",
                        r.handed_back_intact, r.runs, r.dropped_unrun
                    ));
                }
            }
        }
    }

    // The panic handler got the payload of exactly the accepted panicking spawns.
    let mut expected: Vec<String> = records
        .iter()
        .enumerate()
        .filter(|(_, r)| r.panics && !r.submitted && r.verdict == Some(Ok(())))
        .map(|(id, _)| format!("{MARKER}: job {id}"))
        .collect();
    let mut got = lock(&ledger.handler_payloads).clone();
    expected.sort();
    got.sort();
    if got != expected {
        problems.push(format!("the panic handler received {got:?}, expected {expected:?}"));
    }

    prop_assert!(problems.is_empty(), "{} problems:\n{}", problems.len(), problems.join("\n"));
    Ok(())
}

fn step(levels: usize) -> impl Strategy<Value = Step> {
    prop_oneof![
        4 => (0..levels).prop_map(|level| Step::Spawn { level }),
        3 => (0..levels, any::<bool>()).prop_map(|(level, drop_handle)| Step::Submit { level, drop_handle }),
        2 => (0..levels, any::<bool>()).prop_map(|(level, submit)| Step::Panic { level, submit }),
        2 => (0..levels, 0..=3u32, 1..=3usize).prop_map(|(level, depth, fanout)| Step::Nested { level, depth, fanout }),
        1 => (0..levels, 0..=3u32, 1..=3usize).prop_map(|(level, depth, fanout)| Step::DrainTree { level, depth, fanout }),
        2 => (1..=4usize, 1..=48usize).prop_map(|(threads, jobs)| Step::Producers { threads, jobs }),
        1 => (levels..levels + 3).prop_map(|level| Step::BadLevel { level }),
        1 => any::<bool>().prop_map(|by_drop| Step::Shutdown { by_drop }),
    ]
}

fn program() -> impl Strategy<Value = Program> {
    (1..=4usize, 1..=4usize).prop_flat_map(|(workers, levels)| {
        prop::collection::vec(step(levels), 1..24).prop_map(move |steps| Program { workers, levels, steps })
    })
}

proptest! {
    #![proptest_config(common::case_config(256))]

    #[test]
    fn every_accepted_job_runs_once_and_every_refused_job_comes_back(program in program()) {
        watchdog("a generated program", CASE_BOUND, move || run(program))?;
    }
}

/// Shutdown racing producers, made certain: in every round the producers
/// are known to be spawning (each has had a job accepted) when the pool
/// shuts down, and each keeps spawning until it is refused.
#[test]
fn shutdown_racing_producers_loses_nothing() {
    const ROUNDS: usize = 100;
    for round in 0..ROUNDS {
        // A round takes milliseconds, but its producers spawn until they are
        // refused, so a starved test thread lets them queue without bound:
        // the watchdog fails a round only when its ledger stops moving.
        let ledger = Arc::new(Ledger::default());
        let watched = Arc::clone(&ledger);
        stall_watchdog(
            &format!("shutdown racing producers, round {round}"),
            move || watched.events.load(Ordering::Relaxed),
            move || race_round(round, ledger),
        );
    }
}

/// One round of [`shutdown_racing_producers_loses_nothing`].
fn race_round(round: usize, ledger: Arc<Ledger>) {
    const PRODUCERS: usize = 3;
    // Calling a boxed job copies it to the worker's stack.
    let pool = Pool::builder().workers(1 + round % 3).levels(2).stack_size(32 << 20).build().expect("build");
    let ctx = Ctx { ledger: Arc::clone(&ledger), spawner: pool.spawner(), levels: 2 };
    let (running_tx, running_rx) = mpsc::channel();
    let producers: Vec<_> = (0..PRODUCERS)
        .map(|thread| {
            let (ctx, running_tx) = (ctx.clone(), running_tx.clone());
            let producer = thread::Builder::new().name(format!("producer {thread}")).stack_size(32 << 20);
            producer
                .spawn(move || {
                    // Ends at the first refusal, or at the first job accepted
                    // after the shutdown returned (a rule break the ledger
                    // notes).
                    for n in 0.. {
                        let origin = Origin::Producer { step: round, thread, n };
                        let after_shutdown = ctx.ledger.shutdown_done.load(Ordering::SeqCst);
                        if !ctx.produce::<BALLAST>(origin, (thread + n) % 2, n) || after_shutdown {
                            return;
                        }
                        if n == 0 {
                            running_tx.send(()).expect("the test thread is gone");
                        }
                    }
                })
                .expect("the OS refused to start a producer thread")
        })
        .collect();
    for _ in 0..PRODUCERS {
        running_rx.recv().expect("a producer died before its first job");
    }
    shut_down(&ctx, pool, round % 2 == 1);
    for producer in producers {
        producer.join().expect("a producer panicked");
    }
    check(&ledger).unwrap_or_else(|e| panic!("round {round}: {e}"));
}
