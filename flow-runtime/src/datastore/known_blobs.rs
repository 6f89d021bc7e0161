//! The blobs a run has already stored or found whole, so that it does not look them up again.
//!
//! Most fields of most tasks are unchanged: a 10,000-task foreach stores the same blob of its
//! list, of its parameters and of every field its body leaves alone 10,000 times. Each such
//! store is a lookup (on a local datastore, three system calls; on S3, a request) whose answer
//! this run already knows. A [`KnownBlobs`] lives as long as one run (one process's part of it)
//! and answers instead.
//!
//! What it gives up: a blob deleted or damaged by someone else while the run goes on is not
//! noticed by the run's later stores of the same value (nor was it between a lookup and the
//! task's done marker before); the next run, and every read, which checks the hash, still do.
//! Reads never consult it.

use std::collections::HashMap;
use std::sync::Mutex;

use super::BlobHash;

/// How many blobs one run remembers; past it the memory is cleared and filled again (about
/// 4 MB at the limit).
const CAPACITY: usize = 100_000;

/// Blobs known to be stored whole: hash and size.
#[derive(Debug, Default)]
pub struct KnownBlobs {
    sizes: Mutex<HashMap<BlobHash, u64>>,
}

impl KnownBlobs {
    /// An empty memory.
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether the blob `hash` of `size` bytes is known to be stored.
    pub fn contains(&self, hash: &BlobHash, size: u64) -> bool {
        self.sizes
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .get(hash)
            == Some(&size)
    }

    /// Remembers that the blob `hash` of `size` bytes is stored whole.
    pub fn insert(&self, hash: BlobHash, size: u64) {
        let mut sizes = self
            .sizes
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if sizes.len() >= CAPACITY {
            sizes.clear();
        }
        sizes.insert(hash, size);
    }
}
