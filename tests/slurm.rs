//! `run --slurm` and `resume --slurm` against a real Slurm (`scripts/services` starts a
//! single-node one on loopback): every task a batch job running this binary's `step` command.
//!
//! The test binary is its own flow binary (this target has `harness = false`): started with
//! `--datastore` (as every job starts it) or with `SLURM_TEST_AS` set, it is the command line of
//! the flow that variable names; started by `cargo test`, it runs the checks below. Run it
//! through `scripts/services exec -- cargo test --test slurm`, which provides Slurm and the
//! S3 server; without them it fails and says so.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use blooming_flowers::datastore::DatastoreLocation;
use blooming_flowers::prelude::*;
use blooming_flowers::run::RunStore;

#[allow(dead_code)]
#[path = "../examples/squares.rs"]
mod squares;

/// Which flow this binary is, when started as a flow binary: `squares` or `sleepy`.
const AS_FLOW_ENV: &str = "SLURM_TEST_AS";

/// Names a file whose existence makes `work` for x = 3 say it started (by creating
/// `<file>.started`) and then sleep until killed. Jobs inherit it through `sbatch`.
const HANG_FILE_ENV: &str = "SLURM_TEST_HANG_FILE";

#[derive(Clone, Default, Serialize, Deserialize)]
struct Sleepy {
    xs: Vec<u64>,
    square: u64,
    total: u64,
}

#[flow]
impl Sleepy {
    #[step(foreach = xs, next = work)]
    fn start(&mut self) {
        self.xs = (1..=6).collect();
    }

    #[step(next = gather)]
    fn work(&mut self, x: u64) {
        if x == 3
            && let Some(hang) = std::env::var_os(HANG_FILE_ENV).map(PathBuf::from)
            && hang.exists()
        {
            let _ = std::fs::write(hang.with_extension("started"), b"");
            std::thread::sleep(Duration::from_secs(600));
        }
        println!("squaring {x}");
        self.square = x * x;
    }

    #[step(join, next = end)]
    fn gather(&mut self, inputs: Inputs<Self>) {
        self.total = inputs.iter().map(|i| i.square).sum();
    }

    #[step]
    fn end(&mut self) {}
}

struct Output {
    code: i32,
    out: String,
    err: String,
}

impl Output {
    fn describe(&self) -> String {
        format!(
            "exit {}\n--- stdout\n{}--- stderr\n{}",
            self.code, self.out, self.err
        )
    }
}

/// Runs this binary as flow `flow` with `args` after `--datastore DATASTORE`.
fn flow_command(flow: &str, datastore: &str, args: &[&str]) -> Result<Command, String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let mut command = Command::new(exe);
    command
        .env(AS_FLOW_ENV, flow)
        .arg("--datastore")
        .arg(datastore)
        .args(args)
        .stdin(Stdio::null());
    Ok(command)
}

fn run_flow(flow: &str, datastore: &str, args: &[&str]) -> Result<Output, String> {
    let output = flow_command(flow, datastore, args)?
        .output()
        .map_err(|e| e.to_string())?;
    Ok(Output {
        code: output.status.code().unwrap_or(-1),
        out: String::from_utf8_lossy(&output.stdout).into_owned(),
        err: String::from_utf8_lossy(&output.stderr).into_owned(),
    })
}

/// A datastore location of its own for one check: a prefix of the S3 bucket the services
/// provide, else a directory (every job runs on this machine, so one works too).
fn datastore(dir: &Path, name: &str) -> String {
    let unique = format!(
        "{name}-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default()
    );
    match std::env::var("BLOOMING_TEST_S3") {
        Ok(base) if !base.is_empty() => {
            format!("{}/slurm/{unique}", base.trim_end_matches('/'))
        }
        _ => dir.join(unique).to_string_lossy().into_owned(),
    }
}

fn open_store(location: &str) -> Result<RunStore, String> {
    let location = DatastoreLocation::parse(location).map_err(|e| e.to_string())?;
    RunStore::open(&location).map_err(|e| e.to_string())
}

/// The one run of `flow` in `store`.
fn only_run(store: &RunStore, flow: &str) -> Result<String, String> {
    let runs = store.list_runs(flow).map_err(|e| e.to_string())?;
    match runs.as_slice() {
        [run] => Ok(run.clone()),
        _ => Err(format!("expected one run of {flow}, found {runs:?}")),
    }
}

