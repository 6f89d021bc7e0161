//! The blobs kept runs reference: what a collection must not delete.
//!
//! A run references a blob from three kinds of record: a task's done marker (its artifacts, and
//! the elements of a foreach it split), a failed task's metadata (the elements of its split, when
//! it got that far) and a task's checkpoint records. Runs are read one at a time, so memory grows
//! with the number of blobs referenced, not of runs or tasks.

use std::collections::{BTreeSet, HashSet};

use crate::datastore::{BlobHash, Key, MAX_RECORD_SIZE};
use crate::run::{RunStore, RunStoreError, TaskMeta};

/// The name of a task's done marker.
const DONE: &str = "done.json";
/// The name of a task's metadata record.
const META: &str = "meta.json";
/// The folder of a task's checkpoint records.
const CHECKPOINTS: &str = "checkpoints";

/// Every blob some kept run references.
#[derive(Debug, Default)]
pub struct LiveBlobs {
    hashes: HashSet<BlobHash>,
}

impl LiveBlobs {
    /// Whether a kept run references `hash`.
    pub fn contains(&self, hash: &BlobHash) -> bool {
        self.hashes.contains(hash)
    }

    /// How many blobs kept runs reference.
    pub fn len(&self) -> usize {
        self.hashes.len()
    }

    /// Whether no kept run references any blob.
    pub fn is_empty(&self) -> bool {
        self.hashes.is_empty()
    }

    /// Adds every blob the run under `run` (a run's prefix) references.
    ///
    /// # Errors
    ///
    /// Storage failures, and a done marker that cannot be read: what it references is unknown,
    /// so nothing may be deleted until it is mended or its run deleted. A damaged metadata or
    /// checkpoint record is left out with a warning: what it names could not be read anyway.
    pub fn mark_run(&mut self, store: &RunStore, run: &Key) -> Result<(), RunStoreError> {
        let objects = store.storage().list(Some(run))?;
        let listed: BTreeSet<&Key> = objects.iter().collect();
        let mut with_checkpoints = BTreeSet::new();
        for key in &objects {
            let Some(task) = key.parent() else {
                continue;
            };
            match key.name() {
                DONE => self.mark_done(store, &task)?,
                META if !listed.contains(&task.join(DONE)?) => self.mark_meta(store, key)?,
                _ if task.name() == CHECKPOINTS => {
                    if let Some(task) = task.parent() {
                        with_checkpoints.insert(task);
                    }
                }
                _ => {}
            }
        }
        for task in with_checkpoints {
            for record in store.checkpoints(&task)? {
                self.hashes.insert(record.hash);
            }
        }
        Ok(())
    }

    fn mark_done(&mut self, store: &RunStore, task: &Key) -> Result<(), RunStoreError> {
        // Deleted since the listing: a run deleted meanwhile by another collection.
        let Some((index, meta)) = store.read_done(task)? else {
            return Ok(());
        };
        self.hashes
            .extend(index.artifacts.iter().map(|artifact| artifact.hash));
        if let Some(foreach) = meta.and_then(|meta| meta.foreach) {
            self.hashes.insert(foreach.items);
        }
        Ok(())
    }

    fn mark_meta(&mut self, store: &RunStore, key: &Key) -> Result<(), RunStoreError> {
        let bytes = match store.storage().get_at_most(key, MAX_RECORD_SIZE) {
            Ok(bytes) => bytes,
            Err(e) if e.is_not_found() => return Ok(()),
            Err(e) => return Err(e.into()),
        };
        match serde_json::from_slice::<TaskMeta>(&bytes) {
            Ok(meta) => self.hashes.extend(meta.foreach.map(|f| f.items)),
            Err(e) => tracing::warn!("task metadata {key} is not readable, left out: {e}"),
        }
        Ok(())
    }
}
