//! An artifact's blob read as a stream, its size and hash checked along the way.
//!
//! `BlobStore::get` holds a whole blob in memory, which a 1 GiB artifact makes 1 GiB; a reader
//! that shows or copies a value (the CLI's `dump`) only ever needs to look at it once from start
//! to end. [`CheckedBlob`] reads the blob through the
//! storage's streaming reader, never more than one byte past the size the task index recorded,
//! and hashes what it reads; [`CheckedBlob::finish`] reads what is left and says whether the
//! bytes were the blob the index names, with the same messages as `BlobStore::get`.

use std::io::{self, Read};

use super::ClientError;
use crate::datastore::{ArtifactEntry, BlobErrorKind, BlobHash, BlobStore, Storage};

/// How much [`CheckedBlob::finish`] reads at a time.
const DRAIN_CHUNK: usize = 1 << 20;

/// An artifact's blob being read, checked against its index entry: from
/// [`TaskEntry::open_artifact`](super::TaskEntry::open_artifact).
///
/// Reading gives the blob's bytes as stored; they are only known to be the artifact's once
/// [`CheckedBlob::finish`] says so. A reader that acts on the bytes (prints them) before the end
/// checks the whole blob first with [`TaskEntry::verify_artifact`](super::TaskEntry::verify_artifact).
pub struct CheckedBlob<'s> {
    storage: &'s dyn Storage,
    inner: Box<dyn Read + Send>,
    hash: BlobHash,
    expected: u64,
    hasher: blake3::Hasher,
    read: u64,
    /// Where the blob was needed: "run R, step S, task T, artifact `a`".
    context: String,
    /// The first error of the storage's reader, kept apart from decoding errors it causes.
    failure: Option<String>,
}

impl<'s> CheckedBlob<'s> {
    /// Opens the blob of `entry` for reading.
    ///
    /// # Errors
    ///
    /// A missing or unreadable blob ([`ClientError::Blob`]), named with `context`.
    pub(crate) fn open(
        storage: &'s dyn Storage,
        entry: &ArtifactEntry,
        context: String,
    ) -> Result<Self, ClientError> {
        let inner = storage.reader(&entry.hash.key()).map_err(|e| {
            let kind = if e.is_not_found() {
                // Perhaps an earlier read found it damaged and set it aside: say so.
                BlobStore::new(storage).absent_kind(&entry.hash)
            } else {
                BlobErrorKind::Storage(e)
            };
            blob_error(&context, entry.hash, &kind)
        })?;
        Ok(CheckedBlob {
            storage,
            inner,
            hash: entry.hash,
            expected: entry.size,
            hasher: blake3::Hasher::new(),
            read: 0,
            context,
            failure: None,
        })
    }

    /// Reads the blob of `entry` to its end and checks it, holding none of it.
    ///
    /// # Errors
    ///
    /// As [`CheckedBlob::finish`].
    pub(crate) fn verify(
        storage: &'s dyn Storage,
        entry: &ArtifactEntry,
        context: String,
    ) -> Result<(), ClientError> {
        CheckedBlob::open(storage, entry, context)?.finish()
    }

    /// Reads what is left and checks that the blob had the recorded size and hash.
    ///
    /// # Errors
    ///
    /// A blob that could not be read, is truncated, longer than recorded, or corrupted
    /// ([`ClientError::Blob`]), named with the artifact and the task it belongs to.
    pub fn finish(&mut self) -> Result<(), ClientError> {
        let mut chunk = vec![0; DRAIN_CHUNK];
        loop {
            match self.read(&mut chunk) {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    let message = self.failure.take().unwrap_or_else(|| e.to_string());
                    return Err(self.fail(&BlobErrorKind::Storage(io_error(message))));
                }
            }
        }
        if let Some(message) = self.failure.take() {
            return Err(self.fail(&BlobErrorKind::Storage(io_error(message))));
        }
        if self.read < self.expected {
            return Err(self.fail(&BlobErrorKind::Truncated {
                expected: self.expected,
                actual: self.read,
            }));
        }
        if self.read > self.expected {
            let actual = self
                .storage
                .size(&self.hash.key())
                .ok()
                .flatten()
                .unwrap_or(self.read);
            return Err(self.fail(&BlobErrorKind::Oversized {
                expected: self.expected,
                actual,
            }));
        }
        let found = self.hasher.finalize();
        if found.as_bytes() != self.hash.as_bytes() {
            return Err(match found.to_hex().parse::<BlobHash>() {
                Ok(actual) => self.fail(&BlobErrorKind::HashMismatch {
                    actual,
                    set_aside: None,
                }),
                Err(_) => ClientError::Blob {
                    context: self.context.clone(),
                    hash: self.hash,
                    problem: "is corrupted".to_owned(),
                },
            });
        }
        Ok(())
    }

    /// Where the blob was needed: "run R, step S, task T, artifact `a`".
    pub fn context(&self) -> &str {
        &self.context
    }

    fn fail(&self, kind: &BlobErrorKind) -> ClientError {
        blob_error(&self.context, self.hash, kind)
    }
}

