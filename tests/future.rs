//! A `JobHandle` is a `Future` that works under any executor: here under
//! `futures::executor::block_on` and under tokio's two runtimes. A pending
//! handle is woken by the worker, can be awaited again after a
//! `tokio::time::timeout`, and resolves with the error of a cancelled or
//! expired job.

mod common;

use std::future::Future;
use std::pin::Pin;
use std::sync::mpsc;
use std::task::Poll;
use std::thread;
use std::time::Duration;

use common::{BOUND, Latch, recv, watchdog};
use priopool::{JobError, Pool, Priority};

#[test]
fn a_handle_awaited_under_futures_block_on() {
    let pool = Pool::builder().workers(2).build().unwrap();
    let handle = pool.submit(Priority::HIGH, || 6 * 7).unwrap();
    assert_eq!(watchdog("block_on", BOUND, move || futures::executor::block_on(handle).unwrap()), 42);
    let failing = pool.submit(Priority::HIGH, || -> u8 { panic!("boom") }).unwrap();
    assert!(watchdog("block_on", BOUND, move || futures::executor::block_on(failing)).is_err_and(|e| e.is_panic()));
    pool.shutdown();
}

#[test]
fn a_pending_handle_is_woken_by_the_worker() {
    let pool = Pool::builder().workers(1).build().unwrap();
    let latch = Latch::new();
    let (started_tx, started) = mpsc::channel();
    let gate = latch.clone();
    let handle = pool
        .submit(Priority::HIGH, move || {
            started_tx.send(()).unwrap();
            gate.wait();
            "woken"
        })
        .unwrap();
    recv(&started, "start of the job");
    // The job can only end after the executor has parked on it: the latch
    // opens from another thread once the first poll returned Pending.
    let (polled_tx, polled) = mpsc::channel();
    let opener = thread::spawn(move || {
        recv(&polled, "first poll");
        latch.open();
    });
    let value = watchdog("block_on", BOUND, move || {
        futures::executor::block_on(async move {
            let mut handle = handle;
            // Poll once, by hand, with the executor's waker.
            let first = std::future::poll_fn(|cx| Poll::Ready(Pin::new(&mut handle).poll(cx))).await;
            assert!(first.is_pending());
            polled_tx.send(()).unwrap();
            handle.await
        })
    });
    assert_eq!(value.unwrap(), "woken");
    opener.join().unwrap();
    pool.shutdown();
}

#[test]
fn a_handle_awaited_under_tokio_current_thread() {
    let pool = Pool::builder().workers(2).build().unwrap();
    let handles: Vec<_> = (0..10u64).map(|i| pool.submit(Priority::LOW, move || i * i).unwrap()).collect();
    let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
    let sum = watchdog("tokio block_on", BOUND, move || {
        runtime.block_on(async move {
            let mut sum = 0;
            for handle in handles {
                sum += handle.await.unwrap();
            }
            sum
        })
    });
    assert_eq!(sum, (0..10u64).map(|i| i * i).sum::<u64>());
    pool.shutdown();
}

#[test]
fn a_handle_under_a_tokio_timeout_then_awaited_again() {
    let pool = Pool::builder().workers(1).build().unwrap();
    let latch = Latch::new();
    let gate = latch.clone();
    let handle = pool
        .submit(Priority::HIGH, move || {
            gate.wait();
            "late"
        })
        .unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_time().build().unwrap();
    let value = watchdog("tokio block_on", BOUND, move || {
        runtime.block_on(async move {
            let mut handle = handle;
            // The job is held on the latch, so this must time out.
            let timed_out = tokio::time::timeout(Duration::from_millis(5), &mut handle).await;
            assert!(timed_out.is_err(), "the held job finished");
            latch.open();
            handle.await
        })
    });
    assert_eq!(value.unwrap(), "late");
    pool.shutdown();
}

#[test]
fn cancelled_and_expired_jobs_resolve_their_futures_with_the_error() {
    let pool = Pool::builder().workers(1).build().unwrap();
    let latch = Latch::new();
    let gate = latch.clone();
    let (started_tx, started) = mpsc::channel();
    let holder = pool
        .submit(Priority::HIGH, move || {
            started_tx.send(()).unwrap();
            gate.wait();
        })
        .unwrap();
    recv(&started, "start of the holding job");
    let cancelled = pool.submit(Priority::HIGH, || ()).unwrap();
    let canceller = cancelled.cancel_handle();
    let expiring = pool.job(Priority::HIGH).max_wait(Duration::from_millis(1)).submit(|| ()).unwrap();
    let results = watchdog("block_on", BOUND, move || {
        futures::executor::block_on(async move {
            let cancel = async move {
                canceller.cancel();
            };
            let (first, second, ()) = futures::future::join3(cancelled, expiring, cancel).await;
            (first, second)
        })
    });
    assert!(matches!(results.0, Err(JobError::Cancelled)));
    assert!(matches!(results.1, Err(JobError::Expired)));
    latch.open();
    holder.join().unwrap();
    pool.shutdown();
}
