//! A local run shares `--max-workers` cpus among its tasks by their steps' `resources(cpus = N)`:
//! a step asking the whole budget, or more, runs one task at a time, in-process and with
//! `--process`, and a step asking more than the budget is warned about once.
//!
//! The test binary is its own flow binary (this target has `harness = false`): started with
//! `--datastore`, it is the flow's command line; started by `cargo test`, it runs the checks.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::Duration;

use blooming_flowers::prelude::*;

/// The directory where `work` tasks mark themselves running (`running`) and record an overlap
/// (`overlap`); children inherit it.
const MARK_DIR_ENV: &str = "CPU_BUDGET_MARK_DIR";

#[derive(Clone, Default, Serialize, Deserialize)]
struct Wide {
    xs: Vec<u64>,
    square: u64,
    total: u64,
}

#[flow]
impl Wide {
    #[step(foreach = xs, next = work)]
    fn start(&mut self) {
        self.xs = (1..=6).collect();
    }

    /// Claims `running` for as long as it runs; finding it claimed means another task runs at
    /// the same time, which is recorded in `overlap`.
    #[step(next = gather, resources(cpus = 4))]
    fn work(&mut self, x: u64) -> Result<(), String> {
        let dir = std::env::var_os(MARK_DIR_ENV)
            .map(PathBuf::from)
            .ok_or("no mark directory")?;
        let running = dir.join("running");
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&running)
        {
            Ok(_) => {
                // Not a synchronisation: it widens the window in which a task started at the
                // same time would find `running` claimed.
                std::thread::sleep(Duration::from_millis(50));
                std::fs::remove_file(&running).map_err(|e| e.to_string())?;
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                std::fs::write(dir.join("overlap"), x.to_string()).map_err(|e| e.to_string())?;
            }
            Err(e) => return Err(e.to_string()),
        }
        self.square = x * x;
        Ok(())
    }

    #[step(join, next = end)]
    fn gather(&mut self, inputs: Inputs<Self>) {
        self.total = inputs.iter().map(|i| i.square).sum();
    }

    #[step]
    fn end(&mut self) {}
}

/// The warning of a run with `budget` cpus.
fn warning(budget: usize) -> String {
    format!(
        "step work asks for 4 cpus but this run has {budget} (--max-workers); its tasks run \
         alone, on {budget}"
    )
}

/// Runs the flow in a child process with `args` after `run`; its stderr when it succeeded
/// without any two `work` tasks overlapping.
fn run_alone(dir: &Path, name: &str, args: &[&str]) -> Result<String, String> {
    let store = dir.join(name).join("store");
    let marks = dir.join(name).join("marks");
    std::fs::create_dir_all(&marks).map_err(|e| e.to_string())?;
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let output = Command::new(exe)
        .arg("--datastore")
        .arg(&store)
        .arg("run")
        .args(args)
        .env(MARK_DIR_ENV, &marks)
        .output()
        .map_err(|e| e.to_string())?;
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    if !output.status.success() {
        return Err(format!("{name}: the run failed\n{stderr}"));
    }
    if let Ok(x) = std::fs::read_to_string(marks.join("overlap")) {
        return Err(format!(
            "{name}: work for x = {x} ran while another work task did\n{stderr}"
        ));
    }
    Ok(stderr)
}

/// Four cpus, and each `work` task takes four: one at a time, without a warning.
fn a_step_asking_the_whole_budget_runs_one_task_at_a_time(dir: &Path) -> Result<(), String> {
    for (name, args) in [
        ("in-process", &["--max-workers", "4"][..]),
        ("process", &["--max-workers", "4", "--process"][..]),
    ] {
        let stderr = run_alone(dir, name, args)?;
        if stderr.contains("asks for 4 cpus") {
            return Err(format!(
                "{name}: a step within the budget is warned about\n{stderr}"
            ));
        }
    }
    Ok(())
}

/// Two cpus, and each `work` task asks four: they take the whole budget, one at a time, and
/// the run says so once (not once per task).
fn a_step_asking_more_than_the_budget_runs_alone_with_one_warning(
    dir: &Path,
) -> Result<(), String> {
    let stderr = run_alone(dir, "too-wide", &["--max-workers", "2"])?;
    let warnings = stderr.matches(&warning(2)).count();
    if warnings != 1 {
        return Err(format!(
            "expected the warning {:?} once, found it {warnings} times\n{stderr}",
            warning(2)
        ));
    }
    Ok(())
}

type Check<'a> = Box<dyn Fn() -> Result<(), String> + 'a>;

fn main() -> ExitCode {
    let args: Vec<OsString> = std::env::args_os().collect();
    if args.get(1).is_some_and(|a| a == "--datastore") {
        return blooming_flowers::main::<Wide>();
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
            "a_step_asking_the_whole_budget_runs_one_task_at_a_time",
            Box::new(|| a_step_asking_the_whole_budget_runs_one_task_at_a_time(dir.path())),
        ),
        (
            "a_step_asking_more_than_the_budget_runs_alone_with_one_warning",
            Box::new(|| a_step_asking_more_than_the_budget_runs_alone_with_one_warning(dir.path())),
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
