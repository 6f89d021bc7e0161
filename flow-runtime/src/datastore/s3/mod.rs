//! The datastore on S3-compatible object storage (cargo feature `s3`), through the
//! `object_store` crate (0.14): [`ObjectStorage`], whose documentation says how each operation
//! maps onto requests and what it guarantees.
//!
//! Where each part lives: [`config`] (a bucket from the `AWS_*` environment, the reachability
//! check), [`store`] (the store under the prefix: keys ↔ paths, plain requests), [`blocking`]
//! (the runtime callers block on), [`probe`] (whether the server honours conditional writes),
//! [`put_if_absent`] and [`update`] (the writes that rely on them), [`upload`] (streamed,
//! multipart writes), [`reader`] (streamed reads), [`staging`] (staging names and their cleanup),
//! [`errors`] (object store errors as storage errors), [`raw`] (names beside the datastore's
//! objects, for the conformance suite).

mod blocking;
mod config;
mod errors;
mod probe;
mod put_if_absent;
mod raw;
mod reader;
mod refresh;
mod staging;
mod store;
#[cfg(test)]
mod tests;
mod update;
mod upload;

use std::io::Read;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime};

use ::object_store::path::Path as ObjectPath;
use ::object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use bytes::Bytes;
use futures_util::TryStreamExt;

use self::blocking::BlockingRuntime;
pub use self::blocking::RUNTIME_THREADS;
use self::errors::Names;
use self::reader::ObjectReader;
use self::store::Store;
pub use self::upload::{
    DEFAULT_PART_SIZE, DEFAULT_PARTS_IN_FLIGHT, MIN_PART_SIZE, SERVER_COPY_LIMIT,
};
use self::upload::{ObjectPending, UploadSettings};
use super::freshness::needs_refresh;
use super::keys::Key;
use super::location::S3Location;
use super::storage::{Children, ObjectChange, ObjectStat, PendingObject, Storage, StorageError};

