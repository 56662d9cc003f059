//! priopool against its peers, every scenario in one run: one table of
//! figures, and one of priopool's paired ratios for A, B and F.
//!
//! ```text
//! cargo bench --bench compare                              # full run
//! PRIOPOOL_BENCH_QUICK=1 cargo bench --bench compare       # smoke sizes
//! PRIOPOOL_BENCH_SCENARIOS=CE cargo bench --bench compare  # only C and E
//! ```
//!
//! Scenarios (sizes are the full ones; quick mode shrinks them):
//!
//! - **A** one outside thread spawns 500,000 empty jobs; time until the last
//!   has run (a static count-down latch, no sleeps). Jobs per second. Twice:
//!   closures that capture nothing, handed to each pool's API generically,
//!   and jobs the caller has already boxed (`Box<dyn FnOnce() + Send>`, one
//!   allocation each), handed over with `Spawn::spawn_boxed`.
//! - **B** a binary tree of jobs spawned from inside the pool, 2^18 leaves
//!   (2^19 - 1 jobs). Jobs per second. Twice, as A: generic and boxed.
//! - **C** 20,000 low jobs of ~20 µs of spinning are queued, then another
//!   thread spawns 100 high jobs 1 ms apart. Start latency of the high
//!   jobs (p50, p99, max, via `hdrhistogram`), beside two floors computed
//!   from the low jobs actually run: the expected residual L/2 of a running
//!   low job seen at a random instant (L = their mean measured length), and
//!   an oracle: for each high spawn, how long until the first worker busy
//!   with a low job at that instant would have been free.
//! - **D** CPU time the whole process burns in the second after a burst of
//!   work (a 200,000-job A) ends, from `/proc/self/task/*/schedstat`
//!   (per thread, so a thread of an earlier pool exiting meanwhile does
//!   not skew it). The same window with no pool alive is printed as the floor.
//! - **E** resident bytes per queued empty job: every worker is held in a
//!   gate job, 1,000,000 jobs are queued, and RSS (`/proc/self/statm`) is
//!   read before and after. Each pool runs this in a fresh child process so
//!   the allocator starts clean.
//! - **F** A and B (generic jobs) again with 1, 2, 4 and 8 workers.
//! - **R** one outside thread runs 20,000 empty jobs one at a time, each
//!   queued and waited for the pool's way (`Spawn::round_trip`: priopool's
//!   `submit` + `join`; the others reply on a one-shot channel). Median
//!   round trip.
//!
//! A, B and F start every pool, then run them in turn, one run each per
//! round, for 9 rounds (quick mode: 3) after an untimed warm-up round, and
//! report each pool's median (the spread goes to stderr). This machine is
//! shared and its speed changes from one second to the next by up to 2×:
//! run one pool after the other and a pool is measured in a fast spell and
//! its peer in a slow one; interleaved, every pool sees the same spells. A
//! second table gives, per cell and peer, the median over the rounds of
//! priopool's rate over the peer's in the same round. C, D, E and R
//! run once per peer after them. Every pool gets the same number of
//! workers: the number of CPUs, except in F. The summary table prints each
//! figure with its ratio to the best peer of the same run.
//!
//! Without `--bench` (e.g. `cargo test --benches`) every scenario runs once
//! (A, B and F: one round, no warm-up), at the quick sizes, and this file
//! writes no PNG.

mod peers;
mod support;

use std::env;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::thread;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use peers::{Level, NAMES, Peer, Spawn, Visit, visit_all};
use support::bulk::{Bulk, run_a};
use support::latch::{CountLatch, Gate};
use support::plot::{self, Bars};
use support::procfs;
use support::report::{Better, Report};
use support::roundtrip;

/// Set (by the parent) in the environment of an E child process.
const E_CHILD: &str = "PRIOPOOL_BENCH_E_CHILD";

