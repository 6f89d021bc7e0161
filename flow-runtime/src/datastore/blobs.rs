//! Content-addressed blobs: every artifact's encoding, stored once per datastore.
//!
//! A blob's key is `blobs/<first two hex digits>/<64 hex digits>`, the BLAKE3 hash of its bytes.
//! A field that did not change between tasks or runs encodes to the same bytes, so it maps to the
//! same blob and costs no new space. The two-digit fan-out keeps directories small on a local disk
//! and spreads keys for an object store.
//!
//! Writing is streamed: the value is encoded through a 1 MiB buffer into a writer that hashes and
//! writes to a pending object at the same time, so even a 1 GiB field is never held twice in memory.
//! Once complete, the pending object is committed under its hash unless that blob already exists.
//! Reading checks the hash of what was read, so a damaged or truncated blob is reported, never
//! decoded.

use std::fmt;
use std::io::{self, BufWriter, Write};
use std::str::FromStr;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::keys::Key;
use super::storage::{PendingObject, Storage, StorageError};
use super::task_index::{ArtifactEntry, Encoding};
use crate::state::{self, DecodeError, FieldSink, SplitError};

/// The prefix all blobs live under.
pub const BLOB_PREFIX: &str = "blobs";

/// Size of the buffer between the encoder and the hashing writer: large enough that hashing
/// (which vectorises across 1 KiB chunks) and file writes work on big slices, small enough not to
/// matter next to the values being written.
pub const WRITE_BUFFER_SIZE: usize = 1 << 20;

/// The BLAKE3 hash of a blob's bytes, which is also its name.
///
/// Shown and serialized as 64 lowercase hex digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct BlobHash(blake3::Hash);

impl BlobHash {
    /// The hash of `bytes`.
    pub fn of(bytes: &[u8]) -> Self {
        BlobHash(blake3::hash(bytes))
    }

    /// The 32 bytes of the hash.
    pub fn as_bytes(&self) -> &[u8; 32] {
        self.0.as_bytes()
    }

    /// The key of the blob with this hash: `blobs/<first two hex digits>/<hex>`.
    pub fn key(&self) -> Key {
        let hex = self.0.to_hex();
        let path = format!("{BLOB_PREFIX}/{}/{}", &hex[..2], hex);
        // Hex digits are always valid segment characters.
        Key::parse(&path).unwrap_or_else(|e| unreachable!("a blob key is always valid: {e}"))
    }
}

impl fmt::Display for BlobHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.to_hex())
    }
}

impl fmt::Debug for BlobHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BlobHash({})", self.0.to_hex())
    }
}

impl FromStr for BlobHash {
    type Err = ParseBlobHashError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        blake3::Hash::from_hex(s)
            .map(BlobHash)
            .map_err(|_| ParseBlobHashError {
                input: s.chars().take(80).collect(),
            })
    }
}

impl Serialize for BlobHash {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0.to_hex())
    }
}

impl<'de> Deserialize<'de> for BlobHash {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// A string that is not 64 hex digits.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{input:?} is not a blob hash (64 hex digits)")]
pub struct ParseBlobHashError {
    input: String,
}

/// What storing a blob produced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoredBlob {
    /// The blob's hash, i.e. its name.
    pub hash: BlobHash,
    /// Its size in bytes.
    pub size: u64,
    /// `false` when an identical blob already existed and nothing new was stored.
    pub newly_stored: bool,
}

