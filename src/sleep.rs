//! How idle workers fall asleep and how a new job wakes one of them.
//!
//! # States
//!
//! | state    | in `sleepers` | what the worker does                          |
//! |----------|---------------|-----------------------------------------------|
//! | active   | no            | runs a job or searches with the pick rule     |
//! | spinning | no            | a bounded number of further searches (µs)     |
//! | sleepy   | yes           | re-checks for work once, after registering    |
//! | asleep   | yes           | blocked in [`Parker::park`]; uses no CPU      |
//!
//! A waker moves a worker from `sleepy`/`asleep` back to `active` by taking
//! it off the list and unparking it. A `sleepy` worker that finds work on its
//! re-check takes itself off the list. An `asleep` worker with a keep-alive
//! deadline (dynamic pools, `limits.rs`) whose deadline passes takes itself
//! off the list too, and may then retire.
//!
//! # The protocol
//!
//! Falling asleep (worker):
//! 1. Lock `sleepers`, push `(id, unparker)`, increment `sleeping`, unlock.
//! 2. `fence(SeqCst)`, then re-check: does any queue hold a job
//!    (`Levels::any_queued`), or is the pool drained for shutdown, or
//!    (dynamic pools) is the worker surplus? If there is something to do,
//!    take itself off the list (if a waker has not already) and go back to
//!    work.
//! 3. Park. After waking, take itself off the list if it is still on it
//!    (a spurious wake-up) and go back to work.
//!
//! Falling asleep with a deadline (a worker above a dynamic pool's minimum,
//! see `limits.rs`): steps 1 and 2 as above, then
//! 3. Park until woken or the deadline passes. Then, under the lock: if a
//!    waker took the worker off the list, the wake-up is its to honour: go
//!    back to work (report [`Wake::Work`]) even if the deadline has passed,
//!    never retire. Else, if the deadline has passed, take itself off the
//!    list and report [`Wake::TimedOut`]. Else (an early return) park again.
//!
//! Waking (after a push, [`Sleep::wake_one_at`]):
//! 1. Push the job (into an injector, or into the worker's own deque).
//! 2. `fence(SeqCst)`, then load `sleeping`. If zero, done: no lock.
//! 3. Otherwise lock `sleepers`, pop the most recently registered worker
//!    (its cache is warmest), decrement `sleeping`, unlock, unpark it.
//!
//! # Why no wake-up is lost
//!
//! The two fences are ordered one way or the other in the single total
//! order of `SeqCst` operations. If the waker's comes first, the push
//! (before it) is visible to every load the sleeper makes after its own
//! fence: the re-check sees the job (`Levels::any_queued` reads the queues
//! themselves, and a deque's occupied flag is set before its push). If the
//! sleeper's comes first, its registration (before it) is visible to the
//! waker's load of `sleeping`, which then finds the sleeper on the list
//! (pushed under the lock before `sleeping` was raised), unless somebody
//! already took it off, which only happens when it is being unparked or is
//! already awake (and an awake worker parks again only after a new
//! registration and a new re-check, to which the same argument applies). A
//! `Parker` keeps the token of an `unpark` that arrives before `park`, so
//! the window between step 2 and step 3 is safe. A worker that times out
//! takes itself off the list under the lock, so a waker either took it off
//! first (and the worker honours the wake-up) or does not find it; what
//! then keeps the job from being stranded is the retiring worker's own
//! re-check (`limits.rs`, case 1), after a fence of its own.
//!
//! This is the store-buffering (Dekker) shape, made sound by `SeqCst`
//! *fences*, which loom models exactly (it does not model `SeqCst` loads and
//! stores, which is why the fences are explicit rather than left to the
//! `SeqCst` accesses inside crossbeam). The price on the waker's fast path
//! is one fence per push; a channel's send pays the same in its
//! compare-and-swap.
//!
//! Invariant: *whenever a job is queued, at least one worker is active,
//! spinning or sleepy, or a waker is about to unpark one.* A woken worker
//! searches until the pick rule reports every level empty, so one wake-up
//! per push is enough; waking only one avoids a thundering herd.
//!
//! # Waiting workers
//!
//! A worker whose running job waits for other jobs (`runtime/help.rs`) may
//! park too, but it may take only jobs at least as urgent as its own (level
//! `l` or more urgent). It registers on a list of its own, `waiters`, with
//! that bound, and re-checks levels `0..=l` and what it waits for after
//! the same fence; `sleeping` counts the regular sleepers and the waiters
//! together, so the waker's fast path is unchanged. A waker that pushed at
//! level `p` ([`Sleep::wake_one_at`]) wakes a reserved sleeper first if `p`
//! is a reserved level (below), else a regular sleeper if there is one,
//! else the most recent waiter whose bound admits `p`. The proof above applies as it stands to a waiter
//! and the jobs it may take: if the waker's fence comes first the waiter's
//! re-check sees the job; if the waiter's, the waker finds a sleeper on one
//! of the lists that may take the job. A waiter is never needed to keep the
//! invariant below: it is a worker running a job, which searches again when
//! the job ends, so it is only a faster way to a job. Waiters are not idle,
//! so they do not count towards the drain. A reserved thread's job may wait
//! too; it waits on the same list, its bound capped at its own levels.
//!
//! A fork half (`forkjoin/join.rs`) is pushed without the waker's fence
//! ([`Sleep::hint_at`], which looks at the lists in the same order): its joiner, awake and running, takes it back if
//! nobody steals it, so the invariant below never rests on its wake-up; a
//! sleeper that the load misses only costs parallelism until the next push.
//!
//! # Reserved threads: a second list
//!
//! A pool's reserved threads (`runtime/reserved.rs`) take only the jobs of
//! the levels `0..reserved_levels`, so they sleep on a list of their own
//! ([`Class::Reserved`]), with a count of their own, under the same lock.
//! Their re-check (step 2) looks only at their levels. A push at one of
//! those levels wakes with [`Sleep::wake_one_at`] told so: one fence, then a
//! reserved sleeper if there is one (it is idle and runs at the process's
//! own OS priority, so it starts the job first), else a regular one or a
//! waiter, as for any other level. A push at any other level never wakes a
//! reserved thread: it could not take the job. The proof
//! above holds for each list separately: the waker fences, then loads the
//! count of the list it considers; a reserved sleeper that registered
//! before that fence is found, one that registered after it re-checks
//! its levels after its own fence and sees the job. If neither list had a
//! sleeper to take, the waker falls back to growth exactly as before. So
//! the invariant becomes: *whenever a job of level `l` is queued, some
//! worker that takes level `l` is active, spinning or sleepy, or a waker is
//! about to unpark one.* Reserved threads never park with a deadline (they
//! never retire), and a wake-all (shutdown, resizing) wakes both lists.
//!
//! # Every worker asleep: the drain
//!
//! `loops` counts the worker loops running, reserved threads' included
//! (changed under the lock as a loop starts and ends). When the sleepers
//! of the regular and reserved lists make up every loop (waiters never
//! count: each runs a job), no worker holds a job: a sleeper
//! cannot leave its list while the lock is held.
//! [`Sleep::wake_all_if_idle`] lets shutdown decide, under that lock, that
//! the pool is drained (`lifecycle.rs`): intake closed, no spawn under way
//! and every queue empty. A worker spinning after an empty pick is not
//! idle here, though it holds no job: a check that counted it would read
//! its count before the queues, and it may take the last job in between
//! (a false drain, found by an attack on an earlier version that did; see
//! `tests/spinning_drain.rs`). It falls asleep within microseconds.
//!
//! Shutdown and resizing rely on the `sleepers` lock too: the thread that
//! completes the drain (or a resize that changes the worker limits) makes
//! its change and wakes everyone under the lock. If it takes the lock after
//! a sleeper registered, it finds and unparks the sleeper; if before, its
//! change happens before the sleeper's re-check, which then sees the drain
//! (or the surplus).
//!
//! The design follows the shape of rayon-core's sleep module (an idle
//! thread announces itself, then re-checks before blocking) with a plain
//! mutex-protected list of sleepers in place of rayon's packed counters: the
//! lock is only taken when a worker is about to block or one must be woken.

