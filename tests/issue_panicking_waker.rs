//! Regression: a [`JobHandle`] awaited under an executor whose waker
//! panics when woken. Completing the handle wakes that waker on the thread
//! that decides the job's end, outside any `catch_unwind`:
//!
//! - on the deadline timer thread, when a job expires: the panic unwinds
//!   out of the timer thread and ends it, so no later deadline fires (a
//!   job that waits behind a busy worker is never expired while it waits,
//!   and its handle does not finish), and the timer's "expiring" flag stays
//!   set, so that `shutdown_timeout` never counts the pool still;
//! - on a worker, when a job returns: the worker's backstop catches it, but
//!   as a *job* panic, handing the waker's payload to the pool's panic
//!   handler for a job that returned normally;
//! - in `JobHandle::cancel` of a queued job: the waker's panic unwinds out
//!   of `cancel`, whose docs promise a panic only from the closure's
//!   destructor.
//!
//! Fixed: the pool completes a handle under `catch_unwind` (`job/task.rs`)
//! and counts a waker's panic in `Metrics::drop_panics`, as it does a
//! panic of a destructor it runs for a job outside its run.

mod common;

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, mpsc};
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};

use common::{Gate, intentional_panic, quiet_intentional_panics, watchdog};
use priopool::{CancelOutcome, JobError, JoinTimeoutError, Pool, Priority};

/// The watchdog's bound, and how long a job that should expire at once is
/// waited for (a gate job gives up after 30 s: less than that).
const BOUND: Duration = Duration::from_secs(10);

/// A waker that panics when woken.
struct PanickingWaker;

impl Wake for PanickingWaker {
    fn wake(self: Arc<Self>) {
        intentional_panic()
    }

    fn wake_by_ref(self: &Arc<Self>) {
        intentional_panic()
    }
}

/// Polls `future` once with a [`PanickingWaker`].
fn poll_once<F: Future + Unpin>(future: &mut F) -> Poll<F::Output> {
    let waker = Waker::from(Arc::new(PanickingWaker));
    Pin::new(future).poll(&mut Context::from_waker(&waker))
}

/// Waits, under the test's watchdog, until `finished` holds.
fn wait_for(finished: impl Fn() -> bool) {
    while !finished() {
        std::thread::sleep(Duration::from_millis(1));
    }
}

#[test]
fn a_waker_that_panics_when_the_timer_expires_its_job_does_not_stop_the_timer() {
    quiet_intentional_panics();
    watchdog("the timer after a panicking waker", BOUND * 2, || {
        let pool = Pool::builder().workers(1).build().expect("the pool builds");
        let gate = Gate::hold(&pool, 1);
        // The one worker is held: the job can only end by its deadline,
        // on the timer thread, which completes the handle polled below.
        let mut expiring = loop {
            let at = Instant::now() + Duration::from_millis(100);
            let mut handle = pool.job(Priority::LOW).deadline(at).submit(|| ()).expect("accepted");
            match poll_once(&mut handle) {
                Poll::Pending => break handle,
                // The deadline passed before the poll: try again.
                Poll::Ready(result) => assert!(matches!(result, Err(JobError::Expired))),
            }
        };
        let cancel = expiring.cancel_handle();
        wait_for(|| cancel.is_finished());
        assert!(matches!(poll_once(&mut expiring), Poll::Ready(Err(JobError::Expired))));
        // The timer still expires a job that waits behind the busy worker.
        let later = pool.job(Priority::LOW).deadline(Instant::now()).submit(|| ()).expect("accepted");
        match later.join_timeout(BOUND) {
            Err(JoinTimeoutError::Job(JobError::Expired)) => {}
            Err(JoinTimeoutError::TimedOut(_)) => panic!("the deadline timer did not expire a job: it died"),
            other => panic!("expected the job to expire, got {other:?}"),
        }
        assert_eq!(pool.metrics().drop_panics, 1, "the waker's panic is counted");
        gate.release();
        pool.shutdown();
    });
}

#[test]
fn a_waker_that_panics_when_a_job_returns_is_no_job_panic() {
    quiet_intentional_panics();
    watchdog("a job whose handle's waker panics", BOUND, || {
        let handled = Arc::new(AtomicUsize::new(0));
        let counted = Arc::clone(&handled);
        let pool = Pool::builder()
            .workers(1)
            .panic_handler(move |_| {
                counted.fetch_add(1, Ordering::SeqCst);
            })
            .build()
            .expect("the pool builds");
        let (go_tx, go_rx) = mpsc::channel::<()>();
        let mut handle = pool
            .submit(Priority::LOW, move || {
                let _ = go_rx.recv();
                7
            })
            .expect("accepted");
        assert!(poll_once(&mut handle).is_pending(), "the job waits for the test");
        go_tx.send(()).expect("the job is alive");
        let cancel = handle.cancel_handle();
        wait_for(|| cancel.is_finished());
        // The worker survived and the result was delivered once.
        assert_eq!(pool.submit(Priority::LOW, || 8).expect("accepted").join().expect("ran"), 8);
        assert!(matches!(poll_once(&mut handle), Poll::Ready(Ok(7))));
        let metrics = pool.metrics();
        pool.shutdown();
        assert_eq!(handled.load(Ordering::SeqCst), 0, "the job returned: no job panic to handle");
        let panicked: u64 = metrics.levels.iter().map(|level| level.panicked).sum();
        assert_eq!((panicked, metrics.drop_panics), (0, 1), "the waker's panic, counted as such");
    });
}

#[test]
fn a_waker_that_panics_when_a_cancel_completes_its_handle_does_not_unwind_into_cancel() {
    quiet_intentional_panics();
    watchdog("cancel with a panicking waker", BOUND, || {
        let pool = Pool::builder().workers(1).build().expect("the pool builds");
        let gate = Gate::hold(&pool, 1);
        let mut handle = pool.submit(Priority::LOW, || 7).expect("accepted");
        assert!(poll_once(&mut handle).is_pending(), "the one worker is held");
        assert_eq!(handle.cancel(), CancelOutcome::Prevented);
        assert!(matches!(poll_once(&mut handle), Poll::Ready(Err(JobError::Cancelled))));
        assert_eq!(pool.metrics().drop_panics, 1, "the waker's panic is counted");
        gate.release();
        pool.shutdown();
    });
}
