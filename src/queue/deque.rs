//! The queue types the worker loop is written against.
//!
//! These are crossbeam-deque's lock-free queues: [`Injector`] is the
//! multi-producer FIFO that external threads push into, [`Worker`] is a
//! worker's own Chase-Lev deque (Chase and Lev, "Dynamic Circular
//! Work-Stealing Deque", SPAA 2005), in its LIFO flavour for spawned jobs
//! and for the halves `join` forks (`queue/local.rs`, `forkjoin/`), and
//! [`Stealer`] is the handle other workers (and the owner's oldest-first
//! take) steal from it with. Keeping the
//! import in one module gives a model checker a single seam to replace them.
//!
//! crossbeam-deque is not loom-aware, so under `cfg(loom)` this module is a
//! stand-in with the same names and exactly the methods the crate calls,
//! built on loom's `Mutex<VecDeque>`. It keeps the behaviours of the real
//! queues that the pool's protocols have to survive:
//!
//! * a steal that loses the race for the front job to another steal or to
//!   the owner's pop answers [`Steal::Retry`] (the stand-in reads a version
//!   number, then claims only if it is unchanged, as crossbeam claims with a
//!   compare-and-swap), which is "try again", not "empty";
//! * `is_empty` reads without the lock, as crossbeam reads its indices: a
//!   plain `Acquire` load of a length updated after each change, so a
//!   reader may see a stale length unless something else orders it after
//!   the change (the pool's `SeqCst` fences do; see `sleep.rs`).
//!
//! The stand-in does not model crossbeam's internal memory orderings beyond
//! that; the crate trusts crossbeam for those (its `unsafe` blocks are
//! crossbeam's own, and crossbeam tests it with its own loom and miri runs).

#[cfg(not(loom))]
pub(crate) use crossbeam_deque::{Injector, Steal, Stealer, Worker};

#[cfg(loom)]
pub(crate) use self::model::{Injector, Steal, Stealer, Worker};

#[cfg(loom)]
mod model {
    use std::collections::VecDeque;

    use crate::sync::{Arc, AtomicUsize, Mutex, Ordering, lock};

    /// The outcome of a steal, as crossbeam-deque's `Steal`.
    pub(crate) enum Steal<T> {
        Empty,
        Success(T),
        Retry,
    }

    /// A multi-producer FIFO queue.
    pub(crate) struct Injector<T> {
        queue: Queue<T>,
    }

    /// A worker's own queue, in crossbeam's LIFO flavour (the owner pops
    /// the newest job); other workers reach it through a [`Stealer`].
    pub(crate) struct Worker<T> {
        queue: Arc<Queue<T>>,
    }

    /// Steals from a [`Worker`].
    pub(crate) struct Stealer<T> {
        queue: Arc<Queue<T>>,
    }

    struct Queue<T> {
        jobs: Mutex<VecDeque<T>>,
        /// Bumped by every successful steal and owner pop. A steal reads it,
        /// then claims a job only if it is unchanged, as crossbeam's steal
        /// claims with a compare-and-swap on the queue's head: a steal that
        /// lost that race to another steal or pop answers `Retry` while the
        /// queue may still hold jobs.
        version: AtomicUsize,
        /// The number of jobs, changed (`Release`) under the lock after the
        /// queue changes and read without it by `is_empty`. (Changed with
        /// read-modify-writes: loom 0.7's store history trips an internal
        /// assertion on long runs of plain stores.)
        len: AtomicUsize,
    }

    impl<T> Queue<T> {
        fn new() -> Queue<T> {
            Queue { jobs: Mutex::new(VecDeque::new()), version: AtomicUsize::new(0), len: AtomicUsize::new(0) }
        }

        fn push(&self, job: T) {
            let mut jobs = lock(&self.jobs);
            jobs.push_back(job);
            self.len.fetch_add(1, Ordering::Release);
        }

        /// Takes the front job; `Retry` if another steal or pop took a job
        /// between this steal's look and its claim.
        fn steal(&self) -> Steal<T> {
            let seen = {
                let jobs = lock(&self.jobs);
                if jobs.is_empty() {
                    return Steal::Empty;
                }
                self.version.load(Ordering::Relaxed)
            };
            let mut jobs = lock(&self.jobs);
            if self.version.load(Ordering::Relaxed) != seen {
                return Steal::Retry;
            }
            let Some(job) = jobs.pop_front() else {
                return Steal::Retry;
            };
            self.version.fetch_add(1, Ordering::Relaxed);
            self.len.fetch_sub(1, Ordering::Release);
            Steal::Success(job)
        }

        /// The owner's pop of the newest job: never `Retry`, but it moves
        /// `version`, so a steal racing it may have to retry.
        fn pop(&self) -> Option<T> {
            let mut jobs = lock(&self.jobs);
            let job = jobs.pop_back()?;
            self.version.fetch_add(1, Ordering::Relaxed);
            self.len.fetch_sub(1, Ordering::Release);
            Some(job)
        }

        fn len(&self) -> usize {
            self.len.load(Ordering::Acquire)
        }

        /// Test oracle: whether a job in the queue passes `test`, read
        /// under its lock.
        #[cfg(test)]
        fn holds(&self, test: impl Fn(&T) -> bool) -> bool {
            lock(&self.jobs).iter().any(test)
        }
    }

    impl<T> Clone for Stealer<T> {
        fn clone(&self) -> Stealer<T> {
            Stealer { queue: Arc::clone(&self.queue) }
        }
    }

    impl<T> Injector<T> {
        pub(crate) fn new() -> Injector<T> {
            Injector { queue: Queue::new() }
        }

        pub(crate) fn push(&self, job: T) {
            self.queue.push(job);
        }

        pub(crate) fn steal(&self) -> Steal<T> {
            self.queue.steal()
        }

        pub(crate) fn is_empty(&self) -> bool {
            self.queue.len() == 0
        }

        pub(crate) fn len(&self) -> usize {
            self.queue.len()
        }

        /// Test oracle: whether a job in the queue passes `test`, read
        /// under its lock.
        #[cfg(test)]
        pub(crate) fn holds(&self, test: impl Fn(&T) -> bool) -> bool {
            self.queue.holds(test)
        }
    }

    impl<T> Worker<T> {
        pub(crate) fn new_lifo() -> Worker<T> {
            Worker { queue: Arc::new(Queue::new()) }
        }

        pub(crate) fn push(&self, job: T) {
            self.queue.push(job);
        }

        /// The owner pops from the back, the newest job, as crossbeam's
        /// LIFO flavour; it never meets `Retry`. Steals always take the
        /// front, the oldest job.
        pub(crate) fn pop(&self) -> Option<T> {
            self.queue.pop()
        }

        pub(crate) fn stealer(&self) -> Stealer<T> {
            Stealer { queue: Arc::clone(&self.queue) }
        }

        pub(crate) fn len(&self) -> usize {
            self.queue.len()
        }

        pub(crate) fn is_empty(&self) -> bool {
            self.queue.len() == 0
        }
    }

    impl<T> Stealer<T> {
        pub(crate) fn steal(&self) -> Steal<T> {
            self.queue.steal()
        }

        pub(crate) fn len(&self) -> usize {
            self.queue.len()
        }

        pub(crate) fn is_empty(&self) -> bool {
            self.queue.len() == 0
        }

        /// Test oracle: whether a job in the queue passes `test`, read
        /// under its lock.
        #[cfg(test)]
        pub(crate) fn holds(&self, test: impl Fn(&T) -> bool) -> bool {
            self.queue.holds(test)
        }
    }
}