/// Every completed task of `run`: (step, task) → its artifacts (name, hash, size), which are
/// equal exactly when the values are.
type Artifacts = std::collections::BTreeMap<(String, String), Vec<(String, String, u64)>>;

fn artifacts_of(store: &RunStore, flow: &str, run: &str) -> Result<Artifacts, String> {
    let mut all = Artifacts::new();
    for step in store.list_steps(flow, run).map_err(|e| e.to_string())? {
        for task in store
            .list_tasks(flow, run, &step)
            .map_err(|e| e.to_string())?
        {
            let key = RunStore::task_key(flow, run, &step, &task).map_err(|e| e.to_string())?;
            let Some(index) = store.read_index(&key).map_err(|e| e.to_string())? else {
                continue;
            };
            let entries = index
                .artifacts
                .iter()
                .map(|a| (a.name.clone(), a.hash.to_string(), a.size))
                .collect();
            all.insert((step.clone(), task), entries);
        }
    }
    Ok(all)
}

/// The main example on Slurm gives the same artifacts, task for task, as in-process; the
/// tasks record the jobs that ran them and their stdout.
fn squares_on_slurm_equals_in_process(dir: &Path) -> Result<(), String> {
    let local = datastore(dir, "squares-local");
    let on_slurm = datastore(dir, "squares-slurm");
    let a = run_flow("squares", &local, &["run"])?;
    if a.code != 0 {
        return Err(format!("the in-process run failed\n{}", a.describe()));
    }
    let started = Instant::now();
    let b = run_flow("squares", &on_slurm, &["run", "--slurm"])?;
    if b.code != 0 {
        return Err(format!("the Slurm run failed\n{}", b.describe()));
    }
    println!(
        "  squares on Slurm: {:.1} s for the whole run",
        started.elapsed().as_secs_f64()
    );
    let (sa, sb) = (open_store(&local)?, open_store(&on_slurm)?);
    let (ra, rb) = (only_run(&sa, "Squares")?, only_run(&sb, "Squares")?);
    let (aa, ab) = (
        artifacts_of(&sa, "Squares", &ra)?,
        artifacts_of(&sb, "Squares", &rb)?,
    );
    if aa.is_empty() || aa != ab {
        return Err(format!(
            "artifacts differ between the runs:\nin-process: {aa:?}\non Slurm: {ab:?}"
        ));
    }
    // Every task says which job ran it.
    let dump = run_flow("squares", &on_slurm, &["dump", &format!("{rb}/sq")])?;
    let jobs = dump.out.matches("slurm:").count();
    if dump.code != 0 || jobs != 10 {
        return Err(format!(
            "`dump RUN/sq` should list 10 tasks with their Slurm jobs, found {jobs}\n{}",
            dump.describe()
        ));
    }
    Ok(())
}

/// The job id Slurm gave the task named `name` (`<Flow>.<step>.<task>`), once it exists.
fn job_named(name: &str) -> Result<Option<String>, String> {
    let out = Command::new("squeue")
        .args(["--noheader", "--format=%i", "--name", name])
        .output()
        .map_err(|e| format!("cannot run squeue: {e}"))?;
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .map(str::to_owned))
}

