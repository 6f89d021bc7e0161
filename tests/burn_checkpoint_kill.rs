//! `examples/train_burn.rs` SIGKILLed in the middle of training, then resumed: each interrupted
//! `train` task continues from its last checkpoint, its attempt's log says from which epoch, and
//! the run ends with the very artifacts (every task's model, optimizer state and loss curve, the
//! best model) of a run never interrupted, blob for blob.
//!
//! The runs are `train_burn run --process` in child processes (through `cargo run`, see
//! [`support::example`]), so that the killed tasks are processes of their own, as on a cluster.
//! The machine "goes away": the coordinator and then every task process are stopped (SIGSTOP),
//! then all are SIGKILLed, so that none of them records anything about another's end.

#![cfg(feature = "burn")]

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use blooming_flowers::client::{Client, ClientError, TaskHandle, TaskProgress};
use blooming_flowers::run::RunStatus;

mod support {
    pub mod example;
}

/// The example's code, for [`TrainingProgress`]; its `main` is not used here.
#[allow(dead_code)]
#[path = "../examples/train_burn.rs"]
mod train_burn;

use train_burn::TrainingProgress;

/// Epochs per learning rate: enough that a run takes a few seconds, so that it is still
/// training when the checkpoints below exist.
const EPOCHS: &str = "600";
/// How many checkpoints one `train` task stores before the run is killed.
const CHECKPOINTS_BEFORE_KILL: usize = 100;
/// How long the killed run may take to store them (a cold `cargo run` build included).
const KILL_DEADLINE: Duration = Duration::from_secs(600);

/// `train_burn --datastore DATASTORE ARGS…` through `cargo run`.
fn train_burn(datastore: &Path, args: &[&str]) -> Command {
    let mut cargo = support::example::cargo_example("train_burn", &["burn"]);
    cargo.arg("--datastore").arg(datastore).args(args);
    cargo
}