use std::time::Instant;

use crate::sync::{AtomicUsize, Mutex, Ordering, Parker, Unparker, fence, has_passed, lock, park_until};

/// How a [`Sleep::sleep`] ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Wake {
    /// Go back to work: there was work on the re-check, a waker took the
    /// worker off the list, or the park ended without a deadline.
    Work,
    /// The deadline passed with the worker still on the list; it is off the
    /// list now, and no waker counted on it.
    TimedOut,
}

/// Which list a worker sleeps on (see "Reserved threads").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Class {
    /// A worker of the pool's size: takes every level.
    Regular,
    /// A reserved thread: takes only the reserved levels.
    Reserved,
}

/// The registry of sleeping workers.
pub(crate) struct Sleep {
    /// How many workers are on `sleepers.list` and `sleepers.waiters`;
    /// changed only under its lock, read
    /// without it by wakers as the fast-path check. `Relaxed` throughout:
    /// the lock orders the changes, and the fences order the fast-path load
    /// against a sleeper's registration (see the module docs).
    sleeping: AtomicUsize,
    /// Registered sleepers, worker id and how to wake it (LIFO), and how
    /// many worker loops are running.
    sleepers: Mutex<Sleepers>,
    /// How many reserved threads are on `sleepers.reserved`; as `sleeping`.
    sleeping_reserved: AtomicUsize,
}

