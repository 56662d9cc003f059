//! A ticket per job of a seeded stress test: the job's run, or its drop
//! unrun, is counted in the test's ledger under the ticket's id, so that
//! the test can check every job's fate exactly (`crossfire.rs`,
//! `abort_waiters.rs`).

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};

/// Where a test keeps its jobs' fates: a run count and an unrun-drop count
/// per ticket id.
pub trait Fates: Send + Sync + 'static {
    fn runs(&self, id: usize) -> &AtomicU8;
    fn dropped(&self, id: usize) -> &AtomicU8;
}

/// One job's ticket: [`Ticket::run`] counts a run; dropped without one, it
/// counts a drop.
pub struct Ticket<L: Fates> {
    pub id: usize,
    pub ledger: Arc<L>,
    ran: bool,
}

impl<L: Fates> Ticket<L> {
    pub fn new(id: usize, ledger: Arc<L>) -> Ticket<L> {
        Ticket { id, ledger, ran: false }
    }

    pub fn run(&mut self) {
        self.ran = true;
        self.ledger.runs(self.id).fetch_add(1, Ordering::SeqCst);
    }
}

impl<L: Fates> Drop for Ticket<L> {
    fn drop(&mut self) {
        if !self.ran {
            self.ledger.dropped(self.id).fetch_add(1, Ordering::SeqCst);
        }
    }
}
