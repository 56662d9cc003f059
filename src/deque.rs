//! The queue types the worker loop is written against.
//!
//! These are crossbeam-deque's lock-free queues: [`Injector`] is the
//! multi-producer FIFO that external threads push into, [`Worker`] is a
//! worker's own Chase-Lev deque (Chase and Lev, "Dynamic Circular
//! Work-Stealing Deque", SPAA 2005; used here in its FIFO flavour) and
//! [`Stealer`] is the handle other workers steal from it with. Keeping the
//! import in one module gives a model checker a single seam to replace them.

pub(crate) use crossbeam_deque::{Injector, Steal, Stealer, Worker};
