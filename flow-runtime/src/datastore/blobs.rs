//! Content-addressed blobs: every artifact's encoding, stored once per datastore.
//!
//! A blob's key is `blobs/<first two hex digits>/<64 hex digits>`, the BLAKE3 hash of its bytes.
//! A field that did not change between tasks or runs encodes to the same bytes, so it maps to the
//! same blob and costs no new space. The two-digit fan-out keeps directories small on a local disk
//! and spreads keys for an object store.
//!
//! Writing a value encodes it into memory while its encoding stays under [`SPILL_THRESHOLD`]
//! (8 MiB), then hashes it and stores it only if no blob of that hash exists: an unchanged field
//! costs one lookup and creates no file. Longer encodings are streamed: past the threshold the
//! encoder writes through a 1 MiB buffer into a pending object, hashing on the way, so even a
//! 1 GiB field is never held twice in memory; once complete, the pending object is committed
//! under its hash unless that blob already exists.
//! Reading checks the hash of what was read, so a damaged or truncated blob is reported, never
//! decoded, and reads no more than the size the task index records.
//!
//! A blob that exists is trusted only as far as its size: a store finds a blob of the right size
//! and writes nothing, but one of another size (emptied or cut short by a power loss without
//! `BLOOMING_SYNC`, a bad disk) is replaced, atomically, by the next store of the same value.
//! Damage that keeps the size shows when the blob is read (its content does not hash to its
//! name): the reader sets it aside as `<hash>.damaged` beside it, and the next store of the
//! value writes the blob again. Either way the next run that computes the value repairs it.

use std::fmt;
use std::io::{self, Write};

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::blob_hash::{BLOB_PREFIX, BlobHash};
use super::blob_reading::STREAMED_FROM;
use super::freshness::needs_refresh;
use super::keys::Key;
use super::known_blobs::{KEPT_ENCODING, KnownBlobs};
use super::storage::{PendingObject, Storage, StorageError};
use super::task_index::{ArtifactEntry, Encoding};
use crate::state::{self, DecodeError, FieldSink, FieldValue, SplitError};

/// The longest encoding [`BlobStore::put_value`] builds in memory before storing it; a longer one
/// is streamed to a pending object instead.
///
/// Below it, an unchanged value costs one lookup and no file; above it, memory stays bounded.
/// 8 MiB covers the small fields most tasks change or leave alone, and is little next to values
/// large enough to reach it.
pub const SPILL_THRESHOLD: usize = 8 << 20;

/// Size of the buffer between the encoder and the pending object once an encoding has spilled:
/// large enough that hashing (which vectorises across 1 KiB chunks) and file writes work on big
/// slices, small enough not to matter next to the values being written.
pub const WRITE_BUFFER_SIZE: usize = 1 << 20;

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
    #[error("is corrupted: its content hashes to {actual}{}", set_aside_note(.set_aside.as_ref()))]
    HashMismatch {
        /// The hash of the content actually read.
        actual: BlobHash,
        /// Where the damaged copy was moved, so that the next store of the value writes the
        /// blob again; `None` if it could not be moved (a read-only datastore).
        set_aside: Option<Key>,
    },
    /// Found damaged by an earlier read and set aside; no intact copy was stored since.
    #[error(
        "is corrupted: an earlier read found it damaged and set it aside as `{set_aside}`; the next run that stores this value writes it again"
    )]
    SetAside {
        /// Where the damaged copy is.
        set_aside: Key,
    },
    /// The storage failed while reading it.
    #[error("could not be read: {0}")]
    Storage(#[source] StorageError),
}

fn set_aside_note(set_aside: Option<&Key>) -> String {
    match set_aside {
        Some(key) => {
            format!(" (set aside as `{key}`: the next run that stores this value writes it again)")
        }
        None => String::new(),
    }
}

impl BlobError {
    /// The error for `actual` bytes read of the blob `hash`, which has `expected`, if they
    /// differ: the one size check of whole and streamed reads.
    pub(super) fn of_size(hash: BlobHash, expected: u64, actual: u64) -> Option<Self> {
        let kind = match actual.cmp(&expected) {
            std::cmp::Ordering::Less => BlobErrorKind::Truncated { expected, actual },
            std::cmp::Ordering::Greater => BlobErrorKind::Oversized { expected, actual },
            std::cmp::Ordering::Equal => return None,
        };
        Some(BlobError::new(hash, kind))
    }

    pub(super) fn new(hash: BlobHash, kind: BlobErrorKind) -> Self {
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
    pub(super) storage: &'s dyn Storage,
    known: Option<&'s KnownBlobs>,
}

impl<'s> BlobStore<'s> {
    /// The blobs kept in `storage`.
    pub fn new(storage: &'s dyn Storage) -> Self {
        BlobStore {
            storage,
            known: None,
        }
    }

    /// The same blobs, storing through `known`: a blob it holds is not looked up again, and
    /// every blob stored or found whole is added to it (see [`KnownBlobs`]).
    pub fn remembering(self, known: &'s KnownBlobs) -> Self {
        BlobStore {
            known: Some(known),
            ..self
        }
    }

    fn is_known(&self, hash: &BlobHash, size: u64) -> bool {
        self.known.is_some_and(|known| known.contains(hash, size))
    }

    fn remember(&self, hash: BlobHash, size: u64) {
        if let Some(known) = self.known {
            known.insert(hash, size);
        }
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
        let size = bytes.len() as u64;
        if self.is_known(&hash, size) {
            return Ok(StoredBlob {
                hash,
                size,
                newly_stored: false,
            });
        }
        let newly_stored = self.storage.put_content(&hash.key(), bytes)?;
        self.remember(hash, size);
        if let Some(known) = self.known {
            known.keep_encoding(hash, bytes);
        }
        Ok(StoredBlob {
            hash,
            size: bytes.len() as u64,
            newly_stored,
        })
    }

    /// Encodes `value` as an artifact (see [`state::encode_field`]) into a blob, hashing it on the
    /// way; an identical existing blob is kept.
    ///
    /// An encoding of up to [`SPILL_THRESHOLD`] bytes is built in memory, hashed, and stored with
    /// [`Storage::put_content`]: when the blob exists with its size (every unchanged field of
    /// every task) that is one lookup, and no file is created or deleted. A longer encoding
    /// spills: what was buffered and the rest are streamed to a pending object through a
    /// [`WRITE_BUFFER_SIZE`] buffer, hashed on the way, and committed unless a blob of its size
    /// is there. Either way a blob of another size is damaged and replaced.
    ///
    /// Memory use is the value itself plus at most [`SPILL_THRESHOLD`] bytes (and, once spilled,
    /// a [`WRITE_BUFFER_SIZE`] buffer instead), whatever the value's size.
    ///
    /// Known cost: a large value that is already stored (a big field a step left unchanged) is
    /// still written out in full to a temporary object, which is then discarded, because its
    /// hash is known only at the end. Comparing the encoding against the blob of the same field
    /// in the parent task while encoding would avoid that write.
    ///
    /// # Errors
    ///
    /// The value's `Serialize` impl failing, or storage failures.
    pub fn put_value<T: Serialize + ?Sized>(
        &self,
        value: &T,
    ) -> Result<StoredBlob, BlobWriteError> {
        let mut writer = SpillingWriter::new(self.storage);
        if let Err(e) = state::encode_field(&mut writer, value) {
            // A storage failure met while spilling is reported as such, not as an encoding error.
            return Err(match writer.storage_failure.take() {
                Some(failure) => BlobWriteError::Storage(failure),
                None => BlobWriteError::Encode(e),
            });
        }
        let SpillingWriter { bytes, spilled, .. } = writer;
        let Some(mut spilled) = spilled else {
            return self.put_bytes(&bytes);
        };
        spilled.write(&bytes).map_err(BlobWriteError::Write)?;
        drop(bytes);
        let Spilled {
            pending,
            hasher,
            written,
        } = spilled;
        let hash = BlobHash::from_blake3(hasher.finalize());
        let newly_stored = self.commit_unless_whole(pending, &hash, written)?;
        Ok(StoredBlob {
            hash,
            size: written,
            newly_stored,
        })
    }