/// Runs `command` to its end; its stdout, or why it failed.
fn run_to_end(mut command: Command) -> Result<String, String> {
    let output = command
        .output()
        .map_err(|e| format!("cannot start cargo: {e}"))?;
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    if !output.status.success() {
        return Err(format!(
            "{:?} failed ({}):\n--- stdout\n{stdout}\n--- stderr\n{}",
            command,
            output.status,
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    Ok(stdout)
}

/// The run id in `Run <id> of …` of a run's report.
fn run_id_in(text: &str) -> Result<String, String> {
    text.split("Run ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .map(str::to_string)
        .ok_or_else(|| format!("no run id in the report:\n{text}"))
}

/// The most checkpoints any `train` task of the flow's latest run has stored so far; `None`
/// until the run and its `train` tasks exist.
fn most_checkpoints(datastore: &Path) -> Result<Option<usize>, ClientError> {
    if !datastore.exists() {
        return Ok(None);
    }
    let client = Client::open(datastore)?;
    let run = match client.flow("TrainBurn").latest_run() {
        Ok(run) => run,
        Err(ClientError::NoRuns { .. }) => return Ok(None),
        Err(e) => return Err(e),
    };
    let Ok(step) = run.step("train") else {
        return Ok(None);
    };
    let mut most = None;
    for entry in step.task_entries()? {
        let stored = entry.checkpoints()?.len();
        most = Some(most.map_or(stored, |m: usize| m.max(stored)));
    }
    Ok(most)
}

/// The pids of the processes whose parent is `pid` (from `/proc/*/stat`).
fn children_of(pid: u32) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&candidate| {
            // `pid (comm) state ppid …`; comm may hold spaces and parentheses.
            std::fs::read_to_string(format!("/proc/{candidate}/stat"))
                .ok()
                .and_then(|stat| {
                    let fields = stat.rsplit_once(')')?.1.to_owned();
                    fields.split_whitespace().nth(1)?.parse::<u32>().ok()
                })
                == Some(pid)
        })
        .collect()
}

fn signal(signal: &str, pid: u32) -> Result<(), String> {
    let status = Command::new("kill")
        .args([signal, &pid.to_string()])
        .status()
        .map_err(|e| e.to_string())?;
    status
        .success()
        .then_some(())
        .ok_or_else(|| format!("kill {signal} {pid} failed"))
}

/// Stops `pid` and then, recursively, its children: a stopped process starts no new ones, so
/// the tree is complete. Adds every pid stopped to `stopped`, parents first.
fn stop_tree(pid: u32, stopped: &mut Vec<u32>) -> Result<(), String> {
    if let Err(e) = signal("-STOP", pid) {
        // A task process that ended between the listing and the signal is no failure.
        if Path::new(&format!("/proc/{pid}")).exists() || stopped.is_empty() {
            return Err(e);
        }
        return Ok(());
    }
    stopped.push(pid);
    for child in children_of(pid) {
        stop_tree(child, stopped)?;
    }
    Ok(())
}

/// Waits until a `train` task of the run `child` is making has stored
/// [`CHECKPOINTS_BEFORE_KILL`] checkpoints, then SIGKILLs the run's whole process tree (`cargo
/// run` execs the example, which starts a process per task).
fn kill_once_checkpointed(datastore: &Path, child: &mut Child) -> Result<(), String> {
    let deadline = Instant::now() + KILL_DEADLINE;
    loop {
        if let Some(status) = child.try_wait().map_err(|e| e.to_string())? {
            return Err(format!(
                "the run ended ({status}) before a train task stored \
                 {CHECKPOINTS_BEFORE_KILL} checkpoints: more epochs are needed"
            ));
        }
        if most_checkpoints(datastore)
            .map_err(|e| e.to_string())?
            .is_some_and(|n| n >= CHECKPOINTS_BEFORE_KILL)
        {
            break;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            return Err(format!(
                "no train task stored a checkpoint in {KILL_DEADLINE:?}"
            ));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let mut stopped = Vec::new();
    stop_tree(child.id(), &mut stopped)?;
    for &pid in &stopped {
        signal("-KILL", pid)?;
    }
    child.wait().map_err(|e| e.to_string())?;
    if stopped.len() < 2 {
        return Err(format!(
            "only {stopped:?} was running: the train tasks were not processes of their own"
        ));
    }
    Ok(())
}

/// Every artifact of `task`, by name: its blob hash (equal hashes are equal bytes).
fn artifact_hashes(task: &TaskHandle) -> Result<BTreeMap<String, String>, String> {
    Ok(task
        .artifacts()
        .map_err(|e| e.to_string())?
        .iter()
        .map(|a| (a.name.clone(), a.hash.to_string()))
        .collect())
}

/// Where a `train` task of the killed run was when it was killed.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Killed {
    /// It had completed: `resume` reuses it.
    Completed,
    /// It had stored checkpoints, the last one of this epoch.
    At(u32),
    /// It had stored none (or had not started).
    Unsaved,
}

/// Where each of the `train` tasks `ids` of run `run_id` was when the run was killed.
fn killed_tasks(
    datastore: &Path,
    run_id: &str,
    ids: &[String],
) -> Result<BTreeMap<String, Killed>, String> {
    let client = Client::open(datastore).map_err(|e| e.to_string())?;
    let step = client
        .flow("TrainBurn")
        .run(run_id)
        .and_then(|run| run.step("train"))
        .map_err(|e| e.to_string())?;
    let listed = step.task_ids().map_err(|e| e.to_string())?;
    let mut killed = BTreeMap::new();
    for id in ids {
        if !listed.iter().any(|listed| listed == id) {
            killed.insert(id.clone(), Killed::Unsaved);
            continue;
        }
        let entry = step.task_entry(id).map_err(|e| e.to_string())?;
        let state = match (
            entry.progress(),
            entry.checkpoints().map_err(|e| e.to_string())?.last(),
        ) {
            (TaskProgress::Succeeded, _) => Killed::Completed,
            (TaskProgress::Incomplete, None) => Killed::Unsaved,
            // A killed task recorded no attempt (no `TaskHandle`): read the blob from its entry.
            (TaskProgress::Incomplete, Some(last)) => {
                let mut blob = entry
                    .open_artifact(&last.as_artifact())
                    .map_err(|e| e.to_string())?;
                let mut bytes = Vec::new();
                blob.read_to_end(&mut bytes).map_err(|e| e.to_string())?;
                blob.finish().map_err(|e| e.to_string())?;
                let progress: TrainingProgress = blooming_flowers::state::decode_field(&bytes)
                    .map_err(|e| format!("{}: {e}", blob.context()))?;
                Killed::At(progress.epoch)
            }
            (other, _) => return Err(format!("train task {id} of the killed run is {other}")),
        };
        killed.insert(id.clone(), state);
    }
    Ok(killed)
}

/// The epochs that `logs` say training continued from, in order.
fn continued_from(logs: &str) -> Vec<u32> {
    const SAID: &str = "continuing from the checkpoint of epoch ";
    logs.match_indices(SAID)
        .map(|(at, _)| {
            let digits: String = logs[at + SAID.len()..]
                .chars()
                .take_while(char::is_ascii_digit)
                .collect();
            // An unreadable number counts as a wrong one: `u32::MAX` matches no checkpoint.
            digits.parse().unwrap_or(u32::MAX)
        })
        .collect()
}

/// The text of every attempt's log of `task` (not its process's stdout and stderr).
fn attempt_logs(task: &TaskHandle) -> Result<String, String> {
    Ok(task
        .logs()
        .map_err(|e| e.to_string())?
        .into_iter()
        .filter(|(attempt, _)| *attempt < u32::MAX - 1)
        .map(|(_, text)| text)
        .collect())
}

fn check_killed_training_resumes_bit_for_bit(dir: &Path) -> Result<(), String> {
    let args = ["run", "--process", "--epochs", EPOCHS];
    // The reference: the same training, never interrupted.
    let reference = dir.join("reference");
    let reference_run = run_id_in(&run_to_end(train_burn(&reference, &args))?)?;
    let reference = Client::open(&reference)
        .and_then(|client| client.flow("TrainBurn").run(&reference_run))
        .map_err(|e| e.to_string())?;
    let reference_train = reference.step("train").map_err(|e| e.to_string())?;

    let killed = dir.join("killed");
    let mut child = train_burn(&killed, &args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot start cargo: {e}"))?;
    kill_once_checkpointed(&killed, &mut child)?;
    let killed_run = Client::open(&killed)
        .and_then(|c| c.flow("TrainBurn").latest_run())
        .map_err(|e| e.to_string())?;
    if killed_run.status() != RunStatus::Running {
        return Err(format!(
            "the killed run recorded its end: {}",
            killed_run.status()
        ));
    }
    let ids: Vec<String> = reference_train
        .task_ids()
        .map_err(|e| e.to_string())?
        .iter()
        .map(|id| id.to_string())
        .collect();
    let killed_at = killed_tasks(&killed, killed_run.id().as_ref(), &ids)?;
    if !killed_at
        .values()
        .any(|state| matches!(state, Killed::At(epoch) if *epoch > 0))
    {
        return Err(format!(
            "no interrupted train task had a checkpoint: {killed_at:?}"
        ));
    }

    let resumed_run = run_id_in(&run_to_end(train_burn(&killed, &["resume", "--process"]))?)?;
    let client = Client::open(&killed).map_err(|e| e.to_string())?;
    let resumed = client
        .flow("TrainBurn")
        .run(&resumed_run)
        .map_err(|e| e.to_string())?;
    if resumed.status() != RunStatus::Succeeded {
        return Err(format!("the resumed run is {}", resumed.status()));
    }
    let train = resumed.step("train").map_err(|e| e.to_string())?;
    let epochs: u32 = EPOCHS.parse().map_err(|e| format!("{EPOCHS}: {e}"))?;
    for (id, state) in &killed_at {
        let task = train.task(id).map_err(|e| e.to_string())?;
        let from = match state {
            Killed::Completed => {
                if task.origin_run_id() != Some(killed_run.id()) {
                    return Err(format!(
                        "train task {id} completed before the kill, yet was not reused"
                    ));
                }
                continue;
            }
            Killed::At(epoch) => Some(*epoch),
            Killed::Unsaved => None,
        };
        let logs = attempt_logs(&task)?;
        let said = continued_from(&logs);
        let says_where = match from {
            Some(epoch) => said == [epoch],
            None => said.is_empty() && logs.contains("no checkpoint: training from the start"),
        };
        if !says_where {
            return Err(format!(
                "train task {id} should have continued from {from:?} (the last checkpoint of \
                 the killed run); its log:\n{logs}"
            ));
        }
        // It trained exactly the epochs left, neither redoing nor skipping any: it checkpointed
        // each of them (`--checkpoint-every` is 1), numbered from 1 in this run, and the last
        // one is kept. Without this, training afresh while logging the checkpoint would pass.
        let trained = epochs - from.unwrap_or(0);
        let kept = task.checkpoints().map_err(|e| e.to_string())?;
        let last = kept.last().map(|record| record.seq);
        if last != Some(u64::from(trained)) {
            return Err(format!(
                "train task {id}, continued from {from:?}, should have trained {trained} epochs \
                 in the resumed run; its last checkpoint there is {last:?}"
            ));
        }
    }

    let mut compared = Vec::new();
    for task in reference_train.tasks().map_err(|e| e.to_string())? {
        let id = task.id().to_string();
        let resumed_task = train.task(&id).map_err(|e| e.to_string())?;
        compared.push((format!("train/{id}"), task, resumed_task));
    }
    compared.push((
        "end".into(),
        reference.end_task().map_err(|e| e.to_string())?,
        resumed.end_task().map_err(|e| e.to_string())?,
    ));
    for (what, reference_task, resumed_task) in &compared {
        let (want, got) = (
            artifact_hashes(reference_task)?,
            artifact_hashes(resumed_task)?,
        );
        let required: &[&str] = if what == "end" {
            &["best"]
        } else {
            &["model", "optimizer", "loss_curve"]
        };
        for name in required {
            if !got.contains_key(*name) {
                return Err(format!("{what} of the resumed run has no artifact {name}"));
            }
        }
        let differing: BTreeSet<&String> = want
            .keys()
            .chain(got.keys())
            .filter(|name| want.get(*name) != got.get(*name))
            .collect();
        if !differing.is_empty() {
            return Err(format!(
                "{what} of the resumed run differs from the uninterrupted run's in {differing:?}"
            ));
        }
    }
    println!(
        "killed with the train tasks at {killed_at:?}; resumed: every artifact equals the \
         uninterrupted run's"
    );
    Ok(())
}

#[test]
fn a_killed_training_continues_from_its_last_checkpoint_and_ends_with_the_uninterrupted_weights() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    if let Err(e) = check_killed_training_resumes_bit_for_bit(dir.path()) {
        panic!("{e}");
    }
}

/// The settings of a run recorded before `--checkpoint-every` existed still load (and resume):
/// the missing field takes its default, a checkpoint every epoch.
#[test]
fn settings_stored_before_checkpoint_every_existed_still_load() {
    #[derive(serde::Serialize)]
    struct OlderSettings {
        epochs: u32,
    }
    let mut stored = Vec::new();
    blooming_flowers::state::encode_field(&mut stored, &OlderSettings { epochs: 60 })
        .expect("encodes");
    let settings: train_burn::Settings =
        blooming_flowers::state::decode_field(&stored).expect("an older run's settings load");
    assert_eq!((settings.epochs, settings.checkpoint_every), (60, 1));
}
