//! The `step` command's arguments, in one place: the command line that runs exactly one task.
//!
//! ```text
//! FLOW --datastore LOCATION step STEP --run-id RUN --task-id TASK
//!      [--capture-output] [--expect-binary=BLAKE3] [--argo-outputs DIR]
//! ```
//!
//! Process mode starts it as a child process, a Slurm job runs it on a node, Argo Workflows
//! runs it in a container, and the flow binary's own `step` command parses it. Each of them
//! goes through [`StepInvocation`]: [`StepInvocation::to_args`] renders it,
//! [`StepInvocation::add_args`] defines it for clap and [`StepInvocation::from_matches`] reads
//! it back, all with the names below, so that the writers and the reader cannot drift apart.

use std::path::PathBuf;

use clap::{Arg, ArgAction, ArgMatches, Command, value_parser};

/// The subcommand that runs one task.
pub(crate) const STEP_COMMAND: &str = "step";

/// The global option naming the datastore, given before the subcommand.
pub(crate) const DATASTORE_FLAG: &str = "datastore";

/// The option of `step` (and `init`) naming where the files Argo reads as output parameters go.
pub(crate) const ARGO_OUTPUTS_FLAG: &str = "argo-outputs";

/// The option of `step` carrying the BLAKE3 hash the binary must have.
pub(crate) const EXPECT_BINARY_FLAG: &str = "expect-binary";

/// The option of `step` that runs the task in a child process and records its output.
pub(crate) const CAPTURE_OUTPUT_FLAG: &str = "capture-output";

const STEP_ARG: &str = "step";
const RUN_ID_FLAG: &str = "run-id";
const TASK_ID_FLAG: &str = "task-id";

/// `--NAME`, as a command line spells option `NAME`.
pub(crate) fn long(name: &str) -> String {
    format!("--{name}")
}

/// The arguments of one `step` command: which task of which run, and how it is run.
///
/// ```text
/// FLOW --datastore LOCATION step STEP --run-id RUN --task-id TASK
///      [--capture-output] [--expect-binary=BLAKE3] [--argo-outputs DIR]
/// ```
///
/// Process mode, Slurm jobs and Argo's containers run it as [`StepInvocation::to_args`]
/// renders it; the `step` command reads it back with [`StepInvocation::from_matches`].
///
/// ```
/// use flow_runtime::executor::StepInvocation;
/// let job = StepInvocation {
///     capture_output: true,
///     ..StepInvocation::new("sq", "20261127T021328123Z-3f9a1c7e", "3")
/// };
/// assert_eq!(
///     job.to_args(),
///     ["step", "sq", "--run-id", "20261127T021328123Z-3f9a1c7e", "--task-id", "3", "--capture-output"]
/// );
/// ```
///
/// The values are not checked here: Argo's manifests carry placeholders such as
/// `{{inputs.parameters.run-id}}` that Argo replaces before the command runs; the `step`
/// command checks what it is given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepInvocation {
    /// The step the task belongs to.
    pub step: String,
    /// The run.
    pub run_id: String,
    /// The task within the step (`0` outside a foreach).
    pub task_id: String,
    /// Runs the task in a child process and records its stdout and stderr in the datastore, as
    /// a cluster job must (process mode records them itself).
    pub capture_output: bool,
    /// The BLAKE3 hash the binary must have, so that a binary rebuilt since the run started is
    /// not run.
    pub expect_binary: Option<String>,
    /// Where to write what Argo reads as output parameters once the task ran.
    pub argo_outputs: Option<PathBuf>,
}

impl StepInvocation {
    /// The task `task_id` of `step` in run `run_id`, with no other option.
    pub fn new(
        step: impl Into<String>,
        run_id: impl Into<String>,
        task_id: impl Into<String>,
    ) -> Self {
        StepInvocation {
            step: step.into(),
            run_id: run_id.into(),
            task_id: task_id.into(),
            capture_output: false,
            expect_binary: None,
            argo_outputs: None,
        }
    }

    /// The arguments before the subcommand that name the datastore: `--datastore LOCATION`.
    pub fn datastore_args(location: impl Into<String>) -> Vec<String> {
        vec![long(DATASTORE_FLAG), location.into()]
    }

    /// The command line from the subcommand on: `step STEP --run-id RUN --task-id TASK` and the
    /// options that are set.
    pub fn to_args(&self) -> Vec<String> {
        let mut args = vec![
            STEP_COMMAND.to_owned(),
            self.step.clone(),
            long(RUN_ID_FLAG),
            self.run_id.clone(),
            long(TASK_ID_FLAG),
            self.task_id.clone(),
        ];
        if self.capture_output {
            args.push(long(CAPTURE_OUTPUT_FLAG));
        }
        if let Some(hash) = &self.expect_binary {
            // One word: a hash is never taken for an option, whatever it holds.
            args.push(format!("{}={hash}", long(EXPECT_BINARY_FLAG)));
        }
        if let Some(dir) = &self.argo_outputs {
            args.push(long(ARGO_OUTPUTS_FLAG));
            args.push(dir.to_string_lossy().into_owned());
        }
        args
    }

