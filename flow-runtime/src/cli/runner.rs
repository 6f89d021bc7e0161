//! `run`, `resume` and `step`: the commands that execute tasks.

use clap::{Arg, ArgAction, ArgMatches, Command, value_parser};
use std::path::{Path, PathBuf};

use super::error::CliError;
use super::{Ctx, tag_arg};
use crate::datastore::validate_segment;
use crate::executor::{self, Mode, RunError, RunOptions, RunSummary, SlurmOptions};
use crate::flow::{Flow, initial};
use crate::run::{RunStatus, RunStore};

/// `run`, with the flow's parameters.
pub(crate) fn run_command<F: Flow>() -> Command {
    F::__params_command(run_command_without_params())
}

/// `run` with only its own options: what the flow's parameters must not clash with.
pub(crate) fn run_command_without_params() -> Command {
    let command = Command::new("run")
        .about("Starts a new run of the flow")
        .long_about(
            "Starts a new run of the flow and runs it to the end. On success, prints the run id, \
             the datastore and how to inspect the results; on failure, the failing task, its \
             error and how to resume (exit code 1).",
        );
    with_execution_options(command).arg(tag_arg("Records TAG with the run (repeatable)"))
}

/// `resume`.
pub(crate) fn resume_command() -> Command {
    with_execution_options(
        Command::new("resume")
            .about("Reruns a run from where it failed, reusing every task that succeeded")
            .arg(
                Arg::new("origin-run-id")
                    .long("origin-run-id")
                    .value_name("ID")
                    .help("The run to resume [default: the latest run of this flow]"),
            )
            .arg(
                Arg::new("step")
                    .value_name("STEP")
                    .help("Rerun this step and every step after it, even where they succeeded"),
            )
            .arg(tag_arg(
                "Records TAG with the new run, beside the origin run's tags (repeatable)",
            )),
    )
}

/// `step`.
pub(crate) fn step_command() -> Command {
    Command::new("step")
        .about("Runs exactly one task of a run from what the datastore holds (for schedulers)")
        .long_about(
            "Runs exactly one task of an existing run: reads what the task starts from in the \
             datastore and writes its artifacts there. This is what `run --process` starts for \
             each task, and what a cluster scheduler runs. Exit code 0 if the task succeeded \
             (or its failure was caught), 1 if it failed.",
        )
        .arg(
            Arg::new("step")
                .value_name("STEP")
                .required(true)
                .help("The step"),
        )
        .arg(
            Arg::new("run-id")
                .long("run-id")
                .value_name("ID")
                .required(true)
                .help("The run"),
        )
        .arg(
            Arg::new("task-id")
                .long("task-id")
                .value_name("TASK")
                .required(true)
                .help("The task within the step"),
        )
        .arg(super::argo::outputs_arg())
        .arg(
            Arg::new("capture-output")
                .long("capture-output")
                .action(ArgAction::SetTrue)
                .help(
                    "Runs the task in a child process and records its stdout and stderr in the \
                     datastore (what a cluster job runs; process mode records them itself)",
                ),
        )
        .arg(
            Arg::new(executor::EXPECT_BINARY_FLAG)
                .long(executor::EXPECT_BINARY_FLAG)
                .value_name("BLAKE3")
                .help(
                    "Fails the task unless this program's binary has this BLAKE3 hash (what \
                     `run --slurm` gives its jobs, so that a binary rebuilt since the run \
                     started is not run)",
                ),
        )
}

/// How many Slurm jobs a run keeps in flight unless `--max-workers` says otherwise.
const SLURM_DEFAULT_JOBS: usize = 256;

