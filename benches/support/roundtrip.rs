//! The machine's core-to-core round trip: the latency floor under every
//! hand-off between a spawner and a worker, printed with each run so that
//! figures from different runs (or machines) can be put side by side.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread;
use std::time::Instant;

/// The median of a few measurements of one round trip between two threads
/// that take turns writing one shared counter (each waits, spinning, for
/// the other's write), in nanoseconds. The OS places the two threads; on a
/// machine with other load the figure rises, which is part of its point.
pub fn core_round_trip_ns() -> f64 {
    const TRIPS: u64 = 20_000;
    let mut samples: Vec<f64> = (0..5)
        .map(|_| {
            let turn = Arc::new(AtomicU64::new(0));
            let other = Arc::clone(&turn);
            let echo = thread::spawn(move || {
                for i in 0..TRIPS {
                    while other.load(Ordering::Acquire) != 2 * i + 1 {
                        std::hint::spin_loop();
                    }
                    other.store(2 * i + 2, Ordering::Release);
                }
            });
            let start = Instant::now();
            for i in 0..TRIPS {
                turn.store(2 * i + 1, Ordering::Release);
                while turn.load(Ordering::Acquire) != 2 * i + 2 {
                    std::hint::spin_loop();
                }
            }
            let ns = start.elapsed().as_nanos() as f64 / TRIPS as f64;
            echo.join().expect("the echo thread does not panic");
            ns
        })
        .collect();
    samples.sort_by(f64::total_cmp);
    samples[samples.len() / 2]
}
