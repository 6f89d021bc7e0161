//! Deleting the blobs no kept run references, shard by shard (`blobs/<2 hex>/`), so that memory
//! holds one shard's listing at a time.

use std::time::SystemTime;

use super::BlobCounts;
use super::mark::LiveBlobs;
use crate::datastore::{BLOB_PREFIX, BlobHash, Key, Storage, StorageError};

/// Deletes (unless `dry_run`) every blob of `storage` that `live` does not hold and that was
/// last written before `cutoff`. Anything under `blobs/` that is not named as a blob (a damaged
/// copy set aside) stays.
///
/// # Errors
///
/// Storage failures; the blobs deleted so far stay deleted, the others stay.
pub(super) fn sweep(
    storage: &dyn Storage,
    live: &LiveBlobs,
    cutoff: SystemTime,
    dry_run: bool,
) -> Result<BlobCounts, StorageError> {
    let mut outcome = BlobCounts::default();
    let blobs = Key::segment(BLOB_PREFIX).map_err(|e| StorageError::Io {
        action: "name",
        location: BLOB_PREFIX.to_string(),
        source: std::io::Error::other(e.to_string()),
    })?;
    for shard in storage.list_children(Some(&blobs))?.prefixes {
        for (key, stat) in storage.list_stats(&shard)? {
            let Some(hash) = blob_of(&key) else {
                continue;
            };
            if live.contains(&hash) {
                outcome.live.add(stat.size);
            } else if stat.modified >= cutoff {
                outcome.young.add(stat.size);
            } else if dry_run || storage.delete_if_written_before(&key, cutoff)? {
                outcome.deleted.add(stat.size);
            } else {
                // Refreshed since the listing: a run is about to reference it.
                outcome.young.add(stat.size);
            }
        }
    }
    Ok(outcome)
}

/// The blob `key` names, if it names one (`blobs/<2 hex>/<64 hex>`).
fn blob_of(key: &Key) -> Option<BlobHash> {
    let hash: BlobHash = key.name().parse().ok()?;
    (hash.key() == *key).then_some(hash)
}
