//! The datastore as a local directory.
//!
//! A key maps to the path of the same segments under the root. Every write goes to a temporary
//! file (named `.tmp…`) in the directory of the object, or of the prefix given to
//! [`Storage::start_put`], and is renamed into place when complete; renames within one file system
//! are atomic, so readers see an object whole or not at all. Temporary names start with `.`, which no
//! key segment may, so they can never be mistaken for objects: listings skip them, and
//! [`LocalStorage::remove_stale_temp_files`] removes those a crashed writer left behind.
//!
//! The directory may be shared with other people and programs, so nothing below the root is
//! trusted to be what its name says. Every path below it is opened relative to the root's
//! descriptor, kept open, and never through a symbolic link ([`beneath`]): a step directory, a
//! done marker or a blob that is a link (to `/etc`, to another user's file, to `/dev/zero`) is an
//! error naming the path, and listings skip links. Objects are read only if they are regular files,
//! opened without blocking (a FIFO cannot hang the reader) and read no further than the size they
//! had when opened. The root's own path may go through links: users pass such paths.
//!
//! Costs per write, in system calls, once the object's directory exists: `put` opens the
//! directory, creates the temporary file, writes, renames and closes both (6); `put_if_absent`
//! looks the name up in the directory first (7, or open, lookup and close when the object exists);
//! a committed write creates exactly one inode, the object's, and deletes none. Directories are
//! created on demand, when opening one says it is missing, so the steady state does no `mkdir`.
//! With sync on, add an `fdatasync` of the file and an `fsync` of its directory.
//!
//! Where each part lives: [`root`] (the open root, keys to paths), [`beneath`] (opening below it
//! without links), [`temp_file`] (every write: a temporary file renamed into place), [`streamed`]
//! and [`direct_write`] (streamed writes past the page cache), [`read`] (only regular files,
//! bounded), [`listing`], [`lock`] (`update`'s lock file), [`errors`].

mod beneath;
#[cfg(test)]
mod confinement_tests;
mod delete_stale;
mod direct_write;
mod errors;
mod listing;
mod lock;
mod prune;
mod read;
mod root;
mod streamed;
mod temp_file;
#[cfg(test)]
mod tests;

use std::fs;
use std::io::Read;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use rustix::fs::{self as rfs, AtFlags};
use rustix::io::Errno;

use self::direct_write::DirectWriter;
use self::errors::io_error;
use self::read::{file_holds, modified, object_stat, open_object, read_object, regular_size};
use self::root::{Root, dir_of};
use self::streamed::LocalPending;
use self::temp_file::{Temp, rename_noreplace, write_in, write_object};
use super::freshness::needs_refresh;
use super::keys::Key;
use super::storage::{
    Children, MAX_RECORD_SIZE, ObjectChange, ObjectStat, PendingObject, Storage, StorageError,
};

/// A datastore kept in a directory of the local file system (or a shared one mounted locally).
///
/// Cheap to clone. By default every committed file is flushed to disk (`fsync`) before it is
/// renamed into place, and the directory after, so that a power loss cannot leave a done marker
/// pointing at data that never reached the disk; [`LocalStorage::with_sync`] turns that off where
/// speed matters more (tests, scratch runs on tmpfs).
#[derive(Debug, Clone)]
pub struct LocalStorage {
    /// The root, open: everything below it is opened from here.
    root: Arc<Root>,
    sync: bool,
    /// Streamed writes refuse direct I/O after this many direct writes (tests of the fallback).
    #[cfg(test)]
    refuse_direct_after: Option<usize>,
}

impl LocalStorage {
    /// Opens the datastore rooted at `root`, creating the directory if needed.
    ///
    /// The caller chooses the root (flag, environment variable or default under the working
    /// directory); nothing about the root is recorded inside the datastore, so it can be moved.
    ///
    /// A relative `root` is made absolute against the current directory once, here, and the
    /// directory is opened once: the datastore stays where it was opened if the process changes
    /// directory later, and everything below it is reached from that open directory.
    ///
    /// # Errors
    ///
    /// If the directory cannot be created or opened.
    pub fn open(root: impl Into<PathBuf>) -> Result<Self, StorageError> {
        let root = root.into();
        let root = std::path::absolute(&root).map_err(io_error("locate", &root))?;
        fs::create_dir_all(&root).map_err(io_error("create the datastore directory", &root))?;
        Ok(LocalStorage {
            root: Arc::new(Root::open(root)?),
            sync: true,
            #[cfg(test)]
            refuse_direct_after: None,
        })
    }

