//! Streamed writes ([`Storage::start_put`](crate::datastore::storage::Storage::start_put)): content
//! buffered up to one part; an object that ends within it is one `PUT` on commit, a longer one
//! a multipart upload to a staging object with a few parts in flight while the next one fills,
//! copied to its key on commit.

use std::collections::VecDeque;
use std::io::{self, Write};
use std::sync::Arc;

use ::object_store::path::Path as ObjectPath;
use ::object_store::{
    Error as ObjectError, MultipartUpload, ObjectStore, ObjectStoreExt, PutPayload,
};
use bytes::Bytes;
use futures_util::TryStreamExt;
use tokio::task::JoinHandle;

use super::store::Store;
use crate::datastore::keys::Key;
use crate::datastore::storage::{PendingObject, StorageError};

/// Size of the parts of a streamed object, and the largest streamed object written with one
/// `PUT`. 16 MiB: above S3's 5 MiB minimum with room to spare, large enough that a part's
/// request overhead is negligible, small enough that the parts a writer holds stay modest.
pub const DEFAULT_PART_SIZE: usize = 16 << 20;

/// How many parts of a streamed object upload at once while the next one fills: a writer holds
/// at most this many parts plus one, 64 MiB with the defaults. Several requests at once keep a
/// link with latency busy; on a local SeaweedFS, 3 × 16 MiB stored a 1 GiB object in about
/// half the time 1 × 32 MiB took.
pub const DEFAULT_PARTS_IN_FLIGHT: usize = 3;

/// The smallest part S3 accepts (except for the last one).
pub const MIN_PART_SIZE: usize = 5 << 20;

/// S3 allows at most this many parts in one multipart upload.
pub(super) const MAX_PARTS: usize = 10_000;

/// Every this many parts, the part size grows by the initial size, so that 10,000 parts reach
/// far beyond 10,000 × 16 MiB (about 470 GiB with the default size).
const PART_GROWTH_EVERY: usize = 2_000;

/// The largest object S3 copies in one `CopyObject` request (5 GiB); a larger staging object is
/// streamed to its final key through this process.
pub const SERVER_COPY_LIMIT: u64 = 5 << 30;

/// How streamed objects are cut and copied.
#[derive(Debug, Clone, Copy)]
pub(super) struct UploadSettings {
    /// The size of the first parts (see [`part_size_for`]).
    pub(super) part_size: usize,
    /// How many parts upload at once.
    pub(super) parts_in_flight: usize,
    /// The largest staging object the server copies; a larger one is copied through this
    /// process.
    pub(super) copy_limit: u64,
}

impl Default for UploadSettings {
    fn default() -> Self {
        UploadSettings {
            part_size: DEFAULT_PART_SIZE,
            parts_in_flight: DEFAULT_PARTS_IN_FLIGHT,
            copy_limit: SERVER_COPY_LIMIT,
        }
    }
}

/// The part size for part number `index` (from 0): the base size, growing by the base size
/// every [`PART_GROWTH_EVERY`] parts.
pub(super) fn part_size_for(base: usize, index: usize) -> usize {
    base.saturating_mul(1 + index / PART_GROWTH_EVERY)
}

/// A streamed object: buffered up to one part, then a multipart upload to a staging object with
/// a few parts in flight while the next fills. See `ObjectStorage`.
pub(super) struct ObjectPending {
    store: Arc<Store>,
    settings: UploadSettings,
    staging: ObjectPath,
    /// Started when the first part is full; `None` while everything fits in one part, and after
    /// the upload was completed.
    upload: Option<Box<dyn MultipartUpload>>,
    buffer: Vec<u8>,
    /// Parts uploading, oldest first; at most `settings.parts_in_flight` of them.
    in_flight: VecDeque<JoinHandle<Result<(), ObjectError>>>,
    /// Parts handed to the upload so far.
    parts: usize,
    written: u64,
    /// A part failed: the object cannot be completed any more.
    failed: bool,
}

impl ObjectPending {
    /// A streamed object of `store`, staged (if it needs more than one part) under a new
    /// staging name.
    pub(super) fn new(store: Arc<Store>, settings: UploadSettings) -> Self {
        ObjectPending {
            staging: store.staging_path("upload"),
            store,
            settings,
            upload: None,
            buffer: Vec::new(),
            in_flight: VecDeque::new(),
            parts: 0,
            written: 0,
            failed: false,
        }
    }

