//! What makes a task complete: its index of artifacts, and the done marker written after it.
//!
//! Under a task's prefix (chosen by the caller, e.g. `runs/<run>/<step>/<task>`) a finished task has
//! two objects:
//!
//! - `index-<blake3 of the index>.json`: the [`TaskIndex`], JSON so that it can be read with `cat`,
//!   named by its own hash so that it is never overwritten;
//! - `done.json`: the done marker, created last and only if absent, naming the index by its hash.
//!
//! A reader starts from the marker: no marker, no task ([`read_task`] returns `None`), however much
//! else a crashed attempt left behind. Because the index is named by its content and the marker can
//! be created only once, two attempts that race on the same task (a requeued job whose first copy
//! is still running) cannot mix: the first marker wins, the loser gets
//! [`TaskError::AlreadyComplete`], and the marker always points at the index it was written for.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::blobs::BlobHash;
use super::keys::Key;
use super::storage::{Storage, StorageError};
use crate::state::FIELD_ENCODING;

/// The version of the index format this code writes; it reads this one and older ones.
pub const INDEX_FORMAT: u32 = 1;

/// The name of the done marker under a task's prefix.
pub const DONE_MARKER: &str = "done.json";

/// One artifact of a task: a top-level field of the flow's state after the task ran.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArtifactEntry {
    /// The field's serialized name.
    pub name: String,
    /// The blob holding the field's encoding.
    pub hash: BlobHash,
    /// The blob's size in bytes; checked when reading, so truncation is reported as such.
    pub size: u64,
    /// The Rust type of the field when it was written (`std::any::type_name`), for people and
    /// tools; not used to decode.
    #[serde(rename = "type")]
    pub type_name: String,
    /// How the blob encodes the value.
    pub encoding: Encoding,
}

/// How an artifact's blob encodes its value.
///
/// Recorded per artifact so that a later version can add encodings (compressed, a framework's
/// native format) and still read what older versions wrote.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "String", into = "String")]
pub enum Encoding {
    /// MessagePack with named struct fields, as written by
    /// [`state::encode_field`](crate::state::encode_field).
    MsgPack,
    /// An encoding this version does not know; reading such an artifact is an error.
    Other(String),
}

impl fmt::Display for Encoding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Encoding::MsgPack => f.write_str(FIELD_ENCODING),
            Encoding::Other(name) => f.write_str(name),
        }
    }
}

impl From<String> for Encoding {
    fn from(name: String) -> Self {
        if name == FIELD_ENCODING {
            Encoding::MsgPack
        } else {
            Encoding::Other(name)
        }
    }
}

impl From<Encoding> for String {
    fn from(encoding: Encoding) -> Self {
        match encoding {
            Encoding::MsgPack => FIELD_ENCODING.to_owned(),
            Encoding::Other(name) => name,
        }
    }
}

/// The record of a finished task: which blob holds each artifact.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskIndex {
    /// The format version ([`INDEX_FORMAT`] when written by this code).
    pub format: u32,
    /// The task's artifacts in the order the state serializes its fields.
    pub artifacts: Vec<ArtifactEntry>,
}

impl TaskIndex {
    /// An index of the current format listing `artifacts`.
    pub fn new(artifacts: Vec<ArtifactEntry>) -> Self {
        TaskIndex {
            format: INDEX_FORMAT,
            artifacts,
        }
    }

    /// The artifact named `name`, if the task has one.
    pub fn artifact(&self, name: &str) -> Option<&ArtifactEntry> {
        self.artifacts.iter().find(|a| a.name == name)
    }
}

/// The done marker's content: which index the task completed with.
#[derive(Debug, Serialize, Deserialize)]
struct DoneMarker {
    format: u32,
    index: BlobHash,
    index_size: u64,
}

