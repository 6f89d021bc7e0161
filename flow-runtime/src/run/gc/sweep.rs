//! Deleting the blobs no kept run references, shard by shard (`blobs/<2 hex>/`), so that memory
//! holds one shard's listing at a time.

use std::time::SystemTime;

use super::BlobCounts;
use super::mark::LiveBlobs;
use crate::datastore::{BlobHash, Storage, StorageError};

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
    for shard in storage.list_children(Some(&BlobHash::prefix()))?.prefixes {
        for (key, stat) in storage.list_stats(&shard)? {
            let Some(hash) = BlobHash::of_key(&key) else {
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
