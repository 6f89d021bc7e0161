//! Where runs are kept: a narrow storage interface, its local-directory implementation, the
//! content-addressed blob store for artifacts and the per-task index that makes a task complete.
//!
//! Layering, bottom up (each file imports only from the ones before it):
//!
//! - [`Key`] (`keys.rs`): a validated relative path; nothing built from a run id or step name can
//!   leave the datastore. [`DatastoreLocation`] (`location.rs`): where a datastore is, a path or
//!   `s3://bucket/prefix`. [`BlobHash`] (`blob_hash.rs`): a blob's name, and its key.
//! - [`Storage`] (`storage.rs`): the narrow interface, whose documentation is the contract every
//!   backend keeps: put (atomic), put-if-absent, streamed put committed under a key known at the
//!   end, get (whole, bounded or streamed), size, list, list children, delete, set aside, update.
//!   One conformance suite (`conformance.rs`) checks that contract.
//! - The backends, each a folder split by concern, each running the conformance suite:
//!   [`LocalStorage`] (`local/`) on a directory, `ObjectStorage` (`s3/`, cargo feature `s3`) on
//!   S3-compatible object storage. `unique_name.rs` names their temporary, staging and probe
//!   data.
//! - [`write_task`] / [`read_task`] (`task_index.rs`): a task's done marker, which is its
//!   [`TaskIndex`] (artifact name → blob hash, size, type, encoding), written once after the
//!   blobs; a task without the marker does not exist.
//! - [`BlobStore`] (`blobs.rs`): artifacts stored once per datastore under the BLAKE3 hash of
//!   their encoding, encoded in memory (streamed past [`SPILL_THRESHOLD`]) and verified on read;
//!   storing an unchanged artifact again costs one lookup and creates no file.
//!
//! The datastore imports nothing from the layers above it (runs, client, executor, CLI): only
//! `state`, for the encoding of artifacts.
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

mod blob_hash;
mod blob_reading;
mod blobs;
#[doc(hidden)]
pub mod conformance;
pub mod freshness;
mod keys;
mod known_blobs;
mod local;
mod location;
#[cfg(feature = "s3")]
mod s3;
mod storage;
mod task_index;
pub(crate) mod unique_name;

pub use blob_hash::{BLOB_PREFIX, BlobHash, ParseBlobHashError};
pub use blobs::{
    BlobError, BlobErrorKind, BlobFieldSink, BlobStore, BlobWriteError, LoadError, SPILL_THRESHOLD,
    StoredBlob, WRITE_BUFFER_SIZE,
};
pub use keys::{Key, KeyError, KeyProblem, MAX_SEGMENT_LEN, validate_segment};
pub use known_blobs::KnownBlobs;
pub use local::LocalStorage;
pub use location::{DatastoreLocation, LocationError, S3Location};
#[cfg(feature = "s3")]
pub use s3::{
    DEFAULT_PART_SIZE, DEFAULT_PARTS_IN_FLIGHT, MIN_PART_SIZE, ObjectStorage, RUNTIME_THREADS,
    SERVER_COPY_LIMIT,
};
pub use storage::{
    Children, MAX_RECORD_SIZE, ObjectChange, ObjectStat, PendingObject, Storage, StorageError,
};
pub(crate) use task_index::json_problem;
pub use task_index::{
    ArtifactEntry, DONE_MARKER, Encoding, INDEX_FORMAT, TaskError, TaskIndex, is_task_done,
    read_task, write_task,
};
