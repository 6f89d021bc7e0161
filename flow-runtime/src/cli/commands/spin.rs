//! `spin`: runs one step again from what a past run gave it, with this binary, into a scratch
//! run; prints the artifacts that changed. The origin run is found with the client; the task
//! runs through the executor.

use std::io::BufReader;

use clap::{Arg, ArgMatches, Command};

use super::CliResult;
use crate::cli::args::{check_segment, required};
use crate::cli::context::Ctx;
use crate::cli::error::CliError;
use crate::cli::lookup;
use crate::cli::table::{human_size, table};
use crate::cli::terminal::escape_controls;
use crate::client::value::{Limits, MsgStream, preview, short_type_name};
use crate::client::{Client, LATEST, TaskEntry};
use crate::datastore::ArtifactEntry;
use crate::executor;
use crate::flow::Flow;

/// Artifacts at most this large are shown before and after, in one line each.
const SHOWN_SIZE: u64 = 4096;

pub(crate) fn cli() -> Command {
    Command::new("spin")
        .about(
            "Runs one step again from what a past run gave it, with this binary, into a scratch \
             run; prints the artifacts that changed",
        )
        .arg(
            Arg::new("step")
                .value_name("STEP")
                .required(true)
                .help("The step to run again"),
        )
        .arg(
            Arg::new("origin-run-id")
                .long("origin-run-id")
                .value_name("ID")
                .help("The run whose task runs again [default: the latest run of this flow]"),
        )
        .arg(
            Arg::new("task-id")
                .long("task-id")
                .value_name("T")
                .help("The task of STEP [default: its only task]"),
        )
}

pub(crate) fn exec<F: Flow>(ctx: &mut Ctx<'_>, args: &ArgMatches) -> CliResult {
    let graph = F::GRAPH;
    let step = required(args, "step");
    if graph.step_index(step).is_none() {
        let names: Vec<&str> = graph.steps.iter().map(|s| s.name).collect();
        return Err(CliError::usage(format!(
            "flow {} has no step `{step}`; its steps are {}",
            graph.name,
            names.join(", ")
        )));
    }
    let run = args
        .get_one::<String>("origin-run-id")
        .map_or(LATEST, String::as_str);
    if run != LATEST {
        check_segment(run, "run id")?;
    }
    let store = ctx.open_existing()?;
    let client = Client::with_store(store.clone());
    let origin = lookup::run(ctx, &client, graph.name, run)?;
    let task_id = match args.get_one::<String>("task-id") {
        Some(id) => {
            check_segment(id, "task id")?;
            id.clone()
        }
        None => {
            let ids = origin
                .step(step)
                .and_then(|s| s.task_ids())
                .unwrap_or_default();
            match ids.as_slice() {
                [only] => only.to_string(),
                [] => {
                    return Err(CliError::usage(format!(
                        "run {} has no task of step `{step}` to spin",
                        origin.id()
                    )));
                }
                many => {
                    let shown: Vec<&str> = many.iter().take(5).map(|i| i.as_str()).collect();
                    return Err(CliError::usage(format!(
                        "step `{step}` has {} tasks in run {}: name one with --task-id ({}{})",
                        many.len(),
                        origin.id(),
                        shown.join(", "),
                        if many.len() > shown.len() {
                            ", …"
                        } else {
                            ""
                        }
                    )));
                }
            }
        }
    };
    let summary = executor::spin_task::<F>(&store, origin.id(), step, &task_id)?;
    writeln!(
        ctx.out,
        "Spun task {} of run {} into run {} (a scratch run: it never becomes the latest).",
        summary.task, summary.origin_run_id, summary.run_id
    )?;
    let scratch = client.flow(graph.name).run(&summary.run_id).ok();
    let origin_task = origin.step(step).and_then(|s| s.task_entry(&task_id)).ok();
    let new_task = scratch
        .as_ref()
        .and_then(|r| r.step(step).and_then(|s| s.task_entry(&task_id)).ok());
    let changed = summary.changed.len();
    writeln!(
        ctx.out,
        "{changed} artifact{} changed, {} unchanged{}",
        if changed == 1 { "" } else { "s" },
        summary.unchanged,
        if changed == 0 { "." } else { ":" }
    )?;
    if changed > 0 {
        let rows: Vec<Vec<String>> = summary
            .changed
            .iter()
            .map(|c| {
                let side = |e: &Option<ArtifactEntry>| {
                    e.as_ref().map_or("(none)".to_string(), |e| {
                        let hash = e.hash.to_string();
                        format!("{} {}", human_size(e.size), hash.get(..12).unwrap_or(&hash))
                    })
                };
                let kind = c.after.as_ref().or(c.before.as_ref());
                vec![
                    c.name.clone(),
                    kind.map(|e| short_type_name(&e.type_name))
                        .unwrap_or_default(),
                    side(&c.before),
                    side(&c.after),
                ]
            })
            .collect();
        ctx.out
            .write_all(table(&["ARTIFACT", "TYPE", "BEFORE", "AFTER"], &rows).as_bytes())?;
        for change in &summary.changed {
            let shown = |task: Option<&TaskEntry>, entry: &Option<ArtifactEntry>| {
                one_line(task?, entry.as_ref()?)
            };
            if let (Some(before), Some(after)) = (
                shown(origin_task.as_ref(), &change.before),
                shown(new_task.as_ref(), &change.after),
            ) {
                writeln!(
                    ctx.out,
                    "  {}: {} → {}",
                    change.name,
                    escape_controls(&before),
                    escape_controls(&after)
                )?;
            }
        }
    }
    let inspect = ctx.suggest(&format!("dump {}/{}", summary.run_id, summary.task));
    writeln!(ctx.out, "Inspect it with: {inspect}")?;
    match summary.failure {
        None => Ok(()),
        Some(failure) => Err(CliError::failure(format!(
            "task {} failed in the spin: {}",
            summary.task, failure.message
        ))),
    }
}

/// A small artifact's value on one line; `None` for a large one, or one that cannot be read.
fn one_line(task: &TaskEntry, entry: &ArtifactEntry) -> Option<String> {
    if entry.size > SHOWN_SIZE {
        return None;
    }
    let mut blob = task.open_artifact(entry).ok()?;
    let limits = Limits {
        items: 8,
        chars: 60,
        lines: 1000,
        ..Limits::default()
    };
    let shown = preview(&mut MsgStream::new(BufReader::new(&mut blob)), limits).ok()?;
    blob.finish().ok()?;
    let line: String = shown.text.split_whitespace().collect::<Vec<_>>().join(" ");
    let mut chars = line.chars();
    let short: String = chars.by_ref().take(100).collect();
    Some(if chars.next().is_some() {
        format!("{short}…")
    } else {
        short
    })
}
