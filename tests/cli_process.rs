//! `run --process` and `resume --process`: every task in a child process running this binary's
//! `step` command. The test binary is its own flow binary: started with `--datastore`, as the
//! executor starts each task, it is the flow's command line; started by `cargo test`, it runs the
//! checks below (this target has `harness = false`).

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{ExitCode, Stdio};
use std::time::{Duration, Instant};

use blooming_flowers::cli::{EXIT_FAILURE, EXIT_OK, run_cli_with};
use blooming_flowers::prelude::*;

/// Set, this binary is the flow's binary whatever its arguments.
const AS_FLOW_ENV: &str = "CLI_PROCESS_AS_FLOW";

/// Names a file whose existence makes `sq` fail for x = 3; children inherit it.
const FAIL_FILE_ENV: &str = "CLI_PROCESS_FAIL_FILE";

/// Names a file whose existence makes `start` write `<file>.started` (holding its process id)
/// and wait until the file is removed.
const WAIT_FILE_ENV: &str = "CLI_PROCESS_WAIT_FILE";

/// Names a file whose existence makes `sq` for x = 1 print [`LOUD_BYTES`] to stdout.
const LOUD_FILE_ENV: &str = "CLI_PROCESS_LOUD_FILE";

/// What a loud task prints between its first and last lines.
const LOUD_BYTES: usize = 100 << 20;

#[derive(Clone, Default, Serialize, Deserialize)]
struct Proc {
    xs: Vec<u64>,
    square: u64,
    total: u64,
    pid: u32,
}

