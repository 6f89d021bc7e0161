//! The datastore on S3-compatible object storage (cargo feature `s3`), through the
//! `object_store` crate (0.14): [`ObjectStorage`], whose documentation says how each operation
//! maps onto requests and what it guarantees.

use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::io::{self, Read, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ::object_store::aws::{AmazonS3, AmazonS3Builder, AmazonS3ConfigKey};
use ::object_store::list::{PaginatedListOptions, PaginatedListStore};
use ::object_store::path::Path as ObjectPath;
use ::object_store::{
    ClientConfigKey, Error as ObjectError, MultipartUpload, ObjectStore, ObjectStoreExt, PutMode,
    PutOptions, PutPayload, RetryConfig, UpdateVersion,
};
use bytes::{Buf, Bytes};
use futures_util::stream::BoxStream;
use futures_util::{StreamExt, TryStreamExt};
use tokio::runtime::Runtime;
use tokio::task::JoinHandle;

use super::blobs::BLOB_PREFIX;
use super::keys::Key;
use super::location::S3Location;
use super::storage::{
    Children, MAX_RECORD_SIZE, ObjectChange, PendingObject, Storage, StorageError,
};

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
const MAX_PARTS: usize = 10_000;

/// Every this many parts, the part size grows by the initial size, so that 10,000 parts reach
/// far beyond 10,000 × 16 MiB (about 470 GiB with the default size).
const PART_GROWTH_EVERY: usize = 2_000;

/// The largest object S3 copies in one `CopyObject` request (5 GiB); a larger staging object is
/// streamed to its final key through this process.
pub const SERVER_COPY_LIMIT: u64 = 5 << 30;

/// Threads of each storage's runtime: they only drive sockets and timers, the caller's thread
/// does the blocking and the copying.
pub const RUNTIME_THREADS: usize = 2;

/// Where staging and probe objects live under the datastore's prefix; not a valid key segment.
const STAGING_DIR: &str = ".tmp";

/// How many times [`Storage::update`] reads and tries its conditional write again when other
/// writers keep getting in first, before it gives up.
const MAX_UPDATE_ATTEMPTS: u32 = 64;

/// Request timeout when `AWS_TIMEOUT` is not set: object_store's 30 s default covers the whole
/// body of a request, too short for a 32 MiB part or a large `GET` on a slow link.
const DEFAULT_REQUEST_TIMEOUT: &str = "5m";

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
    shared: Arc<Shared>,
    part_size: usize,
    parts_in_flight: usize,
    copy_limit: u64,
}

struct Shared {
    store: Arc<dyn ObjectStore>,
    /// The datastore's prefix as an object path; empty for the whole bucket.
    root: ObjectPath,
    /// `s3://bucket/prefix` (or the store's own name and the prefix), for messages.
    name: String,
    /// Who answers: the endpoint URL (or the store's name), and the bucket, for messages.
    endpoint: String,
    bucket: Option<String>,
    runtime: BlockingRuntime,
    /// Whether the server honours `PutMode::Create`, once probed.
    create_honoured: OnceLock<bool>,
    /// Whether the server honours `PutMode::Update` (`If-Match`), once probed.
    update_honoured: OnceLock<bool>,
}

