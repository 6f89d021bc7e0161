//! One task from start to finish: its input state, its attempts, and what it leaves in the
//! datastore.

use std::sync::Arc;

use serde_bytes::ByteBuf;

use super::attempt::{AttemptInput, run_attempt, set_phase};
use super::store_inputs::{StoreInputs, StoredInput};
use super::{Finished, Frame, FrameKind, PendingInput, PendingTask, RunContext};
use crate::checkpoint::TaskCheckpoints;
use crate::current::{Current, ForeachFrame};
use crate::datastore::{BlobHash, TaskError, TaskIndex};
use crate::flow::{Flow, StateOwned, StateRef, StepOutcome, duplicate, initial};
use crate::graph::Transition;
use crate::inputs::Inputs;
use crate::logs::TaskLog;
use crate::run::{
    AttemptRecord, ForeachRecord, InputSpec, RunStoreError, TaskFailure, TaskId, TaskMeta,
    TaskPath, TaskSpec, TaskStatus, now_rfc3339,
};

/// Why a task did not complete.
#[derive(Debug, Clone)]
pub(crate) struct TaskFailed {
    pub path: TaskPath,
    pub failure: Box<TaskFailure>,
}

impl TaskFailed {
    pub fn new(path: TaskPath, failure: TaskFailure) -> Self {
        TaskFailed {
            path,
            failure: Box::new(failure),
        }
    }
}

/// A task's stored state, and for a foreach split its elements.
type Persisted = (Arc<TaskIndex>, Option<(ForeachRecord, Arc<Vec<Vec<u8>>>)>);

pub(crate) fn runtime_failure(message: impl Into<String>) -> TaskFailure {
    TaskFailure {
        kind: "runtime".into(),
        message: message.into(),
        causes: Vec::new(),
        location: None,
    }
}

/// The id of a task: the indices of its open foreach splits and the passes of its loops, `0`
/// outside any.
pub(crate) fn task_id(frames: &[Frame]) -> TaskId {
    let parts: Vec<_> = frames.iter().filter_map(Frame::id_part).collect();
    crate::graph::task_id_of(&parts).into()
}

/// The stored form of a pending task.
pub(crate) fn spec_of<F: Flow>(pending: &PendingTask<F>) -> TaskSpec {
    let graph = F::GRAPH;
    let frames = pending.frames.iter().map(|f| f.record(graph)).collect();
    let input = match &pending.input {
        PendingInput::Start => InputSpec::Start,
        PendingInput::Parent { path, .. } => InputSpec::Parent {
            parent: path.clone(),
        },
        PendingInput::Item { path, position, .. } => InputSpec::Item {
            parent: path.clone(),
            position: *position,
        },
        PendingInput::Join { base, inputs } => InputSpec::Join {
            base: base.0.clone(),
            inputs: inputs.iter().map(|i| i.path.clone()).collect(),
        },
    };
    TaskSpec {
        step: graph.steps[pending.step].name.into(),
        task_id: pending.task_id.clone(),
        frames,
        input,
    }
}

