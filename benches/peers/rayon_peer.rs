//! rayon as a peer, in two rows: `ThreadPool::spawn` and
//! `ThreadPool::spawn_fifo`.
//!
//! Design (rayon's, not ours): one work-stealing deque per worker plus a
//! global injector. A spawn from outside the pool goes to the injector; a
//! spawn from inside a job goes to that worker's own deque, popped LIFO by
//! `spawn` and FIFO by `spawn_fifo`. Idle workers spin briefly, then sleep.
//! rayon has no priorities: `level` is ignored, so in scenario C a high job
//! waits behind every low job queued before it.
//!
//! Shutdown: rayon joins nothing when a `ThreadPool` is dropped; it only
//! tells the workers to leave once they run out of work. To keep threads
//! from one measurement out of the next, the pool is built with an exit
//! handler that counts workers leaving, and `shutdown` waits for all of
//! them. Every handle must be dropped before `shutdown` (a job's captured
//! handle is dropped when the job ends), since the pool only stops once the
//! last reference to it is gone.

use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::Duration;

use rayon::{ThreadPool, ThreadPoolBuilder};

use super::{Level, Peer, Spawn};

/// `ThreadPool::spawn`: LIFO for jobs spawned by jobs.
pub type RayonLifo = Rayon<false>;
/// `ThreadPool::spawn_fifo`: FIFO for jobs spawned by jobs.
pub type RayonFifo = Rayon<true>;

/// Workers that have not left yet, and a condvar to wait for zero.
struct Alive {
    count: Mutex<usize>,
    gone: Condvar,
}

/// Running rayon pool; `FIFO` picks `spawn_fifo` over `spawn`.
pub struct Rayon<const FIFO: bool> {
    pool: Arc<ThreadPool>,
    alive: Arc<Alive>,
}

/// Spawn handle: a shared reference to the pool.
#[derive(Clone)]
pub struct RayonHandle<const FIFO: bool>(Arc<ThreadPool>);

impl<const FIFO: bool> Spawn for RayonHandle<FIFO> {
    fn spawn<F: FnOnce() + Send + 'static>(&self, _level: Level, job: F) {
        if FIFO {
            self.0.spawn_fifo(job);
        } else {
            self.0.spawn(job);
        }
    }
}

impl<const FIFO: bool> Peer for Rayon<FIFO> {
    const NAME: &'static str = if FIFO { "rayon spawn_fifo" } else { "rayon spawn" };
    type Handle = RayonHandle<FIFO>;

    fn start(workers: usize) -> Self {
        let alive = Arc::new(Alive { count: Mutex::new(workers), gone: Condvar::new() });
        let on_exit = Arc::clone(&alive);
        let pool = ThreadPoolBuilder::new()
            .num_threads(workers)
            .thread_name(|i| format!("rayon-{i}"))
            .exit_handler(move |_| {
                let mut n = on_exit.count.lock().unwrap_or_else(PoisonError::into_inner);
                *n -= 1;
                on_exit.gone.notify_all();
            })
            .build()
            .expect("build rayon pool");
        Rayon { pool: Arc::new(pool), alive }
    }

    fn handle(&self) -> RayonHandle<FIFO> {
        RayonHandle(Arc::clone(&self.pool))
    }

    fn shutdown(self) {
        drop(self.pool);
        let mut n = self.alive.count.lock().unwrap_or_else(PoisonError::into_inner);
        while *n > 0 {
            let (guard, timeout) =
                self.alive.gone.wait_timeout(n, Duration::from_secs(10)).unwrap_or_else(PoisonError::into_inner);
            n = guard;
            if timeout.timed_out() && *n > 0 {
                eprintln!("rayon peer: {} workers still alive after 10 s", *n);
                return;
            }
        }
    }
}
