//! `demote`: clears a label of the flow, so that it names no run; the history keeps it.

use clap::{Arg, ArgGroup, ArgMatches, Command};

use super::CliResult;
use super::promote::label_arg;
use crate::cli::args::check_segment;
use crate::cli::context::Ctx;
use crate::cli::terminal::escape_controls;
use crate::flow::Flow;

pub(crate) fn cli() -> Command {
    Command::new("demote")
        .about("Clears LABEL (e.g. production): it names no run after this")
        .arg(
            Arg::new("positional-label")
                .value_name("LABEL")
                .help("The label (or give it with --as)"),
        )
        .arg(label_arg("The label"))
        .group(
            ArgGroup::new("which")
                .args(["positional-label", "label"])
                .required(true),
        )
}

pub(crate) fn exec<F: Flow>(ctx: &mut Ctx<'_>, args: &ArgMatches) -> CliResult {
    let flow = F::GRAPH.name;
    let label = args
        .get_one::<String>("label")
        .or_else(|| args.get_one::<String>("positional-label"))
        .map(String::as_str)
        .unwrap_or_default();
    check_segment(label, "promotion label")?;
    let store = ctx.open_existing()?;
    let entry = store.demote(flow, label)?;
    writeln!(
        ctx.out,
        "Demoted {label} of flow {flow}: it names no run now (by {} on {} at {})",
        escape_controls(&entry.user),
        escape_controls(&entry.host),
        entry.at
    )?;
    Ok(())
}
