//! The `threadpool` crate as a peer.
//!
//! Design (the crate's, not ours): all workers share one std `mpsc`
//! receiver behind a `Mutex`; `execute` sends a boxed job. There is no
//! locality and no priority: `level` is ignored, so in scenario C a high
//! job waits behind every low job queued before it. Jobs spawned by jobs
//! go through the same channel.
//!
//! Shutdown: `ThreadPool::join` waits until the queue is empty and no job
//! is running. The crate offers no way to join its threads; they leave on
//! their own once the last handle (the channel's last sender) is dropped.

use threadpool::ThreadPool;

use super::{Level, Peer, Spawn};

/// Running pool.
pub struct ThreadpoolCrate(ThreadPool);

/// Spawn handle: the crate's pool is itself a cloneable handle.
#[derive(Clone)]
pub struct ThreadpoolHandle(ThreadPool);

impl Spawn for ThreadpoolHandle {
    fn spawn<F: FnOnce() + Send + 'static>(&self, _level: Level, job: F) {
        self.0.execute(job);
    }
}

impl Peer for ThreadpoolCrate {
    const NAME: &'static str = "threadpool";
    type Handle = ThreadpoolHandle;

    fn start(workers: usize) -> Self {
        ThreadpoolCrate(threadpool::Builder::new().num_threads(workers).thread_name("threadpool".into()).build())
    }

    fn handle(&self) -> ThreadpoolHandle {
        ThreadpoolHandle(self.0.clone())
    }

    fn shutdown(self) {
        self.0.join();
    }
}
