//! Checkpoints inside a step: a task that runs again (a retry, a resume of a run where it did not
//! complete) continues from the last value it stored, and once it completes only that one is
//! kept.

use std::sync::atomic::{AtomicBool, Ordering};

use blooming_flowers::client::Client;
use blooming_flowers::current::current;
use blooming_flowers::executor::{RunOptions, resume_flow, run_flow};
use blooming_flowers::prelude::*;
use blooming_flowers::run::{RunStatus, RunStore};

/// A training loop's progress: the epoch reached and what it accumulated.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
struct Progress {
    epoch: u32,
    sum: u32,
}

/// Trains five epochs, checkpointing each; the first attempt fails after epoch 3.
#[derive(Clone, Default, Serialize, Deserialize)]
struct Retried {
    progress: Progress,
    resumed_from: u32,
}

fn train(fail_after: Option<u32>) -> Result<(Progress, u32), String> {
    let task = current().ok_or("not in a task")?;
    let mut progress: Progress = task
        .last_checkpoint()
        .map_err(|e| e.to_string())?
        .unwrap_or_default();
    let resumed_from = progress.epoch;
    while progress.epoch < 5 {
        progress.epoch += 1;
        progress.sum += progress.epoch;
        task.checkpoint(&progress).map_err(|e| e.to_string())?;
        if fail_after == Some(progress.epoch) {
            return Err(format!("killed after epoch {}", progress.epoch));
        }
    }
    Ok((progress, resumed_from))
}

#[flow]
impl Retried {
    #[step(next = train)]
    fn start(&mut self) {}
    #[step(next = end, retries = 1)]
    fn train(&mut self) -> Result<(), String> {
        let first = current().is_some_and(|c| c.attempt == 0);
        (self.progress, self.resumed_from) = train(first.then_some(3))?;
        Ok(())
    }
    #[step]
    fn end(&mut self) {}
}

fn options() -> RunOptions {
    RunOptions {
        max_workers: 1,
        ..RunOptions::default()
    }
}

#[test]
fn a_retry_continues_from_the_last_checkpoint_and_only_it_is_kept() {
    let dir = tempfile::tempdir().expect("dir");
    let store = RunStore::open_local(dir.path()).expect("store");
    let run = run_flow::<Retried>(&store, serde_json::Value::Null, &options()).expect("run");
    assert_eq!(run.status, RunStatus::Succeeded, "{:?}", run.failure);
    let client = Client::open(dir.path()).expect("client");
    let task = client
        .flow("Retried")
        .run(&run.run_id)
        .and_then(|r| r.step("train"))
        .and_then(|s| s.task("0"))
        .expect("task");
    assert_eq!(task.attempts().len(), 2);
    assert_eq!(task.artifact::<u32>("resumed_from").expect("artifact"), 3);
    // Epochs 1 to 5, each once: 15.
    assert_eq!(
        task.artifact::<Progress>("progress").expect("artifact"),
        Progress { epoch: 5, sum: 15 }
    );
    let kept = task.checkpoints().expect("checkpoints");
    assert_eq!(kept.len(), 1, "{kept:?}");
    assert_eq!((kept[0].seq, kept[0].attempt), (5, 1));
    let last: Progress = task.checkpoint(&kept[0]).expect("readable");
    assert_eq!(last, Progress { epoch: 5, sum: 15 });

    let (mut out, mut err) = (Vec::new(), Vec::new());
    let argv: Vec<std::ffi::OsString> = vec![
        "retried".into(),
        "--datastore".into(),
        dir.path().into(),
        "dump".into(),
        format!("{}/train/0", run.run_id).into(),
    ];
    let code = blooming_flowers::cli::run_cli_with::<Retried, _, _>(argv, &mut out, &mut err);
    let out = String::from_utf8_lossy(&out);
    assert_eq!(code, 0, "{}", String::from_utf8_lossy(&err));
    assert!(
        out.contains("  checkpoints: 1 kept, the last #5 (Progress, ")
            && out.contains("by attempt 1"),
        "{out}"
    );
}

#[test]
fn keep_none_leaves_a_completed_task_without_checkpoints() {
    let dir = tempfile::tempdir().expect("dir");
    let store = RunStore::open_local(dir.path()).expect("store");
    let options = RunOptions {
        keep_checkpoints: blooming_flowers::run::KeepCheckpoints::None,
        ..options()
    };
    let run = run_flow::<Retried>(&store, serde_json::Value::Null, &options).expect("run");
    assert_eq!(run.status, RunStatus::Succeeded, "{:?}", run.failure);
    let record = store.read_run("Retried", &run.run_id).expect("record");
    assert_eq!(
        record.keep_checkpoints,
        blooming_flowers::run::KeepCheckpoints::None
    );
    let client = Client::open(dir.path()).expect("client");
    let task = client
        .flow("Retried")
        .run(&run.run_id)
        .and_then(|r| r.step("train"))
        .and_then(|s| s.task("0"))
        .expect("task");
    // The retry still continued from epoch 3: the checkpoints went only once it completed.
    assert_eq!(task.artifact::<u32>("resumed_from").expect("artifact"), 3);
    assert!(task.checkpoints().expect("checkpoints").is_empty());
}

