//! [`Priority`]: how urgent a job is, and how it names one of a pool's levels.

use std::fmt;

/// How urgent a job is: one of the pool's priority levels.
///
/// Level 0 ([`Priority::HIGH`]) is the most urgent; a pool built with
/// `k` levels accepts levels `0..k`. [`Priority::LOW`] always names the
/// pool's *least* urgent level (`k - 1`), whatever `k` is, so code written
/// for a two-level pool keeps its meaning when levels are added.
///
/// There is no `MEDIUM`: with three levels, the middle one is
/// `Priority::level(1)`. Equality compares what was written, not the level
/// it resolves to in some pool: `Priority::level(1) != Priority::LOW` even
/// though both name level 1 of a two-level pool. For the same reason
/// `Priority` is not `Ord`.
///
/// A `Priority` is resolved against a pool when a job is spawned; a level
/// the pool does not have is reported as [`SpawnError`](crate::SpawnError)
/// with kind [`SpawnErrorKind::UnknownLevel`](crate::SpawnErrorKind::UnknownLevel).
///
/// Every method that takes a priority takes `impl Into<Priority>`, so an
/// application's own names for its levels work directly:
///
/// ```
/// use priopool::{Pool, Priority};
///
/// enum Lane { Interactive, Batch }
///
/// impl From<Lane> for Priority {
///     fn from(lane: Lane) -> Priority {
///         match lane {
///             Lane::Interactive => Priority::HIGH,
///             Lane::Batch => Priority::LOW,
///         }
///     }
/// }
///
/// let pool = Pool::builder()
///     .workers(1)
///     .capacity(Lane::Batch, 100)
///     .reserved_threads(1)
///     .reserved_levels(Lane::Interactive)
///     .build()?;
/// pool.spawn(Lane::Batch, || println!("background"))?;
/// assert!(pool.metrics().level(Lane::Interactive).is_some());
/// assert_eq!(pool.join(Lane::Interactive, || 1, || 2), (1, 2));
/// pool.scope(|s| assert!(s.spawn(Lane::Batch, |_| {}).is_ok()));
/// let handle = pool.submit(Lane::Batch, || 3)?;
/// let _moved_or_too_late = handle.promote(Lane::Interactive)?;
/// assert_eq!(handle.join()?, 3);
/// # Ok::<(), Box<dyn std::error::Error + Send + Sync>>(())
/// ```
///
/// ```
/// use priopool::Priority;
/// assert_eq!(Priority::HIGH, Priority::level(0));
/// assert_eq!(Priority::level(3).to_string(), "level 3");
/// assert_eq!(Priority::LOW.to_string(), "lowest level");
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct Priority(Repr);

#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
enum Repr {
    Level(usize),
    Lowest,
}

impl Priority {
    /// The most urgent level, level 0.
    pub const HIGH: Priority = Priority(Repr::Level(0));

    /// The least urgent level of whichever pool the job is given to.
    pub const LOW: Priority = Priority(Repr::Lowest);

    /// Priority level `index`; 0 is the most urgent.
    pub const fn level(index: usize) -> Priority {
        Priority(Repr::Level(index))
    }

    /// The level index this priority asks for, whatever the pool (`None`
    /// for [`Priority::LOW`], which every pool has).
    pub(crate) fn asked(self) -> Option<usize> {
        match self.0 {
            Repr::Level(i) => Some(i),
            Repr::Lowest => None,
        }
    }

    /// The level index this priority names in a pool with `levels` levels,
    /// or `None` if that pool has no such level.
    pub(crate) fn resolve(self, levels: usize) -> Option<usize> {
        match self.0 {
            Repr::Level(i) if i < levels => Some(i),
            Repr::Level(_) => None,
            Repr::Lowest => levels.checked_sub(1),
        }
    }
}

impl fmt::Display for Priority {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Repr::Level(i) => write!(f, "level {i}"),
            Repr::Lowest => f.write_str("lowest level"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Priority;

    #[test]
    fn low_resolves_to_the_last_level() {
        assert_eq!(Priority::LOW.resolve(2), Some(1));
        assert_eq!(Priority::LOW.resolve(5), Some(4));
        assert_eq!(Priority::HIGH.resolve(1), Some(0));
        assert_eq!(Priority::level(2).resolve(2), None);
        assert_eq!(Priority::LOW.resolve(0), None);
    }
}