impl Read for CheckedBlob<'_> {
    /// Reads at most one byte past the recorded size: enough to tell that the blob is longer.
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let allowed = (self.expected + 1).saturating_sub(self.read);
        let room = usize::try_from(allowed)
            .unwrap_or(usize::MAX)
            .min(buf.len());
        if room == 0 {
            return Ok(0);
        }
        let n = match self.inner.read(&mut buf[..room]) {
            Ok(n) => n,
            Err(e) => {
                if e.kind() != io::ErrorKind::Interrupted && self.failure.is_none() {
                    self.failure = Some(e.to_string());
                }
                return Err(e);
            }
        };
        let within = usize::try_from(self.expected.saturating_sub(self.read))
            .unwrap_or(usize::MAX)
            .min(n);
        self.hasher.update(&buf[..within]);
        self.read += n as u64;
        Ok(n)
    }
}

fn io_error(message: String) -> crate::datastore::StorageError {
    crate::datastore::StorageError::Io {
        action: "read",
        location: "the blob".to_owned(),
        source: io::Error::other(message),
    }
}

/// The message `BlobStore::get` gives for the same problem: "CONTEXT: blob HASH is truncated: …".
fn blob_error(context: &str, hash: BlobHash, kind: &BlobErrorKind) -> ClientError {
    ClientError::Blob {
        context: context.to_owned(),
        hash,
        problem: kind.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::datastore::{BlobStore, Encoding, LocalStorage};

    fn entry_for(storage: &dyn Storage, bytes: &[u8]) -> ArtifactEntry {
        let stored = BlobStore::new(storage).put_bytes(bytes).expect("stored");
        ArtifactEntry {
            name: "a".to_owned(),
            hash: stored.hash,
            size: stored.size,
            type_name: "Vec<u8>".to_owned(),
            encoding: Encoding::MsgPack,
        }
    }

    #[test]
    fn an_intact_blob_reads_whole_and_checks() {
        let dir = tempfile::tempdir().expect("dir");
        let storage = LocalStorage::open(dir.path()).expect("storage");
        let bytes: Vec<u8> = (0..3 << 20).map(|i| (i % 251) as u8).collect();
        let entry = entry_for(&storage, &bytes);
        let mut blob = CheckedBlob::open(&storage, &entry, "ctx".into()).expect("opens");
        let mut head = [0; 10];
        blob.read_exact(&mut head).expect("reads");
        assert_eq!(head[..], bytes[..10]);
        blob.finish().expect("intact");
    }

    #[test]
    fn damaged_blobs_are_named_with_what_is_wrong() {
        let dir = tempfile::tempdir().expect("dir");
        let storage = LocalStorage::open(dir.path()).expect("storage");
        let bytes = b"some artifact bytes".to_vec();
        let entry = entry_for(&storage, &bytes);
        let path = storage.path_of(&entry.hash.key());
        for (content, expected) in [
            (b"some artifact bytez".to_vec(), "is corrupted"),
            (b"some".to_vec(), "is truncated: 4 of 19 bytes present"),
            (
                b"some artifact bytes and more".to_vec(),
                "has 28 bytes where 19",
            ),
        ] {
            std::fs::write(&path, &content).expect("damage");
            let e = CheckedBlob::verify(&storage, &entry, "run 1, artifact `a`".into())
                .expect_err("damaged");
            let message = e.to_string();
            assert!(
                message.starts_with(&format!("run 1, artifact `a`: blob {}", entry.hash)),
                "{message}"
            );
            assert!(message.contains(expected), "{message}");
        }
        std::fs::remove_file(&path).expect("remove");
        let e = CheckedBlob::verify(&storage, &entry, "ctx".into()).expect_err("missing");
        assert!(e.to_string().contains("is missing"), "{e}");
    }
}
