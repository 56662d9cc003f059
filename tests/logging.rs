//! The `log` events (feature `log`): worker start and exit at debug, job
//! panics and destructor panics outside a job at warn with level, name and
//! message (or where the payload went: a job handle, a scope or a `join`),
//! shutdown begun and done at info.
//! Run with `cargo test -p priopool-tests --features log`.

mod common;

use std::sync::Mutex;
use std::time::Duration;

use common::{MARKER as DELIBERATE, quiet_intentional_panics};
use priopool::{Pool, Priority};

/// Collects every record of target "priopool".
struct Collector(Mutex<Vec<(log::Level, String)>>);

impl log::Log for Collector {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        metadata.target() == "priopool"
    }

    fn log(&self, record: &log::Record<'_>) {
        if self.enabled(record.metadata()) {
            self.0.lock().expect("lock").push((record.level(), record.args().to_string()));
        }
    }

    fn flush(&self) {}
}

static COLLECTOR: Collector = Collector(Mutex::new(Vec::new()));

/// A closure capture whose destructor panics.
struct Bomb;

impl Drop for Bomb {
    fn drop(&mut self) {
        panic!("{DELIBERATE}: a destructor");
    }
}

#[test]
fn the_pool_logs_its_lifecycle_and_job_panics() {
    quiet_intentional_panics();
    log::set_logger(&COLLECTOR).expect("the only logger of this test binary");
    log::set_max_level(log::LevelFilter::Trace);

    let pool = Pool::builder().workers(2).levels(3).panic_handler(|_| {}).build().expect("build");
    pool.spawn(Priority::level(1), || std::panic::panic_any(DELIBERATE)).expect("spawn");
    let named = pool.job(Priority::level(2)).name("nightly report");
    let handle = named.submit(|| -> () { std::panic::panic_any(DELIBERATE) }).expect("submit");
    assert!(handle.join().is_err());
    // A scoped job hands its payload to its scope, which resumes it here.
    let scoped = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        pool.scope(|s| s.spawn(Priority::HIGH, |_| std::panic::panic_any(DELIBERATE)).expect("spawn"))
    }));
    assert!(scoped.is_err());
    pool.spawn(Priority::HIGH, || {}).expect("spawn");
    // Expires at once, so its closure is dropped unrun (by the timer or a
    // worker), and its destructor panics.
    let bomb = Bomb;
    pool.job(Priority::LOW).max_wait(Duration::ZERO).spawn(move || drop(bomb)).expect("spawn");
    pool.shutdown();

    let records = COLLECTOR.0.lock().expect("lock").clone();
    let count = |level: log::Level, needle: &str| {
        records.iter().filter(|(l, message)| *l == level && message.contains(needle)).count()
    };
    assert_eq!(count(log::Level::Debug, "started on thread"), 2, "{records:#?}");
    assert_eq!(count(log::Level::Debug, "exited"), 2, "{records:#?}");
    assert_eq!(count(log::Level::Warn, "a job at level 1 panicked on worker"), 1, "{records:#?}");
    assert_eq!(count(log::Level::Warn, DELIBERATE), 2, "the spawned job's and the destructor's: {records:#?}");
    assert_eq!(count(log::Level::Warn, "a job at level 2 named \"nightly report\" panicked"), 1, "{records:#?}");
    // The submitted job's and the scoped job's: no payload, and where it went.
    assert_eq!(count(log::Level::Warn, "its JobHandle, scope or join has the payload"), 2, "{records:#?}");
    let drop_panic = "dropping the closure of a job that never ran panicked (not a job panic)";
    assert_eq!(count(log::Level::Warn, drop_panic), 1, "{records:#?}");
    assert_eq!(count(log::Level::Info, "shutdown begun"), 1, "{records:#?}");
    assert_eq!(count(log::Level::Info, "shutdown done"), 1, "{records:#?}");
    let begun = records.iter().position(|(_, m)| m.contains("shutdown begun"));
    let done = records.iter().position(|(_, m)| m.contains("shutdown done"));
    assert!(begun < done, "{records:#?}");
    assert_eq!(records.len(), 2 + 2 + 4 + 2, "nothing else, and nothing per job: {records:#?}");
}
