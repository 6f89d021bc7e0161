//! A join's inputs read from the datastore, one state at a time.

use std::sync::Arc;

use crate::datastore::{ArtifactEntry, BlobHash, TaskIndex};
use crate::flow::{Flow, StateOwned};
use crate::inputs::{FieldHashes, InputError, InputSource};
use crate::run::{RunStore, TaskPath};

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
}

fn hashes(artifacts: &[ArtifactEntry]) -> FieldHashes {
    artifacts.iter().map(|a| (a.name.clone(), a.hash)).collect()
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
        self.store
            .blobs()
            .load_state::<StateOwned<F>>(&input.index.artifacts)
            .map(|s| s.0)
            .map_err(|e| InputError::new(format!("{}, task {}: {e}", self.context, input.path)))
    }
    fn fields(&self, i: usize) -> Result<FieldHashes, InputError> {
        Ok(hashes(&self.inputs[i].index.artifacts))
    }
    fn base_fields(&self) -> Result<FieldHashes, InputError> {
        Ok(hashes(&self.base.artifacts))
    }
    fn field_bytes(&self, hash: &BlobHash) -> Result<Vec<u8>, InputError> {
        let size = self
            .inputs
            .iter()
            .flat_map(|i| i.index.artifacts.iter())
            .find(|a| a.hash == *hash)
            .map(|a| a.size);
        self.store
            .blobs()
            .get(hash, size)
            .map_err(|e| InputError::new(format!("{}: {e}", self.context)))
    }
}