#[flow]
impl Proc {
    #[step(foreach = xs, next = sq)]
    fn start(&mut self) {
        if let Some(wait) = std::env::var_os(WAIT_FILE_ENV).map(PathBuf::from)
            && wait.exists()
        {
            let _ = std::fs::write(
                wait.with_extension("started"),
                std::process::id().to_string(),
            );
            let deadline = Instant::now() + Duration::from_secs(600);
            while wait.exists() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        self.xs = vec![1, 2, 3, 4];
    }

    #[step(next = gather)]
    fn sq(&mut self, x: u64) -> Result<(), String> {
        if x == 1 && std::env::var_os(LOUD_FILE_ENV).is_some_and(|f| Path::new(&f).exists()) {
            use std::io::Write as _;
            let mut out = std::io::stdout().lock();
            let line = [b"x".repeat(1023), b"\n".to_vec()].concat();
            let _ = out.write_all(b"loud start\n");
            for _ in 0..LOUD_BYTES / line.len() {
                let _ = out.write_all(&line);
            }
            let _ = out.write_all(b"loud end\n");
        }
        println!("squaring {x}");
        eprintln!("a note on stderr about {x}");
        self.pid = std::process::id();
        let fail = std::env::var_os(FAIL_FILE_ENV).is_some_and(|f| Path::new(&f).exists());
        if x == 3 && fail {
            return Err(format!("cannot square {x} in process {}", self.pid));
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

struct Output {
    code: u8,
    out: String,
    err: String,
}

fn cli(datastore: &Path, args: &[&str]) -> Output {
    let mut argv: Vec<OsString> = vec!["proc".into(), "--datastore".into(), datastore.into()];
    argv.extend(args.iter().map(OsString::from));
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let code = run_cli_with::<Proc, _, _>(argv, &mut out, &mut err);
    Output {
        code,
        out: String::from_utf8_lossy(&out).into_owned(),
        err: String::from_utf8_lossy(&err).into_owned(),
    }
}

fn check(ok: bool, what: &str, o: &Output) -> Result<(), String> {
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{what}\nexit {}\n--- stdout\n{}--- stderr\n{}",
            o.code, o.out, o.err
        ))
    }
}

fn run_id_in(text: &str) -> String {
    text.split_whitespace()
        .skip_while(|w| *w != "Run")
        .nth(1)
        .unwrap_or_default()
        .to_owned()
}

/// A run fails in a child process, its logs hold the child's output, and a resume in process mode
/// finishes it.
fn process_mode_runs_fails_and_resumes(dir: &Path, fail_file: &Path) -> Result<(), String> {
    std::fs::write(fail_file, b"").map_err(|e| e.to_string())?;
    let o = cli(dir, &["run", "--process", "--max-workers", "2"]);
    check(o.code == EXIT_FAILURE, "the run should fail", &o)?;
    check(
        o.err.contains("Task sq/2 failed") && o.err.contains("cannot square 3"),
        "the failure is printed",
        &o,
    )?;
    let failed = run_id_in(&o.err);

    let o = cli(dir, &["logs", &format!("{failed}/sq/2")]);
    check(o.code == EXIT_OK, "logs", &o)?;
    check(
        o.out.contains("── stdout ──") && o.out.contains("squaring 3"),
        "the child's stdout is kept",
        &o,
    )?;
    check(
        o.out.contains("a note on stderr about 3"),
        "the child's stderr is kept",
        &o,
    )?;

    let o = cli(
        dir,
        &[
            "dump",
            &format!("{failed}/sq/1"),
            "--artifact",
            "pid",
            "--json",
        ],
    );
    check(o.code == EXIT_OK, "dump pid", &o)?;
    let pid: u32 = o
        .out
        .trim()
        .parse()
        .map_err(|e| format!("pid: {e}: {}", o.out))?;
    check(
        pid != std::process::id(),
        "the task ran in another process",
        &o,
    )?;

    std::fs::remove_file(fail_file).map_err(|e| e.to_string())?;
    let o = cli(dir, &["resume", "--process"]);
    check(o.code == EXIT_OK, "the resume should succeed", &o)?;
    check(
        o.out.contains(&format!("reused from run {failed}")),
        "tasks were reused",
        &o,
    )?;
    let resumed = run_id_in(&o.out);
    let o = cli(
        dir,
        &[
            "dump",
            &format!("{resumed}/end"),
            "--artifact",
            "total",
            "--json",
        ],
    );
    check(o.out.trim() == "30", "the resumed run's total", &o)
}

/// `step` on its own: an unknown run is exit 2, a task without a spec exit 1.
fn step_command_checks_its_input(dir: &Path) -> Result<(), String> {
    let o = cli(
        dir,
        &[
            "step",
            "sq",
            "--run-id",
            "20260101T000000000Z-00000000",
            "--task-id",
            "0",
        ],
    );
    check(o.code == 2, "unknown run", &o)?;
    let o = cli(dir, &["runs", "--json"]);
    let runs: serde_json::Value = serde_json::from_str(&o.out).map_err(|e| e.to_string())?;
    let run = runs[0]["run_id"].as_str().unwrap_or_default().to_owned();
    let o = cli(dir, &["step", "sq", "--run-id", &run, "--task-id", "77"]);
    check(
        o.code == EXIT_FAILURE && o.err.contains("no task sq/77"),
        "a task that was never planned",
        &o,
    )
}

/// This binary as the flow's binary in a child process, with `datastore` in the environment
/// (`None`: unset) and `dir` as its working directory.
fn child(dir: &Path, datastore: Option<&Path>, args: &[&str]) -> Result<Output, String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let mut command = std::process::Command::new(exe);
    command.args(args).current_dir(dir).env(AS_FLOW_ENV, "1");
    match datastore {
        Some(path) => command.env("BLOOMING_DATASTORE", path),
        None => command.env_remove("BLOOMING_DATASTORE"),
    };
    let output = command.output().map_err(|e| e.to_string())?;
    Ok(Output {
        code: output
            .status
            .code()
            .and_then(|c| u8::try_from(c).ok())
            .unwrap_or(255),
        out: String::from_utf8_lossy(&output.stdout).into_owned(),
        err: String::from_utf8_lossy(&output.stderr).into_owned(),
    })
}

