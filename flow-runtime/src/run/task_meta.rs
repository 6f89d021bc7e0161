//! What the datastore keeps about each task besides its artifacts.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::ids::{RunId, StepName, TaskId};
use crate::datastore::BlobHash;

/// A task within a run: `step/task_id`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct TaskPath {
    /// The step the task ran.
    pub step: StepName,
    /// The task's id within its step.
    pub task: TaskId,
}

impl fmt::Display for TaskPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.step, self.task)
    }
}

/// One split that is open, or one loop that runs, while a task runs, outermost first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FrameRecord {
    /// The split step.
    pub split: String,
    /// The branch number, or the foreach element's index.
    pub index: usize,
    /// How many branches or elements the split has.
    pub count: usize,
    /// Whether the split is a foreach (its index is part of task ids).
    pub foreach: bool,
    /// Whether the frame is a pass of a loop: `split` is then the loop's head, `index` the pass
    /// (from 0, part of task ids as `i2`) and `count` 0. Absent in runs made before loops.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub is_loop: bool,
}

impl FrameRecord {
    /// The part of the task id this frame makes: none for a branch.
    pub(crate) fn id_part(&self) -> Option<crate::graph::IdPart> {
        if self.is_loop {
            Some(crate::graph::IdPart::Pass(self.index))
        } else if self.foreach {
            Some(crate::graph::IdPart::Element(self.index))
        } else {
            None
        }
    }
}

/// What a task starts from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum InputSpec {
    /// `start`: the default state and the run's parameters.
    Start,
    /// The end state of one parent task.
    Parent {
        /// The task whose end state this one starts from.
        parent: TaskPath,
    },
    /// A foreach body: the split task's end state plus one element.
    Item {
        /// The foreach task that fanned out.
        parent: TaskPath,
        /// The element's position in the split's list of elements (its `foreach` record).
        position: usize,
    },
    /// A join: the split task's end state as the base, and every branch's end state.
    Join {
        /// The split task whose end state the join starts from.
        base: TaskPath,
        /// The last task of every branch, in branch (or element) order: what the join's
        /// [`Inputs`](crate::Inputs) yields.
        inputs: Vec<TaskPath>,
    },
}

/// Everything needed to run one task, from the datastore alone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskSpec {
    /// The step the task runs.
    pub step: StepName,
    /// The task's id within its step, made from its frames' foreach elements and loop passes.
    pub task_id: TaskId,
    /// The splits open and the loops running around the task, outermost first.
    pub frames: Vec<FrameRecord>,
    /// What state the task starts from.
    pub input: InputSpec,
}

impl TaskSpec {
    /// The tasks this one reads from.
    pub fn parents(&self) -> Vec<TaskPath> {
        match &self.input {
            InputSpec::Start => Vec::new(),
            InputSpec::Parent { parent } | InputSpec::Item { parent, .. } => vec![parent.clone()],
            InputSpec::Join { inputs, .. } => inputs.clone(),
        }
    }
}

/// How a task ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TaskStatus {
    /// An attempt completed: its artifacts are stored and its done marker written.
    Succeeded,
    /// Failed after every retry, but the step has `catch`: the run went on.
    Caught,
    /// Failed after every retry, failing the run.
    Failed,
}

impl fmt::Display for TaskStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TaskStatus::Succeeded => "succeeded",
            TaskStatus::Caught => "caught",
            TaskStatus::Failed => "failed",
        })
    }
}

/// Why an attempt failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskFailure {
    /// `error`, `panic`, `timeout` or `runtime` (the datastore or the executor).
    pub kind: String,
    /// The error's own message (or the panic's payload), without its causes.
    pub message: String,
    /// The error's chain of sources, outermost first: what `Display` appends after `: `.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub causes: Vec<String>,
    /// Where a panic happened, `file:line:column`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
}

impl fmt::Display for TaskFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)?;
        for cause in &self.causes {
            write!(f, ": {cause}")?;
        }
        if let Some(location) = &self.location {
            write!(f, " (at {location})")?;
        }
        Ok(())
    }
}

/// One attempt of a task.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttemptRecord {
    /// Which attempt, `0` for the first (as [`Current::attempt`](crate::current::Current)).
    pub attempt: u32,
    /// When it started, RFC 3339 in UTC.
    pub started: String,
    /// When it ended, RFC 3339 in UTC.
    pub finished: String,
    /// Why it failed; `None` for the attempt that succeeded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<TaskFailure>,
}

/// The elements a foreach split fanned out over.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ForeachRecord {
    /// The field of the flow struct the elements came from.
    pub field: String,
    /// How many elements: how many body tasks the split started.
    pub count: usize,
    /// A blob holding the elements' MessagePack encodings, in order (a MessagePack array of
    /// binaries).
    pub items: BlobHash,
}

/// A task's metadata, `meta.json`, written before its index and done marker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskMeta {
    /// Format version of this record (1 today).
    pub format: u32,
    /// The flow's name.
    pub flow: String,
    /// The run the task belongs to.
    pub run_id: RunId,
    /// What the task ran: its step, id, frames and input.
    pub spec: TaskSpec,
    /// How the task ended.
    pub status: TaskStatus,
    /// Every attempt, in order; the last one decides [`TaskMeta::status`].
    pub attempts: Vec<AttemptRecord>,
    /// For a foreach split, its elements.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub foreach: Option<ForeachRecord>,
    /// For a switch, the step it chose.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chose: Option<String>,
    /// For a task reused by `resume`, the run it was computed in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin_run_id: Option<RunId>,
    /// The cluster scheduler's job that ran the task, e.g. `slurm:1234`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job: Option<String>,
}

impl TaskMeta {
    /// The failure of the last attempt, if it failed.
    pub fn failure(&self) -> Option<&TaskFailure> {
        self.attempts.last().and_then(|a| a.failure.as_ref())
    }
}
