//! The Go guide's worker-pool example, done in priopool.
//!
//! Three workers take ten jobs from a queue; each job logs its start and
//! finish, simulates work, and returns its job number doubled. The
//! submitter collects every result through the job's handle (so each result
//! is matched to its job, unlike an anonymous results channel), then shuts
//! the pool down gracefully: every accepted job runs and every worker
//! thread is joined before `main` returns.
//!
//! Run it with `cargo run --example worker_pool`.

use std::thread;
use std::time::Duration;

use priopool::{Pool, Priority};

const NUM_JOBS: u32 = 10;
const NUM_WORKERS: usize = 3;

/// The work: log, simulate an I/O wait, return the job doubled.
fn work(job: u32) -> u32 {
    let current = thread::current();
    let worker = current.name().unwrap_or("?");
    println!("{worker} started job {job}");
    thread::sleep(Duration::from_millis(100));
    println!("{worker} finished job {job}");
    job * 2
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let pool = Pool::builder().workers(NUM_WORKERS).thread_name(|i| format!("worker {}", i + 1)).build()?;

    // The queue decouples the submitter from the workers: all ten jobs are
    // accepted at once, and the three workers drain them.
    let handles = (1..=NUM_JOBS)
        .map(|job| pool.submit(Priority::LOW, move || work(job)).map(|handle| (job, handle)))
        .collect::<Result<Vec<_>, _>>()?;

    for (job, handle) in handles {
        // A panic in a job would come back here as `JobError::Panicked`
        // without killing its worker.
        let result = handle.join()?;
        println!("result of job {job}: {result}");
    }

    pool.shutdown();
    println!("\n--- All jobs processed. ---");
    Ok(())
}