/// The datastore comes from `--datastore`, else `BLOOMING_DATASTORE` (an empty one is unset),
/// else `.blooming` in the working directory; exit codes reach the shell.
fn datastore_is_found_and_exit_codes_reach_the_shell(dir: &Path) -> Result<(), String> {
    let work = dir.join("work");
    std::fs::create_dir_all(&work).map_err(|e| e.to_string())?;

    let o = child(&work, None, &["run"])?;
    check(o.code == EXIT_OK, "run in the working directory", &o)?;
    check(
        work.join(".blooming").is_dir(),
        "the default datastore is ./.blooming",
        &o,
    )?;
    check(
        !o.out.contains("--datastore"),
        "no --datastore in the suggestion",
        &o,
    )?;

    let from_env = dir.join("from-env");
    let o = child(&work, Some(&from_env), &["run"])?;
    check(
        o.code == EXIT_OK && from_env.is_dir(),
        "BLOOMING_DATASTORE is used",
        &o,
    )?;
    let o = child(&work, Some(&from_env), &["runs", "--json"])?;
    let runs: serde_json::Value = serde_json::from_str(&o.out).map_err(|e| e.to_string())?;
    check(
        runs.as_array().map(Vec::len) == Some(1),
        "one run in the env datastore",
        &o,
    )?;

    let flag = dir.join("flag");
    let o = child(
        &work,
        Some(&from_env),
        &["--datastore", &flag.display().to_string(), "run"],
    )?;
    check(
        o.code == EXIT_OK && flag.is_dir(),
        "the flag wins over the variable",
        &o,
    )?;
    check(
        o.out.contains("--datastore"),
        "the flag is repeated in the suggestion",
        &o,
    )?;

    let o = child(&work, Some(Path::new("")), &["runs", "--json"])?;
    check(
        o.code == EXIT_OK && o.out.trim() != "[]",
        "an empty variable is unset",
        &o,
    )?;

    let o = child(&work, None, &["dump", "../x"])?;
    check(o.code == 2, "bad input is exit 2", &o)?;
    let o = child(&work, None, &["dump", "latest", "--bogus"])?;
    check(o.code == 2, "a clap error is exit 2", &o)?;
    let o = child(&work, None, &[])?;
    check(
        o.code == 2 && o.err.contains("Usage:"),
        "no command prints the help, exit 2",
        &o,
    )
}

/// This binary, or `exe`, as the flow's binary in a child process started in the background,
/// with `datastore` given by flag, the wait file set and stdout and stderr piped.
fn spawn_flow(
    exe: Option<&Path>,
    datastore: &Path,
    wait: &Path,
    args: &[&str],
) -> Result<std::process::Child, String> {
    let exe = match exe {
        Some(exe) => exe.to_path_buf(),
        None => std::env::current_exe().map_err(|e| e.to_string())?,
    };
    std::process::Command::new(exe)
        .arg("--datastore")
        .arg(datastore)
        .args(args)
        .env(AS_FLOW_ENV, "1")
        .env(WAIT_FILE_ENV, wait)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| e.to_string())
}

/// Waits until `start` says it runs (its `.started` file), returning the process id it wrote.
fn wait_started(wait: &Path, run: &mut std::process::Child) -> Result<u32, String> {
    let started = wait.with_extension("started");
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if let Ok(text) = std::fs::read_to_string(&started)
            && let Ok(pid) = text.trim().parse::<u32>()
        {
            return Ok(pid);
        }
        if Instant::now() > deadline || run.try_wait().ok().flatten().is_some() {
            let _ = run.kill();
            let output = run_output(run);
            return Err(format!("the start task never started\n{output}"));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn run_output(run: &mut std::process::Child) -> String {
    use std::io::Read as _;
    let (mut out, mut err) = (String::new(), String::new());
    if let Some(mut pipe) = run.stdout.take() {
        let _ = pipe.read_to_string(&mut out);
    }
    if let Some(mut pipe) = run.stderr.take() {
        let _ = pipe.read_to_string(&mut err);
    }
    format!("--- stdout\n{out}--- stderr\n{err}")
}

fn finish(run: std::process::Child) -> Result<Output, String> {
    let output = run.wait_with_output().map_err(|e| e.to_string())?;
    Ok(Output {
        code: output
            .status
            .code()
            .and_then(|c| u8::try_from(c).ok())
            .unwrap_or(255),
        out: String::from_utf8_lossy(&output.stdout).into_owned(),
        err: String::from_utf8_lossy(&output.stderr).into_owned(),
    })
}

fn send_sigterm(pid: u32) -> Result<(), String> {
    let status = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .map_err(|e| e.to_string())?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("kill -TERM {pid} failed"))
    }
}

/// The run records of `datastore`, oldest first.
fn runs_of(datastore: &Path) -> Result<Vec<serde_json::Value>, String> {
    let o = cli(datastore, &["runs", "--json"]);
    let mut runs: Vec<serde_json::Value> =
        serde_json::from_str(&o.out).map_err(|e| format!("{e}: {}", o.out))?;
    runs.sort_by_key(|r| r["run_id"].as_str().unwrap_or_default().to_owned());
    Ok(runs)
}

fn total_of(datastore: &Path, run: &str) -> String {
    cli(
        datastore,
        &[
            "dump",
            &format!("{run}/end"),
            "--artifact",
            "total",
            "--json",
        ],
    )
    .out
    .trim()
    .to_owned()
}