/// Fails after epoch 3 while `BREAK` is set, with no retries.
static BREAK: AtomicBool = AtomicBool::new(true);

#[derive(Clone, Default, Serialize, Deserialize)]
struct Resumed {
    progress: Progress,
    resumed_from: u32,
}

#[flow]
impl Resumed {
    #[step(next = train)]
    fn start(&mut self) {}
    #[step(next = end)]
    fn train(&mut self) -> Result<(), String> {
        let fail = BREAK.load(Ordering::SeqCst).then_some(3);
        (self.progress, self.resumed_from) = train(fail)?;
        Ok(())
    }
    #[step]
    fn end(&mut self) {}
}

#[test]
fn a_resume_continues_a_task_that_did_not_complete_and_not_one_that_did() {
    let dir = tempfile::tempdir().expect("dir");
    let store = RunStore::open_local(dir.path()).expect("store");
    let failed = run_flow::<Resumed>(&store, serde_json::Value::Null, &options()).expect("run");
    assert_eq!(failed.status, RunStatus::Failed);
    BREAK.store(false, Ordering::SeqCst);
    let resumed = resume_flow::<Resumed>(&store, &failed.run_id, None, &options()).expect("resume");
    assert_eq!(
        resumed.status,
        RunStatus::Succeeded,
        "{:?}",
        resumed.failure
    );
    let client = Client::open(dir.path()).expect("client");
    let flow = client.flow("Resumed");
    let task = flow
        .run(&resumed.run_id)
        .and_then(|r| r.step("train"))
        .and_then(|s| s.task("0"))
        .expect("task");
    assert_eq!(task.artifact::<u32>("resumed_from").expect("artifact"), 3);
    assert_eq!(
        task.artifact::<Progress>("progress").expect("artifact"),
        Progress { epoch: 5, sum: 15 }
    );
    // The failed run keeps the checkpoints it wrote: its task never completed.
    let origin_task = flow
        .run(&failed.run_id)
        .and_then(|r| r.step("train"))
        .and_then(|s| s.task_entry("0"))
        .expect("task");
    assert_eq!(origin_task.checkpoints().expect("checkpoints").len(), 3);

    // Rerunning the step of a run where it completed starts from scratch.
    let again =
        resume_flow::<Resumed>(&store, &resumed.run_id, Some("train"), &options()).expect("resume");
    assert_eq!(again.status, RunStatus::Succeeded, "{:?}", again.failure);
    let task = flow
        .run(&again.run_id)
        .and_then(|r| r.step("train"))
        .and_then(|s| s.task("0"))
        .expect("task");
    assert_eq!(task.artifact::<u32>("resumed_from").expect("artifact"), 0);
}

#[test]
fn outside_a_task_there_is_nowhere_to_checkpoint() {
    let task = blooming_flowers::current::Current::new("F", "r".into(), "s", "0".into(), 0, vec![]);
    let error = task.checkpoint(&1_u32).expect_err("no task").to_string();
    assert!(
        error.contains("only for a task that blooming-flowers runs"),
        "{error}"
    );
    assert_eq!(task.last_checkpoint::<u32>().expect("none"), None);
}

/// Its first attempt checkpoints a string and fails; its retry asks for a number.
#[derive(Clone, Default, Serialize, Deserialize)]
struct Changed {
    n: u64,
}

#[flow]
impl Changed {
    #[step(next = train)]
    fn start(&mut self) {}
    #[step(next = end, retries = 1)]
    fn train(&mut self) -> Result<(), String> {
        let task = current().ok_or("not in a task")?;
        if task.attempt == 0 {
            task.checkpoint("epoch three").map_err(|e| e.to_string())?;
            return Err("killed".into());
        }
        self.n = task
            .last_checkpoint::<u64>()
            .map_err(|e| e.to_string())?
            .unwrap_or_default();
        Ok(())
    }
    #[step]
    fn end(&mut self) {}
}

#[test]
fn a_checkpoint_of_another_type_is_an_error_naming_it() {
    let dir = tempfile::tempdir().expect("dir");
    let store = RunStore::open_local(dir.path()).expect("store");
    let run = run_flow::<Changed>(&store, serde_json::Value::Null, &options()).expect("run");
    assert_eq!(run.status, RunStatus::Failed);
    let (_, failure) = run.failure.expect("a failure");
    assert!(
        failure.message.contains(&format!(
            "cannot read checkpoint 1 of task train/0 of run {}",
            run.run_id
        )),
        "{}",
        failure.message
    );
    // The checkpoint is still there for a version of the step that reads it.
    let client = Client::open(dir.path()).expect("client");
    let task = client
        .flow("Changed")
        .run(&run.run_id)
        .and_then(|r| r.step("train"))
        .and_then(|s| s.task_entry("0"))
        .expect("task");
    assert_eq!(task.checkpoints().expect("checkpoints").len(), 1);
}