/// Runs a task in this process and records it in the datastore.
pub(crate) fn execute<F: Flow>(
    ctx: &RunContext,
    mut pending: PendingTask<F>,
) -> Result<Finished<F>, TaskFailed> {
    let graph = F::GRAPH;
    let step = &graph.steps[pending.step];
    let path = pending.path();
    let fail = |failure: TaskFailure| TaskFailed::new(path.clone(), failure);
    let key = ctx
        .task_key(step.name, &pending.task_id)
        .map_err(|e| fail(runtime_failure(e.to_string())))?;
    let spec = spec_of(&pending);
    let context = format!(
        "run {}, step {}, task {}",
        ctx.run_id, step.name, pending.task_id
    );

    // The index of the state this task starts from: large fields the step leaves alone are
    // recognised against it without being written again.
    let derived_from = match &pending.input {
        PendingInput::Start => None,
        PendingInput::Parent { index, .. } | PendingInput::Item { index, .. } => {
            Some(index.clone())
        }
        PendingInput::Join { base, .. } => Some(base.1.clone()),
    };
    let taken = std::mem::replace(&mut pending.input, PendingInput::Start);
    set_phase("preparing its input state");
    let (prepared, input) = prepare(ctx, taken, &context).map_err(fail)?;
    let current = Current::new(
        graph.name,
        ctx.run_id.clone(),
        step.name,
        pending.task_id.clone(),
        0,
        pending
            .frames
            .iter()
            .filter(|f| f.kind == FrameKind::Foreach)
            .map(|f| ForeachFrame {
                step: graph.steps[f.split].name,
                index: f.index,
                count: f.count,
            })
            .collect(),
    );
    let checkpoints = Arc::new(TaskCheckpoints::new(
        ctx.store.clone(),
        graph.name,
        ctx.run_id.clone(),
        step.name,
        &pending.task_id,
    ));
    let current = current.with_checkpoints(Arc::clone(&checkpoints));

    let options = step.options;
    let mut attempts = Vec::new();
    let mut prepared = Some(prepared);
    let mut success = None;
    for attempt in 0..=options.retries {
        let last = attempt == options.retries;
        set_phase("copying its input state");
        // The last attempt of a step without `catch` may consume the prepared state.
        let state = match (&prepared, last && options.catch.is_none()) {
            (Some(_), true) => prepared
                .take()
                .ok_or_else(|| fail(runtime_failure("no input state")))?,
            (Some(p), false) => duplicate(p),
            (None, _) => return Err(fail(runtime_failure("no input state"))),
        };
        let log = TaskLog::new();
        let started = now_rfc3339();
        let mut current = current.clone().with_new_card();
        current.attempt = attempt;
        let card = current.card();
        let result = run_attempt(
            state,
            pending.step,
            input.for_attempt(),
            current,
            &log,
            options.timeout,
        );
        let (outcome, state) = match result {
            Ok(r) => (r.outcome, Some(r.state)),
            Err(failure) => (Err(failure), None),
        };
        let failure = outcome.as_ref().err().cloned();
        let log_bytes = log.take();
        if !log_bytes.is_empty() {
            ctx.store
                .write_log(&key, attempt, &log_bytes)
                .map_err(|e| fail(runtime_failure(e.to_string())))?;
        }
        // Stored like the log, before the done marker: a failed attempt's card is kept too.
        let card = card.take();
        if !card.is_empty() {
            let encoded = crate::card::encode(&card)
                .map_err(|e| fail(runtime_failure(format!("cannot encode the card: {e}"))))?;
            ctx.store
                .write_card(&key, attempt, &encoded)
                .map_err(|e| fail(runtime_failure(format!("cannot store the card: {e}"))))?;
        }
        attempts.push(AttemptRecord {
            attempt,
            started,
            finished: now_rfc3339(),
            failure,
        });
        if let (Ok(outcome), Some(state)) = (outcome, state) {
            success = Some((state, outcome, TaskStatus::Succeeded));
            break;
        }
    }

    let (state, outcome, status) = match success {
        Some(s) => s,
        None => {
            let failure = attempts
                .last()
                .and_then(|a| a.failure.clone())
                .unwrap_or_else(|| runtime_failure("the step failed"));
            let catchable = !matches!(step.transition, Transition::Switch(_));
            match (options.catch, prepared.take()) {
                (Some(_), Some(mut state)) if catchable => {
                    state.__record_caught(pending.step, failure.to_string());
                    (state, StepOutcome::Continue, TaskStatus::Caught)
                }
                _ => {
                    let meta = meta_of::<F>(ctx, spec, TaskStatus::Failed, attempts, None, None);
                    ctx.store
                        .write_meta(&key, &meta)
                        .map_err(|e| fail(runtime_failure(e.to_string())))?;
                    return Err(fail(failure));
                }
            }
        }
    };

    let persist = |state: &F| -> Result<Persisted, RunStoreError> {
        let foreach = match step.transition {
            Transition::Foreach { field, .. } => {
                let items = state
                    .__foreach_items(pending.step)
                    .map_err(|e| RunStoreError::Io(e.to_string()))?;
                let list: Vec<ByteBuf> =
                    items.iter().map(|i| ByteBuf::from(i.as_slice())).collect();
                let encoded =
                    rmp_serde::to_vec(&list).map_err(|e| RunStoreError::Io(e.to_string()))?;
                let stored = ctx
                    .store
                    .blobs()
                    .remembering(&ctx.known_blobs)
                    .put_bytes(&encoded)
                    .map_err(|e| RunStoreError::Io(e.to_string()))?;
                Some((
                    ForeachRecord {
                        field: field.to_string(),
                        count: items.len(),
                        items: stored.hash,
                    },
                    Arc::new(items),
                ))
            }
            _ => None,
        };
        let artifacts = ctx
            .store
            .blobs()
            .remembering(&ctx.known_blobs)
            .store_state_after(
                &StateRef(state),
                derived_from.as_ref().map_or(&[][..], |i| &i.artifacts),
            )
            .map_err(|e| RunStoreError::Io(e.to_string()))?;
        Ok((Arc::new(TaskIndex::new(artifacts)), foreach))
    };
    set_phase("storing its state");
    let (index, foreach) = persist(&state).map_err(|e| {
        fail(runtime_failure(format!(
            "cannot store the task's state: {e}"
        )))
    })?;
    let chose = match (outcome, step.transition) {
        (StepOutcome::Arm(k), Transition::Switch(arms)) => match arms.get(k) {
            Some(arm) => Some(graph.steps[arm.target].name.to_string()),
            None => {
                return Err(fail(runtime_failure(format!(
                    "the switch chose arm {k}, which does not exist"
                ))));
            }
        },
        _ => None,
    };
    let meta = meta_of::<F>(
        ctx,
        spec,
        status,
        attempts,
        foreach.as_ref().map(|f| f.0.clone()),
        chose,
    );
    let index =
        complete(ctx, &key, index, &meta).map_err(|e| fail(runtime_failure(e.to_string())))?;
    checkpoints.completed(ctx.keep_checkpoints);
    Ok(Finished {
        path,
        step: pending.step,
        frames: pending.frames,
        index,
        state: Some(Arc::new(state)),
        outcome,
        items: foreach.map(|f| f.1),
        reused: false,
    })
}