/// Why a task's record could not be written or read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TaskError {
    /// The task already has a done marker; a finished task is never rewritten.
    #[error("task `{task}` is already complete; a finished task is never rewritten")]
    AlreadyComplete {
        /// The task's prefix.
        task: Key,
    },
    /// The storage failed.
    #[error("task `{task}`: {source}")]
    Storage {
        /// The task's prefix.
        task: Key,
        /// The storage's error.
        #[source]
        source: StorageError,
    },
    /// The done marker or the index is not valid JSON of the expected shape.
    #[error("task `{task}`: `{object}` is not valid: {source}")]
    Malformed {
        /// The task's prefix.
        task: Key,
        /// The object at fault.
        object: Key,
        /// The parser's error.
        #[source]
        source: serde_json::Error,
    },
    /// The done marker names an index that does not exist.
    #[error("task `{task}`: its done marker names index `{index}`, which is missing")]
    IndexMissing {
        /// The task's prefix.
        task: Key,
        /// The missing index.
        index: Key,
    },
    /// The index does not hash to what the done marker recorded: it was damaged.
    #[error("task `{task}`: index `{index}` is corrupted (its content hashes to {actual})")]
    IndexCorrupted {
        /// The task's prefix.
        task: Key,
        /// The damaged index.
        index: Key,
        /// The hash of its content.
        actual: BlobHash,
    },
    /// Written by a newer version in a format this one cannot read.
    #[error(
        "task `{task}` was written in format {found}; this version reads formats up to {INDEX_FORMAT}"
    )]
    UnsupportedFormat {
        /// The task's prefix.
        task: Key,
        /// The format found.
        found: u32,
    },
}

/// Records `index` as the outcome of the task at prefix `task`: the index first, then the done
/// marker; each is atomic, and the task becomes visible to readers only with the marker.
///
/// The artifacts' blobs must already be stored.
///
/// # Errors
///
/// [`TaskError::AlreadyComplete`] if the task has a done marker (including one written by a
/// concurrent attempt while this one ran); storage failures.
pub fn write_task(storage: &dyn Storage, task: &Key, index: &TaskIndex) -> Result<(), TaskError> {
    let storage_error = |source| TaskError::Storage {
        task: task.clone(),
        source,
    };
    let done_key = done_key(task);
    if storage.exists(&done_key).map_err(storage_error)? {
        return Err(TaskError::AlreadyComplete { task: task.clone() });
    }
    let index_bytes = to_json(index);
    let index_hash = BlobHash::of(&index_bytes);
    // Named by its hash: an identical index from an earlier, crashed attempt is simply reused.
    storage
        .put_if_absent(&index_key(task, &index_hash), &index_bytes)
        .map_err(storage_error)?;
    let marker = to_json(&DoneMarker {
        format: INDEX_FORMAT,
        index: index_hash,
        index_size: index_bytes.len() as u64,
    });
    if storage
        .put_if_absent(&done_key, &marker)
        .map_err(storage_error)?
    {
        Ok(())
    } else {
        Err(TaskError::AlreadyComplete { task: task.clone() })
    }
}

/// Reads the index of the task at prefix `task`, or `None` if the task is not complete (no done
/// marker), whatever else is there.
///
/// # Errors
///
/// A marker or index that is malformed, missing or damaged, a format too new, storage failures.
pub fn read_task(storage: &dyn Storage, task: &Key) -> Result<Option<TaskIndex>, TaskError> {
    let storage_error = |source| TaskError::Storage {
        task: task.clone(),
        source,
    };
    let done_key = done_key(task);
    let marker_bytes = match storage.get(&done_key) {
        Ok(bytes) => bytes,
        Err(e) if e.is_not_found() => return Ok(None),
        Err(e) => return Err(storage_error(e)),
    };
    let marker: DoneMarker = from_json(task, &done_key, &marker_bytes)?;
    check_format(task, marker.format)?;

    let index_key = index_key(task, &marker.index);
    let index_bytes = match storage.get(&index_key) {
        Ok(bytes) => bytes,
        Err(e) if e.is_not_found() => {
            return Err(TaskError::IndexMissing {
                task: task.clone(),
                index: index_key,
            });
        }
        Err(e) => return Err(storage_error(e)),
    };
    let actual = BlobHash::of(&index_bytes);
    if actual != marker.index || index_bytes.len() as u64 != marker.index_size {
        return Err(TaskError::IndexCorrupted {
            task: task.clone(),
            index: index_key,
            actual,
        });
    }
    let index: TaskIndex = from_json(task, &index_key, &index_bytes)?;
    check_format(task, index.format)?;
    Ok(Some(index))
}

/// Whether the task at prefix `task` is complete: the cheap check `resume` needs for every task.
///
/// # Errors
///
/// Storage failures.
pub fn is_task_done(storage: &dyn Storage, task: &Key) -> Result<bool, TaskError> {
    storage
        .exists(&done_key(task))
        .map_err(|source| TaskError::Storage {
            task: task.clone(),
            source,
        })
}

