//! The Go guide's advice "implement timeouts", done in priopool.
//!
//! In Go, a worker wraps a task that might hang in a `select` with
//! `time.After`, so that one stuck task cannot hold a worker forever. A Rust
//! thread cannot be stopped from outside, so priopool splits that advice
//! into the three things that can be done honestly, and this example shows
//! each:
//!
//! 1. **A deadline for queue wait** (`max_wait`): a job that no worker has
//!    started in time is dropped unrun and its handle says `Expired`, so
//!    stale work does not pile up behind stuck workers.
//! 2. **A join timeout** (`join_timeout`): the caller stops waiting and gets
//!    the handle back.
//! 3. **Cooperative cancellation** (`cancel` + `JobContext`): the caller
//!    cancels the stuck job; the job's slow call waits in slices, sees the
//!    cancellation between them, and gives up, freeing its worker.
//!
//! Three workers take twelve calls to a slow service. Most answer after
//! 80 ms, but the service hangs on the second and the fourth call it
//! receives. While two workers are stuck, the queue backs up and the calls
//! that wait longer than 200 ms expire. The caller
//! waits at most 500 ms for each result, and cancels the calls that do not
//! answer by then. A bounded shutdown ends it. It runs in about a second.
//!
//! Run it with `cargo run --example timeouts`.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use priopool::{JobContext, JoinTimeoutError, Pool, Priority, ShutdownReport};

const NUM_JOBS: u32 = 12;
const NUM_WORKERS: usize = 3;
/// How long a normal call takes.
const CALL_TIME: Duration = Duration::from_millis(80);
/// How long a call may wait in the queue before it is not worth making.
const QUEUE_WAIT: Duration = Duration::from_millis(200);
/// How long the caller waits for each result.
const JOIN_TIMEOUT: Duration = Duration::from_millis(500);

/// How many calls the service has received.
static CALLS: AtomicU32 = AtomicU32::new(0);

/// A call to a slow service. Its second and fourth calls hang: their reply
/// never comes.
fn call_service(job: u32, ctx: &JobContext) -> Result<u32, &'static str> {
    let call = CALLS.fetch_add(1, Ordering::Relaxed) + 1;
    if call == 2 || call == 4 {
        // A blocking call cannot see the cancellation while it blocks, so
        // wait in 20 ms slices and check the context between them.
        let (_reply_tx, reply) = mpsc::channel::<u32>();
        loop {
            match reply.recv_timeout(Duration::from_millis(20)) {
                Ok(answer) => return Ok(answer),
                Err(mpsc::RecvTimeoutError::Timeout) if !ctx.is_cancelled() => continue,
                Err(_) => return Err("the call gave up: cancelled"),
            }
        }
    }
    // A normal call: CALL_TIME of waiting, cut short by a cancellation.
    if ctx.wait_for_cancel(CALL_TIME) {
        return Err("the call gave up: cancelled");
    }
    Ok(job * 2)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let start = Instant::now();
    let pool = Pool::builder().workers(NUM_WORKERS).thread_name(|i| format!("worker {}", i + 1)).build()?;

    let handles = (1..=NUM_JOBS)
        .map(|job| {
            pool.job(Priority::LOW)
                .max_wait(QUEUE_WAIT)
                .submit_with_context(move |ctx: &JobContext| {
                    let current = thread::current();
                    let worker = current.name().unwrap_or("?");
                    println!("{:>5} ms  {worker} started job {job}", start.elapsed().as_millis());
                    let result = call_service(job, ctx);
                    println!("{:>5} ms  {worker} finished job {job}", start.elapsed().as_millis());
                    result
                })
                .map(|handle| (job, handle))
        })
        .collect::<Result<Vec<_>, _>>()?;

    let (mut answered, mut expired, mut cancelled) = (0, 0, 0);
    for (job, handle) in handles {
        let at = || start.elapsed().as_millis();
        match handle.join_timeout(JOIN_TIMEOUT) {
            Ok(Ok(result)) => {
                answered += 1;
                println!("{:>5} ms  result of job {job}: {result}", at());
            }
            Ok(Err(why)) => println!("{:>5} ms  job {job}: {why}", at()),
            Err(JoinTimeoutError::Job(error)) if error.is_expired() => {
                expired += 1;
                println!("{:>5} ms  job {job} expired: no worker started it within {QUEUE_WAIT:?}", at());
            }
            Err(JoinTimeoutError::Job(error)) => println!("{:>5} ms  job {job} failed: {error}", at()),
            Err(JoinTimeoutError::TimedOut(handle)) => {
                println!("{:>5} ms  job {job} gave no answer within {JOIN_TIMEOUT:?}: cancelling it", at());
                handle.cancel();
                // The job sees the cancellation within one 20 ms slice.
                match handle.join()? {
                    Ok(result) => println!("{:>5} ms  result of job {job}: {result}", at()),
                    Err(why) => {
                        cancelled += 1;
                        println!("{:>5} ms  job {job}: {why}", at());
                    }
                }
            }
        }
    }

    match pool.shutdown_timeout(Duration::from_secs(1)) {
        ShutdownReport::Drained => println!("\n--- Pool drained and shut down. ---"),
        ShutdownReport::DrainedDetached { threads } => {
            println!("\n--- Pool drained; {threads} thread(s) still exiting, detached. ---")
        }
        report => println!("\n--- Shutdown gave up waiting: {report:?} ---"),
    }
    println!("{answered} answered, {expired} expired in the queue, {cancelled} cancelled while stuck");
    Ok(())
}
