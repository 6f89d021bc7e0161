//! The runs, steps and tasks the reading commands name, found with the client and explained in
//! the CLI's words (with the command that lists what there is).

use super::context::Ctx;
use super::error::CliError;
use crate::client::{Client, ClientError, RunHandle, StepHandle, TaskEntry};

/// The run `run` names (`latest` for the flow's newest run).
pub(crate) fn run(
    ctx: &Ctx<'_>,
    client: &Client,
    flow: &str,
    run: &str,
) -> Result<RunHandle, CliError> {
    client
        .flow(flow)
        .run_or_latest(run)
        .map_err(|e| missing_run(ctx, flow, e, "has no runs"))
}

/// `e`, said as the CLI says it when it is a missing run: `no_runs` says what a flow without
/// runs lacks ("has no runs").
pub(crate) fn missing_run(ctx: &Ctx<'_>, flow: &str, e: ClientError, no_runs: &str) -> CliError {
    match e {
        ClientError::NoRuns { .. } => {
            CliError::usage(format!("flow {flow} {no_runs} in {}", ctx.datastore))
        }
        ClientError::NoSuchRun { run_id, .. } => CliError::usage(format!(
            "flow {flow} has no run `{run_id}` in {} (list them with `{}`)",
            ctx.datastore,
            ctx.suggest("runs")
        )),
        other => other.into(),
    }
}

/// Step `step` of `run`.
pub(crate) fn step(run: &RunHandle, step: &str) -> Result<StepHandle, CliError> {
    run.step(step).map_err(|e| match e {
        ClientError::NoSuchStep { .. } => {
            let record = run.record();
            let names: Vec<&str> = record.graph.steps.iter().map(|s| s.name.as_str()).collect();
            CliError::usage(format!(
                "run {} of flow {} has no step `{step}`; its steps are {}",
                record.run_id,
                record.flow,
                names.join(", ")
            ))
        }
        other => other.into(),
    })
}

/// The task of `step` that `task` names, or the step's only task.
pub(crate) fn task(
    ctx: &Ctx<'_>,
    step: &StepHandle,
    run_id: &str,
    task: Option<&str>,
) -> Result<TaskEntry, CliError> {
    let name = step.name();
    let found = match task {
        Some(t) => step.task_entry(t),
        None => step.only_task(),
    };
    let e = match found {
        Ok(entry) => return Ok(entry),
        Err(e) => e,
    };
    Err(match (e, task) {
        (ClientError::NoSuchTask { .. }, Some(t)) => {
            let tasks = step.task_ids()?;
            if tasks.is_empty() {
                CliError::usage(format!(
                    "step `{name}` of run {run_id} has no task `{t}`: the run did not reach that step"
                ))
            } else {
                let mut shown = tasks
                    .iter()
                    .take(10)
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", ");
                if tasks.len() > 10 {
                    shown.push_str(&format!(", … ({} in all)", tasks.len()));
                }
                CliError::usage(format!(
                    "step `{name}` of run {run_id} has no task `{t}`; its tasks are {shown}"
                ))
            }
        }
        (ClientError::NoTasks { .. }, _) => CliError::usage(format!(
            "step `{name}` of run {run_id} has no tasks: the run did not reach it"
        )),
        (ClientError::SeveralTasks { count, .. }, _) => CliError::usage(format!(
            "step `{name}` of run {run_id} has {count} tasks; name one as {run_id}/{name}/TASK (list them with `{}`)",
            ctx.suggest(&format!("dump {run_id}/{name}"))
        )),
        (other, _) => other.into(),
    })
}
