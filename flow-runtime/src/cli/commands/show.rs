//! `show`: the graph as text.

use clap::{ArgMatches, Command};

use super::CliResult;
use crate::cli::context::Ctx;
use crate::flow::Flow;

pub(crate) fn cli() -> Command {
    Command::new("show").about("Shows the flow's steps and transitions as text")
}

pub(crate) fn exec<F: Flow>(ctx: &mut Ctx<'_>, _args: &ArgMatches) -> CliResult {
    write!(ctx.out, "{}", F::GRAPH.to_text())?;
    Ok(())
}
