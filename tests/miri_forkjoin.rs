//! Small fork-join programs for Miri, which checks the lifetime erasure of
//! `src/job/erase.rs` and the hand-off of results between stacks for
//! undefined behaviour (the other tests are too large for it, and their
//! watchdogs count wall-clock time). Under plain `cargo test` they run in
//! milliseconds. `.ci/run` runs them under Miri, on a pinned nightly, with
//! Tree Borrows (crossbeam-epoch needs it; crossbeam PR #996); the command
//! is there.

mod common;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use common::{fib, intentional_panic, is_intentional, quiet_panics};
use priopool::{Pool, Priority};

#[test]
fn join_hands_both_values_back_across_stacks() {
    let pool = Pool::builder().workers(2).build().unwrap();
    assert_eq!(pool.submit(Priority::LOW, || fib(7)).unwrap().join().unwrap(), 13);
    assert_eq!(pool.join(Priority::HIGH, || fib(4), || fib(5)), (3, 5));
}

#[test]
fn scope_jobs_borrow_the_callers_stack() {
    let pool = Pool::builder().workers(2).build().unwrap();
    let count = AtomicUsize::new(0);
    let mut slots = [0usize; 8];
    pool.scope(|s| {
        for (i, slot) in slots.iter_mut().enumerate() {
            let count = &count;
            let p = if i % 2 == 0 { Priority::HIGH } else { Priority::LOW };
            s.spawn(p, move |_| {
                *slot = i * i;
                count.fetch_add(1, Ordering::Relaxed);
            })
            .unwrap();
        }
    });
    assert_eq!(count.load(Ordering::Relaxed), 8);
    assert!(slots.iter().enumerate().all(|(i, &v)| v == i * i));
}

/// A scoped job that a peer runs, writing to the owner's stack, while the
/// owner is kept busy in the scope's body: the owner reads what the job
/// wrote as soon as the scope ends, which may be before the peer's frames
/// that ran the job have returned. Those frames must not still hold the
/// job's captures (a `&mut` into the owner's array) as arguments, whose
/// protection would make the owner's read undefined behaviour (Tree
/// Borrows). Same for a join half stolen by the peer.
#[test]
fn a_job_run_by_a_peer_lets_go_of_its_borrows_before_the_owner_reads() {
    let pool = Pool::builder().workers(2).build().unwrap();
    for _ in 0..4 {
        let mut slots = [0usize; 2];
        let started = AtomicBool::new(false);
        pool.scope(|s| {
            let (first, second) = slots.split_at_mut(1);
            let started = &started;
            s.spawn(Priority::HIGH, move |_| {
                first[0] = 1;
                started.store(true, Ordering::Release);
            })
            .unwrap();
            // Busy until a peer has the job, so that the owner does not run it.
            while !started.load(Ordering::Acquire) {
                std::hint::spin_loop();
            }
            second[0] = 2;
        });
        assert_eq!(slots, [1, 2]);
        let halves = pool
            .submit(Priority::LOW, || {
                let mut halves = [0usize; 2];
                let (left, right) = halves.split_at_mut(1);
                join_with_a_stolen_half(move || right[0] = 4);
                left[0] = 3;
                halves
            })
            .unwrap()
            .join()
            .unwrap();
        assert_eq!(halves, [3, 4]);
    }
}

/// Scoped jobs less urgent than the job that opened the scope are
/// claimable: its worker runs them inline while it waits, or the other
/// worker runs them from the queue; either way they borrow the job's
/// stack, and the entry a claim leaves behind is discarded later.
#[test]
fn claimable_scope_jobs_borrow_the_owners_stack() {
    let pool = Pool::builder().workers(2).build().unwrap();
    let spawner = pool.spawner();
    let sum = pool
        .submit(Priority::HIGH, move || {
            let mut slots = [0usize; 6];
            spawner.scope(|s| {
                for (i, slot) in slots.iter_mut().enumerate() {
                    s.spawn(Priority::LOW, move |_| *slot = i + 1).unwrap();
                }
            });
            slots.iter().sum::<usize>()
        })
        .unwrap()
        .join()
        .unwrap();
    assert_eq!(sum, 21);
    assert!(pool.wait_idle());
}