#[derive(Default)]
struct Sleepers {
    list: Vec<(usize, Unparker)>,
    /// Reserved threads asleep (see "Reserved threads").
    reserved: Vec<(usize, Unparker)>,
    /// Waiting workers: id, how to wake it, the least urgent level it may
    /// take (see "Waiting workers").
    waiters: Vec<(usize, Unparker, usize)>,
    /// Worker loops running, reserved threads' included.
    loops: usize,
    /// Of `loops`, those of reserved threads.
    reserved_loops: usize,
}

impl Sleepers {
    fn list(&mut self, class: Class) -> &mut Vec<(usize, Unparker)> {
        match class {
            Class::Regular => &mut self.list,
            Class::Reserved => &mut self.reserved,
        }
    }
}

impl Sleep {
    pub(crate) fn new() -> Sleep {
        Sleep {
            sleeping: AtomicUsize::new(0),
            sleepers: Mutex::new(Sleepers::default()),
            sleeping_reserved: AtomicUsize::new(0),
        }
    }

    /// The count of `class`'s list.
    fn sleeping(&self, class: Class) -> &AtomicUsize {
        match class {
            Class::Regular => &self.sleeping,
            Class::Reserved => &self.sleeping_reserved,
        }
    }

    /// Puts worker `id` to sleep on `parker`, on the list of its `class`,
    /// unless `has_work` says, after the worker is registered, that there
    /// is something to do. With a `deadline`, the sleep can end in
    /// [`Wake::TimedOut`]; without one it always ends in [`Wake::Work`].
    pub(crate) fn sleep(
        &self,
        id: usize,
        class: Class,
        parker: &Parker,
        deadline: Option<Instant>,
        has_work: impl Fn() -> bool,
    ) -> Wake {
        {
            let mut sleepers = lock(&self.sleepers);
            sleepers.list(class).push((id, parker.unparker().clone()));
            self.sleeping(class).fetch_add(1, Ordering::Relaxed);
        }
        // The sleeper's fence (see the module docs).
        fence(Ordering::SeqCst);
        if has_work() {
            self.deregister(id, class);
            return Wake::Work;
        }
        let Some(deadline) = deadline else {
            parker.park();
            self.deregister(id, class);
            return Wake::Work;
        };
        loop {
            park_until(parker, deadline);
            let mut sleepers = lock(&self.sleepers);
            let list = sleepers.list(class);
            let Some(pos) = list.iter().position(|&(i, _)| i == id) else {
                return Wake::Work;
            };
            if has_passed(deadline) {
                list.remove(pos);
                self.sleeping(class).fetch_sub(1, Ordering::Relaxed);
                return Wake::TimedOut;
            }
        }
    }

    /// Takes `id` off the list if no waker did. A waker that already took
    /// it has left a token in its parker; the next `park` then returns at
    /// once and the worker searches one extra time, which is harmless.
    fn deregister(&self, id: usize, class: Class) {
        let mut sleepers = lock(&self.sleepers);
        let list = sleepers.list(class);
        if let Some(pos) = list.iter().position(|&(i, _)| i == id) {
            list.remove(pos);
            self.sleeping(class).fetch_sub(1, Ordering::Relaxed);
        }
    }

