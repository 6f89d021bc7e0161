//! `init`: creates a run record without running anything, for a scheduler that runs every task
//! itself with `step` (Argo Workflows) and ends with `finish`; its parameters are parsed by the
//! flow's own parser.

use std::path::PathBuf;

use clap::{Arg, ArgMatches, Command};

use super::CliResult;
use crate::argo;
use crate::cli::EXIT_USAGE;
use crate::cli::argo_outputs::write_output;
use crate::cli::args::{check_segment, strings, tag_arg, tags};
use crate::cli::context::Ctx;
use crate::cli::error::CliError;
use crate::executor::step_invocation::{ARGO_OUTPUTS_FLAG, argo_outputs_arg};
use crate::flow::{Flow, initial};
use crate::run::{Latest, RunId, RunRecord, RunStoreError, new_run_id};

pub(crate) fn cli() -> Command {
    Command::new("init")
        .about("Creates a run without running it, for a scheduler that runs each task with `step`")
        .long_about(
            "Creates a run record with the flow's parameters and prints its id; nothing runs. \
             A scheduler that starts every task itself (Argo Workflows) then runs each task \
             with `step` and ends with `finish`. Parameters come after `--`, as `--NAME=VALUE`; \
             flags take `true` or `false`.",
        )
        .arg(
            Arg::new("run-id")
                .long("run-id")
                .value_name("ID")
                .help("The new run's id [default: a new one, sorted by time]"),
        )
        .arg(tag_arg("Records TAG with the run (repeatable)"))
        .arg(argo_outputs_arg().help("Also writes the run id to DIR/run-id (for Argo)"))
        .arg(
            Arg::new("params")
                .value_name("PARAM")
                .num_args(0..)
                .last(true)
                .allow_hyphen_values(true)
                .help("The flow's parameters, as `run` takes them"),
        )
}

pub(crate) fn exec<F: Flow>(ctx: &mut Ctx<'_>, args: &ArgMatches) -> CliResult {
    let graph = F::GRAPH;
    // Everything is checked before the datastore is touched.
    let raw = strings(args, "params");
    let mut params_command = F::__params_command(Command::new("init").no_binary_name(true));
    let flow_args =
        argo::to_flow_args(&argo::flow_params(&params_command), &raw).map_err(CliError::usage)?;
    let params = match params_command
        .try_get_matches_from_mut(&flow_args)
        .and_then(|m| initial::<F>().__apply_params(&m))
    {
        Ok(params) => params,
        Err(e) => {
            let e = e.format(&mut params_command);
            ctx.err.write_all(e.render().to_string().as_bytes())?;
            return Err(CliError {
                code: EXIT_USAGE,
                message: String::new(),
            });
        }
    };
    let run_id = match args.get_one::<String>("run-id") {
        Some(id) => {
            check_segment(id, "run id")?;
            RunId::from(id)
        }
        None => new_run_id(),
    };
    let mut record = RunRecord::starting(graph, run_id.clone(), params, tags(args), None);
    record.provenance = Some(crate::executor::run_provenance::<F>());
    let store = ctx.open_or_create()?;
    store.create_run(&record).map_err(|e| match e {
        RunStoreError::RunExists { .. } => CliError::usage(e.to_string()),
        other => other.into(),
    })?;
    store.advance_latest(graph.name, Latest::Any, &run_id)?;
    if let Some(dir) = args.get_one::<PathBuf>(ARGO_OUTPUTS_FLAG) {
        write_output(dir, argo::RUN_ID_FILE, &run_id)?;
    }
    writeln!(ctx.out, "{run_id}")?;
    Ok(())
}