/// SIGTERM to the coordinator of a run (`extra` selects the mode) while its `start` task runs:
/// it exits non-zero, the run is recorded failed with the signal, and `resume` (same mode)
/// completes it. Returns the process id the task reported, for mode-specific checks.
fn sigterm_then_resume(dir: &Path, name: &str, extra: &[&str]) -> Result<(u32, u32), String> {
    let store = dir.join(name);
    let wait = dir.join(format!("{name}.wait"));
    std::fs::write(&wait, b"").map_err(|e| e.to_string())?;
    let mut args = vec!["run"];
    args.extend_from_slice(extra);
    let mut run = spawn_flow(None, &store, &wait, &args)?;
    let task_pid = wait_started(&wait, &mut run)?;
    let coordinator = run.id();
    send_sigterm(coordinator)?;
    let o = finish(run)?;
    check(o.code != EXIT_OK, "the interrupted run exits non-zero", &o)?;
    check(
        o.err.contains("interrupted by SIGTERM"),
        "the run says it was interrupted by SIGTERM",
        &o,
    )?;
    let runs = runs_of(&store)?;
    let record = runs.first().cloned().unwrap_or_default();
    check(
        runs.len() == 1
            && record["status"] == "failed"
            && record["failure"]
                .as_str()
                .is_some_and(|f| f.contains("interrupted by SIGTERM")),
        &format!("the run is recorded failed by SIGTERM: {record}"),
        &o,
    )?;
    std::fs::remove_file(&wait).map_err(|e| e.to_string())?;
    let mut args = vec!["resume"];
    args.extend_from_slice(extra);
    let o = cli(&store, &args);
    check(o.code == EXIT_OK, "the resume completes the run", &o)?;
    let resumed = run_id_in(&o.out);
    let total = total_of(&store, &resumed);
    check(
        total == "30",
        &format!("the resumed run's total is {total}"),
        &o,
    )?;
    Ok((coordinator, task_pid))
}

/// Process mode: SIGTERM kills the task's child process and fails the run.
fn sigterm_fails_a_process_mode_run_and_kills_its_children(dir: &Path) -> Result<(), String> {
    let (coordinator, child) = sigterm_then_resume(dir, "sigterm-process", &["--process"])?;
    if child == coordinator {
        return Err("the task should have run in a child process".into());
    }
    if Path::new(&format!("/proc/{child}")).exists() {
        return Err(format!(
            "the task's process {child} outlived its coordinator"
        ));
    }
    Ok(())
}

/// In-process: SIGTERM fails the run, abandoning the task that runs on.
fn sigterm_fails_an_in_process_run(dir: &Path) -> Result<(), String> {
    let (coordinator, task) = sigterm_then_resume(dir, "sigterm-threads", &[])?;
    if task != coordinator {
        return Err("the task should have run in the coordinator".into());
    }
    Ok(())
}

/// Process mode: a binary replaced while a run goes on (as `cargo build` does) is not what
/// later tasks run: they run the binary the run started with.
fn a_binary_replaced_mid_run_is_not_used_by_later_tasks(dir: &Path) -> Result<(), String> {
    let bin = dir.join("replaced-bin");
    std::fs::create_dir_all(&bin).map_err(|e| e.to_string())?;
    let exe = bin.join("proc");
    std::fs::copy(std::env::current_exe().map_err(|e| e.to_string())?, &exe)
        .map_err(|e| e.to_string())?;
    let store = dir.join("replaced");
    let wait = dir.join("replaced.wait");
    std::fs::write(&wait, b"").map_err(|e| e.to_string())?;
    let mut run = spawn_flow(Some(&exe), &store, &wait, &["run", "--process"])?;
    wait_started(&wait, &mut run)?;
    // The new binary leaves a trace and fails; replaced by a rename, as a build does.
    let ran = dir.join("new-binary-ran");
    let script = bin.join("proc.new");
    std::fs::write(
        &script,
        format!("#!/bin/sh\ntouch '{}'\nexit 3\n", ran.display()),
    )
    .map_err(|e| e.to_string())?;
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755))
            .map_err(|e| e.to_string())?;
    }
    std::fs::rename(&script, &exe).map_err(|e| e.to_string())?;
    std::fs::remove_file(&wait).map_err(|e| e.to_string())?;
    let o = finish(run)?;
    check(
        o.code == EXIT_OK,
        "the run completes with the old binary",
        &o,
    )?;
    check(!ran.exists(), "the new binary never ran", &o)?;
    let run = run_id_in(&o.out);
    let total = total_of(&store, &run);
    check(total == "30", &format!("the run's total is {total}"), &o)
}