fn with_execution_options(command: Command) -> Command {
    command
        .arg(
            Arg::new("max-workers")
                .long("max-workers")
                .value_name("N")
                .value_parser(value_parser!(u32).range(1..=executor::MAX_WORKERS as i64))
                .help(format!(
                    "How many tasks run at once, at most {} [default: the number of cores]",
                    executor::MAX_WORKERS
                )),
        )
        .arg(
            Arg::new("process")
                .long("process")
                .action(ArgAction::SetTrue)
                .conflicts_with("slurm")
                .help("Runs each task in a child process (this binary's `step` command)"),
        )
        .arg(
            Arg::new("slurm")
                .long("slurm")
                .action(ArgAction::SetTrue)
                .help(
                    "Runs each task as a Slurm batch job (`sbatch`) running this binary's `step` \
                     command; the datastore must be reachable from every node",
                ),
        )
        .arg(
            Arg::new("sbatch-arg")
                .long("sbatch-arg")
                .value_name("ARG")
                .action(ArgAction::Append)
                .allow_hyphen_values(true)
                .requires("slurm")
                .help("An extra argument for every sbatch, e.g. --sbatch-arg=--partition=gpu (repeatable)"),
        )
        .arg(
            Arg::new("slurm-log-dir")
                .long("slurm-log-dir")
                .value_name("DIR")
                .value_parser(value_parser!(PathBuf))
                .requires("slurm")
                .help(
                    "Where Slurm writes each job's own output [default: a directory of the \
                     run's own, readable by you alone, in slurm-logs of a local datastore, \
                     else of ~/.cache/blooming; removed when the run succeeds]; on a cluster, \
                     a shared directory",
                ),
        )
}

/// The datastore as the tasks' own processes are told it: the same location, an absolute path
/// or the `s3://` URL (their credentials come from the environment they inherit).
fn datastore_arg(ctx: &Ctx<'_>, flag: &str) -> Result<String, CliError> {
    ctx.datastore.to_arg().ok_or_else(|| {
        CliError::usage(format!(
            "{flag} needs a datastore path in UTF-8, not {}",
            ctx.datastore
        ))
    })
}

/// The executor's options from the command line.
fn options(ctx: &Ctx<'_>, matches: &ArgMatches) -> Result<RunOptions, CliError> {
    let mut options = RunOptions {
        progress: ctx.terminal,
        announce: ctx.terminal,
        stop_on_signals: true,
        ..RunOptions::default()
    };
    if let Some(&n) = matches.get_one::<u32>("max-workers") {
        options.max_workers = n as usize;
    }
    options.tags = matches
        .get_many::<String>("tag")
        .map(|t| t.cloned().collect())
        .unwrap_or_default();
    if matches.get_flag("process") {
        let exe = std::env::current_exe().map_err(|e| {
            CliError::failure(format!(
                "cannot find this program's path for --process: {e}"
            ))
        })?;
        options.mode = Mode::Process {
            exe,
            args: vec!["--datastore".to_owned(), datastore_arg(ctx, "--process")?],
        };
    }
    if matches.get_flag("slurm") {
        let exe = std::env::current_exe().map_err(|e| {
            CliError::failure(format!("cannot find this program's path for --slurm: {e}"))
        })?;
        let datastore = datastore_arg(ctx, "--slurm")?;
        // Empty: a private directory is made once the datastore is open (`private_log_dir`).
        let log_dir = matches
            .get_one::<PathBuf>("slurm-log-dir")
            .cloned()
            .unwrap_or_default();
        let mut slurm = SlurmOptions::new(log_dir);
        slurm.sbatch_args = matches
            .get_many::<String>("sbatch-arg")
            .map(|a| a.cloned().collect())
            .unwrap_or_default();
        if matches.get_one::<u32>("max-workers").is_none() {
            // Workers only wait for jobs here: as many may be in flight as the cluster takes.
            options.max_workers = SLURM_DEFAULT_JOBS;
        }
        options.mode = Mode::Slurm {
            exe,
            args: vec!["--datastore".to_owned(), datastore],
            options: slurm,
        };
    }
    Ok(options)
}