/// A datastore in an object store: a bucket on S3-compatible storage, or any other
/// `object_store` implementation. Cheap to clone; clones share the connection pool and runtime.
///
/// It implements [`Storage`] over any `Arc<dyn ObjectStore>` and a key prefix:
/// an S3 bucket opened from the environment with [`ObjectStorage::connect`], or any other store
/// (`object_store::memory::InMemory` in tests) with [`ObjectStorage::new`]. A key `a/b` lives at
/// the object `<prefix>/a/b`.
///
/// # Blocking
///
/// [`Storage`] is synchronous: tasks run on worker threads. Each `ObjectStorage` owns a small
/// multi-thread tokio runtime ([`RUNTIME_THREADS`] threads, created once) that drives the HTTP
/// client; every method blocks on it. A method called from inside another tokio runtime (a user's
/// async code calling the client) cannot block that runtime's thread, so there it blocks a helper
/// thread instead.
///
/// # How each operation maps
///
/// - `put`: one `PUT`; an S3 `PUT` replaces the object atomically.
/// - `put_if_absent`: a `HEAD` first, so that the common case (a blob every task of a run already
///   stored, a name already claimed) sends no data. When absent:
///   - a content-addressed blob (`blobs/<2 hex>/<64 hex>`) is written with a plain `PUT`: if two
///     writers race, both write the same bytes, so whichever lands last changes nothing;
///   - any other key (run records, done markers) is a unique name that exactly one writer may
///     claim: it is written with `PutMode::Create` (`If-None-Match: *`), which the server refuses
///     when the object exists, **if** the server honours it. Some do not (Garage ignores the
///     header; s3s-fs checks it non-atomically), and one that ignores it would let a second
///     claimer overwrite the first silently. So the first claim of each `ObjectStorage` probes
///     the server: it creates a probe object under `.tmp/`, then creates it again and expects a
///     refusal. A server that refuses the second is trusted with `PutMode::Create`; one that
///     accepts it (or rejects conditional writes outright) gets the lookup-then-`PUT` of blobs,
///     with a residual race: two claimers whose lookups both precede both writes both succeed,
///     and the later write wins. Each object is still whole, so a reader sees one complete run
///     record or one complete task index, never a mix; what is lost is only the "exactly one
///     winner" answer, for names that are unique already (run ids carry a random suffix; a task
///     is completed twice only when a scheduler reruns a task that is still running). The probe
///     writes, so read-only commands never run it; it costs three requests once per process.
/// - `start_put` / [`PendingObject`]: content streamed in parts of [`DEFAULT_PART_SIZE`]. An
///   object that ends within one part is written with one `PUT` straight to its final key on
///   commit: no staging at all. A longer one becomes a multipart upload to a staging object
///   `.tmp/<unique>`, [`DEFAULT_PARTS_IN_FLIGHT`] parts uploading while the next one fills, so
///   memory stays at a few parts (64 MiB) whatever the size; on commit the upload is completed,
///   copied to the final key by the
///   server (`CopyObject`; above [`SERVER_COPY_LIMIT`], which S3 refuses to copy in one request,
///   streamed through this process into a second multipart upload instead) and the staging
///   object deleted. `commit_if_absent` looks the final key up first and, when it exists,
///   aborts the upload: nothing is completed or copied. Dropping without a commit aborts the
///   upload.
/// - `get`: one `GET`; `reader` streams the body of one `GET` chunk by chunk, holding one chunk.
/// - `size`, `exists`: `HEAD`. `delete`: `HEAD` then `DELETE` (S3 does not say whether there
///   was an object).
/// - `list`, `list_children`: `LIST` (recursive, or with the `/` delimiter), every page.
/// - `update` (run records, `latest` pointers): a `GET`, then a `PUT` conditional on the version
///   read: `PutMode::Update` (`If-Match: <ETag>`), or `PutMode::Create` when there was no object.
///   When another writer got in first the server refuses it (412) and the update starts again
///   from what that writer wrote. Like `If-None-Match`, `If-Match` is only trusted once probed
///   ([`ObjectStorage::conditional_updates_honoured`]): a write with a stale version must be
///   refused. SeaweedFS 4.48 and AWS S3 honour it. A server that does not gets a `GET` then a
///   plain `PUT`, with the residual race of two updates whose reads both precede both writes:
///   the later write wins and the earlier change is lost (a tag, or a `latest` pointer left on
///   an older run); each object is still whole.
///
/// Staging and probe objects live under `.tmp/`. A segment starting with `.` is not a valid
/// [`Key`], so no key can collide with them, and listings skip every object whose name is not a
/// valid key, those included: the same rule that hides a local datastore's temporary files.
/// What a crashed writer leaves there is removed by [`ObjectStorage::remove_stale_staging`]; its
/// incomplete multipart uploads are invisible and are best removed by a bucket lifecycle rule
/// (`AbortIncompleteMultipartUpload`).
///
/// Errors keep the object's URL and the server's message; a missing object is
/// [`StorageError::NotFound`]; refused credentials say which endpoint and bucket refused them.
#[derive(Clone)]
pub struct ObjectStorage {
    store: Arc<Store>,
    upload: UploadSettings,
}

impl std::fmt::Debug for ObjectStorage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ObjectStorage")
            .field("name", &self.store.names.name)
            .field("store", &self.store.store)
            .field("part_size", &self.upload.part_size)
            .finish_non_exhaustive()
    }
}

impl ObjectStorage {
    /// A datastore in `store`, under `prefix` (the whole store for `None`).
    ///
    /// Nothing is requested from the store here; see [`ObjectStorage::connect`] for S3 with a
    /// check that the bucket is reachable.
    ///
    /// # Errors
    ///
    /// If the runtime's threads cannot be started.
    pub fn new(store: Arc<dyn ObjectStore>, prefix: Option<&Key>) -> Result<Self, StorageError> {
        let name = match prefix {
            Some(prefix) => format!("{store}/{prefix}"),
            None => store.to_string(),
        };
        let endpoint = store.to_string();
        let names = Names {
            name,
            endpoint,
            bucket: None,
        };
        Self::build(store, prefix, names)
    }

