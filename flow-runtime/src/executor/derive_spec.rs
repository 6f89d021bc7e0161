//! A task's spec derived from the graph, the run id, the task id and what the datastore holds,
//! for schedulers that have no coordinator writing `spec.json` before each task (Argo
//! Workflows: every task is a container started from a static manifest).
//!
//! This works because nothing in a spec is chosen at run time beyond what the datastore records:
//!
//! - the splits open at a step (its frames) follow from the graph alone, except the foreach
//!   indices, which are the task id (`3-1`: element 3 of the outer foreach, 1 of the inner), and
//!   the foreach counts, which the split tasks recorded in their metadata;
//! - a task's parents are found where the graph says they are, under task ids derived from its
//!   own: the same id for a linear or branch child and for a branch join's inputs, the id minus
//!   its last index for a foreach body's split, the id plus each index for a foreach join's
//!   inputs;
//! - where several steps lead to one (the arms of a switch meeting again), the parent is the
//!   one whose task completed and, for a switch, chose this step.
//!
//! The result is identical to what the scheduler writes for the same task (tested against
//! process mode, which writes `spec.json` for every task).

use crate::datastore::StorageError;
use crate::graph::{
    FlowGraph, IdKind, IdPart, Loops, OpenSplit, StepFrame, Transition, example_task_id, id_kinds,
    parse_task_id, step_frames, task_id_of,
};
use crate::run::{
    ForeachRecord, FrameRecord, InputSpec, RunStore, RunStoreError, TaskMeta, TaskPath, TaskSpec,
};

/// Why no spec could be derived for a task.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DeriveSpecError {
    /// The flow has no such step.
    #[error("flow `{flow}` has no step `{step}`")]
    NoSuchStep {
        /// The flow's name.
        flow: String,
        /// The step asked for.
        step: String,
    },
    /// The task id cannot name a task of this step, now or later.
    #[error("run {run_id} has no task {step}/{task_id}: {reason}")]
    NoSuchTask {
        /// The run the task belongs to.
        run_id: String,
        /// Its step.
        step: String,
        /// Its id within the step.
        task_id: String,
        /// Why, in a sentence for the user.
        reason: String,
    },
    /// A task this one starts from has not completed (yet, or ever: it failed, or the run took
    /// another arm of a switch).
    #[error("task {step}/{task_id} of run {run_id} cannot start: {reason}")]
    NotReady {
        /// The run the task belongs to.
        run_id: String,
        /// Its step.
        step: String,
        /// Its id within the step.
        task_id: String,
        /// Why, in a sentence for the user.
        reason: String,
    },
    /// What a task this one starts from recorded is damaged (its foreach element count does
    /// not match its list of elements): rerunning will not help, resuming the run will.
    #[error("task {step}/{task_id} of run {run_id} cannot start: {reason}")]
    Damaged {
        /// The run the task belongs to.
        run_id: String,
        /// Its step.
        step: String,
        /// Its id within the step.
        task_id: String,
        /// Why, in a sentence for the user.
        reason: String,
    },
    /// The graph is not one `#[flow]` accepts (hand-written graphs only).
    #[error("the graph of flow `{flow}` cannot be followed: {reason}")]
    Graph {
        /// The flow's name.
        flow: String,
        /// What about the graph cannot be followed.
        reason: String,
    },
    /// The datastore could not be read.
    #[error(transparent)]
    Store(#[from] RunStoreError),
}

/// Reads what the datastore holds about the tasks of one run.
struct Tasks<'a> {
    graph: &'a FlowGraph,
    store: &'a RunStore,
    run_id: &'a str,
}

impl Tasks<'_> {
    /// The metadata of a completed task; `None` while it is not complete.
    fn done(&self, path: &TaskPath) -> Result<Option<Option<TaskMeta>>, RunStoreError> {
        let key = RunStore::task_key(self.graph.name, self.run_id, &path.step, &path.task)?;
        Ok(self.store.read_done(&key)?.map(|(_, meta)| meta))
    }
}

