//! What Argo reads as output parameters, written by `step … --argo-outputs DIR` and
//! `init --argo-outputs DIR` into files of DIR.

use std::path::Path;

use super::error::CliError;
use crate::argo;
use crate::executor::task_id_of;
use crate::flow::Flow;
use crate::graph::{FlowGraph, IdPart, Loops, Transition};
use crate::run::{FrameRecord, RunStore};

/// After `step … --argo-outputs DIR` ran its task: writes a foreach's child task ids and a
/// switch's choice where Argo reads its output parameters.
pub(crate) fn write_step_outputs<F: Flow>(
    store: &RunStore,
    run_id: &str,
    step: &str,
    task_id: &str,
    dir: &Path,
) -> Result<(), CliError> {
    let graph = F::GRAPH;
    let Some(spec) = graph.step(step) else {
        return Ok(());
    };
    let key = RunStore::task_key(graph.name, run_id, step, task_id)?;
    let Some((_, Some(meta))) = store.read_done(&key)? else {
        return Err(CliError::failure(format!(
            "task {step}/{task_id} of run {run_id} left no record to read its outputs from"
        )));
    };
    match spec.transition {
        Transition::Foreach { .. } => {
            let record = meta.foreach.ok_or_else(|| {
                CliError::failure(format!(
                    "the foreach task {step}/{task_id} recorded no elements"
                ))
            })?;
            let path = crate::run::TaskPath {
                step: step.into(),
                task: task_id.into(),
            };
            let count = crate::executor::checked_foreach_count(store, &path, &record)
                .map_err(CliError::failure)?;
            let mut parts: Vec<IdPart> = meta
                .spec
                .frames
                .iter()
                .filter_map(FrameRecord::id_part)
                .collect();
            parts.push(IdPart::Element(0));
            let children: Vec<String> = (0..count)
                .map(|i| {
                    if let Some(last) = parts.last_mut() {
                        *last = IdPart::Element(i);
                    }
                    task_id_of(&parts)
                })
                .collect();
            let json = serde_json::to_string(&children)
                .map_err(|e| CliError::failure(format!("cannot write the task ids: {e}")))?;
            write_output(dir, argo::FOREACH_FILE, &json)
        }
        Transition::Switch(_) => {
            let chose = meta.chose.clone().ok_or_else(|| {
                CliError::failure(format!("the switch {step}/{task_id} recorded no choice"))
            })?;
            write_output(dir, argo::SWITCH_FILE, &chose)?;
            let Some(s) = graph.step_index(step) else {
                return Ok(());
            };
            let loops = Loops::of(graph);
            if !spec.transition.targets().any(|t| loops.is_back_arm(s, t)) {
                return Ok(());
            }
            let target = graph.step_index(&chose).ok_or_else(|| {
                CliError::failure(format!(
                    "the switch {step}/{task_id} chose `{chose}`, which is no step of this flow"
                ))
            })?;
            let next = next_task_id(graph, &loops, s, target, &meta.spec.frames);
            write_output(dir, argo::NEXT_TASK_FILE, &next)
        }
        _ => Ok(()),
    }
}

/// The task id of the task of `target` that a switch `s` running in `frames` hands over to: the
/// next pass when it goes back to a loop's head, else its own id without the loops it leaves
/// and with the first pass of a loop `target` heads.
fn next_task_id(
    graph: &FlowGraph,
    loops: &Loops,
    s: usize,
    target: usize,
    frames: &[FrameRecord],
) -> String {
    let target_name = graph.steps[target].name;
    let mut parts: Vec<IdPart> = if loops.is_back_arm(s, target) {
        let at = frames
            .iter()
            .rposition(|f| f.is_loop && f.split == target_name)
            .unwrap_or(frames.len());
        let mut kept: Vec<IdPart> = frames[..at]
            .iter()
            .filter_map(FrameRecord::id_part)
            .collect();
        let pass = frames.get(at).map_or(0, |f| f.index + 1);
        kept.push(IdPart::Pass(pass));
        return task_id_of(&kept);
    } else {
        frames
            .iter()
            .filter(|f| {
                !f.is_loop
                    || graph
                        .step_index(&f.split)
                        .is_some_and(|head| loops.head_contains(head, target))
            })
            .filter_map(FrameRecord::id_part)
            .collect()
    };
    if loops.headed_by(target).is_some() {
        parts.push(IdPart::Pass(0));
    }
    task_id_of(&parts)
}

/// Writes `text` to the file `file` of `dir`, making `dir` if it is missing.
pub(crate) fn write_output(dir: &Path, file: &str, text: &str) -> Result<(), CliError> {
    std::fs::create_dir_all(dir)
        .and_then(|()| std::fs::write(dir.join(file), text))
        .map_err(|e| CliError::failure(format!("cannot write {}: {e}", dir.join(file).display())))
}