fn done_key(task: &Key) -> Key {
    task.join(DONE_MARKER)
        .unwrap_or_else(|e| unreachable!("`{DONE_MARKER}` is a valid segment: {e}"))
}

fn index_key(task: &Key, hash: &BlobHash) -> Key {
    task.join(&format!("index-{hash}.json"))
        .unwrap_or_else(|e| unreachable!("an index name is a valid segment: {e}"))
}

/// Pretty JSON of one of this module's records, which contain nothing that can fail to
/// serialize (string keys, no non-finite floats).
fn to_json<T: Serialize>(value: &T) -> Vec<u8> {
    let mut bytes = serde_json::to_vec_pretty(value)
        .unwrap_or_else(|e| unreachable!("task records always serialize: {e}"));
    bytes.push(b'\n');
    bytes
}

fn from_json<T: serde::de::DeserializeOwned>(
    task: &Key,
    object: &Key,
    bytes: &[u8],
) -> Result<T, TaskError> {
    serde_json::from_slice(bytes).map_err(|source| TaskError::Malformed {
        task: task.clone(),
        object: object.clone(),
        source,
    })
}

fn check_format(task: &Key, found: u32) -> Result<(), TaskError> {
    if found > INDEX_FORMAT {
        return Err(TaskError::UnsupportedFormat {
            task: task.clone(),
            found,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::fs;

    use super::*;
    use crate::datastore::blobs::BlobStore;
    use crate::datastore::local::LocalStorage;

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
    struct Squares {
        xs: Vec<u64>,
        square: u64,
        note: String,
    }

    fn store() -> (tempfile::TempDir, LocalStorage) {
        let dir = tempfile::tempdir().unwrap();
        let storage = LocalStorage::open(dir.path()).unwrap().with_sync(false);
        (dir, storage)
    }

    fn task() -> Key {
        Key::parse("runs/1/start/0").unwrap()
    }

    fn index_for(storage: &LocalStorage, state: &Squares) -> TaskIndex {
        TaskIndex::new(BlobStore::new(storage).store_state(state).unwrap())
    }

    #[test]
    fn a_task_is_visible_only_after_its_done_marker() {
        let (_dir, storage) = store();
        let index = index_for(
            &storage,
            &Squares {
                xs: vec![1, 2],
                ..Default::default()
            },
        );
        assert_eq!(read_task(&storage, &task()).unwrap(), None);

        // A crash between the index and the marker: the index is there, the task is not.
        let bytes = to_json(&index);
        storage
            .put(&index_key(&task(), &BlobHash::of(&bytes)), &bytes)
            .unwrap();
        assert_eq!(read_task(&storage, &task()).unwrap(), None);
        assert!(!is_task_done(&storage, &task()).unwrap());

        // The retry completes it, reusing the identical index.
        write_task(&storage, &task(), &index).unwrap();
        assert_eq!(read_task(&storage, &task()).unwrap(), Some(index));
        assert!(is_task_done(&storage, &task()).unwrap());
        let children = storage.list_children(Some(&task())).unwrap();
        assert_eq!(children.objects.len(), 2, "{children:?}");
    }

    #[test]
    fn a_finished_task_is_never_rewritten() {
        let (_dir, storage) = store();
        let first = index_for(&storage, &Squares::default());
        let second = index_for(
            &storage,
            &Squares {
                square: 4,
                ..Default::default()
            },
        );
        write_task(&storage, &task(), &first).unwrap();
        let err = write_task(&storage, &task(), &second).unwrap_err();
        assert!(matches!(err, TaskError::AlreadyComplete { .. }), "{err}");
        assert_eq!(read_task(&storage, &task()).unwrap(), Some(first));
    }

    #[test]
    fn racing_attempts_do_not_mix() {
        let (_dir, storage) = store();
        let indexes: Vec<_> = (0..6)
            .map(|i| {
                index_for(
                    &storage,
                    &Squares {
                        square: i,
                        ..Default::default()
                    },
                )
            })
            .collect();
        let results: Vec<_> = std::thread::scope(|scope| {
            let handles: Vec<_> = indexes
                .iter()
                .map(|index| {
                    let storage = &storage;
                    scope.spawn(move || write_task(storage, &task(), index).is_ok())
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert_eq!(results.iter().filter(|ok| **ok).count(), 1);
        let winner = results.iter().position(|ok| *ok).unwrap();
        assert_eq!(
            read_task(&storage, &task()).unwrap().as_ref(),
            Some(&indexes[winner])
        );
    }

    #[test]
    fn state_roundtrips_through_a_task() {
        let (_dir, storage) = store();
        let state = Squares {
            xs: (1..=10).collect(),
            square: 81,
            note: "l".into(),
        };
        write_task(&storage, &task(), &index_for(&storage, &state)).unwrap();

        let index = read_task(&storage, &task()).unwrap().unwrap();
        let blobs = BlobStore::new(&storage);
        let back: Squares = blobs.load_state(&index.artifacts).unwrap();
        assert_eq!(back, state);
        let square: u64 = blobs
            .load_artifact(index.artifact("square").unwrap())
            .unwrap();
        assert_eq!(square, 81);
        let entry = index.artifact("xs").unwrap();
        assert_eq!(entry.type_name, "alloc::vec::Vec<u64>");
        assert_eq!(entry.encoding, Encoding::MsgPack);
    }

    #[test]
    fn the_index_is_readable_json() {
        let (_dir, storage) = store();
        let index = index_for(&storage, &Squares::default());
        write_task(&storage, &task(), &index).unwrap();
        let objects = storage.list_children(Some(&task())).unwrap().objects;
        let index_key = objects
            .iter()
            .find(|k| k.name().starts_with("index-"))
            .unwrap();
        let json: serde_json::Value =
            serde_json::from_slice(&storage.get(index_key).unwrap()).unwrap();
        assert_eq!(json["format"], 1);
        assert_eq!(json["artifacts"][0]["name"], "xs");
        assert_eq!(json["artifacts"][0]["encoding"], "msgpack");
        assert_eq!(json["artifacts"][0]["type"], "alloc::vec::Vec<u64>");
        assert_eq!(
            json["artifacts"][0]["hash"].as_str().unwrap(),
            index.artifacts[0].hash.to_string()
        );
    }

    #[test]
    fn damaged_records_are_errors_not_absences() {
        let (_dir, storage) = store();
        let index = index_for(&storage, &Squares::default());
        write_task(&storage, &task(), &index).unwrap();
        let objects = storage.list_children(Some(&task())).unwrap().objects;
        let index_key = objects
            .iter()
            .find(|k| k.name().starts_with("index-"))
            .unwrap()
            .clone();
        let index_path = storage.path_of(&index_key);
        let original = fs::read(&index_path).unwrap();

        let mut flipped = original.clone();
        flipped[10] ^= 0x20;
        fs::write(&index_path, &flipped).unwrap();
        let err = read_task(&storage, &task()).unwrap_err();
        assert!(matches!(err, TaskError::IndexCorrupted { .. }), "{err}");

        fs::remove_file(&index_path).unwrap();
        let err = read_task(&storage, &task()).unwrap_err();
        assert!(matches!(err, TaskError::IndexMissing { .. }), "{err}");

        fs::write(&index_path, &original).unwrap();
        storage.put(&done_key(&task()), b"{ not json").unwrap();
        let err = read_task(&storage, &task()).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("task `runs/1/start/0`: `runs/1/start/0/done.json` is not valid"),
            "{err}"
        );
    }

    #[test]
    fn newer_formats_are_refused() {
        let (_dir, storage) = store();
        let marker = to_json(&DoneMarker {
            format: INDEX_FORMAT + 1,
            index: BlobHash::of(b""),
            index_size: 0,
        });
        storage.put(&done_key(&task()), &marker).unwrap();
        let err = read_task(&storage, &task()).unwrap_err();
        assert!(
            matches!(err, TaskError::UnsupportedFormat { found: 2, .. }),
            "{err}"
        );
    }

    #[test]
    fn encodings_roundtrip_as_strings() {
        for (encoding, text) in [
            (Encoding::MsgPack, "\"msgpack\""),
            (Encoding::Other("cbor".into()), "\"cbor\""),
        ] {
            assert_eq!(serde_json::to_string(&encoding).unwrap(), text);
            assert_eq!(serde_json::from_str::<Encoding>(text).unwrap(), encoding);
        }
    }
}
