//! Loom models 7 and 7b: a scope's count and its owner's wake-up (`forkjoin/scope.rs`).

use super::*;

/// The count and the wake-up alone, composed by hand: the scope's closure
/// counts two jobs and ends; one job spawns a third from inside (counting it
/// first, as `Scope::spawn` does); each job writes its own cell of data the
/// owner borrowed, then counts itself done. The owner, blocked on its own
/// parker, must wake (a lost wake-up is a loom deadlock) and, once the count
/// reads zero, see every write. The cells are written and read `Relaxed`,
/// so only the count's ordering makes the writes visible: with `Relaxed` in
/// place of the `AcqRel` subtraction or the `Acquire` load, loom lets the
/// owner read a stale 0 and the assertion fails.
#[test]
fn model_7_a_scope_wakes_its_owner_once_every_job_is_done_and_sees_their_writes() {
    use crate::forkjoin::scope::ScopeState;
    use crate::sync::Parker;

    type Cells = Arc<[AtomicUsize; 3]>;
    fn job(index: usize, state: std::sync::Arc<ScopeState>, cells: Cells) -> impl FnOnce() {
        move || {
            cells[index].store(index + 1, Ordering::Relaxed);
            state.complete();
        }
    }
    model(|| {
        let parker = Parker::new();
        let state = std::sync::Arc::new(ScopeState::new(parker.unparker().clone(), None));
        let cells: Cells = Arc::new([AtomicUsize::new(0), AtomicUsize::new(0), AtomicUsize::new(0)]);
        // The closure spawns two jobs; the first spawns the third.
        state.add();
        state.add();
        let first = {
            let (state, cells) = (std::sync::Arc::clone(&state), Arc::clone(&cells));
            thread::spawn(move || {
                state.add();
                let third = thread::spawn(job(2, std::sync::Arc::clone(&state), Arc::clone(&cells)));
                job(0, state, cells)();
                third
            })
        };
        let second = thread::spawn(job(1, std::sync::Arc::clone(&state), Arc::clone(&cells)));
        // The closure's own unit, then the wait of `scope`.
        state.complete();
        crate::runtime::help::block_until(&parker, || state.is_done());
        for (index, cell) in cells.iter().enumerate() {
            assert_eq!(cell.load(Ordering::Relaxed), index + 1, "a job's write is visible after the scope");
        }
        first.join().expect("no panic").join().expect("no panic");
        second.join().expect("no panic");
    });
}

/// The real `scope` on a one-worker pool, entered from outside: its
/// closure spawns a job that spawns another from the worker, and `scope`
/// must return (no lost wake-up of the blocked caller) with both jobs'
/// effects visible.
#[test]
fn model_7b_scope_from_outside_returns_once_its_jobs_ran() {
    model(|| {
        let pool = pool(1, 1);
        let ran = AtomicUsize::new(0);
        pool.scope(|s| {
            s.spawn(Priority::HIGH, |s| {
                ran.fetch_add(1, Ordering::Relaxed);
                s.spawn(Priority::HIGH, |_| {
                    ran.fetch_add(1, Ordering::Relaxed);
                })
                .expect("a job's spawn is accepted");
            })
            .expect("the pool is open");
        });
        assert_eq!(ran.load(Ordering::Relaxed), 2);
        drop(pool);
    });
}
