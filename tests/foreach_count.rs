//! A foreach task's recorded element count (`foreach.count` in its metadata) is read back to
//! number the tasks of the foreach where no coordinator is (`step` deriving a task's inputs,
//! Argo's list of child tasks). A damaged count must be an error naming the task, never an
//! allocation of that many task ids.

use std::ffi::OsString;

use blooming_flowers::cli::run_cli_with;
use blooming_flowers::executor::{RunOptions, run_flow};
use blooming_flowers::prelude::*;
use blooming_flowers::run::RunStore;

#[derive(Clone, Default, Serialize, Deserialize)]
struct Fan {
    xs: Vec<u64>,
    square: u64,
    total: u64,
}

#[flow]
impl Fan {
    #[step(foreach = xs, next = sq)]
    fn start(&mut self) {
        self.xs = vec![1, 2, 3];
    }

    #[step(next = gather)]
    fn sq(&mut self, x: u64) {
        self.square = x * x;
    }

    #[step(join, next = end)]
    fn gather(&mut self, inputs: Inputs<Self>) {
        self.total = inputs.iter().map(|i| i.square).sum();
    }

    #[step]
    fn end(&mut self) {}
}

/// 2^60: far more task ids than memory holds.
const HUGE: u64 = 1 << 60;

/// A datastore with one complete run of `Fan` whose `start/0` records `HUGE` elements.
fn run_with_a_corrupt_count() -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let store = RunStore::open_local(dir.path()).expect("a datastore");
    let run = run_flow::<Fan>(&store, serde_json::Value::Null, &RunOptions::default())
        .expect("the run")
        .run_id;
    let done = dir
        .path()
        .join(format!("flows/Fan/runs/{run}/steps/start/0/done.json"));
    let text = std::fs::read_to_string(&done).expect("the done marker");
    let mut marker: serde_json::Value = serde_json::from_str(&text).expect("JSON");
    let count = &mut marker["metadata"]["foreach"]["count"];
    assert_eq!(*count, 3, "the marker records the count where expected");
    *count = HUGE.into();
    std::fs::write(&done, serde_json::to_vec(&marker).expect("JSON")).expect("write");
    (dir, run.into())
}

fn cli(dir: &std::path::Path, args: &[&str]) -> (u8, String) {
    let mut argv: Vec<OsString> = vec!["fan".into(), "--datastore".into(), dir.into()];
    argv.extend(args.iter().map(OsString::from));
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let code = run_cli_with::<Fan, _, _>(argv, &mut out, &mut err);
    (code, String::from_utf8_lossy(&err).into_owned())
}

fn assert_names_the_damage(code: u8, err: &str) {
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("start/0") && err.contains(&HUGE.to_string()) && err.contains("damaged"),
        "the error should name the task and its damaged count: {err}"
    );
}

#[test]
fn a_join_whose_foreach_count_is_corrupt_is_an_error_naming_the_task() {
    let (dir, run) = run_with_a_corrupt_count();
    let (code, err) = cli(
        dir.path(),
        &["step", "gather", "--run-id", &run, "--task-id", "0"],
    );
    assert_names_the_damage(code, &err);
}

#[test]
fn a_body_task_beyond_the_real_elements_is_an_error_naming_the_split() {
    let (dir, run) = run_with_a_corrupt_count();
    let (code, err) = cli(
        dir.path(),
        &["step", "sq", "--run-id", &run, "--task-id", "7"],
    );
    assert_names_the_damage(code, &err);
}

#[test]
fn argo_outputs_of_a_corrupt_foreach_count_are_an_error_not_an_allocation() {
    let (dir, run) = run_with_a_corrupt_count();
    let outputs = dir.path().join("argo-outputs");
    let (code, err) = cli(
        dir.path(),
        &[
            "step",
            "start",
            "--run-id",
            &run,
            "--task-id",
            "0",
            "--argo-outputs",
            &outputs.display().to_string(),
        ],
    );
    assert_names_the_damage(code, &err);
}
