//! [`Storage::update`](crate::datastore::storage::Storage::update) on an object store: a `GET`, then a
//! `PUT` conditional on the version read (`If-Match: <ETag>`, or `If-None-Match: *` when there
//! was no object), started again from what another writer wrote when that writer got in first.

use std::io;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ::object_store::{Error as ObjectError, ObjectStoreExt, PutMode, PutPayload, UpdateVersion};
use bytes::Bytes;

use super::store::Store;
use crate::datastore::keys::Key;
use crate::datastore::storage::{MAX_RECORD_SIZE, ObjectChange, StorageError};

/// How many times an update reads and tries its conditional write again when other writers keep
/// getting in first, before it gives up.
const MAX_UPDATE_ATTEMPTS: u32 = 64;

impl Store {
    /// Replaces the object `key` with what `change` makes of it; see the documentation of
    /// `ObjectStorage` for what a server without conditional updates
    /// gets instead.
    pub(super) fn update(
        &self,
        key: &Key,
        change: &mut ObjectChange<'_>,
    ) -> Result<bool, StorageError> {
        let atomic = self.conditional_updates_honoured()?;
        let path = self.path_of(key);
        let store = &self.store;
        for attempt in 0..MAX_UPDATE_ATTEMPTS {
            let read = self.block_on(async {
                let result = store.get(&path).await?;
                // Updated objects are records: one larger than any record is not read.
                if result.meta.size > MAX_RECORD_SIZE {
                    return Ok(Err(result.meta.size));
                }
                let version = UpdateVersion {
                    e_tag: result.meta.e_tag.clone(),
                    version: result.meta.version.clone(),
                };
                Ok::<_, ObjectError>(Ok((result.bytes().await?, version)))
            });
            let (current, version) = match read {
                Ok(Ok((bytes, version))) => (Some(bytes), Some(version)),
                Ok(Err(size)) => {
                    return Err(StorageError::TooLarge {
                        key: key.clone(),
                        size,
                        limit: MAX_RECORD_SIZE,
                    });
                }
                Err(ObjectError::NotFound { .. }) => (None, None),
                Err(e) => return Err(self.fail("read", key, e)),
            };
            let Some(bytes) = change(current.as_deref()) else {
                return Ok(false);
            };
            let payload = PutPayload::from(Bytes::from(bytes));
            if !atomic {
                self.put_payload(key, payload)?;
                return Ok(true);
            }
            let mode = match version {
                Some(version) => PutMode::Update(version),
                None => PutMode::Create,
            };
            match self.block_on(store.put_opts(&path, payload, mode.into())) {
                Ok(_) => return Ok(true),
                // Another writer got in first: start again from what it wrote.
                Err(ObjectError::Precondition { .. } | ObjectError::AlreadyExists { .. }) => {
                    std::thread::sleep(update_backoff(attempt));
                }
                Err(e) => return Err(self.fail("write", key, e)),
            }
        }
        Err(StorageError::Io {
            action: "update",
            location: self.url_of(key),
            source: io::Error::other(format!(
                "other writers changed it first {MAX_UPDATE_ATTEMPTS} times in a row"
            )),
        })
    }
}

/// How long an update that lost to another writer waits before it reads again: up to 1, 2, 4 …
/// 64 ms, a random fraction of it, so that writers that collided once do not collide again.
fn update_backoff(attempt: u32) -> Duration {
    let ceiling_micros = 1000u64 << attempt.min(6);
    let noise = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::from(d.subsec_nanos()))
        .unwrap_or(0);
    Duration::from_micros(noise % ceiling_micros + 1)
}