/// Every size and time the scenarios use.
#[derive(Clone, Copy)]
struct Sizes {
    a_jobs: usize,
    b_depth: u32,
    c_low: usize,
    c_high: usize,
    c_low_len: Duration,
    c_gap: Duration,
    d_burst: usize,
    d_window: Duration,
    e_jobs: usize,
    r_trips: usize,
    /// Timed rounds of A, B and F, after one untimed warm-up round.
    rounds: usize,
}

impl Sizes {
    fn new(quick: bool) -> Self {
        if quick {
            Sizes {
                a_jobs: 20_000,
                b_depth: 12,
                c_low: 2_000,
                c_high: 10,
                c_low_len: Duration::from_micros(20),
                c_gap: Duration::from_millis(1),
                d_burst: 20_000,
                d_window: Duration::from_millis(200),
                e_jobs: 50_000,
                r_trips: 2_000,
                rounds: 3,
            }
        } else {
            Sizes {
                a_jobs: 500_000,
                b_depth: 18,
                c_low: 20_000,
                c_high: 100,
                c_low_len: Duration::from_micros(20),
                c_gap: Duration::from_millis(1),
                d_burst: 200_000,
                d_window: Duration::from_secs(1),
                e_jobs: 1_000_000,
                r_trips: 20_000,
                rounds: 9,
            }
        }
    }

    fn b_jobs(&self) -> usize {
        (1usize << (self.b_depth + 1)) - 1
    }
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

// ---------------------------------------------------------------- A and B

/// A pool started for one bulk cell and run once per round.
trait Live {
    fn name(&self) -> &'static str;
    fn run(&self, bulk: Bulk) -> Duration;
    fn shutdown(self: Box<Self>);
}

struct Started<P: Peer>(P);

impl<P: Peer> Live for Started<P> {
    fn name(&self) -> &'static str {
        P::NAME
    }

    fn run(&self, bulk: Bulk) -> Duration {
        bulk.run(&self.0)
    }

    fn shutdown(self: Box<Self>) {
        self.0.shutdown();
    }
}

/// Starts every peer with the same number of workers.
struct StartAll {
    workers: usize,
    pools: Vec<Box<dyn Live>>,
}

impl Visit for StartAll {
    fn visit<P: Peer>(&mut self) {
        self.pools.push(Box::new(Started(P::start(self.workers))));
    }
}

/// Runs `bulk` on every peer, interleaved: all pools are started, then
/// each round runs each pool once, the round's first pool moving on by one
/// each round and every other round in reverse order, so that a slow or fast spell of this shared machine falls on
/// every pool alike. One untimed round first (when `warm_up`) starts the
/// threads and touches the memory. Returns every peer's timed runs.
fn interleaved(bulk: Bulk, workers: usize, rounds: usize, warm_up: bool) -> Vec<(&'static str, Vec<Duration>)> {
    let mut all = StartAll { workers, pools: Vec::new() };
    visit_all(&mut all);
    let pools = all.pools;
    let n = pools.len();
    let mut runs = vec![Vec::with_capacity(rounds); n];
    for round in usize::from(!warm_up)..=rounds {
        for k in 0..n {
            // Backwards on odd rounds: no pool always follows the same one
            // (whatever a pool's workers still do after its run lands on
            // the next).
            let i = if round % 2 == 0 { (round + k) % n } else { (round + n - k) % n };
            let took = pools[i].run(bulk);
            if round > 0 {
                runs[i].push(took);
            }
        }
    }
    let names: Vec<&'static str> = pools.iter().map(|p| p.name()).collect();
    for pool in pools {
        pool.shutdown();
    }
    names.into_iter().zip(runs).collect()
}

/// A row of the paired table: the figure without its unit.
fn paired_label(label: &str) -> String {
    label.trim_end_matches(", Mjobs/s").to_string()
}

fn median_f64(mut v: Vec<f64>) -> Option<f64> {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied()
}

fn median(mut v: Vec<Duration>) -> Option<Duration> {
    v.sort();
    v.get(v.len() / 2).copied()
}

fn label_a(s: &Sizes, boxed: bool) -> String {
    let how = if boxed { "boxed jobs" } else { "jobs" };
    format!("A  {} {how} spawned from outside, Mjobs/s", s.a_jobs)
}

