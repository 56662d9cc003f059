//! Latency isolation: how long a HIGH job waits to start while every worker
//! is inside a long LOW job.
//!
//! ```text
//! cargo bench --bench isolation
//! PRIOPOOL_BENCH_QUICK=1 cargo bench --bench isolation   # smoke sizes
//! ```
//!
//! Two workers run LOW jobs of 2 ms of spinning, back to back: each LOW job
//! spawns the next before it ends, so the backlog never empties and every
//! worker is always inside one. Meanwhile a sampler thread spawns a HIGH job
//! every 1 to 3 ms (the gap varies, so that samples land at every phase of
//! a LOW job) and the HIGH job records how long after its spawn it started.
//! Rows:
//!
//! - `priopool`: two workers, no options: a HIGH job waits for a worker's
//!   LOW job to end (on average a third of its length, at worst all of it).
//! - `priopool+reserved`: plus `reserved_threads(1)` (the workers then run
//!   at nice +10, the default with reserved threads).
//! - `priopool+reserved, nice 0`: the same with `worker_nice(0)`, to show
//!   what the nice value adds.
//! - `two-channel`, `heap+condvar`: the textbook priority pools of
//!   `peers/` (`compare.rs` measures them too).
//! - `two-channel+reserved`: the two-channel pool plus one thread that
//!   takes only HIGH jobs, its workers at nice +10: the same idea built by
//!   hand.
//!
//! Prints the machine's core-to-core round trip, then p50, p99 and max in
//! µs for each row. The figures, with the
//! machine they were taken on: `docs/benchmarks.md`, "Latency isolation".

#[allow(dead_code)] // `compare.rs` uses every peer; this bench a few.
mod peers;
#[path = "support/roundtrip.rs"]
mod roundtrip;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, unbounded};
use hdrhistogram::Histogram;
use peers::heap_condvar::HeapCondvar;
use peers::priopool_peer::Priopool;
use peers::two_channel::TwoChannel;
use peers::{Job, Level, Peer, Spawn};
use priopool::{Pool, Priority, Spawner};

const WORKERS: usize = 2;
const LOW_JOB: Duration = Duration::from_millis(2);

/// Spins for `d`: a LOW job that holds its worker, as CPU-bound work does.
fn spin(d: Duration) {
    let start = Instant::now();
    while start.elapsed() < d {
        std::hint::spin_loop();
    }
}

/// A LOW job that spins, then queues its successor (unless stopping).
fn low_job<S: Spawn>(spawner: S, stop: Arc<AtomicBool>) -> impl FnOnce() + Send + 'static {
    move || {
        if !stop.load(Ordering::Relaxed) {
            let next = low_job(spawner.clone(), Arc::clone(&stop));
            spawner.spawn(Level::Low, next);
        }
        spin(LOW_JOB);
    }
}

/// Runs the scenario on a fresh pool of `P`; returns the HIGH jobs' start
/// latencies in µs.
fn measure<P: Peer>(samples: usize) -> Histogram<u64> {
    let pool = P::start(WORKERS);
    let handle = pool.handle();
    let stop = Arc::new(AtomicBool::new(false));
    // Two LOW chains per worker: the backlog never empties.
    for _ in 0..2 * WORKERS {
        handle.spawn(Level::Low, low_job(handle.clone(), Arc::clone(&stop)));
    }
    thread::sleep(Duration::from_millis(20));
    let (tx, rx) = crossbeam_channel::unbounded::<u64>();
    let mut rng = fastrand_gap(0x5eed);
    for _ in 0..samples {
        let tx = tx.clone();
        let spawned = Instant::now();
        handle.spawn(Level::High, move || {
            let waited = spawned.elapsed().as_micros() as u64;
            let _ = tx.send(waited);
        });
        thread::sleep(Duration::from_micros(1_000 + rng() % 2_000));
    }
    let mut histogram = Histogram::<u64>::new(3).expect("3 significant digits");
    for _ in 0..samples {
        let waited = rx.recv_timeout(Duration::from_secs(10)).expect("every HIGH job runs");
        histogram.record(waited.max(1)).expect("in range");
    }
    stop.store(true, Ordering::Relaxed);
    drop(handle);
    pool.shutdown();
    histogram
}

/// A tiny xorshift for the sampler's gaps (no dependency needed for this).
fn fastrand_gap(mut state: u64) -> impl FnMut() -> u64 {
    move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    }
}