/// Why a blob could not be written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BlobWriteError {
    /// The value could not be encoded; this includes I/O errors met while streaming it out.
    #[error("could not encode the value: {0}")]
    Encode(#[source] rmp_serde::encode::Error),
    /// Writing the last buffered bytes of the encoding failed.
    #[error("could not write the blob: {0}")]
    Write(#[source] io::Error),
    /// The storage failed to create or commit the blob.
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// Why a blob could not be read, with its hash and where it was needed.
///
/// The context says what the blob was for ("artifact `model`"); callers that know more (run, step,
/// task) add it with [`BlobError::with_context`], so the final message points at the exact
/// artifact of the exact task.
#[derive(Debug)]
pub struct BlobError {
    hash: BlobHash,
    context: Option<String>,
    kind: BlobErrorKind,
}

/// What went wrong with a blob.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BlobErrorKind {
    /// No blob with this hash exists: the datastore is incomplete (a garbage collection or a
    /// partial copy removed it).
    #[error("is missing from the datastore")]
    Missing,
    /// Shorter than the size recorded for it: a copy or a disk write was cut short.
    #[error("is truncated: {actual} of {expected} bytes present")]
    Truncated {
        /// The size recorded in the index.
        expected: u64,
        /// The size found.
        actual: u64,
    },
    /// Longer than the size recorded for it.
    #[error("has {actual} bytes where {expected} were recorded")]
    Oversized {
        /// The size recorded in the index.
        expected: u64,
        /// The size found.
        actual: u64,
    },
    /// Its content does not hash to its name: it was damaged on disk or in transit.
    #[error("is corrupted: its content hashes to {actual}")]
    HashMismatch {
        /// The hash of the content actually read.
        actual: BlobHash,
    },
    /// The storage failed while reading it.
    #[error("could not be read: {0}")]
    Storage(#[source] StorageError),
}

impl BlobError {
    fn new(hash: BlobHash, kind: BlobErrorKind) -> Self {
        BlobError {
            hash,
            context: None,
            kind,
        }
    }

    /// Adds what the caller knows about where the blob was needed, outermost first:
    /// `err.with_context("run 12, step train, task 3")` on an error whose context was
    /// "artifact `model`" reads "run 12, step train, task 3, artifact `model`: blob …".
    #[must_use]
    pub fn with_context(mut self, context: impl Into<String>) -> Self {
        let mut context = context.into();
        if let Some(inner) = self.context.take() {
            context.push_str(", ");
            context.push_str(&inner);
        }
        self.context = Some(context);
        self
    }

    /// The hash of the blob at fault.
    pub fn hash(&self) -> BlobHash {
        self.hash
    }

    /// Where the blob was needed, if anyone said.
    pub fn context(&self) -> Option<&str> {
        self.context.as_deref()
    }

    /// What went wrong.
    pub fn kind(&self) -> &BlobErrorKind {
        &self.kind
    }
}

impl fmt::Display for BlobError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(context) = &self.context {
            write!(f, "{context}: ")?;
        }
        write!(f, "blob {} {}", self.hash, self.kind)
    }
}

impl std::error::Error for BlobError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &self.kind {
            BlobErrorKind::Storage(e) => Some(e),
            _ => None,
        }
    }
}

/// Why a flow's state (or one artifact) could not be loaded from blobs.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LoadError {
    /// A blob is missing, damaged or unreadable; the error names the artifact.
    #[error(transparent)]
    Blob(#[from] BlobError),
    /// An artifact was written with an encoding this version does not know.
    #[error("artifact `{name}` has encoding `{encoding}`, which this version cannot read")]
    UnsupportedEncoding {
        /// The artifact.
        name: String,
        /// Its recorded encoding.
        encoding: String,
    },
    /// The blobs are intact but do not decode into the requested type; the error names the field.
    #[error(transparent)]
    Decode(#[from] DecodeError),
}

/// The blobs of one datastore.
///
/// A thin view over a [`Storage`]; make one wherever needed.
#[derive(Debug, Clone, Copy)]
pub struct BlobStore<'s> {
    storage: &'s dyn Storage,
}

impl<'s> BlobStore<'s> {
    /// The blobs kept in `storage`.
    pub fn new(storage: &'s dyn Storage) -> Self {
        BlobStore { storage }
    }

    /// Stores `bytes` as a blob, unless an identical one exists.
    ///
    /// For content already in memory; values should go through [`BlobStore::put_value`], which
    /// streams their encoding instead.
    ///
    /// # Errors
    ///
    /// Storage failures.
    pub fn put_bytes(&self, bytes: &[u8]) -> Result<StoredBlob, BlobWriteError> {
        let hash = BlobHash::of(bytes);
        let newly_stored = self.storage.put_if_absent(&hash.key(), bytes)?;
        Ok(StoredBlob {
            hash,
            size: bytes.len() as u64,
            newly_stored,
        })
    }

