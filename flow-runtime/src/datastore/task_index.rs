//! What makes a task complete: its done marker, which is also its index of artifacts.
//!
//! Under a task's prefix (chosen by the caller, e.g. `runs/<run>/<step>/<task>`) a finished task has
//! one object of its own, `done.json`: the [`TaskIndex`] (format number, then for each artifact its
//! name, blob hash, size, type and encoding), pretty JSON so that it can be read with `cat`. It is
//! written once, atomically and only if absent, after every blob it names is stored.
//!
//! A reader starts from the marker: no marker, no task ([`read_task`] returns `None`), however much
//! else a crashed attempt left behind (blobs, metadata, temporary files). Because the marker can be
//! created only once, two attempts that race on the same task (a requeued job whose first copy is
//! still running) cannot mix: the first marker wins whole, and the loser gets
//! [`TaskError::AlreadyComplete`].
//!
//! Format 1 kept the index in a separate `index-<hash>.json` that the marker pointed to: two
//! files per task instead of one. This version reads format 2 only; a format-1 task is reported as
//! [`TaskError::UnsupportedFormat`].

use std::fmt;

use serde::{Deserialize, Serialize};

use super::blob_hash::BlobHash;
use super::keys::Key;
use super::storage::{MAX_RECORD_SIZE, Storage, StorageError};
use crate::state::FIELD_ENCODING;

/// The version of the index format this code writes, and the only one it reads.
///
/// 2: the done marker is the index. 1 (earlier development versions): the marker named a
/// separate index file.
pub const INDEX_FORMAT: u32 = 2;

/// The name of the done marker, which holds the task's index, under a task's prefix.
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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskIndex {
    /// The format version ([`INDEX_FORMAT`] when written by this code).
    pub format: u32,
    /// The task's artifacts in the order the state serializes its fields.
    pub artifacts: Vec<ArtifactEntry>,
    /// What the caller records about the task beside its artifacts (the run layer's task
    /// metadata), written in the same file so that completing a task is one write.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<serde_json::Value>,
}

impl TaskIndex {
    /// An index of the current format listing `artifacts`.
    pub fn new(artifacts: Vec<ArtifactEntry>) -> Self {
        TaskIndex {
            format: INDEX_FORMAT,
            artifacts,
            metadata: None,
        }
    }

    /// The artifact named `name`, if the task has one.
    pub fn artifact(&self, name: &str) -> Option<&ArtifactEntry> {
        self.artifacts.iter().find(|a| a.name == name)
    }
}

/// Just the format number of a done marker, to tell a marker of another format from a damaged one.
#[derive(Deserialize)]
struct FormatOnly {
    format: u32,
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
    /// The done marker is damaged: not valid JSON of the expected shape, cut short, or far
    /// larger than any done marker ([`MAX_RECORD_SIZE`]). The task's outcome is unknown; running
    /// it again (after removing the marker) is the way out.
    ///
    /// The message says what is wrong and where in the file, never what the file holds: a
    /// datastore may be shared, and its files are not the reader's to echo.
    #[error("task `{task}`: `{object}` is damaged: {problem}")]
    Damaged {
        /// The task's prefix.
        task: Key,
        /// The object at fault.
        object: Key,
        /// What is wrong with it, without its content.
        problem: String,
    },
    /// Written in a format this version cannot read: by a newer version, or by an older one
    /// before the format changed.
    #[error(
        "task `{task}` was written in format {found}; this version reads format {INDEX_FORMAT}"
    )]
    UnsupportedFormat {
        /// The task's prefix.
        task: Key,
        /// The format found.
        found: u32,
    },
}