/// Process mode: a task printing 100 MiB keeps its first and last 16 MiB, with a marker saying
/// how much was left out, and the run succeeds.
fn a_step_printing_100_mib_is_stored_bounded(dir: &Path, loud_file: &Path) -> Result<(), String> {
    let store = dir.join("loud-store");
    std::fs::write(loud_file, b"").map_err(|e| e.to_string())?;
    let o = cli(&store, &["run", "--process", "--max-workers", "2"]);
    std::fs::remove_file(loud_file).map_err(|e| e.to_string())?;
    check(o.code == EXIT_OK, "the loud run succeeds", &o)?;
    let run = run_id_in(&o.out);
    let log = store.join(format!("flows/Proc/runs/{run}/steps/sq/0/stdout.log"));
    let stored = std::fs::read(&log).map_err(|e| format!("{}: {e}", log.display()))?;
    let keep = 16 << 20;
    let printed =
        "loud start\n".len() + LOUD_BYTES / 1024 * 1024 + "loud end\n".len() + "squaring 1\n".len();
    let marker = format!("[{} bytes left out", printed - 2 * keep);
    let text = String::from_utf8_lossy(&stored);
    if stored.len() > 2 * keep + 1024
        || !stored.starts_with(b"loud start\n")
        || !stored.ends_with(b"loud end\nsquaring 1\n")
        || !text.contains(&marker)
    {
        return Err(format!(
            "the stored stdout should be the first and last 16 MiB of {printed} bytes with \
             `{marker}` between them: {} bytes, starting {:?}, ending {:?}",
            stored.len(),
            String::from_utf8_lossy(&stored[..stored.len().min(40)]),
            String::from_utf8_lossy(&stored[stored.len().saturating_sub(40)..]),
        ));
    }
    Ok(())
}

/// One check of `main`'s list.
type Check<'a> = Box<dyn Fn() -> Result<(), String> + 'a>;

fn main() -> ExitCode {
    let args: Vec<OsString> = std::env::args_os().collect();
    if args.get(1).is_some_and(|a| a == "--datastore") || std::env::var_os(AS_FLOW_ENV).is_some() {
        // Started by the executor for one task, or by a check below.
        return blooming_flowers::main::<Proc>();
    }
    let dir = match tempfile::tempdir() {
        Ok(d) => d,
        Err(e) => {
            eprintln!("cannot make a temporary directory: {e}");
            return ExitCode::FAILURE;
        }
    };
    let fail_file: PathBuf = dir.path().join("fail");
    let loud_file: PathBuf = dir.path().join("loud");
    // SAFETY: no other thread runs yet; the children started later inherit the variables.
    unsafe {
        std::env::set_var(FAIL_FILE_ENV, &fail_file);
        std::env::set_var(LOUD_FILE_ENV, &loud_file);
    }
    let store = dir.path().join("store");
    let tests: [(&str, Check<'_>); 7] = [
        (
            "process_mode_runs_fails_and_resumes",
            Box::new(|| process_mode_runs_fails_and_resumes(&store, &fail_file)),
        ),
        (
            "step_command_checks_its_input",
            Box::new(|| step_command_checks_its_input(&store)),
        ),
        (
            "datastore_is_found_and_exit_codes_reach_the_shell",
            Box::new(|| datastore_is_found_and_exit_codes_reach_the_shell(dir.path())),
        ),
        (
            "sigterm_fails_a_process_mode_run_and_kills_its_children",
            Box::new(|| sigterm_fails_a_process_mode_run_and_kills_its_children(dir.path())),
        ),
        (
            "sigterm_fails_an_in_process_run",
            Box::new(|| sigterm_fails_an_in_process_run(dir.path())),
        ),
        (
            "a_binary_replaced_mid_run_is_not_used_by_later_tasks",
            Box::new(|| a_binary_replaced_mid_run_is_not_used_by_later_tasks(dir.path())),
        ),
        (
            "a_step_printing_100_mib_is_stored_bounded",
            Box::new(|| a_step_printing_100_mib_is_stored_bounded(dir.path(), &loud_file)),
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