    /// Commits `pending`, `size` bytes hashing to `hash`, as that blob, unless a copy of that
    /// size is there; one of another size (or anything the storage will not say the size of,
    /// such as a link in a local datastore) is damaged and replaced. Returns whether it
    /// committed.
    fn commit_unless_whole(
        &self,
        pending: Box<dyn PendingObject>,
        hash: &BlobHash,
        size: u64,
    ) -> Result<bool, StorageError> {
        if self.is_known(hash, size) {
            return Ok(false);
        }
        let key = hash.key();
        let committed = match self.storage.stat(&key) {
            // Dropping the pending object discards it.
            Ok(Some(found)) if found.size == size => {
                if needs_refresh(found.modified) && !self.storage.refresh(&key)? {
                    // Deleted since the lookup (by a collection): this copy takes its place.
                    pending.commit_if_absent(&key)
                } else {
                    Ok(false)
                }
            }
            Ok(None) => pending.commit_if_absent(&key),
            Ok(Some(_)) | Err(_) => pending.commit(&key).map(|()| true),
        }?;
        self.remember(*hash, size);
        Ok(committed)
    }

    /// Stores `value` as [`BlobStore::put_value`] does, unless it encodes to exactly the blob
    /// `previous` (the same field in the task this one started from), in which case nothing is
    /// written at all.
    ///
    /// For large fields a step leaves alone: `put_value` would stream the whole encoding to a
    /// temporary object only to find the blob exists. Here the value is first encoded into a
    /// hasher alone; if its size and hash are those of `previous`, that blob is the answer.
    /// When the value did change, it is encoded a second time by `put_value`, which costs less
    /// than the write that follows (encoding runs at several hundred MB/s to GB/s).
    ///
    /// # Errors
    ///
    /// As [`BlobStore::put_value`].
    pub fn put_value_unless_unchanged<T: Serialize + ?Sized>(
        &self,
        value: &T,
        previous: &ArtifactEntry,
    ) -> Result<StoredBlob, BlobWriteError> {
        let mut hashing = HashingWriter::new(previous.size);
        let encoded = state::encode_field(&mut hashing, value);
        if encoded.is_ok() && hashing.written() == previous.size {
            let hash = BlobHash::from_blake3(hashing.finish());
            // The previous blob must still be there whole (of its size) to be taken as is;
            // anything else (gone, damaged, unreadable) is stored again below.
            if hash == previous.hash
                && matches!(self.keep_fresh(&hash, Some(previous.size)), Ok(true))
            {
                self.remember(hash, previous.size);
                return Ok(StoredBlob {
                    hash,
                    size: previous.size,
                    newly_stored: false,
                });
            }
        }
        // Changed (or longer than before, which stopped the first pass early), or the previous
        // blob is gone or damaged: store it for real.
        self.put_value(value)
    }

