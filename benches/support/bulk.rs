//! A and B, the bulk scenarios (`compare.rs`'s docs), one run of one pool:
//! shared by `compare.rs` and `instructions.rs`.

use std::time::{Duration, Instant};

use super::latch::CountLatch;
use crate::peers::{Level, Peer, Spawn};

/// Counts A's jobs and B's leaves. Runs are strictly one after another and
/// each waits for its last count-down, so one static serves them all, and
/// a job that only counts down captures nothing.
static BULK: CountLatch = CountLatch::new();

/// A: spawn `jobs` empty jobs from this thread; time until all have run.
/// `boxed`: each job is a `Box<dyn FnOnce() + Send>` that owns a pointer
/// (an allocation), handed over with [`Spawn::spawn_boxed`]; otherwise a
/// closure that captures nothing, handed over generically.
pub fn run_a<P: Peer>(pool: &P, jobs: usize, boxed: bool) -> Duration {
    let h = pool.handle();
    BULK.reset(jobs);
    let start = Instant::now();
    if boxed {
        let latch: &'static CountLatch = &BULK;
        for _ in 0..jobs {
            h.spawn_boxed(Level::Low, Box::new(move || latch.count_down()));
        }
    } else {
        for _ in 0..jobs {
            h.spawn(Level::Low, || BULK.count_down());
        }
    }
    BULK.wait();
    start.elapsed()
}

/// B: one root job; every job above depth 0 spawns two children (`boxed`:
/// as `Box<dyn FnOnce() + Send>`, with [`Spawn::spawn_boxed`]).
pub fn run_b<P: Peer>(pool: &P, depth: u32, boxed: bool) -> Duration {
    let h = pool.handle();
    BULK.reset(1 << depth);
    let start = Instant::now();
    let root = h.clone();
    h.spawn(Level::Low, move || tree(root, depth, boxed));
    BULK.wait();
    start.elapsed()
}

fn tree<S: Spawn>(h: S, depth: u32, boxed: bool) {
    if depth == 0 {
        BULK.count_down();
        return;
    }
    for _ in 0..2 {
        let child = h.clone();
        if boxed {
            h.spawn_boxed(Level::Low, Box::new(move || tree(child, depth - 1, true)));
        } else {
            h.spawn(Level::Low, move || tree(child, depth - 1, false));
        }
    }
}

#[derive(Clone, Copy)]
pub enum Bulk {
    /// Jobs, boxed.
    A(usize, bool),
    /// Depth, boxed.
    B(u32, bool),
}

impl Bulk {
    pub fn run<P: Peer>(self, pool: &P) -> Duration {
        match self {
            Bulk::A(jobs, boxed) => run_a(pool, jobs, boxed),
            Bulk::B(depth, boxed) => run_b(pool, depth, boxed),
        }
    }
}