    fn build(
        store: Arc<dyn ObjectStore>,
        prefix: Option<&Key>,
        names: Names,
    ) -> Result<Self, StorageError> {
        let runtime = BlockingRuntime::start().map_err(|source| StorageError::Io {
            action: "start the threads of",
            location: names.name.clone(),
            source,
        })?;
        let root = prefix.map_or(ObjectPath::ROOT, |p| ObjectPath::from_iter(p.segments()));
        Ok(ObjectStorage {
            store: Arc::new(Store {
                store,
                root,
                names,
                runtime,
                create_honoured: OnceLock::new(),
                update_honoured: OnceLock::new(),
            }),
            upload: UploadSettings::default(),
        })
    }

    /// Opens the S3 datastore `location`, configured from the environment (see
    /// [`S3Location`] for the variables), and checks that its bucket is reachable with these
    /// credentials: one `LIST` request, retried briefly, so that a wrong endpoint, bucket or key
    /// is reported here, clearly, rather than by the first write of a run.
    ///
    /// # Errors
    ///
    /// A configuration the S3 client rejects; an unreachable endpoint; a bucket that does not
    /// exist (an [`std::io::ErrorKind::NotFound`] inside [`StorageError::Io`]); refused
    /// credentials ([`std::io::ErrorKind::PermissionDenied`]). Each names the endpoint and the
    /// bucket.
    pub fn connect(location: &S3Location) -> Result<Self, StorageError> {
        let clients = config::clients_from_env(location)?;
        let storage = Self::build(Arc::new(clients.store), location.prefix(), clients.names)?;
        config::check_reachable(&storage.store, &clients.quick)?;
        Ok(storage)
    }

    /// Sets the size of the parts streamed objects are uploaded in (and the largest streamed
    /// object written with a single `PUT`); at least [`MIN_PART_SIZE`]. Default
    /// [`DEFAULT_PART_SIZE`].
    #[must_use]
    pub fn with_part_size(mut self, bytes: usize) -> Self {
        self.upload.part_size = bytes.max(MIN_PART_SIZE);
        self
    }

    /// Sets how many parts of a streamed object upload at once (at least 1); a writer holds at
    /// most this many parts plus the one it fills. Default [`DEFAULT_PARTS_IN_FLIGHT`].
    #[must_use]
    pub fn with_parts_in_flight(mut self, parts: usize) -> Self {
        self.upload.parts_in_flight = parts.max(1);
        self
    }

    /// Sets the size above which a committed staging object is copied through this process
    /// rather than by the server; for tests of that path.
    #[cfg(test)]
    fn with_copy_limit(mut self, bytes: u64) -> Self {
        self.upload.copy_limit = bytes;
        self
    }

    /// The datastore as a URL (`s3://bucket/prefix`), as messages name it.
    pub fn name(&self) -> &str {
        &self.store.names.name
    }

    /// The object store underneath.
    pub fn object_store(&self) -> &Arc<dyn ObjectStore> {
        &self.store.store
    }

    /// The path in the object store of the object `key`.
    pub fn path_of(&self, key: &Key) -> ObjectPath {
        self.store.path_of(key)
    }

    /// Whether the server honours conditional creation (`If-None-Match: *`), which makes claims
    /// of unique names race-free; probed once, by the first claim or by this call (which
    /// writes and deletes a probe object under `.tmp/`).
    ///
    /// # Errors
    ///
    /// If the probe object cannot be written.
    pub fn conditional_writes_honoured(&self) -> Result<bool, StorageError> {
        self.store.conditional_writes_honoured()
    }

    /// Whether the server honours conditional updates (`If-Match: <ETag>`, and `If-None-Match: *`
    /// for an object not there yet), which make [`Storage::update`] atomic; probed once, by the
    /// first update or by this call (which writes and deletes a probe object under `.tmp/`).
    ///
    /// The probe writes an object, updates it with the version it got (which must succeed),
    /// then again with that same version, now stale (which must be refused).
    ///
    /// # Errors
    ///
    /// If the probe object cannot be written.
    pub fn conditional_updates_honoured(&self) -> Result<bool, StorageError> {
        self.store.conditional_updates_honoured()
    }

