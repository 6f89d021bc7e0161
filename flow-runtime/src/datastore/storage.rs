//! The narrow interface every datastore backend implements, and the contract each keeps.
//!
//! Everything above this layer (blobs, task indexes, run records) is written in terms of
//! [`Storage`], so a backend only has to provide these operations and keep their contract. The
//! contract is what the methods' documentation says; the shared conformance suite
//! (`datastore::conformance`) checks it, and every backend of this crate runs it: the local
//! directory, `ObjectStorage` over an in-memory store, and `ObjectStorage` on a real S3 server
//! in the server tests.

use std::io::{self, Read, Write};
use std::time::{Duration, SystemTime};

use super::freshness::needs_refresh;
use super::keys::Key;

/// The largest small record (a done marker, a run record, task metadata, a `latest` pointer)
/// read with [`Storage::get_at_most`], and the largest object [`Storage::update`] reads: 16 MiB,
/// far above any such record this crate writes, so that a damaged or hostile datastore (a huge
/// file, `/dev/zero`) costs an error, not the machine's memory.
pub const MAX_RECORD_SIZE: u64 = 16 << 20;

/// A place to keep objects addressed by [`Key`]: a local directory, or an S3-compatible bucket.
///
/// Methods are synchronous; tasks run on worker threads, and an asynchronous backend blocks on
/// its own runtime inside. Each method's documentation states what an implementation must
/// guarantee; the shared conformance suite checks it for every backend of this crate.
///
/// The contract in short:
///
/// - **Keys and objects.** An object is a [`Key`] with content (possibly empty). A key that only
///   prefixes other objects' keys (`runs/1` when `runs/1/meta` exists) is not an object: reading
///   it is [`StorageError::NotFound`], deleting it deletes nothing. Writing below an object
///   (`runs/1/meta/x`) may be refused by a backend whose objects are files.
/// - **Whole or absent.** Every write is atomic: a reader sees the previous object or the new
///   one, never a mix or a part. A writer that dies, or a streamed write that is dropped, leaves
///   at most temporary data that no listing shows and no read returns.
/// - **Listings show only objects.** Temporary data, and anything else in the backend whose name
///   is not a valid key (a `.`-file, a name with a space), is skipped by [`Storage::list`] and
///   [`Storage::list_children`]. A valid key segment never starts with `.`, so a backend can name
///   its own data that way without colliding with an object.
/// - **Missing is an answer.** Reading a missing object is [`StorageError::NotFound`], apart from
///   I/O failures; lookups say it with `None` or `false` ([`size`](Storage::size),
///   [`exists`](Storage::exists), [`delete`](Storage::delete), [`set_aside`](Storage::set_aside)).
/// - **Stored is not trusted blindly.** A power loss or a bad disk can leave an object short or
///   damaged, so reads are bounded by the size the caller expects
///   ([`get_at_most`](Storage::get_at_most)), and content-addressed objects are checked by size
///   before being reused ([`put_content`](Storage::put_content)).
///
/// How the two backends keep it:
///
/// | [`Storage`] | local directory (`LocalStorage`) | object store (`ObjectStorage`, feature `s3`) |
/// |---|---|---|
/// | [`put`](Storage::put) | temporary file in the object's directory, renamed into place | one `PUT` |
/// | [`put_if_absent`](Storage::put_if_absent) | `statx`; if absent, temporary file and a rename that does not replace (`renameat2(RENAME_NOREPLACE)`, or link then unlink) | `HEAD`; if absent, a plain `PUT` for a blob key, else `PutMode::Create` (`If-None-Match: *`) where the server was probed to honour it, else a plain `PUT` |
/// | [`start_put`](Storage::start_put) + [`commit`](PendingObject::commit) | temporary file under `near`, written past the page cache where possible, renamed on commit (without replacing, for [`commit_if_absent`](PendingObject::commit_if_absent)) | within one part: one `PUT` on commit (as `put_if_absent` for `commit_if_absent`); longer: a multipart upload to a staging object `.tmp/upload-…`, completed on commit, copied to the key (by the server, or through the process above 5 GiB) and deleted; `commit_if_absent` looks the key up first and aborts the upload if it exists |
/// | [`put_content`](Storage::put_content) | `statx`, then as `put` (other size) or `put_if_absent` (none) | `HEAD`, then `PUT` unless the size matches |
/// | [`get`](Storage::get), [`reader`](Storage::reader) | open (regular files only, never through a link), read | `GET`: the whole body, or streamed chunk by chunk |
/// | [`get_at_most`](Storage::get_at_most) | open, `fstat`, read at most that many bytes | `GET`, its size checked before the body |
/// | [`set_aside`](Storage::set_aside) | rename, compare, rename back if it was another copy | the default: `GET`, compare, `PUT` aside, then `delete` |
/// | [`stat`](Storage::stat), [`size`](Storage::size), [`exists`](Storage::exists) | open (`O_PATH`), `fstat` | `HEAD` |
/// | [`refresh`](Storage::refresh) | `utimensat` (the modification time only) | the object copied by the server to a staging object and back (through the process above 5 GiB) |
/// | [`list_stats`](Storage::list_stats) | directory walk, `statx` each | `LIST`, whose pages carry sizes and times |
/// | [`prune`](Storage::prune) | `rmdir` of the empty directories, deepest first | nothing |
/// | [`remove_stale_temporaries`](Storage::remove_stale_temporaries) | a walk removing old `.tmp*` files | a `LIST` of `.tmp/`, deleting old staging objects |
/// | [`list`](Storage::list), [`list_children`](Storage::list_children) | directory walk, one directory | `LIST` (recursive, or with the `/` delimiter), every page |
/// | [`delete`](Storage::delete) | `unlinkat` | `HEAD`, then `DELETE` |
/// | [`delete_if_written_before`](Storage::delete_if_written_before) | rename to a temporary name, `statx`, then `unlinkat`, or a rename back | `HEAD`, then `DELETE` |
/// | [`update`](Storage::update) | `flock` on a lock file `.<name>.lock`, read, temporary file and rename | `GET`, then a `PUT` conditional on the version read (`If-Match`, or `If-None-Match: *` when absent), again while other writers get in first; a read then a plain `PUT` where the server was probed not to honour conditional writes |
pub trait Storage: Send + Sync + std::fmt::Debug {
    /// Writes `bytes` as the object `key`, replacing any previous object atomically: a reader
    /// sees the previous content or `bytes`, never a part.
    ///
    /// A key below an existing object (`a/b` where `a` is one) may be refused: a directory
    /// cannot also be a file. An object store takes it.
    ///
    /// # Errors
    ///
    /// I/O failures of the backend.
    fn put(&self, key: &Key, bytes: &[u8]) -> Result<(), StorageError>;

