//! Measuring tools for `compare.rs`: no pool code lives here.

pub mod bulk;
pub mod latch;
pub mod plot;
pub mod procfs;
pub mod report;
pub mod roundtrip;
