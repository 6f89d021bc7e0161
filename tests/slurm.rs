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

#[allow(dead_code)]
#[path = "argo/flows.rs"]
mod flows;

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

/// Names a file whose existence makes `Guarded::start` write `<file>.started` and wait until
/// the file is removed. Jobs inherit it through `sbatch`.
const START_WAIT_ENV: &str = "SLURM_TEST_START_WAIT";

/// The checks of issue 10 run this flow, named like no other so that its jobs are told apart
/// from those of other tests sharing the cluster. Its `work` for x = 3 hangs like `Sleepy`'s
/// (the hang file is looked at when the task starts, so a rerun of the task after the file is
/// removed completes).
#[derive(Clone, Default, Serialize, Deserialize)]
struct Guarded {
    xs: Vec<u64>,
    square: u64,
    total: u64,
}

#[flow]
impl Guarded {
    #[step(foreach = xs, next = work)]
    fn start(&mut self) {
        if let Some(wait) = std::env::var_os(START_WAIT_ENV).map(PathBuf::from)
            && wait.exists()
        {
            let _ = std::fs::write(wait.with_extension("started"), b"");
            let deadline = Instant::now() + Duration::from_secs(600);
            while wait.exists() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
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
        self.square = x * x;
    }

    #[step(join, next = end)]
    fn gather(&mut self, inputs: Inputs<Self>) {
        self.total = inputs.iter().map(|i| i.square).sum();
    }

    #[step]
    fn end(&mut self) {}
}

/// Names a file whose existence makes `Flaky::work` fail for x = 3, on every attempt. Jobs
/// inherit it through `sbatch`.
const FAIL_FILE_ENV: &str = "SLURM_TEST_FAIL_FILE";

/// Names a file that `Flaky::work` for x = 5 creates on its first attempt, which then fails;
/// the retry finds the file and completes. Jobs inherit it through `sbatch`.
const RETRY_MARK_ENV: &str = "SLURM_TEST_RETRY_MARK";

/// The job array checks run this flow: a foreach over six elements whose `work` can fail for
/// one element (x = 3) and fails once, then succeeds on its retry, for another (x = 5).
#[derive(Clone, Default, Serialize, Deserialize)]
struct Flaky {
    xs: Vec<u64>,
    square: u64,
    total: u64,
}

#[flow]
impl Flaky {
    #[step(foreach = xs, next = work)]
    fn start(&mut self) {
        self.xs = (1..=6).collect();
    }

    #[step(next = gather, retries = 1)]
    fn work(&mut self, x: u64) {
        let file = |var: &str| std::env::var_os(var).map(PathBuf::from);
        if x == 3 && file(FAIL_FILE_ENV).is_some_and(|f| f.exists()) {
            panic!("x = 3 fails while the fail file exists");
        }
        if x == 5
            && let Some(mark) = file(RETRY_MARK_ENV)
            && !mark.exists()
        {
            let _ = std::fs::write(&mark, b"");
            panic!("x = 5 fails on its first attempt");
        }
        self.square = x * x;
    }

    #[step(join, next = end)]
    fn gather(&mut self, inputs: Inputs<Self>) {
        self.total = inputs.iter().map(|i| i.square).sum();
    }

    #[step]
    fn end(&mut self) {}
}

/// The resources check runs this flow: the `train` tasks of a foreach ask 2 cpus and 100 MiB.
#[derive(Clone, Default, Serialize, Deserialize)]
struct Hungry {
    xs: Vec<u64>,
    square: u64,
    total: u64,
}

#[flow]
impl Hungry {
    #[step(foreach = xs, next = train)]
    fn start(&mut self) {
        self.xs = (1..=3).collect();
    }

    #[step(next = gather, resources(cpus = 2, memory = "100 MiB"))]
    fn train(&mut self, x: u64) {
        self.square = x * x;
    }

