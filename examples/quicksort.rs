//! An in-place parallel quicksort with `priopool::join`, checked against
//! `sort_unstable` and timed beside a sequential quicksort of the same data.
//!
//! Each call partitions its slice and joins the sorts of the two parts: the
//! second part is offered to idle workers while the calling worker sorts the
//! first, and popped back if nobody took it. The parts borrow the caller's
//! slice: nothing is copied. Below 4,096 elements it sorts sequentially.
//!
//! Run it with `cargo run --release --example quicksort [elements] [workers]`
//! (defaults: 4,194,304 elements, one worker per CPU).

use std::time::Instant;

use priopool::{Pool, Priority};

const SEQUENTIAL_BELOW: usize = 4096;

/// Lomuto partition around the middle element; returns the pivot's index.
fn partition(v: &mut [u64]) -> usize {
    let last = v.len() - 1;
    v.swap(v.len() / 2, last);
    let pivot = v[last];
    let mut store = 0;
    for i in 0..last {
        if v[i] < pivot {
            v.swap(i, store);
            store += 1;
        }
    }
    v.swap(store, last);
    store
}

/// Sorts `v` in place; `parallel` decides whether the halves are joined.
fn quicksort(v: &mut [u64], parallel: bool) {
    if v.len() < SEQUENTIAL_BELOW {
        v.sort_unstable();
        return;
    }
    let mid = partition(v);
    let (left, right) = v.split_at_mut(mid);
    let right = &mut right[1..];
    if parallel {
        priopool::join(|| quicksort(left, true), || quicksort(right, true));
    } else {
        quicksort(left, false);
        quicksort(right, false);
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let len: usize = args.next().map(|a| a.parse()).transpose()?.unwrap_or(1 << 22);
    let workers: Option<usize> = args.next().map(|a| a.parse()).transpose()?;
    let mut x = 0x2545_F491_4F6C_DD1Du64;
    let data: Vec<u64> = (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        })
        .collect();
    let mut expected = data.clone();
    expected.sort_unstable();

    let mut sequential = data.clone();
    let start = Instant::now();
    quicksort(&mut sequential, false);
    let sequential_time = start.elapsed();

    let mut builder = Pool::builder();
    if let Some(workers) = workers {
        builder = builder.workers(workers);
    }
    let pool = builder.build()?;
    let mut parallel = data;
    let start = Instant::now();
    // A scoped job may borrow `parallel`; `scope` returns once it is sorted.
    pool.scope(|s| s.spawn(Priority::LOW, |_| quicksort(&mut parallel, true)).map_err(|e| e.kind()))?;
    let parallel_time = start.elapsed();

    assert_eq!(sequential, expected, "the sequential quicksort sorts");
    assert_eq!(parallel, expected, "the parallel quicksort sorts");
    println!("{len} u64, {} workers, sequential below {SEQUENTIAL_BELOW} elements", pool.workers());
    println!("sequential quicksort: {:>8.1} ms", sequential_time.as_secs_f64() * 1e3);
    println!(
        "priopool::join:       {:>8.1} ms ({:.2}x)",
        parallel_time.as_secs_f64() * 1e3,
        sequential_time.as_secs_f64() / parallel_time.as_secs_f64()
    );
    Ok(())
}