    /// Writes `bytes` as the object `key` unless it already exists; returns whether it was written.
    /// An existing object is left as it is, whatever its content.
    ///
    /// Atomic with respect to concurrent writers of the same key: exactly one of them gets `true`,
    /// and its content stands. Used to claim unique names (run ids, done markers) and for
    /// content-addressed objects (blobs, whose existing copy is by definition identical). Two
    /// exceptions, both in `ObjectStorage`: concurrent writers of a blob key (`blobs/<2 hex>/<64
    /// hex>`) may all get `true`, since they write the same bytes; and on a server that ignores
    /// conditional writes, writers whose lookups all precede all writes may all get `true`, the
    /// last write standing (its documentation says more).
    ///
    /// Blobs are mostly already there (every unchanged field of every task), so an
    /// implementation should make that case cheap: look the key up before writing anything, and
    /// create nothing when it exists. The local directory does one `stat` then; when the object
    /// is absent it creates one file, which becomes the object, and deletes none.
    ///
    /// # Errors
    ///
    /// I/O failures of the backend; an existing object is not an error.
    fn put_if_absent(&self, key: &Key, bytes: &[u8]) -> Result<bool, StorageError>;

    /// Starts writing an object whose content is streamed and whose key may be known only at the
    /// end (a content-addressed blob is named by the hash of what was written).
    ///
    /// Nothing written is visible (no object, nothing listed) until the returned object is
    /// committed; dropping it without committing discards what was written and leaves nothing
    /// behind. `near` is where the object will be committed (a prefix of its final key): a local
    /// backend keeps its temporary file there so that committing is a rename on the same file
    /// system.
    ///
    /// # Errors
    ///
    /// I/O failures of the backend.
    fn start_put(&self, near: &Key) -> Result<Box<dyn PendingObject>, StorageError>;

    /// Reads the whole object `key`.
    ///
    /// # Errors
    ///
    /// [`StorageError::NotFound`] if there is no such object (a key that only prefixes objects
    /// included); I/O failures of the backend.
    fn get(&self, key: &Key) -> Result<Vec<u8>, StorageError>;

