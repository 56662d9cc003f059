//! Bounded starvation (`Builder::max_passes`): while a level holds a job,
//! one worker starts at most `k + L − 2` jobs of more urgent levels in a
//! row before one of that level (`src/queue/aging.rs`), even while urgent
//! jobs keep coming (chains of HIGH jobs, each spawning the next).
//!
//! One worker, held by a gate job while a random batch is queued; each job
//! logs its start, and each spawn is logged before it is made, so the log
//! says, at every start, which levels held a job. Replaying it counts the
//! passes of every level and checks the bound. Seen failing on a broken
//! core: with `max_passes` ignored (strict priority), a HIGH chain of more
//! than `k` jobs passes a queued LOW job more than `k` times.

mod common;

use std::sync::{Arc, Mutex};

use common::{CASE_BOUND, Tally, watchdog};
use priopool::{Pool, Priority, Spawner};
use proptest::prelude::*;

#[derive(Clone, Copy, Debug)]
enum Event {
    Spawned(usize),
    Started(usize),
}

/// A job of the batch: its level, how many HIGH jobs follow it in a chain
/// (each spawned by the one before), and a child at some level.
#[derive(Clone, Copy, Debug)]
struct Item {
    level: usize,
    chain: u32,
    child: Option<usize>,
}

type Log = Arc<Mutex<Vec<Event>>>;

fn spawn(spawner: &Spawner, log: &Log, done: &Arc<Tally>, level: usize, chain: u32, child: Option<usize>) {
    log.lock().unwrap().push(Event::Spawned(level));
    let (inner, log, done) = (spawner.clone(), Arc::clone(log), Arc::clone(done));
    spawner
        .spawn(Priority::level(level), move || {
            log.lock().unwrap().push(Event::Started(level));
            if chain > 0 {
                spawn(&inner, &log, &done, 0, chain - 1, None);
            }
            if let Some(child) = child {
                spawn(&inner, &log, &done, child, 0, None);
            }
            done.add();
        })
        .expect("the pool is open");
}

/// Runs the batch on one worker with bound `k` and checks the log.
fn bounded_passes(levels: usize, k: u32, batch: Vec<Item>) -> Result<(), TestCaseError> {
    let pool = Pool::builder().workers(1).levels(levels).max_passes(k).build().expect("the pool builds");
    let (log, done): (Log, _) = (Arc::default(), Arc::new(Tally::default()));
    let gate = common::hold_at(&pool, 1, Priority::HIGH);
    let spawner = pool.spawner();
    let mut jobs = 0;
    for item in &batch {
        spawn(&spawner, &log, &done, item.level, item.chain, item.child);
        jobs += 1 + item.chain as usize + usize::from(item.child.is_some());
    }
    gate.open();
    done.wait_for(jobs);
    pool.shutdown();
    let bound = k as usize + levels - 2;
    let mut queued = vec![0usize; levels];
    let mut passes = vec![0usize; levels];
    for (at, event) in log.lock().unwrap().iter().enumerate() {
        match *event {
            Event::Spawned(level) => queued[level] += 1,
            Event::Started(level) => {
                queued[level] -= 1;
                passes[level] = 0;
                for less in level + 1..levels {
                    passes[less] = if queued[less] > 0 { passes[less] + 1 } else { 0 };
                    prop_assert!(
                        passes[less] <= bound,
                        "event {at}: level {less} passed over {} times in a row (bound {bound}, k = {k}, {levels} levels)",
                        passes[less]
                    );
                }
            }
        }
    }
    Ok(())
}

fn item(levels: usize) -> impl Strategy<Value = Item> {
    (0..levels, 0..12u32, prop::option::of(0..levels)).prop_map(|(level, chain, child)| Item { level, chain, child })
}

fn case() -> impl Strategy<Value = (usize, u32, Vec<Item>)> {
    (2..=4usize, 1..=4u32)
        .prop_flat_map(|(levels, k)| (Just(levels), Just(k), prop::collection::vec(item(levels), 1..40)))
}

proptest! {
    #![proptest_config(common::case_config(64))]

    #[test]
    fn a_waiting_level_is_passed_over_at_most_k_plus_levels_minus_2_times((levels, k, batch) in case()) {
        watchdog("bounded starvation", CASE_BOUND, move || bounded_passes(levels, k, batch))?;
    }
}