/// The spec of task `task_id` of step `step` of run `run_id`, derived from `graph` and what
/// `store` holds: exactly what the scheduler would have written to `spec.json`.
///
/// Fails with [`DeriveSpecError::NoSuchTask`] for a task id that names no task of this step
/// (`sq/77` of a foreach over four elements) and [`DeriveSpecError::NotReady`] when a task it
/// starts from is not complete.
pub fn derive_spec(
    graph: &FlowGraph,
    store: &RunStore,
    run_id: &str,
    step: &str,
    task_id: &str,
) -> Result<TaskSpec, DeriveSpecError> {
    let s = graph
        .step_index(step)
        .ok_or_else(|| DeriveSpecError::NoSuchStep {
            flow: graph.name.to_string(),
            step: step.to_string(),
        })?;
    let graph_error = |reason: String| DeriveSpecError::Graph {
        flow: graph.name.to_string(),
        reason,
    };
    let no_task = |reason: String| DeriveSpecError::NoSuchTask {
        run_id: run_id.to_string(),
        step: step.to_string(),
        task_id: task_id.to_string(),
        reason,
    };
    let not_ready = |reason: String| DeriveSpecError::NotReady {
        run_id: run_id.to_string(),
        step: step.to_string(),
        task_id: task_id.to_string(),
        reason,
    };
    let damaged = |reason: String| DeriveSpecError::Damaged {
        run_id: run_id.to_string(),
        step: step.to_string(),
        task_id: task_id.to_string(),
        reason,
    };
    let shapes = step_frames(graph).map_err(|e| graph_error(e.to_string()))?;
    let Some(shape) = &shapes[s] else {
        return Err(graph_error(format!(
            "step `{step}` cannot be reached from `start`"
        )));
    };
    let kinds = id_kinds(shape);
    let numbers = parse_task_id(task_id, &kinds).ok_or_else(|| {
        let example = example_task_id(&kinds);
        let elements = kinds.iter().filter(|k| **k == IdKind::Element).count();
        no_task(match (kinds.len(), elements) {
            (0, _) => format!(
                "`{step}` runs outside any foreach and loop, so its only task is `0`"
            ),
            (1, 1) => format!(
                "tasks of `{step}` are numbered by their foreach element, as in `{example}`"
            ),
            (1, 0) => format!(
                "tasks of `{step}` are numbered by the pass of their loop, as in `{example}`"
            ),
            (n, e) if n == e => format!(
                "tasks of `{step}` are numbered by the elements of {n} nested foreaches, as in `{example}`"
            ),
            _ => format!(
                "tasks of `{step}` are numbered by their foreach elements and loop passes, as in `{example}`"
            ),
        })
    })?;
    let parts: Vec<IdPart> = kinds
        .iter()
        .zip(&numbers)
        .map(|(&k, &n)| IdPart::of(k, n))
        .collect();
    let tasks = Tasks {
        graph,
        store,
        run_id,
    };
    let path = |step: usize, task: String| TaskPath {
        step: graph.steps[step].name.into(),
        task: task.into(),
    };

    let mut frames = Vec::with_capacity(shape.len());
    let mut level = 0;
    for frame in shape {
        let o = match *frame {
            StepFrame::Loop { head } => {
                frames.push(FrameRecord {
                    split: graph.steps[head].name.to_string(),
                    index: numbers[level],
                    count: 0,
                    foreach: false,
                    is_loop: true,
                });
                level += 1;
                continue;
            }
            StepFrame::Split(o) => o,
        };
        let split = &graph.steps[o.split];
        match split.transition {
            Transition::Branch(targets) => frames.push(FrameRecord {
                split: split.name.to_string(),
                index: o.branch,
                count: targets.len(),
                foreach: false,
                is_loop: false,
            }),
            Transition::Foreach { .. } => {
                let split_task = path(o.split, task_id_of(&parts[..level]));
                let count = match tasks.done(&split_task)? {
                    None => {
                        return Err(not_ready(format!(
                            "the foreach task {split_task} is not complete"
                        )));
                    }
                    Some(meta) => {
                        let record = meta.and_then(|m| m.foreach).ok_or_else(|| {
                            not_ready(format!("task {split_task} recorded no foreach elements"))
                        })?;
                        checked_foreach_count(store, &split_task, &record)
                            .map_err(|e| damaged(e.to_string()))?
                    }
                };
                let index = numbers[level];
                if index >= count {
                    return Err(no_task(format!(
                        "the foreach task {split_task} has {count} element{}",
                        if count == 1 { "" } else { "s" }
                    )));
                }
                frames.push(FrameRecord {
                    split: split.name.to_string(),
                    index,
                    count,
                    foreach: true,
                    is_loop: false,
                });
                level += 1;
            }
            _ => {
                return Err(graph_error(format!(
                    "`{}` is recorded as a split but does not split",
                    split.name
                )));
            }
        }
    }

    let loops = Loops::of(graph);
    let predecessors = graph.predecessors(s);
    // The task of step `p` that may have led here, its id made of `base` and the passes of the
    // loops `p` is in beyond those: the last pass each of them made, found from its head.
    let task_of = |p: usize, base: &[IdPart]| -> Result<Result<String, String>, DeriveSpecError> {
        let Some(p_shape) = &shapes[p] else {
            return Ok(Err(format!(
                "step `{}` cannot be reached",
                graph.steps[p].name
            )));
        };
        let mut id = base.to_vec();
        let extra = id_kinds(p_shape).len().saturating_sub(base.len());
        let exited = p_shape.iter().rev().filter_map(|f| match f {
            StepFrame::Loop { head } => Some(*head),
            StepFrame::Split(_) => None,
        });
        let mut exited: Vec<usize> = exited.take(extra).collect();
        exited.reverse();
        for head in exited {
            match last_pass(&tasks, head, &id)? {
                Some(pass) => id.push(IdPart::Pass(pass)),
                None => {
                    return Ok(Err(format!(
                        "the loop at `{}` has not run",
                        graph.steps[head].name
                    )));
                }
            }
        }
        Ok(Ok(task_id_of(&id)))
    };
    let input = if s == graph.start {
        InputSpec::Start
    } else if let Some(split) = graph.steps[s].join {
        let base = path(split, task_id.to_string());
        let Some(base_meta) = tasks.done(&base)? else {
            return Err(not_ready(format!("the split task {base} is not complete")));
        };
        // The steps that end each branch: where the switch arms of a branch do not meet again
        // before the join, a branch has several, of which exactly one ran.
        let ending = |top: OpenSplit| -> Vec<usize> {
            predecessors
                .iter()
                .copied()
                .filter(|&p| {
                    // The innermost split open at `p` (its frames, which hold its loops too).
                    shapes[p]
                        .as_ref()
                        .and_then(|frames| {
                            frames.iter().rev().find_map(|f| match f {
                                StepFrame::Split(o) => Some(*o),
                                StepFrame::Loop { .. } => None,
                            })
                        })
                        .is_some_and(|t| t == top)
                })
                .collect()
        };
        let with_id = |candidates: Vec<usize>, id: &str| -> Vec<(usize, String)> {
            candidates
                .into_iter()
                .map(|p| (p, id.to_string()))
                .collect()
        };
        let inputs = match graph.steps[split].transition {
            Transition::Branch(targets) => (0..targets.len())
                .map(|branch| {
                    let candidates = ending(OpenSplit {
                        split,
                        branch,
                        foreach: false,
                    });
                    the_parent(&tasks, s, &with_id(candidates, task_id))?.map_err(|why| {
                        not_ready(format!(
                            "branch `{}` of `{}` has not arrived: {why}",
                            graph.steps[targets[branch]].name, graph.steps[split].name
                        ))
                    })
                })
                .collect::<Result<Vec<_>, _>>()?,
            Transition::Foreach { .. } => {
                let record = base_meta.and_then(|m| m.foreach).ok_or_else(|| {
                    not_ready(format!("task {base} recorded no foreach elements"))
                })?;
                let count = checked_foreach_count(store, &base, &record)
                    .map_err(|e| damaged(e.to_string()))?;
                let candidates = ending(OpenSplit {
                    split,
                    branch: 0,
                    foreach: true,
                });
                let mut element = parts.clone();
                element.push(IdPart::Element(0));
                (0..count)
                    .map(|i| {
                        if let Some(last) = element.last_mut() {
                            *last = IdPart::Element(i);
                        }
                        let id = task_id_of(&element);
                        the_parent(&tasks, s, &with_id(candidates.clone(), &id))?.map_err(|why| {
                            not_ready(format!("element {i} of the foreach {base}: {why}"))
                        })
                    })
                    .collect::<Result<Vec<_>, _>>()?
            }
            _ => {
                return Err(graph_error(format!(
                    "join `{step}` closes `{}`, which does not split",
                    graph.steps[split].name
                )));
            }
        };
        InputSpec::Join { base, inputs }
    } else if let Some(&split) = predecessors.iter().find(
        |&&p| matches!(graph.steps[p].transition, Transition::Foreach { body, .. } if body == s),
    ) {
        // The split's completion and the element's range were checked with the frames: the
        // split's frame is this step's last.
        let Some((&IdPart::Element(position), outer)) = parts.split_last() else {
            return Err(graph_error(format!(
                "`{step}` is the body of a foreach but runs outside it"
            )));
        };
        InputSpec::Item {
            parent: path(split, task_id_of(outer)),
            position,
        }
    } else {
        // A loop's head: its first pass comes from the steps before the loop, every other pass
        // from a switch going back to it at the pass before.
        let (candidates, base): (Vec<usize>, Vec<IdPart>) = match parts.split_last() {
            Some((&IdPart::Pass(pass), outer)) if loops.headed_by(s).is_some() => {
                if pass == 0 {
                    let forward = predecessors
                        .iter()
                        .copied()
                        .filter(|&p| !loops.is_back_arm(p, s))
                        .collect();
                    (forward, outer.to_vec())
                } else {
                    let mut before = outer.to_vec();
                    before.push(IdPart::Pass(pass - 1));
                    (loops.back_arms_to(s).collect(), before)
                }
            }
            _ => (predecessors.clone(), parts.clone()),
        };
        let mut with_ids = Vec::new();
        let mut why = Vec::new();
        for p in candidates {
            match task_of(p, &base)? {
                Ok(id) => with_ids.push((p, id)),
                Err(reason) => why.push(reason),
            }
        }
        let parent = match the_parent(&tasks, s, &with_ids)? {
            Ok(parent) => parent,
            Err(NoParent::NoPredecessor(_)) if !why.is_empty() => {
                return Err(not_ready(why.join("; ")));
            }
            Err(e) => return Err(not_ready(e.to_string())),
        };
        // A pass its switch's `max_iterations` does not allow is no task (the scheduler fails
        // the run there instead of starting it).
        if let (Some(&IdPart::Pass(pass)), Some(switch)) =
            (parts.last(), graph.step_index(&parent.step))
            && pass > 0
            && loops.is_back_arm(switch, s)
            && let Some(max) = graph.steps[switch].options.max_iterations
            && pass >= max as usize
        {
            return Err(no_task(format!(
                "`{}` chose to go back to `{step}` after {pass} passes, the most its `max_iterations = {max}` allows",
                parent.step
            )));
        }
        InputSpec::Parent { parent }
    };
    Ok(TaskSpec {
        step: step.into(),
        task_id: task_id.into(),
        frames,
        input,
    })
}