    /// Reads the whole object `key` if it has at most `limit` bytes: small records, whose size
    /// has a sane maximum ([`MAX_RECORD_SIZE`]), and blobs, whose size the task index gives. No
    /// more than `limit` bytes are read whatever the object turns out to be.
    ///
    /// The default implementation asks for the size first, then reads, then checks the length
    /// again; backends override it to learn the size from the read itself.
    ///
    /// # Errors
    ///
    /// [`StorageError::TooLarge`] for a larger object, with its size and `limit`; as
    /// [`Storage::get`] otherwise.
    fn get_at_most(&self, key: &Key, limit: u64) -> Result<Vec<u8>, StorageError> {
        let too_large = |size| StorageError::TooLarge {
            key: key.clone(),
            size,
            limit,
        };
        match self.size(key)? {
            Some(size) if size > limit => return Err(too_large(size)),
            Some(_) => {}
            None => return Err(StorageError::NotFound { key: key.clone() }),
        }
        let bytes = self.get(key)?;
        if bytes.len() as u64 > limit {
            return Err(too_large(bytes.len() as u64));
        }
        Ok(bytes)
    }

    /// Writes `bytes` as the content-addressed object `key` (named by the hash of its content)
    /// unless a whole copy is there already; returns whether it wrote.
    ///
    /// A copy is taken as whole when it has the size of `bytes`, and its content is then left
    /// untouched; if it was last written long ago (`datastore::freshness`), its time is renewed
    /// ([`Storage::refresh`]) so that a garbage collection going on does not take it for garbage
    /// while a task is about to reference it. An object of another size (cut short by a power loss before it reached the disk, emptied by
    /// a bad disk, or not a file at all) is damaged, and is replaced atomically by this write, so
    /// the next run that stores the same value repairs it. Damage that keeps the size is found
    /// by reading (the content does not hash to the name), and [`Storage::set_aside`] moves such
    /// an object out of the way so that the next write recreates it.
    ///
    /// The default implementation looks the object up ([`Storage::stat`]), then writes with
    /// [`Storage::put`] or [`Storage::put_if_absent`], or refreshes.
    ///
    /// # Errors
    ///
    /// I/O failures of the backend.
    fn put_content(&self, key: &Key, bytes: &[u8]) -> Result<bool, StorageError> {
        match self.stat(key)? {
            Some(stat) if stat.size == bytes.len() as u64 => {
                if needs_refresh(stat.modified) && !self.refresh(key)? {
                    // Deleted since the lookup (by a collection): store it again.
                    return self.put_if_absent(key, bytes);
                }
                Ok(false)
            }
            Some(_) => self.put(key, bytes).map(|()| true),
            None => self.put_if_absent(key, bytes),
        }
    }

