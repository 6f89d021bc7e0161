//! Flows, runs, steps and tasks as the client sees them. Every handle owns what it needs (a
//! cheap clone of the client), so handles can be kept and passed around freely.

use serde::de::DeserializeOwned;

use super::run_list::{RunList, UnreadableRun};
use super::task_entry::{TaskEntry, TaskProgress, TaskRecords};
use super::{Client, ClientError};
use crate::datastore::{ArtifactEntry, TaskIndex};
use crate::flow::{Flow, StateOwned};
use crate::run::{
    AttemptRecord, CheckpointRecord, InputSpec, Latest, Promotion, Provenance, RunId, RunRecord,
    RunStatus, RunStore, RunStoreError, StepName, TaskFailure, TaskId, TaskMeta, TaskPath,
    TaskStatus,
};

/// The name that means a flow's most recently started run wherever a run is named by a person
/// (`dump latest/end`): see [`FlowHandle::run_or_latest`].
pub const LATEST: &str = "latest";

fn list(names: impl IntoIterator<Item = impl AsRef<str>>) -> String {
    let names: Vec<String> = names
        .into_iter()
        .map(|n| format!("`{}`", n.as_ref()))
        .collect();
    if names.is_empty() {
        "none".to_string()
    } else {
        names.join(", ")
    }
}

/// A flow of the datastore.
#[derive(Debug, Clone)]
pub struct FlowHandle<'c> {
    client: &'c Client,
    name: String,
}

impl<'c> FlowHandle<'c> {
    pub(super) fn new(client: &'c Client, name: &str) -> Self {
        FlowHandle {
            client,
            name: name.to_string(),
        }
    }

    /// The flow's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Run `run_id` of this flow.
    pub fn run(&self, run_id: &str) -> Result<RunHandle, ClientError> {
        match self.client.store.read_run(&self.name, run_id) {
            Ok(RunRecord {
                deleting: Some(since),
                ..
            }) => Err(ClientError::BeingDeleted {
                flow: self.name.clone(),
                run_id: run_id.to_string(),
                since,
            }),
            Ok(record) => Ok(RunHandle {
                client: self.client.clone(),
                record,
            }),
            Err(RunStoreError::NoSuchRun { .. }) => Err(ClientError::NoSuchRun {
                flow: self.name.clone(),
                run_id: run_id.to_string(),
            }),
            Err(e) => Err(e.into()),
        }
    }

    /// Run `run`, or for [`LATEST`] the most recently started run.
    ///
    /// # Errors
    ///
    /// As [`FlowHandle::run`] and [`FlowHandle::latest_run`].
    pub fn run_or_latest(&self, run: &str) -> Result<RunHandle, ClientError> {
        if run == LATEST {
            self.latest_run()
        } else {
            self.run(run)
        }
    }

    /// The most recently started run, whatever its status. Reads one pointer, not every run.
    pub fn latest_run(&self) -> Result<RunHandle, ClientError> {
        match self.client.store.latest(&self.name, Latest::Any)? {
            Some(id) => self.run(&id),
            None => Err(ClientError::NoRuns {
                flow: self.name.clone(),
            }),
        }
    }

    /// The most recently started run that succeeded. Reads one pointer, not every run.
    pub fn latest_successful_run(&self) -> Result<RunHandle, ClientError> {
        match self.client.store.latest(&self.name, Latest::Succeeded)? {
            Some(id) => self.run(&id),
            None => Err(ClientError::NoSuccessfulRun {
                flow: self.name.clone(),
            }),
        }
    }

    /// The run promoted as `label` (`production`: see [`RunStore::promote`]). Reads the label's
    /// pointer and the run's record, not every run.
    ///
    /// # Errors
    ///
    /// [`ClientError::NotPromoted`] if no run is promoted as `label` (never, or demoted since);
    /// [`ClientError::NoSuchRun`] if the promoted run was deleted; a label that is not a key
    /// segment, a damaged pointer or storage failures as [`ClientError::Store`].
    pub fn promoted(&self, label: &str) -> Result<RunHandle, ClientError> {
        match self.promotion(label)?.and_then(|entry| entry.run_id) {
            Some(id) => self.run(&id),
            None => Err(ClientError::NotPromoted {
                flow: self.name.clone(),
                label: label.to_string(),
            }),
        }
    }

