//! Runs and tasks in a [`Storage`]: the layout and typed reads and writes.

use std::sync::Arc;
use std::time::SystemTime;

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::ids::{RunId, TaskId, validate_run_id};
use super::record::{RunRecord, RunStatus};
use super::task_meta::{TaskMeta, TaskSpec};
use crate::datastore::{
    BlobStore, DatastoreLocation, Key, KeyError, LocalStorage, LocationError, MAX_RECORD_SIZE,
    Storage, StorageError, TaskError, TaskIndex, json_problem, read_task, write_task,
};

/// Errors reading or writing runs and tasks.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RunStoreError {
    /// A run id that the flow does not have in this datastore.
    #[error("flow `{flow}` has no run `{run_id}` in this datastore")]
    NoSuchRun {
        /// The flow's name.
        flow: String,
        /// The run id asked for.
        run_id: String,
    },
    /// A new run whose id is taken: run records are created once, never overwritten.
    #[error("run `{run_id}` of flow `{flow}` already exists")]
    RunExists {
        /// The flow's name.
        flow: String,
        /// The id already taken.
        run_id: String,
    },
    /// A run that cannot be promoted: only a run that succeeded can.
    #[error(
        "run `{run_id}` of flow `{flow}` cannot be promoted: it is {status}, and only a run that succeeded can be"
    )]
    NotPromotable {
        /// The flow's name.
        flow: String,
        /// The run asked to be promoted.
        run_id: String,
        /// How it stands instead.
        status: RunStatus,
    },
    /// A label to demote that names no run.
    #[error("flow `{flow}` has no run promoted as `{label}`")]
    NothingPromoted {
        /// The flow's name.
        flow: String,
        /// The label asked to be demoted.
        label: String,
    },
    /// A name (flow, run id, step, task id, label) that cannot be a datastore key segment,
    /// such as `..` or one with a `/`: used, it could name something outside its place.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// The storage backend failed: an I/O error, a missing permission, an unreachable bucket.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// A datastore location this build cannot open (an `s3://` one without the `s3` feature).
    #[error(transparent)]
    Location(#[from] LocationError),
    /// A task's index or done marker could not be written or read.
    #[error(transparent)]
    Task(#[from] TaskError),
    /// A write that could not be done for a reason of its own: a task's foreach elements or
    /// artifacts that could not be encoded or stored, an update the storage did not apply, no
    /// free name for a promotion entry. The message says which.
    #[error("{0}")]
    Io(String),
    /// A record that is not valid JSON of its shape; the message says what is wrong without
    /// quoting the record (serde's own messages quote the values they reject).
    #[error("{what} at `{key}` is not readable: {}", json_problem(.source))]
    Corrupt {
        /// Which record (`a run record`, `a promotion entry`, …).
        what: &'static str,
        /// Where it is stored.
        key: String,
        /// What the JSON parser found.
        source: serde_json::Error,
    },
    /// A `latest` pointer whose content is not a run id. The content is not repeated: it may
    /// be anything, terminal escape sequences included.
    #[error(
        "the latest-run pointer `{key}` is damaged: it does not hold a run id (delete it; the next run of the flow writes it again)"
    )]
    BadPointer {
        /// Where the pointer is stored.
        key: String,
    },
    /// A run record whose `started` is not an RFC 3339 time, so that it cannot be placed
    /// among the flow's runs.
    #[error("the record of run `{run_id}` of flow `{flow}` has no readable start time")]
    BadStartTime {
        /// The flow's name.
        flow: String,
        /// The run whose record it is.
        run_id: String,
    },
}

impl RunStoreError {
    /// Whether a stored record was found but cannot be read as one (damaged, cut short, or in a
    /// format this version does not read), as opposed to absent or unreachable.
    pub fn is_damaged_record(&self) -> bool {
        matches!(
            self,
            RunStoreError::Corrupt { .. }
                | RunStoreError::Task(
                    TaskError::Damaged { .. } | TaskError::UnsupportedFormat { .. }
                )
        )
    }
}

