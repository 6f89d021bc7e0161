//! `runs`: this flow's runs, newest first, as a table or JSON.

use clap::{ArgMatches, Command};
use serde_json::{Value as Json, json};

use super::CliResult;
use crate::cli::args::{json_arg, tag_arg, tags};
use crate::cli::context::Ctx;
use crate::cli::error::{CliError, chain};
use crate::cli::table::{between, human_duration, short_time, since, table};
use crate::cli::terminal::write_json_line;
use crate::client::RunList;
use crate::flow::Flow;
use crate::run::{RunRecord, RunStatus};

pub(crate) fn cli() -> Command {
    Command::new("runs")
        .about("Lists this flow's runs, newest first")
        .arg(tag_arg(
            "Only runs with TAG (repeatable: runs with every TAG)",
        ))
        .arg(json_arg("Prints the runs as a JSON array"))
}

pub(crate) fn exec<F: Flow>(ctx: &mut Ctx<'_>, args: &ArgMatches) -> CliResult {
    let flow = F::GRAPH.name;
    let wanted = tags(args);
    let as_json = args.get_flag("json");
    // No datastore yet: no runs, as for a flow that never ran.
    let RunList { runs, unreadable } = if ctx.has_datastore() {
        ctx.open_client()?.flow(flow).list_runs()?
    } else {
        RunList::default()
    };
    let records: Vec<&RunRecord> = runs
        .iter()
        .map(|run| run.record())
        .filter(|r| wanted.iter().all(|t| r.tags.contains(t)))
        .collect();
    if as_json {
        let list: Vec<Json> = records.iter().map(|r| run_json(r)).collect();
        write_json_line(&mut *ctx.out, &list)?;
    } else if records.is_empty() && unreadable.is_empty() {
        let filter = if wanted.is_empty() {
            String::new()
        } else {
            " with these tags".to_owned()
        };
        writeln!(
            ctx.out,
            "No runs of flow {flow}{filter} in {}.",
            ctx.datastore
        )?;
    } else {
        let rows: Vec<Vec<String>> = records
            .iter()
            .map(|r| {
                vec![
                    r.run_id.to_string(),
                    r.status.to_string(),
                    short_time(&r.started),
                    duration_text(r),
                    r.tags.join(","),
                    origin_text(r),
                ]
            })
            .collect();
        ctx.out.write_all(
            table(
                &["RUN ID", "STATUS", "STARTED", "DURATION", "TAGS", "FROM"],
                &rows,
            )
            .as_bytes(),
        )?;
    }
    if unreadable.is_empty() {
        return Ok(());
    }
    for run in &unreadable {
        writeln!(
            ctx.err,
            "error: run {} cannot be read: {}",
            run.run_id,
            chain(&run.error)
        )?;
    }
    Err(CliError::silent_failure())
}

/// How long a run took, or has been going.
pub(crate) fn duration_text(r: &RunRecord) -> String {
    match (r.status, between(&r.started, r.finished.as_deref())) {
        (_, Some(d)) => human_duration(d),
        (RunStatus::Running, None) => {
            since(&r.started).map_or_else(String::new, |d| format!("{} so far", human_duration(d)))
        }
        _ => String::new(),
    }
}

/// Where a run came from: `resumed RUN`, `spin of RUN/STEP/TASK`, or nothing for a new run.
fn origin_text(r: &RunRecord) -> String {
    match (&r.origin_run_id, &r.spin_of) {
        (Some(origin), Some(task)) => format!("spin of {origin}/{task}"),
        (Some(origin), None) => format!("resumed {origin}"),
        (None, _) => String::new(),
    }
}

/// A run record as `runs --json` and `dump RUN --json` print it.
pub(crate) fn run_json(r: &RunRecord) -> Json {
    json!({
        "run_id": r.run_id,
        "flow": r.flow,
        "status": r.status,
        "started": r.started,
        "finished": r.finished,
        "duration_secs": between(&r.started, r.finished.as_deref()).map(|d| d.as_secs_f64()),
        "tags": r.tags,
        "origin_run_id": r.origin_run_id,
        "spin_of": r.spin_of.as_ref().map(ToString::to_string),
        "params": r.params,
        "user": r.user,
        "host": r.host,
        "failure": r.failure,
    })
}