    #[step(join, next = end, resources(cpus = 2, memory = "100 MiB"))]
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
    Ok(output_of(output))
}

fn output_of(output: std::process::Output) -> Output {
    Output {
        code: output.status.code().unwrap_or(-1),
        out: String::from_utf8_lossy(&output.stdout).into_owned(),
        err: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
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
        [run] => Ok(run.to_string()),
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
            all.insert((step.clone(), task.into()), entries);
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

/// A flow with loops (one around a foreach whose elements loop too, one step going back to
/// itself) gives on Slurm the same tasks, pass for pass, and the same artifacts as in-process.
fn loops_on_slurm_equal_in_process(dir: &Path) -> Result<(), String> {
    let local = datastore(dir, "looping-local");
    let on_slurm = datastore(dir, "looping-slurm");
    let a = run_flow("looping", &local, &["run", "--rounds", "2"])?;
    if a.code != 0 {
        return Err(format!("the in-process run failed\n{}", a.describe()));
    }
    let started = Instant::now();
    let b = run_flow("looping", &on_slurm, &["run", "--slurm", "--rounds", "2"])?;
    if b.code != 0 {
        return Err(format!("the Slurm run failed\n{}", b.describe()));
    }
    let (sa, sb) = (open_store(&local)?, open_store(&on_slurm)?);
    let (ra, rb) = (only_run(&sa, "Looping")?, only_run(&sb, "Looping")?);
    let (aa, ab) = (
        artifacts_of(&sa, "Looping", &ra)?,
        artifacts_of(&sb, "Looping", &rb)?,
    );
    // start, 2 rounds of (round, again), 3 elements and their 4 attempts, 2 polishes, end.
    if aa.len() != 24 || aa != ab {
        return Err(format!(
            "the runs differ ({} and {} tasks):\nin-process: {aa:?}\non Slurm: {ab:?}",
            aa.len(),
            ab.len()
        ));
    }
    let passes: Vec<&str> = ab
        .keys()
        .filter(|(step, _)| step == "attempt")
        .map(|(_, task)| task.as_str())
        .collect();
    if passes != ["i0-0-i0", "i1-0-i0", "i1-1-i0", "i1-1-i1"] {
        return Err(format!("the attempts on Slurm are {passes:?}"));
    }
    println!(
        "  looping on Slurm: {} tasks in {:.1} s",
        ab.len(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// The id of the Slurm job running task `task` of step `step` (`<Flow>.<step>`), once it exists:
/// a job of its own named `<Flow>.<step>.<task>`, or the element of the step's job array
/// (named `<Flow>.<step>`) whose index is the task's position in the foreach.
fn job_of_task(step: &str, task: &str) -> Result<Option<String>, String> {
    let out = Command::new("squeue")
        .args(["--noheader", "--array", "--format=%i|%j"])
        .output()
        .map_err(|e| format!("cannot run squeue: {e}"))?;
    let single = format!("{step}.{task}");
    let element = format!("_{task}");
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.trim().split_once('|'))
        .find(|(id, name)| *name == single || (*name == step && id.ends_with(&element)))
        .map(|(id, _)| id.to_owned()))
}

/// The state `squeue` gives job `id` (finished jobs included), if it still lists it.
fn job_state(id: &str) -> Result<Option<String>, String> {
    let out = Command::new("squeue")
        .args(["--noheader", "--states=all", "--format=%T", "--jobs", id])
        .output()
        .map_err(|e| format!("cannot run squeue: {e}"))?;
    Ok(String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .map(str::to_owned))
}

/// Cancels job `id` with `scancel` and waits until Slurm lists it in a final state.
///
/// On a loaded machine a cancel request can be accepted by the controller and still leave the
/// job running (CI once saw the job's task sleep to its end): what this file tests is how a run
/// reacts to a job that Slurm ended, so the job is killed outright if the cancel did not end it.
fn cancel_until_ended(id: &str) -> Result<(), String> {
    let ended = |state: &str| {
        !matches!(
            state,
            "PENDING" | "CONFIGURING" | "RUNNING" | "COMPLETING" | "SUSPENDED" | "REQUEUED"
        )
    };
    let started = Instant::now();
    let mut last = None;
    for (attempt, args) in [
        vec![id],
        vec!["--full", "--signal=KILL", id],
        vec!["--full", "--signal=KILL", id],
    ]
    .into_iter()
    .enumerate()
    {
        let cancel = Command::new("scancel")
            .args(&args)
            .status()
            .map_err(|e| format!("cannot run scancel: {e}"))?;
        if attempt == 0 && !cancel.success() {
            return Err(format!("scancel {id} failed"));
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            last = job_state(id)?;
            match &last {
                Some(state) if !ended(state) => {}
                _ => {
                    if attempt > 0 {
                        eprintln!(
                            "  job {id} ended {last:?} only after `scancel {}`, {:.1} s after the first cancel",
                            args.join(" "),
                            started.elapsed().as_secs_f64()
                        );
                    }
                    return Ok(());
                }
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
    Err(format!(
        "Slurm job {id} is still {last:?} {:.0} s after it was cancelled and killed",
        started.elapsed().as_secs_f64()
    ))
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
    let job = job_of_task("Sleepy.work", "2")?.ok_or("no Slurm job runs Sleepy task work/2")?;
    if let Err(e) = cancel_until_ended(&job) {
        let _ = run.kill();
        return Err(e);
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

/// The metadata of task `step/task` of `run`.
fn meta_of(
    store: &RunStore,
    flow: &str,
    run: &str,
    step: &str,
    task: &str,
) -> Result<blooming_flowers::run::TaskMeta, String> {
    let key = RunStore::task_key(flow, run, step, task).map_err(|e| e.to_string())?;
    store
        .read_meta(&key)
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("task {step}/{task} of run {run} has no metadata"))
}

/// The job a task records (`slurm:ID`) split into the array job's id and the element's index,
/// or the job's id and no index for a job of its own.
fn recorded_job(
    meta: &blooming_flowers::run::TaskMeta,
) -> Result<(String, Option<String>), String> {
    let job = meta.job.as_deref().unwrap_or_default();
    let id = job
        .strip_prefix("slurm:")
        .ok_or_else(|| format!("task {} records no Slurm job: {job:?}", meta.spec.task_id))?;
    Ok(match id.split_once('_') {
        Some((array, index)) => (array.to_owned(), Some(index.to_owned())),
        None => (id.to_owned(), None),
    })
}

/// `scontrol show job -o ID`: one line per job (per element of an array), as `Key=Value` pairs.
fn show_job(id: &str) -> Result<String, String> {
    let out = Command::new("scontrol")
        .args(["show", "job", "-o", id])
        .output()
        .map_err(|e| format!("cannot run scontrol: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "scontrol show job {id} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The value of `key` in each line of `scontrol show job -o` output.
fn job_field<'a>(shown: &'a str, key: &str) -> Vec<&'a str> {
    let prefix = format!("{key}=");
    shown
        .lines()
        .filter_map(|line| {
            line.split_whitespace()
                .find_map(|pair| pair.strip_prefix(prefix.as_str()))
        })
        .collect()
}

/// A step declaring `resources(cpus = 2, memory = "100 MiB")` becomes jobs that Slurm gives 2
/// cpus and 100M each, as a job array (`train`, a foreach body) and as a job of its own
/// (`gather`); `--sbatch-arg-for train=…` reaches `train`'s jobs alone. A step declaring nothing
/// (`start`) gets Slurm's defaults.
fn a_step_s_resources_become_its_jobs_limits(dir: &Path) -> Result<(), String> {
    let location = datastore(dir, "hungry");
    let o = run_flow(
        "hungry",
        &location,
        &[
            "run",
            "--slurm",
            "--sbatch-arg=--comment=every-step",
            "--sbatch-arg-for",
            "train=--comment=train-only",
        ],
    )?;
    if o.code != 0 {
        return Err(format!("the run should complete\n{}", o.describe()));
    }
    let store = open_store(&location)?;
    let run = only_run(&store, "Hungry")?;
    let job_of = |step: &str| -> Result<String, String> {
        let meta = meta_of(&store, "Hungry", &run, step, "0")?;
        Ok(recorded_job(&meta)?.0)
    };
    let expect = |step: &str, key: &str, want: &str, shown: &str| -> Result<(), String> {
        let values = job_field(shown, key);
        if values.is_empty() || values.iter().any(|v| *v != want) {
            return Err(format!(
                "the jobs of {step} should have {key}={want}, scontrol says {values:?}:\n{shown}"
            ));
        }
        Ok(())
    };
    let train = show_job(&job_of("train")?)?;
    if train.lines().count() != 3 {
        return Err(format!("train should be one array of 3 elements:\n{train}"));
    }
    let gather = show_job(&job_of("gather")?)?;
    for (step, shown) in [("train", &train), ("gather", &gather)] {
        expect(step, "NumCPUs", "2", shown)?;
        expect(step, "MinMemoryNode", "100M", shown)?;
    }
    expect("train", "Comment", "train-only", &train)?;
    expect("gather", "Comment", "every-step", &gather)?;
    let start = show_job(&job_of("start")?)?;
    expect("start", "NumCPUs", "1", &start)?;
    expect("start", "Comment", "every-step", &start)?;
    if job_field(&start, "MinMemoryNode") == ["100M"] {
        return Err(format!("start asked no memory:\n{start}"));
    }
    Ok(())
}

/// `examples/schedules/squares.scrontab` as written: its `#SCRON` options (sbatch's) and its
/// line's command, split into the cron fields and the command's words.
fn scrontab_example() -> Result<(Vec<String>, Vec<String>), String> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/schedules/squares.scrontab");
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let options: Vec<String> = text
        .lines()
        .filter_map(|l| l.strip_prefix("#SCRON"))
        .map(|o| o.trim().to_owned())
        .collect();
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    let [line] = lines.as_slice() else {
        return Err(format!("expected one crontab line, found {lines:?}"));
    };
    if line.contains(['"', '\'', '\\', '$']) {
        return Err(format!(
            "the line needs a shell to read it; keep it plain words: {line}"
        ));
    }
    Ok((
        options,
        line.split_whitespace().map(str::to_owned).collect(),
    ))
}

/// The scrontab example is what a Slurm user would install: its `#SCRON` options are accepted by
/// this Slurm (`sbatch --test-only`), and its command, run as written with the binary and the
/// datastore swapped for this test's, completes a tagged run with every task a Slurm job. (The
/// local Slurm runs without `ScronParameters=enable` and has no `scrontab` command, so the cron
/// side itself is not exercised here; `tests/schedules.rs` checks the schedule's fields.)
fn the_scrontab_example_runs_on_slurm(dir: &Path) -> Result<(), String> {
    let (options, words) = scrontab_example()?;
    let test_only = Command::new("sbatch")
        .arg("--test-only")
        .args(&options)
        .arg("--wrap=true")
        .output()
        .map_err(|e| format!("cannot run sbatch: {e}"))?;
    if !test_only.status.success() {
        return Err(format!(
            "sbatch refuses the #SCRON options {options:?}: {}",
            String::from_utf8_lossy(&test_only.stderr)
        ));
    }
    let command = words
        .get(5..)
        .ok_or("no command after the five cron fields")?;
    let [_binary, datastore_flag, datastore, args @ ..] = command else {
        return Err(format!(
            "expected BINARY --datastore LOC ARGS…: {command:?}"
        ));
    };
    if datastore_flag != "--datastore" {
        return Err(format!(
            "expected BINARY --datastore LOC ARGS…: {command:?}"
        ));
    }
    let location = self::datastore(dir, "scrontab");
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let o = run_flow("squares", &location, &args)?;
    if o.code != 0 {
        return Err(format!(
            "the scrontab's command (datastore {datastore} swapped for {location}) failed\n{}",
            o.describe()
        ));
    }
    let store = open_store(&location)?;
    let run = only_run(&store, "Squares")?;
    let record = store.read_run("Squares", &run).map_err(|e| e.to_string())?;
    if !record.tags.iter().any(|t| t == "nightly") {
        return Err(format!(
            "the run should be tagged nightly: {:?}",
            record.tags
        ));
    }
    let meta = meta_of(&store, "Squares", &run, "start", "0")?;
    recorded_job(&meta)?;
    Ok(())
}

/// The six `work` tasks of a foreach go to Slurm as one job array: every task records the same
/// array job, as the element whose index is its position; the steps around the foreach are
/// jobs of their own. A task whose first attempt fails retries inside its element, with its
/// attempts numbered as in any run.
fn a_foreach_runs_as_one_job_array_with_retries_inside_elements(dir: &Path) -> Result<(), String> {
    let location = datastore(dir, "flaky-array");
    let mark = dir.join("array-retry-mark");
    let o = output_of(
        flow_command("flaky", &location, &["run", "--slurm"])?
            .env(RETRY_MARK_ENV, &mark)
            .output()
            .map_err(|e| e.to_string())?,
    );
    if o.code != 0 {
        return Err(format!("the run should complete\n{}", o.describe()));
    }
    let store = open_store(&location)?;
    let run = only_run(&store, "Flaky")?;
    let mut arrays = Vec::new();
    for task in 0..6 {
        let meta = meta_of(&store, "Flaky", &run, "work", &task.to_string())?;
        let (array, index) = recorded_job(&meta)?;
        if index != Some(task.to_string()) {
            return Err(format!(
                "task work/{task} should be element {task} of a job array, it records {:?}",
                meta.job
            ));
        }
        arrays.push(array);
    }
    arrays.dedup();
    if arrays.len() != 1 {
        return Err(format!(
            "the six work tasks ran in several jobs: {arrays:?}"
        ));
    }
    for step in ["start", "gather", "end"] {
        let meta = meta_of(&store, "Flaky", &run, step, "0")?;
        if recorded_job(&meta)?.1.is_some() {
            return Err(format!("{step} should be a job of its own: {:?}", meta.job));
        }
    }
    let retried = meta_of(&store, "Flaky", &run, "work", "4")?;
    let attempts: Vec<u32> = retried.attempts.iter().map(|a| a.attempt).collect();
    let failed_first = retried
        .attempts
        .first()
        .is_some_and(|a| a.failure.is_some());
    if attempts != [0, 1] || !failed_first || retried.failure().is_some() {
        return Err(format!(
            "task work/4 should fail its attempt 0 and complete on attempt 1: {:?}",
            retried.attempts
        ));
    }
    Ok(())
}

/// One element of a job array failing fails its task alone: the other elements complete and
/// the run says which task failed; `resume --slurm` reruns that task alone (the five others
/// are reused) and completes.
fn a_failing_element_fails_its_task_alone_and_resume_reruns_it(dir: &Path) -> Result<(), String> {
    let location = datastore(dir, "flaky-element");
    let fail = dir.join("element-fail");
    std::fs::write(&fail, b"").map_err(|e| e.to_string())?;
    let mark = dir.join("element-retry-mark");
    let first = output_of(
        flow_command("flaky", &location, &["run", "--slurm"])?
            .env(FAIL_FILE_ENV, &fail)
            .env(RETRY_MARK_ENV, &mark)
            .output()
            .map_err(|e| e.to_string())?,
    );
    if first.code != 1 || !first.err.contains("work/2") || !first.err.contains("x = 3 fails") {
        return Err(format!(
            "the run should fail on task work/2, saying why\n{}",
            first.describe()
        ));
    }
    let store = open_store(&location)?;
    let failed = only_run(&store, "Flaky")?;
    let failing = meta_of(&store, "Flaky", &failed, "work", "2")?;
    let (array, _) = recorded_job(&failing)?;
    for task in ["0", "1", "3", "4", "5"] {
        let key = RunStore::task_key("Flaky", &failed, "work", task).map_err(|e| e.to_string())?;
        if store.read_index(&key).map_err(|e| e.to_string())?.is_none() {
            return Err(format!(
                "task work/{task} should complete beside the failing one"
            ));
        }
        let meta = meta_of(&store, "Flaky", &failed, "work", task)?;
        if recorded_job(&meta)?.0 != array {
            return Err(format!(
                "task work/{task} ran as {:?}, not in the array of work/2 ({array})",
                meta.job
            ));
        }
    }
    std::fs::remove_file(&fail).map_err(|e| e.to_string())?;
    let resumed = run_flow("flaky", &location, &["resume", "--slurm"])?;
    if resumed.code != 0 {
        return Err(format!("resume should complete\n{}", resumed.describe()));
    }
    let mut runs = store.list_runs("Flaky").map_err(|e| e.to_string())?;
    runs.retain(|r| r.as_str() != failed);
    let [resumed_run] = runs.as_slice() else {
        return Err(format!("expected one resumed run, found {runs:?}"));
    };
    for task in 0..6 {
        let meta = meta_of(&store, "Flaky", resumed_run, "work", &task.to_string())?;
        let reused = meta
            .origin_run_id
            .as_ref()
            .is_some_and(|o| o.as_str() == failed);
        if reused == (task == 2) {
            return Err(format!(
                "only task work/2 should run again; work/{task} has origin {:?}",
                meta.origin_run_id
            ));
        }
    }
    Ok(())
}

/// With fewer workers than the foreach has tasks (`--max-workers 3` for six), the tasks in flight
/// go as one array and the later ones as further arrays or jobs of their own: the run
/// completes, and a task in an array is still the element whose index is its position.
fn a_foreach_throttled_by_max_workers_goes_in_several_submissions(
    dir: &Path,
) -> Result<(), String> {
    let location = datastore(dir, "flaky-throttled");
    let o = run_flow(
        "flaky",
        &location,
        &["run", "--slurm", "--max-workers", "3"],
    )?;
    if o.code != 0 {
        return Err(format!("the run should complete\n{}", o.describe()));
    }
    let store = open_store(&location)?;
    let run = only_run(&store, "Flaky")?;
    let mut submissions = Vec::new();
    for task in 0..6 {
        let meta = meta_of(&store, "Flaky", &run, "work", &task.to_string())?;
        let (job, index) = recorded_job(&meta)?;
        if index.as_ref().is_some_and(|i| *i != task.to_string()) {
            return Err(format!(
                "task work/{task} ran as element {index:?} of array {job}"
            ));
        }
        submissions.push(job);
    }
    submissions.sort();
    submissions.dedup();
    if submissions.len() < 2 {
        return Err(format!(
            "six tasks with three workers should take several submissions: {submissions:?}"
        ));
    }
    Ok(())
}

/// Waits until `marker` exists (a task says it runs), or the run ends, or two minutes pass.
fn wait_for(marker: &Path, run: &mut std::process::Child, what: &str) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(120);
    while !marker.exists() {
        let ended = run.try_wait().ok().flatten().is_some();
        if ended || Instant::now() > deadline {
            let _ = run.kill();
            let output = std::mem::replace(run, spawn_nothing()?)
                .wait_with_output()
                .map_err(|e| e.to_string())?;
            return Err(format!(
                "{what} never started\n{}",
                output_of(output).describe()
            ));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}

/// A finished child, to take the place of one whose output is read.
fn spawn_nothing() -> Result<std::process::Child, String> {
    Command::new("true")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| e.to_string())
}

/// Slurm's state of each of `jobs` (those it still knows).
fn job_states(jobs: &[String]) -> Result<Vec<(String, String)>, String> {
    let out = Command::new("squeue")
        .args(["--noheader", "--states=all", "--format=%i %T", "--jobs"])
        .arg(jobs.join(","))
        .output()
        .map_err(|e| format!("cannot run squeue: {e}"))?;
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let mut parts = l.split_whitespace();
            Some((parts.next()?.to_owned(), parts.next()?.to_owned()))
        })
        .collect())
}

/// The ids of the jobs of flow `flow` that Slurm runs or will run.
fn active_jobs_of(flow: &str) -> Result<Vec<String>, String> {
    let out = Command::new("squeue")
        .args(["--noheader", "--format=%i %j"])
        .output()
        .map_err(|e| format!("cannot run squeue: {e}"))?;
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let (id, name) = l.trim().split_once(' ')?;
            name.starts_with(&format!("{flow}.")).then(|| id.to_owned())
        })
        .collect())
}

fn scontrol(args: &[&str]) -> Result<(), String> {
    let out = Command::new("scontrol")
        .args(args)
        .output()
        .map_err(|e| format!("cannot run scontrol: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "scontrol {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// `scontrol requeue` of the job running a task does not fail the run: Slurm runs the job
/// again and the run completes with the results of a run nothing disturbed.
fn a_requeued_job_does_not_fail_the_run(dir: &Path) -> Result<(), String> {
    let plain = datastore(dir, "guarded-plain");
    let a = run_flow("guarded", &plain, &["run"])?;
    if a.code != 0 {
        return Err(format!("the plain run failed\n{}", a.describe()));
    }
    let location = datastore(dir, "guarded-requeue");
    let hang = dir.join("requeue-hang");
    std::fs::write(&hang, b"").map_err(|e| e.to_string())?;
    let mut run = flow_command("guarded", &location, &["run", "--slurm"])?
        .env(HANG_FILE_ENV, &hang)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| e.to_string())?;
    wait_for(
        &hang.with_extension("started"),
        &mut run,
        "the task for x = 3",
    )?;
    let job = job_of_task("Guarded.work", "2")?.ok_or("no Slurm job runs Guarded task work/2")?;
    // The task runs again when requeued, and then completes.
    std::fs::remove_file(&hang).map_err(|e| e.to_string())?;
    if let Err(e) = scontrol(&["requeue", &job]) {
        let _ = run.kill();
        let _ = Command::new("scancel").arg(&job).status();
        let output = output_of(run.wait_with_output().map_err(|e| e.to_string())?);
        return Err(format!("{e}\n{}", output.describe()));
    }
    // Slurm holds a requeued job back for two minutes; let it start at once.
    let deadline = Instant::now() + Duration::from_secs(60);
    while scontrol(&["update", &format!("JobId={job}"), "StartTime=now"]).is_err()
        && Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(200));
    }
    let b = output_of(run.wait_with_output().map_err(|e| e.to_string())?);
    if b.code != 0 {
        return Err(format!(
            "the requeued run should complete\n{}",
            b.describe()
        ));
    }
    let restarts = Command::new("squeue")
        .args([
            "--noheader",
            "--states=all",
            "--Format=RestartCnt",
            "--jobs",
            &job,
        ])
        .output()
        .map_err(|e| format!("cannot run squeue: {e}"))?;
    let restarts = String::from_utf8_lossy(&restarts.stdout).trim().to_owned();
    if restarts != "1" {
        return Err(format!(
            "job {job} should have run twice, restarts: {restarts:?}"
        ));
    }
    let (sa, sb) = (open_store(&plain)?, open_store(&location)?);
    let (ra, rb) = (only_run(&sa, "Guarded")?, only_run(&sb, "Guarded")?);
    let (aa, ab) = (
        artifacts_of(&sa, "Guarded", &ra)?,
        artifacts_of(&sb, "Guarded", &rb)?,
    );
    if aa.is_empty() || aa != ab {
        return Err(format!(
            "artifacts differ between the runs:\nplain: {aa:?}\nrequeued: {ab:?}"
        ));
    }
    Ok(())
}

/// SIGTERM to the coordinator of a Slurm run cancels its jobs, records the run failed with the
/// signal and exits non-zero; `resume --slurm` completes the run.
fn sigterm_cancels_the_runs_jobs(dir: &Path) -> Result<(), String> {
    let location = datastore(dir, "guarded-sigterm");
    let hang = dir.join("sigterm-hang");
    std::fs::write(&hang, b"").map_err(|e| e.to_string())?;
    let mut run = flow_command("guarded", &location, &["run", "--slurm"])?
        .env(HANG_FILE_ENV, &hang)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| e.to_string())?;
    wait_for(
        &hang.with_extension("started"),
        &mut run,
        "the task for x = 3",
    )?;
    let jobs = active_jobs_of("Guarded")?;
    if jobs.is_empty() {
        return Err("no job of the run is listed".into());
    }
    let status = Command::new("kill")
        .args(["-TERM", &run.id().to_string()])
        .status()
        .map_err(|e| e.to_string())?;
    if !status.success() {
        return Err("kill -TERM failed".into());
    }
    let first = output_of(run.wait_with_output().map_err(|e| e.to_string())?);
    let left: Vec<(String, String)> = job_states(&jobs)?
        .into_iter()
        .filter(|(_, state)| {
            !["COMPLETED", "CANCELLED", "FAILED", "TIMEOUT"].contains(&state.as_str())
        })
        .collect();
    for (job, _) in &left {
        let _ = Command::new("scancel").arg(job).status();
    }
    if first.code == 0 || !first.err.contains("interrupted by SIGTERM") || !left.is_empty() {
        return Err(format!(
            "the run should stop, saying it was interrupted by SIGTERM, and leave no job; \
             jobs left: {left:?}\n{}",
            first.describe()
        ));
    }
    let store = open_store(&location)?;
    let run_id = only_run(&store, "Guarded")?;
    let record = store
        .read_run("Guarded", &run_id)
        .map_err(|e| e.to_string())?;
    let failure = record.failure.clone().unwrap_or_default();
    if record.status != blooming_flowers::run::RunStatus::Failed
        || !failure.contains("interrupted by SIGTERM")
    {
        return Err(format!(
            "the run should be recorded failed by SIGTERM: {:?} {failure:?}",
            record.status
        ));
    }
    std::fs::remove_file(&hang).map_err(|e| e.to_string())?;
    let resumed = run_flow("guarded", &location, &["resume", "--slurm"])?;
    if resumed.code != 0 {
        return Err(format!("resume should complete\n{}", resumed.describe()));
    }
    Ok(())
}

/// A flow binary changed on disk after the run started fails the tasks that start from it
/// with a message saying so, instead of running other code.
fn a_binary_changed_mid_run_fails_the_task_clearly(dir: &Path) -> Result<(), String> {
    let bin = dir.join("changed-bin");
    std::fs::create_dir_all(&bin).map_err(|e| e.to_string())?;
    let exe = bin.join("guarded");
    let original = std::env::current_exe().map_err(|e| e.to_string())?;
    std::fs::copy(&original, &exe).map_err(|e| e.to_string())?;
    let location = datastore(dir, "guarded-changed");
    let wait = dir.join("changed-wait");
    std::fs::write(&wait, b"").map_err(|e| e.to_string())?;
    let mut run = Command::new(&exe)
        .env(AS_FLOW_ENV, "guarded")
        .env(START_WAIT_ENV, &wait)
        .args(["--datastore", &location, "run", "--slurm"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| e.to_string())?;
    wait_for(&wait.with_extension("started"), &mut run, "the start task")?;
    // Another build of the same program: it runs the same, but it is not the same binary.
    let mut bytes = std::fs::read(&original).map_err(|e| e.to_string())?;
    bytes.extend_from_slice(b"rebuilt");
    let new = bin.join("guarded.new");
    std::fs::write(&new, &bytes).map_err(|e| e.to_string())?;
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&new, std::fs::Permissions::from_mode(0o755))
            .map_err(|e| e.to_string())?;
    }
    std::fs::rename(&new, &exe).map_err(|e| e.to_string())?;
    std::fs::remove_file(&wait).map_err(|e| e.to_string())?;
    let o = output_of(run.wait_with_output().map_err(|e| e.to_string())?);
    if o.code == 0
        || !o
            .err
            .contains("the flow binary changed since the run started")
    {
        return Err(format!(
            "the tasks started after the change should fail, saying the binary changed\n{}",
            o.describe()
        ));
    }
    Ok(())
}

/// With no `--slurm-log-dir`, jobs write their output in a directory of the run's own, readable
/// by its user alone, not in a fixed directory of the shared temporary directory (where anyone
/// can plant a symlink).
fn the_default_log_dir_is_private_to_the_run(dir: &Path) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt as _;
    let tmp = dir.join("logdir-tmp");
    let planted = dir.join("logdir-planted");
    let cache = dir.join("logdir-cache");
    for d in [&tmp, &planted, &cache] {
        std::fs::create_dir_all(d).map_err(|e| e.to_string())?;
    }
    std::os::unix::fs::symlink(&planted, tmp.join("slurm-logs")).map_err(|e| e.to_string())?;
    let location = datastore(dir, "guarded-logdir");
    let hang = dir.join("logdir-hang");
    std::fs::write(&hang, b"").map_err(|e| e.to_string())?;
    let mut run = flow_command("guarded", &location, &["run", "--slurm"])?
        .env(HANG_FILE_ENV, &hang)
        .env("TMPDIR", &tmp)
        .env("XDG_CACHE_HOME", &cache)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| e.to_string())?;
    wait_for(
        &hang.with_extension("started"),
        &mut run,
        "the task for x = 3",
    )?;
    let job = job_of_task("Guarded.work", "2")?.ok_or("no Slurm job runs Guarded task work/2")?;
    let base = match DatastoreLocation::parse(&location).map_err(|e| e.to_string())? {
        DatastoreLocation::Local(root) => root.join("slurm-logs"),
        _ => cache.join("blooming").join("slurm-logs"),
    };
    let found: Vec<PathBuf> = std::fs::read_dir(&base)
        .map(|entries| entries.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    let planted_files = std::fs::read_dir(&planted)
        .map(|entries| entries.count())
        .unwrap_or_default();
    if let Err(e) = cancel_until_ended(&job) {
        let _ = run.kill();
        return Err(e);
    }
    let o = output_of(run.wait_with_output().map_err(|e| e.to_string())?);
    let [log_dir] = found.as_slice() else {
        return Err(format!(
            "expected one log directory in {}, found {found:?}; {planted_files} files were \
             written through the planted symlink\n{}",
            base.display(),
            o.describe()
        ));
    };
    let mode = std::fs::symlink_metadata(log_dir)
        .map_err(|e| e.to_string())?
        .permissions()
        .mode();
    let has_job_output = log_dir.join(format!("{job}.out")).exists();
    if planted_files != 0 || mode & 0o777 != 0o700 || !has_job_output {
        return Err(format!(
            "{}: mode {:o}, job output there: {has_job_output}; files written through the \
             planted symlink: {planted_files}",
            log_dir.display(),
            mode & 0o777
        ));
    }
    if !o.err.contains(&log_dir.display().to_string()) {
        return Err(format!(
            "the failed run should say where its jobs' output is\n{}",
            o.describe()
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
            Some("guarded") => blooming_flowers::main::<Guarded>(),
            Some("flaky") => blooming_flowers::main::<Flaky>(),
            Some("hungry") => blooming_flowers::main::<Hungry>(),
            Some("looping") => blooming_flowers::main::<flows::Looping>(),
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
    // Failed runs keep their jobs' output (in a directory of their own under the cache
    // directory): under this test's directory, not the user's.
    // SAFETY: no other thread runs yet; the runs started later inherit the variable.
    unsafe { std::env::set_var("XDG_CACHE_HOME", dir.path().join("cache")) };
    let tests: [(&str, Check<'_>); 12] = [
        (
            "loops_on_slurm_equal_in_process",
            Box::new(|| loops_on_slurm_equal_in_process(dir.path())),
        ),
        (
            "the_scrontab_example_runs_on_slurm",
            Box::new(|| the_scrontab_example_runs_on_slurm(dir.path())),
        ),
        (
            "a_step_s_resources_become_its_jobs_limits",
            Box::new(|| a_step_s_resources_become_its_jobs_limits(dir.path())),
        ),
        (
            "a_foreach_throttled_by_max_workers_goes_in_several_submissions",
            Box::new(|| a_foreach_throttled_by_max_workers_goes_in_several_submissions(dir.path())),
        ),
        (
            "a_foreach_runs_as_one_job_array_with_retries_inside_elements",
            Box::new(|| a_foreach_runs_as_one_job_array_with_retries_inside_elements(dir.path())),
        ),
        (
            "a_failing_element_fails_its_task_alone_and_resume_reruns_it",
            Box::new(|| a_failing_element_fails_its_task_alone_and_resume_reruns_it(dir.path())),
        ),
        (
            "squares_on_slurm_equals_in_process",
            Box::new(|| squares_on_slurm_equals_in_process(dir.path())),
        ),
        (
            "cancelled_job_then_resume",
            Box::new(|| cancelled_job_then_resume(dir.path())),
        ),
        (
            "a_requeued_job_does_not_fail_the_run",
            Box::new(|| a_requeued_job_does_not_fail_the_run(dir.path())),
        ),
        (
            "sigterm_cancels_the_runs_jobs",
            Box::new(|| sigterm_cancels_the_runs_jobs(dir.path())),
        ),
        (
            "a_binary_changed_mid_run_fails_the_task_clearly",
            Box::new(|| a_binary_changed_mid_run_fails_the_task_clearly(dir.path())),
        ),
        (
            "the_default_log_dir_is_private_to_the_run",
            Box::new(|| the_default_log_dir_is_private_to_the_run(dir.path())),
        ),
    ];
    // `cargo test --test NAME -- WORD` runs the checks whose names contain WORD.
    let filter: Vec<String> = args
        .iter()
        .skip(1)
        .filter_map(|a| a.to_str())
        .filter(|a| !a.starts_with('-'))
        .map(str::to_owned)
        .collect();
    let tests: Vec<_> = tests
        .into_iter()
        .filter(|(name, _)| filter.is_empty() || filter.iter().any(|f| name.contains(f.as_str())))
        .collect();
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