/// Yields until `started` is set, a bounded number of times: long enough
/// for the other worker to steal the half, and the test ends either way.
fn until_started(started: &AtomicBool) {
    for _ in 0..10_000 {
        if started.load(Ordering::Acquire) {
            break;
        }
        std::thread::yield_now();
    }
}

/// `priopool::join(a, b)` from a job, where `a` waits (bounded) for `b` to
/// start, so that `b` is mostly stolen by the other worker, and the thief
/// hands `b`'s outcome back to a frame that may return as soon as it sees
/// it. If nobody steals `b`, the joiner runs it after `a`, and the test
/// still ends.
fn join_with_a_stolen_half<RB: Send>(b: impl FnOnce() -> RB + Send) -> (u32, RB) {
    let started = AtomicBool::new(false);
    priopool::join(
        || {
            until_started(&started);
            1
        },
        || {
            started.store(true, Ordering::Release);
            b()
        },
    )
}

/// The stolen half returns a value (the case Miri caught in `join.rs`).
#[test]
fn a_stolen_half_hands_its_value_back() {
    let pool = Pool::builder().workers(2).build().unwrap();
    for _ in 0..40 {
        let got = pool.submit(Priority::LOW, || join_with_a_stolen_half(|| 2)).unwrap().join().unwrap();
        assert_eq!(got, (1, 2));
    }
}

/// The stolen half panics: the thief hands the panic back, then unwinds
/// out of the half's closure (`KeptPanic`, `join.rs`) while the joiner may
/// already have returned and freed the frame.
#[test]
fn a_stolen_half_that_panics_hands_its_panic_back() {
    quiet_panics(is_intentional);
    let pool = Pool::builder().workers(2).build().unwrap();
    for _ in 0..20 {
        let joined = pool.submit(Priority::LOW, || join_with_a_stolen_half(|| intentional_panic())).unwrap().join();
        assert!(joined.is_err(), "the join resumed the half's panic in its job");
    }
    assert!(pool.wait_idle());
}

/// The stolen half returns a borrow of the joiner's stack: the thief
/// hands it back through the slot, and the joiner writes to the borrowed
/// place directly as soon as the join returns, while the thief may still
/// be inside the calls that stored the value. No frame of the thief may
/// hold that value as a by-value argument when it ends the wait (its
/// reference would be protected, and the joiner's write undefined
/// behaviour under Tree Borrows).
#[test]
fn a_stolen_half_that_returns_a_borrow_lets_go_of_it_before_the_joiner_writes() {
    let pool = Pool::builder().workers(2).build().unwrap();
    for _ in 0..20 {
        let got = pool
            .submit(Priority::LOW, || {
                let mut place = 5u32;
                let borrow = &mut place;
                let (_, back) = join_with_a_stolen_half(move || borrow);
                *back += 1;
                place *= 10;
                place
            })
            .unwrap()
            .join()
            .unwrap();
        assert_eq!(got, 60);
    }
}

/// `Pool::join` from a thread outside the pool: `b` runs as a scoped job,
/// mostly on a worker while the caller is kept busy in `a`, and returns a
/// borrow of the caller's stack, which the caller writes to directly as
/// soon as the join returns.
#[test]
fn pool_join_from_outside_hands_a_borrow_back_from_a_worker() {
    let pool = Pool::builder().workers(2).build().unwrap();
    for _ in 0..8 {
        let mut place = 5u32;
        let borrow = &mut place;
        let started = AtomicBool::new(false);
        let (_, back) = pool.join(
            Priority::HIGH,
            || until_started(&started),
            || {
                started.store(true, Ordering::Release);
                borrow
            },
        );
        *back += 1;
        place *= 10;
        assert_eq!(place, 60);
    }
}
