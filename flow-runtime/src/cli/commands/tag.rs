//! `tag`: adds tags to a run or removes them. The run is found with the client; the change is
//! the run store's.

use clap::{Arg, ArgMatches, Command};

use super::CliResult;
use crate::cli::args::{check_segment, parse_tag, required, strings};
use crate::cli::context::Ctx;
use crate::cli::lookup;
use crate::cli::terminal::escape_controls;
use crate::client::{Client, LATEST};
use crate::flow::Flow;

pub(crate) fn cli() -> Command {
    Command::new("tag")
        .about("Adds tags to a run or removes them")
        .arg(
            Arg::new("run")
                .value_name("RUN")
                .required(true)
                .help("The run; may be `latest`"),
        )
        .arg(
            Arg::new("action")
                .value_name("ACTION")
                .required(true)
                .value_parser(["add", "remove"]),
        )
        .arg(
            Arg::new("tags")
                .value_name("TAG")
                .required(true)
                .num_args(1..)
                .value_parser(parse_tag)
                .help("Tags: not empty, no whitespace or control characters"),
        )
}

pub(crate) fn exec<F: Flow>(ctx: &mut Ctx<'_>, args: &ArgMatches) -> CliResult {
    let flow = F::GRAPH.name;
    let run = required(args, "run");
    if run != LATEST {
        check_segment(run, "run id")?;
    }
    let add = required(args, "action") == "add";
    let tags = strings(args, "tags");
    let tags: Vec<&str> = tags.iter().map(String::as_str).collect();
    let store = ctx.open_existing()?;
    let found = lookup::run(ctx, &Client::with_store(store.clone()), flow, run)?;
    let (add, remove): (&[&str], &[&str]) = if add { (&tags, &[]) } else { (&[], &tags) };
    // The change is applied to the record as stored when it is written, not to the one just
    // read: a run ending meanwhile keeps its status, and another `tag` its tags.
    let record = store.update_tags(flow, found.id(), add, remove)?;
    let list = if record.tags.is_empty() {
        "(none)".to_owned()
    } else {
        record.tags.join(", ")
    };
    writeln!(
        ctx.out,
        "Tags of run {}: {}",
        record.run_id,
        escape_controls(&list)
    )?;
    Ok(())
}