    /// Chooses whether commits are flushed to disk before they become visible (the default).
    ///
    /// Without it, objects are still atomic for other processes and survive a crash of the
    /// writing process, but not necessarily a crash of the machine.
    #[must_use]
    pub fn with_sync(mut self, sync: bool) -> Self {
        self.sync = sync;
        self
    }

    /// This datastore with streamed writes that the disk refuses to take directly (EINVAL) after
    /// `accept` direct writes succeeded: the fallback's tests.
    #[cfg(test)]
    pub(super) fn refusing_direct_writes_after(mut self, accept: usize) -> Self {
        self.refuse_direct_after = Some(accept);
        self
    }

    /// This datastore resolving paths one component at a time, as where `openat2` is missing:
    /// the fallback's tests.
    #[cfg(test)]
    fn walking(self) -> Self {
        LocalStorage {
            root: Arc::new(self.root.walking()),
            ..self
        }
    }

    /// The directory this datastore lives in.
    pub fn root(&self) -> &Path {
        self.root.path()
    }

    /// The path of the file that holds the object `key`, for messages and for tools that want to
    /// look at the directory; all access should go through [`Storage`].
    pub fn path_of(&self, key: &Key) -> PathBuf {
        self.root.path_of(key)
    }

    /// Removes temporary files older than `older_than`: what writers that crashed or were killed
    /// left behind. Returns how many were removed.
    ///
    /// Pick an age no live write can reach (an hour is plenty for most flows); a younger temporary
    /// file may belong to a write still in progress in another process.
    ///
    /// # Errors
    ///
    /// If a directory cannot be read or a stale file cannot be removed.
    pub fn remove_stale_temp_files(&self, older_than: Duration) -> Result<usize, StorageError> {
        temp_file::remove_stale(&self.root, older_than)
    }
}

impl Storage for LocalStorage {
    fn put(&self, key: &Key, bytes: &[u8]) -> Result<(), StorageError> {
        write_object(&self.root, key, bytes, true, self.sync).map(drop)
    }

    fn put_if_absent(&self, key: &Key, bytes: &[u8]) -> Result<bool, StorageError> {
        write_object(&self.root, key, bytes, false, self.sync)
    }

    /// One `statx` in the object's directory: a regular file of the right size is the object;
    /// anything else in its place (shorter, longer, a link, a FIFO) is replaced by a rename, which
    /// replaces a link itself, never what it points to.
    fn put_content(&self, key: &Key, bytes: &[u8]) -> Result<bool, StorageError> {
        let root = &self.root;
        let Some(dir) = root.object_dir(key)? else {
            let dir = root.create_missing_dir(dir_of(key))?;
            return write_in(root, dir, key, bytes, false, self.sync);
        };
        match rfs::statat(&dir, key.name(), AtFlags::SYMLINK_NOFOLLOW) {
            Ok(stat) if regular_size(&stat, key).is_ok_and(|size| size == bytes.len() as u64) => {
                if needs_refresh(modified(&stat)) && !self.refresh(key)? {
                    // Deleted since the lookup (by a collection): store it again.
                    return write_in(root, dir, key, bytes, false, self.sync);
                }
                Ok(false)
            }
            Ok(_) => write_in(root, dir, key, bytes, true, self.sync),
            Err(Errno::NOENT) => write_in(root, dir, key, bytes, false, self.sync),
            Err(e) => Err(io_error("inspect", &root.path_of(key))(e.into())),
        }
    }

    /// One rename to `aside` (in the same directory, as for blobs, or in another one below the
    /// root), then a comparison: if what was moved is not `content`, it is a copy a writer put
    /// there after the read, and it goes back (unless yet another copy is there by then).
    fn set_aside(&self, key: &Key, content: &[u8], aside: &Key) -> Result<bool, StorageError> {
        let root = &self.root;
        let Some(dir) = root.object_dir(key)? else {
            return Ok(false);
        };
        let elsewhere = match dir_of(aside) == dir_of(key) {
            true => None,
            false => Some(root.create_dir(dir_of(aside))?),
        };
        let aside_dir = elsewhere.as_ref().unwrap_or(&dir);
        match rfs::renameat(&dir, key.name(), aside_dir, aside.name()) {
            Ok(()) => {}
            Err(Errno::NOENT) => return Ok(false),
            Err(e) => return Err(io_error("set aside", &root.path_of(key))(e.into())),
        }
        let same = file_holds(aside_dir, aside.name(), content)
            .map_err(io_error("read", &root.path_of(aside)))?;
        if same {
            return Ok(true);
        }
        match rename_noreplace(aside_dir.as_fd(), aside.name(), dir.as_fd(), key.name()) {
            Ok(()) => Ok(false),
            // Yet another copy is in place: it stands, and the one moved is left aside.
            Err(Errno::EXIST) => Ok(false),
            Err(e) => Err(io_error("put back", &root.path_of(key))(e.into())),
        }
    }