/// Raises the calling thread's nice value by `n` (Linux; a no-op elsewhere).
fn renice(n: i32) {
    #[cfg(target_os = "linux")]
    if let Ok(now) = rustix::process::getpriority_process(None) {
        let _ = rustix::process::setpriority_process(None, (now + n).min(19));
    }
    #[cfg(not(target_os = "linux"))]
    let _ = n;
}

/// priopool with one reserved thread; `NICE`: the workers' nice value.
struct Reserved<const NICE: i32>(Pool);

#[derive(Clone)]
struct ReservedHandle(Spawner);

impl Spawn for ReservedHandle {
    fn spawn<F: FnOnce() + Send + 'static>(&self, level: Level, job: F) {
        let priority = if level == Level::High { Priority::HIGH } else { Priority::LOW };
        if self.0.spawn(priority, job).is_err() {
            panic!("priopool: spawn refused");
        }
    }
}

impl<const NICE: i32> Peer for Reserved<NICE> {
    const NAME: &'static str = if NICE == 0 { "priopool+reserved, nice 0" } else { "priopool+reserved" };
    type Handle = ReservedHandle;

    fn start(workers: usize) -> Self {
        let pool =
            Pool::builder().workers(workers).reserved_threads(1).worker_nice(NICE).build().expect("the pool builds");
        Reserved(pool)
    }

    fn handle(&self) -> ReservedHandle {
        ReservedHandle(self.0.spawner())
    }

    fn shutdown(self) {
        self.0.shutdown();
    }
}

/// The two-channel pool of `peers/two_channel.rs` plus one thread that
/// takes only HIGH jobs, its workers at nice +10.
struct TwoChannelReserved {
    handle: Option<(Sender<Job>, Sender<Job>)>,
    threads: Vec<JoinHandle<()>>,
}

#[derive(Clone)]
struct TwoChannelReservedHandle(Sender<Job>, Sender<Job>);

impl Spawn for TwoChannelReservedHandle {
    fn spawn<F: FnOnce() + Send + 'static>(&self, level: Level, job: F) {
        let tx = if level == Level::High { &self.0 } else { &self.1 };
        tx.send(Box::new(job)).expect("the pool is running");
    }
}

fn two_channel_worker(high: Receiver<Job>, low: Receiver<Job>) {
    renice(10);
    peers::two_channel::worker(high, low);
}

impl Peer for TwoChannelReserved {
    const NAME: &'static str = "two-channel+reserved";
    type Handle = TwoChannelReservedHandle;

    fn start(workers: usize) -> Self {
        let (high_tx, high_rx) = unbounded::<Job>();
        let (low_tx, low_rx) = unbounded::<Job>();
        let mut threads: Vec<_> = (0..workers)
            .map(|_| {
                let (h, l) = (high_rx.clone(), low_rx.clone());
                thread::spawn(move || two_channel_worker(h, l))
            })
            .collect();
        threads.push(thread::spawn(move || high_rx.iter().for_each(|job| job())));
        TwoChannelReserved { handle: Some((high_tx, low_tx)), threads }
    }

    fn handle(&self) -> TwoChannelReservedHandle {
        let (high, low) = self.handle.clone().expect("the pool is running");
        TwoChannelReservedHandle(high, low)
    }

    fn shutdown(mut self) {
        drop(self.handle.take());
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

fn row<P: Peer>(samples: usize) {
    let h = measure::<P>(samples);
    println!(
        "| {:<26} | {:>7} | {:>7} | {:>7} |",
        P::NAME,
        h.value_at_quantile(0.5),
        h.value_at_quantile(0.99),
        h.max()
    );
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` does not.
    let full =
        std::env::args().any(|a| a == "--bench") && !std::env::var("PRIOPOOL_BENCH_QUICK").is_ok_and(|v| v == "1");
    let samples = if full { 2_000 } else { 50 };
    println!(
        "HIGH start latency (µs) while {WORKERS} workers run {LOW_JOB:?} LOW jobs back to back, {samples} samples"
    );
    println!("core-to-core round trip: {:.0} ns (median of 5 x 20,000 trips)", roundtrip::core_round_trip_ns());
    println!("| pool                       |     p50 |     p99 |     max |");
    println!("|----------------------------|---------|---------|---------|");
    row::<Priopool<false>>(samples);
    row::<Reserved<10>>(samples);
    row::<Reserved<0>>(samples);
    row::<TwoChannel>(samples);
    row::<HeapCondvar>(samples);
    row::<TwoChannelReserved>(samples);
}
