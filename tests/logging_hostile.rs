//! The `log` feature with a hostile logger (feature `log`; one logger per
//! test binary, so one test running its cases in turn): each shutdown is
//! logged begun once and done once, in that order, whichever way the pool
//! shuts down and whether or not a worker is left to exit; a logger that panics on every record kills no worker and
//! miscounts nothing; a logger that spawns onto the pool, into a full
//! bounded level, from a worker's panic report, neither waits nor loses a
//! job. Run with `cargo test -p priopool-tests --features log`.

mod common;

use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use common::{BOUND, Gate, MARKER as DELIBERATE, prove_alive, quiet_intentional_panics, watchdog};
use priopool::{Pool, Priority, Spawner};

/// What the logger does with a record besides keeping its message.
const COLLECT: u8 = 0;
const PANIC: u8 = 1;
const SPAWN: u8 = 2;

struct Hostile {
    mode: AtomicU8,
    records: Mutex<Vec<String>>,
    /// Where `SPAWN` spawns, and how many jobs it spawned that ran.
    spawner: Mutex<Option<Spawner>>,
    spawned_ran: OnceLock<Arc<AtomicUsize>>,
}

impl log::Log for Hostile {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        metadata.target() == "priopool"
    }

    fn log(&self, record: &log::Record<'_>) {
        if !self.enabled(record.metadata()) {
            return;
        }
        self.records.lock().unwrap_or_else(|e| e.into_inner()).push(record.args().to_string());
        match self.mode.load(Ordering::SeqCst) {
            PANIC => std::panic::panic_any(DELIBERATE),
            SPAWN => {
                let spawner = self.spawner.lock().unwrap().clone();
                if let Some(spawner) = spawner {
                    let ran = Arc::clone(self.spawned_ran.get().unwrap());
                    spawner
                        .spawn(Priority::LOW, move || {
                            ran.fetch_add(1, Ordering::SeqCst);
                        })
                        .expect("a spawn from the pool's own worker never waits and is never refused");
                }
            }
            _ => {}
        }
    }

    fn flush(&self) {}
}

static LOGGER: Hostile = Hostile {
    mode: AtomicU8::new(COLLECT),
    records: Mutex::new(Vec::new()),
    spawner: Mutex::new(None),
    spawned_ran: OnceLock::new(),
};

/// The messages logged by `body`, in order.
fn logged(body: impl FnOnce()) -> Vec<String> {
    LOGGER.records.lock().unwrap().clear();
    body();
    std::mem::take(&mut *LOGGER.records.lock().unwrap())
}

fn count(records: &[String], needle: &str) -> usize {
    records.iter().filter(|m| m.contains(needle)).count()
}

/// A closure capture whose destructor panics.
struct Bomb;

impl Drop for Bomb {
    fn drop(&mut self) {
        std::panic::panic_any(DELIBERATE);
    }
}

/// Each way of shutting down logs its start once, before its end.
fn shutdowns_are_logged_begun_once() {
    type Shut = fn(Pool);
    let ways: [(&str, Shut); 4] = [
        ("shutdown", Pool::shutdown),
        ("shutdown_now", |pool| drop(pool.shutdown_now())),
        ("shutdown_timeout", |pool| drop(pool.shutdown_timeout(BOUND))),
        ("drop", drop),
    ];
    for (way, shut) in ways {
        let records = logged(|| {
            let pool = Pool::builder().workers(1).build().unwrap();
            pool.spawn(Priority::LOW, || {}).unwrap();
            shut(pool);
        });
        assert_eq!(count(&records, "shutdown begun"), 1, "{way}: {records:#?}");
        assert_eq!(count(&records, "shutdown done"), 1, "{way}: {records:#?}");
        let begun = records.iter().position(|m| m.contains("shutdown begun"));
        let done = records.iter().position(|m| m.contains("shutdown done"));
        assert!(begun < done, "{way}: {records:#?}");
    }
    // A pool whose every worker retired idle before the shutdown.
    let records = logged(|| {
        let pool = Pool::builder().min_workers(0).max_workers(1).keep_alive(Duration::from_millis(1)).build().unwrap();
        pool.spawn(Priority::LOW, || {}).unwrap();
        while pool.workers_retired() == 0 {
            std::thread::yield_now();
        }
        pool.shutdown();
    });
    assert_eq!(count(&records, "shutdown begun"), 1, "no workers: {records:#?}");
    assert_eq!(count(&records, "shutdown done"), 1, "no workers: {records:#?}");
}