    fn part_limit(&self) -> usize {
        part_size_for(self.settings.part_size, self.parts)
    }

    fn io_failure(&self, what: &str, e: ObjectError) -> io::Error {
        let e = self.store.names.io_error(e);
        io::Error::new(
            e.kind(),
            format!("{what} {}: {e}", self.store.url_of_path(&self.staging)),
        )
    }

    /// Waits until at most `limit` parts are uploading.
    fn wait_in_flight(&mut self, limit: usize) -> io::Result<()> {
        while self.in_flight.len() > limit {
            let Some(handle) = self.in_flight.pop_front() else {
                break;
            };
            self.join(handle)?;
        }
        Ok(())
    }

    fn join(&mut self, handle: JoinHandle<Result<(), ObjectError>>) -> io::Result<()> {
        match self.store.block_on(handle) {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => {
                self.failed = true;
                Err(self.io_failure("uploading a part of", e))
            }
            Err(join) => {
                self.failed = true;
                Err(io::Error::other(format!(
                    "uploading a part of {}: {join}",
                    self.store.url_of_path(&self.staging)
                )))
            }
        }
    }

    /// Hands the buffered bytes to the upload (starting it if needed) as the next part, once
    /// fewer than `parts_in_flight` parts are uploading.
    fn send_part(&mut self) -> io::Result<()> {
        if self.buffer.is_empty() {
            return Ok(());
        }
        if self.parts >= MAX_PARTS {
            self.failed = true;
            return Err(io::Error::other(format!(
                "{} would need more than {MAX_PARTS} parts; raise the part size",
                self.store.url_of_path(&self.staging)
            )));
        }
        if self.upload.is_none() {
            let store = &self.store.store;
            let upload = self
                .store
                .block_on(store.put_multipart(&self.staging))
                .map_err(|e| {
                    self.failed = true;
                    self.io_failure("starting the upload of", e)
                })?;
            self.upload = Some(upload);
        }
        self.wait_in_flight(self.settings.parts_in_flight - 1)?;
        let part = std::mem::take(&mut self.buffer);
        let Some(upload) = self.upload.as_mut() else {
            unreachable!("the upload was started above");
        };
        let future = upload.put_part(PutPayload::from(Bytes::from(part)));
        self.in_flight
            .push_back(self.store.runtime.runtime().spawn(future));
        self.parts += 1;
        Ok(())
    }

    /// Makes the content visible as `key`; with `only_if_absent`, not if `key` exists. What is
    /// left to clean up when it returns early (an upload to abort) is cleaned up by `drop`.
    fn finish(&mut self, key: &Key, only_if_absent: bool) -> Result<bool, StorageError> {
        let store = Arc::clone(&self.store);
        let fail = |source: io::Error| StorageError::Io {
            action: "commit",
            location: store.url_of(key),
            source,
        };
        if self.failed {
            return Err(fail(io::Error::other("a part of it failed to upload")));
        }
        if self.upload.is_none() {
            // Everything fit in one part: one request straight to the key, nothing staged.
            let payload = PutPayload::from(Bytes::from(std::mem::take(&mut self.buffer)));
            return if only_if_absent {
                store.put_payload_if_absent(key, payload)
            } else {
                store.put_payload(key, payload).map(|()| true)
            };
        }
        if only_if_absent && store.head(key)?.is_some() {
            // Dropping `self` after this aborts the upload: nothing is completed, copied or
            // deleted.
            return Ok(false);
        }
        let started = std::time::Instant::now();
        self.send_part().map_err(fail)?;
        self.wait_in_flight(0).map_err(fail)?;
        let uploaded = started.elapsed();
        let Some(mut upload) = self.upload.take() else {
            unreachable!("the upload was started before the last part");
        };
        if let Err(e) = store.block_on(upload.complete()) {
            // Not complete: abort it, as dropping would have.
            let _ = store.block_on(upload.abort());
            return Err(fail(self.io_failure("completing the upload of", e)));
        }
        let objects = Arc::clone(&store.store);
        let target = store.path_of(key);
        let staging = self.staging.clone();
        let completed = started.elapsed();
        let copied = if self.written <= self.settings.copy_limit {
            store.block_on(objects.copy(&staging, &target))
        } else {
            store.block_on(copy_through(
                &*objects,
                &staging,
                &target,
                self.settings.part_size,
            ))
        };
        tracing::debug!(
            "{}: {} bytes in {} parts; last parts {uploaded:.2?}, completed {completed:.2?}, copied {:.2?}",
            store.url_of(key),
            self.written,
            self.parts,
            started.elapsed()
        );
        // The staging object goes whether or not the copy worked; failing to delete it leaves
        // only litter under `.tmp/` (see `remove_stale_staging`), not a wrong datastore.
        if let Err(e) = store.block_on(objects.delete(&staging)) {
            tracing::warn!(
                "could not delete the staging object {}: {e}",
                store.url_of_path(&staging)
            );
        }
        copied
            .map(|()| true)
            .map_err(|e| store.fail("commit", key, e))
    }
}

