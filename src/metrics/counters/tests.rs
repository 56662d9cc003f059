//! Unit tests of the counters: a retired worker folded in once, `since`,
//! and the oldest-wait bound.

use super::*;

#[test]
fn a_retired_worker_is_counted_once() {
    let core = MetricsCore::new(2, true);
    let queues = |_| 0;
    let a = core.attach();
    let b = core.attach();
    bump(&a.levels[1].started);
    bump(&a.levels[1].completed);
    bump(&b.levels[1].started);
    lock(a.waits.as_ref().unwrap())[1].record(5).unwrap();
    assert_eq!(core.detach(&a), 1);
    let m = core.snapshot(queues, ThreadCounts::default());
    assert_eq!((m.levels[1].started, m.levels[1].completed, m.workers.total), (2, 1, 1));
    assert_eq!(m.levels[1].wait.as_ref().map(|w| (w.count, w.max_us)), Some((1, 5)));
    assert_eq!(core.detach(&b), 0);
    let m = core.snapshot(queues, ThreadCounts::default());
    assert_eq!((m.levels[1].started, m.workers.total), (2, 0));
}

#[test]
fn since_gives_the_interval() {
    let core = MetricsCore::new(1, true);
    let queues = |_| 0;
    let w = core.attach();
    bump(&w.levels[0].started);
    lock(w.waits.as_ref().unwrap())[0].record(1000).unwrap();
    let first = core.snapshot(queues, ThreadCounts::default());
    bump(&w.levels[0].started);
    lock(w.waits.as_ref().unwrap())[0].record(10).unwrap();
    let window = core.snapshot(queues, ThreadCounts::default()).since(&first);
    assert_eq!((window.levels[0].submitted, window.levels[0].started), (1, 1));
    let wait = window.levels[0].wait.as_ref().unwrap();
    assert_eq!((wait.count, wait.max_us), (1, 10));
    // Reversed, the histograms do not subtract.
    assert!(first.since(&core.snapshot(queues, ThreadCounts::default())).levels[0].wait.is_none());
}

#[test]
fn oldest_wait_is_zero_without_backlog_and_grows_with_it() {
    let core = MetricsCore::new(1, true);
    let backlog = std::cell::Cell::new(0);
    let queues = |_| backlog.get();
    assert_eq!(core.snapshot(queues, ThreadCounts::default()).levels[0].oldest_wait, Some(Duration::ZERO));
    let stamp = core.stamp_queued(0, || true).unwrap();
    backlog.set(1);
    assert_eq!(core.rose_at[0].load(Ordering::Relaxed), stamp.raw());
    let a = core.snapshot(queues, ThreadCounts::default()).levels[0].oldest_wait.unwrap();
    let b = core.snapshot(queues, ThreadCounts::default()).levels[0].oldest_wait.unwrap();
    assert!(b >= a);
    // A second job on a non-empty level leaves the mark alone.
    core.stamp_queued(0, || false);
    assert_eq!(core.rose_at[0].load(Ordering::Relaxed), stamp.raw());
}

/// The entry of a job run ahead of it (`runtime/help.rs`) taken off its
/// queue is a take: a job queued behind that entry after the claim is
/// then the oldest, and the figure is no older than it.
#[test]
fn an_entry_run_ahead_taken_off_is_a_take() {
    let core = MetricsCore::new(1, true);
    let entries = std::cell::Cell::new(0);
    let queues = |_| entries.get();
    // A job found the level empty; its waiter claimed it.
    core.stamp_queued(0, || true);
    entries.set(1);
    core.ran_ahead(0);
    core.claim_won(0);
    std::thread::sleep(Duration::from_millis(20));
    // A job queued behind the claimed one's entry, which is then taken off.
    let before = Instant::now();
    core.stamp_queued(0, || false);
    entries.set(2);
    core.ahead_gone(0);
    entries.set(1);
    let low = core.snapshot(queues, ThreadCounts::default()).levels[0].clone();
    let waited_at_most = before.elapsed();
    assert_eq!(low.backlog, 1);
    let oldest = low.oldest_wait.unwrap();
    assert!(oldest <= waited_at_most, "{oldest:?} > {waited_at_most:?}");
}