    /// The newest change of `label`: who promoted which run (or demoted it) and when; `None` if
    /// the label never had one. One read.
    ///
    /// # Errors
    ///
    /// As [`FlowHandle::promoted`], [`ClientError::NotPromoted`] aside.
    pub fn promotion(&self, label: &str) -> Result<Option<Promotion>, ClientError> {
        Ok(self.client.store.promotion(&self.name, label)?)
    }

    /// Every label of the flow that names a run now, each with its newest change (who promoted
    /// which run, and when), in the order of the labels' names: one listing and one read per
    /// label. What a list of runs marks them with.
    ///
    /// # Errors
    ///
    /// A damaged pointer or storage failures.
    pub fn current_promotions(&self) -> Result<Vec<Promotion>, ClientError> {
        let mut current = Vec::new();
        for label in self.client.store.promotion_labels(&self.name)? {
            if let Some(promotion) = self.client.store.promotion(&self.name, &label)?
                && promotion.run_id.is_some()
            {
                current.push(promotion);
            }
        }
        Ok(current)
    }

    /// Every promotion and demotion of `label` (of every label with `None`), newest first.
    ///
    /// # Errors
    ///
    /// A label that is not a key segment, a damaged entry or storage failures.
    pub fn promotions(&self, label: Option<&str>) -> Result<Vec<Promotion>, ClientError> {
        Ok(self.client.store.promotion_history(&self.name, label)?)
    }

    /// The ids of every run, newest first.
    pub fn run_ids(&self) -> Result<Vec<RunId>, ClientError> {
        let mut ids = self.client.store.list_runs(&self.name)?;
        ids.reverse();
        Ok(ids)
    }

