//! The main demo: high-priority jobs cut through a flood of low-priority work.
//!
//! 20,000 low-priority jobs, each hashing a buffer for about 50 µs of real CPU
//! work, are queued at once. Meanwhile another thread submits a high-priority
//! job every millisecond. Because a worker always takes the most urgent job
//! at its next job boundary, a high job waits at most for a running low job
//! to finish (about 25 µs on average), not for the backlog ahead of it.
//!
//! Run it with `cargo run --release --example flood`.

use std::hash::{DefaultHasher, Hasher};
use std::hint::black_box;
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use priopool::{Pool, Priority};

const LOW_JOBS: usize = 20_000;
const HIGH_JOBS: usize = 200;
const HIGH_PERIOD: Duration = Duration::from_millis(1);
const TARGET_JOB: Duration = Duration::from_micros(50);

/// Real work: SipHash over a buffer, `rounds` times.
fn hash_work(buffer: &[u8], rounds: usize) -> u64 {
    let mut hasher = DefaultHasher::new();
    for _ in 0..rounds {
        hasher.write(black_box(buffer));
    }
    hasher.finish()
}

/// How many rounds of `hash_work` take about `TARGET_JOB` on this machine.
fn calibrate(buffer: &[u8]) -> usize {
    let trials = 2_000;
    let start = Instant::now();
    black_box(hash_work(buffer, trials));
    let per_round = start.elapsed() / trials as u32;
    (TARGET_JOB.as_nanos() / per_round.as_nanos().max(1)).max(1) as usize
}

fn micros(d: Duration) -> u64 {
    d.as_micros().try_into().unwrap_or(u64::MAX)
}

fn report(name: &str, h: &Histogram<u64>) {
    println!(
        "{name:<22} {:>7} {:>10} {:>10} {:>10}",
        h.len(),
        h.value_at_quantile(0.5),
        h.value_at_quantile(0.99),
        h.max()
    );
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let buffer: Vec<u8> = (0..1024u32).map(|i| (i * 31 % 251) as u8).collect();
    let rounds = calibrate(&buffer);
    let pool = Pool::new()?;
    println!(
        "priopool flood demo: {} workers, {LOW_JOBS} low jobs of ~{} µs (hashing), {HIGH_JOBS} high jobs every {} ms",
        pool.workers(),
        TARGET_JOB.as_micros(),
        HIGH_PERIOD.as_millis()
    );

    // Each job reports (priority, submitted, started, finished) when it ends.
    let (tx, rx) = mpsc::channel::<(bool, Instant, Instant, Instant)>();
    let buffer = std::sync::Arc::new(buffer);
    let started = Instant::now();
    for _ in 0..LOW_JOBS {
        let (tx, buffer) = (tx.clone(), buffer.clone());
        let submitted = Instant::now();
        pool.spawn(Priority::LOW, move || {
            let start = Instant::now();
            black_box(hash_work(&buffer, rounds));
            let _ = tx.send((false, submitted, start, Instant::now()));
        })?;
    }

    let spawner = pool.spawner();
    let high_tx = tx.clone();
    let producer = thread::spawn(move || {
        let mut next = Instant::now();
        for _ in 0..HIGH_JOBS {
            let tx = high_tx.clone();
            let submitted = Instant::now();
            let accepted = spawner.spawn(Priority::HIGH, move || {
                let start = Instant::now();
                let _ = tx.send((true, submitted, start, Instant::now()));
            });
            if accepted.is_err() {
                eprintln!("a high job was refused");
            }
            next += HIGH_PERIOD;
            thread::sleep(next.saturating_duration_since(Instant::now()));
        }
    });
    drop(tx);
    producer.join().map_err(|_| "the producer thread panicked")?;
    pool.shutdown();
    let elapsed = started.elapsed();

    let mut high_wait = Histogram::<u64>::new(3)?;
    let mut low_wait = Histogram::<u64>::new(3)?;
    let mut low_run = Histogram::<u64>::new(3)?;
    for (high, submitted, start, finished) in rx {
        if high {
            high_wait.record(micros(start - submitted))?;
        } else {
            low_wait.record(micros(start - submitted))?;
            low_run.record(micros(finished - start))?;
        }
    }

    println!("\n{:<22} {:>7} {:>10} {:>10} {:>10}", "start latency (µs)", "jobs", "p50", "p99", "max");
    report("high priority", &high_wait);
    report("low priority", &low_wait);
    report("low job run time", &low_run);
    println!(
        "\nthroughput: {:.0} jobs/s ({} jobs in {:.2} s)",
        (LOW_JOBS + HIGH_JOBS) as f64 / elapsed.as_secs_f64(),
        LOW_JOBS + HIGH_JOBS,
        elapsed.as_secs_f64()
    );
    println!(
        "a high job waits for a running low job to end (~{} µs on average), not for the backlog of {LOW_JOBS}",
        low_run.mean() as u64 / 2
    );
    Ok(())
}
