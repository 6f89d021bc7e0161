//! A training step killed with SIGKILL in the middle (its process and the run's coordinator,
//! as when a node dies or a job hits its time limit), then resumed: it continues from its last
//! checkpoint, says so in its log, and ends with exactly the state of a run never interrupted.
//!
//! The test binary is its own flow binary (this target has `harness = false`): started with
//! `--datastore`, as `run --process` starts each task, it is the flow's command line.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{ExitCode, Stdio};
use std::time::{Duration, Instant};

use blooming_flowers::cli::run_cli_with;
use blooming_flowers::current::current;
use blooming_flowers::prelude::*;

/// Names a file whose existence makes `train` stop after checkpointing epoch 3: it writes
/// `<file>.ready` holding its process id and waits to be killed.
const KILL_FILE_ENV: &str = "CHECKPOINT_KILL_FILE";
/// How many epochs the training runs.
const EPOCHS: u32 = 6;

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
struct Progress {
    epoch: u32,
    weights: Vec<f32>,
}

#[derive(Clone, Default, Serialize, Deserialize)]
struct Epochs {
    progress: Progress,
    resumed_from: u32,
}

#[flow]
impl Epochs {
    #[step(next = train)]
    fn start(&mut self) {}

    #[step(next = end)]
    fn train(&mut self) -> Result<(), String> {
        let task = current().ok_or("not in a task")?;
        let mut progress: Progress = task
            .last_checkpoint()
            .map_err(|e| e.to_string())?
            .unwrap_or(Progress {
                epoch: 0,
                weights: vec![0.5; 64],
            });
        self.resumed_from = progress.epoch;
        tracing::info!("continuing from epoch {}", progress.epoch);
        while progress.epoch < EPOCHS {
            progress.epoch += 1;
            // A deterministic "training" step whose result depends on every epoch before.
            for (i, w) in progress.weights.iter_mut().enumerate() {
                *w = (*w * 1.618_034 + i as f32 * 0.001 + progress.epoch as f32).sin();
            }
            task.checkpoint(&progress).map_err(|e| e.to_string())?;
            if progress.epoch == 3
                && let Some(file) = std::env::var_os(KILL_FILE_ENV).map(PathBuf::from)
                && file.exists()
            {
                let _ =
                    std::fs::write(file.with_extension("ready"), std::process::id().to_string());
                std::thread::sleep(Duration::from_secs(600));
            }
        }
        self.progress = progress;
        Ok(())
    }

    #[step]
    fn end(&mut self) {}
}

struct Output {
    code: u8,
    out: String,
    err: String,
}

fn cli(datastore: &Path, args: &[&str]) -> Output {
    let mut argv: Vec<OsString> = vec!["epochs".into(), "--datastore".into(), datastore.into()];
    argv.extend(args.iter().map(OsString::from));
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let code = run_cli_with::<Epochs, _, _>(argv, &mut out, &mut err);
    Output {
        code,
        out: String::from_utf8_lossy(&out).into_owned(),
        err: String::from_utf8_lossy(&err).into_owned(),
    }
}