impl fmt::Debug for ObjectStorage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ObjectStorage")
            .field("name", &self.shared.name)
            .field("store", &self.shared.store)
            .field("part_size", &self.part_size)
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
        Self::build(store, prefix, name, endpoint, None)
    }

    fn build(
        store: Arc<dyn ObjectStore>,
        prefix: Option<&Key>,
        name: String,
        endpoint: String,
        bucket: Option<String>,
    ) -> Result<Self, StorageError> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(RUNTIME_THREADS)
            .thread_name("blooming-object-store")
            .enable_all()
            .build()
            .map_err(|source| StorageError::Io {
                action: "start the threads of",
                location: name.clone(),
                source,
            })?;
        let root = prefix.map_or(ObjectPath::ROOT, |p| ObjectPath::from_iter(p.segments()));
        Ok(ObjectStorage {
            shared: Arc::new(Shared {
                store,
                root,
                name,
                endpoint,
                bucket,
                runtime: BlockingRuntime(Some(runtime)),
                create_honoured: OnceLock::new(),
                update_honoured: OnceLock::new(),
            }),
            part_size: DEFAULT_PART_SIZE,
            parts_in_flight: DEFAULT_PARTS_IN_FLIGHT,
            copy_limit: SERVER_COPY_LIMIT,
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
    /// exist (an [`io::ErrorKind::NotFound`] inside [`StorageError::Io`]); refused credentials
    /// ([`io::ErrorKind::PermissionDenied`]). Each names the endpoint and the bucket.
    pub fn connect(location: &S3Location) -> Result<Self, StorageError> {
        let name = location.to_string();
        let mut builder = AmazonS3Builder::from_env().with_bucket_name(location.bucket());
        if std::env::var_os("AWS_TIMEOUT").is_none() {
            builder = builder.with_config(
                AmazonS3ConfigKey::Client(ClientConfigKey::Timeout),
                DEFAULT_REQUEST_TIMEOUT,
            );
        }
        let endpoint = builder
            .get_config_value(&AmazonS3ConfigKey::Endpoint)
            .unwrap_or_else(|| {
                let region = builder
                    .get_config_value(&AmazonS3ConfigKey::Region)
                    .unwrap_or_else(|| "us-east-1".to_owned());
                format!("AWS S3 ({region})")
            });
        let config_error = |e: ObjectError| StorageError::Io {
            action: "configure the S3 client for",
            location: name.clone(),
            source: io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{e} (endpoint {endpoint}; see the AWS_* environment variables)"),
            ),
        };
        // The reachability check fails fast: a mistyped endpoint should not take the regular
        // retry budget (minutes) to be reported.
        let probe = builder
            .clone()
            .with_retry(RetryConfig {
                max_retries: 2,
                retry_timeout: Duration::from_secs(15),
                ..RetryConfig::default()
            })
            .build()
            .map_err(config_error)?;
        let store = builder.build().map_err(config_error)?;
        let bucket = Some(location.bucket().to_owned());
        let storage = Self::build(Arc::new(store), location.prefix(), name, endpoint, bucket)?;
        storage.check_reachable(&probe)?;
        Ok(storage)
    }

    /// Lists one entry of the datastore's top level through `probe` (the same store with a
    /// short retry budget): the bucket exists and the credentials are accepted. One request,
    /// however much the bucket holds.
    fn check_reachable(&self, probe: &AmazonS3) -> Result<(), StorageError> {
        let root = self.shared.root.as_ref();
        let prefix = (!root.is_empty()).then(|| format!("{root}/"));
        let options = PaginatedListOptions {
            delimiter: Some("/".into()),
            max_keys: Some(1),
            ..PaginatedListOptions::default()
        };
        let result = self.block_on(async move {
            probe
                .list_paginated(prefix.as_deref(), options)
                .await
                .map(drop)
        });
        result.map_err(|e| {
            let source = match error_kind(&e) {
                io::ErrorKind::NotFound => io::Error::new(
                    io::ErrorKind::NotFound,
                    format!(
                        "{} does not exist at {} (create it first): {e}",
                        self.shared.bucket_name(),
                        self.shared.endpoint
                    ),
                ),
                _ => self.shared.io_error(e),
            };
            StorageError::Io {
                action: "open the datastore",
                location: self.shared.name.clone(),
                source,
            }
        })
    }

    /// Sets the size of the parts streamed objects are uploaded in (and the largest streamed
    /// object written with a single `PUT`); at least [`MIN_PART_SIZE`]. Default
    /// [`DEFAULT_PART_SIZE`].
    #[must_use]
    pub fn with_part_size(mut self, bytes: usize) -> Self {
        self.part_size = bytes.max(MIN_PART_SIZE);
        self
    }

    /// Sets how many parts of a streamed object upload at once (at least 1); a writer holds at
    /// most this many parts plus the one it fills. Default [`DEFAULT_PARTS_IN_FLIGHT`].
    #[must_use]
    pub fn with_parts_in_flight(mut self, parts: usize) -> Self {
        self.parts_in_flight = parts.max(1);
        self
    }

    /// Sets the size above which a committed staging object is copied through this process
    /// rather than by the server; for tests of that path.
    #[cfg(test)]
    fn with_copy_limit(mut self, bytes: u64) -> Self {
        self.copy_limit = bytes;
        self
    }

    /// The datastore as a URL (`s3://bucket/prefix`), as messages name it.
    pub fn name(&self) -> &str {
        &self.shared.name
    }

    /// The object store underneath.
    pub fn object_store(&self) -> &Arc<dyn ObjectStore> {
        &self.shared.store
    }

    /// The path in the object store of the object `key`.
    pub fn path_of(&self, key: &Key) -> ObjectPath {
        self.shared.path_of(key)
    }

    /// Whether the server honours conditional creation (`If-None-Match: *`), which makes claims
    /// of unique names race-free; probed once, by the first claim or by this call (which
    /// writes and deletes a probe object under `.tmp/`).
    ///
    /// # Errors
    ///
    /// If the probe object cannot be written.
    pub fn conditional_writes_honoured(&self) -> Result<bool, StorageError> {
        if let Some(&honoured) = self.shared.create_honoured.get() {
            return Ok(honoured);
        }
        let honoured = self.probe_conditional_writes()?;
        if !honoured {
            tracing::warn!(
                "{} does not honour conditional writes: unique names are claimed with a lookup then a write, which two writers racing for the same name can both win",
                self.shared.endpoint
            );
        }
        Ok(*self.shared.create_honoured.get_or_init(|| honoured))
    }

    fn probe_conditional_writes(&self) -> Result<bool, StorageError> {
        let path = self.shared.staging_path("probe");
        let store = Arc::clone(&self.shared.store);
        let create = || PutOptions::from(PutMode::Create);
        let result = self.block_on(async {
            match store
                .put_opts(&path, PutPayload::from_static(b"1"), create())
                .await
            {
                Ok(_) => {}
                // The server, or the client's configuration (`AWS_CONDITIONAL_PUT=disabled`),
                // has no conditional writes at all.
                Err(ObjectError::NotImplemented { .. } | ObjectError::NotSupported { .. }) => {
                    return Ok(false);
                }
                Err(e) => return Err(e),
            }
            let second = store
                .put_opts(&path, PutPayload::from_static(b"2"), create())
                .await;
            // The probe object is removed whatever the answer; failing to is only litter under
            // `.tmp/`, which listings never show.
            let _ = store.delete(&path).await;
            match second {
                Err(ObjectError::AlreadyExists { .. }) => Ok(true),
                Ok(_)
                | Err(ObjectError::NotImplemented { .. } | ObjectError::NotSupported { .. }) => {
                    Ok(false)
                }
                Err(e) => Err(e),
            }
        });
        result.map_err(|e| StorageError::Io {
            action: "probe conditional writes in",
            location: self.shared.url_of_path(&path),
            source: self.shared.io_error(e),
        })
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
        if let Some(&honoured) = self.shared.update_honoured.get() {
            return Ok(honoured);
        }
        let honoured = self.conditional_writes_honoured()? && self.probe_conditional_updates()?;
        if !honoured {
            tracing::warn!(
                "{} does not honour conditional updates (If-Match): run records and latest pointers are updated with a read then a write, which two writers at the same moment can undo each other's change with",
                self.shared.endpoint
            );
        }
        Ok(*self.shared.update_honoured.get_or_init(|| honoured))
    }

    fn probe_conditional_updates(&self) -> Result<bool, StorageError> {
        let path = self.shared.staging_path("probe");
        let store = Arc::clone(&self.shared.store);
        let update = |version: &UpdateVersion| PutOptions::from(PutMode::Update(version.clone()));
        let result = self.block_on(async {
            let first = UpdateVersion::from(store.put(&path, PutPayload::from_static(b"1")).await?);
            let answer =
                async {
                    if first.e_tag.is_none() && first.version.is_none() {
                        return Ok(false);
                    }
                    match store
                        .put_opts(&path, PutPayload::from_static(b"2"), update(&first))
                        .await
                    {
                        Ok(_) => {}
                        // No conditional updates at all, or a current version refused: either way
                        // not something to build on.
                        Err(
                            ObjectError::NotImplemented { .. }
                            | ObjectError::NotSupported { .. }
                            | ObjectError::Precondition { .. },
                        ) => return Ok(false),
                        Err(e) => return Err(e),
                    }
                    match store
                        .put_opts(&path, PutPayload::from_static(b"3"), update(&first))
                        .await
                    {
                        Err(ObjectError::Precondition { .. }) => Ok(true),
                        Ok(_)
                        | Err(
                            ObjectError::NotImplemented { .. } | ObjectError::NotSupported { .. },
                        ) => Ok(false),
                        Err(e) => Err(e),
                    }
                }
                .await;
            // As for the other probe: failing to remove it only leaves litter under `.tmp/`.
            let _ = store.delete(&path).await;
            answer
        });
        result.map_err(|e| StorageError::Io {
            action: "probe conditional updates in",
            location: self.shared.url_of_path(&path),
            source: self.shared.io_error(e),
        })
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
        let dir = self.shared.root.clone().join(STAGING_DIR);
        let cutoff = SystemTime::now().checked_sub(older_than);
        let store = Arc::clone(&self.shared.store);
        let result = self.block_on(async {
            let stale: Vec<ObjectPath> = store
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
                match store.delete(&path).await {
                    Ok(()) => removed += 1,
                    Err(ObjectError::NotFound { .. }) => {}
                    Err(e) => return Err(e),
                }
            }
            Ok(removed)
        });
        result.map_err(|e| StorageError::Io {
            action: "remove stale staging objects from",
            location: self.shared.url_of_path(&dir),
            source: self.shared.io_error(e),
        })
    }

    fn block_on<F>(&self, future: F) -> F::Output
    where
        F: Future + Send,
        F::Output: Send,
    {
        self.shared.runtime.block_on(future)
    }

    fn head(&self, key: &Key) -> Result<Option<u64>, StorageError> {
        let path = self.path_of(key);
        match self.block_on(self.shared.store.head(&path)) {
            Ok(meta) => Ok(Some(meta.size)),
            Err(ObjectError::NotFound { .. }) => Ok(None),
            Err(e) => Err(self.shared.fail("look up", key, e)),
        }
    }

    fn put_payload(&self, key: &Key, payload: PutPayload) -> Result<(), StorageError> {
        let path = self.path_of(key);
        self.block_on(self.shared.store.put(&path, payload))
            .map(drop)
            .map_err(|e| self.shared.fail("write", key, e))
    }

    /// `put_if_absent` of content already in memory; see the module documentation.
    fn put_payload_if_absent(&self, key: &Key, payload: PutPayload) -> Result<bool, StorageError> {
        if self.head(key)?.is_some() {
            return Ok(false);
        }
        if is_content_addressed(key) || !self.conditional_writes_honoured()? {
            self.put_payload(key, payload)?;
            return Ok(true);
        }
        let path = self.path_of(key);
        let options = PutOptions::from(PutMode::Create);
        match self.block_on(self.shared.store.put_opts(&path, payload, options)) {
            Ok(_) => Ok(true),
            Err(ObjectError::AlreadyExists { .. }) => Ok(false),
            Err(e) => Err(self.shared.fail("write", key, e)),
        }
    }

    /// The keys of the objects at `paths` that are objects of the datastore (not staging
    /// objects, nor foreign objects whose names are not valid keys), sorted.
    fn keys_of<'a>(&self, paths: impl Iterator<Item = &'a ObjectPath>) -> Vec<Key> {
        let mut keys: Vec<Key> = paths.filter_map(|p| self.shared.key_of(p)).collect();
        keys.sort();
        keys
    }

    fn prefix_path(&self, prefix: Option<&Key>) -> Option<ObjectPath> {
        match prefix {
            Some(prefix) => Some(self.path_of(prefix)),
            None if self.shared.root.as_ref().is_empty() => None,
            None => Some(self.shared.root.clone()),
        }
    }

    fn prefix_url(&self, prefix: Option<&Key>) -> String {
        match prefix {
            Some(prefix) => self.shared.url_of(prefix),
            None => self.shared.name.clone(),
        }
    }
}

