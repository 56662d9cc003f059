//! Fork-join: [`join`] and [`Scope`], jobs that wait for the jobs they
//! divide into.
//!
//! * `join.rs`: `join`, the per-level fork deques' user, and its costs.
//! * `scope.rs`: `scope`, its count of unfinished jobs and its wake-up.
//! * `job/erase.rs`: the crate's only `unsafe` code, the lifetime erasure
//!   both rest on, and its invariant.
//!
//! How a worker whose job waits helps instead of blocking, and which jobs
//! it may run meanwhile: `runtime/help.rs`.

pub(crate) mod join;
pub(crate) mod scope;

pub use join::join;
pub use scope::Scope;
