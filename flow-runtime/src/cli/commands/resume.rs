//! `resume`: a new run that reuses every task of an earlier one that succeeded.

use clap::{Arg, ArgAction, ArgMatches, Command};

use super::CliResult;
use crate::cli::args::{check_segment, tag_arg};
use crate::cli::context::Ctx;
use crate::cli::error::CliError;
use crate::cli::lookup::missing_run;
use crate::cli::run_options::{private_log_dir, run_options, with_execution_options};
use crate::cli::run_report::conclude;
use crate::client::Client;
use crate::executor::{self, BinaryMatch};
use crate::flow::Flow;
use crate::run::RunStatus;

pub(crate) fn cli() -> Command {
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
            ))
            .arg(
                Arg::new("allow-other-binary")
                    .long("allow-other-binary")
                    .action(ArgAction::SetTrue)
                    .help(
                        "Resume even if the origin run was made by another build of this flow \
                         (its tasks' results then come from other code; the new run records it)",
                    ),
            ),
    )
}

pub(crate) fn exec<F: Flow>(ctx: &mut Ctx<'_>, args: &ArgMatches) -> CliResult {
    let flow = F::GRAPH.name;
    let from_step = args.get_one::<String>("step").map(String::as_str);
    if let Some(step) = from_step
        && F::GRAPH.step_index(step).is_none()
    {
        let names: Vec<&str> = F::GRAPH.steps.iter().map(|s| s.name).collect();
        return Err(CliError::usage(format!(
            "flow {flow} has no step `{step}`; its steps are {}",
            names.join(", ")
        )));
    }
    let mut options = run_options(ctx, args, F::GRAPH)?;
    let store = ctx.open_existing()?;
    let runs = Client::with_store(store.clone());
    let origin = match args.get_one::<String>("origin-run-id") {
        Some(id) => {
            check_segment(id, "run id")?;
            runs.flow(flow).run(id)
        }
        None => runs.flow(flow).latest_run(),
    }
    .map_err(|e| missing_run(ctx, flow, e, "has no run to resume"))?;
    let record = origin.record();
    if record.status == RunStatus::Running {
        writeln!(
            ctx.err,
            "warning: run {} is recorded as still running (pid {} on {}); resuming it anyway",
            record.run_id, record.pid, record.host
        )?;
    }
    options.allow_other_binary = args.get_flag("allow-other-binary");
    match executor::binary_match(record) {
        BinaryMatch::Same => {}
        BinaryMatch::Other { origin, this } if options.allow_other_binary => writeln!(
            ctx.err,
            "WARNING: run {} was made by another flow binary (BLAKE3 {origin}) than this one \
             ({this}); its reused tasks ran other code than the tasks this run reruns. The new \
             run records it.",
            record.run_id
        )?,
        // Refused by the executor, with the same hashes.
        BinaryMatch::Other { .. } => {}
        BinaryMatch::Unknown => writeln!(
            ctx.err,
            "warning: run {} recorded no flow binary hash (it is older than provenance, or its \
             binary could not be read): resume cannot check that its tasks ran this code",
            record.run_id
        )?,
    }
    let log_dir = private_log_dir(ctx, &mut options)?;
    let result = executor::resume_flow::<F>(&store, origin.id(), from_step, &options);
    conclude(ctx, result, log_dir, Some(origin.id()))
}