    /// Removes staging objects (under `.tmp/`) older than `older_than`: what writers that
    /// crashed between completing an upload and copying it left behind. Returns how many were
    /// removed. Pick an age no live write reaches; an hour is plenty.
    ///
    /// Incomplete multipart uploads of crashed writers are not objects and cannot be listed
    /// here; a bucket lifecycle rule (`AbortIncompleteMultipartUpload`) removes them.
    ///
    /// # Errors
    ///
    /// If listing or deleting fails.
    pub fn remove_stale_staging(&self, older_than: Duration) -> Result<usize, StorageError> {
        staging::remove_stale(&self.store, older_than)
    }

    /// The keys of the objects at `paths` that are objects of the datastore (not staging
    /// objects, nor foreign objects whose names are not valid keys), sorted.
    fn keys_of<'a>(&self, paths: impl Iterator<Item = &'a ObjectPath>) -> Vec<Key> {
        let mut keys: Vec<Key> = paths.filter_map(|p| self.store.key_of(p)).collect();
        keys.sort();
        keys
    }

    fn prefix_path(&self, prefix: Option<&Key>) -> Option<ObjectPath> {
        match prefix {
            Some(prefix) => Some(self.path_of(prefix)),
            None if self.store.root.as_ref().is_empty() => None,
            None => Some(self.store.root.clone()),
        }
    }

    fn prefix_url(&self, prefix: Option<&Key>) -> String {
        match prefix {
            Some(prefix) => self.store.url_of(prefix),
            None => self.store.names.name.clone(),
        }
    }

    /// Deletes the object `key`, which a `HEAD` just found: `false` if it went meanwhile.
    fn delete_found(&self, key: &Key) -> Result<bool, StorageError> {
        let path = self.path_of(key);
        match self.store.block_on(self.store.store.delete(&path)) {
            Ok(()) => Ok(true),
            Err(::object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(self.store.fail("delete", key, e)),
        }
    }

    /// The failure to list under `prefix`.
    fn list_failed(&self, prefix: Option<&Key>, error: ::object_store::Error) -> StorageError {
        StorageError::Io {
            action: "list",
            location: self.prefix_url(prefix),
            source: self.store.names.io_error(error),
        }
    }
}

impl Storage for ObjectStorage {
    fn put(&self, key: &Key, bytes: &[u8]) -> Result<(), StorageError> {
        self.store
            .put_payload(key, PutPayload::from(Bytes::copy_from_slice(bytes)))
    }

    fn put_if_absent(&self, key: &Key, bytes: &[u8]) -> Result<bool, StorageError> {
        self.store
            .put_payload_if_absent(key, PutPayload::from(Bytes::copy_from_slice(bytes)))
    }

    /// One `HEAD`: an object of the right size is the blob; when there is none, or one of
    /// another size (damaged), one `PUT` writes it, replacing the damaged one. Two writers racing
    /// write the same bytes.
    fn put_content(&self, key: &Key, bytes: &[u8]) -> Result<bool, StorageError> {
        match self.store.head_stat(key)? {
            Some(stat) if stat.size == bytes.len() as u64 => {
                // Writing the bytes again renews the time as a server-side copy would, in one
                // request instead of three.
                if needs_refresh(stat.modified) {
                    self.put(key, bytes)?;
                }
                Ok(false)
            }
            _ => self.put(key, bytes).map(|()| true),
        }
    }

    fn start_put(&self, _near: &Key) -> Result<Box<dyn PendingObject>, StorageError> {
        // `near` helps a file system keep a rename local; an object store has no such locality.
        Ok(Box::new(ObjectPending::new(
            Arc::clone(&self.store),
            self.upload,
        )))
    }

    fn get(&self, key: &Key) -> Result<Vec<u8>, StorageError> {
        let path = self.path_of(key);
        let store = &self.store.store;
        self.store
            .block_on(async { store.get(&path).await?.bytes().await })
            .map(Vec::from)
            .map_err(|e| self.store.fail("read", key, e))
    }