    /// Whether the blob `hash` is stored whole (of `size` bytes, or of any size for `None`: a
    /// blob whose size no record holds, which its read checks by hash), for a writer about to reference
    /// it without writing it (a task reused by `resume`, a field left unchanged): a blob last
    /// written long ago has its time renewed first, so that a collection going on keeps it
    /// (see [`freshness`](super::freshness)). `false` for a blob that is gone or of another size.
    ///
    /// # Errors
    ///
    /// Storage failures.
    pub fn keep_fresh(&self, hash: &BlobHash, size: Option<u64>) -> Result<bool, BlobError> {
        if size.is_some_and(|size| self.is_known(hash, size)) {
            return Ok(true);
        }
        let key = hash.key();
        let storage = |e| BlobError::new(*hash, BlobErrorKind::Storage(e));
        match self.storage.stat(&key).map_err(storage)? {
            Some(stat) if size.is_none_or(|size| size == stat.size) => {
                let whole =
                    !needs_refresh(stat.modified) || self.storage.refresh(&key).map_err(storage)?;
                if whole {
                    self.remember(*hash, stat.size);
                }
                Ok(whole)
            }
            _ => Ok(false),
        }
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
    /// caller knows it (from the task index), and hashing to its name. No more than
    /// `expected_size` bytes are read.
    ///
    /// A blob whose content does not hash to its name is set aside (see the module
    /// documentation), so that the next store of its value writes it again; reads report it
    /// as corrupted until then.
    ///
    /// # Errors
    ///
    /// [`BlobError`] with kind missing, truncated, oversized, corrupted or storage failure.
    pub fn get(&self, hash: &BlobHash, expected_size: Option<u64>) -> Result<Vec<u8>, BlobError> {
        let key = hash.key();
        let limit = expected_size.unwrap_or(u64::MAX);
        let bytes = match self.storage.get_at_most(&key, limit) {
            Ok(bytes) => bytes,
            Err(StorageError::TooLarge { size, limit, .. }) => {
                return Err(BlobError::new(
                    *hash,
                    BlobErrorKind::Oversized {
                        expected: limit,
                        actual: size,
                    },
                ));
            }
            Err(e) if e.is_not_found() => return Err(self.missing(hash)),
            Err(e) => return Err(BlobError::new(*hash, BlobErrorKind::Storage(e))),
        };
        if let Some(expected) = expected_size
            && let Some(wrong) = BlobError::of_size(*hash, expected, bytes.len() as u64)
        {
            return Err(wrong);
        }
        let found = BlobHash::of(&bytes);
        if found != *hash {
            let set_aside = self.set_aside(hash, &bytes);
            return Err(BlobError::new(
                *hash,
                BlobErrorKind::HashMismatch {
                    actual: found,
                    set_aside,
                },
            ));
        }
        Ok(bytes)
    }

    /// The key a damaged copy of the blob `hash` is set aside as: `<hash>.damaged` beside it.
    pub fn set_aside_key(hash: &BlobHash) -> Key {
        let key = hash.key();
        key.parent()
            .and_then(|dir| dir.join(&format!("{}.damaged", key.name())).ok())
            .unwrap_or_else(|| unreachable!("a blob key has a directory and a hex name"))
    }

    /// Moves the blob `hash`, read as `damaged`, aside; returns where, or `None` if it could not
    /// (the reason is logged: reporting the damage matters more).
    fn set_aside(&self, hash: &BlobHash, damaged: &[u8]) -> Option<Key> {
        let aside = Self::set_aside_key(hash);
        match self.storage.set_aside(&hash.key(), damaged, &aside) {
            Ok(true) => {
                tracing::warn!(
                    "blob {hash} is damaged (its content does not hash to its name); set it aside as `{aside}`"
                );
                Some(aside)
            }
            // Someone stored it again meanwhile: what is there now is not what was read.
            Ok(false) => None,
            Err(e) => {
                tracing::warn!("blob {hash} is damaged and could not be set aside: {e}");
                None
            }
        }
    }

    /// Why the blob `hash`, which is not there, is not there: set aside by an earlier read that
    /// found it damaged ([`BlobErrorKind::SetAside`]), or missing. For readers that find a blob
    /// absent by other means than [`BlobStore::get`] (a streamed read).
    pub fn absent_kind(&self, hash: &BlobHash) -> BlobErrorKind {
        let aside = Self::set_aside_key(hash);
        match self.storage.exists(&aside) {
            Ok(true) => BlobErrorKind::SetAside { set_aside: aside },
            _ => BlobErrorKind::Missing,
        }
    }

    fn missing(&self, hash: &BlobHash) -> BlobError {
        BlobError::new(*hash, self.absent_kind(hash))
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

    /// Stores `state` as [`BlobStore::store_state`] does, where `previous` are the artifacts of
    /// the state it was derived from (the parent task's index): a large field whose encoding
    /// did not change is recognised without writing anything
    /// ([`BlobStore::put_value_unless_unchanged`]).
    ///
    /// # Errors
    ///
    /// As [`BlobStore::store_state`].
    pub fn store_state_after<F: Serialize + ?Sized>(
        &self,
        state: &F,
        previous: &[ArtifactEntry],
    ) -> Result<Vec<ArtifactEntry>, SplitError<BlobWriteError>> {
        let mut sink = BlobFieldSink::new(*self).after(previous);
        state::split_state(state, &mut sink)?;
        Ok(sink.into_entries())
    }

    /// Reads, verifies and decodes the artifacts listed in `artifacts` into a flow's state.
    ///
    /// The small blobs are read and verified before decoding starts; a large one (from
    /// `blob_reading::STREAMED_FROM` bytes) is decoded while a second thread reads and hashes
    /// it (see `datastore::blob_reading`). Either way the state is returned only once every
    /// blob was found intact, and a damaged blob is reported as such before any decoding error.
    ///
    /// # Errors
    ///
    /// [`LoadError`], naming the artifact at fault.
    pub fn load_state<F: DeserializeOwned>(
        &self,
        artifacts: &[ArtifactEntry],
    ) -> Result<F, LoadError> {
        for entry in artifacts {
            check_encoding(entry)?;
        }
        let small = artifacts
            .iter()
            .map(|entry| {
                if entry.size >= STREAMED_FROM {
                    Ok(None)
                } else {
                    self.read_entry(entry).map(Some)
                }
            })
            .collect::<Result<Vec<_>, _>>()?;
        std::thread::scope(|scope| {
            let streams = std::cell::RefCell::new(Vec::new());
            let failed_to_open = std::cell::RefCell::new(None);
            let fields: Vec<(&str, FieldValue<'_>)> = artifacts
                .iter()
                .zip(&small)
                .map(|(entry, bytes)| {
                    let value = match bytes {
                        Some(bytes) => FieldValue::Encoded(bytes.as_slice()),
                        None => {
                            let (streams, failed) = (&streams, &failed_to_open);
                            FieldValue::Chunks(Box::new(move || {
                                match self.stream(scope, entry.hash, entry.size) {
                                    Ok((blob, input)) => {
                                        streams.borrow_mut().push((entry, blob));
                                        input
                                    }
                                    Err(e) => {
                                        failed.borrow_mut().get_or_insert((entry, e));
                                        closed_input()
                                    }
                                }
                            }))
                        }
                    };
                    (entry.name.as_str(), value)
                })
                .collect();
            let decoded = state::decode_fields::<F>(fields);
            if let Some((entry, e)) = failed_to_open.into_inner() {
                return Err(named(entry, e));
            }
            for (entry, blob) in streams.into_inner() {
                blob.verify(self).map_err(|e| named(entry, e))?;
            }
            Ok(decoded?)
        })
    }

    /// Reads, verifies and decodes one artifact, e.g. to load a single field of a past run.
    /// A large one is decoded while it is read, as in [`BlobStore::load_state`].
    ///
    /// # Errors
    ///
    /// [`LoadError`], naming the artifact.
    pub fn load_artifact<T: DeserializeOwned>(
        &self,
        entry: &ArtifactEntry,
    ) -> Result<T, LoadError> {
        let field_error = |source| {
            LoadError::Decode(DecodeError::Field {
                field: entry.name.clone(),
                source,
            })
        };
        if entry.size < STREAMED_FROM {
            let bytes = self.read_entry(entry)?;
            return state::decode_field(&bytes).map_err(field_error);
        }
        check_encoding(entry)?;
        std::thread::scope(|scope| {
            let (blob, input) = self
                .stream(scope, entry.hash, entry.size)
                .map_err(|e| named(entry, e))?;
            let decoded = state::decode_chunks::<T>(input);
            blob.verify(self).map_err(|e| named(entry, e))?;
            decoded.map_err(field_error)
        })
    }

    fn read_entry(&self, entry: &ArtifactEntry) -> Result<Vec<u8>, LoadError> {
        check_encoding(entry)?;
        self.get(&entry.hash, Some(entry.size))
            .map_err(|e| named(entry, e))
    }
}

/// Fails for an artifact whose encoding this version cannot read.
fn check_encoding(entry: &ArtifactEntry) -> Result<(), LoadError> {
    if entry.encoding == Encoding::MsgPack {
        Ok(())
    } else {
        Err(LoadError::UnsupportedEncoding {
            name: entry.name.clone(),
            encoding: entry.encoding.to_string(),
        })
    }
}

/// `error`, said to be about the artifact `entry`.
fn named(entry: &ArtifactEntry, error: BlobError) -> LoadError {
    LoadError::Blob(error.with_context(format!("artifact `{}`", entry.name)))
}

/// An input that is already at its end: what a field whose blob could not be opened decodes
/// from (the error that follows names the blob, not the decoding).
fn closed_input() -> crate::state::decoder::ChunkInput {
    let (_, incoming) = std::sync::mpsc::sync_channel(0);
    let (spent, _) = std::sync::mpsc::channel();
    crate::state::decoder::ChunkInput::new(0, incoming, spent)
}

/// A [`FieldSink`] that stores each field as a blob and records its index entry.
///
/// What [`BlobStore::store_state`] uses; public for callers that drive
/// [`state::split_state`] themselves.
#[derive(Debug)]
pub struct BlobFieldSink<'s> {
    store: BlobStore<'s>,
    entries: Vec<ArtifactEntry>,
    previous: &'s [ArtifactEntry],
}

impl<'s> BlobFieldSink<'s> {
    /// A sink writing into `store`, with no entries yet.
    pub fn new(store: BlobStore<'s>) -> Self {
        BlobFieldSink {
            store,
            entries: Vec::new(),
            previous: &[],
        }
    }

    /// Compares large fields against `previous` (the artifacts of the state this one was
    /// derived from) before writing them; see [`BlobStore::store_state_after`].
    #[must_use]
    pub fn after(mut self, previous: &'s [ArtifactEntry]) -> Self {
        self.previous = previous;
        self
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
        // A small field whose parent's encoding this run kept: compared with it as it is
        // encoded, which tells an unchanged field without hashing it (every body of a foreach
        // holds the list it was split over).
        if let Some(known) = self.store.known
            && let Some(previous) = self.previous.iter().find(|p| {
                p.name == name && p.encoding == Encoding::MsgPack && p.size <= KEPT_ENCODING as u64
            })
            && let Some(encoding) = known.encoding(&previous.hash)
            && encodes_as(value, &encoding)
        {
            self.entries.push(ArtifactEntry {
                name: name.to_owned(),
                hash: previous.hash,
                size: previous.size,
                type_name: type_name.to_owned(),
                encoding: Encoding::MsgPack,
            });
            return Ok(());
        }
        // Only fields large enough to spill are worth a first pass: a small one already costs
        // no more than encoding, hashing and one lookup when it did not change.
        let previous = self.previous.iter().find(|p| {
            p.name == name && p.encoding == Encoding::MsgPack && p.size > SPILL_THRESHOLD as u64
        });
        let stored = match previous {
            Some(previous) => self.store.put_value_unless_unchanged(value, previous)?,
            None => self.store.put_value(value)?,
        };
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

/// Whether `value` encodes to exactly `expected`, found by comparing the encoding with it as
/// it is produced (stopping at the first difference) rather than by hashing it.
fn encodes_as<T: Serialize + ?Sized>(value: &T, expected: &[u8]) -> bool {
    let mut comparing = ComparingWriter { expected, at: 0 };
    state::encode_field(&mut comparing, value).is_ok() && comparing.at == expected.len()
}

/// A writer that only compares what it is given with `expected`, and fails at the first
/// difference.
struct ComparingWriter<'a> {
    expected: &'a [u8],
    at: usize,
}

impl Write for ComparingWriter<'_> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.write_all(data)?;
        Ok(data.len())
    }

    fn write_all(&mut self, data: &[u8]) -> io::Result<()> {
        match self.expected.get(self.at..self.at + data.len()) {
            Some(same) if same == data => {
                self.at += data.len();
                Ok(())
            }
            _ => Err(io::Error::other("the encoding differs")),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// An encoding that is only hashed, to compare it with an existing blob.
///
/// Buffered, because the encoder writes many tiny slices and BLAKE3 is fastest on long ones;
/// stops the encoding (with an error) as soon as it grows past `limit`, the size it is compared
/// with, since it cannot be equal any more.
struct HashingWriter {
    hasher: blake3::Hasher,
    buffer: Vec<u8>,
    /// Bytes already handed to the hasher (not counting `buffer`).
    hashed: u64,
    limit: u64,
}

impl HashingWriter {
    fn new(limit: u64) -> Self {
        HashingWriter {
            hasher: blake3::Hasher::new(),
            buffer: Vec::with_capacity(WRITE_BUFFER_SIZE),
            hashed: 0,
            limit,
        }
    }

    /// The size of the encoding so far.
    fn written(&self) -> u64 {
        self.hashed + self.buffer.len() as u64
    }

    fn finish(mut self) -> blake3::Hash {
        self.hasher.update(&self.buffer);
        self.hasher.finalize()
    }

    /// [`Write::write_all`] when the buffer is full: hash it, and stop once past the limit
    /// (checked here rather than per write, which keeps the common path a bounds check and a
    /// copy; the encoding overshoots the limit by at most one buffer).
    #[cold]
    #[inline(never)]
    fn write_all_cold(&mut self, data: &[u8]) -> io::Result<()> {
        self.hasher.update(&self.buffer);
        self.hashed += self.buffer.len() as u64;
        self.buffer.clear();
        if self.hashed + data.len() as u64 > self.limit {
            return Err(io::Error::other("longer than the blob it is compared with"));
        }
        if data.len() >= self.buffer.capacity() {
            self.hasher.update(data);
            self.hashed += data.len() as u64;
        } else {
            self.buffer.extend_from_slice(data);
        }
        Ok(())
    }
}

impl Write for HashingWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.write_all(data)?;
        Ok(data.len())
    }

    #[inline]
    fn write_all(&mut self, data: &[u8]) -> io::Result<()> {
        if data.len() <= self.buffer.capacity() - self.buffer.len() {
            self.buffer.extend_from_slice(data);
            return Ok(());
        }
        self.write_all_cold(data)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// An encoding in progress, held in memory up to [`SPILL_THRESHOLD`] bytes and streamed to a
/// pending object beyond.
struct SpillingWriter<'s> {
    storage: &'s dyn Storage,
    /// Before spilling, the whole encoding so far, not hashed yet: hashing it at the end is one
    /// call over one slice, the fastest way through BLAKE3. After, the bytes not yet written to
    /// the pending object.
    bytes: Vec<u8>,
    /// How long `bytes` may grow: [`SPILL_THRESHOLD`], then [`WRITE_BUFFER_SIZE`] once spilled.
    /// Its capacity never exceeds this, so room in it means room within the limit.
    limit: usize,
    /// The pending object, once the encoding has outgrown memory.
    spilled: Option<Spilled>,
    /// Why spilling failed, when it did: `Write` can only return an `io::Error`, which the
    /// encoder wraps; [`BlobStore::put_value`] reports this instead.
    storage_failure: Option<StorageError>,
}

/// The part of a spilled encoding already handed to storage.
struct Spilled {
    pending: Box<dyn PendingObject>,
    /// The hash of every byte written to `pending`.
    hasher: blake3::Hasher,
    /// How many bytes were written to `pending`.
    written: u64,
}

impl Spilled {
    /// Hashes and writes `data` a [`WRITE_BUFFER_SIZE`] piece at a time, so that a storage
    /// writing on another thread (the local one does) stores one piece while the next is hashed.
    fn write(&mut self, data: &[u8]) -> io::Result<()> {
        for piece in data.chunks(WRITE_BUFFER_SIZE) {
            self.hasher.update(piece);
            self.pending.write_all(piece)?;
        }
        self.written += data.len() as u64;
        Ok(())
    }
}

impl<'s> SpillingWriter<'s> {
    fn new(storage: &'s dyn Storage) -> Self {
        SpillingWriter {
            storage,
            bytes: Vec::new(),
            limit: SPILL_THRESHOLD,
            spilled: None,
            storage_failure: None,
        }
    }

    /// [`Write::write_all`] when `bytes` must grow, spill, or be written out.
    #[cold]
    #[inline(never)]
    fn write_all_cold(&mut self, data: &[u8]) -> io::Result<()> {
        if data.len() <= self.limit - self.bytes.len() {
            reserve_within(&mut self.bytes, data.len(), self.limit);
            self.bytes.extend_from_slice(data);
            return Ok(());
        }
        let spilled = match &mut self.spilled {
            Some(spilled) => spilled,
            None => {
                // Past the threshold: move what is in memory to a new pending object.
                let pending = match self.storage.start_put(&blob_prefix()) {
                    Ok(pending) => pending,
                    Err(e) => {
                        let message = e.to_string();
                        self.storage_failure = Some(e);
                        return Err(io::Error::other(message));
                    }
                };
                self.limit = WRITE_BUFFER_SIZE;
                self.spilled.insert(Spilled {
                    pending,
                    hasher: blake3::Hasher::new(),
                    written: 0,
                })
            }
        };
        if !self.bytes.is_empty() {
            spilled.write(&self.bytes)?;
            self.bytes.clear();
        }
        if self.bytes.capacity() > self.limit {
            // Just spilled: give back the memory buffer's space.
            self.bytes = Vec::new();
        }
        if data.len() >= WRITE_BUFFER_SIZE {
            // Large slices (a `serde_bytes` field's payload) go straight through, uncopied.
            spilled.write(data)
        } else {
            reserve_within(&mut self.bytes, data.len(), self.limit);
            self.bytes.extend_from_slice(data);
            Ok(())
        }
    }
}

impl Write for SpillingWriter<'_> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.write_all(data)?;
        Ok(data.len())
    }

    /// The encoder writes a value as many tiny slices (a marker byte, then a few bytes of
    /// number); the common case, room left in `bytes`, is kept small enough to inline into it,
    /// where the slices' lengths are constants and the copy a few instructions.
    #[inline]
    fn write_all(&mut self, data: &[u8]) -> io::Result<()> {
        if data.len() <= self.bytes.capacity() - self.bytes.len() {
            self.bytes.extend_from_slice(data);
            return Ok(());
        }
        self.write_all_cold(data)
    }

    fn flush(&mut self) -> io::Result<()> {
        // Nothing is visible before the blob is committed, so there is nothing to flush early.
        Ok(())
    }
}

/// Makes room for `additional` more bytes in `bytes`, growing geometrically as `Vec` does but
/// never past `limit` (which `bytes.len() + additional` must not exceed), so the buffer's
/// capacity stays within its bound.
fn reserve_within(bytes: &mut Vec<u8>, additional: usize, limit: usize) {
    let needed = bytes.len() + additional;
    if needed <= bytes.capacity() {
        return;
    }
    let target = needed.max((bytes.capacity() * 2).clamp(256, limit));
    bytes.reserve_exact(target - bytes.len());
}

fn blob_prefix() -> Key {
    Key::segment(BLOB_PREFIX).unwrap_or_else(|e| unreachable!("`blobs` is a valid key: {e}"))
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::fs;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::SystemTime;

    use serde::{Deserialize, Serializer};

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

    /// Sets the blob's modification time two days back, as if an old run had written it.
    fn age(dir: &std::path::Path, hash: &BlobHash) {
        let old = std::time::SystemTime::now() - std::time::Duration::from_secs(2 * 24 * 3600);
        let file = std::fs::File::options()
            .write(true)
            .open(dir.join(hash.key().as_str()))
            .unwrap();
        file.set_modified(old).unwrap();
    }

    fn is_recent(storage: &LocalStorage, hash: &BlobHash) -> bool {
        let modified = storage.stat(&hash.key()).unwrap().unwrap().modified;
        modified.elapsed().unwrap_or_default() < std::time::Duration::from_secs(600)
    }

    /// Every way of relying on a stored blob without writing it (a small value stored again, a
    /// large streamed one, a field left unchanged, a task reused by `resume`) renews an old
    /// blob's time, so that a collection going on keeps it (`freshness.rs`).
    #[test]
    fn relying_on_an_old_blob_without_writing_it_renews_its_time() {
        let (dir, storage) = store();
        let blobs = BlobStore::new(&storage);
        let small = blobs.put_value(&model()).unwrap();
        let large = serde_bytes::ByteBuf::from(vec![7u8; SPILL_THRESHOLD + 17]);
        let large_blob = blobs.put_value(&large).unwrap();
        assert!(large_blob.size > SPILL_THRESHOLD as u64, "streamed");

        age(dir.path(), &small.hash);
        assert!(!is_recent(&storage, &small.hash));
        assert!(!blobs.put_value(&model()).unwrap().newly_stored);
        assert!(is_recent(&storage, &small.hash), "small value stored again");

        age(dir.path(), &large_blob.hash);
        assert!(!blobs.put_value(&large).unwrap().newly_stored);
        assert!(
            is_recent(&storage, &large_blob.hash),
            "large value stored again"
        );

        age(dir.path(), &small.hash);
        let previous = ArtifactEntry {
            name: "m".into(),
            hash: small.hash,
            size: small.size,
            type_name: String::new(),
            encoding: Encoding::MsgPack,
        };
        let unchanged = blobs
            .put_value_unless_unchanged(&model(), &previous)
            .unwrap();
        assert_eq!(unchanged.hash, small.hash);
        assert!(is_recent(&storage, &small.hash), "field left unchanged");

        age(dir.path(), &small.hash);
        assert!(blobs.keep_fresh(&small.hash, Some(small.size)).unwrap());
        assert!(is_recent(&storage, &small.hash), "reused by resume");
        assert!(
            !blobs.keep_fresh(&small.hash, Some(small.size + 1)).unwrap(),
            "other size"
        );
        std::fs::remove_file(dir.path().join(small.hash.key().as_str())).unwrap();
        assert!(
            !blobs.keep_fresh(&small.hash, Some(small.size)).unwrap(),
            "gone"
        );

        // A blob written recently is left alone: no write for every unchanged field.
        let before = storage
            .stat(&large_blob.hash.key())
            .unwrap()
            .unwrap()
            .modified;
        blobs.put_value(&large).unwrap();
        let after = storage
            .stat(&large_blob.hash.key())
            .unwrap()
            .unwrap()
            .modified;
        assert_eq!(before, after);
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

    /// A [`LocalStorage`] that counts the writes asked of it.
    #[derive(Debug)]
    struct Counting {
        inner: LocalStorage,
        start_puts: AtomicUsize,
        puts_content: AtomicUsize,
        size_lookups: AtomicUsize,
        fail_start_put: bool,
        /// Readers that fail with an I/O error after this many bytes.
        fail_reads_after: Option<usize>,
    }

    impl Counting {
        fn new(inner: LocalStorage) -> Self {
            Counting {
                inner,
                start_puts: AtomicUsize::new(0),
                puts_content: AtomicUsize::new(0),
                size_lookups: AtomicUsize::new(0),
                fail_start_put: false,
                fail_reads_after: None,
            }
        }

        /// Size lookups (`Storage::size`) so far.
        fn size_lookups(&self) -> usize {
            self.size_lookups.load(Ordering::SeqCst)
        }

        /// (streamed writes started, content-addressed puts) so far.
        fn counts(&self) -> (usize, usize) {
            (
                self.start_puts.load(Ordering::SeqCst),
                self.puts_content.load(Ordering::SeqCst),
            )
        }
    }

    impl Storage for Counting {
        fn put(&self, key: &Key, bytes: &[u8]) -> Result<(), StorageError> {
            self.inner.put(key, bytes)
        }
        fn put_if_absent(&self, key: &Key, bytes: &[u8]) -> Result<bool, StorageError> {
            self.inner.put_if_absent(key, bytes)
        }
        fn put_content(&self, key: &Key, bytes: &[u8]) -> Result<bool, StorageError> {
            self.puts_content.fetch_add(1, Ordering::SeqCst);
            self.inner.put_content(key, bytes)
        }
        fn get_at_most(&self, key: &Key, limit: u64) -> Result<Vec<u8>, StorageError> {
            self.inner.get_at_most(key, limit)
        }
        fn set_aside(&self, key: &Key, content: &[u8], aside: &Key) -> Result<bool, StorageError> {
            self.inner.set_aside(key, content, aside)
        }
        fn start_put(&self, near: &Key) -> Result<Box<dyn PendingObject>, StorageError> {
            self.start_puts.fetch_add(1, Ordering::SeqCst);
            if self.fail_start_put {
                return Err(StorageError::Io {
                    action: "create a temporary file in",
                    location: "the test".into(),
                    source: io::Error::other("disk full"),
                });
            }
            self.inner.start_put(near)
        }
        fn get(&self, key: &Key) -> Result<Vec<u8>, StorageError> {
            self.inner.get(key)
        }
        fn reader(&self, key: &Key) -> Result<Box<dyn io::Read + Send>, StorageError> {
            let inner = self.inner.reader(key)?;
            Ok(match self.fail_reads_after {
                Some(after) => Box::new(io::Read::chain(
                    io::Read::take(inner, after as u64),
                    FailingRead,
                )),
                None => inner,
            })
        }
        fn size(&self, key: &Key) -> Result<Option<u64>, StorageError> {
            self.size_lookups.fetch_add(1, Ordering::SeqCst);
            self.inner.size(key)
        }
        fn stat(&self, key: &Key) -> Result<Option<crate::datastore::ObjectStat>, StorageError> {
            self.size_lookups.fetch_add(1, Ordering::SeqCst);
            self.inner.stat(key)
        }
        fn refresh(&self, key: &Key) -> Result<bool, StorageError> {
            self.inner.refresh(key)
        }
        fn list(&self, prefix: Option<&Key>) -> Result<Vec<Key>, StorageError> {
            self.inner.list(prefix)
        }
        fn list_children(
            &self,
            prefix: Option<&Key>,
        ) -> Result<crate::datastore::Children, StorageError> {
            self.inner.list_children(prefix)
        }
        fn delete(&self, key: &Key) -> Result<bool, StorageError> {
            self.inner.delete(key)
        }
    }

    /// A reader whose disk went away.
    struct FailingRead;

    impl io::Read for FailingRead {
        fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
            Err(io::Error::other("the disk went away"))
        }
    }

    fn counting() -> (tempfile::TempDir, Counting) {
        let (dir, storage) = store();
        (dir, Counting::new(storage))
    }

    /// The in-memory encoding of `value`, as `put_value` must store it.
    fn encoding_of<T: Serialize + ?Sized>(value: &T) -> Vec<u8> {
        let mut bytes = Vec::new();
        state::encode_field(&mut bytes, value).unwrap();
        bytes
    }

    /// Inode and modification time of every directory and file under `root`: what creating or
    /// deleting any file (a temporary one included) would change.
    #[cfg(unix)]
    fn fingerprint(root: &std::path::Path) -> Vec<(std::path::PathBuf, u64, SystemTime)> {
        use std::os::unix::fs::MetadataExt;
        let mut paths = walk(root);
        let mut dirs = vec![root.to_path_buf()];
        while let Some(dir) = dirs.pop() {
            for entry in fs::read_dir(&dir).unwrap() {
                let entry = entry.unwrap();
                if entry.file_type().unwrap().is_dir() {
                    dirs.push(entry.path());
                }
            }
            paths.push(dir);
        }
        paths.sort();
        paths
            .into_iter()
            .map(|p| {
                let m = fs::metadata(&p).unwrap();
                (p, m.ino(), m.modified().unwrap())
            })
            .collect()
    }

    #[cfg(unix)]
    #[test]
    fn a_small_value_stored_again_creates_no_file() {
        let (_dir, storage) = counting();
        let blobs = BlobStore::new(&storage);
        let first = blobs.put_value(&model()).unwrap();
        assert!(first.newly_stored);
        assert_eq!(
            storage.counts(),
            (0, 1),
            "built in memory, stored in one put"
        );
        let before = fingerprint(storage.inner.root());
        // Directory times have a coarse clock: let it tick, so that a file created and deleted
        // by the second store would show.
        std::thread::sleep(std::time::Duration::from_millis(50));

        let second = blobs.put_value(&model()).unwrap();
        assert_eq!(second.hash, first.hash);
        assert_eq!(second.size, first.size);
        assert!(!second.newly_stored);
        assert_eq!(storage.counts(), (0, 2));
        // No file created, renamed or deleted anywhere: same inodes, same directory times.
        assert_eq!(fingerprint(storage.inner.root()), before);
        let all = walk(storage.inner.root());
        assert_eq!(all, [storage.inner.path_of(&first.hash.key())]);
    }

    #[test]
    fn a_blob_a_run_knows_is_not_looked_up_again() {
        let (_dir, storage) = counting();
        let known = KnownBlobs::new();
        let blobs = BlobStore::new(&storage).remembering(&known);
        let first = blobs.put_value(&model()).unwrap();
        assert!(first.newly_stored);
        assert_eq!(storage.counts(), (0, 1));
        for _ in 0..3 {
            let again = blobs.put_value(&model()).unwrap();
            assert_eq!((again.hash, again.newly_stored), (first.hash, false));
        }
        assert_eq!(storage.counts(), (0, 1), "known: no lookup, no put");
        // A store without the memory (another run) looks it up as before.
        BlobStore::new(&storage).put_value(&model()).unwrap();
        assert_eq!(storage.counts(), (0, 2));

        // A large value committed once is known too.
        let many = serde_bytes::ByteBuf::from(vec![7u8; SPILL_THRESHOLD + 1]);
        let big = blobs.put_value(&many).unwrap();
        assert!(big.newly_stored);
        let (starts, puts) = storage.counts();
        let lookups = storage.size_lookups();
        let again = blobs.put_value(&many).unwrap();
        assert_eq!((again.hash, again.newly_stored), (big.hash, false));
        assert_eq!(
            storage.counts(),
            (starts + 1, puts),
            "streamed, then discarded"
        );
        assert_eq!(storage.size_lookups(), lookups, "and not looked up");
        assert_eq!(
            walk(storage.inner.root()).len(),
            2,
            "no second copy left behind"
        );
    }

    #[test]
    fn a_field_is_told_unchanged_or_changed_by_its_parents_kept_encoding() {
        #[derive(Serialize)]
        struct State {
            xs: Vec<u64>,
            y: u64,
            name: String,
        }
        let (_dir, storage) = counting();
        let known = KnownBlobs::new();
        let blobs = BlobStore::new(&storage).remembering(&known);
        let parent = State {
            xs: (0..10_000).collect(),
            y: 0,
            name: "split".into(),
        };
        let parent_entries = blobs.store_state(&parent).unwrap();
        let hash_of = |entries: &[ArtifactEntry], name: &str| {
            entries.iter().find(|e| e.name == name).unwrap().hash
        };
        for (child, changed) in [
            (
                State {
                    xs: (0..10_000).collect(),
                    y: 7,
                    name: "split".into(),
                },
                vec!["y"],
            ),
            // A prefix of the parent's encoding, and one longer than it: both changes.
            (
                State {
                    xs: (0..9_999).collect(),
                    y: 0,
                    name: "spli".into(),
                },
                vec!["xs", "name"],
            ),
            (
                State {
                    xs: (0..10_001).collect(),
                    y: 0,
                    name: "split!".into(),
                },
                vec!["xs", "name"],
            ),
        ] {
            let entries = blobs.store_state_after(&child, &parent_entries).unwrap();
            let fresh = BlobStore::new(&storage).store_state(&child).unwrap();
            assert_eq!(
                entries, fresh,
                "the same entries as storing it from scratch"
            );
            for name in ["xs", "y", "name"] {
                assert_eq!(
                    hash_of(&entries, name) != hash_of(&parent_entries, name),
                    changed.contains(&name),
                    "{name}"
                );
            }
        }
    }

    #[test]
    fn a_large_blob_whose_reading_fails_is_a_storage_error_and_stays() {
        let (_dir, mut storage) = counting();
        let floats: Vec<f32> = (0..2_000_000).map(|i| i as f32).collect();
        let stored = BlobStore::new(&storage).put_value(&floats).unwrap();
        assert!(stored.size >= super::super::blob_reading::STREAMED_FROM);
        let entry = ArtifactEntry {
            name: "floats".into(),
            hash: stored.hash,
            size: stored.size,
            type_name: "Vec<f32>".into(),
            encoding: Encoding::MsgPack,
        };
        storage.fail_reads_after = Some(3 << 20);
        let error = BlobStore::new(&storage)
            .load_artifact::<Vec<f32>>(&entry)
            .unwrap_err();
        assert!(
            matches!(&error, LoadError::Blob(e) if matches!(e.kind(), BlobErrorKind::Storage(_))),
            "{error}"
        );
        let message = error.to_string();
        assert!(
            message.contains("artifact `floats`") && message.contains("the disk went away"),
            "{message}"
        );
        // Nothing was set aside: read again on a working disk, it loads.
        storage.fail_reads_after = None;
        let back: Vec<f32> = BlobStore::new(&storage).load_artifact(&entry).unwrap();
        assert_eq!(back, floats);
    }

    #[test]
    fn a_value_past_the_threshold_spills_and_roundtrips() {
        let (_dir, storage) = counting();
        let blobs = BlobStore::new(&storage);
        // One large slice (a `serde_bytes` payload goes through in one write) ...
        let big = serde_bytes::ByteBuf::from(
            (0..SPILL_THRESHOLD + WRITE_BUFFER_SIZE + 3)
                .map(|i| (i % 253) as u8)
                .collect::<Vec<_>>(),
        );
        // ... and many small writes (5 bytes per element).
        let many: Vec<u32> = (0..(SPILL_THRESHOLD as u32 / 4))
            .map(|i| i | 1 << 20)
            .collect();
        for (spills, expected) in [(1, encoding_of(&big)), (2, encoding_of(&many))] {
            assert!(expected.len() > SPILL_THRESHOLD + WRITE_BUFFER_SIZE);
            let stored = if spills == 1 {
                blobs.put_value(&big).unwrap()
            } else {
                blobs.put_value(&many).unwrap()
            };
            assert_eq!(storage.counts(), (spills, 0), "streamed, not buffered");
            assert!(stored.newly_stored);
            assert_eq!(stored.hash, BlobHash::of(&expected));
            assert_eq!(stored.size, expected.len() as u64);
            assert_eq!(
                blobs.get(&stored.hash, Some(stored.size)).unwrap(),
                expected
            );
        }
        let back: Vec<u32> = blobs
            .load_artifact(&ArtifactEntry {
                name: "many".into(),
                hash: BlobHash::of(&encoding_of(&many)),
                size: encoding_of(&many).len() as u64,
                type_name: String::new(),
                encoding: Encoding::MsgPack,
            })
            .unwrap();
        assert_eq!(back, many);

        // Stored again: found, the spilled copy discarded, nothing left behind.
        let again = blobs.put_value(&big).unwrap();
        assert!(!again.newly_stored);
        assert_eq!(walk(storage.inner.root()).len(), 2);
    }

    #[test]
    fn a_large_field_left_unchanged_writes_nothing() {
        #[derive(Serialize)]
        struct State<'a> {
            big: &'a [u32],
            small: u8,
        }
        let (_dir, storage) = counting();
        let blobs = BlobStore::new(&storage);
        let mut big: Vec<u32> = (0..(SPILL_THRESHOLD as u32 / 4))
            .map(|i| i | 1 << 20)
            .collect();
        let first = blobs
            .store_state(&State {
                big: &big,
                small: 1,
            })
            .unwrap();
        assert_eq!(storage.counts(), (1, 1));
        let before = fingerprint(storage.inner.root());

        // Unchanged, the small field changed: one put for it, no streamed write at all.
        let second = blobs
            .store_state_after(
                &State {
                    big: &big,
                    small: 2,
                },
                &first,
            )
            .unwrap();
        assert_eq!(
            storage.counts(),
            (1, 2),
            "no streamed write for the unchanged field"
        );
        assert_eq!(second[0], first[0]);
        assert_ne!(second[1], first[1]);
        // Only the small field's blob appeared; nothing else was created or deleted.
        let after = fingerprint(storage.inner.root());
        assert_eq!(
            after.len(),
            before.len() + 2,
            "one blob and its fan-out directory"
        );

        // Changed in its last element (same size), grown and shrunk: stored, and exactly as
        // `put_value` would store it.
        let last = big.len() - 1;
        big[last] ^= 1;
        let changed = blobs
            .store_state_after(
                &State {
                    big: &big,
                    small: 2,
                },
                &first,
            )
            .unwrap();
        assert_eq!(changed[0].hash, BlobHash::of(&encoding_of(&big)));
        big.push(7);
        let grown = blobs
            .store_state_after(
                &State {
                    big: &big,
                    small: 2,
                },
                &first,
            )
            .unwrap();
        assert_eq!(grown[0].hash, BlobHash::of(&encoding_of(&big)));
        big.truncate(big.len() - 2);
        let shrunk = blobs
            .store_state_after(
                &State {
                    big: &big,
                    small: 2,
                },
                &first,
            )
            .unwrap();
        assert_eq!(shrunk[0].hash, BlobHash::of(&encoding_of(&big)));
        for entries in [&changed, &grown, &shrunk] {
            let bytes = blobs.get(&entries[0].hash, Some(entries[0].size)).unwrap();
            assert_eq!(bytes.len() as u64, entries[0].size);
        }

        // The previous blob is gone (a partial copy of a datastore): stored again, not assumed.
        let original: Vec<u32> = (0..(SPILL_THRESHOLD as u32 / 4))
            .map(|i| i | 1 << 20)
            .collect();
        assert!(storage.delete(&first[0].hash.key()).unwrap());
        let restored = blobs
            .store_state_after(
                &State {
                    big: &original,
                    small: 1,
                },
                &first,
            )
            .unwrap();
        assert_eq!(restored, first);
        assert!(blobs.contains(&first[0].hash).unwrap());
    }

