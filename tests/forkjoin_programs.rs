//! Random fork-join programs never deadlock, run every part exactly once
//! and bring every value back (`src/runtime/help.rs`, `src/forkjoin/`).
//!
//! proptest generates a tree: leaves that return a number (or panic on
//! purpose), `join`s of two subtrees, `scope`s whose jobs (each at a random
//! level) evaluate subtrees into slots borrowed from the scope's caller,
//! and jobs `submit`ted at a random level whose handles the submitting job
//! joins (helping meanwhile). The tree runs on a pool of 1 to 4 workers and
//! 1 to 3 levels, entered from outside through a submitted job or a scope.
//!
//! Checks: the whole program finishes within the case's watchdog (a waiter
//! that blocked instead of helping, or a lost wake-up, hangs it); every
//! leaf ran exactly once (a per-leaf counter; `join`, `scope` and a joined
//! handle all wait for every part, also when one panics); the program's
//! value is the sum of its leaves, or, if it holds a panicking leaf, the
//! program ends in that panic, resumed through every wait above it.

mod common;

use std::panic::{self, AssertUnwindSafe};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use common::{CASE_BOUND, intentional_panic, is_intentional, quiet_intentional_panics, watchdog};
use priopool::{JobError, Pool, Priority, Spawner};
use proptest::prelude::*;

/// A generated program, before its leaves are numbered.
#[derive(Clone, Debug)]
enum Shape {
    Leaf(u64),
    Panic,
    Join(Box<Shape>, Box<Shape>),
    /// Jobs of a scope: (level, subtree).
    Scope(Vec<(usize, Shape)>),
    /// A job submitted at a level and joined through its handle.
    Submit(usize, Box<Shape>),
}

/// A numbered program: leaves carry their counter's index.
#[derive(Debug)]
enum Node {
    Leaf(usize, u64),
    Panic(usize),
    Join(Arc<Node>, Arc<Node>),
    Scope(Vec<(usize, Arc<Node>)>),
    Submit(usize, Arc<Node>),
}

fn number(shape: &Shape, next: &mut usize) -> Arc<Node> {
    let mut leaf = || {
        *next += 1;
        *next - 1
    };
    Arc::new(match shape {
        Shape::Leaf(v) => Node::Leaf(leaf(), *v),
        Shape::Panic => Node::Panic(leaf()),
        Shape::Join(a, b) => Node::Join(number(a, next), number(b, next)),
        Shape::Scope(jobs) => Node::Scope(jobs.iter().map(|(l, s)| (*l, number(s, next))).collect()),
        Shape::Submit(l, s) => Node::Submit(*l, number(s, next)),
    })
}

/// The value the program must return, `None` if it must panic.
fn expected(shape: &Shape) -> Option<u64> {
    match shape {
        Shape::Leaf(v) => Some(*v),
        Shape::Panic => None,
        Shape::Join(a, b) => Some(expected(a)? + expected(b)?),
        Shape::Scope(jobs) => jobs.iter().map(|(_, s)| expected(s)).sum(),
        Shape::Submit(_, s) => expected(s),
    }
}

#[derive(Clone)]
struct Ctx {
    spawner: Spawner,
    ran: Arc<Vec<AtomicUsize>>,
}

fn eval(node: &Arc<Node>, ctx: &Ctx) -> u64 {
    match &**node {
        Node::Leaf(i, v) => {
            ctx.ran[*i].fetch_add(1, Ordering::SeqCst);
            *v
        }
        Node::Panic(i) => {
            ctx.ran[*i].fetch_add(1, Ordering::SeqCst);
            intentional_panic()
        }
        Node::Join(a, b) => {
            let (a, b) = priopool::join(|| eval(a, ctx), || eval(b, ctx));
            a + b
        }
        Node::Scope(jobs) => {
            let mut slots = vec![0u64; jobs.len()];
            ctx.spawner.scope(|s| {
                for ((level, job), slot) in jobs.iter().zip(slots.iter_mut()) {
                    s.spawn(Priority::level(*level), move |_| *slot = eval(job, ctx))
                        .expect("a job's spawn is accepted");
                }
            });
            slots.iter().sum()
        }
        Node::Submit(level, job) => {
            let (job, job_ctx) = (Arc::clone(job), ctx.clone());
            let handle = ctx
                .spawner
                .submit(Priority::level(*level), move || eval(&job, &job_ctx))
                .expect("a job's submit is accepted");
            match handle.join() {
                Ok(value) => value,
                Err(JobError::Panicked(payload)) => panic::resume_unwind(payload.into_inner()),
                Err(other) => panic!("a submitted job ended unrun: {other:?}"),
            }
        }
    }
}

