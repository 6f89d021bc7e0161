//! A task as a step's listing has it: also one that is running, was interrupted, or has not
//! recorded anything yet, which [`TaskHandle`](super::TaskHandle) does not stand for.

use std::fmt;

use super::blob_stream::CheckedBlob;
use super::task_logs::TaskLogs;
use super::{Client, ClientError};
use crate::datastore::{ArtifactEntry, Encoding, Key, TaskIndex};
use crate::run::{
    AttemptRecord, RunId, RunStore, RunStoreError, StepName, TaskId, TaskMeta, TaskStatus,
};

/// Where a task stands, from its metadata and its done marker together.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TaskProgress {
    /// Complete: its artifacts can be read.
    Succeeded,
    /// Failed after every retry, but the step has `catch`: complete, and the run went on.
    Caught,
    /// Failed for good.
    Failed,
    /// Running, interrupted, or never started: not complete, and no failure recorded.
    Incomplete,
}

impl TaskProgress {
    /// The state of a task with metadata `meta` (if it wrote any) that is complete or not.
    pub fn of(meta: Option<&TaskMeta>, done: bool) -> TaskProgress {
        match (meta.map(|m| m.status), done) {
            (Some(TaskStatus::Caught), true) => TaskProgress::Caught,
            (_, true) => TaskProgress::Succeeded,
            (Some(TaskStatus::Failed), false) => TaskProgress::Failed,
            _ => TaskProgress::Incomplete,
        }
    }

    /// `succeeded`, `caught`, `failed` or `incomplete`.
    pub fn as_str(self) -> &'static str {
        match self {
            TaskProgress::Succeeded => "succeeded",
            TaskProgress::Caught => "caught",
            TaskProgress::Failed => "failed",
            TaskProgress::Incomplete => "incomplete",
        }
    }
}

impl fmt::Display for TaskProgress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What the datastore records about a task: its metadata, and its index once it is complete.
pub(super) struct TaskRecords {
    pub meta: Option<TaskMeta>,
    pub index: Option<TaskIndex>,
}

impl TaskRecords {
    /// One read for a completed task: its done marker holds both the index and the metadata.
    pub fn read(store: &RunStore, key: &Key) -> Result<TaskRecords, RunStoreError> {
        Ok(match store.read_done(key)? {
            Some((index, Some(meta))) => TaskRecords {
                meta: Some(meta),
                index: Some(index),
            },
            done => TaskRecords {
                meta: store.read_meta(key)?,
                index: done.map(|(index, _)| index),
            },
        })
    }
}

/// One task of a step, whatever it recorded: from [`StepHandle::task_entries`],
/// [`StepHandle::task_entry`] or [`StepHandle::only_task`](super::StepHandle::only_task).
///
/// [`StepHandle::task_entries`]: super::StepHandle::task_entries
/// [`StepHandle::task_entry`]: super::StepHandle::task_entry
#[derive(Debug, Clone)]
pub struct TaskEntry {
    client: Client,
    flow: String,
    run_id: RunId,
    step: StepName,
    id: TaskId,
    key: Key,
    meta: Option<TaskMeta>,
    index: Option<TaskIndex>,
}

impl TaskEntry {
    /// The checkpoints the task stored while it ran, by number (see
    /// [`TaskHandle::checkpoints`](super::TaskHandle::checkpoints)); a task that is running
    /// or did not complete keeps them all.
    pub fn checkpoints(&self) -> Result<Vec<crate::run::CheckpointRecord>, ClientError> {
        Ok(self.client.store().checkpoints(&self.key)?)
    }

    pub(super) fn read(
        client: &Client,
        flow: &str,
        run_id: &str,
        step: &str,
        id: &str,
    ) -> Result<TaskEntry, ClientError> {
        let key = RunStore::task_key(flow, run_id, step, id)?;
        let TaskRecords { meta, index } = TaskRecords::read(client.store(), &key)?;
        Ok(TaskEntry {
            client: client.clone(),
            flow: flow.to_owned(),
            run_id: run_id.into(),
            step: step.into(),
            id: id.into(),
            key,
            meta,
            index,
        })
    }

    /// The task's id within its step.
    pub fn id(&self) -> &TaskId {
        &self.id
    }

    /// The step's name.
    pub fn step(&self) -> &StepName {
        &self.step
    }

    /// The run's id.
    pub fn run_id(&self) -> &RunId {
        &self.run_id
    }