/// The largest log (an attempt's, or a task process's stdout or stderr) read whole: the
/// executor keeps at most the first and last 16 MiB of each, so anything larger was not written
/// by it.
pub const MAX_LOG_SIZE: u64 = 64 << 20;

/// The largest card an attempt stores (its MessagePack encoding): a step's card is bounded to
/// this size as it is written (`card::MAX_CARD_SIZE` is this number), so a larger stored card was
/// not written by the executor and is not read.
pub const MAX_CARD_SIZE: u64 = 16 << 20;

/// One of a flow's latest-run pointers (`flows/<Flow>/latest/<name>`): see
/// [`RunStore::latest`] and [`RunStore::advance_latest`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Latest {
    /// The run started last, whatever its status (`latest/any`).
    Any,
    /// The run started last of those that succeeded (`latest/succeeded`).
    Succeeded,
}

impl Latest {
    /// The pointer's name in the datastore: `any` or `succeeded`.
    pub fn pointer_name(self) -> &'static str {
        match self {
            Latest::Any => "any",
            Latest::Succeeded => "succeeded",
        }
    }
}

impl std::fmt::Display for Latest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.pointer_name())
    }
}

/// Runs and tasks of every flow in one datastore.
#[derive(Debug, Clone)]
pub struct RunStore {
    storage: Arc<dyn Storage>,
}

const RUN_RECORD: &str = "run.json";
const TASK_META: &str = "meta.json";
const TASK_SPEC: &str = "spec.json";

impl RunStore {
    /// A run store over any storage.
    pub fn new(storage: Arc<dyn Storage>) -> Self {
        RunStore { storage }
    }

    /// A run store in a local directory, created if missing.
    ///
    /// Files are not flushed to disk one by one unless `BLOOMING_SYNC=1`: every write is
    /// still atomic (temp file and rename), which is what a killed process needs; flushing
    /// protects against a power loss at a large cost per task.
    pub fn open_local(path: impl Into<std::path::PathBuf>) -> Result<Self, RunStoreError> {
        let sync = std::env::var("BLOOMING_SYNC").is_ok_and(|v| v == "1");
        let storage = LocalStorage::open(path)?.with_sync(sync);
        Ok(RunStore::new(Arc::new(storage)))
    }

    /// The run store at `location`: a local directory (created if missing, as by
    /// [`RunStore::open_local`]), or a bucket and prefix on S3-compatible storage (cargo feature
    /// `s3`), which must exist and accept the credentials in the environment.
    ///
    /// # Errors
    ///
    /// A directory that cannot be created; for S3, a configuration the client rejects, an
    /// unreachable endpoint, a missing bucket (a [`StorageError::Io`] of kind `NotFound`) or
    /// refused credentials; an `s3://` location in a build without the `s3` feature
    /// ([`LocationError::S3Disabled`]).
    pub fn open(location: &DatastoreLocation) -> Result<Self, RunStoreError> {
        match location {
            DatastoreLocation::Local(path) => Self::open_local(path),
            #[cfg(feature = "s3")]
            DatastoreLocation::S3(s3) => Ok(RunStore::new(Arc::new(
                crate::datastore::ObjectStorage::connect(s3)?,
            ))),
            #[cfg(not(feature = "s3"))]
            DatastoreLocation::S3(s3) => Err(LocationError::S3Disabled {
                location: s3.to_string(),
            }
            .into()),
        }
    }

    /// The storage underneath.
    pub fn storage(&self) -> &dyn Storage {
        &*self.storage
    }