impl Storage for ObjectStorage {
    fn put(&self, key: &Key, bytes: &[u8]) -> Result<(), StorageError> {
        self.put_payload(key, PutPayload::from(Bytes::copy_from_slice(bytes)))
    }

    fn put_if_absent(&self, key: &Key, bytes: &[u8]) -> Result<bool, StorageError> {
        self.put_payload_if_absent(key, PutPayload::from(Bytes::copy_from_slice(bytes)))
    }

    /// One `HEAD`: an object of the right size is the blob; when there is none, or one of
    /// another size (damaged), one `PUT` writes it, replacing the damaged one. Two writers racing
    /// write the same bytes.
    fn put_content(&self, key: &Key, bytes: &[u8]) -> Result<bool, StorageError> {
        if self.head(key)? == Some(bytes.len() as u64) {
            return Ok(false);
        }
        self.put(key, bytes).map(|()| true)
    }

    fn start_put(&self, _near: &Key) -> Result<Box<dyn PendingObject>, StorageError> {
        // `near` helps a file system keep a rename local; an object store has no such locality.
        Ok(Box::new(ObjectPending {
            staging: self.shared.staging_path("upload"),
            storage: self.clone(),
            upload: None,
            buffer: Vec::new(),
            in_flight: VecDeque::new(),
            parts: 0,
            written: 0,
            failed: false,
        }))
    }

    fn get(&self, key: &Key) -> Result<Vec<u8>, StorageError> {
        let path = self.path_of(key);
        let store = &self.shared.store;
        self.block_on(async { store.get(&path).await?.bytes().await })
            .map(Vec::from)
            .map_err(|e| self.shared.fail("read", key, e))
    }

    /// One `GET`, whose response says the object's size before its body is read: a larger
    /// object is refused without reading it.
    fn get_at_most(&self, key: &Key, limit: u64) -> Result<Vec<u8>, StorageError> {
        let path = self.path_of(key);
        let store = &self.shared.store;
        let result = self.block_on(async {
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
            Err(e) => Err(self.shared.fail("read", key, e)),
        }
    }

    fn reader(&self, key: &Key) -> Result<Box<dyn Read + Send>, StorageError> {
        let path = self.path_of(key);
        let result = self
            .block_on(self.shared.store.get(&path))
            .map_err(|e| self.shared.fail("read", key, e))?;
        Ok(Box::new(ObjectReader {
            storage: self.clone(),
            key: key.clone(),
            stream: result.into_stream(),
            chunk: Bytes::new(),
        }))
    }

    fn size(&self, key: &Key) -> Result<Option<u64>, StorageError> {
        self.head(key)
    }

    fn list(&self, prefix: Option<&Key>) -> Result<Vec<Key>, StorageError> {
        let path = self.prefix_path(prefix);
        let store = &self.shared.store;
        let objects: Vec<_> = self
            .block_on(store.list(path.as_ref()).try_collect())
            .map_err(|e| StorageError::Io {
                action: "list",
                location: self.prefix_url(prefix),
                source: self.shared.io_error(e),
            })?;
        Ok(self.keys_of(objects.iter().map(|meta| &meta.location)))
    }

    fn list_children(&self, prefix: Option<&Key>) -> Result<Children, StorageError> {
        let path = self.prefix_path(prefix);
        let store = &self.shared.store;
        let listing = self
            .block_on(store.list_with_delimiter(path.as_ref()))
            .map_err(|e| StorageError::Io {
                action: "list",
                location: self.prefix_url(prefix),
                source: self.shared.io_error(e),
            })?;
        Ok(Children {
            objects: self.keys_of(listing.objects.iter().map(|meta| &meta.location)),
            prefixes: self.keys_of(listing.common_prefixes.iter()),
        })
    }

    fn delete(&self, key: &Key) -> Result<bool, StorageError> {
        if self.head(key)?.is_none() {
            return Ok(false);
        }
        let path = self.path_of(key);
        match self.block_on(self.shared.store.delete(&path)) {
            Ok(()) => Ok(true),
            Err(ObjectError::NotFound { .. }) => Ok(false),
            Err(e) => Err(self.shared.fail("delete", key, e)),
        }
    }

    /// See the type's documentation: a `GET`, then a `PUT` conditional on what was read, again
    /// while other writers get in first.
    fn update(&self, key: &Key, change: &mut ObjectChange<'_>) -> Result<bool, StorageError> {
        let atomic = self.conditional_updates_honoured()?;
        let path = self.path_of(key);
        let store = &self.shared.store;
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
                Err(e) => return Err(self.shared.fail("read", key, e)),
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
                Err(e) => return Err(self.shared.fail("write", key, e)),
            }
        }
        Err(StorageError::Io {
            action: "update",
            location: self.shared.url_of(key),
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

impl Shared {
    fn path_of(&self, key: &Key) -> ObjectPath {
        let mut path = self.root.clone();
        path.extend(key.segments());
        path
    }

    /// The key of the object at `path`, if it is an object of the datastore.
    fn key_of(&self, path: &ObjectPath) -> Option<Key> {
        let parts: Vec<_> = path.prefix_match(&self.root)?.collect();
        let relative = parts
            .iter()
            .map(|part| part.as_ref())
            .collect::<Vec<&str>>()
            .join("/");
        Key::parse(&relative).ok()
    }

    /// A new, unique object path under `.tmp/`.
    fn staging_path(&self, what: &str) -> ObjectPath {
        self.root
            .clone()
            .join(STAGING_DIR)
            .join(format!("{what}-{}", unique_name()).as_str())
    }

    /// "bucket `name`", or "the store" for a store without buckets.
    fn bucket_name(&self) -> String {
        match &self.bucket {
            Some(bucket) => format!("bucket `{bucket}`"),
            None => "the store".to_owned(),
        }
    }

    fn url_of(&self, key: &Key) -> String {
        format!("{}/{key}", self.name)
    }

    fn url_of_path(&self, path: &ObjectPath) -> String {
        match path.prefix_match(&self.root) {
            Some(parts) => {
                let rest: Vec<String> = parts.map(|p| p.as_ref().to_owned()).collect();
                format!("{}/{}", self.name, rest.join("/"))
            }
            None => format!("{} (object {path})", self.name),
        }
    }

    /// The failure of `action` on the object `key`: [`StorageError::NotFound`] for a missing
    /// object, else the server's message with the object's URL.
    fn fail(&self, action: &'static str, key: &Key, error: ObjectError) -> StorageError {
        match error {
            ObjectError::NotFound { .. } => StorageError::NotFound { key: key.clone() },
            other => StorageError::Io {
                action,
                location: self.url_of(key),
                source: self.io_error(other),
            },
        }
    }

    /// An object store error as an I/O error of the matching kind. Its message is the
    /// client's, which includes the request, the HTTP status and the server's own message;
    /// refused credentials get a word on where to look first.
    fn io_error(&self, error: ObjectError) -> io::Error {
        match error_kind(&error) {
            io::ErrorKind::PermissionDenied => io::Error::new(
                io::ErrorKind::PermissionDenied,
                format!(
                    "{} refused access to {} (check AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and the bucket's permissions): {error}",
                    self.endpoint,
                    self.bucket_name()
                ),
            ),
            kind => io::Error::new(kind, error),
        }
    }
}

/// The kind of failure an object store error is. Most requests map the HTTP status to a variant
/// (`NotFound`, `PermissionDenied`, …), but listings wrap every failure as `Generic`, with the
/// status and the server's error code only in the message: those are read from there.
fn error_kind(error: &ObjectError) -> io::ErrorKind {
    match error {
        ObjectError::NotFound { .. } => io::ErrorKind::NotFound,
        ObjectError::PermissionDenied { .. } | ObjectError::Unauthenticated { .. } => {
            io::ErrorKind::PermissionDenied
        }
        ObjectError::AlreadyExists { .. } => io::ErrorKind::AlreadyExists,
        other => {
            let message = other.to_string();
            let has = |needles: &[&str]| needles.iter().any(|n| message.contains(n));
            if has(&["<Code>NoSuchBucket</Code>", "status code: 404"]) {
                io::ErrorKind::NotFound
            } else if has(&[
                "status code: 401",
                "status code: 403",
                "<Code>AccessDenied</Code>",
                "<Code>InvalidAccessKeyId</Code>",
                "<Code>SignatureDoesNotMatch</Code>",
            ]) {
                io::ErrorKind::PermissionDenied
            } else {
                io::ErrorKind::Other
            }
        }
    }
}

/// Whether `key` names a content-addressed blob (`blobs/<2 hex>/<64 hex>`, the two digits
/// starting the 64): its content is determined by its name, so writing it twice is harmless.
fn is_content_addressed(key: &Key) -> bool {
    let mut segments = key.segments();
    let (Some(prefix), Some(fan), Some(name), None) = (
        segments.next(),
        segments.next(),
        segments.next(),
        segments.next(),
    ) else {
        return false;
    };
    let hex = |s: &str| s.bytes().all(|b| b.is_ascii_hexdigit());
    prefix == BLOB_PREFIX
        && name.len() == 64
        && hex(name)
        && name.starts_with(fan)
        && fan.len() == 2
}

/// A name no other writer, in this process or another, on this machine or another, picks: the
/// time, then a hash of the time, the process, the host, the thread and a counter.
fn unique_name() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let mut hasher = blake3::Hasher::new();
    hasher.update(&now.as_nanos().to_le_bytes());
    hasher.update(&std::process::id().to_le_bytes());
    hasher.update(&COUNTER.fetch_add(1, Ordering::Relaxed).to_le_bytes());
    if let Ok(host) = std::fs::read_to_string("/proc/sys/kernel/hostname") {
        hasher.update(host.as_bytes());
    }
    hasher.update(format!("{:?}", std::thread::current().id()).as_bytes());
    format!("{}-{}", now.as_secs(), &hasher.finalize().to_hex()[..24])
}

/// The part size for part number `index` (from 0): the base size, growing by the base size
/// every [`PART_GROWTH_EVERY`] parts.
fn part_size_for(base: usize, index: usize) -> usize {
    base.saturating_mul(1 + index / PART_GROWTH_EVERY)
}

/// A tokio runtime that a synchronous caller blocks on, shut down without waiting when dropped.
struct BlockingRuntime(Option<Runtime>);

impl BlockingRuntime {
    fn runtime(&self) -> &Runtime {
        // `None` only inside `drop`.
        self.0
            .as_ref()
            .unwrap_or_else(|| unreachable!("the runtime is used after it was dropped"))
    }

    fn block_on<F>(&self, future: F) -> F::Output
    where
        F: Future + Send,
        F::Output: Send,
    {
        let runtime = self.runtime();
        if tokio::runtime::Handle::try_current().is_err() {
            return runtime.block_on(future);
        }
        // Inside a runtime (the caller's async code): blocking this thread on another runtime
        // would panic, so a helper thread blocks instead.
        std::thread::scope(|scope| {
            scope
                .spawn(|| runtime.block_on(future))
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
        })
    }
}

impl Drop for BlockingRuntime {
    fn drop(&mut self) {
        // Dropping a runtime waits for its threads, and panics inside an async context (where a
        // client may well be dropped). Nothing needs waiting for: every operation completed
        // before its method returned, what is left are idle connections.
        if let Some(runtime) = self.0.take() {
            runtime.shutdown_background();
        }
    }
}

/// The body of a `GET`, read chunk by chunk as the reader asks for it.
struct ObjectReader {
    storage: ObjectStorage,
    key: Key,
    stream: BoxStream<'static, Result<Bytes, ObjectError>>,
    /// What is left of the last chunk received.
    chunk: Bytes,
}

impl Read for ObjectReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        while self.chunk.is_empty() {
            match self.storage.block_on(self.stream.next()) {
                None => return Ok(0),
                Some(Ok(chunk)) => self.chunk = chunk,
                Some(Err(e)) => {
                    let e = self.storage.shared.io_error(e);
                    return Err(io::Error::new(
                        e.kind(),
                        format!("reading {}: {e}", self.storage.shared.url_of(&self.key)),
                    ));
                }
            }
        }
        let n = buf.len().min(self.chunk.len());
        buf[..n].copy_from_slice(&self.chunk[..n]);
        self.chunk.advance(n);
        Ok(n)
    }
}