/// For a Slurm run without `--slurm-log-dir`: a new directory for Slurm's output of each job,
/// which only this user can enter, made under a base this user owns (never under a fixed name
/// in a shared directory, where another user could have planted a symlink). The base is
/// `slurm-logs` in a local datastore (which Slurm's nodes must reach anyway), else
/// `$XDG_CACHE_HOME/blooming/slurm-logs` or `~/.cache/blooming/slurm-logs` (home directories are
/// shared on most clusters; `$XDG_RUNTIME_DIR` is not), else the temporary directory itself.
fn private_log_dir(
    ctx: &Ctx<'_>,
    options: &mut RunOptions,
) -> Result<Option<tempfile::TempDir>, CliError> {
    let Mode::Slurm { options: slurm, .. } = &mut options.mode else {
        return Ok(None);
    };
    if !slurm.log_dir.as_os_str().is_empty() {
        return Ok(None);
    }
    let cache = || {
        std::env::var_os("XDG_CACHE_HOME")
            .map(PathBuf::from)
            .filter(|p| p.is_absolute())
            .or_else(|| {
                std::env::var_os("HOME")
                    .map(PathBuf::from)
                    .filter(|p| p.is_absolute())
                    .map(|home| home.join(".cache"))
            })
            .map(|cache| cache.join("blooming").join("slurm-logs"))
    };
    let base = match ctx.datastore.as_local() {
        Some(root) => Some(root.join("slurm-logs")),
        None => cache(),
    };
    let made = match &base {
        Some(base) => private_dir_in(base),
        None => private_dir_in(&std::env::temp_dir()),
    };
    let dir = made.map_err(|e| {
        CliError::failure(format!(
            "cannot make a directory for Slurm's output of the jobs under {} (choose one with \
             --slurm-log-dir): {e}",
            base.unwrap_or_else(std::env::temp_dir).display()
        ))
    })?;
    slurm.log_dir = dir.path().to_path_buf();
    Ok(Some(dir))
}

/// A new directory with mode 0700 in `base` (created, 0700 too, if missing; refused if it is a
/// symlink), with a fresh random name, so nothing planted there before is used.
fn private_dir_in(base: &Path) -> std::io::Result<tempfile::TempDir> {
    use std::os::unix::fs::{DirBuilderExt as _, PermissionsExt as _};
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(base)?;
    if std::fs::symlink_metadata(base)?.file_type().is_symlink() {
        return Err(std::io::Error::other(format!(
            "{} is a symbolic link",
            base.display()
        )));
    }
    tempfile::Builder::new()
        .prefix("run-")
        .permissions(std::fs::Permissions::from_mode(0o700))
        .tempdir_in(base)
}

/// After a run: removes the private Slurm log directory when the run succeeded, else keeps it
/// and says where it is.
fn settle_log_dir(
    ctx: &mut Ctx<'_>,
    log_dir: Option<tempfile::TempDir>,
    succeeded: bool,
) -> Result<(), CliError> {
    match log_dir {
        Some(dir) if !succeeded => {
            let kept = dir.keep();
            writeln!(
                ctx.err,
                "Slurm's own output of each job is in {}",
                kept.display()
            )?;
        }
        // Dropped: removed.
        _ => {}
    }
    Ok(())
}

/// Says that a signal stopped the run, and how to go on.
fn report_interrupted(
    ctx: &mut Ctx<'_>,
    flow: &str,
    run_id: &str,
    signal: i32,
) -> Result<(), CliError> {
    writeln!(
        ctx.err,
        "Run {run_id} of {flow} {}; it is recorded failed.",
        executor::interrupted_by(signal)
    )?;
    writeln!(
        ctx.err,
        "Resume it with: {}",
        ctx.suggest(&format!("resume --origin-run-id {run_id}"))
    )?;
    Ok(())
}

