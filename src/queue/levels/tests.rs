//! Unit tests of the pick rule (`queue/levels.rs`).

use super::*;
use crate::sync::Arc;

/// A worker and the peers list holding only itself.
fn worker(levels: usize) -> (LocalQueues<u32>, Vec<Arc<SharedQueues<u32>>>) {
    let local = LocalQueues::new(levels);
    let peers = vec![Arc::clone(local.shared())];
    (local, peers)
}

/// `n` levels whose last one's injector held jobs 1 and 2, and `local`
/// having just taken job 1 from it: its next pick may take the
/// shortcut.
fn hot_on_the_last_level<P: AsRef<SharedQueues<u32>>>(n: usize, local: &LocalQueues<u32>, peers: &[P]) -> Levels<u32> {
    let levels = Levels::new(n);
    levels.inject(n - 1, 1);
    levels.inject(n - 1, 2);
    assert!(matches!(levels.pick(local, peers, 0), Pick::Found(l, 1, Source::Injector) if l == n - 1));
    assert_eq!(local.hot(), Some(n - 1), "the next pick may take the shortcut");
    levels
}

#[test]
fn picks_the_most_urgent_level_first_and_fifo_within_a_level() {
    let levels = Levels::new(3);
    let (local, peers) = worker(3);
    for (job, level) in [(1, 2), (2, 1), (3, 2), (4, 0)] {
        levels.inject(level, job);
    }
    let mut order = Vec::new();
    while let Pick::Found(level, job, _) = levels.pick(&local, &peers, 0) {
        order.push((level, job));
    }
    assert_eq!(order, [(0, 4), (1, 2), (2, 1), (2, 3)]);
    assert!(!levels.any_queued(&peers));
}

#[test]
fn own_deque_first_then_injector_then_peers() {
    let levels = Levels::new(2);
    let (victim, thief) = (LocalQueues::new(2), LocalQueues::new(2));
    victim.push(1, 1);
    levels.inject(1, 2);
    thief.push(1, 3);
    let peers = [Arc::clone(victim.shared()), Arc::clone(thief.shared())];
    assert_eq!(levels.queued(1, &peers), 3);
    let mut order = Vec::new();
    while let Pick::Found(_, job, source) = levels.pick(&thief, &peers, 0) {
        order.push((job, source));
    }
    assert_eq!(order, [(3, Source::Local), (2, Source::Injector), (1, Source::Peer)]);
    assert_eq!(levels.queued(1, &peers), 0);
    assert!(!levels.any_queued(&peers));
}

#[test]
fn a_job_taken_while_a_more_urgent_one_waits_goes_back_to_the_own_deque() {
    let levels = Levels::new(2);
    let (local, peers) = worker(2);
    levels.inject(1, 1);
    levels.inject(1, 2);
    // The take of level 1 finds level 0 non-empty afterwards, as if job
    // 3 had been pushed between the walk over level 0 and the take.
    let Take::Job(job, source) = levels.take(1, &local, &peers, 0) else { panic!("no job") };
    assert_eq!((job, source), (1, Source::Injector));
    levels.inject(0, 3);
    local.push(1, job);
    assert!(matches!(levels.pick(&local, &peers, 0), Pick::Found(0, 3, _)));
    assert!(matches!(levels.pick(&local, &peers, 0), Pick::Found(1, 1, Source::Local)));
    assert!(matches!(levels.pick(&local, &peers, 0), Pick::Found(1, 2, Source::Injector)));
}

#[test]
fn a_job_put_back_may_be_overtaken_by_a_later_one_from_outside_but_waits_a_bounded_time() {
    // One worker, 62 takes into its round at level 1, its last job from
    // level 1's injector (A): the shortcut takes X, and its second look
    // puts X back for a level-0 job in a peer's deque, which spawns a
    // chain at level 1 on this worker. The injector's turn then takes Z,
    // pushed after X; X, the oldest in the own deque, comes on the next
    // oldest-first take (see the module docs, "The pick rule").
    let levels = Levels::new(2);
    let (local, peer) = (LocalQueues::new(2), LocalQueues::new(2));
    let peers = [Arc::clone(local.shared()), Arc::clone(peer.shared())];
    let round = 2 * crate::queue::local::OLDEST_EVERY;
    for job in 0..round - 2 {
        local.push(1, 1000 + job);
    }
    while let Pick::Found(1, _, Source::Local) = levels.pick(&local, &peers, 0) {}
    for job in [1, 100, 101] {
        levels.inject(1, job);
    }
    assert!(matches!(levels.pick(&local, &peers, 0), Pick::Found(1, 1, Source::Injector)));
    peer.push(0, 200);
    assert!(matches!(levels.pick(&local, &peers, 0), Pick::Found(0, 200, Source::Peer)));
    let mut order = Vec::new();
    let mut next = 300;
    local.push(1, next);
    while let Pick::Found(1, job, _) = levels.pick(&local, &peers, 0) {
        order.push(job);
        if job >= 300 && next < 300 + round {
            next += 1;
            local.push(1, next);
        }
    }
    let at = |job| order.iter().position(|&j| j == job).unwrap();
    assert_eq!((at(101), at(100)), (1, usize::try_from(round / 2).unwrap() + 1), "{order:?}");
}

