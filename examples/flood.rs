//! The main demo: high-priority jobs cut through a flood of low-priority work.
//!
//! 20,000 low-priority jobs, each hashing a buffer for about 50 µs of real
//! CPU work, are queued at once. While they drain, another thread submits a
//! high-priority job every millisecond. Because a worker always takes the
//! most urgent job at its next job boundary, a high job waits only for a
//! running low job to finish, not for the backlog ahead of it.
//!
//! The same load then runs on a pool with a single level (plain FIFO, as in
//! a pool without priorities) to show what the priority levels bought.
//!
//! Run it with `cargo run --release --example flood`.

use std::hash::{DefaultHasher, Hasher};
use std::hint::black_box;
use std::sync::{Arc, mpsc};
use std::thread;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use priopool::{Pool, Priority};

const LOW_JOBS: usize = 20_000;
const MAX_HIGH_JOBS: usize = 200;
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

/// How many rounds of `hash_work` take about `TARGET_JOB` on this machine:
/// the fastest of several timed batches, so that a busy machine does not
/// make the jobs too short.
fn calibrate(buffer: &[u8]) -> usize {
    const ROUNDS: u32 = 2_000;
    let fastest = (0..7)
        .map(|_| {
            let start = Instant::now();
            black_box(hash_work(buffer, ROUNDS as usize));
            start.elapsed() / ROUNDS
        })
        .min()
        .unwrap_or(Duration::from_nanos(1));
    (TARGET_JOB.as_nanos() / fastest.as_nanos().max(1)).max(1) as usize
}

fn micros(d: Duration) -> u64 {
    d.as_micros().try_into().unwrap_or(u64::MAX)
}

/// What one run measured, in µs.
struct Run {
    high_wait: Histogram<u64>,
    low_wait: Histogram<u64>,
    low_run: Histogram<u64>,
    elapsed: Duration,
}

/// Floods a pool of `levels` levels with low jobs and submits high jobs
/// every `HIGH_PERIOD` while the low backlog lasts.
fn run(levels: usize, buffer: &Arc<Vec<u8>>, rounds: usize) -> Result<Run, Box<dyn std::error::Error>> {
    let pool = Pool::builder().levels(levels).build()?;
    // Each job reports (high?, submitted, started, finished) when it ends.
    let (tx, rx) = mpsc::channel::<(bool, Instant, Instant, Instant)>();
    let started = Instant::now();
    for _ in 0..LOW_JOBS {
        let (tx, buffer) = (tx.clone(), Arc::clone(buffer));
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
        // Only while the flood lasts: a high job submitted to an idle pool
        // shows nothing.
        for _ in 0..MAX_HIGH_JOBS {
            if spawner.metrics().levels[spawner.levels() - 1].backlog == 0 {
                break;
            }
            let tx = high_tx.clone();
            let submitted = Instant::now();
            let job = move || {
                let start = Instant::now();
                let _ = tx.send((true, submitted, start, Instant::now()));
            };
            if spawner.spawn(Priority::HIGH, job).is_err() {
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

    let mut result =
        Run { high_wait: Histogram::new(3)?, low_wait: Histogram::new(3)?, low_run: Histogram::new(3)?, elapsed };
    for (high, submitted, start, finished) in rx {
        if high {
            result.high_wait.record(micros(start - submitted))?;
        } else {
            result.low_wait.record(micros(start - submitted))?;
            result.low_run.record(micros(finished - start))?;
        }
    }
    Ok(result)
}

/// `us` µs, in ms once that reads better.
fn human(us: u64) -> String {
    if us >= 10_000 { format!("{} ms", us / 1_000) } else { format!("{us} µs") }
}

fn row(name: &str, h: &Histogram<u64>) {
    println!(
        "  {name:<28} {:>6} {:>10} {:>10} {:>10}",
        h.len(),
        h.value_at_quantile(0.5),
        h.value_at_quantile(0.99),
        h.max()
    );
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let buffer: Arc<Vec<u8>> = Arc::new((0..1024u32).map(|i| (i * 31 % 251) as u8).collect());
    let rounds = calibrate(&buffer);
    let workers = num_cpus::get();
    println!(
        "priopool flood demo: {workers} workers; {LOW_JOBS} low jobs of ~{} µs of hashing queued at once; \
         a high job every {} ms while they drain\n",
        TARGET_JOB.as_micros(),
        HIGH_PERIOD.as_millis()
    );

    let prio = run(2, &buffer, rounds)?;
    let fifo = run(1, &buffer, rounds)?;

    println!("  {:<28} {:>6} {:>10} {:>10} {:>10}", "start latency (µs)", "jobs", "p50", "p99", "max");
    println!("with two priority levels:");
    row("high-priority jobs", &prio.high_wait);
    row("low-priority jobs", &prio.low_wait);
    println!("with one level (FIFO, no priorities):");
    row("the same 'high' jobs", &fifo.high_wait);
    row("the same 'low' jobs", &fifo.low_wait);
    println!();
    row("low job run time", &prio.low_run);

    // With every worker inside a low job, started at independent moments, a
    // high job waits for the first of them to finish: on average L / (W + 1)
    // for low jobs of length L on W workers.
    let expected = prio.low_run.mean() / (workers as f64 + 1.0);
    let p50 = prio.high_wait.value_at_quantile(0.5);
    println!(
        "\nthroughput: {:.0} jobs/s with priorities, {:.0} jobs/s without",
        (LOW_JOBS + prio.high_wait.len() as usize) as f64 / prio.elapsed.as_secs_f64(),
        (LOW_JOBS + fifo.high_wait.len() as usize) as f64 / fifo.elapsed.as_secs_f64()
    );
    println!(
        "a high job started after {} (median) instead of {} without priorities; a running job is never \
         interrupted, so it waits for the first of the {workers} busy workers to finish its low job: \
         about {expected:.0} µs on average (the mean low run time / (workers + 1))",
        human(p50),
        human(fifo.high_wait.value_at_quantile(0.5))
    );
    // The tails are the operating system's as much as the pool's: a job
    // also waits for its worker thread to get a CPU.
    let load =
        std::fs::read_to_string("/proc/loadavg").ok().and_then(|l| l.split_whitespace().next().map(str::to_owned));
    println!(
        "p99 and max also count the time a worker thread waited for a CPU: on a busy machine{} they \
         measure the scheduler, not the pool",
        load.map(|l| format!(" (load average now {l} on {workers} CPUs)")).unwrap_or_default()
    );
    Ok(())
}