fn label_b(s: &Sizes, boxed: bool) -> String {
    let how = if boxed { ", boxed jobs" } else { "" };
    format!("B  fan-out tree, 2^{} leaves{how}, Mjobs/s", s.b_depth)
}

fn label_f(bulk: Bulk, workers: usize) -> String {
    let which = match bulk {
        Bulk::A(..) => "A",
        Bulk::B(..) => "B",
    };
    format!("F  {which} with {workers} worker{}, Mjobs/s", if workers == 1 { "" } else { "s" })
}

/// A, B and F, interleaved (see [`interleaved`]); medians go into the
/// report, and each cell's spread to stderr as it ends.
/// `paired` gets, per cell and peer, the median over rounds of priopool's
/// rate divided by the peer's in the same round.
fn bulk_scenarios(s: &Sizes, workers: usize, only: &str, test_mode: bool, report: &mut Report, paired: &mut Report) {
    let mut counts = vec![1, 2, 4, 8, workers];
    counts.sort_unstable();
    counts.dedup();
    let bulks = [
        ('A', Bulk::A(s.a_jobs, false), s.a_jobs),
        ('A', Bulk::A(s.a_jobs, true), s.a_jobs),
        ('B', Bulk::B(s.b_depth, false), s.b_jobs()),
        ('B', Bulk::B(s.b_depth, true), s.b_jobs()),
    ];
    // `cargo test --benches`: one round, no warm-up.
    let rounds = if test_mode { 1 } else { s.rounds };
    for (letter, bulk, jobs) in bulks {
        let boxed = matches!(bulk, Bulk::A(_, true) | Bulk::B(_, true));
        for &w in &counts {
            let main_row = w == workers && only.contains(letter);
            // F repeats the unboxed jobs only.
            let f_row = only.contains('F') && !boxed;
            if !main_row && !f_row {
                continue;
            }
            let suffix = if boxed { "-boxed" } else { "" };
            eprint!("{letter}{suffix}/{w}w, {rounds} rounds:");
            // The rows this cell fills: its main row, its F row, or both.
            let mut rows = Vec::new();
            if main_row {
                rows.push(if letter == 'A' { label_a(s, boxed) } else { label_b(s, boxed) });
            }
            if f_row {
                rows.push(label_f(bulk, w));
            }
            let runs = interleaved(bulk, w, rounds, !test_mode);
            let ours = runs.iter().find(|(name, _)| *name == NAMES[0]).map(|(_, times)| times.clone());
            for (name, times) in runs {
                let paired_ratio = ours.as_ref().and_then(|ours| {
                    median_f64(
                        times
                            .iter()
                            .zip(ours)
                            .map(|(theirs, ours)| theirs.as_secs_f64() / ours.as_secs_f64())
                            .collect(),
                    )
                });
                let rate = |d: Duration| jobs as f64 / d.as_secs_f64() / 1e6;
                let (Some(&fastest), Some(&slowest)) = (times.iter().min(), times.iter().max()) else { continue };
                let Some(m) = median(times) else { continue };
                let mjobs = rate(m);
                eprint!("  {name} {mjobs:.2} ({:.2}-{:.2})", rate(slowest), rate(fastest));
                for row in &rows {
                    report.set(row, Better::Higher, name, mjobs);
                    if let Some(r) = paired_ratio {
                        paired.set(&paired_label(row), Better::Neither, name, r);
                    }
                }
            }
            eprintln!();
        }
    }
}

// ---------------------------------------------------------------------- C

/// What one peer did in scenario C, in nanoseconds.
struct Flood {
    /// Start latency of each high job.
    latency: Vec<u64>,
    /// Half the mean length of the low jobs that ran: the expected time
    /// left on a job of length L seen at a random instant is L/2.
    residual: f64,
    /// Per high job: time from its spawn until the first worker busy with
    /// a low job at that instant finished it (0 if a worker was free).
    oracle: Vec<u64>,
    /// How long each high job's spawn call took (part of its latency).
    spawn_call: Vec<u64>,
}