/// Writes the done marker, which holds the index and the task's metadata: one write completes
/// the task. A task some other attempt completed already keeps that attempt's index.
pub(crate) fn complete(
    ctx: &RunContext,
    key: &crate::datastore::Key,
    index: Arc<TaskIndex>,
    meta: &TaskMeta,
) -> Result<Arc<TaskIndex>, RunStoreError> {
    match ctx.store.complete_task_with_meta(key, &index, meta) {
        Ok(()) => Ok(index),
        Err(RunStoreError::Task(TaskError::AlreadyComplete { .. })) => {
            match ctx.store.read_index(key)? {
                Some(existing) => Ok(Arc::new(existing)),
                None => Ok(index),
            }
        }
        Err(e) => Err(e),
    }
}

fn meta_of<F: Flow>(
    ctx: &RunContext,
    spec: TaskSpec,
    status: TaskStatus,
    attempts: Vec<AttemptRecord>,
    foreach: Option<ForeachRecord>,
    chose: Option<String>,
) -> TaskMeta {
    TaskMeta {
        format: 1,
        flow: F::GRAPH.name.to_string(),
        run_id: ctx.run_id.clone(),
        spec,
        status,
        attempts,
        foreach,
        chose,
        origin_run_id: None,
        job: super::slurm::current_job(),
    }
}

/// The input of every attempt of a task.
pub(crate) enum PreparedInput<F> {
    Plain,
    Item(Arc<Vec<u8>>),
    Join(Inputs<F>),
}

impl<F: Flow> PreparedInput<F> {
    fn for_attempt(&self) -> AttemptInput<F> {
        match self {
            PreparedInput::Plain => AttemptInput::Plain,
            PreparedInput::Item(bytes) => AttemptInput::Item(Arc::clone(bytes)),
            PreparedInput::Join(inputs) => AttemptInput::Join(inputs.clone_handle()),
        }
    }
}

/// Loads a state from a finished task: from memory when it is there (taken without a copy when
/// this task is its only user, as for a linear step), else from the datastore.
fn state_of<F: Flow>(
    ctx: &RunContext,
    state: Option<Arc<F>>,
    index: &TaskIndex,
    context: &str,
) -> Result<F, TaskFailure> {
    if let Some(state) = state {
        return Ok(Arc::try_unwrap(state).unwrap_or_else(|shared| duplicate(&*shared)));
    }
    ctx.store
        .blobs()
        .load_state::<StateOwned<F>>(&index.artifacts)
        .map(|s| s.0)
        .map_err(|e| runtime_failure(format!("cannot load the input state of {context}: {e}")))
}

fn prepare<F: Flow>(
    ctx: &RunContext,
    input: PendingInput<F>,
    context: &str,
) -> Result<(F, PreparedInput<F>), TaskFailure> {
    match input {
        PendingInput::Start => {
            let mut state = initial::<F>();
            state.__restore_params(&ctx.params).map_err(|e| {
                runtime_failure(format!("the run's parameters do not fit this flow: {e}"))
            })?;
            Ok((state, PreparedInput::Plain))
        }
        PendingInput::Parent { index, state, .. } => {
            Ok((state_of(ctx, state, &index, context)?, PreparedInput::Plain))
        }
        PendingInput::Item {
            index,
            state,
            items,
            position,
            ..
        } => {
            let item = items
                .get(position)
                .ok_or_else(|| runtime_failure(format!("the foreach has no element {position}")))?;
            Ok((
                state_of(ctx, state, &index, context)?,
                PreparedInput::Item(Arc::new(item.clone())),
            ))
        }
        PendingInput::Join { base, inputs } => {
            let state = state_of::<F>(ctx, None, &base.1, context)?;
            let source = StoreInputs {
                store: ctx.store.clone(),
                context: context.to_string(),
                base: Arc::clone(&base.1),
                inputs: inputs
                    .iter()
                    .map(|i| StoredInput {
                        path: i.path.clone(),
                        position: i.position,
                        index: Arc::clone(&i.index),
                    })
                    .collect(),
                cache: Default::default(),
            };
            Ok((
                state,
                PreparedInput::Join(Inputs::from_source(Arc::new(source))),
            ))
        }
    }
}

/// Reads the element encodings a foreach split recorded.
pub(crate) fn load_items(ctx: &RunContext, hash: &BlobHash) -> Result<Vec<Vec<u8>>, TaskFailure> {
    let bytes = ctx
        .store
        .blobs()
        .get(hash, None)
        .map_err(|e| runtime_failure(format!("cannot read the foreach elements: {e}")))?;
    let list: Vec<ByteBuf> = crate::state::decode_field(&bytes)
        .map_err(|e| runtime_failure(format!("the foreach elements are damaged: {e}")))?;
    Ok(list.into_iter().map(ByteBuf::into_vec).collect())
}
