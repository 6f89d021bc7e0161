//! `promotions`: every promotion and demotion of this flow, newest first, as a table or JSON.

use clap::{ArgMatches, Command};

use super::CliResult;
use super::promote::label_arg;
use crate::cli::args::{check_segment, json_arg};
use crate::cli::context::Ctx;
use crate::cli::table::{short_time, table};
use crate::cli::terminal::{escape_controls, write_json_line};
use crate::flow::Flow;
use crate::run::Promotion;

pub(crate) fn cli() -> Command {
    Command::new("promotions")
        .about("Lists this flow's promotions and demotions, newest first")
        .arg(label_arg("Only those of LABEL"))
        .arg(json_arg("Prints them as a JSON array"))
}

pub(crate) fn exec<F: Flow>(ctx: &mut Ctx<'_>, args: &ArgMatches) -> CliResult {
    let flow = F::GRAPH.name;
    let label = args.get_one::<String>("label").map(String::as_str);
    if let Some(label) = label {
        check_segment(label, "promotion label")?;
    }
    // No datastore yet: no promotions, as for a flow never promoted.
    let entries: Vec<Promotion> = if ctx.has_datastore() {
        ctx.open_client()?.flow(flow).promotions(label)?
    } else {
        Vec::new()
    };
    if args.get_flag("json") {
        write_json_line(&mut *ctx.out, &entries)?;
    } else if entries.is_empty() {
        let of = label.map(|l| format!(" as {l}")).unwrap_or_default();
        writeln!(
            ctx.out,
            "No promotions of flow {flow}{of} in {}.",
            ctx.datastore
        )?;
    } else {
        let rows: Vec<Vec<String>> = entries
            .iter()
            .map(|e| {
                vec![
                    short_time(&e.at),
                    e.label.clone(),
                    e.action.to_string(),
                    e.run_id
                        .as_ref()
                        .map_or_else(|| "-".to_owned(), ToString::to_string),
                    escape_controls(&e.user).into_owned(),
                    escape_controls(&e.host).into_owned(),
                ]
            })
            .collect();
        ctx.out.write_all(
            table(
                &["WHEN", "LABEL", "ACTION", "RUN ID", "USER", "HOST"],
                &rows,
            )
            .as_bytes(),
        )?;
    }
    Ok(())
}