    /// How many workers are registered as sleepers (the loom models'
    /// oracle).
    #[cfg(all(test, loom))]
    pub(crate) fn sleepers(&self) -> usize {
        let sleepers = lock(&self.sleepers);
        sleepers.list.len() + sleepers.reserved.len()
    }

    /// Wakes one sleeping regular worker, if any, and says whether it did:
    /// the growth path's wake-up (`limits.rs`), where any worker will do.
    pub(crate) fn wake_one(&self) -> bool {
        // The waker's fence (see the module docs).
        fence(Ordering::SeqCst);
        self.wake_from(Class::Regular)
    }

    /// Wakes one sleeper that may take a job of `level`, pushed just
    /// before: with `reserved` (a level the reserved threads take,
    /// `runtime/reserved.rs`) a reserved sleeper first; else a regular
    /// sleeper if there is one, else a waiter whose bound admits `level`.
    /// Says whether it woke one.
    #[inline]
    pub(crate) fn wake_one_at(&self, level: usize, reserved: bool) -> bool {
        // The waker's fence, one for every list (see the module docs).
        fence(Ordering::SeqCst);
        self.wake_at(level, reserved)
    }

    /// [`Sleep::wake_one_at`] without the waker's fence: for a job that
    /// its pusher will take itself if nobody else does (a fork half,
    /// `forkjoin/join.rs`), so a missed sleeper costs parallelism, never
    /// the job. Its only cost when nobody sleeps is a load or two.
    #[inline]
    pub(crate) fn hint_at(&self, level: usize, reserved: bool) {
        self.wake_at(level, reserved);
    }

    /// The lists in the order of [`Sleep::wake_one_at`]; the caller has
    /// fenced, or need not.
    #[inline]
    fn wake_at(&self, level: usize, reserved: bool) -> bool {
        (reserved && self.wake_from(Class::Reserved)) || self.wake_regular_or_waiter(level)
    }

    /// Takes one sleeper of `class`'s list, if its count says there is one,
    /// and unparks it. The caller has fenced.
    #[inline]
    fn wake_from(&self, class: Class) -> bool {
        self.sleeping(class).load(Ordering::Relaxed) != 0 && self.take_from(class)
    }

    /// [`Sleep::wake_from`] past its count: under the lock.
    #[cold]
    fn take_from(&self, class: Class) -> bool {
        let woken = {
            let mut sleepers = lock(&self.sleepers);
            let woken = sleepers.list(class).pop();
            if woken.is_some() {
                self.sleeping(class).fetch_sub(1, Ordering::Relaxed);
            }
            woken
        };
        match woken {
            Some((_, unparker)) => {
                unparker.unpark();
                true
            }
            None => false,
        }
    }

    /// Takes a regular sleeper if there is one, else the most recent
    /// waiter whose bound admits `level`, and unparks it. The caller has
    /// fenced.
    #[inline]
    fn wake_regular_or_waiter(&self, level: usize) -> bool {
        self.sleeping.load(Ordering::Relaxed) != 0 && self.take_regular_or_waiter(level)
    }

    /// [`Sleep::wake_regular_or_waiter`] past its count: under the lock.
    #[cold]
    fn take_regular_or_waiter(&self, level: usize) -> bool {
        let woken = {
            let mut sleepers = lock(&self.sleepers);
            let woken = match sleepers.list.pop() {
                Some((_, unparker)) => Some(unparker),
                None => {
                    let waiter = sleepers.waiters.iter().rposition(|&(_, _, upto)| level <= upto);
                    waiter.map(|at| sleepers.waiters.remove(at).1)
                }
            };
            if woken.is_some() {
                self.sleeping.fetch_sub(1, Ordering::Relaxed);
            }
            woken
        };
        woken.map(|unparker| unparker.unpark()).is_some()
    }

