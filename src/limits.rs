//! Dynamic pools: how many workers a pool runs, and the rules that grow and
//! shrink that number while jobs are being stolen.
//!
//! # The figures
//!
//! One `AtomicU64` packs three numbers, so that every decision about them is
//! a single compare-and-swap:
//!
//! | field  | meaning                                                              |
//! |--------|----------------------------------------------------------------------|
//! | `live` | workers counted in the pool's size: running, or reserved and being started, and not retiring |
//! | `min`  | idleness never takes `live` below it                                 |
//! | `max`  | growth never takes `live` above it; while `live > max` the pool has *surplus* workers |
//!
//! A fixed pool is the case `min == max`: it never grows on its own, and no
//! worker of it ever parks with a timeout. A second counter, `searching`,
//! counts the workers of a growable pool that are looking for work and have
//! not found any: started by growth and not yet running a job, or spinning
//! after a pick found every level empty.
//!
//! # Growing
//!
//! A push that finds no sleeper to wake
//! ([`Sleep::wake_one_at`](crate::sleep::Sleep::wake_one_at) returns
//! `false`)
//! asks `Registry::notify` to grow. The pool grows by one worker
//! when `live < max` and the jobs waiting in the injectors
//! (`Levels::injected`; a job spawned by a job waits in its worker's deque,
//! and that worker is awake) are
//! larger than `searching`: jobs wait and no idle worker is about to take
//! them. A pool at its maximum (every fixed pool) pays one atomic load on this
//! path; the backlog and `searching` are read only when growth is possible.
//!
//! `searching` can be stale: a worker counted as searching may have just
//! found its job. So a searching worker that finds a job lowers `searching`
//! and then, after a fence, re-checks the queues ([`Levels::any_queued`]);
//! if jobs still wait it notifies in turn (the *baton*). This re-check
//! pairs with the pusher's fence exactly as a sleeper's re-check does in
//! `sleep.rs`: either it sees the pushed job, or the pusher's later read of
//! `searching` sees it lowered.
//!
//! Growth starts at most one worker per push (or baton), so a burst of `n`
//! pushes into a busy pool starts up to `n` workers, bounded by `max`;
//! workers that then find nothing retire after the keep-alive.
//!
//! # Shrinking
//!
//! *Surplus.* `Registry::set_worker_limits` may leave `live > max`. Every
//! worker checks for surplus at the top of its loop, **before every pick**,
//! so that a surplus worker takes no new job after its current one (the
//! re-check before sleeping only looks at the queues, it never pops). A worker
//! that finds surplus retires with a compare-and-swap that lowers `live`
//! only while `live > max`, so exactly `live - max` workers leave.
//!
//! *Idleness.* A worker of a pool with `live > min` parks with a deadline of
//! `keep_alive`. If the deadline passes and it is still on the sleeper list,
//! it takes itself off the list and tries to retire: `live -= 1` while
//! `live > min`. If a waker took it off the list first, the wake-up is the
//! worker's to honour: it goes back to work and does not retire.
//!
//! # Why no job is stranded
//!
//! The sleep protocol keeps the invariant *whenever a job is queued, some
//! worker is active, spinning or sleepy, or a waker is about to unpark
//! one*. Retirement could break it in two ways, and each is closed:
//!
//! 1. A sleeper times out just as a job is pushed. The retiring worker takes
//!    itself off the list and lowers `live`, and *then*, after a fence,
//!    re-checks the queues; the pusher pushes, fences and then reads
//!    `sleeping` and `live`. The two fences pair as a sleeper's and a
//!    waker's do in `sleep.rs`: either the retiring worker sees the job,
//!    takes its slot back (`live += 1` while `live < max`) and goes back to
//!    work; or the pusher sees the worker gone from the list and from
//!    `live`, finds `live < max`, and starts a replacement (or wakes another
//!    sleeper).
//! 2. A surplus worker (or an idle one that could not take its slot back)
//!    leaves with jobs around: a wake-up aimed at it, or jobs of its own
//!    local deques. Its deques stay stealable until empty (`workers.rs`;
//!    jobs never move between queues, so the priority rule sees them
//!    throughout) and, if any job is queued, it passes the wake-up on with
//!    `Registry::notify`: it wakes a sleeper, or grows the pool, or finds
//!    every other worker awake, and awake workers find the job (they pick,
//!    or register as sleepers and then re-check).
//!
//! A pool with `min == 0` can reach `live == 0`; a push then starts a worker
//! (the backlog exceeds `searching == 0`). If the OS refuses the thread
//! (reported once on stderr), the job waits for the next push to try again,
//! or for shutdown: a shutdown that finds jobs and no thread tries to start
//! one and, failing that, runs the jobs on its own thread.
//!
//! # Threads
//!
//! A retiring worker leaves the steal snapshot only after its deques are
//! empty, and its thread is joined by the next worker to retire, by the
//! next resize, or at shutdown (see `runtime/workers.rs`); shutdown joins every
//! thread ever started. Worker indexes are never reused, so the sleeper
//! list, which keys by index, never confuses two workers.
//!
//! The retirement rules follow the shape of `java.util.concurrent`'s
//! `ThreadPoolExecutor` (core and maximum sizes, keep-alive for threads
//! above the core size) and tokio's blocking pool (keep-alive on a timed
//! park); the surplus check before every pick is the fix of tikv/yatp's
//! PR #90, where a surplus worker still popped a job in its
//! check-before-sleep path.

