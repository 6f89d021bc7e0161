//! `finish`: records how a run started with `init` ended, from what its tasks left.

use clap::{Arg, ArgMatches, Command};

use super::CliResult;
use crate::cli::args::{check_segment, required};
use crate::cli::context::Ctx;
use crate::cli::error::CliError;
use crate::flow::Flow;
use crate::graph::FlowGraph;
use crate::run::{RunStatus, RunStore, TaskStatus, now_rfc3339};

pub(crate) fn cli() -> Command {
    Command::new("finish")
        .about("Records how a run started with `init` ended, from what its tasks left")
        .long_about(
            "Marks a run started with `init` as succeeded if its `end` task completed, else as \
             failed with the first failed task's error, and moves the flow's `latest` pointers. \
             Safe to repeat. An empty run id (a run that was never created) is reported and \
             ignored.",
        )
        .arg(
            Arg::new("run-id")
                .long("run-id")
                .value_name("ID")
                .required(true)
                .help("The run"),
        )
}

pub(crate) fn exec<F: Flow>(ctx: &mut Ctx<'_>, args: &ArgMatches) -> CliResult {
    let graph = F::GRAPH;
    let flow = graph.name;
    let run_id = required(args, "run-id");
    if run_id.is_empty() {
        // Argo's exit handler runs even when `init` failed before creating a run.
        writeln!(ctx.err, "No run to finish: none was created.")?;
        return Ok(());
    }
    check_segment(run_id, "run id")?;
    let store = ctx.open_existing()?;
    let mut record = store.read_run(flow, run_id)?;
    let end = graph.steps[graph.end].name;
    let end_key = RunStore::task_key(flow, run_id, end, "0")?;
    if store.read_done(&end_key)?.is_some() {
        record.status = RunStatus::Succeeded;
        record.failure = None;
    } else {
        record.status = RunStatus::Failed;
        record.failure = Some(
            first_failure(&store, F::GRAPH, run_id)?
                .unwrap_or_else(|| "the run stopped before reaching `end`".to_string()),
        );
    }
    record.finished = Some(now_rfc3339());
    store.update_run(&record)?;
    match &record.failure {
        None => writeln!(ctx.out, "Run {run_id} of {flow} succeeded.")?,
        Some(why) => writeln!(ctx.out, "Run {run_id} of {flow} failed: {why}")?,
    }
    Ok(())
}

/// The first task of the run, in graph order, that failed for good.
fn first_failure(
    store: &RunStore,
    graph: &FlowGraph,
    run_id: &str,
) -> Result<Option<String>, CliError> {
    let present = store.list_steps(graph.name, run_id)?;
    for step in graph
        .steps
        .iter()
        .filter(|s| present.iter().any(|p| p == s.name))
    {
        for task in store.list_tasks(graph.name, run_id, step.name)? {
            let key = RunStore::task_key(graph.name, run_id, step.name, &task)?;
            if let Some(meta) = store.read_meta(&key)?
                && meta.status == TaskStatus::Failed
            {
                let failure = meta
                    .failure()
                    .map_or_else(|| "it failed".to_string(), ToString::to_string);
                return Ok(Some(format!("task {}/{task} failed: {failure}", step.name)));
            }
        }
    }
    Ok(None)
}
