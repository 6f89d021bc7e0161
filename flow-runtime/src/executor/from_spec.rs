//! A task ready to run, made from its stored spec: what the `step` command runs (the spec
//! written by process mode's or Slurm's coordinator, or derived for Argo) and what `spin` runs
//! again.

use std::sync::Arc;

use super::task::load_items;
use super::{Frame, FrameKind, JoinInput, PendingInput, PendingTask, RunContext, RunError};
use crate::flow::Flow;
use crate::run::{InputSpec, RunStore, TaskPath, TaskSpec};

/// The task `spec` describes, to run in the run of `ctx`, starting from the tasks of run
/// `parents_run` it names (the same run, or for `spin` the run it spins a task of).
pub(crate) fn pending_from_spec<F: Flow>(
    ctx: &RunContext,
    parents_run: &str,
    spec: &TaskSpec,
) -> Result<PendingTask<F>, RunError> {
    let graph = F::GRAPH;
    let store = &ctx.store;
    let run_id = parents_run;
    let step_index = graph.step_index(&spec.step).ok_or_else(|| {
        RunError::Task(format!("flow `{}` has no step `{}`", graph.name, spec.step))
    })?;
    let parent_index = |parent: &TaskPath| -> Result<Arc<crate::datastore::TaskIndex>, RunError> {
        let parent_key = RunStore::task_key(graph.name, run_id, &parent.step, &parent.task)?;
        store
            .read_index(&parent_key)?
            .map(Arc::new)
            .ok_or_else(|| RunError::Task(format!("task {parent} of run {run_id} is not complete")))
    };
    let input = match &spec.input {
        InputSpec::Start => PendingInput::<F>::Start,
        InputSpec::Parent { parent } => PendingInput::Parent {
            path: parent.clone(),
            index: parent_index(parent)?,
            state: None,
        },
        InputSpec::Item { parent, position } => {
            // One read: the done marker holds the split's index and its foreach record.
            let parent_key = RunStore::task_key(graph.name, run_id, &parent.step, &parent.task)?;
            let Some((index, meta)) = store.read_done(&parent_key)? else {
                return Err(RunError::Task(format!(
                    "task {parent} of run {run_id} is not complete"
                )));
            };
            let Some(foreach) = meta.and_then(|m| m.foreach) else {
                return Err(RunError::Task(format!(
                    "task {parent} of run {run_id} recorded no foreach elements"
                )));
            };
            let items =
                load_items(ctx, &foreach.items).map_err(|f| RunError::Task(f.to_string()))?;
            PendingInput::Item {
                path: parent.clone(),
                index: Arc::new(index),
                state: None,
                items: Arc::new(items),
                position: *position,
            }
        }
        InputSpec::Join { base, inputs } => PendingInput::Join {
            base: (base.clone(), parent_index(base)?),
            inputs: inputs
                .iter()
                .enumerate()
                .map(|(position, p)| {
                    Ok(JoinInput {
                        path: p.clone(),
                        position,
                        index: parent_index(p)?,
                    })
                })
                .collect::<Result<_, RunError>>()?,
        },
    };
    let frames = spec
        .frames
        .iter()
        .map(|f| {
            graph
                .step_index(&f.split)
                .map(|split| Frame {
                    split,
                    index: f.index,
                    count: f.count,
                    kind: if f.is_loop {
                        FrameKind::Loop
                    } else if f.foreach {
                        FrameKind::Foreach
                    } else {
                        FrameKind::Branch
                    },
                })
                .ok_or_else(|| {
                    RunError::Task(format!(
                        "the task spec names a split `{}` this flow does not have",
                        f.split
                    ))
                })
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(PendingTask {
        step: step_index,
        task_id: spec.task_id.clone(),
        frames,
        input,
        parents_reused: false,
    })
}
