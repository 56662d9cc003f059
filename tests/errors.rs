//! The pool's errors travel with `?`: `SpawnError<F>`, `JoinTimeoutError<T>`
//! and `JobError` convert into `Box<dyn Error + Send + Sync>` and
//! `anyhow::Error` whatever the closure captures and whatever the job
//! returns, as long as it is `Send`.
//!
//! Most of this file is checked by the compiler: before the fix, the
//! functions below failed with E0277 (`NonNull<oneshot::channel::Channel<…>>`
//! or `mpsc::Receiver<u32>` "cannot be shared between threads safely").
//! The tests then run each chain once, so that a refused job comes back
//! intact through the conversion too.

use std::cell::Cell;
use std::error::Error;
use std::sync::mpsc;
use std::time::Duration;

use priopool::{ErasedSpawnError, JobError, JobHandle, JoinTimeoutError, Pool, Priority, SpawnError};

type BoxError = Box<dyn Error + Send + Sync>;

fn is_send_sync<E: Send + Sync + 'static>(_: &E) {}

/// A closure that captures something `Send` but not `Sync`.
fn not_sync_job() -> impl FnOnce() -> Cell<u32> + Send + 'static {
    let (_tx, rx) = mpsc::channel::<u32>();
    let cell = Cell::new(7);
    move || {
        drop(rx);
        cell
    }
}

fn spawn_boxed(pool: &Pool) -> Result<(), BoxError> {
    let job = not_sync_job();
    pool.spawn(Priority::LOW, move || {
        job();
    })?;
    Ok(())
}

fn spawn_anyhow(pool: &Pool) -> anyhow::Result<()> {
    let job = not_sync_job();
    pool.spawn(Priority::LOW, move || {
        job();
    })?;
    Ok(())
}

/// A `JobHandle<Cell<u32>>` (its value `Send`, not `Sync`) joined with a
/// timeout, every error into the box.
fn join_boxed(pool: &Pool) -> Result<u32, BoxError> {
    let handle: JobHandle<Cell<u32>> = pool.submit(Priority::HIGH, not_sync_job())?;
    Ok(handle.join_timeout(Duration::from_secs(30))?.get())
}

fn join_anyhow(pool: &Pool) -> anyhow::Result<u32> {
    let handle = pool.job(Priority::HIGH).submit(not_sync_job())?;
    Ok(handle.join_timeout(Duration::from_secs(30))?.get())
}

fn join_error_anyhow(pool: &Pool) -> anyhow::Result<u32> {
    let handle = pool.submit(Priority::HIGH, not_sync_job())?;
    Ok(handle.join()?.get())
}

/// A function that names the spawn error in its return type.
fn spawn_named(pool: &Pool) -> Result<(), ErasedSpawnError> {
    let job = not_sync_job();
    pool.spawn(Priority::LOW, move || {
        job();
    })
    .map_err(SpawnError::erase)?;
    Ok(())
}

#[test]
fn the_errors_are_send_and_sync_whatever_the_payload() {
    let pool = Pool::builder().workers(1).build().unwrap();
    let job = not_sync_job();
    let spawn_error = pool.spawn(Priority::level(3), move || {
        job();
    });
    is_send_sync(spawn_error.as_ref().unwrap_err());
    let timeout: Result<Cell<u32>, JoinTimeoutError<Cell<u32>>> =
        pool.submit(Priority::HIGH, not_sync_job()).unwrap().join_timeout(Duration::from_secs(30));
    assert_eq!(timeout.as_ref().map(Cell::get).ok(), Some(7));
    if let Err(error) = &timeout {
        is_send_sync(error);
    }
    is_send_sync(&JobError::Cancelled);
}

#[test]
fn every_chain_runs() {
    let pool = Pool::builder().workers(1).build().unwrap();
    spawn_boxed(&pool).unwrap();
    spawn_anyhow(&pool).unwrap();
    spawn_named(&pool).unwrap();
    assert_eq!(join_boxed(&pool).unwrap(), 7);
    assert_eq!(join_anyhow(&pool).unwrap(), 7);
    assert_eq!(join_error_anyhow(&pool).unwrap(), 7);
}

#[test]
fn a_refused_job_comes_back_through_the_conversions() {
    let pool = Pool::builder().workers(1).build().unwrap();
    let spawner = pool.spawner();
    pool.shutdown();
    let job = not_sync_job();
    let error: anyhow::Error = spawner
        .spawn(Priority::LOW, move || {
            job();
        })
        .unwrap_err()
        .into();
    assert!(error.to_string().contains("shutting down"), "{error}");
    fn named_job() {}
    let erased = spawner.spawn(Priority::LOW, named_job as fn()).unwrap_err().erase();
    assert!(format!("{erased}").contains("shutting down"));
    // The erased job is the closure itself, ready to run elsewhere.
    let job = erased.into_inner().downcast::<fn()>().expect("the job's own type");
    job();
}