#[test]
fn the_shortcut_is_not_taken_while_a_more_urgent_injector_holds_a_job() {
    // The last job from the last level's injector: a job in any more
    // urgent injector stops the shortcut, so the last level's next job
    // is neither taken nor put back. (Fails on no check, or on a check
    // that skips a more urgent level.)
    for (n, more) in [(2, 0), (3, 0), (3, 1)] {
        let (local, peers) = worker(n);
        let levels = hot_on_the_last_level(n, &local, &peers);
        levels.inject(more, 3);
        let case = format!("{n} levels, level {more}");
        let found = levels.pick(&local, &peers, 0);
        assert!(matches!(found, Pick::Found(l, 3, Source::Injector) if l == more), "{case}: not its job");
        assert!(local.is_empty() && levels.queued(n - 1, &peers) == 1, "{case}: the shortcut took a job");
        assert!(matches!(levels.pick(&local, &peers, 0), Pick::Found(l, 2, Source::Injector) if l == n - 1));
    }
}

#[test]
fn the_shortcut_leaves_a_more_urgent_job_in_a_peer_deque_to_the_second_look() {
    // The last job from level 2's injector; a more urgent job then waits
    // in a peer's deque (spawned or a fork half), the more urgent
    // injectors are empty. The shortcut is taken, and its second look
    // puts level 2's job back into the own deque: it comes next, from
    // there. (Fails without the second look, the more urgent job
    // starting second; and on a check that also looks at level 2's
    // injector or beyond, the shortcut never being taken.)
    for (more, fork) in [(0, false), (1, false), (0, true), (1, true)] {
        let (local, peer) = (LocalQueues::new(3), LocalQueues::new(3));
        let peers = [Arc::clone(local.shared()), Arc::clone(peer.shared())];
        let levels = hot_on_the_last_level(3, &local, &peers);
        if fork {
            peer.push_fork(more, 3)
        } else {
            peer.push(more, 3)
        }
        let found = levels.pick(&local, &peers, 0);
        let case = format!("level {more}, fork {fork}");
        assert!(matches!(found, Pick::Found(l, 3, Source::Peer) if l == more), "{case}: the peer's job waits");
        let found = levels.pick(&local, &peers, 0);
        assert!(matches!(found, Pick::Found(2, 2, Source::Local)), "{case}: the shortcut was not taken");
        assert!(matches!(levels.pick(&local, &peers, 0), Pick::Empty));
    }
}

#[test]
fn the_shortcut_is_not_taken_while_a_more_urgent_own_deque_holds_a_job() {
    // One worker: its last job, from level 1's injector, spawned a
    // level-0 job, which spawns a level-1 job when it runs. The pick
    // rule runs that one (own deque) before level 1's injector; a
    // shortcut taken meanwhile would have put the injector's job into
    // the own deque before it, where an oldest-first take would run it
    // first.
    let (local, peers) = worker(2);
    let levels = hot_on_the_last_level(2, &local, &peers);
    local.push(0, 3);
    assert!(matches!(levels.pick(&local, &peers, 0), Pick::Found(0, 3, Source::Local)));
    assert!(local.is_empty() && levels.queued(1, &peers) == 1, "the shortcut took a job");
    local.push(1, 4);
    assert!(matches!(levels.pick(&local, &peers, 0), Pick::Found(1, 4, Source::Local)));
    assert!(matches!(levels.pick(&local, &peers, 0), Pick::Found(1, 2, Source::Injector)));
}

#[test]
fn every_start_reaches_every_peer() {
    // The peer walk begins at `start % n` and wraps round: a job in any
    // peer's deque is found whatever `start` is, and with a job in
    // every peer the one at `start % n` is taken; 1 to 4 peers.
    let levels = Levels::new(1);
    let thief = LocalQueues::new(1);
    for n in 1..=4 {
        let owners: Vec<LocalQueues<u32>> = (0..n).map(|_| LocalQueues::new(1)).collect();
        let peers: Vec<_> = owners.iter().map(|o| Arc::clone(o.shared())).collect();
        for start in (0..2 * n).chain([usize::MAX]) {
            for (k, owner) in owners.iter().enumerate() {
                let job = u32::try_from(k).unwrap();
                owner.push(0, job);
                let found = levels.pick(&thief, &peers, start);
                assert!(
                    matches!(found, Pick::Found(0, j, Source::Peer) if j == job),
                    "{n} peers, start {start}: the job in peer {k} was not found"
                );
            }
            for (k, owner) in owners.iter().enumerate() {
                owner.push(0, u32::try_from(k).unwrap());
            }
            let first = u32::try_from(start % n).unwrap();
            let found = levels.pick(&thief, &peers, start);
            assert!(
                matches!(found, Pick::Found(0, j, Source::Peer) if j == first),
                "{n} peers, start {start}: the walk did not begin at peer {first}"
            );
            while let Pick::Found(..) = levels.pick(&thief, &peers, start) {}
        }
    }
}