/// A streamed object: buffered up to one part, then a multipart upload to a staging object with
/// a few parts in flight while the next fills. See [`ObjectStorage`].
struct ObjectPending {
    storage: ObjectStorage,
    staging: ObjectPath,
    /// Started when the first part is full; `None` while everything fits in one part, and after
    /// the upload was completed.
    upload: Option<Box<dyn MultipartUpload>>,
    buffer: Vec<u8>,
    /// Parts uploading, oldest first; at most `storage.parts_in_flight` of them.
    in_flight: VecDeque<JoinHandle<Result<(), ObjectError>>>,
    /// Parts handed to the upload so far.
    parts: usize,
    written: u64,
    /// A part failed: the object cannot be completed any more.
    failed: bool,
}

impl ObjectPending {
    fn part_limit(&self) -> usize {
        part_size_for(self.storage.part_size, self.parts)
    }

    fn io_failure(&self, what: &str, e: ObjectError) -> io::Error {
        let e = self.storage.shared.io_error(e);
        io::Error::new(
            e.kind(),
            format!(
                "{what} {}: {e}",
                self.storage.shared.url_of_path(&self.staging)
            ),
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
        match self.storage.block_on(handle) {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => {
                self.failed = true;
                Err(self.io_failure("uploading a part of", e))
            }
            Err(join) => {
                self.failed = true;
                Err(io::Error::other(format!(
                    "uploading a part of {}: {join}",
                    self.storage.shared.url_of_path(&self.staging)
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
                self.storage.shared.url_of_path(&self.staging)
            )));
        }
        if self.upload.is_none() {
            let store = &self.storage.shared.store;
            let upload = self
                .storage
                .block_on(store.put_multipart(&self.staging))
                .map_err(|e| {
                    self.failed = true;
                    self.io_failure("starting the upload of", e)
                })?;
            self.upload = Some(upload);
        }
        self.wait_in_flight(self.storage.parts_in_flight - 1)?;
        let part = std::mem::take(&mut self.buffer);
        let Some(upload) = self.upload.as_mut() else {
            unreachable!("the upload was started above");
        };
        let future = upload.put_part(PutPayload::from(Bytes::from(part)));
        self.in_flight
            .push_back(self.storage.shared.runtime.runtime().spawn(future));
        self.parts += 1;
        Ok(())
    }

    /// Makes the content visible as `key`; with `only_if_absent`, not if `key` exists. What is
    /// left to clean up when it returns early (an upload to abort) is cleaned up by `drop`.
    fn finish(&mut self, key: &Key, only_if_absent: bool) -> Result<bool, StorageError> {
        let storage = self.storage.clone();
        let fail = |source: io::Error| StorageError::Io {
            action: "commit",
            location: storage.shared.url_of(key),
            source,
        };
        if self.failed {
            return Err(fail(io::Error::other("a part of it failed to upload")));
        }
        if self.upload.is_none() {
            // Everything fit in one part: one request straight to the key, nothing staged.
            let payload = PutPayload::from(Bytes::from(std::mem::take(&mut self.buffer)));
            return if only_if_absent {
                storage.put_payload_if_absent(key, payload)
            } else {
                storage.put_payload(key, payload).map(|()| true)
            };
        }
        if only_if_absent && storage.head(key)?.is_some() {
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
        if let Err(e) = storage.block_on(upload.complete()) {
            // Not complete: abort it, as dropping would have.
            let _ = storage.block_on(upload.abort());
            return Err(fail(self.io_failure("completing the upload of", e)));
        }
        let store = Arc::clone(&storage.shared.store);
        let target = storage.path_of(key);
        let staging = self.staging.clone();
        let completed = started.elapsed();
        let copied = if self.written <= storage.copy_limit {
            storage.block_on(store.copy(&staging, &target))
        } else {
            storage.block_on(copy_through(&*store, &staging, &target, storage.part_size))
        };
        tracing::debug!(
            "{}: {} bytes in {} parts; last parts {uploaded:.2?}, completed {completed:.2?}, copied {:.2?}",
            storage.shared.url_of(key),
            self.written,
            self.parts,
            started.elapsed()
        );
        // The staging object goes whether or not the copy worked; failing to delete it leaves
        // only litter under `.tmp/` (see `remove_stale_staging`), not a wrong datastore.
        if let Err(e) = storage.block_on(store.delete(&staging)) {
            tracing::warn!(
                "could not delete the staging object {}: {e}",
                storage.shared.url_of_path(&staging)
            );
        }
        copied
            .map(|()| true)
            .map_err(|e| storage.shared.fail("commit", key, e))
    }
}

/// Copies `from` to `to` through this process, part by part, for objects the server cannot copy
/// in one request; at most two parts in memory.
async fn copy_through(
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
                self.storage.shared.url_of_path(&self.staging)
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
            if let Err(e) = self.storage.block_on(upload.abort()) {
                tracing::warn!(
                    "could not abort the upload of {}; its parts stay on the server until a lifecycle rule removes them: {e}",
                    self.storage.shared.url_of_path(&self.staging)
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::ops::Range;
    use std::pin::Pin;
    use std::sync::atomic::AtomicUsize;

    use ::object_store::memory::InMemory;
    use ::object_store::{
        CopyOptions, GetOptions, GetResult, ListResult, ObjectMeta, PutMultipartOptions, PutResult,
        Result as ObjectResult,
    };
    use serde::{Deserialize, Serialize};

    use super::*;
    use crate::datastore::{
        BlobErrorKind, BlobStore, LoadError, TaskError, TaskIndex, read_task, write_task,
    };

    type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

    /// An in-memory store that counts requests, and can behave like a server that ignores
    /// conditional writes (as Garage does).
    #[derive(Debug, Default)]
    struct Double {
        inner: InMemory,
        ignore_create: bool,
        /// Behave like a server that ignores `If-Match`.
        ignore_update: bool,
        /// Written over the object read by the next `GET`, once the read is done: another writer
        /// getting in between a read and the write that follows it.
        interfere: std::sync::Mutex<Option<Bytes>>,
        puts: AtomicUsize,
        uploads: AtomicUsize,
        copies: AtomicUsize,
    }

    impl fmt::Display for Double {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("memory://double")
        }
    }

    // `ObjectStore` is declared with `async_trait`; these are the signatures it expands to.
    impl ObjectStore for Double {
        fn put_opts<'life0, 'life1, 'async_trait>(
            &'life0 self,
            location: &'life1 ObjectPath,
            payload: PutPayload,
            mut opts: PutOptions,
        ) -> BoxFuture<'async_trait, ObjectResult<PutResult>>
        where
            'life0: 'async_trait,
            'life1: 'async_trait,
            Self: 'async_trait,
        {
            self.puts.fetch_add(1, Ordering::SeqCst);
            if self.ignore_create && opts.mode == PutMode::Create {
                opts.mode = PutMode::Overwrite;
            }
            if self.ignore_update && matches!(opts.mode, PutMode::Update(_)) {
                opts.mode = PutMode::Overwrite;
            }
            self.inner.put_opts(location, payload, opts)
        }

        fn put_multipart_opts<'life0, 'life1, 'async_trait>(
            &'life0 self,
            location: &'life1 ObjectPath,
            opts: PutMultipartOptions,
        ) -> BoxFuture<'async_trait, ObjectResult<Box<dyn MultipartUpload>>>
        where
            'life0: 'async_trait,
            'life1: 'async_trait,
            Self: 'async_trait,
        {
            self.uploads.fetch_add(1, Ordering::SeqCst);
            self.inner.put_multipart_opts(location, opts)
        }

        fn get_opts<'life0, 'life1, 'async_trait>(
            &'life0 self,
            location: &'life1 ObjectPath,
            options: GetOptions,
        ) -> BoxFuture<'async_trait, ObjectResult<GetResult>>
        where
            'life0: 'async_trait,
            'life1: 'async_trait,
            Self: 'async_trait,
        {
            let interference = self
                .interfere
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .take();
            Box::pin(async move {
                let result = self.inner.get_opts(location, options).await;
                if let Some(bytes) = interference {
                    self.inner.put(location, PutPayload::from(bytes)).await?;
                }
                result
            })
        }

        fn get_ranges<'life0, 'life1, 'life2, 'async_trait>(
            &'life0 self,
            location: &'life1 ObjectPath,
            ranges: &'life2 [Range<u64>],
        ) -> BoxFuture<'async_trait, ObjectResult<Vec<Bytes>>>
        where
            'life0: 'async_trait,
            'life1: 'async_trait,
            'life2: 'async_trait,
            Self: 'async_trait,
        {
            self.inner.get_ranges(location, ranges)
        }

        fn delete_stream(
            &self,
            locations: BoxStream<'static, ObjectResult<ObjectPath>>,
        ) -> BoxStream<'static, ObjectResult<ObjectPath>> {
            self.inner.delete_stream(locations)
        }

        fn list(
            &self,
            prefix: Option<&ObjectPath>,
        ) -> BoxStream<'static, ObjectResult<ObjectMeta>> {
            self.inner.list(prefix)
        }