/// Why the element count a foreach task recorded cannot be trusted.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ForeachCountError {
    /// The list of elements cannot be read.
    #[error("cannot read the list of elements of the foreach task {split}: {source}")]
    Unreadable {
        split: TaskPath,
        source: StorageError,
    },
    /// The list of elements does not start as a MessagePack array.
    #[error("the list of elements of the foreach task {split} is damaged: {source}")]
    NotAList {
        split: TaskPath,
        source: rmp::decode::ValueReadError,
    },
    /// The count and the list disagree.
    #[error(
        "the foreach task {split} records {recorded} elements but its list of elements holds \
         {listed}: its metadata is damaged"
    )]
    Mismatch {
        split: TaskPath,
        recorded: usize,
        listed: u32,
    },
}

/// The message, for callers that take `impl Into<String>` (the CLI's error constructors).
impl From<ForeachCountError> for String {
    fn from(error: ForeachCountError) -> String {
        error.to_string()
    }
}

/// The number of elements the foreach task `split` recorded, checked against its list of
/// elements (a MessagePack array, whose header holds its length: a few bytes are read), so that
/// a damaged count is an error naming the task instead of that many task ids.
///
/// # Errors
///
/// An error naming `split` when the list cannot be read or the counts differ.
pub(crate) fn checked_foreach_count(
    store: &RunStore,
    split: &TaskPath,
    record: &ForeachRecord,
) -> Result<usize, ForeachCountError> {
    let mut list = store
        .storage()
        .reader(&record.items.key())
        .map_err(|source| ForeachCountError::Unreadable {
            split: split.clone(),
            source,
        })?;
    let listed =
        rmp::decode::read_array_len(&mut list).map_err(|source| ForeachCountError::NotAList {
            split: split.clone(),
            source,
        })?;
    if u64::from(listed) != record.count as u64 {
        return Err(ForeachCountError::Mismatch {
            split: split.clone(),
            recorded: record.count,
            listed,
        });
    }
    Ok(record.count)
}

