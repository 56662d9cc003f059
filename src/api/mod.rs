//! The public face: [`Pool`] and [`Spawner`] (and [`spawn`] from a running
//! job), [`Builder`], [`JobBuilder`] and the handles. Each method checks its
//! input and hands the work to the runtime below.

mod builder;
mod group;
mod handle;
mod isolation;
mod options;
mod pool;
mod spawner;

pub use builder::Builder;
pub use group::JobGroup;
pub use handle::{CancelHandle, JobHandle, JoinTimeoutError, PromoteOutcome};
pub use options::JobBuilder;
pub use pool::Pool;
pub use spawner::{Spawner, spawn};