    /// Where the task stands.
    pub fn progress(&self) -> TaskProgress {
        TaskProgress::of(self.meta.as_ref(), self.index.is_some())
    }

    /// Everything the task recorded about itself, once it recorded anything (an attempt ended).
    pub fn meta(&self) -> Option<&TaskMeta> {
        self.meta.as_ref()
    }

    /// Every recorded attempt, oldest first.
    pub fn attempts(&self) -> &[AttemptRecord] {
        self.meta.as_ref().map_or(&[], |m| &m.attempts)
    }

    /// For a task reused by `resume`, the run that computed it.
    pub fn origin_run_id(&self) -> Option<&RunId> {
        self.meta.as_ref().and_then(|m| m.origin_run_id.as_ref())
    }

    /// The task's artifacts, once it is complete.
    pub fn artifacts(&self) -> Option<&[ArtifactEntry]> {
        self.index.as_ref().map(|index| index.artifacts.as_slice())
    }

    /// Where an artifact was needed, for messages: "run R, step S, task T, artifact `a`".
    pub fn artifact_context(&self, name: &str) -> String {
        format!(
            "run {}, step {}, task {}, artifact `{name}`",
            self.run_id, self.step, self.id
        )
    }

    /// The blob of `artifact` (one of [`TaskEntry::artifacts`]) as a stream of its stored
    /// MessagePack bytes, checked against the size and hash recorded for it as it is read: for
    /// values too large to hold in memory.
    ///
    /// # Errors
    ///
    /// [`ClientError::UnsupportedEncoding`] for an encoding this version cannot read;
    /// [`ClientError::Blob`] for a blob that is missing or cannot be read.
    pub fn open_artifact(&self, artifact: &ArtifactEntry) -> Result<CheckedBlob<'_>, ClientError> {
        let context = self.readable_context(artifact)?;
        CheckedBlob::open(self.client.store().storage(), artifact, context)
    }

    /// Reads the blob of `artifact` to its end, holding none of it, and checks it: for readers
    /// that must not show any of a value before they know it is intact.
    ///
    /// # Errors
    ///
    /// As [`TaskEntry::open_artifact`], and [`ClientError::Blob`] for a blob that is not the
    /// bytes recorded (truncated, longer, corrupted).
    pub fn verify_artifact(&self, artifact: &ArtifactEntry) -> Result<(), ClientError> {
        let context = self.readable_context(artifact)?;
        CheckedBlob::verify(self.client.store().storage(), artifact, context)
    }

    fn readable_context(&self, artifact: &ArtifactEntry) -> Result<String, ClientError> {
        let context = self.artifact_context(&artifact.name);
        if artifact.encoding != Encoding::MsgPack {
            return Err(ClientError::UnsupportedEncoding {
                context,
                encoding: artifact.encoding.to_string(),
            });
        }
        Ok(context)
    }

    /// The card of the task's last recorded attempt, if it wrote one (see [`mod@crate::card`]): also
    /// for a failed task. `None` while no attempt has ended.
    ///
    /// # Errors
    ///
    /// A card larger than [`crate::run::MAX_CARD_SIZE`] or damaged
    /// ([`ClientError::DamagedCard`]); storage failures.
    pub fn card(&self) -> Result<Option<crate::card::Card>, ClientError> {
        match &self.meta {
            Some(meta) => super::task_card::last(&self.client, meta),
            None => Ok(None),
        }
    }

    /// The card of attempt `attempt` (from `0`), if it wrote one.
    ///
    /// # Errors
    ///
    /// As [`TaskEntry::card`].
    pub fn attempt_card(&self, attempt: u32) -> Result<Option<crate::card::Card>, ClientError> {
        match &self.meta {
            Some(meta) => super::task_card::read(&self.client, meta, attempt),
            None => Ok(None),
        }
    }

    /// The task's logs, as streams: for a task reused by `resume`, those of the run that
    /// computed it.
    ///
    /// # Errors
    ///
    /// Storage failures listing them.
    pub fn logs(&self) -> Result<TaskLogs, ClientError> {
        match self.origin_run_id() {
            Some(origin) => {
                let key = RunStore::task_key(&self.flow, origin, &self.step, &self.id)?;
                TaskLogs::list(&self.client, key, origin)
            }
            None => TaskLogs::list(&self.client, self.key.clone(), &self.run_id),
        }
    }
}
