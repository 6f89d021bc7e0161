//! Run records and `latest` pointers on a real S3 server (SeaweedFS in development and CI): the
//! server honours `If-Match`, `latest` ends on the run started last however many runs end at
//! once, and `tag` racing the end of a run loses neither the status nor a tag.
//!
//! Needs the server: run it as `scripts/services exec -- cargo test --features s3 --test
//! s3_run_records`, which exports `BLOOMING_TEST_S3` (e.g. `s3://blooming-test`) and the `AWS_*`
//! variables. Without `BLOOMING_TEST_S3` every test fails: none skips silently. Each test works
//! under a prefix of its own.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use blooming_flowers::datastore::{DatastoreLocation, ObjectStorage, S3Location};
use blooming_flowers::run::RunStore;

#[path = "run_records/contention.rs"]
mod contention;

/// The bucket (and prefix) the tests may use, e.g. `s3://blooming-test`.
const LOCATION_ENV: &str = "BLOOMING_TEST_S3";

/// A prefix of the test bucket no other test, and no other run of this one, uses.
fn fresh(test: &str) -> S3Location {
    let value = std::env::var(LOCATION_ENV).unwrap_or_else(|_| {
        panic!(
            "{LOCATION_ENV} is not set: this test needs an S3-compatible server. Run it as \
             `scripts/services exec -- cargo test --features s3 --test s3_run_records`"
        )
    });
    let DatastoreLocation::S3(base) = DatastoreLocation::parse(&value).expect("location") else {
        panic!("{LOCATION_ENV} must be an s3:// URL, not {value}");
    };
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let name = format!(
        "run-records-{}-{}-{}-{test}",
        now.as_secs(),
        now.subsec_nanos(),
        std::process::id()
    );
    base.join(&name).expect("prefix")
}

/// A store of its own on `location`, as another process would have.
fn connect(location: &S3Location) -> RunStore {
    RunStore::new(Arc::new(ObjectStorage::connect(location).expect("connect")))
}

#[test]
fn the_server_honours_if_match() {
    let location = fresh("probe");
    let storage = ObjectStorage::connect(&location).expect("connect");
    let honoured = storage.conditional_updates_honoured().expect("probe");
    println!("conditional updates (If-Match) honoured by the server: {honoured}");
    assert!(
        honoured,
        "the server accepts a PUT with a stale If-Match: updates of run records and pointers are not atomic on it"
    );
}

#[test]
fn latest_ends_on_the_newest_start_among_concurrent_runs_on_s3() {
    let location = fresh("latest");
    contention::runs_ending_at_once_leave_latest_on_the_newest(&|| connect(&location), 6, 8);
}

#[test]
fn tags_added_while_a_run_ends_all_survive_on_s3() {
    let location = fresh("tags");
    contention::tags_added_while_a_run_ends_all_survive(&|| connect(&location), "r1", 6, 5);
}
