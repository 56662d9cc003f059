//! A live view of priority at work: a mixed load on three levels, with one
//! line of metrics every 100 ms.
//!
//! ```sh
//! cargo run --release --example monitor
//! ```
//!
//! A producer feeds a steady stream of LOW and MEDIUM jobs that the pool
//! keeps up with; between 0.5 s and 1 s it adds a burst of HIGH jobs that
//! needs more than every worker. During the burst the MEDIUM and LOW
//! backlogs grow and their "oldest" figure (how long the level has had jobs
//! queued without starting any) climbs: they starve, by design, while every
//! worker serves HIGH. The burst is larger than the pool can serve, so HIGH
//! queues up too, but only behind other HIGH jobs. After the burst the
//! backlog drains. The p99 waits are
//! for the jobs started in each 100 ms window (`Metrics::since`).

use std::thread;
use std::time::{Duration, Instant};

use priopool::{Metrics, Pool, Priority};

const WORKERS: usize = 4;
/// The producer's period: not a divisor of the 100 ms sampling period, so
/// that samples do not always fall at the same point of a period.
const TICK: Duration = Duration::from_millis(7);
const PRODUCE_FOR: Duration = Duration::from_millis(1_500);
const BURST: (Duration, Duration) = (Duration::from_millis(500), Duration::from_millis(1_000));

/// Stands in for real work (say, a request to another service): holds the
/// worker for `length` without using a CPU, so the demo behaves the same on
/// a busy machine.
fn work(length: Duration) {
    thread::sleep(length);
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let pool = Pool::builder().workers(WORKERS).levels(3).wait_metrics(true).build()?;
    let (high, medium, low) = (Priority::level(0), Priority::level(1), Priority::LOW);

    let spawner = pool.spawner();
    let producer = thread::spawn(move || {
        let start = Instant::now();
        while start.elapsed() < PRODUCE_FOR {
            let now = start.elapsed();
            // Steady load: about one and a half workers' worth.
            for _ in 0..6 {
                spawner.spawn(low, || work(Duration::from_millis(1))).expect("pool is open");
            }
            for _ in 0..4 {
                spawner.spawn(medium, || work(Duration::from_millis(1))).expect("pool is open");
            }
            // The burst: about six workers' worth, more than the pool has.
            if BURST.0 <= now && now < BURST.1 {
                for _ in 0..42 {
                    spawner.spawn(high, || work(Duration::from_millis(1))).expect("pool is open");
                }
            }
            thread::sleep(TICK);
        }
    });

    println!("    t | backlog  HIGH   MED   LOW | busy | p99 wait µs  HIGH    MED     LOW | oldest LOW");
    let start = Instant::now();
    let mut previous = pool.metrics();
    loop {
        thread::sleep(Duration::from_millis(100));
        let now = pool.metrics();
        print_line(start.elapsed(), &now, &now.since(&previous));
        let idle = now.levels.iter().all(|level| level.backlog == 0 && level.running() == 0);
        if (producer.is_finished() && idle) || start.elapsed() > Duration::from_secs(10) {
            break;
        }
        previous = now;
    }
    producer.join().expect("producer");

    let spawner = pool.spawner();
    pool.shutdown();
    let total = spawner.metrics();
    println!("\ntotals after shutdown (uptime {:.2?}, {} steals):", total.uptime, total.workers.steals);
    for (level, l) in total.levels.iter().enumerate() {
        let wait = l.wait.as_ref().map_or((0, 0, 0), |w| (w.p50_us, w.p99_us, w.max_us));
        println!(
            "  level {level}: submitted {:5}  completed {:5}  panicked {}  rejected {}  wait p50 {} µs, p99 {} µs, max {} µs",
            l.submitted, l.completed, l.panicked, l.rejected, wait.0, wait.1, wait.2
        );
    }
    Ok(())
}

fn print_line(elapsed: Duration, now: &Metrics, window: &Metrics) {
    let backlog: Vec<String> = now.levels.iter().map(|l| format!("{:5}", l.backlog)).collect();
    let p99: Vec<String> = window
        .levels
        .iter()
        .map(|l| match &l.wait {
            Some(wait) if wait.count > 0 => format!("{:6}", wait.p99_us),
            _ => format!("{:>6}", "-"),
        })
        .collect();
    let oldest_low = match now.levels.last().and_then(|l| l.oldest_wait) {
        Some(oldest) if !oldest.is_zero() => format!("{oldest:>8.1?}"),
        _ => format!("{:>8}", "-"),
    };
    println!(
        "{:4.1}s |        {} | {}/{} |             {} | {}",
        elapsed.as_secs_f64(),
        backlog.join(" "),
        now.workers.busy,
        now.workers.total,
        p99.join(" "),
        oldest_low
    );
}
