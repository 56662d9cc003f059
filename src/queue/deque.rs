//! The queue types the worker loop is written against.
//!
//! These are crossbeam-deque's lock-free queues: [`Injector`] is the
//! multi-producer FIFO that external threads push into, [`Worker`] is a
//! worker's own Chase-Lev deque (Chase and Lev, "Dynamic Circular
//! Work-Stealing Deque", SPAA 2005; used here in its FIFO flavour) and
//! [`Stealer`] is the handle other workers steal from it with. Keeping the
//! import in one module gives a model checker a single seam to replace them.
//!
//! crossbeam-deque is not loom-aware, so under `cfg(loom)` this module is a
//! stand-in with the same names and exactly the methods the crate calls,
//! built on loom's `Mutex<VecDeque>`. It keeps the two behaviours of the
//! real queues that the pick rule has to survive:
//!
//! * a steal that loses the race for the front job to another steal or to
//!   the owner's pop answers [`Steal::Retry`] (the stand-in reads a version
//!   number, then claims only if it is unchanged, as crossbeam claims with a
//!   compare-and-swap), which is "try again", not "empty";
//! * `steal_batch` and `steal_batch_and_pop` take their batch out of the
//!   source and push it into the destination in two separate steps, so the
//!   rest of the batch is briefly *in flight*, visible in neither queue. The per-level queued
//!   count exists to cover exactly this window.
//!
//! The stand-in does not model crossbeam's internal memory orderings; the
//! crate trusts crossbeam for those (its `unsafe` blocks are crossbeam's own, and
//! crossbeam tests it with its own loom and miri runs).

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

    impl<T> Steal<T> {
        /// The same outcome with `f` applied to a stolen value.
        fn map<U>(self, f: impl FnOnce(T) -> U) -> Steal<U> {
            match self {
                Steal::Success(value) => Steal::Success(f(value)),
                Steal::Empty => Steal::Empty,
                Steal::Retry => Steal::Retry,
            }
        }
    }

    /// A multi-producer FIFO queue.
    pub(crate) struct Injector<T> {
        queue: Queue<T>,
    }

    /// A worker's own FIFO queue; other workers reach it through a
    /// [`Stealer`].
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
        /// Jobs taken out of another queue on their way into this one. A
        /// test oracle for the models, deliberately a plain std atomic: it
        /// adds no interleavings, and the model's threads all run on one OS
        /// thread, so it always holds the true count.
        incoming: std::sync::atomic::AtomicUsize,
    }

    impl<T> Queue<T> {
        fn new() -> Queue<T> {
            Queue { jobs: Mutex::new(VecDeque::new()), version: AtomicUsize::new(0), incoming: Default::default() }
        }

        /// Takes the front job of this queue plus half of the rest (rounded
        /// up), then, after releasing this queue, pushes into `dest` that
        /// batch, without the front job if `pop` (which is returned) or with
        /// it at the batch's head. Until then the batch is in flight, in
        /// neither queue. A steal that loses the race for the front job (see
        /// `version`) gives `Retry`.
        fn steal_batch(&self, dest: &Worker<T>, pop: bool) -> Steal<Option<T>> {
            use std::sync::atomic::Ordering::Relaxed;
            let seen = {
                let jobs = lock(&self.jobs);
                if jobs.is_empty() {
                    return Steal::Empty;
                }
                self.version.load(Ordering::Relaxed)
            };
            let (job, batch) = {
                let mut jobs = lock(&self.jobs);
                if self.version.load(Ordering::Relaxed) != seen {
                    return Steal::Retry;
                }
                let Some(job) = jobs.pop_front() else {
                    return Steal::Retry;
                };
                self.version.fetch_add(1, Ordering::Relaxed);
                let take = jobs.len().div_ceil(2);
                let mut batch = Vec::with_capacity(take + 1);
                let job = if pop {
                    Some(job)
                } else {
                    batch.push(job);
                    None
                };
                batch.extend(jobs.drain(..take));
                dest.queue.incoming.fetch_add(batch.len(), Relaxed);
                (job, batch)
            };
            if !batch.is_empty() {
                let mut jobs = lock(&dest.queue.jobs);
                dest.queue.incoming.fetch_sub(batch.len(), Relaxed);
                jobs.extend(batch);
            }
            Steal::Success(job)
        }

        fn steal_batch_and_pop(&self, dest: &Worker<T>) -> Steal<T> {
            self.steal_batch(dest, true).map(|job| job.expect("a popping steal returns its job"))
        }

        fn steal_batch_only(&self, dest: &Worker<T>) -> Steal<()> {
            self.steal_batch(dest, false).map(|_| ())
        }

        /// The owner's pop: never `Retry`, but it moves `version`, so a
        /// steal racing it may have to retry.
        fn pop(&self) -> Option<T> {
            let mut jobs = lock(&self.jobs);
            let job = jobs.pop_front()?;
            self.version.fetch_add(1, Ordering::Relaxed);
            Some(job)
        }

        /// Test oracle: the queue is empty and no batch is on its way in.
        #[cfg(test)]
        fn holds_nothing(&self) -> bool {
            lock(&self.jobs).is_empty() && self.incoming.load(std::sync::atomic::Ordering::Relaxed) == 0
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
            lock(&self.queue.jobs).push_back(job);
        }

        /// Takes the front job and about half of the rest; see
        /// `Queue::steal_batch`.
        pub(crate) fn steal_batch_and_pop(&self, dest: &Worker<T>) -> Steal<T> {
            self.queue.steal_batch_and_pop(dest)
        }

        /// Moves the front job and about half of the rest into `dest`; see
        /// `Queue::steal_batch`.
        pub(crate) fn steal_batch(&self, dest: &Worker<T>) -> Steal<()> {
            self.queue.steal_batch_only(dest)
        }

        #[allow(dead_code)] // crossbeam's API; the models inspect queues with it
        pub(crate) fn is_empty(&self) -> bool {
            lock(&self.queue.jobs).is_empty()
        }
    }

    impl<T> Worker<T> {
        pub(crate) fn new_fifo() -> Worker<T> {
            Worker { queue: Arc::new(Queue::new()) }
        }

        pub(crate) fn push(&self, job: T) {
            lock(&self.queue.jobs).push_back(job);
        }

        /// The owner pops from the front (FIFO), like crossbeam's FIFO
        /// flavour; it never meets `Retry`.
        pub(crate) fn pop(&self) -> Option<T> {
            self.queue.pop()
        }

        pub(crate) fn stealer(&self) -> Stealer<T> {
            Stealer { queue: Arc::clone(&self.queue) }
        }

        #[allow(dead_code)] // crossbeam's API; the models inspect queues with it
        pub(crate) fn is_empty(&self) -> bool {
            lock(&self.queue.jobs).is_empty()
        }
    }

    impl<T> Stealer<T> {
        /// Takes the front job and about half of the rest; see
        /// `Queue::steal_batch`.
        pub(crate) fn steal_batch_and_pop(&self, dest: &Worker<T>) -> Steal<T> {
            self.queue.steal_batch_and_pop(dest)
        }

        /// Moves the front job and about half of the rest into `dest`; see
        /// `Queue::steal_batch`.
        pub(crate) fn steal_batch(&self, dest: &Worker<T>) -> Steal<()> {
            self.queue.steal_batch_only(dest)
        }

        /// Test oracle: the queue is empty and no batch is on its way in.
        #[cfg(test)]
        pub(crate) fn holds_nothing(&self) -> bool {
            self.queue.holds_nothing()
        }
    }
}