fn spin_for(d: Duration) {
    let start = Instant::now();
    while start.elapsed() < d {
        std::hint::spin_loop();
    }
}

fn run_c<P: Peer>(workers: usize, s: &Sizes) -> Flood {
    let pool = P::start(workers);
    let h = pool.handle();
    let base = Instant::now();
    // (start, end) of each low job, in ns since `base`.
    let spans: Arc<[[AtomicU64; 2]]> = (0..s.c_low).map(|_| [AtomicU64::new(0), AtomicU64::new(0)]).collect();
    let latency: Arc<[AtomicU64]> = (0..s.c_high).map(|_| AtomicU64::new(0)).collect();
    let done = Arc::new(CountLatch::new());
    done.reset(s.c_low + s.c_high);

    let len = s.c_low_len;
    for i in 0..s.c_low {
        let (spans, done) = (Arc::clone(&spans), Arc::clone(&done));
        h.spawn(Level::Low, move || {
            let start = base.elapsed();
            spin_for(len);
            let end = base.elapsed();
            spans[i][0].store(nanos(start), Relaxed);
            spans[i][1].store(nanos(end), Relaxed);
            done.count_down();
        });
    }

    let submitter = {
        let (h, latency, done) = (h.clone(), Arc::clone(&latency), Arc::clone(&done));
        let (n, gap) = (s.c_high, s.c_gap);
        thread::Builder::new()
            .name("c-submitter".into())
            .spawn(move || {
                let first = Instant::now();
                let mut spawned_at = Vec::with_capacity(n);
                let mut spawn_call = Vec::with_capacity(n);
                for i in 0..n {
                    let due = first + gap * i as u32;
                    if let Some(wait) = due.checked_duration_since(Instant::now()) {
                        thread::sleep(wait);
                    }
                    let (latency, done) = (Arc::clone(&latency), Arc::clone(&done));
                    let at = Instant::now();
                    spawned_at.push(nanos(at - base));
                    h.spawn(Level::High, move || {
                        latency[i].store(nanos(at.elapsed()), Relaxed);
                        done.count_down();
                    });
                    spawn_call.push(nanos(at.elapsed()));
                }
                (spawned_at, spawn_call)
            })
            .expect("spawn the C submitter thread")
    };
    let (spawned_at, spawn_call) = submitter.join().expect("C submitter panicked");
    // The latch's AcqRel/mutex chain makes every Relaxed store above visible.
    done.wait();
    drop(h);
    pool.shutdown();

    let spans: Vec<(u64, u64)> = spans.iter().map(|[a, b]| (a.load(Relaxed), b.load(Relaxed))).collect();
    let total: f64 = spans.iter().map(|&(a, b)| b.saturating_sub(a) as f64).sum();
    let oracle = spawned_at
        .iter()
        .map(|&t| {
            let busy = spans.iter().filter(|&&(a, b)| a <= t && t < b);
            let (count, first_free) = busy.fold((0, u64::MAX), |(n, m), &(_, b)| (n + 1, m.min(b)));
            if count < workers { 0 } else { first_free - t }
        })
        .collect();
    Flood {
        latency: latency.iter().map(|a| a.load(Relaxed)).collect(),
        residual: total / spans.len().max(1) as f64 / 2.0,
        oracle,
        spawn_call,
    }
}

struct FloodAll<'a> {
    sizes: &'a Sizes,
    workers: usize,
    out: Vec<(&'static str, Flood)>,
}

impl Visit for FloodAll<'_> {
    fn visit<P: Peer>(&mut self) {
        eprintln!("C: {}", P::NAME);
        self.out.push((P::NAME, run_c::<P>(self.workers, self.sizes)));
    }
}

fn percentiles(ns: &[u64]) -> (f64, f64, f64) {
    let mut h = Histogram::<u64>::new_with_bounds(1, 3_600_000_000_000, 3).expect("histogram bounds");
    for &v in ns {
        h.record(v.max(1)).expect("latency within an hour");
    }
    let us = |v: u64| v as f64 / 1e3;
    (us(h.value_at_quantile(0.50)), us(h.value_at_quantile(0.99)), us(h.max()))
}

