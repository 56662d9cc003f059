//! Start deadlines on bounded levels (`JobBuilder::deadline`, `max_wait`
//! with `Builder::capacity`): a spawn from outside waits for room no longer
//! than its deadline, then comes back `Full` with its job; racing room
//! being made, every `WhenFull`, spawns from inside jobs (which never
//! wait, deadline or not) and a shutdown while producers wait.
//!
//! Seeded (fastrand; `CAPACITY_DEADLINES_SEED`, `CAPACITY_DEADLINES_ROUNDS`
//! to explore). Checked without timing: a spawn that waited with no
//! shorter bound than its deadline and came back `Full` did so only once
//! the deadline had passed; a spawn from inside is never refused unless it
//! asked `Refuse`; once the pool is at rest, every job ran once or was
//! dropped unrun once, `rejected` is exactly the refused spawns, every
//! refused spawn that would wait is among `full_waits`, and the levels add
//! up.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use common::{LONG_BOUND, assert_at_rest, watchdog};
use priopool::{Pool, Priority, SpawnErrorKind, Spawner, WhenFull};

const LEVELS: usize = 3;
const IDS: usize = 1 << 13;
const OPS: usize = 60;

#[derive(Default)]
struct Ledger {
    runs: Vec<AtomicU8>,
    dropped: Vec<AtomicU8>,
    next: AtomicUsize,
    refused: AtomicUsize,
    /// Refused `Full` after a wait (not `Refuse`): each counted a full wait.
    refused_waiting: AtomicUsize,
}

struct Ticket(usize, Arc<Ledger>, bool);

impl Ticket {
    fn new(ledger: &Arc<Ledger>) -> Ticket {
        let id = ledger.next.fetch_add(1, Ordering::SeqCst);
        assert!(id < IDS, "more jobs than tickets");
        Ticket(id, Arc::clone(ledger), false)
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        let counts = if self.2 { &self.1.runs } else { &self.1.dropped };
        counts[self.0].fetch_add(1, Ordering::SeqCst);
    }
}

/// A job that may spawn a child with a deadline from inside.
fn job(mut ticket: Ticket, spawner: Spawner, seed: u64) -> impl FnOnce() + Send + 'static {
    move || {
        ticket.2 = true;
        let mut rng = fastrand::Rng::with_seed(seed);
        for _ in 0..rng.usize(0..300) {
            std::hint::spin_loop();
        }
        if rng.u8(0..3) == 0 {
            let ledger = Arc::clone(&ticket.1);
            let child = job(Ticket::new(&ledger), spawner.clone(), rng.u64(..));
            let refuse = rng.bool();
            let mut builder =
                spawner.job(Priority::level(rng.usize(0..LEVELS))).max_wait(Duration::from_micros(rng.u64(0..50)));
            if refuse {
                builder = builder.when_full(WhenFull::Refuse);
            }
            if let Err(error) = builder.spawn(child) {
                assert!(refuse, "a spawn from inside with a deadline was refused: {:?}", error.kind());
                assert_eq!(error.kind(), SpawnErrorKind::Full);
                ledger.refused.fetch_add(1, Ordering::SeqCst);
            }
        }
    }
}

fn produce(spawner: Spawner, ledger: Arc<Ledger>, seed: u64) {
    let mut rng = fastrand::Rng::with_seed(seed);
    for _ in 0..OPS {
        let level = Priority::level(rng.usize(0..LEVELS));
        let child = job(Ticket::new(&ledger), spawner.clone(), rng.u64(..));
        let at = Instant::now() + Duration::from_micros(rng.u64(0..400));
        let when_full = match rng.u8(0..3) {
            0 => WhenFull::Wait,
            1 => WhenFull::Refuse,
            _ => WhenFull::WaitAtMost(Duration::from_micros(rng.u64(0..800))),
        };
        let builder = spawner.job(level).when_full(when_full);
        let builder = if rng.bool() {
            builder.deadline(at)
        } else {
            builder.max_wait(at.saturating_duration_since(Instant::now()))
        };
        match builder.submit(child) {
            Ok(handle) => drop(handle),
            Err(error) => {
                ledger.refused.fetch_add(1, Ordering::SeqCst);
                match error.kind() {
                    SpawnErrorKind::Shutdown => return,
                    SpawnErrorKind::Full if when_full == WhenFull::Refuse => {}
                    SpawnErrorKind::Full => {
                        ledger.refused_waiting.fetch_add(1, Ordering::SeqCst);
                        if when_full == WhenFull::Wait {
                            assert!(Instant::now() >= at, "Full before the deadline");
                        }
                    }
                    other => panic!("{other:?}"),
                }
            }
        }
        if rng.u8(0..4) == 0 {
            thread::sleep(Duration::from_micros(rng.u64(0..200)));
        }
    }
}

