//! Every job ends in exactly one fate (completed, panicked, cancelled,
//! expired), never runs after a cancellation was acknowledged, and has its
//! closure dropped; `shutdown_now` counts exactly the jobs it cancelled.
//!
//! A property test over random programs of submits (some with deadlines,
//! some holding their worker on a gate, some panicking, some spawning a
//! child), spawns, cancels at random points, and an optional
//! `shutdown_now` at a random point whose gate opens from another thread at
//! an arbitrary moment of the sweep.

mod common;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use common::{BOUND, Latch, OnDrop, intentional_panic, quiet_intentional_panics, watchdog};
use priopool::{CancelHandle, CancelOutcome, JobError, JobHandle, Pool, Priority, SpawnErrorKind, Spawner};
use proptest::prelude::*;

const LEVELS: usize = 3;

#[derive(Clone, Debug)]
enum Op {
    Submit { level: usize, deadline_us: Option<u64>, hold: bool, panic: bool, child: bool },
    Spawn { level: usize, hold: bool },
    Cancel(usize),
    ShutdownNow,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0..LEVELS, proptest::option::of(deadline_us()), any::<bool>(), prop::bool::weighted(0.15), prop::bool::weighted(0.2))
            .prop_map(|(level, deadline_us, hold, panic, child)| Op::Submit { level, deadline_us, hold, panic, child }),
        1 => (0..LEVELS, any::<bool>()).prop_map(|(level, hold)| Op::Spawn { level, hold }),
        2 => any::<usize>().prop_map(Op::Cancel),
        1 => Just(Op::ShutdownNow),
    ]
}

/// Deadlines from "already due" through "races the workers" to "never
/// reached", in microseconds from the submit.
fn deadline_us() -> impl Strategy<Value = u64> {
    prop_oneof![Just(0), 1..50u64, 50..500u64, Just(3_600_000_000)]
}

/// What happened to one job, as seen from inside it and by its canceller.
#[derive(Default)]
struct Record {
    level: usize,
    runs: AtomicUsize,
    dropped: AtomicBool,
    has_deadline: bool,
    panics: bool,
    /// A cancel() said `Prevented` before any shutdown_now.
    prevented_by_handle: AtomicBool,
}

enum Handle {
    Join(JobHandle<()>),
    Cancel(CancelHandle),
    Refused,
}

struct Job {
    record: Arc<Record>,
    handle: Handle,
}

type Children = Arc<Mutex<Vec<(Arc<Record>, JobHandle<()>)>>>;

/// The closure of a job: hold on the gate if asked, count the run, maybe
/// spawn a child, maybe panic.
fn body(
    record: &Arc<Record>,
    gate: Option<Latch>,
    child: Option<(Spawner, Children)>,
) -> impl FnOnce() + Send + 'static {
    let record = Arc::clone(record);
    // Marks the record dropped when the closure is.
    let guard = {
        let record = Arc::clone(&record);
        OnDrop(move || record.dropped.store(true, Ordering::SeqCst))
    };
    move || {
        let _guard = guard;
        if let Some(gate) = gate {
            gate.wait();
        }
        record.runs.fetch_add(1, Ordering::SeqCst);
        if let Some((spawner, children)) = child {
            let child = Arc::new(Record { level: 0, ..Record::default() });
            let handle = spawner.submit(Priority::HIGH, body(&child, None, None)).expect("a running job may spawn");
            children.lock().unwrap().push((child, handle));
        }
        if record.panics {
            intentional_panic();
        }
    }
}

