//! Checkpoints of a task: values a long step stores while it runs
//! ([`Current::checkpoint`](crate::current::Current::checkpoint)), so that when the task runs
//! again (a retry, `resume`, a Slurm job requeued after its time limit) it continues from the
//! last one instead of from its start.
//!
//! Each checkpoint is a blob like any artifact, plus a small record under the task,
//! `checkpoints/<seq>.json`, written once (put-if-absent) after its blob: a record always names
//! a whole blob, and a checkpoint cut short by a crash is simply not there. When the task
//! completes, the records but the last are deleted (the blobs stay until a collection).

use serde::{Deserialize, Serialize};

use super::store::{RunStore, RunStoreError};
use crate::datastore::{ArtifactEntry, BlobHash, Encoding, Key};

/// The folder of a task's checkpoint records.
const CHECKPOINTS: &str = "checkpoints";
/// The largest checkpoint record read; records are a few hundred bytes.
const MAX_CHECKPOINT_RECORD: u64 = 64 << 10;

/// One checkpoint of a task.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckpointRecord {
    /// Its number among the task's checkpoints in this run, from 1.
    pub seq: u64,
    /// The blob holding the value, as an artifact's.
    pub hash: BlobHash,
    /// The blob's size in bytes.
    pub size: u64,
    /// The value's Rust type (`std::any::type_name`), for people and tools.
    #[serde(rename = "type")]
    pub type_name: String,
    /// The attempt that wrote it, from 0.
    pub attempt: u32,
    /// When it was written (RFC 3339, UTC).
    pub written: String,
}

impl CheckpointRecord {
    /// The checkpoint's blob as an artifact entry, to read it as one.
    pub fn as_artifact(&self) -> ArtifactEntry {
        ArtifactEntry {
            name: format!("checkpoint {}", self.seq),
            hash: self.hash,
            size: self.size,
            type_name: self.type_name.clone(),
            encoding: Encoding::MsgPack,
        }
    }
}

impl RunStore {
    /// Records checkpoint `record` of task `task` (its blob stored already) under the first
    /// number from `record.seq` on that no record holds yet; returns that number.
    ///
    /// # Errors
    ///
    /// Storage failures.
    pub fn write_checkpoint(
        &self,
        task: &Key,
        record: &CheckpointRecord,
    ) -> Result<u64, RunStoreError> {
        let mut record = record.clone();
        // Another attempt of the task (a zombie of a requeued job) may have taken a number.
        loop {
            let key = checkpoint_key(task, record.seq)?;
            let bytes =
                serde_json::to_vec_pretty(&record).map_err(|source| RunStoreError::Corrupt {
                    what: "a checkpoint record",
                    key: key.to_string(),
                    source,
                })?;
            if self.storage().put_if_absent(&key, &bytes)? {
                return Ok(record.seq);
            }
            record.seq += 1;
        }
    }

    /// The checkpoints of task `task` that can be read, by number. A record that cannot be
    /// read as one (damaged) is left out with a warning: the checkpoint before it is then the
    /// last.
    ///
    /// # Errors
    ///
    /// Storage failures.
    pub fn checkpoints(&self, task: &Key) -> Result<Vec<CheckpointRecord>, RunStoreError> {
        let folder = task.join(CHECKPOINTS)?;
        let listed = self.storage().list_children(Some(&folder))?;
        let mut records = Vec::new();
        for key in listed.objects {
            let bytes = match self.storage().get_at_most(&key, MAX_CHECKPOINT_RECORD) {
                Ok(bytes) => bytes,
                // Deleted since the listing (the task completed meanwhile).
                Err(e) if e.is_not_found() => continue,
                Err(e) => return Err(e.into()),
            };
            match serde_json::from_slice::<CheckpointRecord>(&bytes) {
                Ok(record) => records.push(record),
                Err(e) => tracing::warn!("checkpoint record {key} is damaged, left out: {e}"),
            }
        }
        records.sort_by_key(|r| r.seq);
        Ok(records)
    }

    /// Deletes the checkpoint records of task `task` but the last (all of them when
    /// `keep_last` is false); returns how many went.
    ///
    /// # Errors
    ///
    /// Storage failures.
    pub fn prune_checkpoints(&self, task: &Key, keep_last: bool) -> Result<usize, RunStoreError> {
        let records = self.checkpoints(task)?;
        let keep = usize::from(keep_last && !records.is_empty());
        let mut deleted = 0;
        for record in &records[..records.len() - keep] {
            if self.storage().delete(&checkpoint_key(task, record.seq)?)? {
                deleted += 1;
            }
        }
        Ok(deleted)
    }
}

/// The key of checkpoint record `seq` of `task`: numbers padded so that listings sort them.
fn checkpoint_key(task: &Key, seq: u64) -> Result<Key, RunStoreError> {
    Ok(task.join(CHECKPOINTS)?.join(&format!("{seq:010}.json"))?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(seq: u64) -> CheckpointRecord {
        CheckpointRecord {
            seq,
            hash: BlobHash::of(&seq.to_le_bytes()),
            size: 8,
            type_name: "u64".into(),
            attempt: 0,
            written: "2026-12-06T00:00:00Z".into(),
        }
    }

    #[test]
    fn checkpoints_are_numbered_listed_and_pruned_to_the_last() {
        let dir = tempfile::tempdir().expect("dir");
        let store = RunStore::open_local(dir.path()).expect("store");
        let task = RunStore::task_key("F", "r1", "train", "0").expect("key");
        assert!(store.checkpoints(&task).expect("none").is_empty());
        assert_eq!(store.write_checkpoint(&task, &record(1)).expect("1"), 1);
        // A number taken already goes to the next free one.
        assert_eq!(store.write_checkpoint(&task, &record(1)).expect("2"), 2);
        assert_eq!(store.write_checkpoint(&task, &record(3)).expect("3"), 3);
        let seqs: Vec<u64> = store
            .checkpoints(&task)
            .expect("list")
            .iter()
            .map(|r| r.seq)
            .collect();
        assert_eq!(seqs, [1, 2, 3]);
        // A damaged record is left out, not an error.
        let damaged = checkpoint_key(&task, 4).expect("key");
        store.storage().put(&damaged, b"{ not json").expect("put");
        assert_eq!(store.checkpoints(&task).expect("list").len(), 3);
        store.storage().delete(&damaged).expect("delete");
        assert_eq!(store.prune_checkpoints(&task, true).expect("prune"), 2);
        let left: Vec<u64> = store
            .checkpoints(&task)
            .expect("list")
            .iter()
            .map(|r| r.seq)
            .collect();
        assert_eq!(left, [3]);
        assert_eq!(store.prune_checkpoints(&task, false).expect("prune"), 1);
        assert!(store.checkpoints(&task).expect("list").is_empty());
    }
}