fn flood_scenario(s: &Sizes, workers: usize, report: &mut Report, png: Option<&std::path::Path>) {
    let mut all = FloodAll { sizes: s, workers, out: Vec::new() };
    visit_all(&mut all);
    let mut bars = Vec::new();
    let mut floors = Vec::new();
    for (name, f) in &all.out {
        let (p50, p99, max) = percentiles(&f.latency);
        if let Some((i, ns)) = f.latency.iter().enumerate().max_by_key(|&(_, ns)| *ns) {
            eprintln!(
                "C: {name}: slowest high job is #{i} of {}, {:.1} µs, of which its spawn call {:.1} µs",
                f.latency.len(),
                *ns as f64 / 1e3,
                f.spawn_call[i] as f64 / 1e3
            );
        }
        let (oracle50, _, _) = percentiles(&f.oracle);
        report.set("C  high-job start p50, µs", Better::Lower, name, p50);
        report.set("C  high-job start p99, µs", Better::Lower, name, p99);
        report.set("C  high-job start max, µs", Better::Lower, name, max);
        report.set("C  floor: residual L/2 of a low job, µs", Better::Neither, name, f.residual / 1e3);
        report.set("C  floor: oracle p50, µs", Better::Neither, name, oracle50);
        floors.push(f.residual / 1e3);
        bars.push(Bars { name, p50, p99, max });
    }
    let Some(path) = png else { return };
    floors.sort_by(f64::total_cmp);
    let floor = floors.get(floors.len() / 2).copied().unwrap_or(0.0);
    let title = format!(
        "C: start latency of {} high jobs behind {} low jobs of {} µs, {workers} workers",
        s.c_high,
        s.c_low,
        s.c_low_len.as_micros()
    );
    match plot::latency_png(path, &bars, floor, &title) {
        Ok(()) => eprintln!("C: plot written to {}", path.display()),
        Err(e) => eprintln!("C: no plot: {e}"),
    }
}

// ---------------------------------------------------------------------- D

const LABEL_D: &str = "D  CPU burnt in the 1 s after a burst, ms";

/// CPU the process burns over `window` while this thread sleeps, in ms per
/// second of wall time.
fn cpu_over(window: Duration) -> f64 {
    let (cpu0, t0) = (procfs::CpuSnapshot::take(), Instant::now());
    thread::sleep(window);
    let (cpu1, wall) = (procfs::CpuSnapshot::take(), t0.elapsed());
    cpu1.ns_since(&cpu0) as f64 / 1e6 / wall.as_secs_f64()
}

struct Afterburn<'a> {
    sizes: &'a Sizes,
    workers: usize,
    report: &'a mut Report,
}

impl Visit for Afterburn<'_> {
    fn visit<P: Peer>(&mut self) {
        let pool = P::start(self.workers);
        run_a(&pool, self.sizes.d_burst, false);
        let ms_per_s = cpu_over(self.sizes.d_window);
        pool.shutdown();
        eprintln!("D: {}: {ms_per_s:.3} ms of CPU per second", P::NAME);
        self.report.set(LABEL_D, Better::Lower, P::NAME, ms_per_s);
    }
}

// ---------------------------------------------------------------------- R

fn label_r(s: &Sizes) -> String {
    format!("R  submit + join round trip from outside (median of {} trips), µs", s.r_trips)
}

/// R: from one outside thread, one job at a time: queue it and wait for it
/// to have run, the pool's way (`Spawn::round_trip`); the median trip.
struct RoundTrips<'a> {
    sizes: &'a Sizes,
    workers: usize,
    report: &'a mut Report,
}

