//! A tree walk with `Pool::scope`: every node of an in-memory tree (a stand-in
//! for a directory tree) is visited by a job of its own, and the jobs add
//! their node's size to a total that lives on `main`'s stack.
//!
//! The jobs borrow both the tree and the total: `scope` returns only once
//! every job spawned in it, directly or by another job, has finished.
//! Directories are visited at HIGH priority and files at LOW, so the walk
//! descends before it reads leaves; a worker that waits in `scope` runs the
//! scope's own jobs and never an unrelated job less urgent than its own.
//!
//! Run it with `cargo run --release --example tree_walk`.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use priopool::{Pool, Priority, Scope};

/// A directory with children, or a file with a size.
enum Node {
    Dir(Vec<Node>),
    File(u64),
}

/// A tree `depth` levels deep with `fan_out` children per directory.
fn build(depth: u32, fan_out: u64, seed: &mut u64) -> Node {
    *seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
    if depth == 0 {
        return Node::File(*seed >> 54);
    }
    Node::Dir((0..fan_out).map(|_| build(depth - 1, fan_out, seed)).collect())
}

fn sequential_size(node: &Node) -> u64 {
    match node {
        Node::File(size) => *size,
        Node::Dir(children) => children.iter().map(sequential_size).sum(),
    }
}

/// Visits `node` inside `scope`, spawning a job per child.
fn walk<'t>(scope: &Scope<'t>, node: &'t Node, total: &'t AtomicU64, jobs: &'t AtomicUsize) {
    jobs.fetch_add(1, Ordering::Relaxed);
    match node {
        Node::File(size) => {
            total.fetch_add(*size, Ordering::Relaxed);
        }
        Node::Dir(children) => {
            for child in children {
                let priority = if matches!(child, Node::Dir(_)) { Priority::HIGH } else { Priority::LOW };
                scope.spawn(priority, move |s| walk(s, child, total, jobs)).expect("a job's spawn is accepted");
            }
        }
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let tree = build(6, 8, &mut 7);
    let pool = Pool::builder().build()?;
    let total = AtomicU64::new(0);
    let jobs = AtomicUsize::new(0);
    pool.scope(|s| walk(s, &tree, &total, &jobs));
    let total = total.into_inner();
    assert_eq!(total, sequential_size(&tree));
    println!("visited {} nodes with as many jobs; total size {total}", jobs.into_inner());
    Ok(())
}
