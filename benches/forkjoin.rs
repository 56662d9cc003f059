//! Fork-join: `priopool::join` against `rayon::join` in the same run, both
//! pools with 2 workers.
//!
//! ```text
//! cargo bench --bench forkjoin                         # full sizes, 21 rounds
//! PRIOPOOL_BENCH_QUICK=1 cargo bench --bench forkjoin  # smoke sizes, 3 rounds
//! PRIOPOOL_BENCH_ONLY=tree cargo bench --bench forkjoin # one workload
//! ```
//!
//! - **quicksort**: in-place quicksort of 4,194,304 pseudo-random `u64`
//!   (Lomuto partition, middle pivot), `sort_unstable` below 4,096
//!   elements; the data is copied afresh (untimed) before each round.
//! - **fib**: fib(32), sequential below n = 16.
//! - **tree**: a binary tree of 2^20 leaves with a join at every inner node
//!   and no cutoff: the per-join cost.
//!
//! Each round runs both pools in turn (order alternating); the figure is the
//! median of the rounds, and the ratio priopool / rayon. Work enters
//! priopool through a scoped job at LOW and rayon through `install`.

#[path = "support/roundtrip.rs"]
mod roundtrip;

use std::env;
use std::time::{Duration, Instant};

use priopool::{Pool, Priority};

fn workers() -> usize {
    env::var("PRIOPOOL_BENCH_WORKERS").ok().and_then(|w| w.parse().ok()).unwrap_or(2)
}

fn quick() -> bool {
    env::var("PRIOPOOL_BENCH_QUICK").is_ok_and(|v| v == "1") || !env::args().any(|a| a == "--bench")
}

/// The two joins under test.
trait Join: Sync {
    fn join<A, B, RA, RB>(&self, a: A, b: B) -> (RA, RB)
    where
        A: FnOnce() -> RA + Send,
        B: FnOnce() -> RB + Send,
        RA: Send,
        RB: Send;
}

struct Prio;
struct Rayon;

impl Join for Prio {
    #[inline]
    fn join<A, B, RA, RB>(&self, a: A, b: B) -> (RA, RB)
    where
        A: FnOnce() -> RA + Send,
        B: FnOnce() -> RB + Send,
        RA: Send,
        RB: Send,
    {
        priopool::join(a, b)
    }
}

impl Join for Rayon {
    #[inline]
    fn join<A, B, RA, RB>(&self, a: A, b: B) -> (RA, RB)
    where
        A: FnOnce() -> RA + Send,
        B: FnOnce() -> RB + Send,
        RA: Send,
        RB: Send,
    {
        rayon::join(a, b)
    }
}

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

fn quicksort<J: Join>(j: &J, v: &mut [u64]) {
    if v.len() < 4096 {
        v.sort_unstable();
        return;
    }
    let mid = partition(v);
    let (left, right) = v.split_at_mut(mid);
    j.join(|| quicksort(j, left), || quicksort(j, &mut right[1..]));
}

fn fib_seq(n: u64) -> u64 {
    if n < 2 { n } else { fib_seq(n - 1) + fib_seq(n - 2) }
}

fn fib<J: Join>(j: &J, n: u64) -> u64 {
    if n < 16 {
        return fib_seq(n);
    }
    let (a, b) = j.join(|| fib(j, n - 1), || fib(j, n - 2));
    a + b
}

fn tree<J: Join>(j: &J, depth: u32) -> u64 {
    if depth == 0 {
        return 1;
    }
    let (a, b) = j.join(|| tree(j, depth - 1), || tree(j, depth - 1));
    a + b
}

fn random_vec(n: usize) -> Vec<u64> {
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        })
        .collect()
}

fn median(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times[times.len() / 2]
}

/// Runs `work` on each pool `rounds` times, alternating which goes first;
/// returns the medians (priopool, rayon).
fn measure(
    rounds: usize,
    pool: &Pool,
    rayon: &rayon::ThreadPool,
    mut prepare: impl FnMut(),
    prio: &(dyn Fn() + Sync),
    ray: &(dyn Fn() + Sync),
) -> (Duration, Duration) {
    let (mut p, mut r) = (Vec::new(), Vec::new());
    for round in 0..rounds {
        for which in [round % 2, 1 - round % 2] {
            prepare();
            let start = Instant::now();
            if which == 0 {
                pool.scope(|s| s.spawn(Priority::LOW, |_| prio()).expect("the pool is open"));
                p.push(start.elapsed());
            } else {
                rayon.install(ray);
                r.push(start.elapsed());
            }
        }
    }
    (median(p), median(r))
}

fn report(name: &str, (p, r): (Duration, Duration)) {
    println!(
        "{name:<34} priopool {:>9.2} ms   rayon {:>9.2} ms   ratio {:.2}",
        p.as_secs_f64() * 1e3,
        r.as_secs_f64() * 1e3,
        p.as_secs_f64() / r.as_secs_f64()
    );
}

/// Whether to run workload `name` (all unless `PRIOPOOL_BENCH_ONLY` names
/// another).
fn selected(name: &str) -> bool {
    env::var("PRIOPOOL_BENCH_ONLY").map_or(true, |only| only.split(',').any(|o| o == name))
}

fn main() {
    let quick = quick();
    let rounds = if quick { 3 } else { 21 };
    let (len, fib_n, depth) = if quick { (1 << 18, 24, 14) } else { (1 << 22, 32, 20) };
    let workers = workers();
    let pool = Pool::builder().workers(workers).build().expect("the pool builds");
    let rayon = rayon::ThreadPoolBuilder::new().num_threads(workers).build().expect("rayon builds");
    println!("fork-join, {workers} workers, median of {rounds} rounds");
    println!("core-to-core round trip: {:.0} ns (median of 5 x 20,000 trips)", roundtrip::core_round_trip_ns());

    if selected("quicksort") {
        run_quicksort(rounds, len, &pool, &rayon);
    }
    if selected("fib") {
        let want = fib_seq(fib_n);
        let fib_prio = || assert_eq!(fib(&Prio, fib_n), want);
        let fib_rayon = || assert_eq!(fib(&Rayon, fib_n), want);
        report(&format!("fib({fib_n}) (cutoff 16)"), measure(rounds, &pool, &rayon, || {}, &fib_prio, &fib_rayon));
    }
    if selected("tree") {
        let tree_prio = || assert_eq!(tree(&Prio, depth), 1 << depth);
        let tree_rayon = || assert_eq!(tree(&Rayon, depth), 1 << depth);
        report(
            &format!("tree 2^{depth} leaves (join per node)"),
            measure(rounds, &pool, &rayon, || {}, &tree_prio, &tree_rayon),
        );
    }
}

fn run_quicksort(rounds: usize, len: usize, pool: &Pool, rayon: &rayon::ThreadPool) {
    let source = random_vec(len);
    let mut expected = source.clone();
    expected.sort_unstable();
    let data = std::sync::Mutex::new(source.clone());
    let prepare = || data.lock().unwrap().copy_from_slice(&source);
    let sort_prio = || quicksort(&Prio, &mut data.lock().unwrap());
    let sort_rayon = || quicksort(&Rayon, &mut data.lock().unwrap());
    let figures = measure(rounds, pool, rayon, prepare, &sort_prio, &sort_rayon);
    assert_eq!(*data.lock().unwrap(), expected);
    report(&format!("quicksort {len} u64 (cutoff 4096)"), figures);
}