    /// The content-addressed blobs of this datastore.
    pub fn blobs(&self) -> BlobStore<'_> {
        BlobStore::new(&*self.storage)
    }

    fn flow_key(flow: &str) -> Result<Key, RunStoreError> {
        Ok(Key::segment("flows")?
            .join(flow)
            .map_err(|e| e.describing("flow name"))?)
    }

    /// Where a run lives.
    pub fn run_key(flow: &str, run_id: &str) -> Result<Key, RunStoreError> {
        Ok(Self::flow_key(flow)?
            .join("runs")?
            .join(run_id)
            .map_err(|e| e.describing("run id"))?)
    }

    /// Where a task lives.
    pub fn task_key(
        flow: &str,
        run_id: &str,
        step: &str,
        task_id: &str,
    ) -> Result<Key, RunStoreError> {
        Ok(Self::run_key(flow, run_id)?
            .join("steps")?
            .join(step)
            .map_err(|e| e.describing("step name"))?
            .join(task_id)
            .map_err(|e| e.describing("task id"))?)
    }

    fn put_json<T: Serialize>(&self, key: &Key, value: &T) -> Result<(), RunStoreError> {
        let bytes = serde_json::to_vec_pretty(value).map_err(|source| RunStoreError::Corrupt {
            what: "a record",
            key: key.to_string(),
            source,
        })?;
        self.storage.put(key, &bytes)?;
        Ok(())
    }

    fn get_json<T: DeserializeOwned>(
        &self,
        key: &Key,
        what: &'static str,
    ) -> Result<Option<T>, RunStoreError> {
        let bytes = match self.storage.get_at_most(key, MAX_RECORD_SIZE) {
            Ok(bytes) => bytes,
            Err(e) if e.is_not_found() => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|source| RunStoreError::Corrupt {
                what,
                key: key.to_string(),
                source,
            })
    }

    /// Records a new run; fails if a run with that id exists.
    pub fn create_run(&self, record: &RunRecord) -> Result<(), RunStoreError> {
        let key = Self::run_key(&record.flow, &record.run_id)?.join(RUN_RECORD)?;
        let bytes = serde_json::to_vec_pretty(record).map_err(|source| RunStoreError::Corrupt {
            what: "a run record",
            key: key.to_string(),
            source,
        })?;
        if !self.storage.put_if_absent(&key, &bytes)? {
            return Err(RunStoreError::RunExists {
                flow: record.flow.clone(),
                run_id: record.run_id.to_string(),
            });
        }
        Ok(())
    }

    /// Records how a run stands: the `status`, `finished` and `failure` of `record` are written
    /// onto the stored record of run `record.run_id` of flow `record.flow`, in one atomic
    /// [`Storage::update`] of what is stored at that moment. Everything else stays as stored
    /// (tags added with [`RunStore::update_tags`] while the run went on included), so the end of
    /// a run and a `tag` never undo each other. A success then moves the flow's
    /// `latest/succeeded` pointer forward.
    ///
    /// # Errors
    ///
    /// [`RunStoreError::NoSuchRun`] if the run has no record; a record that cannot be read;
    /// storage failures.
    pub fn update_run(&self, record: &RunRecord) -> Result<(), RunStoreError> {
        let stored = self.modify_run(&record.flow, &record.run_id, |stored| {
            stored.status = record.status;
            stored.finished.clone_from(&record.finished);
            stored.failure.clone_from(&record.failure);
        })?;
        if stored.status == RunStatus::Succeeded {
            self.advance_pointer(&stored, Latest::Succeeded)?;
        }
        Ok(())
    }

    /// Removes the tags `remove` from run `run_id` of `flow`, then adds the tags `add` that it
    /// does not have yet (after those it has, in the order given), in one atomic
    /// [`Storage::update`] of the stored record: a run ending meanwhile keeps its status, and
    /// concurrent `tag` commands keep each other's tags. Returns the record as stored after.
    /// Nothing is written when nothing changes.
    ///
    /// # Errors
    ///
    /// As [`RunStore::update_run`].
    pub fn update_tags(
        &self,
        flow: &str,
        run_id: &str,
        add: &[&str],
        remove: &[&str],
    ) -> Result<RunRecord, RunStoreError> {
        self.modify_run(flow, run_id, |record| {
            record.tags.retain(|t| !remove.contains(&t.as_str()));
            for tag in add {
                if !record.tags.iter().any(|t| t == tag) {
                    record.tags.push((*tag).to_owned());
                }
            }
        })
    }

    /// Applies `change` to the stored record of run `run_id` of `flow`, atomically (see
    /// [`Storage::update`], which may call it more than once); returns the record as stored
    /// after. The record's `flow` and `run_id` are those of its location whatever it says.
    fn modify_run(
        &self,
        flow: &str,
        run_id: &str,
        mut change: impl FnMut(&mut RunRecord),
    ) -> Result<RunRecord, RunStoreError> {
        let key = Self::run_key(flow, run_id)?.join(RUN_RECORD)?;
        let mut outcome = None;
        self.storage.update(&key, &mut |current| {
            let changed = current
                .ok_or_else(|| RunStoreError::NoSuchRun {
                    flow: flow.to_string(),
                    run_id: run_id.to_string(),
                })
                .and_then(|bytes| Self::decode_run(&key, flow, run_id, bytes))
                .and_then(|(stored, mut record)| {
                    change(&mut record);
                    if record == stored {
                        return Ok((record, None));
                    }
                    let bytes = serde_json::to_vec_pretty(&record).map_err(|source| {
                        RunStoreError::Corrupt {
                            what: "a run record",
                            key: key.to_string(),
                            source,
                        }
                    })?;
                    Ok((record, Some(bytes)))
                });
            match changed {
                Ok((record, bytes)) => {
                    outcome = Some(Ok(record));
                    bytes
                }
                Err(e) => {
                    outcome = Some(Err(e));
                    None
                }
            }
        })?;
        outcome.unwrap_or_else(|| {
            Err(RunStoreError::Io(format!(
                "the storage did not read `{key}` to update it"
            )))
        })
    }

    /// The record stored in `bytes` at `key` as stored, and as the run of its location: a run
    /// directory copied under another id (or flow) still says the run it was copied from, and
    /// must not be taken for that run, whose record `tag` would then rewrite.
    fn decode_run(
        key: &Key,
        flow: &str,
        run_id: &str,
        bytes: &[u8],
    ) -> Result<(RunRecord, RunRecord), RunStoreError> {
        let stored: RunRecord =
            serde_json::from_slice(bytes).map_err(|source| RunStoreError::Corrupt {
                what: "the run record",
                key: key.to_string(),
                source,
            })?;
        let mut located = stored.clone();
        flow.clone_into(&mut located.flow);
        located.run_id = RunId::from(run_id);
        Ok((stored, located))
    }

    fn pointer_key(flow: &str, which: Latest) -> Result<Key, RunStoreError> {
        Ok(Self::flow_key(flow)?
            .join("latest")?
            .join(which.pointer_name())?)
    }

    /// Moves pointer `which` of `flow` to run `run_id` if that run
    /// started after the run it names now (by the `started` of their records; between runs
    /// started in the same millisecond, the greater id). Readers then find the latest run
    /// without listing every run.
    ///
    /// Atomic ([`Storage::update`]): among runs advancing the pointer at once, it ends on the
    /// one that started last, whatever order they come in. A pointer that is damaged, or names a
    /// run that is gone or whose record cannot be read, is replaced.
    ///
    /// # Errors
    ///
    /// [`RunStoreError::NoSuchRun`] if `run_id` has no record; [`RunStoreError::BadStartTime`]
    /// if its record has no readable start time; storage failures.
    pub fn advance_latest(
        &self,
        flow: &str,
        which: Latest,
        run_id: &str,
    ) -> Result<(), RunStoreError> {
        let record = self.read_run(flow, run_id)?;
        self.advance_pointer(&record, which)
    }

    fn advance_pointer(&self, record: &RunRecord, which: Latest) -> Result<(), RunStoreError> {
        // A scratch run of `spin` is nobody's latest run.
        if record.spin_of.is_some() {
            return Ok(());
        }
        let key = Self::pointer_key(&record.flow, which)?;
        let newer = (start_time(record)?, record.run_id.as_str());
        let mut failure = None;
        self.storage.update(&key, &mut |current| {
            failure = None;
            let Some(current) = current.and_then(pointer_target) else {
                return Some(record.run_id.as_bytes().to_vec());
            };
            if current == record.run_id {
                return None;
            }
            match self.read_run(&record.flow, &current) {
                Ok(other) => match start_time(&other) {
                    Ok(started) if (started, current.as_str()) > newer => None,
                    _ => Some(record.run_id.as_bytes().to_vec()),
                },
                Err(RunStoreError::NoSuchRun { .. } | RunStoreError::Corrupt { .. }) => {
                    Some(record.run_id.as_bytes().to_vec())
                }
                // A failure to read is not a reason to move the pointer, maybe backwards.
                Err(e) => {
                    failure = Some(e);
                    None
                }
            }
        })?;
        failure.map_or(Ok(()), Err)
    }

    /// The id of the run pointer `which` of `flow` names: the latest run started
    /// ([`Latest::Any`]), or the latest of those that succeeded ([`Latest::Succeeded`]). One
    /// read.
    ///
    /// # Errors
    ///
    /// [`RunStoreError::BadPointer`] if the pointer does not hold a run id (its content is not
    /// repeated); storage failures.
    pub fn latest(&self, flow: &str, which: Latest) -> Result<Option<RunId>, RunStoreError> {
        let key = Self::pointer_key(flow, which)?;
        match self.storage.get_at_most(&key, MAX_RECORD_SIZE) {
            Ok(bytes) => {
                pointer_target(&bytes)
                    .map(Some)
                    .ok_or_else(|| RunStoreError::BadPointer {
                        key: key.to_string(),
                    })
            }
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Records on run `run_id` of `flow` that a garbage collection began deleting it (once:
    /// the first time stays), in one atomic [`Storage::update`]; returns the record as stored.
    /// From then on listings leave the run out and the next collection finishes deleting it.
    ///
    /// # Errors
    ///
    /// As [`RunStore::update_run`].
    pub fn mark_deleting(&self, flow: &str, run_id: &str) -> Result<RunRecord, RunStoreError> {
        let now = super::record::now_rfc3339();
        self.modify_run(flow, run_id, |record| {
            if record.deleting.is_none() {
                record.deleting = Some(now.clone());
            }
        })
    }

    /// A run's record, as the run of its location: its `flow` and `run_id` are `flow` and
    /// `run_id`, whatever the stored record says (a run directory copied under another id
    /// still holds the record of the run it was copied from).
    pub fn read_run(&self, flow: &str, run_id: &str) -> Result<RunRecord, RunStoreError> {
        let key = Self::run_key(flow, run_id)?.join(RUN_RECORD)?;
        let bytes = match self.storage.get_at_most(&key, MAX_RECORD_SIZE) {
            Ok(bytes) => bytes,
            Err(e) if e.is_not_found() => {
                return Err(RunStoreError::NoSuchRun {
                    flow: flow.to_string(),
                    run_id: run_id.to_string(),
                });
            }
            Err(e) => return Err(e.into()),
        };
        Self::decode_run(&key, flow, run_id, &bytes).map(|(_, located)| located)
    }

    /// The names of the "directories" directly under `prefix`, in no particular order.
    fn child_names(&self, prefix: &Key) -> Result<Vec<String>, RunStoreError> {
        Ok(self
            .storage
            .list_children(Some(prefix))?
            .prefixes
            .iter()
            .map(|k| k.name().to_string())
            .collect())
    }

    /// The ids of every run of `flow`, oldest first.
    pub fn list_runs(&self, flow: &str) -> Result<Vec<RunId>, RunStoreError> {
        let prefix = Self::flow_key(flow)?.join("runs")?;
        let mut ids: Vec<RunId> = self
            .child_names(&prefix)?
            .into_iter()
            .map(RunId::from)
            .collect();
        ids.sort();
        Ok(ids)
    }

    /// The names of every flow with runs in this datastore.
    pub fn list_flows(&self) -> Result<Vec<String>, RunStoreError> {
        let prefix = Key::segment("flows")?;
        let mut names = self.child_names(&prefix)?;
        names.sort();
        Ok(names)
    }

    /// The steps of a run that have at least one task (finished or not).
    pub fn list_steps(&self, flow: &str, run_id: &str) -> Result<Vec<String>, RunStoreError> {
        let prefix = Self::run_key(flow, run_id)?.join("steps")?;
        self.child_names(&prefix)
    }

    /// The task ids of a step of a run, in numeric order of their foreach indices.
    pub fn list_tasks(
        &self,
        flow: &str,
        run_id: &str,
        step: &str,
    ) -> Result<Vec<TaskId>, RunStoreError> {
        let prefix = Self::run_key(flow, run_id)?
            .join("steps")?
            .join(step)
            .map_err(|e| e.describing("step name"))?;
        let mut ids: Vec<TaskId> = self
            .child_names(&prefix)?
            .into_iter()
            .map(TaskId::from)
            .collect();
        // Numerically, part by part: `2` before `10`, a loop's `i2` before `i10`.
        ids.sort_by_key(|id| {
            id.split('-')
                .map(|p| {
                    p.strip_prefix('i')
                        .unwrap_or(p)
                        .parse::<u64>()
                        .unwrap_or(u64::MAX)
                })
                .collect::<Vec<_>>()
        });
        Ok(ids)
    }

    /// Writes a task's metadata (before its done marker).
    pub fn write_meta(&self, task: &Key, meta: &TaskMeta) -> Result<(), RunStoreError> {
        self.put_json(&task.join(TASK_META)?, meta)
    }

    /// A task's metadata, if it was written: from its done marker when the task completed,
    /// else from `meta.json` (a failed task).
    pub fn read_meta(&self, task: &Key) -> Result<Option<TaskMeta>, RunStoreError> {
        if let Some((_, Some(meta))) = self.read_done(task)? {
            return Ok(Some(meta));
        }
        self.get_json(&task.join(TASK_META)?, "task metadata")
    }

    /// A complete task's index and the metadata recorded with it, in one read.
    pub fn read_done(
        &self,
        task: &Key,
    ) -> Result<Option<(TaskIndex, Option<TaskMeta>)>, RunStoreError> {
        let Some(mut index) = read_task(&*self.storage, task)? else {
            return Ok(None);
        };
        let meta =
            match index.metadata.take() {
                Some(value) => Some(serde_json::from_value(value).map_err(|source| {
                    RunStoreError::Corrupt {
                        what: "task metadata",
                        key: task.to_string(),
                        source,
                    }
                })?),
                None => None,
            };
        Ok(Some((index, meta)))
    }

    /// Completes a task with its metadata, in one write: the done marker holds both.
    pub fn complete_task_with_meta(
        &self,
        task: &Key,
        index: &TaskIndex,
        meta: &TaskMeta,
    ) -> Result<(), RunStoreError> {
        let mut index = index.clone();
        index.metadata =
            Some(
                serde_json::to_value(meta).map_err(|source| RunStoreError::Corrupt {
                    what: "task metadata",
                    key: task.to_string(),
                    source,
                })?,
            );
        self.complete_task(task, &index)
    }

    /// Writes what a task runs on, for a `step` command in another process.
    pub fn write_spec(&self, task: &Key, spec: &TaskSpec) -> Result<(), RunStoreError> {
        self.put_json(&task.join(TASK_SPEC)?, spec)
    }

    /// What a task runs on.
    pub fn read_spec(&self, task: &Key) -> Result<Option<TaskSpec>, RunStoreError> {
        self.get_json(&task.join(TASK_SPEC)?, "the task spec")
    }

    /// Completes a task: writes its done marker, which holds its index, once.
    pub fn complete_task(&self, task: &Key, index: &TaskIndex) -> Result<(), RunStoreError> {
        write_task(&*self.storage, task, index)?;
        Ok(())
    }

    /// A complete task's index (without the metadata it carries: see [`RunStore::read_done`]);
    /// `None` while the task is not done.
    pub fn read_index(&self, task: &Key) -> Result<Option<TaskIndex>, RunStoreError> {
        Ok(self.read_done(task)?.map(|(index, _)| index))
    }

    /// Stores the log of one attempt.
    pub fn write_log(&self, task: &Key, attempt: u32, log: &[u8]) -> Result<(), RunStoreError> {
        self.storage
            .put(&task.join(&format!("attempt-{attempt}.log"))?, log)?;
        Ok(())
    }

    /// Stores the card of one attempt (its encoding), before the task's done marker.
    pub fn write_card(&self, task: &Key, attempt: u32, card: &[u8]) -> Result<(), RunStoreError> {
        self.storage
            .put(&task.join(&format!("attempt-{attempt}.card"))?, card)?;
        Ok(())
    }

    /// The stored card of one attempt, if it wrote one; at most [`MAX_CARD_SIZE`] bytes are read
    /// (a larger object is an error, not read).
    pub fn read_card(&self, task: &Key, attempt: u32) -> Result<Option<Vec<u8>>, RunStoreError> {
        match self.storage.get_at_most(
            &task.join(&format!("attempt-{attempt}.card"))?,
            MAX_CARD_SIZE,
        ) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Stores what a task's process printed (`stdout` or `stderr`), in process mode.
    pub fn write_output(
        &self,
        task: &Key,
        stream: &str,
        bytes: &[u8],
    ) -> Result<(), RunStoreError> {
        self.storage
            .put(&task.join(&format!("{stream}.log"))?, bytes)?;
        Ok(())
    }

    /// What a task's process printed on `stream`, if anything.
    pub fn read_output(&self, task: &Key, stream: &str) -> Result<Option<Vec<u8>>, RunStoreError> {
        match self
            .storage
            .get_at_most(&task.join(&format!("{stream}.log"))?, MAX_LOG_SIZE)
        {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// The logs of every attempt of a task, oldest first.
    pub fn read_logs(&self, task: &Key) -> Result<Vec<(u32, Vec<u8>)>, RunStoreError> {
        let mut logs = Vec::new();
        for key in self.storage.list_children(Some(task))?.objects {
            let name = key.name();
            if let Some(n) = name
                .strip_prefix("attempt-")
                .and_then(|r| r.strip_suffix(".log"))
                && let Ok(n) = n.parse::<u32>()
            {
                logs.push((n, self.storage.get_at_most(&key, MAX_LOG_SIZE)?));
            }
        }
        logs.sort_by_key(|(n, _)| *n);
        Ok(logs)
    }
}

/// The run id a pointer's content holds, if it holds one: the id alone, surrounding whitespace
/// aside (as every version wrote it).
fn pointer_target(bytes: &[u8]) -> Option<RunId> {
    // A run id is at most one segment long; anything much longer is not one, and is not
    // worth decoding.
    if bytes.len() > 2 * crate::datastore::MAX_SEGMENT_LEN {
        return None;
    }
    let id = std::str::from_utf8(bytes).ok()?.trim_ascii();
    validate_run_id(id).ok()?;
    Some(RunId::from(id))
}

/// When the run started, from its record.
fn start_time(record: &RunRecord) -> Result<SystemTime, RunStoreError> {
    humantime::parse_rfc3339_weak(&record.started).map_err(|_| RunStoreError::BadStartTime {
        flow: record.flow.clone(),
        run_id: record.run_id.to_string(),
    })
}
