//! Textbook priority pool #1: one channel per level.
//!
//! Design: two unbounded crossbeam channels, `high` and `low`, shared by all
//! workers (multi-consumer). A worker loops:
//!
//! 1. `try_recv` on `high`, so a waiting urgent job is taken without
//!    touching `low`;
//! 2. otherwise block in `select_biased!` over `high` and `low`, in that
//!    order: when both are ready the first listed wins, so `high` beats
//!    `low`.
//!
//! Shutdown (or drop) drops both senders and joins every worker. A channel
//! whose senders are gone answers `recv` with an error once it is empty; a
//! worker that sees one channel closed runs what is left on the other and
//! leaves, so every job queued before shutdown runs. Spawning once shutdown
//! has begun is a caller bug here (`spawn` panics).
//!
//! What it costs: every job goes through one shared queue (no locality),
//! and a blocked worker is woken by the channel's own wait list, one
//! wake-up per message.

use std::thread::{self, JoinHandle};

use crossbeam_channel::{Receiver, Sender, select_biased, unbounded};

use super::{Job, Level, Peer, Spawn};

/// Running pool: the handle (whose senders are dropped at shutdown) and the
/// workers to join.
pub struct TwoChannel {
    handle: Option<TwoChannelHandle>,
    workers: Vec<JoinHandle<()>>,
}

/// Spawn handle: a sender for each level.
#[derive(Clone)]
pub struct TwoChannelHandle {
    high: Sender<Job>,
    low: Sender<Job>,
}

impl Spawn for TwoChannelHandle {
    fn spawn<F: FnOnce() + Send + 'static>(&self, level: Level, job: F) {
        self.spawn_boxed(level, Box::new(job));
    }

    fn spawn_boxed(&self, level: Level, job: Job) {
        let tx = match level {
            Level::High => &self.high,
            Level::Low => &self.low,
        };
        if tx.send(job).is_err() {
            panic!("two-channel pool: spawn after shutdown");
        }
    }
}

/// A worker of the textbook pool: the high channel first, then whichever
/// level has a job; drains the other level once one is closed.
pub fn worker(high: Receiver<Job>, low: Receiver<Job>) {
    loop {
        if let Ok(job) = high.try_recv() {
            job();
            continue;
        }
        select_biased! {
            recv(high) -> msg => match msg {
                Ok(job) => job(),
                // Closed and empty: finish the other level, then leave.
                Err(_) => return low.iter().for_each(|job| job()),
            },
            recv(low) -> msg => match msg {
                Ok(job) => job(),
                Err(_) => return high.iter().for_each(|job| job()),
            },
        }
    }
}

impl Peer for TwoChannel {
    const NAME: &'static str = "two-channel";
    type Handle = TwoChannelHandle;

    fn start(workers: usize) -> Self {
        let (high_tx, high_rx) = unbounded::<Job>();
        let (low_tx, low_rx) = unbounded::<Job>();
        let workers = (0..workers)
            .map(|i| {
                let (h, l) = (high_rx.clone(), low_rx.clone());
                thread::Builder::new()
                    .name(format!("two-channel-{i}"))
                    .spawn(move || worker(h, l))
                    .expect("spawn two-channel worker")
            })
            .collect();
        TwoChannel { handle: Some(TwoChannelHandle { high: high_tx, low: low_tx }), workers }
    }

    fn handle(&self) -> TwoChannelHandle {
        self.handle.clone().expect("the pool is running")
    }

    fn shutdown(self) {
        drop(self);
    }
}

/// Dropping the pool shuts it down: drain, then join. (Handles cloned out
/// keep their senders; the bench drops them before the pool.)
impl Drop for TwoChannel {
    fn drop(&mut self) {
        drop(self.handle.take());
        for w in self.workers.drain(..) {
            // A worker only ends early if a job panicked; the bench's don't.
            let _ = w.join();
        }
    }
}
