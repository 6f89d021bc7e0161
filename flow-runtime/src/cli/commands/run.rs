//! `run`: starts a run of the flow and runs it to the end.

use clap::{ArgMatches, Command};

use super::CliResult;
use crate::cli::EXIT_USAGE;
use crate::cli::args::tag_arg;
use crate::cli::context::Ctx;
use crate::cli::error::CliError;
use crate::cli::run_options::{private_log_dir, run_options, with_execution_options};
use crate::cli::run_report::conclude;
use crate::executor;
use crate::flow::{Flow, initial};

/// `run`, with the flow's parameters.
pub(crate) fn cli<F: Flow>() -> Command {
    F::__params_command(cli_without_params())
}

/// `run` with only its own options: what the flow's parameters must not clash with.
pub(crate) fn cli_without_params() -> Command {
    let command = Command::new("run")
        .about("Starts a new run of the flow")
        .long_about(
            "Starts a new run of the flow and runs it to the end. On success, prints the run id, \
             the datastore and how to inspect the results; on failure, the failing task, its \
             error and how to resume (exit code 1).",
        );
    with_execution_options(command).arg(tag_arg("Records TAG with the run (repeatable)"))
}

pub(crate) fn exec<F: Flow>(ctx: &mut Ctx<'_>, args: &ArgMatches) -> CliResult {
    // Everything is checked before the datastore is touched.
    let mut state = initial::<F>();
    let params = match state.__apply_params(args) {
        Ok(params) => params,
        Err(e) => {
            let e = match ctx.root.find_subcommand("run").cloned() {
                Some(mut run) => e.format(&mut run),
                None => e,
            };
            ctx.err.write_all(e.render().to_string().as_bytes())?;
            return Err(CliError {
                code: EXIT_USAGE,
                message: String::new(),
            });
        }
    };
    let mut options = run_options(ctx, args, F::GRAPH)?;
    let store = ctx.open_or_create()?;
    let log_dir = private_log_dir(ctx, &mut options)?;
    let result = executor::run_flow::<F>(&store, params, &options);
    conclude(ctx, result, log_dir, None)
}