fn run_program(workers: usize, ops: Vec<Op>) {
    let mut pool = Some(Pool::builder().workers(workers).levels(LEVELS).build().unwrap());
    let spawner = pool.as_ref().unwrap().spawner();
    let gate = Latch::new();
    let children: Children = Arc::default();
    let mut jobs: Vec<Job> = Vec::new();
    let mut cancelled_by_shutdown = None;

    for op in ops {
        match op {
            Op::Submit { level, deadline_us, hold, panic, child } => {
                let record =
                    Arc::new(Record { level, has_deadline: deadline_us.is_some(), panics: panic, ..Record::default() });
                let f = body(&record, hold.then(|| gate.clone()), child.then(|| (spawner.clone(), children.clone())));
                let mut builder = spawner.job(Priority::level(level));
                if let Some(us) = deadline_us {
                    builder = builder.deadline(Instant::now() + Duration::from_micros(us));
                }
                let handle = match builder.submit(f) {
                    Ok(handle) => Handle::Join(handle),
                    Err(refused) => {
                        assert_eq!(refused.kind(), SpawnErrorKind::Shutdown);
                        drop(refused.into_inner());
                        Handle::Refused
                    }
                };
                jobs.push(Job { record, handle });
            }
            Op::Spawn { level, hold } => {
                let record = Arc::new(Record { level, ..Record::default() });
                let f = body(&record, hold.then(|| gate.clone()), None);
                let handle = match spawner.job(Priority::level(level)).spawn(f) {
                    Ok(handle) => Handle::Cancel(handle),
                    Err(refused) => {
                        assert_eq!(refused.kind(), SpawnErrorKind::Shutdown);
                        drop(refused.into_inner());
                        Handle::Refused
                    }
                };
                jobs.push(Job { record, handle });
            }
            Op::Cancel(i) if !jobs.is_empty() => {
                let job = &jobs[i % jobs.len()];
                let outcome = match &job.handle {
                    Handle::Join(handle) => handle.cancel(),
                    Handle::Cancel(handle) => handle.cancel(),
                    Handle::Refused => continue,
                };
                let record = &job.record;
                match outcome {
                    CancelOutcome::Prevented => {
                        assert!(
                            record.dropped.load(Ordering::SeqCst),
                            "Prevented, but the closure was not dropped yet"
                        );
                        assert_eq!(record.runs.load(Ordering::SeqCst), 0, "Prevented, but the job ran");
                        if cancelled_by_shutdown.is_none() {
                            record.prevented_by_handle.store(true, Ordering::SeqCst);
                        }
                    }
                    CancelOutcome::Requested | CancelOutcome::TooLate => {}
                    other => panic!("unknown outcome {other:?}"),
                }
            }
            Op::Cancel(_) => {}
            Op::ShutdownNow => {
                if let Some(pool) = pool.take() {
                    // Held jobs are released at an arbitrary point of the sweep.
                    let opener = {
                        let gate = gate.clone();
                        thread::spawn(move || gate.open())
                    };
                    cancelled_by_shutdown = Some(pool.shutdown_now());
                    opener.join().unwrap();
                }
            }
        }
    }
    gate.open();
    if let Some(pool) = pool.take() {
        pool.shutdown();
    }

    // Every job's fate, checked against what it recorded.
    let mut expected_cancelled = [0usize; LEVELS];
    for (i, job) in jobs.into_iter().enumerate() {
        let record = &job.record;
        let runs = record.runs.load(Ordering::SeqCst);
        assert!(record.dropped.load(Ordering::SeqCst), "job {i}: closure never dropped");
        let prevented = record.prevented_by_handle.load(Ordering::SeqCst);
        let cancelled = match job.handle {
            Handle::Join(handle) => match handle.join() {
                Ok(()) => {
                    assert_eq!((runs, record.panics), (1, false), "job {i} completed");
                    false
                }
                Err(JobError::Panicked(_)) => {
                    assert_eq!((runs, record.panics), (1, true), "job {i} panicked");
                    false
                }
                Err(JobError::Cancelled) => {
                    assert_eq!(runs, 0, "job {i} was cancelled but ran");
                    true
                }
                Err(JobError::Expired) => {
                    assert_eq!(runs, 0, "job {i} expired but ran");
                    assert!(record.has_deadline, "job {i} expired without a deadline");
                    assert!(!prevented, "job {i}: Prevented, then expired");
                    false
                }
                Err(other) => panic!("job {i}: unknown error {other:?}"),
            },
            Handle::Cancel(handle) => {
                assert!(handle.is_finished(), "job {i} still pending after shutdown");
                assert!(runs <= 1, "job {i} ran {runs} times");
                // Spawned jobs have no deadline: not running means cancelled.
                runs == 0
            }
            Handle::Refused => {
                assert_eq!(runs, 0, "refused job {i} ran");
                false
            }
        };
        if prevented {
            assert!(cancelled, "job {i}: Prevented, but its handle did not say Cancelled");
        } else if cancelled {
            expected_cancelled[record.level] += 1;
        }
    }
    for (record, handle) in std::mem::take(&mut *children.lock().unwrap()) {
        let runs = record.runs.load(Ordering::SeqCst);
        assert!(record.dropped.load(Ordering::SeqCst));
        match handle.join() {
            Ok(()) => assert_eq!(runs, 1),
            Err(JobError::Cancelled) => {
                assert_eq!(runs, 0);
                expected_cancelled[0] += 1;
            }
            Err(other) => panic!("child: {other:?}"),
        }
    }
    match cancelled_by_shutdown {
        Some(counts) => assert_eq!(counts.by_level(), &expected_cancelled, "shutdown_now's counts"),
        None => assert_eq!(expected_cancelled, [0; LEVELS], "cancelled without a cancel or shutdown_now"),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn every_job_has_exactly_one_fate(workers in 1..=3usize, ops in prop::collection::vec(op(), 1..40)) {
        quiet_intentional_panics();
        watchdog("a random program", BOUND, move || run_program(workers, ops));
    }
}
