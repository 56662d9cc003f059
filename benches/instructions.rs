//! One run of scenario A or B (`compare.rs`) on one pool and nothing else,
//! for `valgrind --tool=callgrind`: on this shared machine its instruction
//! count repeats where clocks do not. `benches/callgrind.sh` runs it at two
//! sizes and prints the difference per job, so start-up and shutdown cancel
//! out.
//!
//! ```text
//! cargo bench --bench instructions -- <A|A-boxed|B|B-boxed> <pool> <size> [workers]
//! ```
//!
//! `pool` is a row name of `compare.rs` (`priopool`, `rayon spawn`,
//! `threadpool`, `two-channel`, ...); `size` is A's number of jobs or B's
//! depth (`2^(size + 1) − 1` jobs); `workers` defaults to 1. It prints the
//! time the run took, which means little under valgrind. Without arguments
//! (`cargo test --benches`) it runs each scenario once on every pool, small.

#[path = "support/bulk.rs"]
mod bulk;
#[allow(dead_code)] // The gate is `compare.rs`'s.
#[path = "support/latch.rs"]
mod latch;
#[allow(dead_code)] // `compare.rs` uses every peer; this bench one at a time.
mod peers;

use std::env;
use std::process::ExitCode;
use std::time::Duration;

use bulk::Bulk;
use peers::{NAMES, Peer, Visit, visit_all};

/// Runs `bulk` once on the peer named `name`, if there is one.
struct RunOne<'a> {
    name: &'a str,
    bulk: Bulk,
    workers: usize,
    took: Option<Duration>,
}

impl Visit for RunOne<'_> {
    fn visit<P: Peer>(&mut self) {
        if P::NAME == self.name {
            let pool = P::start(self.workers);
            self.took = Some(self.bulk.run(&pool));
            pool.shutdown();
        }
    }
}

fn run(name: &str, bulk: Bulk, workers: usize) -> Option<Duration> {
    let mut one = RunOne { name, bulk, workers, took: None };
    visit_all(&mut one);
    one.took
}

fn parse(args: &[String]) -> Result<(Bulk, &str, usize), String> {
    let [scenario, pool, size, rest @ ..] = args else {
        return Err("usage: instructions <A|A-boxed|B|B-boxed> <pool> <size> [workers]".into());
    };
    let size: usize = size.parse().map_err(|_| format!("size {size:?} is not a number"))?;
    let depth = || u32::try_from(size).ok().filter(|&d| d < 30).ok_or(format!("depth {size} is too deep"));
    let bulk = match scenario.as_str() {
        "A" => Bulk::A(size, false),
        "A-boxed" => Bulk::A(size, true),
        "B" => Bulk::B(depth()?, false),
        "B-boxed" => Bulk::B(depth()?, true),
        other => return Err(format!("scenario {other:?} is not A, A-boxed, B or B-boxed")),
    };
    if !NAMES.contains(&pool.as_str()) {
        return Err(format!("pool {pool:?} is none of {NAMES:?}"));
    }
    let workers = match rest.first() {
        Some(w) => w.parse().ok().filter(|&w| w > 0).ok_or(format!("workers {w:?} is not a positive number"))?,
        None => 1,
    };
    Ok((bulk, pool, workers))
}

fn main() -> ExitCode {
    // `cargo bench` adds `--bench`; `cargo test --benches` passes nothing.
    let args: Vec<String> = env::args().skip(1).filter(|a| !a.starts_with("--")).collect();
    if args.is_empty() {
        for name in NAMES {
            for bulk in [Bulk::A(1_000, false), Bulk::A(1_000, true), Bulk::B(8, false), Bulk::B(8, true)] {
                run(name, bulk, 2);
            }
        }
        return ExitCode::SUCCESS;
    }
    match parse(&args) {
        Ok((bulk, pool, workers)) => {
            let took = run(pool, bulk, workers).expect("parse checked the name");
            println!("{pool}: {:.1} ms", took.as_secs_f64() * 1e3);
            ExitCode::SUCCESS
        }
        Err(message) => {
            eprintln!("{message}");
            ExitCode::FAILURE
        }
    }
}