        fn list_with_delimiter<'life0, 'life1, 'async_trait>(
            &'life0 self,
            prefix: Option<&'life1 ObjectPath>,
        ) -> BoxFuture<'async_trait, ObjectResult<ListResult>>
        where
            'life0: 'async_trait,
            'life1: 'async_trait,
            Self: 'async_trait,
        {
            self.inner.list_with_delimiter(prefix)
        }

        fn copy_opts<'life0, 'life1, 'life2, 'async_trait>(
            &'life0 self,
            from: &'life1 ObjectPath,
            to: &'life2 ObjectPath,
            options: CopyOptions,
        ) -> BoxFuture<'async_trait, ObjectResult<()>>
        where
            'life0: 'async_trait,
            'life1: 'async_trait,
            'life2: 'async_trait,
            Self: 'async_trait,
        {
            self.copies.fetch_add(1, Ordering::SeqCst);
            self.inner.copy_opts(from, to, options)
        }
    }

    fn key(s: &str) -> Key {
        Key::parse(s).unwrap()
    }

    /// A storage under prefix `ds` of a fresh double, with 5 MiB parts.
    fn storage_with(double: Double) -> (Arc<Double>, ObjectStorage) {
        let double = Arc::new(double);
        let storage = ObjectStorage::new(double.clone(), Some(&key("ds")))
            .unwrap()
            .with_part_size(MIN_PART_SIZE);
        (double, storage)
    }

    fn storage() -> (Arc<Double>, ObjectStorage) {
        storage_with(Double::default())
    }

    /// Every object in the store, staging objects and other prefixes included.
    fn all_objects(store: &dyn ObjectStore) -> Vec<String> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let mut paths: Vec<String> = runtime
            .block_on(store.list(None).try_collect::<Vec<_>>())
            .unwrap()
            .into_iter()
            .map(|meta| meta.location.to_string())
            .collect();
        paths.sort();
        paths
    }

    /// `len` bytes that differ from part to part, so that a misordered part would show.
    fn pattern(len: usize) -> Vec<u8> {
        (0..len)
            .map(|i| (i % 251) as u8 ^ (i >> 20) as u8)
            .collect()
    }

    #[test]
    fn put_get_overwrite_and_not_found() {
        let (double, s) = storage();
        let k = key("runs/1/meta.json");
        assert!(!s.exists(&k).unwrap());
        assert_eq!(s.size(&k).unwrap(), None);
        assert!(s.get(&k).unwrap_err().is_not_found());
        assert!(s.reader(&k).err().unwrap().is_not_found());
        s.put(&k, b"one").unwrap();
        assert_eq!(s.get(&k).unwrap(), b"one");
        s.put(&k, b"two!").unwrap();
        assert_eq!(s.get(&k).unwrap(), b"two!");
        assert_eq!(s.size(&k).unwrap(), Some(4));
        let mut read = String::new();
        s.reader(&k).unwrap().read_to_string(&mut read).unwrap();
        assert_eq!(read, "two!");
        assert_eq!(all_objects(&*double), ["ds/runs/1/meta.json"]);
        assert!(s.delete(&k).unwrap());
        assert!(!s.delete(&k).unwrap());
        assert!(s.get(&k).unwrap_err().is_not_found());
    }

    #[test]
    fn errors_name_the_object() {
        let (_double, s) = storage();
        let message = s.get(&key("runs/9/x")).unwrap_err().to_string();
        assert!(message.contains("runs/9/x"), "{message}");
    }

    #[test]
    fn put_if_absent_keeps_the_first_and_sends_nothing_when_present() {
        let (double, s) = storage();
        let k = key("flows/F/runs/17/run.json");
        assert!(s.put_if_absent(&k, b"first").unwrap());
        let puts = double.puts.load(Ordering::SeqCst);
        assert!(!s.put_if_absent(&k, b"second").unwrap());
        assert_eq!(double.puts.load(Ordering::SeqCst), puts, "a lookup only");
        assert_eq!(s.get(&k).unwrap(), b"first");
        // The probe object was removed; only the object is there.
        assert_eq!(all_objects(&*double), ["ds/flows/F/runs/17/run.json"]);
    }

    #[test]
    fn blobs_are_written_once_without_a_probe() {
        let (double, s) = storage();
        let blobs = BlobStore::new(&s);
        let stored = blobs.put_bytes(b"some bytes").unwrap();
        assert!(stored.newly_stored);
        assert_eq!(double.puts.load(Ordering::SeqCst), 1, "one PUT, no probe");
        let again = blobs.put_bytes(b"some bytes").unwrap();
        assert!(!again.newly_stored);
        assert_eq!(double.puts.load(Ordering::SeqCst), 1, "a lookup only");
        assert!(s.shared.create_honoured.get().is_none());
    }

    #[test]
    fn content_addressed_keys() {
        let hash = crate::datastore::BlobHash::of(b"x");
        assert!(is_content_addressed(&hash.key()));
        let hex = hash.to_string();
        let wrong_fan = if hex.starts_with("00") { "01" } else { "00" };
        for other in [
            format!("blobs/{hex}"),
            format!("blobs/{wrong_fan}/{hex}"),
            format!("blobs/{}/{}", &hex[..2], &hex[..63]),
            format!("other/{}/{hex}", &hex[..2]),
            format!("blobs/{}/{hex}/x", &hex[..2]),
            "flows/F/runs/1/run.json".to_owned(),
        ] {
            assert!(!is_content_addressed(&key(&other)), "{other}");
        }
    }

    #[test]
    fn one_of_sixteen_concurrent_claimers_wins() {
        let (double, s) = storage();
        let k = key("flows/F/runs/r1/run.json");
        let winners: Vec<usize> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..16)
                .map(|i| {
                    let s = &s;
                    let k = &k;
                    scope.spawn(move || {
                        s.put_if_absent(k, format!("claimer {i}").as_bytes())
                            .unwrap()
                            .then_some(i)
                    })
                })
                .collect();
            handles
                .into_iter()
                .filter_map(|h| h.join().unwrap())
                .collect()
        });
        assert_eq!(winners.len(), 1, "{winners:?}");
        let content = String::from_utf8(s.get(&k).unwrap()).unwrap();
        assert_eq!(content, format!("claimer {}", winners[0]));
        assert!(s.conditional_writes_honoured().unwrap());
        assert_eq!(all_objects(&*double), ["ds/flows/F/runs/r1/run.json"]);
    }

    #[test]
    fn a_server_that_ignores_conditional_writes_is_detected() {
        let (double, s) = storage_with(Double {
            ignore_create: true,
            ..Double::default()
        });
        assert!(!s.conditional_writes_honoured().unwrap());
        // Claims still refuse an existing object (lookup, then write).
        let k = key("flows/F/runs/r2/run.json");
        assert!(s.put_if_absent(&k, b"first").unwrap());
        assert!(!s.put_if_absent(&k, b"second").unwrap());
        assert_eq!(s.get(&k).unwrap(), b"first");
        assert_eq!(all_objects(&*double), ["ds/flows/F/runs/r2/run.json"]);
    }

    /// Counts in an object, by `update`.
    fn increment(s: &ObjectStorage, k: &Key) -> Result<bool, StorageError> {
        s.update(k, &mut |current| {
            let n: u64 = current
                .and_then(|b| std::str::from_utf8(b).ok()?.parse().ok())
                .unwrap_or(0);
            Some((n + 1).to_string().into_bytes())
        })
    }

    #[test]
    fn an_update_that_loses_to_another_writer_starts_again_from_its_write() {
        let (double, s) = storage();
        let k = key("flows/F/latest/any");
        assert!(increment(&s, &k).unwrap());
        assert_eq!(s.get(&k).unwrap(), b"1");
        // Between the update's read (1) and its write (2), another writer stores 10.
        *double.interfere.lock().unwrap() = Some(Bytes::from_static(b"10"));
        let mut seen = Vec::new();
        s.update(&k, &mut |current| {
            let n: u64 = std::str::from_utf8(current.unwrap())
                .unwrap()
                .parse()
                .unwrap();
            seen.push(n);
            Some((n + 1).to_string().into_bytes())
        })
        .unwrap();
        assert_eq!(seen, [1, 10]);
        assert_eq!(s.get(&k).unwrap(), b"11");
        assert!(s.conditional_updates_honoured().unwrap());
        // The probe left nothing behind.
        assert_eq!(all_objects(&*double), ["ds/flows/F/latest/any"]);
    }

    #[test]
    fn concurrent_updates_are_never_lost() {
        let (_double, s) = storage();
        let k = key("flows/F/runs/r/run.json");
        std::thread::scope(|scope| {
            for _ in 0..8 {
                let (s, k) = (&s, &k);
                scope.spawn(move || {
                    for _ in 0..25 {
                        increment(s, k).unwrap();
                    }
                });
            }
        });
        assert_eq!(s.get(&k).unwrap(), b"200");
    }

    #[test]
    fn an_update_that_changes_nothing_writes_nothing() {
        let (double, s) = storage();
        let k = key("flows/F/runs/r/run.json");
        assert!(!s.update(&k, &mut |_| None).unwrap());
        assert!(!s.exists(&k).unwrap());
        s.put(&k, b"x").unwrap();
        let puts = double.puts.load(Ordering::SeqCst);
        assert!(!s.update(&k, &mut |_| None).unwrap());
        assert_eq!(double.puts.load(Ordering::SeqCst), puts);
    }

    #[test]
    fn a_server_that_ignores_if_match_is_detected() {
        let (double, s) = storage_with(Double {
            ignore_update: true,
            ..Double::default()
        });
        assert!(s.conditional_writes_honoured().unwrap());
        assert!(!s.conditional_updates_honoured().unwrap());
        // Updates still work, as a read then a write.
        let k = key("flows/F/latest/any");
        increment(&s, &k).unwrap();
        increment(&s, &k).unwrap();
        assert_eq!(s.get(&k).unwrap(), b"2");
        assert_eq!(all_objects(&*double), ["ds/flows/F/latest/any"]);
    }

    #[test]
    fn a_server_that_ignores_if_none_match_gets_no_conditional_updates() {
        let (_double, s) = storage_with(Double {
            ignore_create: true,
            ..Double::default()
        });
        assert!(!s.conditional_updates_honoured().unwrap());
    }

    #[test]
    fn a_streamed_object_within_one_part_is_one_put() {
        let (double, s) = storage();
        let k = key("blobs/ab/small");
        let mut pending = s.start_put(&key("blobs")).unwrap();
        pending.write_all(&pattern(1 << 20)).unwrap();
        assert!(all_objects(&*double).is_empty());
        pending.commit(&k).unwrap();
        assert_eq!(s.get(&k).unwrap(), pattern(1 << 20));
        assert_eq!(double.uploads.load(Ordering::SeqCst), 0);
        assert_eq!(double.copies.load(Ordering::SeqCst), 0);
        assert_eq!(all_objects(&*double), ["ds/blobs/ab/small"]);
    }

    #[test]
    fn a_streamed_object_is_invisible_until_committed() {
        let (double, s) = storage();
        let k = key("blobs/cd/large");
        let content = pattern(2 * MIN_PART_SIZE + 12_345);
        let mut pending = s.start_put(&key("blobs")).unwrap();
        // Odd-sized writes, so that parts are cut in the middle of a write.
        for piece in content.chunks(999_983) {
            pending.write_all(piece).unwrap();
        }
        // Two parts went up, to a staging upload: nothing is listed, nothing is an object yet.
        assert!(!s.exists(&k).unwrap());
        assert!(s.list(None).unwrap().is_empty());
        assert_eq!(s.list_children(None).unwrap(), Children::default());
        pending.commit(&k).unwrap();
        assert_eq!(s.get(&k).unwrap(), content);
        let mut streamed = Vec::new();
        s.reader(&k).unwrap().read_to_end(&mut streamed).unwrap();
        assert_eq!(streamed, content);
        assert_eq!(double.uploads.load(Ordering::SeqCst), 1);
        assert_eq!(double.copies.load(Ordering::SeqCst), 1);
        // The staging object was removed.
        assert_eq!(all_objects(&*double), ["ds/blobs/cd/large"]);
    }

    #[test]
    fn many_parts_in_flight_keep_their_order() {
        for in_flight in [1, 2, 5] {
            let (double, s) = storage();
            let s = s.with_parts_in_flight(in_flight);
            let k = key("blobs/77/many");
            let content = pattern(7 * MIN_PART_SIZE + 3);
            let mut pending = s.start_put(&key("blobs")).unwrap();
            for piece in content.chunks(3 << 20) {
                pending.write_all(piece).unwrap();
            }
            pending.commit(&k).unwrap();
            assert!(s.get(&k).unwrap() == content, "{in_flight} in flight");
            assert_eq!(all_objects(&*double), ["ds/blobs/77/many"]);
        }
    }

    #[test]
    fn a_streamed_object_beyond_the_copy_limit_is_copied_through() {
        let (double, s) = storage();
        let s = s.with_copy_limit(MIN_PART_SIZE as u64);
        let k = key("blobs/ef/huge");
        let content = pattern(3 * MIN_PART_SIZE + 7);
        let mut pending = s.start_put(&key("blobs")).unwrap();
        pending.write_all(&content).unwrap();
        pending.commit(&k).unwrap();
        assert_eq!(s.get(&k).unwrap(), content);
        assert_eq!(double.copies.load(Ordering::SeqCst), 0);
        assert_eq!(double.uploads.load(Ordering::SeqCst), 2);
        assert_eq!(all_objects(&*double), ["ds/blobs/ef/huge"]);
    }

    #[test]
    fn commit_if_absent_of_an_existing_object_completes_nothing() {
        let (double, s) = storage();
        let k = key("blobs/aa/same");
        let content = pattern(MIN_PART_SIZE + 1);
        let mut first = s.start_put(&key("blobs")).unwrap();
        first.write_all(&content).unwrap();
        let mut second = s.start_put(&key("blobs")).unwrap();
        second.write_all(&content).unwrap();
        assert!(first.commit_if_absent(&k).unwrap());
        let copies = double.copies.load(Ordering::SeqCst);
        assert!(!second.commit_if_absent(&k).unwrap());
        assert_eq!(double.copies.load(Ordering::SeqCst), copies);
        assert_eq!(all_objects(&*double), ["ds/blobs/aa/same"]);

        // The same within one part: a lookup, no write.
        let mut small = s.start_put(&key("blobs")).unwrap();
        small.write_all(b"x").unwrap();
        let puts = double.puts.load(Ordering::SeqCst);
        assert!(!small.commit_if_absent(&k).unwrap());
        assert_eq!(double.puts.load(Ordering::SeqCst), puts);
    }

    #[test]
    fn an_abandoned_write_leaves_nothing() {
        let (double, s) = storage();
        for len in [10, 2 * MIN_PART_SIZE + 3] {
            let mut pending = s.start_put(&key("blobs")).unwrap();
            pending.write_all(&pattern(len)).unwrap();
            drop(pending);
        }
        assert!(all_objects(&*double).is_empty());
        assert!(s.list(None).unwrap().is_empty());
    }

    #[test]
    fn listings_skip_staging_and_foreign_objects_and_stay_in_their_prefix() {
        let (double, s) = storage();
        s.put(&key("runs/1/start/0/index.json"), b"{}").unwrap();
        s.put(&key("runs/1/start/1/index.json"), b"{}").unwrap();
        s.put(&key("runs/10/meta"), b"").unwrap();
        s.put(&key("runs/2/meta"), b"").unwrap();
        s.put(&key("top"), b"").unwrap();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        for foreign in [
            "ds/.tmp/upload-123",
            "ds/runs/has space",
            "ds/runs/.hidden",
            "other/runs/1/x",
            "dsx/runs/1/x",
        ] {
            runtime
                .block_on(
                    double
                        .inner
                        .put(&ObjectPath::from(foreign), PutPayload::new()),
                )
                .unwrap();
        }
        let _kept_open = {
            let mut pending = s.start_put(&key("runs/1")).unwrap();
            pending.write_all(&pattern(MIN_PART_SIZE + 1)).unwrap();
            pending
        };

        assert_eq!(
            s.list(None).unwrap(),
            [
                key("runs/1/start/0/index.json"),
                key("runs/1/start/1/index.json"),
                key("runs/10/meta"),
                key("runs/2/meta"),
                key("top"),
            ]
        );
        assert_eq!(
            s.list(Some(&key("runs/1"))).unwrap(),
            [
                key("runs/1/start/0/index.json"),
                key("runs/1/start/1/index.json")
            ]
        );
        let runs = s.list_children(Some(&key("runs"))).unwrap();
        assert_eq!(
            runs.prefixes,
            [key("runs/1"), key("runs/10"), key("runs/2")]
        );
        assert!(runs.objects.is_empty());
        let root = s.list_children(None).unwrap();
        assert_eq!(root.prefixes, [key("runs")]);
        assert_eq!(root.objects, [key("top")]);
        assert_eq!(
            s.list_children(Some(&key("nothing/here"))).unwrap(),
            Children::default()
        );
        assert!(s.list(Some(&key("top"))).unwrap().is_empty());
        assert!(!s.exists(&key("runs/1")).unwrap());
    }

    #[test]
    fn stale_staging_objects_are_removed() {
        let (double, s) = storage();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        runtime
            .block_on(
                double
                    .inner
                    .put(&ObjectPath::from("ds/.tmp/upload-old"), PutPayload::new()),
            )
            .unwrap();
        s.put(&key("runs/1/meta"), b"m").unwrap();
        assert_eq!(
            s.remove_stale_staging(Duration::from_secs(3600)).unwrap(),
            0
        );
        std::thread::sleep(Duration::from_millis(20));
        assert_eq!(
            s.remove_stale_staging(Duration::from_millis(10)).unwrap(),
            1
        );
        assert_eq!(all_objects(&*double), ["ds/runs/1/meta"]);
    }

    #[test]
    fn a_reader_streams_in_small_reads() {
        let (_double, s) = storage();
        let k = key("blobs/12/x");
        let content = pattern(3 << 20);
        s.put(&k, &content).unwrap();
        let mut reader = s.reader(&k).unwrap();
        let mut back = Vec::new();
        let mut buf = [0u8; 4093];
        loop {
            let n = reader.read(&mut buf).unwrap();
            if n == 0 {
                break;
            }
            back.extend_from_slice(&buf[..n]);
        }
        assert_eq!(back, content);
    }

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    struct State {
        xs: Vec<u64>,
        #[serde(with = "serde_bytes")]
        big: Vec<u8>,
        note: String,
    }

    #[test]
    fn tasks_round_trip_through_blobs_and_done_markers() {
        let (double, s) = storage();
        let blobs = BlobStore::new(&s);
        // `big` is past the spill threshold: it is streamed through `start_put`, in parts.
        let state = State {
            xs: vec![1, 4, 9],
            big: pattern(crate::datastore::SPILL_THRESHOLD + MIN_PART_SIZE + 1),
            note: "hello".into(),
        };
        let artifacts = blobs.store_state(&state).unwrap();
        let task = key("flows/F/runs/r/steps/start/0");
        write_task(&s, &task, &TaskIndex::new(artifacts.clone())).unwrap();
        assert!(matches!(
            write_task(&s, &task, &TaskIndex::new(artifacts.clone())),
            Err(TaskError::AlreadyComplete { .. })
        ));
        let index = read_task(&s, &task).unwrap().expect("the task is complete");
        let back: State = blobs.load_state(&index.artifacts).unwrap();
        assert_eq!(back, state);
        assert!(double.uploads.load(Ordering::SeqCst) >= 1);

        // Storing the same state again creates no blob.
        let objects = all_objects(&*double);
        let again = blobs.store_state(&state).unwrap();
        assert_eq!(again, artifacts);
        assert_eq!(all_objects(&*double), objects);

        // A damaged blob is reported, not decoded.
        let entry = &index.artifacts[0];
        let mut bytes = s.get(&entry.hash.key()).unwrap();
        bytes[0] ^= 0xff;
        s.put(&entry.hash.key(), &bytes).unwrap();
        match blobs.load_state::<State>(&index.artifacts) {
            Err(LoadError::Blob(e)) => {
                assert!(
                    matches!(e.kind(), BlobErrorKind::HashMismatch { .. }),
                    "{e}"
                );
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn damaged_blobs_are_repaired_by_the_next_store_of_their_value() {
        let (double, s) = storage();
        let blobs = BlobStore::new(&s);
        let state = State {
            xs: vec![1, 4, 9],
            big: pattern(crate::datastore::SPILL_THRESHOLD + MIN_PART_SIZE + 1),
            note: "hello".into(),
        };
        let artifacts = blobs.store_state(&state).unwrap();
        let task = key("flows/F/runs/r/steps/start/0");
        write_task(&s, &task, &TaskIndex::new(artifacts.clone())).unwrap();

        // `xs` emptied, `big` cut short (as a power loss can leave them), `note` damaged in
        // place, which shows only when read.
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let overwrite = |entry: &crate::datastore::ArtifactEntry, bytes: Vec<u8>| {
            runtime
                .block_on(
                    double
                        .inner
                        .put(&s.path_of(&entry.hash.key()), PutPayload::from(bytes)),
                )
                .unwrap();
        };
        overwrite(&artifacts[0], Vec::new());
        let big = s.get(&artifacts[1].hash.key()).unwrap();
        overwrite(&artifacts[1], big[..big.len() / 2].to_vec());
        let mut note = s.get(&artifacts[2].hash.key()).unwrap();
        note[1] ^= 0x20;
        overwrite(&artifacts[2], note);
        assert!(blobs.load_state::<State>(&artifacts).is_err());
        let err = blobs.load_artifact::<String>(&artifacts[2]).unwrap_err();
        assert!(err.to_string().contains("is corrupted"), "{err}");

        // The next run that stores the same values repairs all three.
        assert_eq!(blobs.store_state(&state).unwrap(), artifacts);
        let index = read_task(&s, &task).unwrap().expect("the task is complete");
        let back: State = blobs.load_state(&index.artifacts).unwrap();
        assert_eq!(back, state);
    }

    #[test]
    fn a_read_bounded_by_a_size_refuses_a_larger_object_unread() {
        let (_double, s) = storage();
        let k = key("blobs/12/x");
        s.put(&k, &pattern(1000)).unwrap();
        assert_eq!(s.get_at_most(&k, 1000).unwrap(), pattern(1000));
        let err = s.get_at_most(&k, 999).unwrap_err();
        assert!(
            matches!(
                err,
                StorageError::TooLarge {
                    size: 1000,
                    limit: 999,
                    ..
                }
            ),
            "{err}"
        );
        assert!(
            s.get_at_most(&key("blobs/12/y"), 10)
                .unwrap_err()
                .is_not_found()
        );
    }

    #[test]
    fn works_from_inside_an_async_runtime_and_drops_there() {
        let (_double, s) = storage();
        s.put(&key("a"), b"x").unwrap();
        let outer = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        outer.block_on(async move {
            assert_eq!(s.get(&key("a")).unwrap(), b"x");
            let mut pending = s.start_put(&key("blobs")).unwrap();
            pending.write_all(&pattern(MIN_PART_SIZE + 1)).unwrap();
            pending.commit(&key("b")).unwrap();
            assert_eq!(s.size(&key("b")).unwrap(), Some(MIN_PART_SIZE as u64 + 1));
            // The last clone, with its runtime, is dropped inside this runtime.
            drop(s);
        });
    }

    #[test]
    fn part_sizes_grow_to_reach_large_objects() {
        assert_eq!(part_size_for(DEFAULT_PART_SIZE, 0), DEFAULT_PART_SIZE);
        assert_eq!(part_size_for(DEFAULT_PART_SIZE, 1999), DEFAULT_PART_SIZE);
        assert_eq!(
            part_size_for(DEFAULT_PART_SIZE, 2000),
            2 * DEFAULT_PART_SIZE
        );
        let total: u64 = (0..MAX_PARTS)
            .map(|i| part_size_for(DEFAULT_PART_SIZE, i) as u64)
            .sum();
        assert!(total > 450 << 30, "{total}");
    }

    #[test]
    fn unique_names_differ() {
        let names: std::collections::HashSet<String> = (0..1000).map(|_| unique_name()).collect();
        assert_eq!(names.len(), 1000);
        assert!(names.iter().all(|n| Key::segment(n).is_ok()));
    }
}
