//! `step`: runs exactly one task of a run from what the datastore holds; what process mode,
//! Slurm jobs and Argo containers run. Its arguments are a
//! [`StepInvocation`], which those writers render.

use std::ffi::OsString;

use clap::{ArgMatches, Command};

use super::CliResult;
use crate::cli::argo_outputs::write_step_outputs;
use crate::cli::args::check_segment;
use crate::cli::context::Ctx;
use crate::cli::error::CliError;
use crate::executor::step_invocation::{CAPTURE_OUTPUT_FLAG, STEP_COMMAND, long};
use crate::executor::{self, StepInvocation};
use crate::flow::Flow;

pub(crate) fn cli() -> Command {
    StepInvocation::add_args(
        Command::new(STEP_COMMAND)
            .about("Runs exactly one task of a run from what the datastore holds (for schedulers)")
            .long_about(
                "Runs exactly one task of an existing run: reads what the task starts from in the \
                 datastore and writes its artifacts there. This is what `run --process` starts for \
                 each task, and what a cluster scheduler runs. Exit code 0 if the task succeeded \
                 (or its failure was caught), 1 if it failed.",
            ),
    )
}

pub(crate) fn exec<F: Flow>(ctx: &mut Ctx<'_>, args: &ArgMatches) -> CliResult {
    let invocation = StepInvocation::from_matches(args);
    let StepInvocation {
        step,
        run_id,
        task_id,
        ..
    } = &invocation;
    for (what, value) in [
        ("step name", step),
        ("run id", run_id),
        ("task id", task_id),
    ] {
        check_segment(value, what)?;
    }
    if F::GRAPH.step_index(step).is_none() {
        return Err(CliError::usage(format!(
            "flow {} has no step `{step}`",
            F::GRAPH.name
        )));
    }
    let store = ctx.open_existing()?;
    if invocation.capture_output {
        // The child that runs the task checks the binary it runs itself.
        let mut child =
            StepInvocation::datastore_args(ctx.datastore_for_tasks(&long(CAPTURE_OUTPUT_FLAG))?);
        child.extend(invocation.captured_child().to_args());
        let child: Vec<OsString> = child.into_iter().map(OsString::from).collect();
        executor::run_task_capturing_output::<F>(&store, run_id, step, task_id, &child)?;
    } else {
        if let Some(hash) = &invocation.expect_binary {
            executor::verify_running_binary(hash).map_err(|e| {
                CliError::failure(format!("task {step}/{task_id} of run {run_id}: {e}"))
            })?;
        }
        executor::run_task_command::<F>(&store, run_id, step, task_id)?;
    }
    if let Some(dir) = &invocation.argo_outputs {
        write_step_outputs::<F>(&store, run_id, step, task_id, dir)?;
    }
    Ok(())
}
