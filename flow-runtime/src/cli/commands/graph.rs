//! `graph`: the graph as DOT, Mermaid or text, for a graph tool.

use clap::{Arg, ArgMatches, Command};

use super::CliResult;
use crate::cli::context::Ctx;
use crate::flow::Flow;

pub(crate) fn cli() -> Command {
    Command::new("graph")
        .about("Prints the flow's graph for a graph tool")
        .arg(
            Arg::new("format")
                .long("format")
                .value_parser(["dot", "mermaid", "text"])
                .default_value("dot")
                .help("Graphviz DOT, a Mermaid flowchart, or the text of `show`"),
        )
}

pub(crate) fn exec<F: Flow>(ctx: &mut Ctx<'_>, args: &ArgMatches) -> CliResult {
    let graph = F::GRAPH;
    let text = match args.get_one::<String>("format").map(String::as_str) {
        Some("mermaid") => graph.to_mermaid(),
        Some("text") => graph.to_text(),
        _ => graph.to_dot(),
    };
    ctx.out.write_all(text.as_bytes())?;
    Ok(())
}