    /// Encodes `value` as an artifact (see [`state::encode_field`]) straight into a new blob,
    /// hashing it on the way; an identical existing blob is kept and the new copy discarded.
    ///
    /// Memory use is the value itself plus a 1 MiB buffer, whatever the value's size.
    ///
    /// # Errors
    ///
    /// The value's `Serialize` impl failing, or storage failures.
    pub fn put_value<T: Serialize + ?Sized>(
        &self,
        value: &T,
    ) -> Result<StoredBlob, BlobWriteError> {
        let pending = self.storage.start_put(&blob_prefix())?;
        let mut writer = BufWriter::with_capacity(WRITE_BUFFER_SIZE, HashingWriter::new(pending));
        state::encode_field(&mut writer, value).map_err(BlobWriteError::Encode)?;
        let hashing = writer
            .into_inner()
            .map_err(|e| BlobWriteError::Write(e.into_error()))?;
        let HashingWriter {
            inner: pending,
            hasher,
            written,
        } = hashing;
        let hash = BlobHash(hasher.finalize());
        let newly_stored = pending.commit_if_absent(&hash.key())?;
        Ok(StoredBlob {
            hash,
            size: written,
            newly_stored,
        })
    }

    /// Whether the blob `hash` exists.
    ///
    /// # Errors
    ///
    /// Storage failures.
    pub fn contains(&self, hash: &BlobHash) -> Result<bool, BlobError> {
        self.storage
            .exists(&hash.key())
            .map_err(|e| BlobError::new(*hash, BlobErrorKind::Storage(e)))
    }

    /// Reads the blob `hash` and checks that it is intact: of `expected_size` bytes when the
    /// caller knows it (from the task index), and hashing to its name.
    ///
    /// # Errors
    ///
    /// [`BlobError`] with kind missing, truncated, oversized, corrupted or storage failure.
    pub fn get(&self, hash: &BlobHash, expected_size: Option<u64>) -> Result<Vec<u8>, BlobError> {
        let bytes = self.storage.get(&hash.key()).map_err(|e| {
            let kind = if e.is_not_found() {
                BlobErrorKind::Missing
            } else {
                BlobErrorKind::Storage(e)
            };
            BlobError::new(*hash, kind)
        })?;
        let actual = bytes.len() as u64;
        match expected_size {
            Some(expected) if actual < expected => {
                return Err(BlobError::new(
                    *hash,
                    BlobErrorKind::Truncated { expected, actual },
                ));
            }
            Some(expected) if actual > expected => {
                return Err(BlobError::new(
                    *hash,
                    BlobErrorKind::Oversized { expected, actual },
                ));
            }
            _ => {}
        }
        let found = BlobHash::of(&bytes);
        if found != *hash {
            return Err(BlobError::new(
                *hash,
                BlobErrorKind::HashMismatch { actual: found },
            ));
        }
        Ok(bytes)
    }

    /// Stores every top-level field of `state` as a blob, streamed, and returns the index entries
    /// in serialization order.
    ///
    /// # Errors
    ///
    /// As [`state::split_state`]; a field that fails names itself.
    pub fn store_state<F: Serialize + ?Sized>(
        &self,
        state: &F,
    ) -> Result<Vec<ArtifactEntry>, SplitError<BlobWriteError>> {
        let mut sink = BlobFieldSink::new(*self);
        state::split_state(state, &mut sink)?;
        Ok(sink.into_entries())
    }

    /// Reads, verifies and decodes the artifacts listed in `artifacts` into a flow's state.
    ///
    /// All blobs are read and verified before decoding starts, so nothing damaged is ever
    /// decoded; they are held in memory until the state is built.
    ///
    /// # Errors
    ///
    /// [`LoadError`], naming the artifact at fault.
    pub fn load_state<F: DeserializeOwned>(
        &self,
        artifacts: &[ArtifactEntry],
    ) -> Result<F, LoadError> {
        let blobs = artifacts
            .iter()
            .map(|entry| self.read_entry(entry))
            .collect::<Result<Vec<_>, _>>()?;
        let fields: Vec<(&str, &[u8])> = artifacts
            .iter()
            .zip(&blobs)
            .map(|(entry, bytes)| (entry.name.as_str(), bytes.as_slice()))
            .collect();
        Ok(state::decode_state(&fields)?)
    }

    /// Reads, verifies and decodes one artifact, e.g. to load a single field of a past run.
    ///
    /// # Errors
    ///
    /// [`LoadError`], naming the artifact.
    pub fn load_artifact<T: DeserializeOwned>(
        &self,
        entry: &ArtifactEntry,
    ) -> Result<T, LoadError> {
        let bytes = self.read_entry(entry)?;
        state::decode_field(&bytes).map_err(|source| {
            LoadError::Decode(DecodeError::Field {
                field: entry.name.clone(),
                source,
            })
        })
    }

