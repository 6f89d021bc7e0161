//! Renewing an object's last-modified time without changing it ([`Storage::refresh`]): an
//! object store has no `touch`, and S3 refuses to copy an object onto itself unchanged, so the
//! server copies it to a staging object and back (through this process above its copy limit).
//!
//! [`Storage::refresh`]: crate::datastore::Storage::refresh

use std::sync::Arc;

use ::object_store::{Error as ObjectError, ObjectStoreExt};

use super::store::Store;
use super::upload::copy_through;
use crate::datastore::keys::Key;
use crate::datastore::storage::StorageError;

impl Store {
    /// Copies the object `key` to a staging object and back; returns whether there was one.
    /// Objects larger than `copy_limit` are copied through this process in parts of
    /// `part_size`.
    pub(super) fn refresh(
        &self,
        key: &Key,
        copy_limit: u64,
        part_size: usize,
    ) -> Result<bool, StorageError> {
        let Some(stat) = self.head_stat(key)? else {
            return Ok(false);
        };
        let target = self.path_of(key);
        let staging = self.staging_path("refresh");
        let objects = Arc::clone(&self.store);
        let copied = self.block_on(async {
            if stat.size <= copy_limit {
                objects.copy(&target, &staging).await?;
                objects.copy(&staging, &target).await
            } else {
                copy_through(&*objects, &target, &staging, part_size).await?;
                copy_through(&*objects, &staging, &target, part_size).await
            }
        });
        // The staging object goes whether or not the copies worked; failing to delete it leaves
        // only litter under `.tmp/`, removed with the stale staging objects.
        match self.block_on(objects.delete(&staging)) {
            Ok(()) | Err(ObjectError::NotFound { .. }) => {}
            Err(e) => tracing::warn!(
                "could not delete the staging object {}: {e}",
                self.url_of_path(&staging)
            ),
        }
        match copied {
            Ok(()) => Ok(true),
            // Deleted since the lookup: nothing to refresh.
            Err(ObjectError::NotFound { .. }) => Ok(false),
            Err(e) => Err(self.fail("refresh", key, e)),
        }
    }
}
