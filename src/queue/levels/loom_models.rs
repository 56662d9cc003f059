//! Loom models of the pick rule (`RUSTFLAGS="--cfg loom"`, run by
//! `.ci/loom.sh`).

use super::*;
use crate::sync::{Arc, AtomicBool, AtomicUsize, Ordering, thread};

/// One pusher queues a HIGH job and then a LOW one while two workers
/// pick, one of them possibly preempted between its walk over level 0
/// and its take, with an earlier LOW job the other can take meanwhile.
/// A worker whose pick returns the later LOW job must find the HIGH job
/// already taken: it was pushed before the LOW job. (Without the second
/// look after the take, this fails with one preemption.)
#[test]
fn a_pick_never_passes_a_job_pushed_before_the_one_it_takes() {
    const EARLY_LOW: u32 = 1;
    const HIGH: u32 = 2;
    const LATE_LOW: u32 = 3;
    let mut builder = loom::model::Builder::new();
    builder.preemption_bound = Some(builder.preemption_bound.unwrap_or(2).min(2));
    builder.check(|| {
        let levels = Arc::new(Levels::new(2));
        levels.inject(1, EARLY_LOW);
        let pushed = Arc::new(AtomicBool::new(false));
        let locals: Vec<LocalQueues<u32>> = (0..2).map(|_| LocalQueues::new(2)).collect();
        let peers: Arc<Vec<Arc<SharedQueues<u32>>>> =
            Arc::new(locals.iter().map(|local| Arc::clone(local.shared())).collect());
        let workers: Vec<_> = locals
            .into_iter()
            .enumerate()
            .map(|(index, local)| {
                let (levels, peers, pushed) = (Arc::clone(&levels), Arc::clone(&peers), Arc::clone(&pushed));
                thread::spawn(move || {
                    loop {
                        match levels.pick(&local, &peers, index) {
                            Pick::Found(_, job, _) => {
                                if job == LATE_LOW {
                                    assert!(levels.injector_is_empty(0), "the late LOW job passed the HIGH one");
                                }
                                return;
                            }
                            Pick::Empty if pushed.load(Ordering::Acquire) => return,
                            Pick::Empty | Pick::Contended => thread::yield_now(),
                        }
                    }
                })
            })
            .collect();
        levels.inject(0, HIGH);
        levels.inject(1, LATE_LOW);
        pushed.store(true, Ordering::Release);
        for worker in workers {
            worker.join().unwrap();
        }
    });
}

/// A steal that loses the race for the front job answers `Retry`, which
/// means a job is there: the pick reports `Contended`, never `Empty`.
/// Two workers each pick once from a level holding two jobs, in its
/// injector or in a third worker's deque, so a job is left whatever the
/// other does, and neither pick may say `Empty`. (A steal is tried once
/// under loom, so one lost race shows; a pick that reads `Retry` as
/// empty, at the injector or at a peer, fails.)
#[test]
fn a_lost_race_is_never_read_as_an_empty_level() {
    for in_a_deque in [false, true] {
        loom::model(move || {
            let levels = Arc::new(Levels::new(2));
            let owner = LocalQueues::new(2);
            for job in [1, 2] {
                if in_a_deque { owner.push(1, job) } else { levels.inject(1, job) }
            }
            let thieves: Vec<LocalQueues<u32>> = (0..2).map(|_| LocalQueues::new(2)).collect();
            let peers: Arc<Vec<Arc<SharedQueues<u32>>>> =
                Arc::new(thieves.iter().chain([&owner]).map(|local| Arc::clone(local.shared())).collect());
            let workers: Vec<_> = thieves
                .into_iter()
                .enumerate()
                .map(|(index, local)| {
                    let (levels, peers) = (Arc::clone(&levels), Arc::clone(&peers));
                    thread::spawn(move || {
                        let pick = levels.pick(&local, &peers, index);
                        assert!(!matches!(pick, Pick::Empty), "a pick read a lost race as an empty level");
                    })
                })
                .collect();
            for worker in workers {
                worker.join().unwrap();
            }
        });
    }
}

