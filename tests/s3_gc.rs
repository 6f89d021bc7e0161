//! `gc` on a real S3 server (SeaweedFS in development and CI): the scenarios of `tests/gc.rs`
//! (`tests/gc/scenarios.rs`), each on a prefix of its own of the bucket `BLOOMING_TEST_S3`
//! names. Run inside the services' namespace, as `scripts/test-all` does:
//! `scripts/services exec -- cargo test --offline --features s3 --test s3_gc`. Without
//! `BLOOMING_TEST_S3` it fails: it never skips silently.
//!
//! An object store's times cannot be set back, so the scenario with runs going on beside
//! collections ages its blobs by waiting, with every process told that a blob is fresh for 2
//! seconds only (`BLOOMING_FRESH_FOR`) and a grace period of 6.

use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

#[path = "gc/scenarios.rs"]
mod scenarios;

use scenarios::{Scenario, main as run_scenarios, racing_runs};

/// The bucket (and prefix) the tests may use, e.g. `s3://blooming-test`.
const LOCATION_ENV: &str = "BLOOMING_TEST_S3";

fn racing_runs_on_old_blobs(datastore: &str) -> Result<(), String> {
    let wait = |_: &str| {
        std::thread::sleep(Duration::from_secs(7));
        Ok(())
    };
    racing_runs(datastore, &wait, "6s", &[("BLOOMING_FRESH_FOR", "2s")])
}

fn main() -> ExitCode {
    let base = std::env::var(LOCATION_ENV).unwrap_or_default();
    let is_flow_process = std::env::args().nth(1).is_some_and(|a| a == "--datastore");
    if !is_flow_process && !base.starts_with("s3://") {
        eprintln!(
            "{LOCATION_ENV} is not an s3:// URL: this test needs an S3-compatible server. Run it \
             as `scripts/services exec -- cargo test --offline --features s3 --test s3_gc`"
        );
        return ExitCode::FAILURE;
    }
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let run = format!(
        "gc-{}-{}-{}",
        now.as_secs(),
        now.subsec_nanos(),
        std::process::id()
    );
    let fresh = |name: &str| format!("{}/{run}-{name}", base.trim_end_matches('/'));
    let scenarios: &[(&str, Scenario)] = &[
        ("rules_one_by_one", scenarios::rules_one_by_one),
        (
            "running_runs_stay_and_interrupted_deletions_finish",
            scenarios::running_runs_stay_and_interrupted_deletions_finish,
        ),
        ("racing_runs_on_old_blobs", racing_runs_on_old_blobs),
        (
            "killed_collections_leave_kept_runs_whole",
            scenarios::killed_collections_leave_kept_runs_whole,
        ),
    ];
    run_scenarios(scenarios, &fresh)
}