    fn read_entry(&self, entry: &ArtifactEntry) -> Result<Vec<u8>, LoadError> {
        if entry.encoding != Encoding::MsgPack {
            return Err(LoadError::UnsupportedEncoding {
                name: entry.name.clone(),
                encoding: entry.encoding.to_string(),
            });
        }
        self.get(&entry.hash, Some(entry.size))
            .map_err(|e| LoadError::Blob(e.with_context(format!("artifact `{}`", entry.name))))
    }
}

/// A [`FieldSink`] that stores each field as a blob and records its index entry.
///
/// What [`BlobStore::store_state`] uses; public for callers that drive
/// [`state::split_state`] themselves.
#[derive(Debug)]
pub struct BlobFieldSink<'s> {
    store: BlobStore<'s>,
    entries: Vec<ArtifactEntry>,
}

impl<'s> BlobFieldSink<'s> {
    /// A sink writing into `store`, with no entries yet.
    pub fn new(store: BlobStore<'s>) -> Self {
        BlobFieldSink {
            store,
            entries: Vec::new(),
        }
    }

    /// The index entries of the fields stored so far, in order.
    pub fn into_entries(self) -> Vec<ArtifactEntry> {
        self.entries
    }
}

impl FieldSink for BlobFieldSink<'_> {
    type Error = BlobWriteError;

    fn field<T: Serialize + ?Sized>(
        &mut self,
        name: &str,
        type_name: &'static str,
        value: &T,
    ) -> Result<(), Self::Error> {
        let stored = self.store.put_value(value)?;
        self.entries.push(ArtifactEntry {
            name: name.to_owned(),
            hash: stored.hash,
            size: stored.size,
            type_name: type_name.to_owned(),
            encoding: Encoding::MsgPack,
        });
        Ok(())
    }
}

/// Passes writes through to a pending object while hashing and counting them.
struct HashingWriter {
    inner: Box<dyn PendingObject>,
    hasher: blake3::Hasher,
    written: u64,
}

impl HashingWriter {
    fn new(inner: Box<dyn PendingObject>) -> Self {
        HashingWriter {
            inner,
            hasher: blake3::Hasher::new(),
            written: 0,
        }
    }
}

impl Write for HashingWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        let done = buf.get(..n).unwrap_or(buf);
        self.hasher.update(done);
        self.written += done.len() as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