impl Visit for RoundTrips<'_> {
    fn visit<P: Peer>(&mut self) {
        let pool = P::start(self.workers);
        let h = pool.handle();
        for _ in 0..self.sizes.r_trips / 10 {
            h.round_trip();
        }
        let mut trips: Vec<Duration> = (0..self.sizes.r_trips)
            .map(|_| {
                let start = Instant::now();
                h.round_trip();
                start.elapsed()
            })
            .collect();
        drop(h);
        pool.shutdown();
        trips.sort_unstable();
        let us = trips[trips.len() / 2].as_secs_f64() * 1e6;
        eprintln!("R: {}: {us:.2} µs", P::NAME);
        self.report.set(&label_r(self.sizes), Better::Lower, P::NAME, us);
    }
}

// ---------------------------------------------------------------------- E

fn label_e(s: &Sizes) -> String {
    format!("E  RSS per queued empty job ({} queued), bytes", s.e_jobs)
}

/// Queues `jobs` empty jobs behind `workers` gated workers; returns RSS
/// before and after queueing.
fn run_e<P: Peer>(workers: usize, jobs: usize) -> (u64, u64) {
    let pool = P::start(workers);
    let h = pool.handle();
    let gate = Arc::new(Gate::new());
    for _ in 0..workers {
        let gate = Arc::clone(&gate);
        h.spawn(Level::High, move || gate.enter());
    }
    gate.wait_inside(workers);
    let before = procfs::rss_bytes();
    for _ in 0..jobs {
        h.spawn(Level::Low, || {});
    }
    let after = procfs::rss_bytes();
    gate.open();
    drop(h);
    pool.shutdown();
    (before, after)
}

/// Child side of E: runs one peer, prints `E-RESULT before after`.
struct OnePeer<'a> {
    name: &'a str,
    workers: usize,
    jobs: usize,
    found: bool,
}

impl Visit for OnePeer<'_> {
    fn visit<P: Peer>(&mut self) {
        if P::NAME == self.name {
            let (before, after) = run_e::<P>(self.workers, self.jobs);
            println!("E-RESULT {before} {after}");
            self.found = true;
        }
    }
}

fn e_child(spec: &str) {
    let mut parts = spec.split('|');
    let (Some(name), Some(jobs), Some(workers)) = (parts.next(), parts.next(), parts.next()) else {
        panic!("bad {E_CHILD}: {spec}");
    };
    let mut one = OnePeer {
        name,
        workers: workers.parse().expect("worker count"),
        jobs: jobs.parse().expect("job count"),
        found: false,
    };
    visit_all(&mut one);
    assert!(one.found, "unknown peer {name}");
}

fn memory_scenario(s: &Sizes, workers: usize, report: &mut Report) {
    let exe = env::current_exe().expect("path of this bench binary");
    for name in NAMES {
        let out = Command::new(&exe)
            .env(E_CHILD, format!("{name}|{}|{workers}", s.e_jobs))
            .stderr(Stdio::inherit())
            .output()
            .expect("run E child");
        let text = String::from_utf8_lossy(&out.stdout);
        let parsed = text.lines().find_map(|l| {
            let mut f = l.strip_prefix("E-RESULT ")?.split_whitespace();
            Some((f.next()?.parse::<u64>().ok()?, f.next()?.parse::<u64>().ok()?))
        });
        let Some((before, after)) = parsed else {
            eprintln!("E: {name}: child failed ({})", out.status);
            continue;
        };
        let per_job = after.saturating_sub(before) as f64 / s.e_jobs as f64;
        eprintln!("E: {name}: RSS {before} -> {after} bytes, {per_job:.1} bytes/job");
        report.set(&label_e(s), Better::Lower, name, per_job);
    }
}

// ------------------------------------------------------------------- main