/// A job killed with `scancel` while its task runs fails the run with Slurm's word for it;
/// `resume --slurm` reruns that task alone and completes; every task stored loads intact.
fn cancelled_job_then_resume(dir: &Path) -> Result<(), String> {
    let location = datastore(dir, "sleepy");
    let hang = dir.join("hang");
    std::fs::write(&hang, b"").map_err(|e| e.to_string())?;
    let started_marker = hang.with_extension("started");
    let _ = std::fs::remove_file(&started_marker);

    let mut run = flow_command("sleepy", &location, &["run", "--slurm"])?
        .env(HANG_FILE_ENV, &hang)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| e.to_string())?;
    let deadline = Instant::now() + Duration::from_secs(120);
    while !started_marker.exists() {
        if Instant::now() > deadline {
            let _ = run.kill();
            return Err("the task for x = 3 never started".into());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let job = job_named("Sleepy.work.2")?.ok_or("no Slurm job named Sleepy.work.2")?;
    let cancel = Command::new("scancel")
        .arg(&job)
        .status()
        .map_err(|e| e.to_string())?;
    if !cancel.success() {
        return Err(format!("scancel {job} failed"));
    }
    let output = run.wait_with_output().map_err(|e| e.to_string())?;
    let first = Output {
        code: output.status.code().unwrap_or(-1),
        out: String::from_utf8_lossy(&output.stdout).into_owned(),
        err: String::from_utf8_lossy(&output.stderr).into_owned(),
    };
    if first.code != 1 || !first.err.contains("CANCELLED") || !first.err.contains("work/2") {
        return Err(format!(
            "the run should fail on task work/2 with its job CANCELLED\n{}",
            first.describe()
        ));
    }

    std::fs::remove_file(&hang).map_err(|e| e.to_string())?;
    let resumed = run_flow("sleepy", &location, &["resume", "--slurm"])?;
    if resumed.code != 0 {
        return Err(format!("resume should complete\n{}", resumed.describe()));
    }
    let store = open_store(&location)?;
    let mut runs = store.list_runs("Sleepy").map_err(|e| e.to_string())?;
    runs.sort();
    let [failed, resumed_run] = runs.as_slice() else {
        return Err(format!("expected two runs, found {runs:?}"));
    };
    for run in [failed, resumed_run] {
        for ((step, task), _) in artifacts_of(&store, "Sleepy", run)? {
            let key = RunStore::task_key("Sleepy", run, &step, &task).map_err(|e| e.to_string())?;
            let index = store
                .read_index(&key)
                .map_err(|e| e.to_string())?
                .ok_or("listed but not complete")?;
            store
                .blobs()
                .load_state::<blooming_flowers::StateOwned<Sleepy>>(&index.artifacts)
                .map_err(|e| format!("task {step}/{task} of run {run} does not load: {e}"))?;
        }
    }
    let key = RunStore::task_key("Sleepy", resumed_run, "end", "0").map_err(|e| e.to_string())?;
    let index = store
        .read_index(&key)
        .map_err(|e| e.to_string())?
        .ok_or("the resumed run has no end")?;
    let end: blooming_flowers::StateOwned<Sleepy> = store
        .blobs()
        .load_state(&index.artifacts)
        .map_err(|e| e.to_string())?;
    if end.0.total != (1..=6u64).map(|x| x * x).sum::<u64>() {
        return Err(format!("wrong total {}", end.0.total));
    }
    // Exactly the cancelled task ran again; the other five were reused.
    let dump = run_flow(
        "sleepy",
        &location,
        &["dump", &format!("{resumed_run}/work")],
    )?;
    let reused = dump.out.matches(failed.as_str()).count();
    if reused != 5 {
        return Err(format!(
            "5 of 6 work tasks should be reused from {failed}, found {reused}\n{}",
            dump.describe()
        ));
    }
    Ok(())
}

type Check<'a> = Box<dyn Fn() -> Result<(), String> + 'a>;

fn main() -> ExitCode {
    let args: Vec<OsString> = std::env::args_os().collect();
    let as_flow = std::env::var(AS_FLOW_ENV).ok();
    if args.get(1).is_some_and(|a| a == "--datastore") || as_flow.is_some() {
        return match as_flow.as_deref() {
            Some("sleepy") => blooming_flowers::main::<Sleepy>(),
            _ => blooming_flowers::main::<squares::Squares>(),
        };
    }
    if std::env::var_os("BLOOMING_SLURM").is_none() {
        eprintln!(
            "these checks need Slurm (and the S3 server): run them as\n  \
             scripts/services exec -- cargo test --features s3 --test slurm"
        );
        return ExitCode::FAILURE;
    }
    let dir = match tempfile::tempdir() {
        Ok(d) => d,
        Err(e) => {
            eprintln!("cannot make a temporary directory: {e}");
            return ExitCode::FAILURE;
        }
    };
    let tests: [(&str, Check<'_>); 2] = [
        (
            "squares_on_slurm_equals_in_process",
            Box::new(|| squares_on_slurm_equals_in_process(dir.path())),
        ),
        (
            "cancelled_job_then_resume",
            Box::new(|| cancelled_job_then_resume(dir.path())),
        ),
    ];
    let mut failed = 0;
    for (name, test) in &tests {
        match test() {
            Ok(()) => println!("test {name} ... ok"),
            Err(e) => {
                failed += 1;
                println!("test {name} ... FAILED\n{e}");
            }
        }
    }
    println!("{} passed, {failed} failed", tests.len() - failed);
    if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