    /// One `GET`, whose response says the object's size before its body is read: a larger
    /// object is refused without reading it.
    fn get_at_most(&self, key: &Key, limit: u64) -> Result<Vec<u8>, StorageError> {
        let path = self.path_of(key);
        let store = &self.store.store;
        let result = self.store.block_on(async {
            let response = store.get(&path).await?;
            let size = response.meta.size;
            if size > limit {
                return Ok(Err(size));
            }
            response.bytes().await.map(Ok)
        });
        match result {
            Ok(Ok(bytes)) if bytes.len() as u64 <= limit => Ok(Vec::from(bytes)),
            Ok(Ok(bytes)) => Err(StorageError::TooLarge {
                key: key.clone(),
                size: bytes.len() as u64,
                limit,
            }),
            Ok(Err(size)) => Err(StorageError::TooLarge {
                key: key.clone(),
                size,
                limit,
            }),
            Err(e) => Err(self.store.fail("read", key, e)),
        }
    }

    fn reader(&self, key: &Key) -> Result<Box<dyn Read + Send>, StorageError> {
        let path = self.path_of(key);
        let result = self
            .store
            .block_on(self.store.store.get(&path))
            .map_err(|e| self.store.fail("read", key, e))?;
        Ok(Box::new(ObjectReader::new(
            Arc::clone(&self.store),
            key.clone(),
            result.into_stream(),
        )))
    }

    fn size(&self, key: &Key) -> Result<Option<u64>, StorageError> {
        self.store.head(key)
    }

    fn stat(&self, key: &Key) -> Result<Option<ObjectStat>, StorageError> {
        self.store.head_stat(key)
    }

    fn remove_stale_temporaries(&self, older_than: Duration) -> Result<usize, StorageError> {
        self.remove_stale_staging(older_than)
    }

    fn refresh(&self, key: &Key) -> Result<bool, StorageError> {
        self.store
            .refresh(key, self.upload.copy_limit, self.upload.part_size)
    }

    fn list(&self, prefix: Option<&Key>) -> Result<Vec<Key>, StorageError> {
        let path = self.prefix_path(prefix);
        let store = &self.store.store;
        let objects: Vec<_> = self
            .store
            .block_on(store.list(path.as_ref()).try_collect())
            .map_err(|e| self.list_failed(prefix, e))?;
        Ok(self.keys_of(objects.iter().map(|meta| &meta.location)))
    }

    /// One listing: its pages carry every object's size and last-modified time.
    fn list_stats(&self, prefix: &Key) -> Result<Vec<(Key, ObjectStat)>, StorageError> {
        let path = self.prefix_path(Some(prefix));
        let store = &self.store.store;
        let objects: Vec<_> = self
            .store
            .block_on(store.list(path.as_ref()).try_collect())
            .map_err(|e| self.list_failed(Some(prefix), e))?;
        let mut listed: Vec<(Key, ObjectStat)> = objects
            .iter()
            .filter_map(|meta| {
                let key = self.store.key_of(&meta.location)?;
                Some((
                    key,
                    ObjectStat {
                        size: meta.size,
                        modified: SystemTime::from(meta.last_modified),
                    },
                ))
            })
            .collect();
        listed.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(listed)
    }

    fn list_children(&self, prefix: Option<&Key>) -> Result<Children, StorageError> {
        let path = self.prefix_path(prefix);
        let store = &self.store.store;
        let listing = self
            .store
            .block_on(store.list_with_delimiter(path.as_ref()))
            .map_err(|e| self.list_failed(prefix, e))?;
        Ok(Children {
            objects: self.keys_of(listing.objects.iter().map(|meta| &meta.location)),
            prefixes: self.keys_of(listing.common_prefixes.iter()),
        })
    }

    fn delete(&self, key: &Key) -> Result<bool, StorageError> {
        if self.store.head(key)?.is_none() {
            return Ok(false);
        }
        self.delete_found(key)
    }

    /// One `HEAD` for the time, then the `DELETE`: a refresh between the two is lost (S3 has no
    /// conditional delete; see `run/gc`).
    fn delete_if_written_before(
        &self,
        key: &Key,
        cutoff: SystemTime,
    ) -> Result<bool, StorageError> {
        match self.store.head_stat(key)? {
            Some(stat) if stat.modified < cutoff => self.delete_found(key),
            _ => Ok(false),
        }
    }

    /// See the type's documentation: a `GET`, then a `PUT` conditional on what was read, again
    /// while other writers get in first.
    fn update(&self, key: &Key, change: &mut ObjectChange<'_>) -> Result<bool, StorageError> {
        self.store.update(key, change)
    }
}
