//! Staging and probe objects: where they live (under `.tmp/`, which no key can name), their
//! unique names, and the removal of those that crashed writers left behind.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use ::object_store::path::Path as ObjectPath;
use ::object_store::{Error as ObjectError, ObjectStoreExt};
use futures_util::TryStreamExt;

use super::store::Store;
use crate::datastore::storage::StorageError;
use crate::datastore::unique_name::unique_name;

/// Where staging and probe objects live under the datastore's prefix; not a valid key segment.
pub(super) const STAGING_DIR: &str = ".tmp";

impl Store {
    /// A new, unique object path under `.tmp/`, named after `what` it holds.
    pub(super) fn staging_path(&self, what: &str) -> ObjectPath {
        self.root
            .clone()
            .join(STAGING_DIR)
            .join(unique_name(&format!("{what}-")).as_str())
    }
}

/// Removes the staging objects of `store` older than `older_than`; returns how many.
pub(super) fn remove_stale(store: &Store, older_than: Duration) -> Result<usize, StorageError> {
    let dir = store.root.clone().join(STAGING_DIR);
    let cutoff = SystemTime::now().checked_sub(older_than);
    let objects = Arc::clone(&store.store);
    let result = store.block_on(async {
        let stale: Vec<ObjectPath> = objects
            .list(Some(&dir))
            .try_filter_map(move |meta| async move {
                let modified = SystemTime::from(meta.last_modified);
                Ok(cutoff
                    .is_some_and(|cutoff| modified < cutoff)
                    .then_some(meta.location))
            })
            .try_collect()
            .await?;
        let mut removed = 0;
        for path in stale {
            match objects.delete(&path).await {
                Ok(()) => removed += 1,
                Err(ObjectError::NotFound { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(removed)
    });
    result.map_err(|e| StorageError::Io {
        action: "remove stale staging objects from",
        location: store.url_of_path(&dir),
        source: store.names.io_error(e),
    })
}