/// Why no task handed control to a step.
#[derive(Debug, thiserror::Error)]
enum NoParent {
    /// The graph leads to the step from nowhere.
    #[error("step `{0}` has no predecessor")]
    NoPredecessor(&'static str),
    /// What each task that could lead to the step did instead.
    #[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    NoneHandedOver(Vec<NotHandedOver>),
}

/// Why one task did not hand control to a step.
#[derive(Debug, thiserror::Error)]
enum NotHandedOver {
    #[error("task {0} is not complete")]
    NotComplete(TaskPath),
    #[error("the switch {switch} chose `{chosen}`")]
    ChoseAnother { switch: TaskPath, chosen: String },
    #[error("the switch {0} recorded no choice")]
    NoChoice(TaskPath),
}

/// The last pass the loop headed by `head` made inside the task whose id parts are `outer`: the
/// highest `n` for which `head`'s task `outer-in` completed (a pass always starts at the head).
fn last_pass(
    tasks: &Tasks<'_>,
    head: usize,
    outer: &[IdPart],
) -> Result<Option<usize>, DeriveSpecError> {
    let mut id = outer.to_vec();
    id.push(IdPart::Pass(0));
    let mut last = None;
    for pass in 0.. {
        if let Some(part) = id.last_mut() {
            *part = IdPart::Pass(pass);
        }
        let path = TaskPath {
            step: tasks.graph.steps[head].name.into(),
            task: task_id_of(&id).into(),
        };
        if tasks.done(&path)?.is_none() {
            break;
        }
        last = Some(pass);
    }
    Ok(last)
}

/// Among the tasks `candidates` (each a step and a task id), the one that handed control to step
/// `to`: complete and, for a switch, having chosen `to`. `Ok(Err(why))` when there is none.
fn the_parent(
    tasks: &Tasks<'_>,
    to: usize,
    candidates: &[(usize, String)],
) -> Result<Result<TaskPath, NoParent>, DeriveSpecError> {
    let graph = tasks.graph;
    let to_name = graph.steps[to].name;
    let mut found: Vec<TaskPath> = Vec::new();
    let mut why: Vec<NotHandedOver> = Vec::new();
    for (p, task_id) in candidates {
        let p = *p;
        let path = TaskPath {
            step: graph.steps[p].name.into(),
            task: task_id.as_str().into(),
        };
        match (tasks.done(&path)?, graph.steps[p].transition) {
            (None, _) => why.push(NotHandedOver::NotComplete(path)),
            (Some(meta), Transition::Switch(_)) => {
                match meta.as_ref().and_then(|m| m.chose.as_deref()) {
                    Some(chosen) if chosen == to_name => found.push(path),
                    Some(chosen) => why.push(NotHandedOver::ChoseAnother {
                        switch: path,
                        chosen: chosen.to_string(),
                    }),
                    None => why.push(NotHandedOver::NoChoice(path)),
                }
            }
            (Some(_), _) => found.push(path),
        }
    }
    match found.len() {
        1 => Ok(Ok(found.remove(0))),
        0 if why.is_empty() => Ok(Err(NoParent::NoPredecessor(to_name))),
        0 => Ok(Err(NoParent::NoneHandedOver(why))),
        _ => Err(DeriveSpecError::Graph {
            flow: graph.name.to_string(),
            reason: format!(
                "more than one task leads to {to_name}: {}",
                found
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::test_graphs::EVERY as GRAPH;

    #[test]
    fn derive_spec_says_what_is_missing() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let store = RunStore::open_local(dir.path()).expect("a datastore");
        let err = derive_spec(&GRAPH, &store, "r1", "nope", "0").expect_err("no such step");
        assert!(matches!(err, DeriveSpecError::NoSuchStep { .. }), "{err}");
        let err = derive_spec(&GRAPH, &store, "r1", "end", "1").expect_err("a bad id");
        assert!(err.to_string().contains("no task end/1"), "{err}");
        let err = derive_spec(&GRAPH, &store, "r1", "body", "1").expect_err("a bad id");
        assert!(err.to_string().contains("`0-0`"), "{err}");
        let err = derive_spec(&GRAPH, &store, "r1", "a", "0").expect_err("start not done");
        assert!(
            err.to_string().contains("task start/0 is not complete"),
            "{err}"
        );
        let err = derive_spec(&GRAPH, &store, "r1", "body", "0-0").expect_err("fan not done");
        assert!(
            err.to_string()
                .contains("the foreach task fan/0 is not complete"),
            "{err}"
        );
        let spec = derive_spec(&GRAPH, &store, "r1", "start", "0").expect("start needs nothing");
        assert_eq!(spec.input, InputSpec::Start);
        assert!(spec.frames.is_empty());
    }
}