    /// Every run, newest first.
    pub fn runs(&self) -> Result<Vec<RunHandle>, ClientError> {
        let mut runs = Vec::new();
        for id in self.run_ids()? {
            match self.run(&id) {
                Ok(run) => runs.push(run),
                // Removed while listed, or being removed by a garbage collection.
                Err(ClientError::NoSuchRun { .. } | ClientError::BeingDeleted { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(runs)
    }

    /// Every run, newest first, going on past runs whose record cannot be read, which are
    /// listed apart (a run removed while the listing is read, or being removed by a garbage
    /// collection, is left out).
    ///
    /// # Errors
    ///
    /// Storage failures listing the runs.
    pub fn list_runs(&self) -> Result<RunList, ClientError> {
        let ids = self.run_ids()?;
        let records = read_in_parallel(&ids, |id| self.client.store.read_run(&self.name, id));
        let mut list = RunList::default();
        for (id, record) in ids.into_iter().zip(records) {
            match record {
                // Being deleted by a garbage collection: gone for readers.
                Ok(record) if record.deleting.is_some() => {}
                Ok(record) => list.runs.push(RunHandle {
                    client: self.client.clone(),
                    record,
                }),
                Err(RunStoreError::NoSuchRun { .. }) => {}
                Err(e) => list.unreadable.push(UnreadableRun {
                    run_id: id,
                    error: e.into(),
                }),
            }
        }
        Ok(list)
    }

    /// Every run tagged `tag`, newest first.
    pub fn runs_tagged(&self, tag: &str) -> Result<Vec<RunHandle>, ClientError> {
        Ok(self
            .runs()?
            .into_iter()
            .filter(|r| r.tags().iter().any(|t| t == tag))
            .collect())
    }

    /// The newest run tagged `tag`.
    pub fn latest_tagged(&self, tag: &str) -> Result<RunHandle, ClientError> {
        for id in self.run_ids()? {
            let run = self.run(&id)?;
            if run.tags().iter().any(|t| t == tag) {
                return Ok(run);
            }
        }
        Err(ClientError::NoRunTagged {
            flow: self.name.clone(),
            tag: tag.to_string(),
        })
    }
}

/// How many threads read a listing's records at most: reading many small records is waiting on
/// the file system or, on S3, on round trips, which overlap.
const READERS: usize = 8;

/// `read` of every item, in order, on up to [`READERS`] threads (one for a short list).
fn read_in_parallel<I: Sync, T: Send>(items: &[I], read: impl Fn(&I) -> T + Sync) -> Vec<T> {
    const PER_THREAD_AT_LEAST: usize = 64;
    let threads = items.len().div_ceil(PER_THREAD_AT_LEAST).clamp(1, READERS);
    if threads == 1 {
        return items.iter().map(&read).collect();
    }
    let chunk = items.len().div_ceil(threads);
    std::thread::scope(|scope| {
        let workers: Vec<_> = items
            .chunks(chunk)
            .map(|part| scope.spawn(|| part.iter().map(&read).collect::<Vec<T>>()))
            .collect();
        workers
            .into_iter()
            .flat_map(|worker| match worker.join() {
                Ok(part) => part,
                // `read` does not panic on what it reads; if it did, the panic goes on here.
                Err(panic) => std::panic::resume_unwind(panic),
            })
            .collect()
    })
}

/// One run of a flow.
#[derive(Debug, Clone)]
pub struct RunHandle {
    client: Client,
    record: RunRecord,
}

impl RunHandle {
    /// The run's id.
    pub fn id(&self) -> &RunId {
        &self.record.run_id
    }

    /// The flow's name.
    pub fn flow(&self) -> &str {
        &self.record.flow
    }

    /// How the run stands.
    pub fn status(&self) -> RunStatus {
        self.record.status
    }

    /// Whether the run succeeded.
    pub fn successful(&self) -> bool {
        self.record.status == RunStatus::Succeeded
    }

    /// Everything recorded about the run.
    pub fn record(&self) -> &RunRecord {
        &self.record
    }

    /// What code the run ran and where it came from: the binary's hash, the package and its
    /// features, the compiler, the git commit, who and where. `None` for runs recorded before
    /// provenance was.
    pub fn provenance(&self) -> Option<&Provenance> {
        self.record.provenance.as_ref()
    }

    /// The run's tags.
    pub fn tags(&self) -> &[String] {
        &self.record.tags
    }

    /// The run's parameters, as JSON.
    pub fn params(&self) -> &serde_json::Value {
        &self.record.params
    }

    /// The names of the steps this run has tasks for, in the graph's order.
    pub fn step_names(&self) -> Result<Vec<String>, ClientError> {
        let present = self
            .client
            .store
            .list_steps(&self.record.flow, &self.record.run_id)?;
        Ok(self
            .record
            .graph
            .steps
            .iter()
            .map(|s| s.name.clone())
            .filter(|n| present.contains(n))
            .collect())
    }

    /// The steps this run has tasks for, in the graph's order.
    pub fn steps(&self) -> Result<Vec<StepHandle>, ClientError> {
        Ok(self
            .step_names()?
            .into_iter()
            .map(|name| self.step_handle(name))
            .collect())
    }

    fn step_handle(&self, name: String) -> StepHandle {
        StepHandle {
            client: self.client.clone(),
            flow: self.record.flow.clone(),
            run_id: self.record.run_id.clone(),
            name: StepName::from(name),
            record: self.record.clone(),
        }
    }

    /// Step `name` of this run.
    pub fn step(&self, name: &str) -> Result<StepHandle, ClientError> {
        if !self.record.graph.steps.iter().any(|s| s.name == name) {
            return Err(ClientError::NoSuchStep {
                flow: self.record.flow.clone(),
                run_id: self.record.run_id.to_string(),
                step: name.to_string(),
                available: list(self.record.graph.steps.iter().map(|s| &s.name)),
            });
        }
        Ok(self.step_handle(name.to_string()))
    }

    /// The `end` task, which holds the run's final state.
    ///
    /// `end` is outside every foreach, so its only task is `0`: it is read without listing the
    /// step (see [`StepHandle::only_task`] for steps that may have several).
    pub fn end_task(&self) -> Result<TaskHandle, ClientError> {
        let end = self
            .record
            .graph
            .steps
            .iter()
            .find(|s| s.kind == "end")
            .map_or("end", |s| s.name.as_str());
        self.step(end)?.task("0")
    }

    /// Artifact `name` of the run's final state (the `end` task), decoded as `T`.
    pub fn artifact<T: DeserializeOwned>(&self, name: &str) -> Result<T, ClientError> {
        self.end_task()?.artifact(name)
    }

    /// The run's final state as the flow type.
    pub fn state<F: Flow>(&self) -> Result<F, ClientError> {
        self.end_task()?.state()
    }
}

/// One step of a run.
#[derive(Debug, Clone)]
pub struct StepHandle {
    client: Client,
    flow: String,
    run_id: RunId,
    name: StepName,
    record: RunRecord,
}

impl StepHandle {
    /// The step's name.
    pub fn name(&self) -> &StepName {
        &self.name
    }

    /// The ids of the step's tasks, in foreach and loop pass order.
    pub fn task_ids(&self) -> Result<Vec<TaskId>, ClientError> {
        Ok(self
            .client
            .store
            .list_tasks(&self.flow, &self.run_id, &self.name)?)
    }

    /// Every task of the step, in foreach and loop pass order.
    pub fn tasks(&self) -> Result<Vec<TaskHandle>, ClientError> {
        self.task_ids()?.iter().map(|id| self.task(id)).collect()
    }

    /// Every task the step has in the datastore, in foreach order, whatever it recorded: also
    /// tasks that are running, were interrupted, or never started.
    pub fn task_entries(&self) -> Result<Vec<TaskEntry>, ClientError> {
        self.task_entries_of(&self.task_ids()?)
    }

    /// The entries of tasks `ids` of the step (from [`StepHandle::task_ids`]), without listing
    /// the step again: one page of a long foreach.
    ///
    /// # Errors
    ///
    /// Storage failures, and [`ClientError::Store`] for an id that is not a key segment.
    pub fn task_entries_of(&self, ids: &[TaskId]) -> Result<Vec<TaskEntry>, ClientError> {
        ids.iter().map(|id| self.read_entry(id)).collect()
    }

    /// Task `task_id` of the step, whatever it recorded, if the step has it.
    ///
    /// # Errors
    ///
    /// [`ClientError::NoSuchTask`] if the step has no such task.
    pub fn task_entry(&self, task_id: &str) -> Result<TaskEntry, ClientError> {
        let ids = self.task_ids()?;
        if !ids.iter().any(|id| id == task_id) {
            return Err(self.no_such_task(task_id, ids));
        }
        self.read_entry(task_id)
    }

    /// The step's only task: the task of every step outside a foreach, once the run reached it.
    ///
    /// # Errors
    ///
    /// [`ClientError::NoTasks`] if the run did not reach the step, [`ClientError::SeveralTasks`]
    /// for a step inside a foreach with more than one.
    pub fn only_task(&self) -> Result<TaskEntry, ClientError> {
        match self.task_ids()?.as_slice() {
            [only] => self.read_entry(only),
            [] => Err(ClientError::NoTasks {
                run_id: self.run_id.to_string(),
                step: self.name.to_string(),
            }),
            several => Err(ClientError::SeveralTasks {
                run_id: self.run_id.to_string(),
                step: self.name.to_string(),
                count: several.len(),
            }),
        }
    }

    fn read_entry(&self, task_id: &str) -> Result<TaskEntry, ClientError> {
        TaskEntry::read(&self.client, &self.flow, &self.run_id, &self.name, task_id)
    }

    fn no_such_task(&self, task_id: &str, ids: Vec<TaskId>) -> ClientError {
        ClientError::NoSuchTask {
            run_id: self.run_id.to_string(),
            step: self.name.to_string(),
            task_id: task_id.to_string(),
            available: list(ids),
        }
    }

    /// Task `task_id` of the step (`0` outside a foreach), once it recorded an attempt.
    pub fn task(&self, task_id: &str) -> Result<TaskHandle, ClientError> {
        let key = RunStore::task_key(&self.flow, &self.run_id, &self.name, task_id)?;
        let TaskRecords { meta, index } = TaskRecords::read(&self.client.store, &key)?;
        let Some(meta) = meta else {
            return Err(self.no_such_task(task_id, self.task_ids()?));
        };
        Ok(TaskHandle {
            client: self.client.clone(),
            record: self.record.clone(),
            meta,
            index,
        })
    }
}

/// One task: its status, its history, and its artifacts.
#[derive(Debug, Clone)]
pub struct TaskHandle {
    client: Client,
    record: RunRecord,
    meta: TaskMeta,
    index: Option<TaskIndex>,
}

impl TaskHandle {
    /// `flow/run/step/task`.
    pub fn pathspec(&self) -> String {
        format!(
            "{}/{}/{}/{}",
            self.meta.flow, self.meta.run_id, self.meta.spec.step, self.meta.spec.task_id
        )
    }

    /// The step's name.
    pub fn step(&self) -> &StepName {
        &self.meta.spec.step
    }

    /// The task's id within its step.
    pub fn id(&self) -> &TaskId {
        &self.meta.spec.task_id
    }

    /// How the task's last attempt ended, as it recorded.
    pub fn status(&self) -> TaskStatus {
        self.meta.status
    }

    /// Where the task stands: [`TaskHandle::status`] and whether it is complete together.
    pub fn progress(&self) -> TaskProgress {
        TaskProgress::of(Some(&self.meta), self.is_done())
    }

    /// Whether the task completed (succeeded, or failed and was caught) and its artifacts can be
    /// read.
    pub fn is_done(&self) -> bool {
        self.index.is_some()
    }

    /// Why the last attempt failed, if it did.
    pub fn failure(&self) -> Option<&TaskFailure> {
        self.meta.failure()
    }

    /// Every attempt, oldest first.
    pub fn attempts(&self) -> &[AttemptRecord] {
        &self.meta.attempts
    }

    /// Everything recorded about the task.
    pub fn meta(&self) -> &TaskMeta {
        &self.meta
    }

    /// For a task reused by `resume`, the run that computed it.
    pub fn origin_run_id(&self) -> Option<&RunId> {
        self.meta.origin_run_id.as_ref()
    }

    /// The task's logs: `(attempt, text)` per attempt, then the process's stdout and stderr
    /// (process mode) as attempts `u32::MAX - 1` and `u32::MAX`.
    pub fn logs(&self) -> Result<Vec<(u32, String)>, ClientError> {
        let key = self.key()?;
        let mut logs: Vec<(u32, String)> = self
            .client
            .store
            .read_logs(&key)?
            .into_iter()
            .map(|(n, bytes)| (n, String::from_utf8_lossy(&bytes).into_owned()))
            .collect();
        for (n, stream) in [(u32::MAX - 1, "stdout"), (u32::MAX, "stderr")] {
            if let Some(bytes) = self.client.store.read_output(&key, stream)? {
                logs.push((n, String::from_utf8_lossy(&bytes).into_owned()));
            }
        }
        Ok(logs)
    }

    /// The card the task's last attempt wrote, if it wrote one (see [`mod@crate::card`]); for a task
    /// reused by `resume`, the card of the run that computed it.
    ///
    /// # Errors
    ///
    /// A card larger than [`crate::run::MAX_CARD_SIZE`] or damaged
    /// ([`ClientError::DamagedCard`]); storage failures.
    pub fn card(&self) -> Result<Option<crate::card::Card>, ClientError> {
        super::task_card::last(&self.client, &self.meta)
    }

    /// The card attempt `attempt` (from `0`) wrote, if it wrote one: a failed attempt's too.
    ///
    /// # Errors
    ///
    /// As [`TaskHandle::card`].
    pub fn attempt_card(&self, attempt: u32) -> Result<Option<crate::card::Card>, ClientError> {
        super::task_card::read(&self.client, &self.meta, attempt)
    }

    fn key(&self) -> Result<crate::datastore::Key, ClientError> {
        Ok(RunStore::task_key(
            &self.meta.flow,
            &self.meta.run_id,
            &self.meta.spec.step,
            &self.meta.spec.task_id,
        )?)
    }

    /// The tasks this one started from.
    pub fn parents(&self) -> Vec<TaskPath> {
        self.meta.spec.parents()
    }

    /// The tasks that started from this one (the steps after it that ran).
    pub fn children(&self) -> Result<Vec<TaskPath>, ClientError> {
        let me = TaskPath {
            step: self.meta.spec.step.clone(),
            task: self.meta.spec.task_id.clone(),
        };
        let Some(step) = self
            .record
            .graph
            .steps
            .iter()
            .find(|s| s.name == self.meta.spec.step)
        else {
            return Ok(Vec::new());
        };
        let mut children = Vec::new();
        for next in &step.next {
            for id in self
                .client
                .store
                .list_tasks(&self.meta.flow, &self.meta.run_id, next)?
            {
                let key = RunStore::task_key(&self.meta.flow, &self.meta.run_id, next, &id)?;
                if let Some(meta) = self.client.store.read_meta(&key)?
                    && meta.spec.parents().contains(&me)
                {
                    children.push(TaskPath {
                        step: StepName::from(next),
                        task: id,
                    });
                }
            }
        }
        Ok(children)
    }

    /// For a task inside a loop, the pass of the innermost loop it ran in, from `0`: the `2` of
    /// its task id `i2`. The passes of a step are its tasks in order; each task's
    /// [`parents`](Self::parents) lead back through the passes before it.
    pub fn loop_pass(&self) -> Option<usize> {
        self.meta
            .spec
            .frames
            .iter()
            .rev()
            .find(|f| f.is_loop)
            .map(|f| f.index)
    }

    /// For a task inside a foreach, its element's index in the innermost foreach.
    pub fn foreach_index(&self) -> Option<usize> {
        self.meta
            .spec
            .frames
            .iter()
            .rev()
            .find(|f| f.foreach)
            .map(|f| f.index)
    }

    /// For the body of a foreach, the element it ran on, decoded as `T`.
    pub fn item<T: DeserializeOwned>(&self) -> Result<T, ClientError> {
        let InputSpec::Item { parent, position } = &self.meta.spec.input else {
            return Err(ClientError::NotForeach {
                pathspec: self.pathspec(),
            });
        };
        let key = RunStore::task_key(
            &self.meta.flow,
            &self.meta.run_id,
            &parent.step,
            &parent.task,
        )?;
        let foreach = self.client.store.read_meta(&key)?.and_then(|m| m.foreach);
        let Some(foreach) = foreach else {
            return Err(ClientError::NotForeach {
                pathspec: self.pathspec(),
            });
        };
        let blob_error = |e: crate::datastore::BlobError| ClientError::Decode {
            pathspec: self.pathspec(),
            name: "(foreach item)".into(),
            type_name: std::any::type_name::<T>(),
            source: Box::new(crate::datastore::LoadError::Blob(e)),
        };
        let bytes = self
            .client
            .store
            .blobs()
            .get(&foreach.items, None)
            .map_err(blob_error)?;
        let decode_error = |e: rmp_serde::decode::Error| ClientError::Decode {
            pathspec: self.pathspec(),
            name: "(foreach item)".into(),
            type_name: std::any::type_name::<T>(),
            source: Box::new(crate::datastore::LoadError::Decode(
                crate::state::DecodeError::Field {
                    field: "(foreach item)".into(),
                    source: e,
                },
            )),
        };
        let items: Vec<serde_bytes::ByteBuf> =
            crate::state::decode_field(&bytes).map_err(decode_error)?;
        let Some(item) = items.get(*position) else {
            return Err(ClientError::NotForeach {
                pathspec: self.pathspec(),
            });
        };
        crate::state::decode_field(item).map_err(decode_error)
    }

    fn index(&self) -> Result<&TaskIndex, ClientError> {
        self.index.as_ref().ok_or_else(|| ClientError::Incomplete {
            pathspec: self.pathspec(),
            status: self.meta.status.to_string(),
        })
    }

    /// The task's artifacts: name, blob hash, size, type and encoding.
    pub fn artifacts(&self) -> Result<&[ArtifactEntry], ClientError> {
        Ok(&self.index()?.artifacts)
    }

    /// Artifact `name`, decoded as `T`. Only that artifact's blob is read.
    pub fn artifact<T: DeserializeOwned>(&self, name: &str) -> Result<T, ClientError> {
        let index = self.index()?;
        let Some(entry) = index.artifact(name) else {
            return Err(ClientError::NoSuchArtifact {
                pathspec: self.pathspec(),
                name: name.to_string(),
                available: list(index.artifacts.iter().map(|a| &a.name)),
            });
        };
        self.client
            .store
            .blobs()
            .load_artifact::<T>(entry)
            .map_err(|source| ClientError::Decode {
                pathspec: self.pathspec(),
                name: name.to_string(),
                type_name: std::any::type_name::<T>(),
                source: Box::new(with_context(
                    source,
                    format!("{}, artifact `{name}`", self.pathspec()),
                )),
            })
    }

    /// The checkpoints the task stored while it ran (`Current::checkpoint`), by number: all of
    /// them while it runs or when it did not complete, the last once it completed.
    pub fn checkpoints(&self) -> Result<Vec<CheckpointRecord>, ClientError> {
        Ok(self.client.store.checkpoints(&self.key()?)?)
    }

    /// The value of checkpoint `record` of this task, decoded as `T`.
    pub fn checkpoint<T: DeserializeOwned>(
        &self,
        record: &CheckpointRecord,
    ) -> Result<T, ClientError> {
        let entry = record.as_artifact();
        self.client
            .store
            .blobs()
            .load_artifact::<T>(&entry)
            .map_err(|source| ClientError::Decode {
                pathspec: self.pathspec(),
                name: entry.name.clone(),
                type_name: std::any::type_name::<T>(),
                source: Box::new(with_context(
                    source,
                    format!("{}, {}", self.pathspec(), entry.name),
                )),
            })
    }

    /// The task's whole state as the flow type.
    pub fn state<F: Flow>(&self) -> Result<F, ClientError> {
        let index = self.index()?;
        self.client
            .store
            .blobs()
            .load_state::<StateOwned<F>>(&index.artifacts)
            .map(|s| s.0)
            .map_err(|source| ClientError::State {
                pathspec: self.pathspec(),
                type_name: std::any::type_name::<F>(),
                source: Box::new(with_context(source, self.pathspec())),
            })
    }
}

fn with_context(
    error: crate::datastore::LoadError,
    context: String,
) -> crate::datastore::LoadError {
    match error {
        crate::datastore::LoadError::Blob(e) => {
            crate::datastore::LoadError::Blob(e.with_context(context))
        }
        other => other,
    }
}

#[cfg(test)]
mod parallel_read_tests {
    use super::read_in_parallel;

    #[test]
    fn items_are_read_once_each_and_kept_in_order() {
        for n in [0, 1, 63, 64, 65, 1000, 10_001] {
            let items: Vec<usize> = (0..n).collect();
            let threads = std::sync::Mutex::new(std::collections::HashSet::new());
            let read = read_in_parallel(&items, |i| {
                threads
                    .lock()
                    .expect("lock")
                    .insert(std::thread::current().id());
                i * 2
            });
            assert_eq!(read, items.iter().map(|i| i * 2).collect::<Vec<_>>());
            let used = threads.lock().expect("lock").len();
            assert!(used <= super::READERS, "{used} threads for {n}");
            if n >= 1000 {
                assert!(used > 1, "{n} items read on one thread");
            }
        }
    }
}
