//! `run --process` and `resume --process`: every task in a child process running this binary's
//! `step` command. The test binary is its own flow binary: started with `--datastore`, as the
//! executor starts each task, it is the flow's command line; started by `cargo test`, it runs the
//! checks below (this target has `harness = false`).

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use blooming_flowers::cli::{EXIT_FAILURE, EXIT_OK, run_cli_with};
use blooming_flowers::prelude::*;

/// Set, this binary is the flow's binary whatever its arguments.
const AS_FLOW_ENV: &str = "CLI_PROCESS_AS_FLOW";

/// Names a file whose existence makes `sq` fail for x = 3; children inherit it.
const FAIL_FILE_ENV: &str = "CLI_PROCESS_FAIL_FILE";

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
        self.xs = vec![1, 2, 3, 4];
    }

    #[step(next = gather)]
    fn sq(&mut self, x: u64) -> Result<(), String> {
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
    // SAFETY: no other thread runs yet; the children started later inherit the variable.
    unsafe { std::env::set_var(FAIL_FILE_ENV, &fail_file) };
    let store = dir.path().join("store");
    let tests: [(&str, Check<'_>); 3] = [
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