use std::time::{Duration, Instant};

use crate::config::MAX_WORKERS;
use crate::sync::{AtomicU64, AtomicUsize, Ordering, fence};

/// Bits per field of the packed state; `MAX_WORKERS` fits with room to
/// spare.
const FIELD_BITS: u32 = 20;
const FIELD_MASK: u64 = (1 << FIELD_BITS) - 1;
const _: () = assert!(MAX_WORKERS as u64 <= FIELD_MASK);

/// The three worker counts, unpacked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Counts {
    pub(crate) live: usize,
    pub(crate) min: usize,
    pub(crate) max: usize,
}

impl Counts {
    fn pack(self) -> u64 {
        self.live as u64 | (self.min as u64) << FIELD_BITS | (self.max as u64) << (2 * FIELD_BITS)
    }

    fn unpack(bits: u64) -> Counts {
        let field = |i: u32| ((bits >> (i * FIELD_BITS)) & FIELD_MASK) as usize;
        Counts { live: field(0), min: field(1), max: field(2) }
    }
}

/// The worker counts of one pool and the rules that change them.
pub(crate) struct Limits {
    /// `Counts`, packed.
    state: AtomicU64,
    /// Workers of a growable pool looking for work without having found any.
    searching: AtomicUsize,
    /// Workers that left without retiring, because the pool was drained
    /// for shutdown: they keep their slot in `live` (nothing decides
    /// anything on it any more), and [`Limits::current`] subtracts them.
    left_at_shutdown: AtomicUsize,
    /// How long a worker above `min` stays parked before it retires.
    keep_alive: Duration,
    /// 1 after a failed thread start, 0 after a successful one, so that a
    /// run of failures is reported once.
    spawn_failing: AtomicUsize,
}

impl Limits {
    /// No workers yet, and limits `min..=max`; see [`Limits::set_limits`].
    pub(crate) fn new(min: usize, max: usize, keep_alive: Duration) -> Limits {
        Limits {
            state: AtomicU64::new(Counts { live: 0, min, max }.pack()),
            searching: AtomicUsize::new(0),
            left_at_shutdown: AtomicUsize::new(0),
            keep_alive,
            spawn_failing: AtomicUsize::new(0),
        }
    }

    /// The counts now (a snapshot).
    #[inline]
    pub(crate) fn counts(&self) -> Counts {
        Counts::unpack(self.state.load(Ordering::SeqCst))
    }

