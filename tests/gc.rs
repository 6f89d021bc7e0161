//! `gc` on a local datastore: the rules one by one, runs going on beside collections, and
//! collections killed half-way (the scenarios are in `tests/gc/scenarios.rs`, shared with the
//! same tests on S3 in `tests/s3_gc.rs`). `harness = false`: the test binary is also the
//! flow's binary, started as separate processes by the scenarios.

use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, SystemTime};

#[path = "gc/scenarios.rs"]
mod scenarios;

use scenarios::{Scenario, main as run_scenarios, racing_runs};

/// Sets every blob's modification time two days back, as if old runs had written them then.
fn age_blobs(datastore: &str) -> Result<(), String> {
    let two_days_ago = SystemTime::now() - Duration::from_secs(2 * 24 * 3600);
    let mut dirs = vec![Path::new(datastore).join("blobs")];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).map_err(|e| e.to_string())? {
            let path = entry.map_err(|e| e.to_string())?.path();
            if path.is_dir() {
                dirs.push(path);
            } else {
                std::fs::File::options()
                    .write(true)
                    .open(&path)
                    .and_then(|f| f.set_modified(two_days_ago))
                    .map_err(|e| format!("{}: {e}", path.display()))?;
            }
        }
    }
    Ok(())
}

/// With the default grace period (a day) and blobs two days old: only the refreshes of the runs
/// going on keep the blobs they rely on.
fn racing_runs_on_old_blobs(datastore: &str) -> Result<(), String> {
    racing_runs(datastore, &age_blobs, "1d", &[])
}

fn main() -> ExitCode {
    let root = match tempfile::tempdir() {
        Ok(dir) => dir,
        Err(e) => {
            eprintln!("cannot make a temporary directory: {e}");
            return ExitCode::FAILURE;
        }
    };
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
    let fresh = |name: &str| root.path().join(name).to_string_lossy().into_owned();
    run_scenarios(scenarios, &fresh)
}
