//! A join's inputs read from the datastore, one state at a time.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::datastore::{ArtifactEntry, BlobHash, TaskIndex};
use crate::flow::{Flow, StateOwned};
use crate::inputs::{FieldHashes, InputError, InputSource};
use crate::run::{RunStore, TaskPath};
use crate::state::decode_state;

/// One branch of a join: where it ended, and its artifacts.
pub(crate) struct StoredInput {
    pub path: TaskPath,
    pub position: usize,
    pub index: Arc<TaskIndex>,
}

pub(crate) struct StoreInputs {
    pub store: RunStore,
    pub context: String,
    pub base: Arc<TaskIndex>,
    pub inputs: Vec<StoredInput>,
    /// Verified blobs already read: the branches of a foreach share most fields, so each
    /// shared blob is read and checked once rather than once per branch.
    pub cache: BlobCache,
}

/// Blobs read for a join, up to a budget of bytes.
#[derive(Default)]
pub(crate) struct BlobCache {
    blobs: Mutex<CachedBlobs>,
}

#[derive(Default)]
struct CachedBlobs {
    by_hash: HashMap<BlobHash, Arc<Vec<u8>>>,
    bytes: usize,
}

/// The most bytes a join keeps cached; blobs past it are read each time.
const CACHE_BUDGET: usize = 256 << 20;

impl BlobCache {
    fn get(
        &self,
        store: &RunStore,
        entry: &ArtifactEntry,
    ) -> Result<Arc<Vec<u8>>, crate::datastore::BlobError> {
        let lock = || {
            self.blobs
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
        };
        if let Some(bytes) = lock().by_hash.get(&entry.hash) {
            return Ok(Arc::clone(bytes));
        }
        let bytes = Arc::new(store.blobs().get(&entry.hash, Some(entry.size))?);
        let mut guard = lock();
        if guard.bytes + bytes.len() <= CACHE_BUDGET {
            guard.bytes += bytes.len();
            guard.by_hash.insert(entry.hash, Arc::clone(&bytes));
        }
        Ok(bytes)
    }
}

fn hashes(artifacts: &[ArtifactEntry]) -> FieldHashes {
    artifacts
        .iter()
        .map(|a| (a.name.clone(), a.hash, a.size))
        .collect()
}

impl<F: Flow> InputSource<F> for StoreInputs {
    fn len(&self) -> usize {
        self.inputs.len()
    }
    fn step(&self, i: usize) -> &str {
        &self.inputs[i].path.step
    }
    fn index(&self, i: usize) -> usize {
        self.inputs[i].position
    }
    fn load(&self, i: usize) -> Result<F, InputError> {
        let input = &self.inputs[i];
        let fail =
            |e: String| InputError::new(format!("{}, task {}: {e}", self.context, input.path));
        let mut blobs = Vec::with_capacity(input.index.artifacts.len());
        for entry in &input.index.artifacts {
            if entry.encoding != crate::datastore::Encoding::MsgPack {
                return Err(fail(format!(
                    "artifact `{}` has an encoding this version cannot read: {}",
                    entry.name, entry.encoding
                )));
            }
            let bytes = self
                .cache
                .get(&self.store, entry)
                .map_err(|e| fail(format!("artifact `{}`: {e}", entry.name)))?;
            blobs.push(bytes);
        }
        let fields: Vec<(&str, &[u8])> = input
            .index
            .artifacts
            .iter()
            .zip(&blobs)
            .map(|(entry, bytes)| (entry.name.as_str(), bytes.as_slice()))
            .collect();
        decode_state::<StateOwned<F>>(&fields)
            .map(|s| s.0)
            .map_err(|e| fail(e.to_string()))
    }
    fn fields(&self, i: usize) -> Result<FieldHashes, InputError> {
        Ok(hashes(&self.inputs[i].index.artifacts))
    }
    fn base_fields(&self) -> Result<FieldHashes, InputError> {
        Ok(hashes(&self.base.artifacts))
    }
    fn field_value(&self, i: usize, name: &str) -> Result<Option<Arc<Vec<u8>>>, InputError> {
        let input = &self.inputs[i];
        let Some(entry) = input.index.artifact(name) else {
            return Ok(None);
        };
        let fail =
            |e: String| InputError::new(format!("{}, task {}: {e}", self.context, input.path));
        if entry.encoding != crate::datastore::Encoding::MsgPack {
            return Err(fail(format!(
                "artifact `{}` has an encoding this version cannot read: {}",
                entry.name, entry.encoding
            )));
        }
        self.cache
            .get(&self.store, entry)
            .map(Some)
            .map_err(|e| fail(format!("artifact `{}`: {e}", entry.name)))
    }
    fn field_bytes(&self, hash: &BlobHash) -> Result<Vec<u8>, InputError> {
        let size = self
            .inputs
            .iter()
            .flat_map(|i| i.index.artifacts.iter())
            .chain(&self.base.artifacts)
            .find(|a| a.hash == *hash)
            .map(|a| a.size);
        self.store
            .blobs()
            .get(hash, size)
            .map_err(|e| InputError::new(format!("{}: {e}", self.context)))
    }
}