    /// What a `step --capture-output` runs as its child: the same task and binary check,
    /// without capturing again, and without writing Argo's outputs (the parent writes them).
    pub fn captured_child(&self) -> Self {
        StepInvocation {
            capture_output: false,
            argo_outputs: None,
            ..self.clone()
        }
    }

    /// `command` with the arguments of `step`, as [`StepInvocation::from_matches`] reads them.
    pub fn add_args(command: Command) -> Command {
        command
            .arg(
                Arg::new(STEP_ARG)
                    .value_name("STEP")
                    .required(true)
                    .help("The step"),
            )
            .arg(
                Arg::new(RUN_ID_FLAG)
                    .long(RUN_ID_FLAG)
                    .value_name("ID")
                    .required(true)
                    .help("The run"),
            )
            .arg(
                Arg::new(TASK_ID_FLAG)
                    .long(TASK_ID_FLAG)
                    .value_name("TASK")
                    .required(true)
                    .help("The task within the step"),
            )
            .arg(argo_outputs_arg())
            .arg(
                Arg::new(CAPTURE_OUTPUT_FLAG)
                    .long(CAPTURE_OUTPUT_FLAG)
                    .action(ArgAction::SetTrue)
                    .help(
                        "Runs the task in a child process and records its stdout and stderr in \
                         the datastore (what a cluster job runs; process mode records them itself)",
                    ),
            )
            .arg(
                Arg::new(EXPECT_BINARY_FLAG)
                    .long(EXPECT_BINARY_FLAG)
                    .value_name("BLAKE3")
                    .help(
                        "Fails the task unless this program's binary has this BLAKE3 hash (what \
                         `run --slurm` gives its jobs, so that a binary rebuilt since the run \
                         started is not run)",
                    ),
            )
    }

    /// The invocation that `matches`, parsed by a command made with
    /// [`StepInvocation::add_args`], holds. Required arguments clap did not get read as empty,
    /// which the `step` command refuses.
    pub fn from_matches(matches: &ArgMatches) -> Self {
        let text = |id: &str| matches.get_one::<String>(id).cloned().unwrap_or_default();
        StepInvocation {
            step: text(STEP_ARG),
            run_id: text(RUN_ID_FLAG),
            task_id: text(TASK_ID_FLAG),
            capture_output: matches.get_flag(CAPTURE_OUTPUT_FLAG),
            expect_binary: matches.get_one::<String>(EXPECT_BINARY_FLAG).cloned(),
            argo_outputs: matches.get_one::<PathBuf>(ARGO_OUTPUTS_FLAG).cloned(),
        }
    }
}

/// `--argo-outputs DIR`, on `step` and (with its own help) on `init`.
pub(crate) fn argo_outputs_arg() -> Arg {
    Arg::new(ARGO_OUTPUTS_FLAG)
        .long(ARGO_OUTPUTS_FLAG)
        .value_name("DIR")
        .value_parser(value_parser!(PathBuf))
        .help(
            "Also writes what Argo reads as output parameters to DIR: a foreach's child task \
             ids (foreach.json), a switch's choice (switch)",
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[String]) -> StepInvocation {
        let command = StepInvocation::add_args(Command::new(STEP_COMMAND).no_binary_name(true));
        let matches = command
            .try_get_matches_from(args.iter().skip(1))
            .unwrap_or_else(|e| panic!("{args:?} does not parse: {e}"));
        StepInvocation::from_matches(&matches)
    }

    #[test]
    fn what_is_rendered_parses_back_to_the_same_invocation() {
        let plain = StepInvocation::new("sq", "20261127T021328123Z-3f9a1c7e", "3-1");
        let full = StepInvocation {
            capture_output: true,
            expect_binary: Some("ab".repeat(32)),
            argo_outputs: Some(PathBuf::from("/tmp/blooming argo")),
            ..plain.clone()
        };
        // Argo's placeholders and values that look like options stay values.
        let odd = StepInvocation {
            expect_binary: Some("--run-id".to_owned()),
            ..StepInvocation::new(
                "start",
                "{{inputs.parameters.run-id}}",
                "{{inputs.parameters.task-id}}",
            )
        };
        for invocation in [plain, full, odd] {
            let args = invocation.to_args();
            assert_eq!(args[0], STEP_COMMAND);
            assert_eq!(parse(&args), invocation, "{args:?}");
        }
    }

    #[test]
    fn the_command_line_is_spelled_as_jobs_and_containers_run_it() {
        let mut invocation = StepInvocation::new("sq", "R", "0");
        assert_eq!(
            invocation.to_args(),
            ["step", "sq", "--run-id", "R", "--task-id", "0"]
        );
        invocation.capture_output = true;
        invocation.expect_binary = Some("h".to_owned());
        invocation.argo_outputs = Some(PathBuf::from("/out"));
        assert_eq!(
            invocation.to_args()[6..],
            [
                "--capture-output",
                "--expect-binary=h",
                "--argo-outputs",
                "/out"
            ]
        );
        assert_eq!(
            invocation.captured_child().to_args()[6..],
            ["--expect-binary=h"]
        );
        assert_eq!(
            StepInvocation::datastore_args("s3://b/p"),
            ["--datastore", "s3://b/p"]
        );
    }
}
