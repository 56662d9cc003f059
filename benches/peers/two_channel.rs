//! Textbook priority pool #1: one channel per level.
//!
//! Design: two unbounded crossbeam channels, `high` and `low`, shared by all
//! workers (multi-consumer), plus a `stop` channel that never carries a
//! message. A worker loops:
//!
//! 1. `try_recv` on `high`, so a waiting urgent job is taken without
//!    touching `low`;
//! 2. otherwise block in `select_biased!` over `high`, `low`, `stop`, in that
//!    order. When several are ready the first listed wins, so `high` beats
//!    `low`, and `stop` (ready once its sender is dropped) is chosen only
//!    when both job channels are empty.
//!
//! Shutdown (or drop) drops the `stop` sender and joins every worker. A worker leaves
//! only when it sees both job channels empty, so every job queued before
//! shutdown runs; a job that spawns while the pool drains is run too,
//! because the worker that spawned it checks the channels again before it
//! can leave. Spawning from outside once shutdown has begun is a caller bug:
//! such a job may be dropped unrun (or, after the workers are gone, `spawn`
//! panics).
//!
//! What it costs: every job goes through one shared queue (no locality),
//! and a blocked worker is woken by the channel's own wait list, one
//! wake-up per message.

use std::thread::{self, JoinHandle};

use crossbeam_channel::{Receiver, Sender, select_biased, unbounded};

use super::{Job, Level, Peer, Spawn};

/// Running pool: the handle, the stop sender and the workers to join.
pub struct TwoChannel {
    handle: TwoChannelHandle,
    /// Dropped to tell idle workers to leave.
    stop: Option<Sender<()>>,
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
        let tx = match level {
            Level::High => &self.high,
            Level::Low => &self.low,
        };
        if tx.send(Box::new(job)).is_err() {
            panic!("two-channel pool: spawn after shutdown");
        }
    }
}

fn worker(high: Receiver<Job>, low: Receiver<Job>, stop: Receiver<()>) {
    loop {
        if let Ok(job) = high.try_recv() {
            job();
            continue;
        }
        select_biased! {
            recv(high) -> msg => if let Ok(job) = msg { job() },
            recv(low) -> msg => if let Ok(job) = msg { job() },
            // Only ever an error (disconnected): both job channels were empty.
            recv(stop) -> _ => return,
        }
    }
}

impl Peer for TwoChannel {
    const NAME: &'static str = "two-channel";
    type Handle = TwoChannelHandle;

    fn start(workers: usize) -> Self {
        let (high_tx, high_rx) = unbounded::<Job>();
        let (low_tx, low_rx) = unbounded::<Job>();
        let (stop_tx, stop_rx) = unbounded::<()>();
        let workers = (0..workers)
            .map(|i| {
                let (h, l, s) = (high_rx.clone(), low_rx.clone(), stop_rx.clone());
                thread::Builder::new()
                    .name(format!("two-channel-{i}"))
                    .spawn(move || worker(h, l, s))
                    .expect("spawn two-channel worker")
            })
            .collect();
        TwoChannel { handle: TwoChannelHandle { high: high_tx, low: low_tx }, stop: Some(stop_tx), workers }
    }

    fn handle(&self) -> TwoChannelHandle {
        self.handle.clone()
    }

    fn shutdown(self) {
        drop(self);
    }
}

/// Dropping the pool shuts it down: drain, then join.
impl Drop for TwoChannel {
    fn drop(&mut self) {
        drop(self.stop.take());
        for w in self.workers.drain(..) {
            // A worker only ends early if a job panicked; the bench's don't.
            let _ = w.join();
        }
    }
}
