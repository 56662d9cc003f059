//! The latency-isolation options of a pool and their validation: reserved
//! threads, the OS scheduling priority of the regular workers, and the
//! opt-in bound on how long a less urgent level can be passed over
//! (`queue/aging.rs`).
//!
//! A running job is never preempted, so with every worker inside a long
//! job of a less urgent level, a job of level 0 waits for one of them to
//! finish, however good the queues are. The way out is to let the OS do the
//! preempting: a *reserved thread* takes only the jobs of the most urgent
//! levels (`runtime/reserved.rs`), sleeps while there are none, and is woken
//! first by a push at one of those levels (`sleep.rs`, "Reserved threads");
//! the regular workers run at a higher nice value, so the OS gives the
//! reserved thread a CPU as soon as it wakes. The measurements behind the
//! defaults are in `docs/benchmarks.md` ("Latency isolation").

use std::fmt;

use crate::queue::Priority;

/// The most reserved threads a pool may have (see
/// [`Builder::reserved_threads`](crate::Builder::reserved_threads)).
pub const MAX_RESERVED_THREADS: usize = 64;

/// The highest nice value a thread can have on Linux (the lowest OS
/// priority), and so the most [`Builder::worker_nice`](crate::Builder::worker_nice)
/// accepts.
pub const MAX_NICE: i32 = 19;

/// The nice value added to the regular workers of a pool with reserved
/// threads when [`Builder::worker_nice`](crate::Builder::worker_nice) is not
/// called: 10, the value `nice(1)` adds by default. A pool without reserved
/// threads keeps its workers at the process's priority unless told.
pub const DEFAULT_WORKER_NICE: i32 = 10;

/// What the builder was told; checked by [`IsolationOptions::validate`].
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct IsolationOptions {
    pub(crate) reserved_threads: usize,
    pub(crate) reserved_up_to: Option<Priority>,
    pub(crate) worker_nice: Option<i32>,
    pub(crate) max_passes: Option<u32>,
}

/// The validated options a pool runs with.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Isolation {
    /// Reserved threads started at build time, kept until shutdown.
    pub(crate) reserved_threads: usize,
    /// How many levels, from 0, reserved threads take; 0 without reserved
    /// threads, so that every push wakes as before.
    pub(crate) reserved_walk: usize,
    /// The nice value each regular worker adds to its own when it starts; 0:
    /// none.
    pub(crate) worker_nice: i32,
    /// With `Some(k)`, bounded starvation (`queue/aging.rs`).
    pub(crate) max_passes: Option<u32>,
}

/// An isolation option no pool can have; the message says what to change.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum IsolationError {
    TooManyReserved { asked: usize },
    UnknownReservedLevel { asked: Priority, levels: usize },
    ReservedLevelsWithoutThreads,
    NiceOutOfRange { asked: i32 },
    ZeroPasses,
}

impl IsolationOptions {
    /// Checks the options for a pool of `levels` levels.
    pub(crate) fn validate(&self, levels: usize) -> Result<Isolation, IsolationError> {
        if self.reserved_threads > MAX_RESERVED_THREADS {
            return Err(IsolationError::TooManyReserved { asked: self.reserved_threads });
        }
        let up_to = match self.reserved_up_to {
            Some(_) if self.reserved_threads == 0 => return Err(IsolationError::ReservedLevelsWithoutThreads),
            Some(asked) => asked.resolve(levels).ok_or(IsolationError::UnknownReservedLevel { asked, levels })?,
            None => 0,
        };
        let worker_nice = match self.worker_nice {
            Some(asked) if !(0..=MAX_NICE).contains(&asked) => return Err(IsolationError::NiceOutOfRange { asked }),
            Some(nice) => nice,
            None if self.reserved_threads > 0 => DEFAULT_WORKER_NICE,
            None => 0,
        };
        if self.max_passes == Some(0) {
            return Err(IsolationError::ZeroPasses);
        }
        Ok(Isolation {
            reserved_threads: self.reserved_threads,
            reserved_walk: if self.reserved_threads > 0 { up_to + 1 } else { 0 },
            worker_nice,
            max_passes: self.max_passes,
        })
    }
}

impl fmt::Display for IsolationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            IsolationError::TooManyReserved { asked } => write!(
                f,
                "{asked} reserved threads is more than the {MAX_RESERVED_THREADS} a pool supports: \
                 pass reserved_threads(n) with n <= {MAX_RESERVED_THREADS} (one or two are enough for most services)"
            ),
            IsolationError::UnknownReservedLevel { asked, levels } => write!(
                f,
                "reserved_levels({asked}) names no level of a pool with {levels} levels: \
                 pass a level below {levels}, or raise levels(k)"
            ),
            IsolationError::ReservedLevelsWithoutThreads => f.write_str(
                "reserved_levels(..) says which levels reserved threads take, but the pool has none: \
                 also pass reserved_threads(n) with n >= 1, or drop reserved_levels",
            ),
            IsolationError::NiceOutOfRange { asked } => write!(
                f,
                "worker_nice({asked}) is outside 0..={MAX_NICE}: pass 0 (the process's own priority) up to {MAX_NICE} (the lowest)"
            ),
            IsolationError::ZeroPasses => f.write_str(
                "max_passes(0) would pass over no job at all: pass k >= 1, or leave it unset for strict priority",
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(reserved_threads: usize) -> IsolationOptions {
        IsolationOptions { reserved_threads, ..IsolationOptions::default() }
    }

    #[test]
    fn defaults_and_bad_input() {
        let none = options(0).validate(2).unwrap();
        assert_eq!((none.reserved_walk, none.worker_nice), (0, 0));
        let one = options(1).validate(2).unwrap();
        assert_eq!((one.reserved_walk, one.worker_nice), (1, DEFAULT_WORKER_NICE));
        let up_to = IsolationOptions { reserved_up_to: Some(Priority::level(1)), ..options(1) };
        assert_eq!(up_to.validate(3).unwrap().reserved_walk, 2);
        assert_eq!(
            up_to.validate(1).unwrap_err(),
            IsolationError::UnknownReservedLevel { asked: Priority::level(1), levels: 1 }
        );
        let orphan = IsolationOptions { reserved_up_to: Some(Priority::HIGH), ..options(0) };
        assert_eq!(orphan.validate(2).unwrap_err(), IsolationError::ReservedLevelsWithoutThreads);
        assert!(options(MAX_RESERVED_THREADS + 1).validate(2).is_err());
        for nice in [-1, MAX_NICE + 1] {
            let bad = IsolationOptions { worker_nice: Some(nice), ..options(1) };
            assert_eq!(bad.validate(2).unwrap_err(), IsolationError::NiceOutOfRange { asked: nice });
        }
        let off = IsolationOptions { worker_nice: Some(0), ..options(1) };
        assert_eq!(off.validate(2).unwrap().worker_nice, 0);
        let zero = IsolationOptions { max_passes: Some(0), ..options(0) };
        assert_eq!(zero.validate(2).unwrap_err(), IsolationError::ZeroPasses);
    }
}
