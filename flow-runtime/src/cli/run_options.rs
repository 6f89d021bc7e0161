//! The options of `run` and `resume` that say where and how tasks run, and the executor's
//! [`RunOptions`] made from them.

use std::path::{Path, PathBuf};

use clap::{Arg, ArgAction, ArgMatches, Command, value_parser};

use super::args::{strings, tags};
use super::context::Ctx;
use super::error::CliError;
use crate::executor::{self, Mode, RunOptions, SlurmOptions, StepInvocation};
use crate::graph::FlowGraph;

/// How many Slurm jobs a run keeps in flight unless `--max-workers` says otherwise.
const SLURM_DEFAULT_JOBS: usize = 256;

/// `command` with the options shared by `run` and `resume`.
pub(crate) fn with_execution_options(command: Command) -> Command {
    command
        .arg(
            Arg::new("max-workers")
                .long("max-workers")
                .value_name("N")
                .value_parser(value_parser!(u32).range(1..=executor::MAX_WORKERS as i64))
                .help(format!(
                    "How many cpus the run's tasks share (a task takes its step's `cpus`, 1 by \
                     default; with --slurm, how many jobs are in flight), at most {} [default: \
                     the number of cores]",
                    executor::MAX_WORKERS
                )),
        )
        .arg(
            Arg::new("until")
                .long("until")
                .value_name("STEP")
                .help(
                    "Stops after STEP's tasks: nothing after them starts, and the run is recorded \
                     `stopped` (`resume` goes on from there)",
                ),
        )
        .arg(
            Arg::new("keep-checkpoints")
                .long("keep-checkpoints")
                .value_name("WHICH")
                .value_parser(["last", "none"])
                .default_value("last")
                .help(
                    "What a task keeps of the checkpoints its step stored (`current().checkpoint`) \
                     once it completes",
                ),
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
            Arg::new("sbatch-arg-for")
                .long("sbatch-arg-for")
                .value_name("STEP=ARG")
                .action(ArgAction::Append)
                .allow_hyphen_values(true)
                .requires("slurm")
                .help(
                    "An extra argument for the sbatch of STEP's tasks, after every                      --sbatch-arg, e.g. --sbatch-arg-for train=--partition=gpu (repeatable)",
                ),
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

/// The executor's options from the command line, for a run of `graph`.
pub(crate) fn run_options(
    ctx: &Ctx<'_>,
    matches: &ArgMatches,
    graph: &FlowGraph,
) -> Result<RunOptions, CliError> {
    let mut options = RunOptions {
        progress: ctx.terminal,
        announce: ctx.terminal,
        stop_on_signals: true,
        ..RunOptions::default()
    };
    if let Some(&n) = matches.get_one::<u32>("max-workers") {
        options.max_workers = n as usize;
    }
    options.tags = tags(matches);
    if matches
        .get_one::<String>("keep-checkpoints")
        .map(String::as_str)
        == Some("none")
    {
        options.keep_checkpoints = crate::run::KeepCheckpoints::None;
    }
    if let Some(step) = matches.get_one::<String>("until") {
        step_named(graph, step, &format!("--until {step}"))?;
        options.until = Some(step.clone());
    }
    if matches.get_flag("process") {
        let exe = std::env::current_exe().map_err(|e| {
            CliError::failure(format!(
                "cannot find this program's path for --process: {e}"
            ))
        })?;
        options.mode = Mode::Process {
            exe,
            args: StepInvocation::datastore_args(ctx.datastore_for_tasks("--process")?),
        };
    }
    if matches.get_flag("slurm") {
        let exe = std::env::current_exe().map_err(|e| {
            CliError::failure(format!("cannot find this program's path for --slurm: {e}"))
        })?;
        let datastore = ctx.datastore_for_tasks("--slurm")?;
        // Empty: a private directory is made once the datastore is open (`private_log_dir`).
        let log_dir = matches
            .get_one::<PathBuf>("slurm-log-dir")
            .cloned()
            .unwrap_or_default();
        let mut slurm = SlurmOptions::new(log_dir);
        slurm.sbatch_args = strings(matches, "sbatch-arg");
        slurm.step_sbatch_args = strings(matches, "sbatch-arg-for")
            .iter()
            .map(|value| step_sbatch_arg(value, graph))
            .collect::<Result<_, _>>()?;
        if matches.get_one::<u32>("max-workers").is_none() {
            // Workers only wait for jobs here: as many may be in flight as the cluster takes.
            options.max_workers = SLURM_DEFAULT_JOBS;
        }
        options.mode = Mode::Slurm {
            exe,
            args: StepInvocation::datastore_args(datastore),
            options: slurm,
        };
    }
    Ok(options)
}

/// `STEP=ARG` of `--sbatch-arg-for`, with STEP a step of `graph`.
fn step_sbatch_arg(value: &str, graph: &FlowGraph) -> Result<(String, String), CliError> {
    // `--partition=gpu` alone is an argument without its step, not a step `--partition`.
    let Some((step, arg)) = value
        .split_once('=')
        .filter(|(s, a)| !s.is_empty() && !s.starts_with('-') && !a.is_empty())
    else {
        return Err(CliError::usage(format!(
            "--sbatch-arg-for takes STEP=ARG, e.g. --sbatch-arg-for train=--partition=gpu; got `{value}`"
        )));
    };
    step_named(graph, step, &format!("--sbatch-arg-for {value}"))?;
    Ok((step.to_owned(), arg.to_owned()))
}

/// The index of step `step` of `graph`, or a usage error starting with `what` that lists the
/// steps, with a did-you-mean.
pub(crate) fn step_named(graph: &FlowGraph, step: &str, what: &str) -> Result<usize, CliError> {
    if let Some(index) = graph.step_index(step) {
        return Ok(index);
    }
    let names: Vec<&str> = graph.steps.iter().map(|s| s.name).collect();
    let meant = graph
        .steps
        .iter()
        .map(|s| (strsim::damerau_levenshtein(step, s.name), s.name))
        .filter(|&(distance, name)| distance <= (name.chars().count() / 3).max(1))
        .min()
        .map(|(_, name)| format!("; did you mean `{name}`?"))
        .unwrap_or_default();
    Err(CliError::usage(format!(
        "{what}: flow {} has no step `{step}`; its steps are {}{meant}",
        graph.name,
        names.join(", ")
    )))
}

/// For a Slurm run without `--slurm-log-dir`: a new directory for Slurm's output of each job,
/// which only this user can enter, made under a base this user owns (never under a fixed name
/// in a shared directory, where another user could have planted a symlink). The base is
/// `slurm-logs` in a local datastore (which Slurm's nodes must reach anyway), else
/// `$XDG_CACHE_HOME/blooming/slurm-logs` or `~/.cache/blooming/slurm-logs` (home directories are
/// shared on most clusters; `$XDG_RUNTIME_DIR` is not), else the temporary directory itself.
pub(crate) fn private_log_dir(
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

#[cfg(test)]
mod tests {
    use super::step_sbatch_arg;
    use crate::graph::test_graphs::EVERY;

    #[test]
    fn a_step_s_sbatch_argument_is_split_at_the_first_equals_sign() {
        let parsed = step_sbatch_arg("fan=--partition=gpu", &EVERY).expect("a step of EVERY");
        assert_eq!(parsed, ("fan".to_owned(), "--partition=gpu".to_owned()));
    }

    #[test]
    fn an_unknown_step_is_named_with_the_steps_and_the_near_one() {
        let error = step_sbatch_arg("fna=--partition=gpu", &EVERY).expect_err("no step fna");
        assert_eq!(
            error.message,
            "--sbatch-arg-for fna=--partition=gpu: flow Every has no step `fna`; its steps are \
             start, a, b, both, fan, inner, body, inner_join, outer_join, decide, big, small, \
             end; did you mean `fan`?"
        );
        let error = step_sbatch_arg("zzzzzz=--x", &EVERY).expect_err("no step zzzzzz");
        assert!(!error.message.contains("did you mean"), "{}", error.message);
    }

    #[test]
    fn a_value_without_step_or_argument_says_the_form() {
        for value in ["--partition=gpu", "fan", "fan=", "=--x"] {
            let error = step_sbatch_arg(value, &EVERY).expect_err(value);
            assert!(
                error.message.starts_with("--sbatch-arg-for takes STEP=ARG"),
                "{value}: {}",
                error.message
            );
        }
    }
}