fn main() {
    if let Ok(spec) = env::var(E_CHILD) {
        e_child(&spec);
        return;
    }
    let args: Vec<String> = env::args().collect();
    let has = |flag: &str| args.iter().any(|a| a == flag);
    // Without --bench (cargo test) it is a smoke test.
    let test_mode = !has("--bench") || has("--test");
    let quick = test_mode || env::var("PRIOPOOL_BENCH_QUICK").is_ok_and(|v| v == "1");
    let only = env::var("PRIOPOOL_BENCH_SCENARIOS").unwrap_or_else(|_| "ABCDEFR".into()).to_uppercase();
    let s = Sizes::new(quick);
    let workers = thread::available_parallelism().map_or(2, |n| n.get());

    let mut report = Report::new(&NAMES);
    for label in [label_a(&s, false), label_a(&s, true), label_b(&s, false), label_b(&s, true)] {
        report.declare(&label, Better::Higher);
    }

    // Other processes' load per part of the run, printed under the table.
    let mut loads: Vec<(&str, f64)> = Vec::new();
    let mut mark = procfs::LoadSnapshot::take();
    let mut note_load = |part: &'static str, loads: &mut Vec<(&str, f64)>| {
        let now = procfs::LoadSnapshot::take();
        loads.push((part, now.foreign_since(&mark)));
        mark = now;
    };

    if has("--list") {
        return;
    }
    // priopool against each of the others: its own column would read 1.00.
    let mut paired = Report::new(&NAMES[1..]);
    for label in [label_a(&s, false), label_a(&s, true), label_b(&s, false), label_b(&s, true)] {
        paired.declare(&paired_label(&label), Better::Neither);
    }
    bulk_scenarios(&s, workers, &only, test_mode, &mut report, &mut paired);
    if only.contains(['A', 'B', 'F']) {
        note_load("A/B/F", &mut loads);
    }

    if only.contains('C') {
        let png = if test_mode {
            None
        } else if quick {
            Some(concat!(env!("CARGO_MANIFEST_DIR"), "/../target/priopool-bench/bench-latency-quick.png"))
        } else {
            Some(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/bench-latency.png"))
        };
        flood_scenario(&s, workers, &mut report, png.map(std::path::Path::new));
        note_load("C", &mut loads);
    }
    let mut d_floor = None;
    if only.contains('D') {
        // The first window of a process reads high (first /proc reads and
        // the like): spend it on a short throwaway one.
        cpu_over(Duration::from_millis(100));
        d_floor = Some(cpu_over(s.d_window));
        visit_all(&mut Afterburn { sizes: &s, workers, report: &mut report });
        note_load("D", &mut loads);
    }
    if only.contains('E') {
        memory_scenario(&s, workers, &mut report);
        note_load("E", &mut loads);
    }
    if only.contains('R') {
        visit_all(&mut RoundTrips { sizes: &s, workers, report: &mut report });
        note_load("R", &mut loads);
    }

    report.prune();
    println!();
    println!(
        "{workers} workers per pool (F: as labelled); {} CPUs: {}; {} sizes",
        thread::available_parallelism().map_or(0, |n| n.get()),
        procfs::cpu_model().unwrap_or_else(|| "unknown".into()),
        if quick { "QUICK" } else { "full" }
    );
    println!("core-to-core round trip: {:.0} ns (median of 5 x 20,000 trips)", roundtrip::core_round_trip_ns());
    println!("cell = value (×ratio to the best peer in this row; ×1.00 = best, ×2.00 = half as good)");
    println!();
    print!("{}", report.markdown());
    paired.prune();
    if only.contains(['A', 'B', 'F']) {
        println!();
        println!(
            "A, B, F paired: priopool's rate over each peer's in the same round, median of the rounds (>1: priopool faster)"
        );
        println!();
        print!("{}", paired.markdown());
    }
    println!();
    println!(
        "C: {} low jobs of {} µs, then {} high jobs {} ms apart. D: after a {}-job A burst.",
        s.c_low,
        s.c_low_len.as_micros(),
        s.c_high,
        s.c_gap.as_millis(),
        s.d_burst,
    );
    if let Some(f) = d_floor {
        println!("D floor: the same window with no pool alive: {f:.3} ms of CPU per second.");
    }
    let loads: Vec<String> = loads.iter().map(|(part, share)| format!("{part} {:.0}%", share * 100.0)).collect();
    println!(
        "CPU taken by other processes (and steal) while each part ran, share of the machine: {}. \
         Above a few percent, the figures of that part are disturbed.",
        loads.join(", ")
    );
}