    /// Applies `change` atomically; `Err` with the counts seen if it
    /// declined (returned `None`).
    fn update(&self, mut change: impl FnMut(Counts) -> Option<Counts>) -> Result<Counts, Counts> {
        self.state
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |bits| change(Counts::unpack(bits)).map(Counts::pack))
            .map(Counts::unpack)
            .map_err(Counts::unpack)
    }

    /// Sets the limits to `min..=max` (already validated) and reserves the
    /// slots of the workers needed to bring `live` up to `min`; returns how
    /// many the caller must start. Workers above `max` become surplus and
    /// retire on their own.
    pub(crate) fn set_limits(&self, min: usize, max: usize) -> usize {
        let mut reserved = 0;
        let _ = self.update(|c| {
            reserved = min.saturating_sub(c.live);
            Some(Counts { live: c.live.max(min), min, max })
        });
        reserved
    }

    /// Whether the pool has more workers than its maximum. Checked by every
    /// worker before every pick: one load.
    pub(crate) fn is_surplus(&self) -> bool {
        let c = Counts::unpack(self.state.load(Ordering::Acquire));
        c.live > c.max
    }

    /// Whether the pool may start more workers right now.
    #[inline]
    pub(crate) fn may_grow(&self) -> bool {
        let c = Counts::unpack(self.state.load(Ordering::Relaxed));
        c.live < c.max
    }

    /// Retires the caller as a surplus worker if there still is a surplus.
    pub(crate) fn retire_surplus(&self) -> bool {
        self.update(|c| (c.live > c.max).then_some(Counts { live: c.live - 1, ..c })).is_ok()
    }

    /// The deadline for a worker about to park: `keep_alive` from now if the
    /// pool is above its minimum, else `None` (park until woken).
    pub(crate) fn keep_alive_deadline(&self) -> Option<Instant> {
        let c = Counts::unpack(self.state.load(Ordering::Relaxed));
        if c.live > c.min { Instant::now().checked_add(self.keep_alive) } else { None }
    }

    /// A worker whose keep-alive ran out, already off the sleeper list,
    /// tries to retire. Returns `true` if it must leave; `false` if it must
    /// go back to work (the pool is at its minimum, or a job was queued
    /// meanwhile and its slot was still free to take back). See the module
    /// docs, case 1.
    pub(crate) fn retire_idle(&self, any_queued: impl FnOnce() -> bool) -> bool {
        if self.update(|c| (c.live > c.min).then_some(Counts { live: c.live - 1, ..c })).is_err() {
            return false;
        }
        // The re-check pairs with a pusher's fence as a sleeper's does (see
        // `sleep.rs`): either it sees the job, or the pusher's later reads
        // of `sleeping` and `live` see the worker gone from both.
        fence(Ordering::SeqCst);
        if any_queued() && self.update(|c| (c.live < c.max).then_some(Counts { live: c.live + 1, ..c })).is_ok() {
            return false;
        }
        true
    }

    /// Reserves a slot for one more worker if jobs wait and no searching
    /// worker is there to take them; the caller then starts it (counted as
    /// searching) or calls [`Limits::release`].
    /// A pool at its maximum (every fixed pool, on every push that wakes
    /// nobody) pays one load, inlined; the rest is out of line.
    #[inline]
    pub(crate) fn reserve_if_backlogged(&self, backlog: impl FnOnce() -> usize) -> bool {
        let c = self.counts();
        c.live < c.max && self.reserve_below_max(backlog)
    }

    /// [`Limits::reserve_if_backlogged`] of a pool below its maximum.
    #[cold]
    fn reserve_below_max(&self, backlog: impl FnOnce() -> usize) -> bool {
        if backlog() <= self.searching.load(Ordering::SeqCst) {
            return false;
        }
        self.searching.fetch_add(1, Ordering::SeqCst);
        if self.update(|c| (c.live < c.max).then_some(Counts { live: c.live + 1, ..c })).is_ok() {
            true
        } else {
            self.searching.fetch_sub(1, Ordering::SeqCst);
            false
        }
    }

    /// Gives back a reserved slot whose thread was not started.
    pub(crate) fn release(&self, searching: bool) {
        if searching {
            self.searching.fetch_sub(1, Ordering::SeqCst);
        }
        let _ = self.update(|c| Some(Counts { live: c.live.saturating_sub(1), ..c }));
    }

    /// A worker of a growable pool starts searching.
    pub(crate) fn enter_searching(&self) {
        self.searching.fetch_add(1, Ordering::SeqCst);
    }

    /// A searching worker stops searching; if it stops because it found a
    /// job (`found_job`), returns whether jobs still wait, in which case the
    /// caller passes the baton with `Registry::notify`.
    pub(crate) fn leave_searching(&self, found_job: bool, any_queued: impl FnOnce() -> bool) -> bool {
        self.searching.fetch_sub(1, Ordering::SeqCst);
        // Pairs with a pusher's fence (see `retire_idle`).
        fence(Ordering::SeqCst);
        found_job && any_queued()
    }

    /// Records a successful thread start: the next failure is reported
    /// again. (The count of threads started is kept by `runtime/workers.rs`.)
    pub(crate) fn spawn_succeeded(&self) {
        self.spawn_failing.store(0, Ordering::Relaxed);
    }

    /// Records a worker holding a slot that exits because the pool is
    /// drained for shutdown (not a retirement).
    pub(crate) fn left_at_shutdown(&self) {
        self.left_at_shutdown.fetch_add(1, Ordering::Relaxed);
    }

    /// The pool's size now, as [`Pool::workers`](crate::Pool::workers)
    /// and the metrics report it: `live`, less the workers that have
    /// exited at shutdown, so that it falls to 0 once the pool has shut
    /// down. (Workers exit at shutdown only once the pool is drained, and
    /// from then on no worker starts, so the difference cannot go below the
    /// workers still running; it saturates all the same.)
    pub(crate) fn current(&self) -> usize {
        self.counts().live.saturating_sub(self.left_at_shutdown.load(Ordering::Relaxed))
    }

    /// Reports a refused thread start on stderr, once per run of failures.
    pub(crate) fn report_spawn_failure(&self, error: &std::io::Error) {
        if self.spawn_failing.swap(1, Ordering::Relaxed) == 0 {
            eprintln!(
                "priopool: the OS refused to start a worker thread ({error}); the pool keeps running with {} workers \
                 and will try again when more work arrives",
                self.counts().live
            );
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn counts_round_trip_through_the_packed_word() {
        for counts in [
            Counts { live: 0, min: 0, max: 1 },
            Counts { live: 3, min: 1, max: 4 },
            Counts { live: MAX_WORKERS, min: MAX_WORKERS, max: MAX_WORKERS },
        ] {
            assert_eq!(Counts::unpack(counts.pack()), counts);
        }
    }

    #[test]
    fn set_limits_reserves_up_to_min_and_leaves_surplus() {
        let limits = Limits::new(0, 0, Duration::from_secs(1));
        assert_eq!(limits.set_limits(3, 5), 3);
        assert_eq!(limits.counts(), Counts { live: 3, min: 3, max: 5 });
        assert_eq!(limits.set_limits(1, 1), 0);
        assert!(limits.is_surplus());
        assert!(limits.retire_surplus());
        assert!(limits.retire_surplus());
        assert!(!limits.retire_surplus(), "exactly live - max workers retire");
        assert_eq!(limits.counts().live, 1);
    }

    #[test]
    fn idle_retirement_stops_at_min_and_yields_to_queued_work() {
        let limits = Limits::new(0, 0, Duration::from_secs(1));
        limits.set_limits(2, 2);
        limits.set_limits(1, 3);
        assert!(limits.keep_alive_deadline().is_some());
        assert!(limits.retire_idle(|| false));
        assert_eq!(limits.counts().live, 1);
        assert!(limits.keep_alive_deadline().is_none());
        assert!(!limits.retire_idle(|| false), "never below min");

        limits.set_limits(0, 3);
        assert!(!limits.retire_idle(|| true), "a queued job keeps the worker");
        assert_eq!(limits.counts().live, 1);
    }

    #[test]
    fn growth_needs_a_backlog_larger_than_the_searchers() {
        let limits = Limits::new(0, 0, Duration::from_secs(1));
        limits.set_limits(0, 2);
        assert!(!limits.reserve_if_backlogged(|| 0), "no backlog, no growth");
        assert!(limits.reserve_if_backlogged(|| 1));
        assert!(!limits.reserve_if_backlogged(|| 1), "the new worker is searching");
        assert!(limits.reserve_if_backlogged(|| 2));
        assert!(!limits.reserve_if_backlogged(|| 3), "at max");
        assert_eq!(limits.counts().live, 2);
        limits.release(true);
        assert_eq!(limits.counts().live, 1);
    }
}

/// Loom models of retirement racing the sleep protocol. They run under
/// `RUSTFLAGS="--cfg loom"` with the loom stand-ins of `sync.rs` and
/// `queue/deque.rs` (threads, atomics, locks, parker, queues), and compose the
/// same calls the worker loop and `Registry::notify` make.
#[cfg(all(test, loom))]
mod loom_models {
    use std::time::{Duration, Instant};

    use super::Limits;
    use crate::job::Job;
    use crate::queue::levels::{Levels, Pick};
    use crate::queue::local::{LocalQueues, SharedQueues};
    use crate::sleep::{Class, Sleep, Wake};
    use crate::sync::{Arc, Ordering, Parker, fence, thread};

    /// No worker deques: the models that need none.
    const NO_PEERS: &[Arc<SharedQueues<Job>>] = &[];

    /// What `Registry::notify` does, minus starting the thread: `true` if
    /// it woke a sleeper or reserved a slot for a new worker.
    fn notify(sleep: &Sleep, limits: &Limits, levels: &Levels<Job>) -> bool {
        sleep.wake_one() || limits.reserve_if_backlogged(|| levels.injected())
    }

    /// How the modelled worker's sleep ended.
    #[derive(Debug, PartialEq, Eq)]
    enum Fate {
        /// Back to work without a timeout.
        Woken,
        /// Timed out, but stayed: at the minimum, or took its slot back.
        Stayed,
        /// Retired; `true` if it passed a wake-up on.
        Retired(bool),
    }

    /// A pool whose one worker (min 0, max 1) is asleep with its keep-alive
    /// run out, while a job is pushed and a wake-up aimed at it. Whatever
    /// the interleaving, a wake-up that took the worker off the sleeper list
    /// is honoured (the worker goes back to work without even trying to
    /// retire), and the job is not stranded: the worker stays, or a
    /// replacement is reserved, or the worker passed the wake-up on.
    #[test]
    fn keep_alive_timeout_races_a_push_and_its_wake_up() {
        loom::model(|| {
            let levels = Arc::new(Levels::new(1));
            let sleep = Arc::new(Sleep::new());
            let limits = Arc::new(Limits::new(0, 0, Duration::from_secs(1)));
            limits.set_limits(1, 1);
            limits.set_limits(0, 1);

            let worker = {
                let (levels, sleep, limits) = (Arc::clone(&levels), Arc::clone(&sleep), Arc::clone(&limits));
                thread::spawn(move || {
                    let parker = Parker::new();
                    // A deadline already past: the keep-alive has run out.
                    match sleep.sleep(0, Class::Regular, &parker, Some(Instant::now()), || levels.any_queued(NO_PEERS))
                    {
                        Wake::Work => Fate::Woken,
                        Wake::TimedOut if !limits.retire_idle(|| levels.any_queued(NO_PEERS)) => Fate::Stayed,
                        // As `Registry::retire_worker`: pass the wake-up on.
                        Wake::TimedOut => {
                            fence(Ordering::SeqCst);
                            Fate::Retired(levels.any_queued(NO_PEERS) && notify(&sleep, &limits, &levels))
                        }
                    }
                })
            };

            // Pushed, then a wake-up, as `Registry::inject` does.
            levels.inject(0, Job::new(|| {}));
            let woke = sleep.wake_one();
            let grew = !woke && limits.reserve_if_backlogged(|| levels.injected());

            let fate = worker.join().unwrap();
            if woke {
                assert_eq!(fate, Fate::Woken, "a wake-up was aimed at the worker, yet it tried to retire");
            }
            assert!(fate != Fate::Retired(false) || grew, "the job was left with no worker to run it");
        });
    }

    /// A surplus worker whose last job pushed a child onto its own local
    /// deque retires before picking it, while the other worker falls
    /// asleep. The child must reach the other worker: it stays in the
    /// retired worker's deque, which stays stealable, and the sleeper is
    /// woken (or never asleep).
    #[test]
    fn surplus_worker_retires_with_a_job_in_its_local_deque() {
        loom::model(|| {
            let levels = Arc::new(Levels::new(1));
            let sleep = Arc::new(Sleep::new());
            let limits = Arc::new(Limits::new(0, 0, Duration::from_secs(1)));
            limits.set_limits(2, 2);
            limits.set_limits(1, 1);
            let local = LocalQueues::new(1);
            let peers = Arc::new(vec![Arc::clone(local.shared())]);

            let other = {
                let (levels, sleep, peers) = (Arc::clone(&levels), Arc::clone(&sleep), Arc::clone(&peers));
                thread::spawn(move || {
                    let parker = Parker::new();
                    let own = LocalQueues::new(1);
                    loop {
                        match levels.pick(&own, &peers, 0) {
                            Pick::Found(..) => return,
                            Pick::Contended => thread::yield_now(),
                            Pick::Empty => {
                                sleep.sleep(1, Class::Regular, &parker, None, || levels.any_queued(&peers));
                            }
                        }
                    }
                })
            };

            // The retiring worker: its job spawns a child (Registry::inject).
            local.push(0, Job::new(|| {}));
            notify(&sleep, &limits, &levels);
            // Back at the top of its loop: surplus, so it retires without
            // picking, as `WorkerThread::run` and `Registry::retire_worker` do.
            assert!(limits.is_surplus() && limits.retire_surplus());
            fence(Ordering::SeqCst);
            if levels.any_queued(&peers) {
                notify(&sleep, &limits, &levels);
            }

            other.join().unwrap();
        });
    }
}