    /// Parks waiting worker `id` on `parker`, as one that may take jobs of
    /// levels `0..=upto`, unless `has_work` says, after it registered, that
    /// there is something to do (a job it may take, or what it waits for
    /// has ended). Returns when unparked: by a waker, by whoever ends what
    /// it waits for, at `deadline`, or spuriously; the caller re-checks.
    pub(crate) fn wait(
        &self,
        id: usize,
        parker: &Parker,
        upto: usize,
        deadline: Option<Instant>,
        has_work: impl FnOnce() -> bool,
    ) {
        {
            let mut sleepers = lock(&self.sleepers);
            sleepers.waiters.push((id, parker.unparker().clone(), upto));
            self.sleeping.fetch_add(1, Ordering::Relaxed);
        }
        // The sleeper's fence (see the module docs).
        fence(Ordering::SeqCst);
        if !has_work() {
            match deadline {
                None => parker.park(),
                Some(deadline) => park_until(parker, deadline),
            }
        }
        let mut sleepers = lock(&self.sleepers);
        if let Some(pos) = sleepers.waiters.iter().position(|&(i, _, _)| i == id) {
            sleepers.waiters.remove(pos);
            self.sleeping.fetch_sub(1, Ordering::Relaxed);
        }
    }

    /// Wakes every sleeping worker (shutdown, resizing).
    pub(crate) fn wake_all(&self) {
        let woken = self.take_all(&mut lock(&self.sleepers));
        for (_, unparker) in woken {
            unparker.unpark();
        }
    }

    /// If every running worker loop is registered as a sleeper and then
    /// `drained` (called under the lock, so no sleeper can leave meanwhile)
    /// says the pool is drained, wakes them all; returns whether it did.
    pub(crate) fn wake_all_if_idle(&self, drained: impl FnOnce() -> bool) -> bool {
        let woken = {
            let mut sleepers = lock(&self.sleepers);
            if !self.idle_throughout(&sleepers, drained) {
                return false;
            }
            self.take_all(&mut sleepers)
        };
        for (_, unparker) in woken {
            unparker.unpark();
        }
        true
    }

    /// Whether every running worker loop (reserved threads' included) is
    /// registered as a sleeper and then `rest()`, called under the lock so
    /// that no sleeper can leave meanwhile, holds: the drain check of
    /// [`Sleep::wake_all_if_idle`] without the waking.
    pub(crate) fn is_idle(&self, rest: impl FnOnce() -> bool) -> bool {
        let sleepers = lock(&self.sleepers);
        self.idle_throughout(&sleepers, rest)
    }

    /// Whether every worker loop is asleep (on either list) and then
    /// `rest()` holds, under the lock, so that no sleeper can leave
    /// meanwhile.
    fn idle_throughout(&self, sleepers: &Sleepers, rest: impl FnOnce() -> bool) -> bool {
        sleepers.list.len() + sleepers.reserved.len() == sleepers.loops && rest()
    }

    fn take_all(&self, sleepers: &mut Sleepers) -> Vec<(usize, Unparker)> {
        self.sleeping.fetch_sub(sleepers.list.len(), Ordering::Relaxed);
        self.sleeping_reserved.fetch_sub(sleepers.reserved.len(), Ordering::Relaxed);
        let mut woken = std::mem::take(&mut sleepers.list);
        woken.append(&mut sleepers.reserved);
        woken
    }

    /// A worker loop of `class` starts.
    pub(crate) fn enter_loop(&self, class: Class) {
        let mut sleepers = lock(&self.sleepers);
        sleepers.loops += 1;
        sleepers.reserved_loops += usize::from(class == Class::Reserved);
    }

    /// A worker loop of `class` ends (its worker is not on a list).
    pub(crate) fn leave_loop(&self, class: Class) {
        let mut sleepers = lock(&self.sleepers);
        sleepers.loops -= 1;
        sleepers.reserved_loops -= usize::from(class == Class::Reserved);
    }

    /// How many regular worker loops are running (a snapshot): the loops
    /// that take every level. Reserved threads' loops are not counted.
    pub(crate) fn regular_loops(&self) -> usize {
        let sleepers = lock(&self.sleepers);
        sleepers.loops - sleepers.reserved_loops
    }

    /// How many worker loops are not asleep (a snapshot): each may hold a
    /// job it took, running it or about to run or discard it, or be looking
    /// for one. 0 means no worker holds a job (the argument of the module
    /// docs' drain paragraph).
    pub(crate) fn engaged(&self) -> usize {
        let sleepers = lock(&self.sleepers);
        sleepers.loops - (sleepers.list.len() + sleepers.reserved.len())
    }
}
