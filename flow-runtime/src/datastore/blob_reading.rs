//! A large blob decoded while it is read: a second thread reads it in chunks and hashes each
//! one; the caller's thread decodes the chunks as they arrive.
//!
//! Reading a blob whole and then hashing and decoding it costs a buffer as large as the blob
//! (on the development machine, the kernel takes about 40 ms to hand out 100 MiB of fresh
//! pages) and three passes one after the other. Here the blob flows through a few chunks of
//! [`CHUNK`] bytes that are reused, reading and hashing run beside decoding, and a large
//! `serde_bytes` field is copied once, from the chunks into its own vector.
//!
//! Nothing unverified escapes: the decoded value is returned only once the reading thread has
//! read every byte the task index names (and not one more) and they hash to the blob's name.
//! A damaged blob is reported as such even when its bytes also fail to decode, and is set aside
//! as [`BlobStore::get`] does. Decoding bytes not yet verified is safe because the decoder is
//! bounded on its own (`state::decoder`: nesting limits, size hints no larger than the bytes
//! left); a `Deserialize` impl of the user's that panics on unexpected input may see damaged
//! bytes before their hash is known.

use std::io::{self, Read};
use std::sync::mpsc;
use std::thread;

use super::{BlobError, BlobErrorKind, BlobHash, BlobStore, StorageError};
use crate::state::decoder::ChunkInput;

/// Blobs at least this large are decoded while read; smaller ones are read whole first (a
/// thread costs more than it saves on them).
pub(crate) const STREAMED_FROM: u64 = 4 << 20;

/// The size of the chunks the reading thread fills.
const CHUNK: usize = 256 << 10;

/// How many chunks may wait for the decoder: enough that neither thread waits on the other
/// for long, few enough to stay in the cache.
const AHEAD: usize = 8;

/// What the reading thread found: the hash of what it read and how many bytes, or the error
/// the storage gave.
type ReadOutcome = Result<(BlobHash, u64), io::Error>;

/// A blob being read by its own thread; what [`StreamedBlob::input`] decodes from.
pub(crate) struct StreamedBlob<'scope> {
    hash: BlobHash,
    expected: u64,
    reader: thread::ScopedJoinHandle<'scope, ReadOutcome>,
}

impl<'s> BlobStore<'s> {
    /// Starts reading the blob `hash`, of `expected` bytes, on a thread of `scope`; returns it
    /// with the input to decode it from.
    ///
    /// # Errors
    ///
    /// The blob is missing (or set aside) or cannot be opened.
    pub(crate) fn stream<'scope>(
        &self,
        scope: &'scope thread::Scope<'scope, '_>,
        hash: BlobHash,
        expected: u64,
    ) -> Result<(StreamedBlob<'scope>, ChunkInput), BlobError>
    where
        's: 'scope,
    {
        let key = hash.key();
        let reader = self.storage.reader(&key).map_err(|e| {
            if e.is_not_found() {
                BlobError::new(hash, self.absent_kind(&hash))
            } else {
                BlobError::new(hash, BlobErrorKind::Storage(e))
            }
        })?;
        let (full, incoming) = mpsc::sync_channel(AHEAD);
        let (spent, empty) = mpsc::channel();
        let reader = scope.spawn(move || read_chunks(reader, expected, &full, &empty));
        let total = usize::try_from(expected).unwrap_or(usize::MAX);
        Ok((
            StreamedBlob {
                hash,
                expected,
                reader,
            },
            ChunkInput::new(total, incoming, spent),
        ))
    }
}

impl StreamedBlob<'_> {
    /// Waits for the reading thread and says whether the blob was intact: exactly the size
    /// expected, hashing to its name. A damaged blob is set aside (see [`BlobStore::get`]).
    ///
    /// # Errors
    ///
    /// [`BlobError`]: truncated, oversized, corrupted, or the storage failed.
    pub(crate) fn verify(self, store: &BlobStore<'_>) -> Result<(), BlobError> {
        let outcome = self
            .reader
            .join()
            .unwrap_or_else(|_| Err(io::Error::other("the thread reading the blob panicked")));
        let (found, read) = match outcome {
            Ok(found) => found,
            Err(e) => {
                return Err(BlobError::new(
                    self.hash,
                    BlobErrorKind::Storage(StorageError::Io {
                        action: "read",
                        location: self.hash.key().to_string(),
                        source: e,
                    }),
                ));
            }
        };
        if let Some(wrong) = BlobError::of_size(self.hash, self.expected, read) {
            return Err(wrong);
        }
        if found == self.hash {
            return Ok(());
        }
        // Damaged: read it again whole, which reports it and sets it aside as every read does.
        match store.get(&self.hash, Some(self.expected)) {
            Err(e) => Err(e),
            // Stored again, intact, since it was read: what was decoded is still not it.
            Ok(_) => Err(BlobError::new(
                self.hash,
                BlobErrorKind::HashMismatch {
                    actual: found,
                    set_aside: None,
                },
            )),
        }
    }
}

/// The reading thread: fills chunks from `reader`, hashes them, sends them to the decoder, and
/// reads one byte past `expected` to tell an oversized blob. When the decoder stops early (it
/// failed, or the value ended before the bytes did) it keeps reading and hashing, so that a
/// damaged blob is told apart from a value of the wrong type.
fn read_chunks(
    mut reader: Box<dyn Read + Send>,
    expected: u64,
    full: &mpsc::SyncSender<(Vec<u8>, usize)>,
    empty: &mpsc::Receiver<Vec<u8>>,
) -> ReadOutcome {
    let mut hasher = blake3::Hasher::new();
    let mut read: u64 = 0;
    let mut chunks_made = 0;
    let mut decoder_gone = false;
    let mut spare: Option<Vec<u8>> = None;
    loop {
        let mut chunk = match spare.take().or_else(|| empty.try_recv().ok()) {
            Some(chunk) => chunk,
            None if chunks_made < AHEAD + 2 || decoder_gone => {
                chunks_made += 1;
                vec![0; CHUNK]
            }
            None => match empty.recv() {
                Ok(chunk) => chunk,
                Err(_) => vec![0; CHUNK],
            },
        };
        // Never more than one byte past what the index says.
        let room = (expected + 1).saturating_sub(read);
        let want = CHUNK.min(usize::try_from(room).unwrap_or(CHUNK));
        let filled = fill(&mut reader, &mut chunk[..want])?;
        hasher.update(&chunk[..filled]);
        read += filled as u64;
        let last = filled < want || read > expected;
        if filled > 0 {
            if decoder_gone {
                spare = Some(chunk);
            } else if let Err(mpsc::SendError((chunk, _))) = full.send((chunk, filled)) {
                decoder_gone = true;
                spare = Some(chunk);
            }
        }
        if last || filled == 0 {
            return Ok((BlobHash::from_blake3(hasher.finalize()), read));
        }
    }
}

/// Reads into `buf` until it is full or the reader ends; how many bytes were read.
fn fill(reader: &mut dyn Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

#[cfg(test)]
mod tests;
