//! `spin`: one task of a past run, run again with this binary from what that run gave it, into a
//! scratch run of its own. Editing a step then costs that step, not the flow from its start.
//!
//! The scratch run is an ordinary run in the datastore (its task reads whole with the client,
//! `dump`, the UI), recorded with the task it spun (`RunRecord::spin_of`) and never made the
//! flow's latest run. The origin run is only read.

use std::sync::Arc;

use super::from_spec::pending_from_spec;
use super::{RunContext, RunError, run_provenance, task};
use crate::datastore::{ArtifactEntry, TaskIndex};
use crate::flow::Flow;
use crate::run::{
    RunId, RunRecord, RunStatus, RunStore, RunStoreError, TaskFailure, TaskPath, new_run_id,
    now_rfc3339,
};

/// What a spin did.
#[derive(Debug)]
#[non_exhaustive]
pub struct SpinSummary {
    /// The scratch run the task ran in.
    pub run_id: RunId,
    /// The run whose task was spun.
    pub origin_run_id: RunId,
    /// The task, the same step and id in both runs.
    pub task: TaskPath,
    /// Why the task failed this time, if it did.
    pub failure: Option<TaskFailure>,
    /// The artifacts that differ from the origin task's, in the order the new task lists them
    /// (then those only the origin task had).
    pub changed: Vec<ArtifactChange>,
    /// How many artifacts are the same in both.
    pub unchanged: usize,
}

/// One artifact that differs between the origin task and its spin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArtifactChange {
    /// The artifact's name.
    pub name: String,
    /// In the origin task; `None` when it had no such artifact (or did not complete).
    pub before: Option<ArtifactEntry>,
    /// In the spin; `None` when it has no such artifact (or failed).
    pub after: Option<ArtifactEntry>,
}

/// Runs task `step`/`task_id` of run `origin_run_id` again with this binary's `F`, from the
/// inputs that run gave it, into a new scratch run; compares its artifacts with the origin's.
///
/// # Errors
///
/// [`RunError::Spin`] when the origin run has no such task or it never started (there is
/// nothing to start it from), or a task it starts from is gone; storage errors as they come.
/// A failure of the step's own code is no error: it is in [`SpinSummary::failure`].
pub fn spin_task<F: Flow>(
    store: &RunStore,
    origin_run_id: &str,
    step: &str,
    task_id: &str,
) -> Result<SpinSummary, RunError> {
    let graph = F::GRAPH;
    let refuse = |reason: String| RunError::Spin {
        run_id: origin_run_id.to_string(),
        reason,
    };
    if graph.step_index(step).is_none() {
        return Err(refuse(format!(
            "flow `{}` has no step `{step}`",
            graph.name
        )));
    }
    let origin = store.read_run(graph.name, origin_run_id)?;
    let key = RunStore::task_key(graph.name, origin_run_id, step, task_id)?;
    let spec = match store.read_meta(&key)? {
        Some(meta) => meta.spec,
        None => match store.read_spec(&key)? {
            Some(spec) => spec,
            None => {
                return Err(refuse(format!(
                    "it has no task {step}/{task_id} that started: `dump {origin_run_id}/{step}` \
                     lists its tasks"
                )));
            }
        },
    };
    let before = store.read_index(&key)?;

    let mut record = create_scratch_run::<F>(
        store,
        &origin,
        TaskPath {
            step: step.into(),
            task: task_id.into(),
        },
    )?;
    let ctx = RunContext {
        store: store.clone(),
        flow: graph.name,
        run_id: record.run_id.clone(),
        params: origin.params.clone(),
        origin: None,
        cancel: Arc::default(),
        known_blobs: Arc::default(),
        keep_checkpoints: origin.keep_checkpoints,
    };
    let outcome = pending_from_spec::<F>(&ctx, origin_run_id, &spec)
        .map(|pending| task::execute(&ctx, pending));
    let failure = match outcome {
        Ok(Ok(_)) => None,
        Ok(Err(failed)) => Some(*failed.failure),
        Err(e) => {
            record.status = RunStatus::Failed;
            record.finished = Some(now_rfc3339());
            record.failure = Some(e.to_string());
            store.update_run(&record)?;
            return Err(e);
        }
    };
    record.status = if failure.is_some() {
        RunStatus::Failed
    } else {
        RunStatus::Succeeded
    };
    record.finished = Some(now_rfc3339());
    record.failure = failure
        .as_ref()
        .map(|f| format!("task {step}/{task_id} failed: {}", f.message));
    store.update_run(&record)?;

    let after_key = RunStore::task_key(graph.name, &record.run_id, step, task_id)?;
    let after = store.read_index(&after_key)?;
    let (changed, unchanged) = compare(before.as_ref(), after.as_ref());
    Ok(SpinSummary {
        run_id: record.run_id,
        origin_run_id: origin.run_id,
        task: TaskPath {
            step: step.into(),
            task: task_id.into(),
        },
        failure,
        changed,
        unchanged,
    })
}

/// A run record for the spin of `task` of `origin`, created in `store`; unlike a run's, it
/// moves no latest pointer.
fn create_scratch_run<F: Flow>(
    store: &RunStore,
    origin: &RunRecord,
    task: TaskPath,
) -> Result<RunRecord, RunError> {
    let mut attempts = 0;
    loop {
        let mut record = RunRecord::starting(
            F::GRAPH,
            new_run_id(),
            origin.params.clone(),
            Vec::new(),
            Some(origin.run_id.clone()),
        );
        record.provenance = Some(run_provenance::<F>());
        record.spin_of = Some(task.clone());
        match store.create_run(&record) {
            Ok(()) => return Ok(record),
            Err(RunStoreError::RunExists { .. }) if attempts < 5 => attempts += 1,
            Err(e) => return Err(e.into()),
        }
    }
}

/// The artifacts that differ by name or by content between two tasks' indexes, and how many
/// are the same.
fn compare(before: Option<&TaskIndex>, after: Option<&TaskIndex>) -> (Vec<ArtifactChange>, usize) {
    let empty = Vec::new();
    let before = before.map_or(&empty, |i| &i.artifacts);
    let after = after.map_or(&empty, |i| &i.artifacts);
    let find = |list: &[ArtifactEntry], name: &str| list.iter().find(|e| e.name == name).cloned();
    let mut changed = Vec::new();
    let mut unchanged = 0;
    for entry in after {
        match find(before, &entry.name) {
            Some(old) if old.hash == entry.hash => unchanged += 1,
            old => changed.push(ArtifactChange {
                name: entry.name.clone(),
                before: old,
                after: Some(entry.clone()),
            }),
        }
    }
    for entry in before.iter().filter(|e| find(after, &e.name).is_none()) {
        changed.push(ArtifactChange {
            name: entry.name.clone(),
            before: Some(entry.clone()),
            after: None,
        });
    }
    (changed, unchanged)
}