/// Reports how a run ended, whatever happened to it.
fn conclude(
    ctx: &mut Ctx<'_>,
    result: Result<RunSummary, RunError>,
    log_dir: Option<tempfile::TempDir>,
    origin: Option<&str>,
) -> Result<(), CliError> {
    let succeeded = matches!(&result, Ok(s) if s.status == RunStatus::Succeeded);
    settle_log_dir(ctx, log_dir, succeeded)?;
    match result {
        Ok(summary) => report(ctx, &summary, origin),
        Err(RunError::Interrupted {
            flow,
            run_id,
            signal,
        }) => {
            report_interrupted(ctx, &flow, &run_id, signal)?;
            Err(CliError::silent_failure())
        }
        Err(error) => Err(error.into()),
    }
}

pub(crate) fn run<F: Flow>(
    ctx: &mut Ctx<'_>,
    root: &mut Command,
    matches: &ArgMatches,
) -> Result<(), CliError> {
    // Everything is checked before the datastore is touched.
    let mut state = initial::<F>();
    let params = match state.__apply_params(matches) {
        Ok(params) => params,
        Err(e) => {
            let e = match root.find_subcommand_mut("run") {
                Some(run) => e.format(run),
                None => e,
            };
            ctx.err.write_all(e.render().to_string().as_bytes())?;
            return Err(CliError {
                code: super::EXIT_USAGE,
                message: String::new(),
            });
        }
    };
    let mut options = options(ctx, matches)?;
    let store = ctx.open_or_create()?;
    let log_dir = private_log_dir(ctx, &mut options)?;
    let result = executor::run_flow::<F>(&store, params, &options);
    conclude(ctx, result, log_dir, None)
}

pub(crate) fn resume<F: Flow>(ctx: &mut Ctx<'_>, matches: &ArgMatches) -> Result<(), CliError> {
    let flow = F::GRAPH.name;
    let from_step = matches.get_one::<String>("step").map(String::as_str);
    if let Some(step) = from_step
        && F::GRAPH.step_index(step).is_none()
    {
        let names: Vec<&str> = F::GRAPH.steps.iter().map(|s| s.name).collect();
        return Err(CliError::usage(format!(
            "flow {flow} has no step `{step}`; its steps are {}",
            names.join(", ")
        )));
    }
    let mut options = options(ctx, matches)?;
    let store = ctx.open_existing()?;
    let origin = match matches.get_one::<String>("origin-run-id") {
        Some(id) => {
            validate_segment(id)
                .map_err(|e| CliError::usage(e.describing("run id").to_string()))?;
            id.clone()
        }
        None => store.latest(flow, "any")?.ok_or_else(|| {
            CliError::usage(format!(
                "flow {flow} has no run to resume in {}",
                ctx.datastore
            ))
        })?,
    };
    let record = store.read_run(flow, &origin).map_err(|e| match e {
        crate::run::RunStoreError::NoSuchRun { .. } => CliError::usage(format!(
            "flow {flow} has no run `{origin}` in {} (list them with `{}`)",
            ctx.datastore,
            ctx.suggest("runs")
        )),
        other => other.into(),
    })?;
    if record.status == RunStatus::Running {
        writeln!(
            ctx.err,
            "warning: run {origin} is recorded as still running (pid {} on {}); resuming it anyway",
            record.pid, record.host
        )?;
    }
    let log_dir = private_log_dir(ctx, &mut options)?;
    let result = executor::resume_flow::<F>(&store, &origin, from_step, &options);
    conclude(ctx, result, log_dir, Some(&origin))
}