    /// Moves the object `key` to `aside` (replacing anything there) if it still holds exactly
    /// `content`; returns whether it did. An object with other content stays where it is.
    ///
    /// For a content-addressed object that was read and found damaged (its content does not
    /// hash to its name): once it is out of the way, the next write of the right content stores
    /// it again ([`Storage::put_content`] would otherwise take the damaged copy, of the right
    /// size, as whole), and the copy set aside is kept for whoever wants to look at it. Comparing
    /// first keeps a copy repaired by another writer in the meantime.
    ///
    /// The default implementation reads, compares, writes `aside` and deletes `key`: a repair
    /// landing between the read and the delete is lost (and redone by the next write). The local
    /// directory renames, which leaves no such window.
    ///
    /// # Errors
    ///
    /// I/O failures of the backend; no object is not an error (`false`).
    fn set_aside(&self, key: &Key, content: &[u8], aside: &Key) -> Result<bool, StorageError> {
        match self.get(key) {
            Ok(current) if current == content => {
                self.put(aside, content)?;
                self.delete(key)
            }
            Ok(_) => Ok(false),
            Err(e) if e.is_not_found() => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Opens the object `key` for streamed reading, for objects too large to hold twice. The
    /// reader yields the object as it was when opened.
    ///
    /// # Errors
    ///
    /// [`StorageError::NotFound`] if there is no such object; I/O failures of the backend.
    /// Failures while reading come from the reader, as [`io::Error`]s.
    fn reader(&self, key: &Key) -> Result<Box<dyn Read + Send>, StorageError>;

    /// The size in bytes of the object `key`, or `None` if it does not exist.
    ///
    /// The default implementation asks [`Storage::stat`].
    ///
    /// # Errors
    ///
    /// I/O failures of the backend.
    fn size(&self, key: &Key) -> Result<Option<u64>, StorageError> {
        Ok(self.stat(key)?.map(|stat| stat.size))
    }

    /// The size and last-write time of the object `key`, or `None` if it does not exist: one
    /// lookup.
    ///
    /// # Errors
    ///
    /// I/O failures of the backend.
    fn stat(&self, key: &Key) -> Result<Option<ObjectStat>, StorageError>;

    /// Renews the last-write time of the object `key`, its content unchanged; returns whether
    /// there was an object. For a blob a writer relies on without writing it, so that a garbage
    /// collection going on takes it as recently written (`datastore::freshness`).
    ///
    /// # Errors
    ///
    /// I/O failures of the backend; no object is not an error (`false`).
    fn refresh(&self, key: &Key) -> Result<bool, StorageError>;

    /// Every object under `prefix`, at any depth, sorted, with its size and last-write time: what
    /// a garbage collection sweeps. An object deleted while it is listed is left out.
    ///
    /// The default implementation lists, then asks [`Storage::stat`] for each object; an object
    /// store has both from its listing.
    ///
    /// # Errors
    ///
    /// I/O failures of the backend.
    fn list_stats(&self, prefix: &Key) -> Result<Vec<(Key, ObjectStat)>, StorageError> {
        let mut listed = Vec::new();
        for key in self.list(Some(prefix))? {
            if let Some(stat) = self.stat(&key)? {
                listed.push((key, stat));
            }
        }
        Ok(listed)
    }

    /// Removes what the backend keeps of `prefix` and the prefixes below it when no object is
    /// under them any more: the directories of a local datastore, after the objects of a run
    /// were deleted, so that listings stop showing the run. A prefix with an object, or with a
    /// write in progress, below it stays. An object store keeps nothing for a prefix.
    ///
    /// # Errors
    ///
    /// I/O failures of the backend.
    fn prune(&self, prefix: &Key) -> Result<(), StorageError> {
        let _ = prefix;
        Ok(())
    }

    /// Whether the object `key` exists.
    ///
    /// # Errors
    ///
    /// I/O failures of the backend.
    fn exists(&self, key: &Key) -> Result<bool, StorageError> {
        Ok(self.size(key)?.is_some())
    }

    /// Every object under `prefix` (the whole datastore for `None`), at any depth, sorted. An
    /// object at `prefix` itself is not under it.
    ///
    /// Temporary data of unfinished or abandoned writes, and anything whose name is not a valid
    /// key, is never listed.
    ///
    /// # Errors
    ///
    /// I/O failures of the backend; a prefix with nothing under it is an empty list.
    fn list(&self, prefix: Option<&Key>) -> Result<Vec<Key>, StorageError>;

    /// The direct children of `prefix`: objects, and prefixes that have objects below them,
    /// each sorted. Lists runs of a flow, steps of a run or tasks of a step without a deep walk.
    ///
    /// The same names are skipped as by [`Storage::list`]. A backend that keeps directories (the
    /// local one) may also list a prefix that has no object below it: a directory left empty by a
    /// delete, or holding only temporary data.
    ///
    /// # Errors
    ///
    /// I/O failures of the backend; a prefix with nothing under it gives empty lists.
    fn list_children(&self, prefix: Option<&Key>) -> Result<Children, StorageError>;

    /// Deletes the object `key`; returns whether it existed.
    ///
    /// # Errors
    ///
    /// I/O failures of the backend; no object is not an error (`false`).
    fn delete(&self, key: &Key) -> Result<bool, StorageError>;

    /// Removes what writers that crashed or were killed left behind (temporary files, staging
    /// objects) older than `older_than`; returns how many. Pick an age no write in progress
    /// reaches. The default removes nothing.
    ///
    /// # Errors
    ///
    /// I/O failures of the backend.
    fn remove_stale_temporaries(&self, older_than: Duration) -> Result<usize, StorageError> {
        let _ = older_than;
        Ok(0)
    }

    /// Deletes the object `key` if it was last written (or refreshed) before `cutoff`; returns
    /// whether it did. For a collection deleting a blob no kept run references: a writer that
    /// refreshed it since the collection looked (to reference it) keeps it.
    ///
    /// The default implementation looks the time up, then deletes: a refresh landing between
    /// the two is lost. The local directory renames the object aside first, so that no refresh
    /// can land on it unseen, then checks its time, and puts it back if it was refreshed.
    ///
    /// # Errors
    ///
    /// I/O failures of the backend; no object is not an error (`false`).
    fn delete_if_written_before(
        &self,
        key: &Key,
        cutoff: SystemTime,
    ) -> Result<bool, StorageError> {
        match self.stat(key)? {
            Some(stat) if stat.modified < cutoff => self.delete(key),
            _ => Ok(false),
        }
    }

    /// Replaces the object `key` with what `change` makes of its current content (`None` when
    /// there is no object), as one atomic step with respect to every other `update` of `key`, in
    /// this process or another: none of them lands between the read `change` is given and the
    /// write of what it returns, so concurrent updates lose nothing. Returns whether it wrote.
    ///
    /// `change` returns `None` to leave the object as it is (nothing is written). It may be
    /// called more than once: when another writer got in first, it is called again with what
    /// that writer wrote, so it must decide from its argument alone.
    ///
    /// For small objects that several writers change in place: run records (a `tag` while the run
    /// ends), `latest` pointers (runs ending at once). Only other `update`s are held off: a plain
    /// [`put`](Storage::put) of the same key may still land in between. An object larger than
    /// [`MAX_RECORD_SIZE`] is not read.
    ///
    /// The default implementation reads, then writes: atomic only when nothing else writes `key`
    /// at the same time. Both backends of this crate override it; `ObjectStorage` falls back to
    /// reading then writing on a server that ignores conditional writes, and says so in a
    /// warning.
    ///
    /// # Errors
    ///
    /// [`StorageError::TooLarge`] for an object larger than [`MAX_RECORD_SIZE`] (both backends);
    /// I/O failures of the backend; for a backend that retries when another writer got in first,
    /// giving up after many retries.
    fn update(&self, key: &Key, change: &mut ObjectChange<'_>) -> Result<bool, StorageError> {
        let current = match self.get(key) {
            Ok(bytes) => Some(bytes),
            Err(e) if e.is_not_found() => None,
            Err(e) => return Err(e),
        };
        match change(current.as_deref()) {
            Some(bytes) => self.put(key, &bytes).map(|()| true),
            None => Ok(false),
        }
    }
}

/// What [`Storage::update`] does to an object: given its current content (`None` when there is
/// no object), the content to replace it with, or `None` to leave it as it is.
pub type ObjectChange<'a> = dyn FnMut(Option<&[u8]>) -> Option<Vec<u8>> + 'a;

/// An object being written by [`Storage::start_put`], not yet visible to anyone.
///
/// Write its content through [`Write`], then name it with [`commit`](PendingObject::commit) or
/// [`commit_if_absent`](PendingObject::commit_if_absent). Dropping it instead abandons the write
/// and removes the temporary data.
pub trait PendingObject: Write + Send {
    /// Makes the written content visible as `key`, replacing any previous object atomically.
    ///
    /// # Errors
    ///
    /// I/O failures of the backend (including those of writes that were still buffered); the
    /// temporary data is removed.
    fn commit(self: Box<Self>, key: &Key) -> Result<(), StorageError>;

    /// Makes the written content visible as `key` unless an object already exists there, in which
    /// case the content is discarded and the existing object stays; returns whether it was
    /// committed.
    ///
    /// Meant for content-addressed objects, whose existing copy is as good as this one. The local
    /// directory decides with one rename that does not replace, so of concurrent commits exactly
    /// one wins; an object store looks the key up first (see `ObjectStorage`), so concurrent
    /// commits of a large object may all win, the last copy standing.
    ///
    /// # Errors
    ///
    /// I/O failures of the backend; the temporary data is removed.
    fn commit_if_absent(self: Box<Self>, key: &Key) -> Result<bool, StorageError>;
}

/// What a datastore knows of an object besides its content ([`Storage::stat`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ObjectStat {
    /// Its size in bytes.
    pub size: u64,
    /// When it was last written (or refreshed), by the backend's clock.
    pub modified: SystemTime,
}

/// The direct children of a prefix, as returned by [`Storage::list_children`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Children {
    /// Objects directly under the prefix, sorted.
    pub objects: Vec<Key>,
    /// Prefixes directly under the prefix (sub-"directories"), sorted.
    pub prefixes: Vec<Key>,
}

/// A storage operation that failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StorageError {
    /// The object does not exist. Kept apart from I/O failures because callers often treat it as
    /// an answer ("task not finished") rather than a failure.
    #[error("object `{key}` does not exist in the datastore")]
    NotFound {
        /// The missing object.
        key: Key,
    },
    /// The object is larger than the caller can take: a small record that is not one (damaged,
    /// or something else in its place), or a blob longer than its index says.
    #[error("object `{key}` has {size} bytes, more than the {limit} expected")]
    TooLarge {
        /// The object.
        key: Key,
        /// Its size.
        size: u64,
        /// The most the caller would read.
        limit: u64,
    },
    /// The backend failed.
    #[error("could not {action} {location}: {source}")]
    Io {
        /// What was being done, e.g. "write", "list".
        action: &'static str,
        /// Where: a local path or an object's key, as precise as the backend can tell.
        location: String,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
}

impl StorageError {
    /// Whether this is [`StorageError::NotFound`].
    pub fn is_not_found(&self) -> bool {
        matches!(self, StorageError::NotFound { .. })
    }
}