fn blob_prefix() -> Key {
    Key::segment(BLOB_PREFIX).unwrap_or_else(|e| unreachable!("`blobs` is a valid key: {e}"))
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::fs;

    use super::*;
    use crate::datastore::local::LocalStorage;

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
    struct Model {
        name: String,
        #[serde(with = "serde_bytes")]
        weights: Vec<u8>,
        layers: Vec<f32>,
        meta: HashMap<String, u32>,
        epoch: Option<u32>,
    }

    fn model() -> Model {
        Model {
            name: "tiny".into(),
            weights: (0..100_000u32).map(|i| (i % 251) as u8).collect(),
            layers: vec![1.5, -2.0, 3.25],
            meta: HashMap::from([("seed".to_owned(), 7)]),
            epoch: Some(3),
        }
    }

    fn store() -> (tempfile::TempDir, LocalStorage) {
        let dir = tempfile::tempdir().unwrap();
        let storage = LocalStorage::open(dir.path()).unwrap().with_sync(false);
        (dir, storage)
    }

    fn blob_files(storage: &LocalStorage) -> Vec<String> {
        storage
            .list(Some(&blob_prefix()))
            .unwrap()
            .into_iter()
            .map(String::from)
            .collect()
    }

    #[test]
    fn hash_text_roundtrip() {
        let hash = BlobHash::of(b"abc");
        let text = hash.to_string();
        assert_eq!(text.len(), 64);
        assert_eq!(text.parse::<BlobHash>().unwrap(), hash);
        assert_eq!(
            hash.key().as_str(),
            format!("blobs/{}/{}", &text[..2], text)
        );
        let json = serde_json::to_string(&hash).unwrap();
        assert_eq!(serde_json::from_str::<BlobHash>(&json).unwrap(), hash);
        assert!("xyz".parse::<BlobHash>().is_err());
    }

    #[test]
    fn streamed_value_matches_its_in_memory_encoding() {
        let (_dir, storage) = store();
        let blobs = BlobStore::new(&storage);
        let value = model();
        let stored = blobs.put_value(&value).unwrap();
        let mut expected = Vec::new();
        state::encode_field(&mut expected, &value).unwrap();
        assert_eq!(stored.hash, BlobHash::of(&expected));
        assert_eq!(stored.size, expected.len() as u64);
        assert!(stored.newly_stored);
        assert_eq!(
            blobs.get(&stored.hash, Some(stored.size)).unwrap(),
            expected
        );
        assert_eq!(blob_files(&storage), [stored.hash.key().to_string()]);
    }

    #[test]
    fn a_value_larger_than_the_buffer_streams_intact() {
        let (_dir, storage) = store();
        let blobs = BlobStore::new(&storage);
        let big = serde_bytes::ByteBuf::from(vec![7u8; 3 * WRITE_BUFFER_SIZE + 17]);
        let many: Vec<u32> = (0..600_000).collect();
        for stored in [
            blobs.put_value(&big).unwrap(),
            blobs.put_value(&many).unwrap(),
        ] {
            let bytes = blobs.get(&stored.hash, Some(stored.size)).unwrap();
            assert_eq!(bytes.len() as u64, stored.size);
        }
        let back: Vec<u32> = state::decode_field(
            &blobs
                .get(&blobs.put_value(&many).unwrap().hash, None)
                .unwrap(),
        )
        .unwrap();
        assert_eq!(back, many);
    }

    #[test]
    fn storing_the_same_value_twice_creates_one_blob() {
        let (_dir, storage) = store();
        let blobs = BlobStore::new(&storage);
        let first = blobs.put_value(&model()).unwrap();
        let second = blobs.put_value(&model()).unwrap();
        assert_eq!(first.hash, second.hash);
        assert!(first.newly_stored);
        assert!(!second.newly_stored);
        let again = blobs
            .put_bytes(&blobs.get(&first.hash, None).unwrap())
            .unwrap();
        assert_eq!(again.hash, first.hash);
        assert!(!again.newly_stored);
        // Exactly one file on disk, temporary files included.
        let all: Vec<_> = walk(storage.root());
        assert_eq!(all.len(), 1, "{all:?}");
    }

    #[test]
    fn an_unchanged_field_costs_nothing_new() {
        #[derive(Serialize)]
        struct State<'a> {
            model: &'a Model,
            step: u32,
        }
        let (_dir, storage) = store();
        let blobs = BlobStore::new(&storage);
        let model = model();
        let first = blobs
            .store_state(&State {
                model: &model,
                step: 1,
            })
            .unwrap();
        let second = blobs
            .store_state(&State {
                model: &model,
                step: 2,
            })
            .unwrap();
        assert_eq!(first[0].hash, second[0].hash);
        assert_ne!(first[1].hash, second[1].hash);
        assert_eq!(blob_files(&storage).len(), 3);
    }

    fn walk(root: &std::path::Path) -> Vec<std::path::PathBuf> {
        let mut out = Vec::new();
        let mut dirs = vec![root.to_path_buf()];
        while let Some(dir) = dirs.pop() {
            for entry in fs::read_dir(dir).unwrap() {
                let entry = entry.unwrap();
                if entry.file_type().unwrap().is_dir() {
                    dirs.push(entry.path());
                } else {
                    out.push(entry.path());
                }
            }
        }
        out
    }

    #[test]
    fn a_flipped_byte_is_caught() {
        let (_dir, storage) = store();
        let blobs = BlobStore::new(&storage);
        let stored = blobs.put_value(&model()).unwrap();
        let path = storage.path_of(&stored.hash.key());
        let mut bytes = fs::read(&path).unwrap();
        bytes[1000] ^= 0x01;
        fs::write(&path, &bytes).unwrap();

        let err = blobs.get(&stored.hash, Some(stored.size)).unwrap_err();
        assert!(
            matches!(err.kind(), BlobErrorKind::HashMismatch { .. }),
            "{err}"
        );
        assert_eq!(err.hash(), stored.hash);
        let err = err.with_context("run 3, step train, task 0, artifact `model`");
        assert_eq!(
            err.to_string(),
            format!(
                "run 3, step train, task 0, artifact `model`: blob {} is corrupted: \
                 its content hashes to {}",
                stored.hash,
                BlobHash::of(&bytes)
            )
        );
    }

    #[test]
    fn a_truncated_blob_is_caught() {
        let (_dir, storage) = store();
        let blobs = BlobStore::new(&storage);
        let stored = blobs.put_value(&model()).unwrap();
        let path = storage.path_of(&stored.hash.key());
        let bytes = fs::read(&path).unwrap();
        fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();

        let err = blobs.get(&stored.hash, Some(stored.size)).unwrap_err();
        assert!(
            matches!(err.kind(), BlobErrorKind::Truncated { expected, actual }
                if *expected == stored.size && *actual == stored.size / 2),
            "{err}"
        );
        assert!(err.to_string().contains("is truncated"), "{err}");
        // Without a known size, the hash still catches it.
        let err = blobs.get(&stored.hash, None).unwrap_err();
        assert!(
            matches!(err.kind(), BlobErrorKind::HashMismatch { .. }),
            "{err}"
        );
    }

    #[test]
    fn a_missing_blob_is_reported() {
        let (_dir, storage) = store();
        let blobs = BlobStore::new(&storage);
        let hash = BlobHash::of(b"never stored");
        let err = blobs.get(&hash, None).unwrap_err();
        assert!(matches!(err.kind(), BlobErrorKind::Missing));
        assert_eq!(
            err.to_string(),
            format!("blob {hash} is missing from the datastore")
        );
    }

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
    struct Flow {
        xs: Vec<u64>,
        model: Model,
        note: String,
        #[serde(skip)]
        scratch: u8,
    }

    #[test]
    fn state_roundtrips_through_blobs() {
        let (_dir, storage) = store();
        let blobs = BlobStore::new(&storage);
        let state = Flow {
            xs: (1..=10).collect(),
            model: model(),
            note: "hello".into(),
            scratch: 9,
        };
        let entries = blobs.store_state(&state).unwrap();
        let names: Vec<_> = entries.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(names, ["xs", "model", "note"]);
        assert_eq!(entries[0].type_name, "alloc::vec::Vec<u64>");
        assert!(entries.iter().all(|e| e.encoding == Encoding::MsgPack));
        let back: Flow = blobs.load_state(&entries).unwrap();
        assert_eq!(
            back,
            Flow {
                scratch: 0,
                ..state.clone()
            }
        );
        let model: Model = blobs.load_artifact(&entries[1]).unwrap();
        assert_eq!(model, state.model);
    }

    #[test]
    fn loading_a_damaged_state_names_the_artifact() {
        let (_dir, storage) = store();
        let blobs = BlobStore::new(&storage);
        let entries = blobs.store_state(&Flow::default()).unwrap();
        let path = storage.path_of(&entries[2].hash.key());
        fs::write(&path, b"").unwrap();
        let err = blobs.load_state::<Flow>(&entries).unwrap_err();
        let message = err.to_string();
        assert!(
            message.starts_with("artifact `note`: blob ") && message.contains("truncated"),
            "{message}"
        );
    }

    #[test]
    fn unknown_encodings_are_refused() {
        let (_dir, storage) = store();
        let blobs = BlobStore::new(&storage);
        let mut entries = blobs.store_state(&Flow::default()).unwrap();
        entries[0].encoding = Encoding::Other("zstd+msgpack".into());
        let err = blobs.load_state::<Flow>(&entries).unwrap_err();
        assert_eq!(
            err.to_string(),
            "artifact `xs` has encoding `zstd+msgpack`, which this version cannot read"
        );
    }

    #[test]
    fn a_failing_serialize_leaves_no_blob() {
        struct Failing;
        impl Serialize for Failing {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                use serde::ser::SerializeSeq;
                let mut seq = s.serialize_seq(Some(2))?;
                seq.serialize_element(&vec![0u8; 4096])?;
                Err(serde::ser::Error::custom("device lost"))
            }
        }
        let (_dir, storage) = store();
        let blobs = BlobStore::new(&storage);
        let err = blobs.put_value(&Failing).unwrap_err();
        assert!(err.to_string().contains("device lost"), "{err}");
        assert!(walk(storage.root()).is_empty());
    }
}
