//! An interactive service with a low-priority batch beside it, on one pool.
//!
//! Requests are HIGH: each is a named job with a start deadline, answered
//! through its handle. A re-index batch is LOW: its level has a capacity,
//! so the producer waits for room instead of queueing the whole batch at
//! once (backpressure, like a Go buffered channel), and its jobs share a
//! `JobGroup`, so that one call cancels what is left of it. Errors travel
//! with `?` into `anyhow`-style boxes; an `after_job` hook reports slow
//! requests by name; the pool cancels its backlog if `main` returns early.
//!
//! Run it with `cargo run --example service`.

use std::error::Error;
use std::thread;
use std::time::{Duration, Instant};

use priopool::{DropPolicy, JobGroup, JobHandle, JoinTimeoutError, Pool, Priority, Spawner};

type BoxError = Box<dyn Error + Send + Sync>;

/// The levels of this service, by name rather than by number.
#[derive(Clone, Copy)]
enum Lane {
    Interactive,
    Batch,
}

impl From<Lane> for Priority {
    fn from(lane: Lane) -> Priority {
        match lane {
            Lane::Interactive => Priority::HIGH,
            Lane::Batch => Priority::LOW,
        }
    }
}

/// Answers one request: a millisecond of work.
fn answer(request: u32) -> String {
    thread::sleep(Duration::from_millis(1));
    format!("page {request}")
}

/// Re-indexes one part of the catalogue: slow, and nobody waits for it.
fn reindex(part: u32) {
    thread::sleep(Duration::from_millis(5 + u64::from(part % 3)));
}

/// Queues a batch of `parts` re-index jobs in `batch`; returns once the
/// last part is queued, or early if the batch is cancelled. The capacity of
/// the batch level makes this wait whenever 8 parts are already queued.
fn run_batch(spawner: &Spawner, batch: &JobGroup, parts: u32) -> Result<(), BoxError> {
    let job = spawner.job(Lane::Batch).group(batch).name("reindex");
    for part in 0..parts {
        if batch.is_cancelled() {
            break;
        }
        job.clone().spawn(move || reindex(part))?;
    }
    Ok(())
}

fn main() -> Result<(), BoxError> {
    let pool = Pool::builder()
        .workers(2)
        .capacity(Lane::Batch, 8)
        .on_drop(DropPolicy::CancelBacklog)
        .after_job(|info, _, run_time| {
            if run_time > Duration::from_millis(20) {
                println!("slow: {} took {run_time:?}", info.name.as_deref().unwrap_or("an unnamed job"));
            }
        })
        .build()?;

    // The batch producer runs beside the requests and is held back by the
    // capacity: at most 8 parts wait at a time.
    let batch = JobGroup::new();
    let producer = {
        let (spawner, batch) = (pool.spawner(), batch.clone());
        thread::spawn(move || run_batch(&spawner, &batch, 400))
    };

    // Requests cut ahead of the batch: a worker takes the next request at
    // its next job boundary, whatever the batch queued.
    let started = Instant::now();
    let (mut slowest, mut shed) = (Duration::ZERO, 0);
    for request in 0..50 {
        let sent = Instant::now();
        let page: JobHandle<String> = pool
            .job(Lane::Interactive)
            .name(format!("request {request}"))
            .max_wait(Duration::from_millis(100))
            .submit(move || answer(request))?;
        match page.join_timeout(Duration::from_secs(5)) {
            Ok(page) => assert_eq!(page, format!("page {request}")),
            // Not started within 100 ms (an overloaded machine): shed, not
            // served late.
            Err(JoinTimeoutError::Job(error)) if error.is_expired() => shed += 1,
            Err(error) => return Err(error.into()),
        }
        slowest = slowest.max(sent.elapsed());
        thread::sleep(Duration::from_millis(2));
    }
    println!("50 requests in {:?}: slowest {slowest:?}, {shed} shed", started.elapsed());

    // The user went away: drop what is left of the batch.
    let cancelled = batch.cancel();
    producer.join().expect("the producer thread")?;
    pool.wait_idle();
    let metrics = pool.metrics();
    let low = metrics.level(Lane::Batch).expect("the batch level");
    println!(
        "batch: {} parts done, {} cancelled ({cancelled} by the group's cancel); the producer waited for room {} times",
        low.completed, low.cancelled, low.full_waits,
    );

    // A second, small batch on the same pool, run to the end.
    run_batch(&pool.spawner(), &JobGroup::new(), 10)?;
    pool.wait_idle();
    let low = pool.metrics().level(Lane::Batch).expect("the batch level").clone();
    println!("after the second batch: {} parts done in all, backlog {}", low.completed, low.backlog);
    Ok(())
}
