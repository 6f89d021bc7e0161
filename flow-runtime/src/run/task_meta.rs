//! What the datastore keeps about each task besides its artifacts.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::ids::{RunId, StepName, TaskId};
use crate::datastore::BlobHash;

/// A task within a run: `step/task_id`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct TaskPath {
    pub step: StepName,
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
    Parent { parent: TaskPath },
    /// A foreach body: the split task's end state plus one element.
    Item {
        parent: TaskPath,
        /// The element's position in the split's list of elements (its `foreach` record).
        position: usize,
    },
    /// A join: the split task's end state as the base, and every branch's end state.
    Join {
        base: TaskPath,
        inputs: Vec<TaskPath>,
    },
}

/// Everything needed to run one task, from the datastore alone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskSpec {
    pub step: StepName,
    pub task_id: TaskId,
    pub frames: Vec<FrameRecord>,
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
    Succeeded,
    /// Failed after every retry, but the step has `catch`: the run went on.
    Caught,
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
    pub message: String,
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
    pub attempt: u32,
    pub started: String,
    pub finished: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<TaskFailure>,
}

/// The elements a foreach split fanned out over.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ForeachRecord {
    pub field: String,
    pub count: usize,
    /// A blob holding the elements' MessagePack encodings, in order (a MessagePack array of
    /// binaries).
    pub items: BlobHash,
}

/// A task's metadata, `meta.json`, written before its index and done marker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskMeta {
    pub format: u32,
    pub flow: String,
    pub run_id: RunId,
    pub spec: TaskSpec,
    pub status: TaskStatus,
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
