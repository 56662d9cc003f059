//! A recursive fan-out: each job spawns a job per child, to any depth, and
//! `main` learns that the whole tree is done from `Pool::wait_idle`.
//!
//! The tree is a made-up directory tree (each directory holds a few files
//! and subdirectories, decided by its path); a job per directory adds its
//! files' sizes to a shared total and spawns one job per subdirectory.
//! Jobs spawned from inside the pool (`priopool::spawn`, which needs no
//! handle there) go to the spawning worker's own deque, where idle workers
//! steal them; they never wait for room, even on a level with a capacity
//! (that would deadlock a pool whose every worker waits), so only the
//! roots, spawned from `main`, are held back by it.
//!
//! Run it with `cargo run --release --example fanout`.

use std::error::Error;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use priopool::{Pool, Priority};

const DEPTH: u32 = 7;

/// Sizes of the files in directory `path`, and its subdirectories' names.
fn list(path: &str, depth: u32) -> (Vec<u64>, Vec<String>) {
    let mut hasher = DefaultHasher::new();
    path.hash(&mut hasher);
    let seed = hasher.finish();
    let files = (0..seed % 5).map(|i| (seed >> (8 * i)) % 4096).collect();
    let dirs = if depth == DEPTH { 0 } else { 1 + seed % 4 };
    (files, (0..dirs).map(|i| format!("{path}/d{i}")).collect())
}

/// The job of one directory: count its files, spawn its subdirectories.
fn visit(totals: Arc<(AtomicU64, AtomicU64)>, path: String, depth: u32) {
    let (files, dirs) = list(&path, depth);
    totals.0.fetch_add(files.iter().sum(), Ordering::Relaxed);
    totals.1.fetch_add(1, Ordering::Relaxed);
    for dir in dirs {
        let totals = Arc::clone(&totals);
        // From inside the pool: admitted at once, never waits for room.
        let spawned = priopool::spawn(Priority::LOW, move || visit(totals, dir, depth + 1));
        spawned.expect("a running job's spawn is refused only for a level the pool lacks");
    }
}

fn main() -> Result<(), Box<dyn Error + Send + Sync>> {
    let pool = Pool::builder().capacity(Priority::LOW, 4).build()?;
    let totals = Arc::new((AtomicU64::new(0), AtomicU64::new(0)));
    for root in ["/home", "/srv", "/var", "/opt", "/usr", "/etc"] {
        let totals = Arc::clone(&totals);
        // From outside: waits while 4 roots are queued.
        pool.spawn(Priority::LOW, move || visit(totals, root.to_owned(), 1))?;
    }
    pool.wait_idle();
    let (bytes, dirs) = (totals.0.load(Ordering::Relaxed), totals.1.load(Ordering::Relaxed));
    let metrics = pool.metrics();
    let jobs = metrics.level(Priority::LOW).map_or(0, |low| low.completed);
    println!("{dirs} directories, {bytes} bytes, {jobs} jobs");
    assert_eq!(jobs, dirs, "one job per directory, all counted once the pool is idle");
    Ok(())
}