    fn start_put(&self, near: &Key) -> Result<Box<dyn PendingObject>, StorageError> {
        let root = &self.root;
        let dir = root.create_dir(near.as_str())?;
        let temp = Temp::create(root, dir, near.as_str())?;
        let file = temp
            .file
            .try_clone()
            .map_err(|e| io_error("open", &temp.path(root))(e))?;
        #[cfg(test)]
        let writer = match self.refuse_direct_after {
            Some(accept) => DirectWriter::failing_direct_after(file, accept, libc::EINVAL)
                .map_err(|e| io_error("open", &temp.path(root))(e))?,
            None => DirectWriter::new(file, temp.open_direct()),
        };
        #[cfg(not(test))]
        let writer = DirectWriter::new(file, temp.open_direct());
        Ok(Box::new(LocalPending::new(
            Arc::clone(root),
            self.sync,
            temp,
            writer,
        )))
    }

    fn get(&self, key: &Key) -> Result<Vec<u8>, StorageError> {
        read_object(&self.root, key, u64::MAX)
    }

    fn get_at_most(&self, key: &Key, limit: u64) -> Result<Vec<u8>, StorageError> {
        read_object(&self.root, key, limit)
    }

    fn reader(&self, key: &Key) -> Result<Box<dyn Read + Send>, StorageError> {
        let (file, size) = open_object(&self.root, key, "open")?;
        Ok(Box::new(file.take(size)))
    }

    fn stat(&self, key: &Key) -> Result<Option<ObjectStat>, StorageError> {
        object_stat(&self.root, key)
    }

    /// `utimensat` in the object's directory, on the file itself (never through a link), setting
    /// its modification time only.
    fn refresh(&self, key: &Key) -> Result<bool, StorageError> {
        let Some(dir) = self.root.object_dir(key)? else {
            return Ok(false);
        };
        let times = rfs::Timestamps {
            last_access: rfs::Timespec {
                tv_sec: 0,
                tv_nsec: rfs::UTIME_OMIT,
            },
            last_modification: rfs::Timespec {
                tv_sec: 0,
                tv_nsec: rfs::UTIME_NOW,
            },
        };
        match rfs::utimensat(&dir, key.name(), &times, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(()) => Ok(true),
            Err(Errno::NOENT) => Ok(false),
            Err(e) => Err(io_error("refresh", &self.root.path_of(key))(e.into())),
        }
    }

    fn list(&self, prefix: Option<&Key>) -> Result<Vec<Key>, StorageError> {
        listing::list(&self.root, prefix)
    }

    fn remove_stale_temporaries(&self, older_than: Duration) -> Result<usize, StorageError> {
        self.remove_stale_temp_files(older_than)
    }

    fn prune(&self, prefix: &Key) -> Result<(), StorageError> {
        prune::prune(&self.root, prefix)
    }

    fn delete_if_written_before(
        &self,
        key: &Key,
        cutoff: SystemTime,
    ) -> Result<bool, StorageError> {
        delete_stale::delete_if_written_before(&self.root, key, cutoff)
    }

    fn list_children(&self, prefix: Option<&Key>) -> Result<Children, StorageError> {
        listing::list_children(&self.root, prefix)
    }

    fn delete(&self, key: &Key) -> Result<bool, StorageError> {
        let dir = match self.root.object_dir(key) {
            Ok(Some(dir)) => dir,
            Ok(None) => return Ok(false),
            Err(e) => return Err(e),
        };
        match rfs::unlinkat(&dir, key.name(), AtFlags::empty()) {
            Ok(()) => Ok(true),
            Err(Errno::NOENT | Errno::ISDIR | Errno::NOTDIR) => Ok(false),
            Err(e) => Err(io_error("delete", &self.root.path_of(key))(e.into())),
        }
    }

    /// Read, change and write under `lock::lock` (`flock` on a lock file beside the object); the write is the usual temporary file and
    /// rename, so a reader without the lock still sees the old object or the new one.
    fn update(&self, key: &Key, change: &mut ObjectChange<'_>) -> Result<bool, StorageError> {
        let _lock = lock::lock(&self.root, key)?;
        let current = match self.get_at_most(key, MAX_RECORD_SIZE) {
            Ok(bytes) => Some(bytes),
            Err(e) if e.is_not_found() => None,
            Err(e) => return Err(e),
        };
        match change(current.as_deref()) {
            Some(bytes) => write_object(&self.root, key, &bytes, true, self.sync),
            None => Ok(false),
        }
    }
}
