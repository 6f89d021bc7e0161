//! Where runs are kept: a narrow storage interface, its local-directory implementation, the
//! content-addressed blob store for artifacts and the per-task index that makes a task complete.
//!
//! Layering, bottom up:
//!
//! - [`Key`]: a validated relative path; nothing built from a run id or step name can leave the
//!   datastore.
//! - [`Storage`]: put (atomic), put-if-absent, streamed put committed under a key known at the end,
//!   get, streamed get, size, list, list children, delete. [`LocalStorage`] implements it on a
//!   directory; `ObjectStorage` (cargo feature `s3`) on S3-compatible object storage. Which one
//!   a datastore uses is its [`DatastoreLocation`]: a path, or `s3://bucket/prefix`.
//! - [`BlobStore`]: artifacts stored once per datastore under the BLAKE3 hash of their encoding,
//!   encoded in memory (streamed past [`SPILL_THRESHOLD`]) and verified on read; storing an
//!   unchanged artifact again costs one lookup and creates no file.
//! - [`write_task`] / [`read_task`]: a task's done marker, which is its [`TaskIndex`] (artifact
//!   name → blob, size, type, encoding), written once after the blobs; a task without the marker
//!   does not exist.
//!
//! On disk (local), with the task prefix chosen by the caller:
//!
//! ```text
//! <root>/
//!   blobs/<2 hex>/<64 hex>                 one artifact encoding, named by its BLAKE3 hash
//!   <task prefix>/done.json                the task's index {"format": 2, "artifacts": […]},
//!                                          created last and only once: the task is complete
//!   …/.tmp*                                temporary files of writes in progress (or crashed)
//! ```
//!
//! Storing a task's state and reading it back:
//!
//! ```
//! use flow_runtime::datastore::{BlobStore, Key, LocalStorage, read_task, write_task, TaskIndex};
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Debug, PartialEq, Serialize, Deserialize)]
//! struct Squares { xs: Vec<u64>, total: u64 }
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let dir = tempfile::tempdir()?;
//! let storage = LocalStorage::open(dir.path())?;
//! let blobs = BlobStore::new(&storage);
//! let task = Key::parse("runs/1/start")?.join("0")?;
//!
//! let state = Squares { xs: vec![1, 4, 9], total: 14 };
//! let artifacts = blobs.store_state(&state)?;
//! write_task(&storage, &task, &TaskIndex::new(artifacts))?;
//!
//! let index = read_task(&storage, &task)?.expect("the task is complete");
//! let back: Squares = blobs.load_state(&index.artifacts)?;
//! assert_eq!(back, state);
//! # Ok(())
//! # }
//! ```

mod blobs;
mod direct_write;
mod keys;
mod local;
mod location;
#[cfg(feature = "s3")]
mod object_store;
mod storage;
mod task_index;

#[cfg(feature = "s3")]
pub use self::object_store::{
    DEFAULT_PART_SIZE, DEFAULT_PARTS_IN_FLIGHT, MIN_PART_SIZE, ObjectStorage, RUNTIME_THREADS,
    SERVER_COPY_LIMIT,
};
pub use blobs::{
    BLOB_PREFIX, BlobError, BlobErrorKind, BlobFieldSink, BlobHash, BlobStore, BlobWriteError,
    LoadError, ParseBlobHashError, SPILL_THRESHOLD, StoredBlob, WRITE_BUFFER_SIZE,
};
pub use keys::{Key, KeyError, KeyProblem, MAX_SEGMENT_LEN, validate_segment};
pub use local::LocalStorage;
pub use location::{DatastoreLocation, LocationError, S3Location};
pub use storage::{Children, MAX_RECORD_SIZE, ObjectChange, PendingObject, Storage, StorageError};
pub(crate) use task_index::json_problem;
pub use task_index::{
    ArtifactEntry, DONE_MARKER, Encoding, INDEX_FORMAT, TaskError, TaskIndex, is_task_done,
    read_task, write_task,
};
