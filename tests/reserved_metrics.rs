//! Attack tests (issue 15): exact per-level figures at rest with reserved threads,
//! promotions (both ways), bounded starvation, cancellations, expiries,
//! panics and jobs claimed by waiting jobs, mixed and racing.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use common::{assert_at_rest, intentional_panic, quiet_intentional_panics, watchdog};
use priopool::{Metrics, Pool, Priority};

fn assert_exact(m: &Metrics, ran: usize, what: &str) {
    assert_at_rest(m, what);
    let started: u64 = m.levels.iter().map(|l| l.started).sum();
    assert_eq!(started as usize, ran, "{what}: jobs whose closure began: {m:?}");
}

#[test]
fn figures_add_up_with_reserved_threads_promote_and_max_passes() {
    quiet_intentional_panics();
    const ROUNDS: usize = 40;
    const JOBS: usize = 400;
    watchdog("exact figures", Duration::from_secs(240), || {
        for round in 0..ROUNDS {
            let pool = Pool::builder()
                .workers(2)
                .levels(4)
                .reserved_threads(2)
                .reserved_levels(Priority::level(1))
                .max_passes(1 + (round % 3) as u32)
                .build()
                .unwrap();
            let ran = Arc::new(AtomicUsize::new(0));
            let handles = Arc::new(Mutex::new(Vec::new()));
            let mut rng = fastrand::Rng::with_seed(round as u64);
            for i in 0..JOBS {
                let level = rng.usize(0..4);
                let kind = rng.u8(0..8);
                let ran2 = Arc::clone(&ran);
                let spawner = pool.spawner();
                let handles2 = Arc::clone(&handles);
                let body = move || {
                    ran2.fetch_add(1, Ordering::Relaxed);
                    match kind {
                        0 => intentional_panic(),
                        1 => {
                            // Wait on a handle of a less urgent job (a claim).
                            let r = Arc::clone(&ran2);
                            let h = spawner
                                .submit(Priority::level(3), move || {
                                    r.fetch_add(1, Ordering::Relaxed);
                                })
                                .unwrap();
                            let _ = h.join();
                        }
                        2 => {
                            // Promote a queued job from inside.
                            let popped = handles2.lock().unwrap().pop();
                            if let Some(h) = popped {
                                let _ = priopool::JobHandle::<()>::promote(&h, Priority::level(0));
                                handles2.lock().unwrap().push(h);
                            }
                        }
                        _ => {}
                    }
                };
                let h = if kind == 3 {
                    pool.job(Priority::level(level)).max_wait(Duration::from_micros(rng.u64(0..300))).submit(body)
                } else {
                    pool.submit(Priority::level(level), body)
                }
                .unwrap();
                match i % 5 {
                    0 => {
                        let _ = h.cancel();
                    }
                    1 => {
                        let _ = h.promote(Priority::level(rng.usize(0..4)));
                        handles.lock().unwrap().push(h);
                    }
                    _ => handles.lock().unwrap().push(h),
                }
            }
            // Race promotions and cancellations from outside.
            let hs: Vec<_> = std::mem::take(&mut *handles.lock().unwrap());
            for (k, h) in hs.iter().enumerate() {
                if k % 7 == 0 {
                    let _ = h.promote(Priority::level(k % 4));
                } else if k % 11 == 0 {
                    let _ = h.cancel();
                }
            }
            for h in hs {
                let _ = h.join();
            }
            let deadline = Instant::now() + Duration::from_secs(30);
            while !handles.lock().unwrap().is_empty() || !pool.wait_idle_timeout(Duration::from_millis(10)) {
                let taken = std::mem::take(&mut *handles.lock().unwrap());
                for h in taken {
                    let _ = h.join();
                }
                assert!(Instant::now() < deadline, "round {round}: not idle");
            }
            // Wait for jobs that are counted finished before their handle
            // says so; wait_idle covers it.
            let m = pool.metrics();
            assert_exact(&m, ran.load(Ordering::Relaxed), &format!("round {round}"));
            pool.shutdown();
            thread::yield_now();
        }
    });
}