/// Copies `from` to `to` through this process, part by part, for objects the server cannot copy
/// in one request; at most two parts in memory.
pub(super) async fn copy_through(
    store: &dyn ObjectStore,
    from: &ObjectPath,
    to: &ObjectPath,
    part_size: usize,
) -> Result<(), ObjectError> {
    let mut body = store.get(from).await?.into_stream();
    let mut upload = store.put_multipart(to).await?;
    let result = async {
        let mut buffer: Vec<u8> = Vec::new();
        let mut parts = 0;
        let mut in_flight: Option<JoinHandle<Result<(), ObjectError>>> = None;
        let send = |buffer: Vec<u8>, parts: &mut usize, upload: &mut Box<dyn MultipartUpload>| {
            *parts += 1;
            tokio::spawn(upload.put_part(PutPayload::from(Bytes::from(buffer))))
        };
        while let Some(mut chunk) = body.try_next().await? {
            while !chunk.is_empty() {
                let limit = part_size_for(part_size, parts);
                let take = (limit - buffer.len()).min(chunk.len());
                buffer.extend_from_slice(&chunk.split_to(take));
                if buffer.len() == limit {
                    if let Some(previous) = in_flight.take() {
                        join_part(previous).await?;
                    }
                    in_flight = Some(send(std::mem::take(&mut buffer), &mut parts, &mut upload));
                }
            }
        }
        if let Some(previous) = in_flight.take() {
            join_part(previous).await?;
        }
        if !buffer.is_empty() {
            join_part(send(buffer, &mut parts, &mut upload)).await?;
        }
        upload.complete().await.map(drop)
    }
    .await;
    if result.is_err() {
        let _ = upload.abort().await;
    }
    result
}

async fn join_part(handle: JoinHandle<Result<(), ObjectError>>) -> Result<(), ObjectError> {
    handle.await.map_err(|e| ObjectError::Generic {
        store: "blooming-flowers",
        source: Box::new(e),
    })?
}

impl Write for ObjectPending {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if self.failed {
            return Err(io::Error::other(format!(
                "an earlier part of {} failed to upload",
                self.store.url_of_path(&self.staging)
            )));
        }
        if data.is_empty() {
            return Ok(0);
        }
        let limit = self.part_limit();
        if self.buffer.capacity() == 0 {
            // One allocation per part rather than a doubling series up to the part size.
            self.buffer.reserve_exact(limit);
        }
        let n = (limit - self.buffer.len()).min(data.len());
        self.buffer.extend_from_slice(&data[..n]);
        self.written += n as u64;
        if self.buffer.len() >= limit {
            self.send_part()?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        // Nothing is visible before the commit, so there is nothing to flush early.
        Ok(())
    }
}

impl PendingObject for ObjectPending {
    fn commit(mut self: Box<Self>, key: &Key) -> Result<(), StorageError> {
        self.finish(key, false).map(drop)
    }

    fn commit_if_absent(mut self: Box<Self>, key: &Key) -> Result<bool, StorageError> {
        self.finish(key, true)
    }
}

impl Drop for ObjectPending {
    fn drop(&mut self) {
        for handle in self.in_flight.drain(..) {
            handle.abort();
        }
        if let Some(mut upload) = self.upload.take() {
            // Abandoned (or lost to an existing object): the server drops the parts it has.
            if let Err(e) = self.store.block_on(upload.abort()) {
                tracing::warn!(
                    "could not abort the upload of {}; its parts stay on the server until a lifecycle rule removes them: {e}",
                    self.store.url_of_path(&self.staging)
                );
            }
        }
    }
}