/// Records `index` as the outcome of the task at prefix `task`: its done marker, written once,
/// atomically and only if absent. The task becomes visible to readers with it.
///
/// The artifacts' blobs must already be stored.
///
/// # Errors
///
/// [`TaskError::AlreadyComplete`] if the task has a done marker (including one written by a
/// concurrent attempt while this one ran); storage failures.
pub fn write_task(storage: &dyn Storage, task: &Key, index: &TaskIndex) -> Result<(), TaskError> {
    let written = storage
        .put_if_absent(&done_key(task), &to_json(index))
        .map_err(|source| TaskError::Storage {
            task: task.clone(),
            source,
        })?;
    if written {
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
/// A marker that is damaged ([`TaskError::Damaged`], naming it) or of another format, storage
/// failures.
pub fn read_task(storage: &dyn Storage, task: &Key) -> Result<Option<TaskIndex>, TaskError> {
    let done_key = done_key(task);
    let bytes = match storage.get_at_most(&done_key, MAX_RECORD_SIZE) {
        Ok(bytes) => bytes,
        Err(e) if e.is_not_found() => return Ok(None),
        Err(StorageError::TooLarge { size, limit, .. }) => {
            return Err(TaskError::Damaged {
                task: task.clone(),
                object: done_key,
                problem: format!("it has {size} bytes, more than the {limit} a done marker may"),
            });
        }
        Err(source) => {
            return Err(TaskError::Storage {
                task: task.clone(),
                source,
            });
        }
    };
    let unsupported = |found| TaskError::UnsupportedFormat {
        task: task.clone(),
        found,
    };
    match serde_json::from_slice::<TaskIndex>(&bytes) {
        Ok(index) if index.format == INDEX_FORMAT => Ok(Some(index)),
        Ok(index) => Err(unsupported(index.format)),
        Err(source) => match serde_json::from_slice::<FormatOnly>(&bytes) {
            // Valid JSON of another format's shape: say which format, not what field is missing.
            Ok(FormatOnly { format }) if format != INDEX_FORMAT => Err(unsupported(format)),
            _ => Err(TaskError::Damaged {
                task: task.clone(),
                object: done_key,
                problem: json_problem(&source),
            }),
        },
    }
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

/// What is wrong with a JSON record, said without any of its content: serde_json's messages
/// quote the values they reject ("invalid type: string \"…\""), and a record's values are not
/// the reader's to echo.
pub(crate) fn json_problem(error: &serde_json::Error) -> String {
    use serde_json::error::Category;
    let what = match error.classify() {
        Category::Eof => "it is cut short",
        Category::Syntax => "it is not valid JSON",
        Category::Data => "it does not have the expected fields and types",
        Category::Io => "it could not be read",
    };
    format!("{what} (line {}, column {})", error.line(), error.column())
}

fn done_key(task: &Key) -> Key {
    task.join(DONE_MARKER)
        .unwrap_or_else(|e| unreachable!("`{DONE_MARKER}` is a valid segment: {e}"))
}

/// Pretty JSON of one of this module's records, which contain nothing that can fail to
/// serialize (string keys, no non-finite floats).
fn to_json<T: Serialize>(value: &T) -> Vec<u8> {
    let mut bytes = serde_json::to_vec_pretty(value)
        .unwrap_or_else(|e| unreachable!("task records always serialize: {e}"));
    bytes.push(b'\n');
    bytes
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

    /// Every file under the task's directory, temporary ones included.
    fn files_of_task(storage: &LocalStorage) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(storage.path_of(&task()))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
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

        // A crash before the marker: whatever the attempt left (its metadata, a half-written
        // temporary file), the task is not there.
        storage
            .put(&task().join("meta.json").unwrap(), b"{}")
            .unwrap();
        fs::write(
            storage.path_of(&task()).join(".tmpCRASH"),
            &to_json(&index)[..20],
        )
        .unwrap();
        assert_eq!(read_task(&storage, &task()).unwrap(), None);
        assert!(!is_task_done(&storage, &task()).unwrap());

        // The retry completes it.
        write_task(&storage, &task(), &index).unwrap();
        assert_eq!(read_task(&storage, &task()).unwrap(), Some(index));
        assert!(is_task_done(&storage, &task()).unwrap());
        let children = storage.list_children(Some(&task())).unwrap();
        assert_eq!(
            children.objects,
            [done_key(&task()), task().join("meta.json").unwrap()]
        );
    }

    #[test]
    fn completing_a_task_writes_one_file() {
        let (_dir, storage) = store();
        let index = index_for(&storage, &Squares::default());
        write_task(&storage, &task(), &index).unwrap();
        assert_eq!(files_of_task(&storage), [DONE_MARKER]);
        // A second attempt creates nothing, not even a temporary file.
        let err = write_task(&storage, &task(), &index).unwrap_err();
        assert!(matches!(err, TaskError::AlreadyComplete { .. }), "{err}");
        assert_eq!(files_of_task(&storage), [DONE_MARKER]);
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
    fn the_done_marker_is_the_index_in_readable_json() {
        let (_dir, storage) = store();
        let index = index_for(&storage, &Squares::default());
        write_task(&storage, &task(), &index).unwrap();
        let text = String::from_utf8(storage.get(&done_key(&task())).unwrap()).unwrap();
        assert!(text.starts_with("{\n  \"format\": 2,\n"), "{text}");
        let json: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(json["format"], 2);
        assert_eq!(json["artifacts"][0]["name"], "xs");
        assert_eq!(json["artifacts"][0]["encoding"], "msgpack");
        assert_eq!(json["artifacts"][0]["type"], "alloc::vec::Vec<u64>");
        assert_eq!(
            json["artifacts"][0]["hash"].as_str().unwrap(),
            index.artifacts[0].hash.to_string()
        );
    }

    #[test]
    fn damaged_markers_are_errors_not_absences() {
        let (_dir, storage) = store();
        let index = index_for(&storage, &Squares::default());
        write_task(&storage, &task(), &index).unwrap();
        let path = storage.path_of(&done_key(&task()));
        let original = fs::read(&path).unwrap();
        let expect_malformed = |storage: &LocalStorage| {
            let err = read_task(storage, &task()).unwrap_err();
            assert!(matches!(err, TaskError::Damaged { .. }), "{err}");
            assert!(
                err.to_string()
                    .starts_with("task `runs/1/start/0`: `runs/1/start/0/done.json` is damaged"),
                "{err}"
            );
        };

        // Cut short, anywhere.
        for len in [0, 1, original.len() / 2, original.len() - 3] {
            fs::write(&path, &original[..len]).unwrap();
            expect_malformed(&storage);
        }
        // Not JSON, or JSON of the wrong shape.
        for bad in [
            &b"{ not json"[..],
            br#"{"format": 2}"#,
            br#"{"format": 2, "artifacts": [{"name": "xs"}]}"#,
            br#"{"format": "two", "artifacts": []}"#,
            b"[]",
        ] {
            fs::write(&path, bad).unwrap();
            expect_malformed(&storage);
        }
        fs::write(&path, &original).unwrap();
        assert_eq!(read_task(&storage, &task()).unwrap(), Some(index));
    }

    /// Every message in `error`'s chain of sources, outermost first.
    fn whole_message(error: &dyn std::error::Error) -> String {
        let mut message = error.to_string();
        let mut source = error.source();
        while let Some(inner) = source {
            message.push_str(&format!(": {inner}"));
            source = inner.source();
        }
        message
    }

    #[test]
    fn a_damaged_marker_is_reported_without_echoing_its_content() {
        let (_dir, storage) = store();
        let key = done_key(&task());
        let secret = "hunter2-SECRET-TOKEN";
        for planted in [
            format!(r#"{{"format": "{secret}", "artifacts": []}}"#),
            format!(r#"{{"format": 2, "artifacts": [{{"name": "xs", "hash": "{secret}"}}]}}"#),
            format!(
                r#"{{"format": 2, "artifacts": [{{"name": "xs", "hash": "{}", "size": 1, "type": "t", "encoding": ["{secret}"]}}]}}"#,
                BlobHash::of(b"x")
            ),
            format!(r#"{{"format": 2, "artifacts": {{"{secret}": 1}}}}"#),
            format!("{secret}\n"),
        ] {
            storage.put(&key, planted.as_bytes()).unwrap();
            let err = read_task(&storage, &task()).unwrap_err();
            assert!(matches!(err, TaskError::Damaged { .. }), "{err}");
            let message = whole_message(&err);
            assert!(!message.contains("SECRET"), "{message}");
            assert!(message.contains("runs/1/start/0/done.json"), "{message}");
        }
    }

    #[test]
    fn a_huge_file_in_place_of_a_done_marker_is_damaged_and_not_read() {
        let (_dir, storage) = store();
        let key = done_key(&task());
        storage.put(&key, b"{}").unwrap();
        // Sparse: 1 GiB that costs nothing on disk, and must cost nothing in memory.
        fs::File::options()
            .write(true)
            .open(storage.path_of(&key))
            .unwrap()
            .set_len(1 << 30)
            .unwrap();
        let err = read_task(&storage, &task()).unwrap_err();
        assert!(matches!(err, TaskError::Damaged { .. }), "{err}");
        let message = err.to_string();
        assert!(
            message.contains("runs/1/start/0/done.json") && message.contains("1073741824 bytes"),
            "{message}"
        );
    }

    #[test]
    fn other_formats_are_refused() {
        let (_dir, storage) = store();
        let key = done_key(&task());
        // A newer format, whatever its shape.
        storage
            .put(&key, br#"{"format": 3, "objects": {"xs": "elsewhere"}}"#)
            .unwrap();
        let err = read_task(&storage, &task()).unwrap_err();
        assert!(
            matches!(err, TaskError::UnsupportedFormat { found: 3, .. }),
            "{err}"
        );
        assert_eq!(
            err.to_string(),
            "task `runs/1/start/0` was written in format 3; this version reads format 2"
        );
        // A newer format that happens to parse as this one.
        let mut index = TaskIndex::new(Vec::new());
        index.format = 4;
        storage.put(&key, &to_json(&index)).unwrap();
        let err = read_task(&storage, &task()).unwrap_err();
        assert!(
            matches!(err, TaskError::UnsupportedFormat { found: 4, .. }),
            "{err}"
        );
        // A format-1 marker, which pointed to a separate index file.
        let marker = format!(
            r#"{{"format": 1, "index": "{}", "index_size": 2}}"#,
            BlobHash::of(b"{}")
        );
        storage.put(&key, marker.as_bytes()).unwrap();
        let err = read_task(&storage, &task()).unwrap_err();
        assert!(
            matches!(err, TaskError::UnsupportedFormat { found: 1, .. }),
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