    #[test]
    fn an_encoding_of_exactly_the_threshold_stays_in_memory() {
        let (_dir, storage) = counting();
        let blobs = BlobStore::new(&storage);
        // MessagePack `bin 32`: a 5-byte header, then the bytes.
        let at = serde_bytes::ByteBuf::from(vec![1u8; SPILL_THRESHOLD - 5]);
        assert_eq!(encoding_of(&at).len(), SPILL_THRESHOLD);
        let stored = blobs.put_value(&at).unwrap();
        assert_eq!(stored.size, SPILL_THRESHOLD as u64);
        assert_eq!(storage.counts(), (0, 1));

        // One byte more spills.
        let past = serde_bytes::ByteBuf::from(vec![1u8; SPILL_THRESHOLD - 4]);
        let stored = blobs.put_value(&past).unwrap();
        assert_eq!(stored.size, SPILL_THRESHOLD as u64 + 1);
        assert_eq!(stored.hash, BlobHash::of(&encoding_of(&past)));
        assert_eq!(storage.counts(), (1, 1));

        // Small writes that end exactly at the threshold, then one byte past it.
        let mut small_writes = SpillingWriter::new(&storage);
        for _ in 0..SPILL_THRESHOLD / 4 {
            small_writes.write_all(&[1, 2, 3, 4]).unwrap();
        }
        assert!(small_writes.spilled.is_none());
        assert_eq!(small_writes.bytes.len(), SPILL_THRESHOLD);
        assert!(small_writes.bytes.capacity() <= SPILL_THRESHOLD);
        small_writes.write_all(&[5]).unwrap();
        assert_eq!(small_writes.bytes, [5]);
        assert!(small_writes.bytes.capacity() <= WRITE_BUFFER_SIZE);
        assert!(matches!(&small_writes.spilled, Some(s) if s.written == SPILL_THRESHOLD as u64));
        assert_eq!(storage.counts(), (2, 1));
    }