/// The shortcut: a worker whose last job came from level 1's injector
/// tries that injector first on its next pick. Meanwhile one thread
/// queues a HIGH job (into level 0's injector, or as a running job of
/// a peer into that peer's own deque: a spawn, or a fork half) and then
/// a LOW job into level 1's injector. Nobody else takes jobs, so a pick
/// that returns the LOW job must have taken the HIGH one first.
/// (Without the second look after the shortcut's take, this fails; with
/// the HIGH job a fork half, it also fails if `SharedQueues::holds`
/// ignores fork halves.)
#[test]
fn the_shortcut_never_passes_a_job_pushed_before_the_one_it_takes() {
    const EARLY_LOW: u32 = 1;
    const HIGH: u32 = 2;
    const LATE_LOW: u32 = 3;
    #[derive(Clone, Copy)]
    enum High {
        Injected,
        Spawned,
        Forked,
    }
    for high in [High::Injected, High::Spawned, High::Forked] {
        loom::model(move || {
            let levels = Arc::new(Levels::new(2));
            let local = LocalQueues::new(2);
            let peer = LocalQueues::new(2);
            let peers = vec![Arc::clone(local.shared()), Arc::clone(peer.shared())];
            levels.inject(1, EARLY_LOW);
            assert!(matches!(levels.pick(&local, &peers, 0), Pick::Found(1, EARLY_LOW, Source::Injector)));
            let pusher = {
                let levels = Arc::clone(&levels);
                thread::spawn(move || {
                    match high {
                        High::Injected => levels.inject(0, HIGH),
                        High::Spawned => peer.push(0, HIGH),
                        High::Forked => peer.push_fork(0, HIGH),
                    }
                    levels.inject(1, LATE_LOW);
                    peer
                })
            };
            let mut taken = Vec::new();
            while taken.len() < 2 {
                match levels.pick(&local, &peers, 0) {
                    Pick::Found(_, job, _) => taken.push(job),
                    Pick::Empty | Pick::Contended => thread::yield_now(),
                }
            }
            assert_eq!(taken, [HIGH, LATE_LOW], "the late LOW job passed the HIGH one");
            drop(pusher.join().unwrap());
        });
    }
}

/// Two spawners push one job each, either of them preempted anywhere in
/// its push, while a worker picks: the push, the worker's take of that
/// job and the other spawner's job, in every order. Once a spawn has
/// returned (and the worker knows it), its job is never hidden: a pick
/// that then finds every level empty comes after the job was taken.
/// (With the old queued count, raised after the push, the worker could
/// take one spawner's job on the other's count and read the level
/// empty while the other job waited.)
#[test]
fn a_returned_spawn_is_never_hidden_by_a_preempted_one() {
    const A: u32 = 1;
    const B: u32 = 2;
    loom::model(|| {
        let levels = Arc::new(Levels::new(1));
        // Bit `job` set once that job's spawn has returned.
        let returned = Arc::new(AtomicUsize::new(0));
        let spawners: Vec<_> = [A, B]
            .into_iter()
            .map(|job| {
                let (levels, returned) = (Arc::clone(&levels), Arc::clone(&returned));
                thread::spawn(move || {
                    levels.inject(0, job);
                    returned.fetch_or(job as usize, Ordering::Release);
                })
            })
            .collect();
        // The worker: three picks, no waiting, so every interleaving ends.
        let local = LocalQueues::new(1);
        let peers = [Arc::clone(local.shared())];
        let mut taken = 0;
        for _ in 0..3 {
            let seen = returned.load(Ordering::Acquire) as u32;
            match levels.pick(&local, &peers, 0) {
                Pick::Found(_, job, _) => {
                    assert_eq!(taken & job, 0, "a job was taken twice");
                    taken |= job;
                }
                Pick::Contended => {}
                Pick::Empty => {
                    // The truth, read under the queue's lock: no job
                    // whose spawn returned is still there.
                    let hidden = levels.injectors[0].holds(|&job| seen & job != 0);
                    assert!(!hidden, "a spawn returned, yet the pick found its job nowhere");
                }
            }
        }
        for spawner in spawners {
            spawner.join().unwrap();
        }
        while let Pick::Found(_, job, _) = levels.pick(&local, &peers, 0) {
            assert_eq!(taken & job, 0, "a job was taken twice");
            taken |= job;
        }
        assert_eq!(taken, A | B, "every job is taken");
    });
}

/// The owner's oldest-first take (`queue/local.rs`, "Order within a
/// level"; every 2nd take under loom) steals from the end its peers steal
/// from. With a peer stealing at the same time, each of the three jobs is
/// taken once, by one of them: none lost to the race, none taken twice, and
/// the owner's pops stop only once the deque is empty (a lost race falls
/// back to the newest job).
#[test]
fn an_oldest_first_take_racing_a_steal_takes_each_job_once() {
    loom::model(|| {
        let owner = LocalQueues::<u32>::new(1);
        for job in [1, 2, 3] {
            owner.push(0, job);
        }
        let shared = Arc::clone(owner.shared());
        let thief = thread::spawn(move || match shared.steal(0) {
            Steal::Success(job) => vec![job],
            Steal::Empty | Steal::Retry => Vec::new(),
        });
        let mut taken = Vec::new();
        while let Some(job) = owner.pop(0) {
            taken.push(job);
        }
        taken.extend(thief.join().unwrap());
        taken.sort_unstable();
        assert_eq!(taken, [1, 2, 3]);
    });
}