fn shape(levels: usize) -> impl Strategy<Value = Shape> {
    let leaf = prop_oneof![20 => (0..1000u64).prop_map(Shape::Leaf), 1 => Just(Shape::Panic)];
    leaf.prop_recursive(5, 48, 4, move |inner| {
        prop_oneof![
            (inner.clone(), inner.clone()).prop_map(|(a, b)| Shape::Join(Box::new(a), Box::new(b))),
            prop::collection::vec((0..levels, inner.clone()), 0..4).prop_map(Shape::Scope),
            (0..levels, inner).prop_map(|(l, s)| Shape::Submit(l, Box::new(s))),
        ]
    })
}

#[derive(Clone, Debug)]
struct Program {
    workers: usize,
    levels: usize,
    /// Entered through a submitted job (true) or a scope from outside.
    submitted: bool,
    entry_level: usize,
    shape: Shape,
}

fn program() -> impl Strategy<Value = Program> {
    (1..=4usize, 1..=3usize, any::<bool>()).prop_flat_map(|(workers, levels, submitted)| {
        (0..levels, shape(levels)).prop_map(move |(entry_level, shape)| Program {
            workers,
            levels,
            submitted,
            entry_level,
            shape,
        })
    })
}

fn run(program: Program) -> Result<(), TestCaseError> {
    let pool = Pool::builder().workers(program.workers).levels(program.levels).panic_handler(|_| {}).build().unwrap();
    let mut leaves = 0;
    let root = number(&program.shape, &mut leaves);
    let ctx = Ctx { spawner: pool.spawner(), ran: Arc::new((0..leaves).map(|_| AtomicUsize::new(0)).collect()) };
    let entry = Priority::level(program.entry_level);
    let outcome: Result<u64, bool> = if program.submitted {
        let (root, job_ctx) = (Arc::clone(&root), ctx.clone());
        match pool.submit(entry, move || eval(&root, &job_ctx)).unwrap().join() {
            Ok(value) => Ok(value),
            Err(JobError::Panicked(payload)) => Err(is_intentional(&*payload.into_inner())),
            Err(other) => panic!("the program's job ended unrun: {other:?}"),
        }
    } else {
        let mut value = 0;
        let caught = panic::catch_unwind(AssertUnwindSafe(|| {
            pool.scope(|s| s.spawn(entry, |_| value = eval(&root, &ctx)).unwrap());
        }));
        caught.map(|()| value).map_err(|payload| is_intentional(&*payload))
    };
    drop(pool);
    let counts: Vec<usize> = ctx.ran.iter().map(|c| c.load(Ordering::SeqCst)).collect();
    prop_assert!(counts.iter().all(|&c| c == 1), "every leaf runs exactly once: {counts:?}");
    match expected(&program.shape) {
        Some(value) => prop_assert_eq!(outcome, Ok(value)),
        None => prop_assert_eq!(outcome, Err(true), "the program ends in its leaf's panic"),
    }
    Ok(())
}

proptest! {
    #![proptest_config(common::case_config(192))]

    #[test]
    fn random_fork_join_programs_finish_run_every_part_once_and_return_every_value(program in program()) {
        quiet_intentional_panics();
        watchdog("a generated fork-join program", CASE_BOUND, move || run(program))?;
    }
}