fn round(seed: u64) {
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut builder = Pool::builder().levels(LEVELS);
    builder = if rng.bool() {
        builder.min_workers(0).max_workers(rng.usize(1..=2)).keep_alive(Duration::from_millis(1))
    } else {
        builder.workers(rng.usize(1..=2))
    };
    for level in 0..LEVELS {
        if rng.bool() {
            builder = builder.capacity(Priority::level(level), rng.usize(1..=3));
        }
    }
    let pool = builder.build().unwrap();
    let ledger = Arc::new(Ledger {
        runs: (0..IDS).map(|_| AtomicU8::new(0)).collect(),
        dropped: (0..IDS).map(|_| AtomicU8::new(0)).collect(),
        ..Ledger::default()
    });
    let producers: Vec<_> = (0..3)
        .map(|p| {
            let (spawner, ledger) = (pool.spawner(), Arc::clone(&ledger));
            let seed = seed.wrapping_mul(7).wrapping_add(p);
            thread::spawn(move || produce(spawner, ledger, seed))
        })
        .collect();
    let spawner = pool.spawner();
    // Room made by cancelling levels, or a shutdown while producers wait.
    for _ in 0..rng.usize(0..20) {
        thread::sleep(Duration::from_micros(rng.u64(0..300)));
        pool.cancel_queued(Priority::level(rng.usize(0..LEVELS)));
    }
    match rng.u8(0..3) {
        0 => drop(pool.shutdown_now()),
        1 => pool.shutdown(),
        _ => {
            for producer in producers {
                producer.join().unwrap();
            }
            assert!(pool.wait_idle());
            check(&spawner, &ledger);
            return;
        }
    }
    for producer in producers {
        producer.join().unwrap();
    }
    check(&spawner, &ledger);
}

fn check(spawner: &Spawner, ledger: &Ledger) {
    let used = ledger.next.load(Ordering::SeqCst);
    let began = Instant::now();
    let metrics = loop {
        let m = spawner.metrics();
        let resolved =
            (0..used).all(|id| ledger.runs[id].load(Ordering::SeqCst) + ledger.dropped[id].load(Ordering::SeqCst) >= 1);
        if resolved && m.levels.iter().all(|l| l.backlog == 0 && l.running() == 0) {
            break m;
        }
        assert!(began.elapsed() < Duration::from_secs(20), "never at rest: {m:?}");
        thread::sleep(Duration::from_millis(1));
    };
    for id in 0..used {
        let (runs, dropped) = (ledger.runs[id].load(Ordering::SeqCst), ledger.dropped[id].load(Ordering::SeqCst));
        assert_eq!(runs + dropped, 1, "job {id} ran {runs} times and was dropped {dropped} times");
    }
    assert_at_rest(&metrics, "at rest");
    let sum = |f: fn(&priopool::LevelMetrics) -> u64| metrics.levels.iter().map(f).sum::<u64>() as usize;
    let runs: usize = (0..used).map(|id| usize::from(ledger.runs[id].load(Ordering::SeqCst))).sum();
    let refused = ledger.refused.load(Ordering::SeqCst);
    assert_eq!(sum(|l| l.completed), runs, "{metrics:?}");
    assert_eq!(sum(|l| l.rejected), refused, "{metrics:?}");
    assert_eq!(sum(|l| l.cancelled) + sum(|l| l.expired), used - runs - refused, "{metrics:?}");
    assert_eq!(sum(|l| l.submitted), used, "{metrics:?}");
    assert!(sum(|l| l.full_waits) >= ledger.refused_waiting.load(Ordering::SeqCst), "{metrics:?}");
}

#[test]
fn start_deadlines_bound_the_wait_for_room_and_every_job_is_accounted_for() {
    watchdog("capacity deadlines", LONG_BOUND, || {
        let base = std::env::var("CAPACITY_DEADLINES_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(0xdead);
        let rounds = std::env::var("CAPACITY_DEADLINES_ROUNDS").ok().and_then(|s| s.parse().ok()).unwrap_or(30);
        for seed in base..base + rounds {
            eprintln!("round {seed}");
            round(seed);
        }
    });
}
