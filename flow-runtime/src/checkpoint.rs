//! Checkpoints inside a step: `current().checkpoint(&value)` stores a value of the running task
//! (a model, an optimizer's state, the epoch it reached), and `current().last_checkpoint()`
//! gives the task, when it runs again, the last one it stored, so that hours of training survive a
//! killed job.
//!
//! A task that runs again is a retry of the same task (its checkpoints in this run), or the same
//! task in a run that resumes one where it did not complete (its checkpoints there, following the
//! chain of resumed runs back to the nearest that has some). A task that completed in a run
//! resumed from is not continued from, nor anything before it: its checkpoints are of finished
//! work (`resume STEP` reruns such a task from its start).

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::datastore::{BlobWriteError, Key, LoadError};
use crate::run::{CheckpointRecord, KeepCheckpoints, RunId, RunStore, RunStoreError, now_rfc3339};

/// How many resumed runs back a task looks for its checkpoints.
const MAX_ORIGINS: usize = 64;

/// Why a checkpoint could not be stored or read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CheckpointError {
    /// Called outside a task run by blooming-flowers (a unit test calling a step directly).
    #[error("checkpoints are kept only for a task that blooming-flowers runs")]
    NotInTask,
    /// The value could not be encoded or its blob stored.
    #[error("cannot store a checkpoint of task {task}: {source}")]
    Store {
        /// The task, `step/task`.
        task: String,
        /// Why the blob could not be stored.
        #[source]
        source: Box<BlobWriteError>,
    },
    /// The checkpoint records could not be written or listed.
    #[error("cannot record a checkpoint of task {task}: {source}")]
    Record {
        /// The task, `step/task`.
        task: String,
        /// Why the record could not be written or listed.
        #[source]
        source: Box<RunStoreError>,
    },
    /// The last checkpoint could not be read or decoded as the type asked for.
    #[error("cannot read checkpoint {seq} of task {task} of run {run_id}: {source}")]
    Load {
        /// The task, `step/task`.
        task: String,
        /// The run whose task stored the checkpoint (for a resumed run, the origin run).
        run_id: String,
        /// The checkpoint's sequence number within its task.
        seq: u64,
        /// Why it could not be read or decoded.
        #[source]
        source: Box<LoadError>,
    },
}

/// The checkpoints of one running task: where they go and where earlier ones are.
#[derive(Debug)]
pub struct TaskCheckpoints {
    store: RunStore,
    flow: String,
    run_id: RunId,
    step: String,
    task_id: String,
    /// The number the next checkpoint takes, once known.
    next: Mutex<Option<u64>>,
    /// Whether this task stored one in this run (then, once it completes, all but its last are
    /// deleted).
    stored: AtomicBool,
}

impl TaskCheckpoints {
    /// The checkpoints of task `step`/`task_id` of run `run_id` of `flow`.
    pub fn new(store: RunStore, flow: &str, run_id: RunId, step: &str, task_id: &str) -> Self {
        TaskCheckpoints {
            store,
            flow: flow.to_string(),
            run_id,
            step: step.to_string(),
            task_id: task_id.to_string(),
            next: Mutex::new(None),
            stored: AtomicBool::new(false),
        }
    }

    fn task(&self) -> String {
        format!("{}/{}", self.step, self.task_id)
    }

    fn key_in(&self, run_id: &str) -> Result<Key, CheckpointError> {
        RunStore::task_key(&self.flow, run_id, &self.step, &self.task_id).map_err(|source| {
            CheckpointError::Record {
                task: self.task(),
                source: Box::new(source),
            }
        })
    }

    /// Stores `value` as the task's next checkpoint, written by attempt `attempt`; returns its
    /// number.
    ///
    /// # Errors
    ///
    /// [`CheckpointError::Store`] or [`CheckpointError::Record`].
    pub fn save<T: Serialize + ?Sized>(
        &self,
        value: &T,
        attempt: u32,
    ) -> Result<u64, CheckpointError> {
        let record_error = |source| CheckpointError::Record {
            task: self.task(),
            source: Box::new(source),
        };
        let key = self.key_in(&self.run_id)?;
        let blob =
            self.store
                .blobs()
                .put_value(value)
                .map_err(|source| CheckpointError::Store {
                    task: self.task(),
                    source: Box::new(source),
                })?;
        let mut next = self.next.lock().unwrap_or_else(|p| p.into_inner());
        let seq = match *next {
            Some(seq) => seq,
            None => {
                let existing = self.store.checkpoints(&key).map_err(record_error)?;
                existing.last().map_or(1, |r| r.seq + 1)
            }
        };
        let record = CheckpointRecord {
            seq,
            hash: blob.hash,
            size: blob.size,
            type_name: std::any::type_name::<T>().to_string(),
            attempt,
            written: now_rfc3339(),
        };
        let written = self
            .store
            .write_checkpoint(&key, &record)
            .map_err(record_error)?;
        *next = Some(written + 1);
        self.stored.store(true, Ordering::Relaxed);
        Ok(written)
    }

    /// The last checkpoint this task stored, here or in the runs this one resumed where the task
    /// did not complete, decoded as `T`; `None` when there is none.
    ///
    /// # Errors
    ///
    /// [`CheckpointError::Load`] when the last one cannot be read as a `T`: a damaged blob, or
    /// a checkpoint of another type (the step's code changed).
    pub fn last<T: DeserializeOwned>(&self) -> Result<Option<T>, CheckpointError> {
        let record_error = |source| CheckpointError::Record {
            task: self.task(),
            source: Box::new(source),
        };
        let mut run_id = self.run_id.to_string();
        let mut seen = vec![run_id.clone()];
        for hop in 0..=MAX_ORIGINS {
            let key = self.key_in(&run_id)?;
            // In an earlier run, a task that completed left finished work, not progress: this
            // task starts afresh (older runs' progress was superseded by it too).
            if hop > 0 && self.store.read_done(&key).map_err(record_error)?.is_some() {
                break;
            }
            if let Some(last) = self.store.checkpoints(&key).map_err(record_error)?.pop() {
                return self
                    .store
                    .blobs()
                    .load_artifact::<T>(&last.as_artifact())
                    .map(Some)
                    .map_err(|source| CheckpointError::Load {
                        task: self.task(),
                        run_id: run_id.clone(),
                        seq: last.seq,
                        source: Box::new(source),
                    });
            }
            let origin = match self.store.read_run(&self.flow, &run_id) {
                Ok(record) => record.origin_run_id,
                Err(RunStoreError::NoSuchRun { .. }) => None,
                Err(e) => return Err(record_error(e)),
            };
            match origin {
                Some(origin) if !seen.contains(&origin.to_string()) => {
                    run_id = origin.to_string();
                    seen.push(run_id.clone());
                }
                _ => break,
            }
        }
        Ok(None)
    }

    /// After the task completed: deletes its checkpoint records in this run but the last (all
    /// of them with [`KeepCheckpoints::None`]), if it stored any.
    pub fn completed(&self, keep: KeepCheckpoints) {
        if !self.stored.load(Ordering::Relaxed) {
            return;
        }
        let pruned = self.key_in(&self.run_id).and_then(|key| {
            self.store
                .prune_checkpoints(&key, keep == KeepCheckpoints::Last)
                .map_err(|source| CheckpointError::Record {
                    task: self.task(),
                    source: Box::new(source),
                })
        });
        if let Err(e) = pruned {
            tracing::warn!("{e}");
        }
    }
}