/// The run id in `Run <id> of …` of a run's report.
fn run_id_in(text: &str) -> String {
    text.split("Run ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_default()
        .to_string()
}

fn kill(pid: &str) -> Result<(), String> {
    let status = std::process::Command::new("kill")
        .args(["-KILL", pid])
        .status()
        .map_err(|e| e.to_string())?;
    status
        .success()
        .then_some(())
        .ok_or_else(|| format!("kill -KILL {pid} failed"))
}

/// The blob hash of artifact `name` of the `end` task of `run`: equal hashes are equal bytes.
fn end_artifact_hash(datastore: &Path, run: &str, name: &str) -> Result<String, String> {
    let client = blooming_flowers::client::Client::open(datastore).map_err(|e| e.to_string())?;
    let end = client
        .flow("Epochs")
        .run(run)
        .and_then(|r| r.end_task())
        .map_err(|e| e.to_string())?;
    let artifacts = end.artifacts().map_err(|e| e.to_string())?;
    artifacts
        .iter()
        .find(|a| a.name == name)
        .map(|a| a.hash.to_string())
        .ok_or_else(|| format!("no artifact {name} in the end task of {run}"))
}

fn killed_training_resumes_from_its_last_checkpoint(dir: &Path) -> Result<(), String> {
    // The reference: the same training, never interrupted.
    let reference = dir.join("reference");
    let o = cli(&reference, &["run"]);
    if o.code != 0 {
        return Err(format!("the reference run failed: {}", o.err));
    }
    let reference_run = run_id_in(&o.out);
    let reference_hash = end_artifact_hash(&reference, &reference_run, "progress")?;

    let datastore = dir.join("killed");
    let kill_file = dir.join("kill-at-epoch-3");
    std::fs::write(&kill_file, b"").map_err(|e| e.to_string())?;
    let mut run = std::process::Command::new(std::env::current_exe().map_err(|e| e.to_string())?)
        .arg("--datastore")
        .arg(&datastore)
        .args(["run", "--process"])
        .env(KILL_FILE_ENV, &kill_file)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| e.to_string())?;
    let ready = kill_file.with_extension("ready");
    let deadline = Instant::now() + Duration::from_secs(120);
    let task_pid = loop {
        if let Ok(pid) = std::fs::read_to_string(&ready)
            && !pid.trim().is_empty()
        {
            break pid.trim().to_string();
        }
        if Instant::now() > deadline || run.try_wait().ok().flatten().is_some() {
            let _ = run.kill();
            return Err("the training task never reached epoch 3".into());
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    // The machine goes away: the coordinator and the task die at once.
    kill(&run.id().to_string())?;
    kill(&task_pid)?;
    let _ = run.wait();
    std::fs::remove_file(&kill_file).map_err(|e| e.to_string())?;

    let o = cli(
        &datastore,
        &["resume", "--process", "--keep-checkpoints", "none"],
    );
    if o.code != 0 {
        return Err(format!("the resume failed:\n{}\n{}", o.out, o.err));
    }
    let resumed = run_id_in(&o.out);
    let o = cli(
        &datastore,
        &[
            "dump",
            &format!("{resumed}/end"),
            "--artifact",
            "resumed_from",
            "--json",
        ],
    );
    if o.out.trim() != "3" {
        return Err(format!(
            "the resumed task should start from epoch 3: {}",
            o.out
        ));
    }
    let o = cli(&datastore, &["logs", &format!("{resumed}/train/0")]);
    if !o.out.contains("continuing from epoch 3") {
        return Err(format!(
            "the attempt's log should say where it continued from:\n{}",
            o.out
        ));
    }
    let hash = end_artifact_hash(&datastore, &resumed, "progress")?;
    if hash != reference_hash {
        return Err(format!(
            "the weights differ from an uninterrupted run's: {hash} and {reference_hash}"
        ));
    }
    // `--keep-checkpoints none` reached the task's own process: nothing kept once it completed.
    let client = blooming_flowers::client::Client::open(&datastore).map_err(|e| e.to_string())?;
    let kept = client
        .flow("Epochs")
        .run(&resumed)
        .and_then(|r| r.step("train"))
        .and_then(|s| s.task("0"))
        .and_then(|t| t.checkpoints())
        .map_err(|e| e.to_string())?;
    if !kept.is_empty() {
        return Err(format!(
            "the completed task kept {} checkpoints",
            kept.len()
        ));
    }
    println!("  killed at epoch 3, resumed from it: the same weights as without the kill");
    Ok(())
}

fn main() -> ExitCode {
    let args: Vec<OsString> = std::env::args_os().collect();
    if args.get(1).is_some_and(|a| a == "--datastore") {
        return blooming_flowers::main::<Epochs>();
    }
    let dir = match tempfile::tempdir() {
        Ok(d) => d,
        Err(e) => {
            eprintln!("cannot make a temporary directory: {e}");
            return ExitCode::FAILURE;
        }
    };
    match killed_training_resumes_from_its_last_checkpoint(dir.path()) {
        Ok(()) => {
            println!("test killed_training_resumes_from_its_last_checkpoint ... ok");
            ExitCode::SUCCESS
        }
        Err(e) => {
            println!("test killed_training_resumes_from_its_last_checkpoint ... FAILED\n{e}");
            ExitCode::FAILURE
        }
    }
}
