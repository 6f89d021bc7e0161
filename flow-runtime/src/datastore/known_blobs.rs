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
//! Reads never consult it. An entry is trusted for half of `freshness::fresh_for` only, so that
//! a collection going on never deletes a blob the run relies on (see `freshness.rs`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use super::BlobHash;
use super::freshness::trust_for;

/// How many blobs one run remembers; past it the memory is cleared and filled again (about
/// 4 MB at the limit).
const CAPACITY: usize = 100_000;

/// The largest encoding a run keeps in memory, to compare a field's new encoding with.
pub(crate) const KEPT_ENCODING: usize = 1 << 20;

/// The most bytes of encodings a run keeps; past it they are dropped and kept anew.
const KEPT_BUDGET: usize = 64 << 20;

/// Blobs known to be stored whole: hash and size; and the encodings of the small ones.
///
/// The encodings are what lets a task tell that a field is unchanged from its parent's without
/// hashing it: every body of a foreach holds the list it was split over, and comparing its
/// encoding with the split task's, as it is produced, costs a fraction of hashing it.
#[derive(Debug, Default)]
pub struct KnownBlobs {
    /// Each blob's size, and when it was stored or found fresh.
    sizes: Mutex<HashMap<BlobHash, (u64, Instant)>>,
    encodings: Mutex<Encodings>,
}

#[derive(Debug, Default)]
struct Encodings {
    by_hash: HashMap<BlobHash, Arc<[u8]>>,
    bytes: usize,
}

impl KnownBlobs {
    /// An empty memory.
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether the blob `hash` of `size` bytes is known to be stored, and was stored or found
    /// fresh recently enough to be relied on without looking again (half of
    /// [`fresh_for`](super::freshness::fresh_for): a collection going on keeps it).
    pub fn contains(&self, hash: &BlobHash, size: u64) -> bool {
        self.sizes
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .get(hash)
            .is_some_and(|&(known, since)| known == size && since.elapsed() < trust_for())
    }

    /// Remembers that the blob `hash` of `size` bytes is stored whole and fresh now.
    pub fn insert(&self, hash: BlobHash, size: u64) {
        let mut sizes = self
            .sizes
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if sizes.len() >= CAPACITY {
            sizes.clear();
        }
        sizes.insert(hash, (size, Instant::now()));
    }

    /// Keeps `encoding`, the bytes of the blob `hash` (stored whole), if it is small.
    pub(crate) fn keep_encoding(&self, hash: BlobHash, encoding: &[u8]) {
        if encoding.len() > KEPT_ENCODING {
            return;
        }
        let mut kept = self
            .encodings
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if kept.by_hash.contains_key(&hash) {
            return;
        }
        if kept.bytes + encoding.len() > KEPT_BUDGET {
            kept.by_hash.clear();
            kept.bytes = 0;
        }
        kept.bytes += encoding.len();
        kept.by_hash.insert(hash, Arc::from(encoding));
    }

    /// The encoding of the blob `hash`, if it was kept.
    pub(crate) fn encoding(&self, hash: &BlobHash) -> Option<Arc<[u8]>> {
        self.encodings
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .by_hash
            .get(hash)
            .cloned()
    }
}