pub(crate) fn step<F: Flow>(ctx: &mut Ctx<'_>, matches: &ArgMatches) -> Result<(), CliError> {
    let get = |id: &str| {
        matches
            .get_one::<String>(id)
            .map(String::as_str)
            .unwrap_or_default()
    };
    let (step, run_id, task_id) = (get("step"), get("run-id"), get("task-id"));
    for (what, value) in [
        ("step name", step),
        ("run id", run_id),
        ("task id", task_id),
    ] {
        validate_segment(value).map_err(|e| CliError::usage(e.describing(what).to_string()))?;
    }
    if F::GRAPH.step_index(step).is_none() {
        return Err(CliError::usage(format!(
            "flow {} has no step `{step}`",
            F::GRAPH.name
        )));
    }
    let store = ctx.open_existing()?;
    let expected_binary = matches.get_one::<String>(executor::EXPECT_BINARY_FLAG);
    if matches.get_flag("capture-output") {
        let mut args: Vec<std::ffi::OsString> = [
            "--datastore".into(),
            datastore_arg(ctx, "--capture-output")?.into(),
            "step".into(),
            step.into(),
            "--run-id".into(),
            run_id.into(),
            "--task-id".into(),
            task_id.into(),
        ]
        .into();
        // The child that runs the task checks the binary it runs itself.
        if let Some(hash) = expected_binary {
            args.push(format!("--{}={hash}", executor::EXPECT_BINARY_FLAG).into());
        }
        executor::run_task_capturing_output::<F>(&store, run_id, step, task_id, &args)?;
    } else {
        if let Some(hash) = expected_binary {
            executor::verify_running_binary(hash).map_err(|e| {
                CliError::failure(format!("task {step}/{task_id} of run {run_id}: {e}"))
            })?;
        }
        executor::run_task_command::<F>(&store, run_id, step, task_id)?;
    }
    if let Some(dir) = matches.get_one::<std::path::PathBuf>("argo-outputs") {
        super::argo::write_step_outputs::<F>(&store, run_id, step, task_id, dir)?;
    }
    Ok(())
}

/// Says how a run ended: where the results are, or what failed and how to go on.
fn report(ctx: &mut Ctx<'_>, summary: &RunSummary, origin: Option<&str>) -> Result<(), CliError> {
    let run_id = &summary.run_id;
    if ctx.terminal && std::env::var_os("CI").is_none() {
        // The progress display leaves its cursor at the end of its last line.
        writeln!(ctx.err)?;
    }
    let reused = match origin {
        Some(origin) => format!(", {} reused from run {origin}", summary.tasks_reused),
        None => String::new(),
    };
    if summary.status == RunStatus::Succeeded {
        writeln!(
            ctx.out,
            "Run {run_id} of {} succeeded ({} tasks run{reused}).",
            summary.flow, summary.tasks_run
        )?;
        writeln!(ctx.out, "Results are in the datastore {}", ctx.datastore)?;
        writeln!(
            ctx.out,
            "Inspect them with: {}",
            ctx.suggest(&format!("dump {run_id}/end"))
        )?;
        return Ok(());
    }
    writeln!(
        ctx.err,
        "Run {run_id} of {} failed ({} tasks run{reused}).",
        summary.flow, summary.tasks_run
    )?;
    match &summary.failure {
        Some((path, failure)) => {
            writeln!(ctx.err, "Task {path} failed:")?;
            if failure.kind == "panic" && failure.message.starts_with("panicked") {
                writeln!(ctx.err, "  {}", failure.message)?;
            } else {
                writeln!(ctx.err, "  {}: {}", failure.kind, failure.message)?;
            }
            for cause in &failure.causes {
                writeln!(ctx.err, "  caused by: {cause}")?;
            }
            if let Some(location) = &failure.location {
                writeln!(ctx.err, "  at {location}")?;
            }
            writeln!(
                ctx.err,
                "Its logs: {}",
                ctx.suggest(&format!("logs {run_id}/{}/{}", path.step, path.task))
            )?;
        }
        None => {
            let store = RunStore::open(&ctx.datastore)?;
            let why = store
                .read_run(&summary.flow, run_id)
                .ok()
                .and_then(|r| r.failure)
                .unwrap_or_else(|| "the run stopped before reaching `end`".to_owned());
            writeln!(ctx.err, "  {why}")?;
        }
    }
    if let Some(e) = &summary.record_error {
        writeln!(
            ctx.err,
            "Its record could not be updated (it still says `running`): {e}"
        )?;
    }
    writeln!(
        ctx.err,
        "Resume it with: {}",
        ctx.suggest(&format!("resume --origin-run-id {run_id}"))
    )?;
    Err(CliError::silent_failure())
}
