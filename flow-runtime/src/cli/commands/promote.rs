//! `promote`: names a run that succeeded as the flow's `production` (or any label). The run is
//! found with the client; the change is the run store's.

use clap::{Arg, ArgMatches, Command};

use super::CliResult;
use crate::cli::args::{check_segment, required};
use crate::cli::context::Ctx;
use crate::cli::lookup;
use crate::cli::terminal::escape_controls;
use crate::client::{Client, LATEST};
use crate::flow::Flow;

/// The `--as LABEL` option of `promote`, `demote` and `promotions`.
pub(crate) fn label_arg(help: &'static str) -> Arg {
    Arg::new("label").long("as").value_name("LABEL").help(help)
}

pub(crate) fn cli() -> Command {
    Command::new("promote")
        .about("Promotes a run that succeeded as LABEL (e.g. production), recording who and when")
        .arg(
            Arg::new("run")
                .value_name("RUN")
                .required(true)
                .help("The run; may be `latest`"),
        )
        .arg(
            label_arg("The label: ASCII letters, digits, `.`, `_` and `-`, e.g. production")
                .required(true),
        )
}

pub(crate) fn exec<F: Flow>(ctx: &mut Ctx<'_>, args: &ArgMatches) -> CliResult {
    let flow = F::GRAPH.name;
    let run = required(args, "run");
    if run != LATEST {
        check_segment(run, "run id")?;
    }
    let label = required(args, "label");
    check_segment(label, "promotion label")?;
    let store = ctx.open_existing()?;
    let found = lookup::run(ctx, &Client::with_store(store.clone()), flow, run)?;
    let entry = store.promote(flow, label, found.id())?;
    writeln!(
        ctx.out,
        "Promoted run {} of flow {flow} as {label} (by {} on {} at {})",
        found.id(),
        escape_controls(&entry.user),
        escape_controls(&entry.host),
        entry.at
    )?;
    Ok(())
}
