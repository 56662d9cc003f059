//! Job names reach the job hooks (`JobInfo::name`); a job without one has
//! none. (The `log` event of a named job's panic: `logging.rs`.)

mod common;

use std::sync::{Arc, Mutex};

use common::{BOUND, watchdog};
use priopool::{JobOutcome, Pool, Priority};

#[test]
fn a_jobs_name_reaches_both_hooks() {
    watchdog("names", BOUND, || {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (before, after) = (Arc::clone(&seen), Arc::clone(&seen));
        let pool = Pool::builder()
            .workers(1)
            .wait_metrics(true)
            .before_job(move |info| before.lock().unwrap().push(("before", info.name)))
            .after_job(move |info, outcome, _| {
                assert_eq!(outcome, JobOutcome::Completed);
                after.lock().unwrap().push(("after", info.name));
            })
            .build()
            .unwrap();
        let request = pool.job(Priority::HIGH).name(format!("GET /users/{}", 42));
        request.clone().submit(|| ()).unwrap().join().unwrap();
        pool.spawn(Priority::LOW, || {}).unwrap();
        pool.job(Priority::LOW).name("cleanup").spawn(|| {}).unwrap();
        assert!(pool.wait_idle());
        let seen = seen.lock().unwrap().clone();
        let name = |n: &str| Some(Arc::<str>::from(n));
        assert_eq!(
            seen,
            [
                ("before", name("GET /users/42")),
                ("after", name("GET /users/42")),
                ("before", None),
                ("after", None),
                ("before", name("cleanup")),
                ("after", name("cleanup")),
            ]
        );
    });
}