/// A logger that panics on every record: job panics, hook panics and
/// destructor panics are each counted once, and every worker lives on.
/// (With `log_event`'s `catch_unwind` removed, this hangs.)
fn a_panicking_logger_kills_nothing() {
    const PANICS: usize = 20;
    LOGGER.mode.store(PANIC, Ordering::SeqCst);
    let pool = Pool::builder()
        .workers(2)
        .panic_handler(|_| {})
        .after_job(|_, _, _| std::panic::panic_any(DELIBERATE))
        .build()
        .unwrap();
    for _ in 0..PANICS {
        pool.spawn(Priority::LOW, || std::panic::panic_any(DELIBERATE)).unwrap();
    }
    // Expires at once: its closure's destructor panics outside a run.
    let bomb = Bomb;
    pool.job(Priority::LOW).max_wait(Duration::ZERO).spawn(move || drop(bomb)).unwrap();
    prove_alive(&pool.spawner(), 2);
    assert!(pool.wait_idle());
    let metrics = pool.metrics();
    assert_eq!(pool.panic_count(), PANICS);
    // The job panics and the barrier jobs of `prove_alive`: each ran its
    // `after_job` hook, which panicked once.
    assert_eq!(metrics.hook_panics, PANICS as u64 + 2, "{metrics:?}");
    assert_eq!(metrics.workers.current, 2, "{metrics:?}");
    let spawner = pool.spawner();
    // Joins the deadline timer, which may be the one dropping the bomb.
    pool.shutdown();
    LOGGER.mode.store(COLLECT, Ordering::SeqCst);
    let metrics = spawner.metrics();
    assert_eq!((metrics.drop_panics, metrics.hook_panics), (1, PANICS as u64 + 2), "{metrics:?}");
}

/// A logger that spawns onto the pool when a worker starts or reports a
/// job's panic: the spawn comes from the pool's own worker thread, so it
/// never waits, even into a full level, and every job it spawns runs.
fn a_spawning_logger_never_waits() {
    const PANICS: usize = 10;
    let ran = Arc::clone(LOGGER.spawned_ran.get_or_init(Arc::default));
    let pool = Pool::builder().workers(1).capacity(Priority::LOW, 1).panic_handler(|_| {}).build().unwrap();
    let gate = Gate::hold(&pool, 1);
    pool.spawn(Priority::LOW, || {}).unwrap();
    for _ in 0..PANICS {
        pool.spawn(Priority::HIGH, || std::panic::panic_any(DELIBERATE)).unwrap();
    }
    *LOGGER.spawner.lock().unwrap() = Some(pool.spawner());
    LOGGER.mode.store(SPAWN, Ordering::SeqCst);
    // A new worker logs its start outside any job, before it takes one: its
    // spawn is admitted over the capacity while the only other worker is
    // held (on 1d6cd1c it waited for room, for ever).
    pool.set_workers(2).unwrap();
    while pool.metrics().level(Priority::LOW).unwrap().submitted < 2 {
        std::thread::yield_now();
    }
    gate.release();
    assert!(pool.wait_idle());
    LOGGER.mode.store(COLLECT, Ordering::SeqCst);
    *LOGGER.spawner.lock().unwrap() = None;
    assert_eq!(ran.load(Ordering::SeqCst), PANICS + 1);
    let low = pool.metrics().level(Priority::LOW).unwrap().clone();
    assert_eq!(
        (low.submitted, low.completed, low.rejected, low.full_waits),
        (PANICS as u64 + 2, PANICS as u64 + 2, 0, 0)
    );
    pool.shutdown();
}

#[test]
fn a_hostile_logger_breaks_nothing() {
    quiet_intentional_panics();
    log::set_logger(&LOGGER).expect("the only logger of this test binary");
    log::set_max_level(log::LevelFilter::Trace);
    watchdog("hostile logger", BOUND * 2, || {
        shutdowns_are_logged_begun_once();
        a_panicking_logger_kills_nothing();
        a_spawning_logger_never_waits();
    });
}