    #[test]
    fn a_storage_failure_while_spilling_is_reported_as_such() {
        let (_dir, mut storage) = counting();
        storage.fail_start_put = true;
        let blobs = BlobStore::new(&storage);
        let big = serde_bytes::ByteBuf::from(vec![0u8; SPILL_THRESHOLD + 1]);
        let err = blobs.put_value(&big).unwrap_err();
        assert!(matches!(err, BlobWriteError::Storage(_)), "{err:?}");
        assert!(err.to_string().contains("disk full"), "{err}");
        // Small values never needed it.
        assert!(blobs.put_value(&model()).is_ok());
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

    #[cfg(target_os = "linux")]
    #[test]
    fn a_blob_whose_direct_writes_are_refused_after_open_holds_the_bytes_of_its_hash() {
        let dir = tempfile::tempdir().unwrap();
        let big = serde_bytes::ByteBuf::from(
            (0..5 * SPILL_THRESHOLD + 77)
                .map(|i| (i % 251) as u8)
                .collect::<Vec<_>>(),
        );
        let expected = encoding_of(&big);
        for accept in [0, 1, 3] {
            let storage = LocalStorage::open(dir.path().join(format!("ds-{accept}")))
                .unwrap()
                .with_sync(false)
                .refusing_direct_writes_after(accept);
            let blobs = BlobStore::new(&storage);
            let stored = blobs.put_value(&big).unwrap();
            assert_eq!(stored.hash, BlobHash::of(&expected));
            let on_disk = fs::read(storage.path_of(&stored.hash.key())).unwrap();
            assert_eq!(
                on_disk.len(),
                expected.len(),
                "refused after {accept} direct writes"
            );
            assert!(
                BlobHash::of(&on_disk) == stored.hash,
                "refused after {accept} direct writes: blob {} holds bytes that hash to {}",
                stored.hash,
                BlobHash::of(&on_disk)
            );
        }
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
        let aside = BlobStore::set_aside_key(&stored.hash);
        assert_eq!(
            err.to_string(),
            format!(
                "run 3, step train, task 0, artifact `model`: blob {} is corrupted: \
                 its content hashes to {} (set aside as `{aside}`: the next run that stores \
                 this value writes it again)",
                stored.hash,
                BlobHash::of(&bytes)
            )
        );
        // The damaged copy is kept aside, and later reads still say what happened.
        assert_eq!(fs::read(storage.path_of(&aside)).unwrap(), bytes);
        let again = blobs.get(&stored.hash, Some(stored.size)).unwrap_err();
        assert!(
            matches!(again.kind(), BlobErrorKind::SetAside { set_aside } if *set_aside == aside),
            "{again}"
        );
        assert!(again.to_string().contains("is corrupted"), "{again}");
    }

    #[test]
    fn a_blob_damaged_in_place_is_repaired_by_the_next_store_of_its_value() {
        let (_dir, storage) = store();
        let blobs = BlobStore::new(&storage);
        let big = serde_bytes::ByteBuf::from(
            (0..SPILL_THRESHOLD + 4096)
                .map(|i| (i % 241) as u8)
                .collect::<Vec<_>>(),
        );
        for stored in [
            blobs.put_value(&model()).unwrap(),
            blobs.put_value(&big).unwrap(),
        ] {
            let path = storage.path_of(&stored.hash.key());
            let mut bytes = fs::read(&path).unwrap();
            let middle = bytes.len() / 2;
            bytes[middle] ^= 0x40;
            fs::write(&path, &bytes).unwrap();
            // Same size: a store before anyone reads it cannot tell, and keeps it.
            assert!(blobs.get(&stored.hash, Some(stored.size)).is_err());

            let again = if stored.size > SPILL_THRESHOLD as u64 {
                blobs.put_value(&big).unwrap()
            } else {
                blobs.put_value(&model()).unwrap()
            };
            assert_eq!(again.hash, stored.hash);
            assert!(again.newly_stored, "the damaged blob was taken as stored");
            let back = blobs.get(&stored.hash, Some(stored.size)).unwrap();
            assert_eq!(BlobHash::of(&back), stored.hash);
        }
    }

    #[test]
    fn an_empty_or_truncated_blob_is_repaired_by_the_next_store_of_its_value() {
        #[derive(Serialize)]
        struct State<'a> {
            big: &'a serde_bytes::ByteBuf,
            model: &'a Model,
        }
        let big = serde_bytes::ByteBuf::from(
            (0..SPILL_THRESHOLD + 4096)
                .map(|i| (i % 239) as u8)
                .collect::<Vec<_>>(),
        );
        let model = model();
        let state = State {
            big: &big,
            model: &model,
        };
        for cut in [|_: usize| 0, |len: usize| len / 2] {
            let (_dir, storage) = store();
            let blobs = BlobStore::new(&storage);
            let first = blobs.store_state(&state).unwrap();
            for entry in &first {
                let path = storage.path_of(&entry.hash.key());
                let bytes = fs::read(&path).unwrap();
                fs::write(&path, &bytes[..cut(bytes.len())]).unwrap();
            }
            // The next run stores the same values, the large one both ways a task can.
            let again = blobs.store_state(&state).unwrap();
            assert_eq!(again, first);
            let back: (serde_bytes::ByteBuf, Model) = (
                blobs.load_artifact(&again[0]).unwrap(),
                blobs.load_artifact(&again[1]).unwrap(),
            );
            assert_eq!(back, (big.clone(), model.clone()));

            let path = storage.path_of(&first[0].hash.key());
            let bytes = fs::read(&path).unwrap();
            fs::write(&path, &bytes[..cut(bytes.len())]).unwrap();
            let after = blobs.store_state_after(&state, &first).unwrap();
            assert_eq!(after, first);
            let back: serde_bytes::ByteBuf = blobs.load_artifact(&after[0]).unwrap();
            assert_eq!(back, big);
        }
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
        struct Failing(usize);
        impl Serialize for Failing {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                use serde::ser::SerializeSeq;
                let mut seq = s.serialize_seq(Some(2))?;
                seq.serialize_element(&serde_bytes::ByteBuf::from(vec![0u8; self.0]))?;
                Err(serde::ser::Error::custom("device lost"))
            }
        }
        let (_dir, storage) = store();
        let blobs = BlobStore::new(&storage);
        let err = blobs.put_value(&Failing(4096)).unwrap_err();
        assert!(err.to_string().contains("device lost"), "{err}");
        assert!(walk(storage.root()).is_empty());
        // Also once the encoding has spilled to a temporary file.
        let err = blobs.put_value(&Failing(SPILL_THRESHOLD + 1)).unwrap_err();
        assert!(matches!(err, BlobWriteError::Encode(_)), "{err:?}");
        assert!(walk(storage.root()).is_empty());
    }
}
