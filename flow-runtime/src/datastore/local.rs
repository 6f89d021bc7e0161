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

mod beneath;
#[cfg(test)]
mod confinement_tests;

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use rustix::fs::{self as rfs, AtFlags, FileType, Mode, OFlags, Stat};
use rustix::io::Errno;

use self::beneath::{Beneath, link_refused};
use super::direct_write::DirectWriter;
use super::keys::Key;
use super::storage::{Children, ObjectChange, PendingObject, Storage, StorageError};

/// The prefix of the temporary files writers create.
const TEMP_PREFIX: &str = ".tmp";

/// How much of an object is compared at a time by [`Storage::set_aside`].
const COMPARE_CHUNK: usize = 1 << 20;

/// A datastore kept in a directory of the local file system (or a shared one mounted locally).
///
/// Cheap to clone. By default every committed file is flushed to disk (`fsync`) before it is
/// renamed into place, and the directory after, so that a power loss cannot leave a done marker
/// pointing at data that never reached the disk; [`LocalStorage::with_sync`] turns that off where
/// speed matters more (tests, scratch runs on tmpfs).
#[derive(Debug, Clone)]
pub struct LocalStorage {
    root: PathBuf,
    /// The root, open: everything below it is opened from here.
    beneath: Arc<Beneath>,
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
        let beneath =
            Beneath::root(&root).map_err(io_error("open the datastore directory", &root))?;
        Ok(LocalStorage {
            root,
            beneath: Arc::new(beneath),
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
        let beneath = Beneath::root(&self.root).unwrap().walking();
        LocalStorage {
            beneath: Arc::new(beneath),
            ..self
        }
    }

    /// The directory this datastore lives in.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The path of the file that holds the object `key`, for messages and for tools that want to
    /// look at the directory; all access should go through [`Storage`].
    pub fn path_of(&self, key: &Key) -> PathBuf {
        let mut path = self.root.clone();
        path.extend(key.segments());
        path
    }

    /// The path of `relative` (a key's text, or `.` for the root), for messages.
    fn path_of_relative(&self, relative: &str) -> PathBuf {
        let mut path = self.root.clone();
        path.extend(relative.split('/').filter(|c| *c != "."));
        path
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
        let cutoff = SystemTime::now().checked_sub(older_than);
        let mut removed = 0;
        let mut dirs = vec![".".to_owned()];
        while let Some(relative) = dirs.pop() {
            let Some(dir) = self.open_listed_dir(&relative)? else {
                continue;
            };
            let path = self.path_of_relative(&relative);
            for (name, file_type) in entries(&dir).map_err(io_error("list", &path))? {
                if file_type == FileType::Directory && !name.starts_with('.') {
                    dirs.push(if relative == "." {
                        name
                    } else {
                        format!("{relative}/{name}")
                    });
                } else if file_type == FileType::RegularFile && name.starts_with(TEMP_PREFIX) {
                    let stale = match rfs::statat(&dir, name.as_str(), AtFlags::SYMLINK_NOFOLLOW) {
                        Ok(stat) => cutoff.is_some_and(|cutoff| modified(&stat) < cutoff),
                        Err(Errno::NOENT) => false,
                        Err(e) => return Err(io_error("inspect", &path.join(&name))(e.into())),
                    };
                    if stale {
                        match rfs::unlinkat(&dir, name.as_str(), AtFlags::empty()) {
                            Ok(()) => removed += 1,
                            Err(Errno::NOENT) => {}
                            Err(e) => return Err(io_error("remove", &path.join(&name))(e.into())),
                        }
                    }
                }
            }
        }
        Ok(removed)
    }

    /// The directory of the object `key`, opened; `None` if it does not exist.
    fn object_dir(&self, key: &Key) -> Result<Option<OwnedFd>, StorageError> {
        let relative = dir_of(key);
        match self.beneath.open_dir(relative) {
            Ok(dir) => Ok(Some(dir)),
            Err(e) if is_absent(&e) => Ok(None),
            Err(e) => Err(io_error("open", &self.path_of_relative(relative))(e)),
        }
    }

    /// The directory `relative`, opened, created first (with its parents) if it is missing.
    fn create_dir(&self, relative: &str) -> Result<OwnedFd, StorageError> {
        self.beneath.create_dir(relative).map_err(io_error(
            "create directory",
            &self.path_of_relative(relative),
        ))
    }

    /// The directory `relative`, which was just found missing, created (with its parents).
    fn create_missing_dir(&self, relative: &str) -> Result<OwnedFd, StorageError> {
        self.beneath.create_missing_dir(relative).map_err(io_error(
            "create directory",
            &self.path_of_relative(relative),
        ))
    }

    /// A prefix's directory to list, or `None` where there is none (nothing listed under it).
    fn open_listed_dir(&self, relative: &str) -> Result<Option<OwnedFd>, StorageError> {
        match self.beneath.open_dir(relative) {
            Ok(dir) => Ok(Some(dir)),
            Err(e) if is_absent(&e) => Ok(None),
            Err(e) => Err(io_error("list", &self.path_of_relative(relative))(e)),
        }
    }

    /// A new temporary file in `dir` (whose key is `relative`), readable and writable.
    fn create_temp(&self, dir: OwnedFd, relative: &str) -> Result<Temp, StorageError> {
        // Objects are shared data: the permissions any other new file gets (0o666 minus the
        // umask). Exclusive creation makes the name ours; a name taken is tried again.
        let flags = OFlags::RDWR | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW;
        let mut attempts = 0;
        loop {
            let name = temp_name();
            match rfs::openat(
                &dir,
                name.as_str(),
                flags | OFlags::CLOEXEC,
                Mode::from(0o666),
            ) {
                Ok(file) => {
                    return Ok(Temp {
                        dir,
                        relative: relative.to_owned(),
                        name,
                        file: File::from(file),
                        kept: false,
                    });
                }
                Err(Errno::EXIST) if attempts < 100 => attempts += 1,
                Err(e) => {
                    return Err(io_error(
                        "create a temporary file in",
                        &self.path_of_relative(relative),
                    )(e.into()));
                }
            }
        }
    }

    /// Makes `temp` visible as `key`: a rename, or with `replace == false` a rename that fails if
    /// something is there already (`renameat2(RENAME_NOREPLACE)`, or where the file system lacks
    /// it a hard link then an unlink of the temporary name). Either way the temporary file's inode
    /// becomes the object's: committing allocates no inode and frees none. Only a commit that
    /// loses to an existing object deletes the temporary file.
    ///
    /// The caller has checked for an existing object where that is worth a lookup; here the
    /// rename alone decides.
    fn persist(&self, mut temp: Temp, key: &Key, replace: bool) -> Result<bool, StorageError> {
        if self.sync {
            temp.file
                .sync_data()
                .map_err(|e| io_error("flush to disk", &temp.path(self))(e))?;
        }
        let relative = dir_of(key);
        // A streamed object's temporary file is in a prefix of its directory, which may not
        // exist yet (a blob's fan-out directory).
        let elsewhere = match temp.relative == relative {
            true => None,
            false => Some(self.create_dir(relative)?),
        };
        let target = elsewhere.as_ref().map_or(temp.dir.as_fd(), AsFd::as_fd);
        let renamed = if replace {
            rfs::renameat(&temp.dir, temp.name.as_str(), target, key.name())
        } else {
            rename_noreplace(temp.dir.as_fd(), &temp.name, target, key.name())
        };
        match renamed {
            Ok(()) => temp.kept = true,
            // Another writer committed the same key first: its object stands, ours is dropped
            // (the temporary file is removed with `temp`).
            Err(Errno::EXIST) if !replace => return Ok(false),
            Err(e) => return Err(io_error("commit", &self.path_of(key))(e.into())),
        }
        if self.sync {
            rfs::fsync(target).map_err(|e| {
                io_error("flush to disk", &self.path_of_relative(relative))(e.into())
            })?;
        }
        Ok(true)
    }

    /// Whether something (an object, or anything else in its place) is at `key`, whose
    /// directory is `dir`.
    fn occupied(&self, dir: &OwnedFd, key: &Key) -> Result<bool, StorageError> {
        match rfs::statat(dir, key.name(), AtFlags::SYMLINK_NOFOLLOW) {
            Ok(_) => Ok(true),
            Err(Errno::NOENT) => Ok(false),
            Err(e) => Err(io_error("inspect", &self.path_of(key))(e.into())),
        }
    }

    /// Writes `bytes` as `key`. Per call, in the steady state (directory present):
    /// `put` is open directory + create + write + rename + two closes; `put_if_absent` one
    /// `statx` more before it, and only the open, the `statx` and a close when the object
    /// exists, so content-addressed writes of data that is already stored create and delete
    /// nothing.
    fn write_object(&self, key: &Key, bytes: &[u8], replace: bool) -> Result<bool, StorageError> {
        let dir = match self.object_dir(key)? {
            Some(dir) if !replace && self.occupied(&dir, key)? => return Ok(false),
            Some(dir) => dir,
            None => self.create_missing_dir(dir_of(key))?,
        };
        self.write_in(dir, key, bytes, replace)
    }

    /// Writes `bytes` as `key` through a temporary file in `dir`, the key's directory.
    fn write_in(
        &self,
        dir: OwnedFd,
        key: &Key,
        bytes: &[u8],
        replace: bool,
    ) -> Result<bool, StorageError> {
        let mut temp = self.create_temp(dir, dir_of(key))?;
        temp.file
            .write_all(bytes)
            .map_err(|e| io_error("write", &temp.path(self))(e))?;
        self.persist(temp, key, replace)
    }

    /// Opens the object `key` for reading and returns it with its size: a regular file, reached
    /// without links, opened without blocking (a FIFO would otherwise wait for a writer).
    fn open_object(&self, key: &Key, action: &'static str) -> Result<(File, u64), StorageError> {
        let flags = OFlags::RDONLY | OFlags::NONBLOCK | OFlags::NOCTTY;
        let fd = self
            .beneath
            .open(key.as_str(), flags, Mode::empty())
            .map_err(|e| not_found_or(e, key, action, &self.path_of(key)))?;
        let stat =
            rfs::fstat(&fd).map_err(|e| io_error("inspect", &self.path_of(key))(e.into()))?;
        let size = regular_size(&stat, key).map_err(|e| match e {
            NotRegular::Directory => StorageError::NotFound { key: key.clone() },
            NotRegular::Other(e) => io_error(action, &self.path_of(key))(e),
        })?;
        Ok((File::from(fd), size))
    }

    /// Reads the object `key`, at most `limit` bytes of it.
    fn read_object(&self, key: &Key, limit: u64) -> Result<Vec<u8>, StorageError> {
        let (file, size) = self.open_object(key, "read")?;
        if size > limit {
            return Err(StorageError::TooLarge {
                key: key.clone(),
                size,
                limit,
            });
        }
        read_up_to(file, size).map_err(io_error("read", &self.path_of(key)))
    }

    /// The key of the entry `name` under `prefix`, or `None` for anything that is not an object
    /// name: temporary files and foreign files whose names are not valid segments.
    fn child_key(prefix: Option<&Key>, name: &str) -> Option<Key> {
        match prefix {
            Some(prefix) => prefix.join(name).ok(),
            None => Key::segment(name).ok(),
        }
    }

    /// An exclusive lock on the object `key`, held until the returned file is dropped: `flock`
    /// on `.<name>.lock` beside the object. The object itself cannot carry the lock, since every
    /// write replaces its inode. Like temporary files, lock files start with `.`, which no key
    /// segment may: listings skip them. They are kept (one per object ever updated): removing a
    /// lock file another process has open would let a third lock a new one at the same time.
    ///
    /// The lock file is opened from the object's directory descriptor, without following a link
    /// planted in its place. `flock` holds between processes on one machine; on NFS, Linux maps
    /// it to a POSIX lock on the server (NFSv4, or v3 with the lock manager).
    fn lock(&self, key: &Key) -> Result<File, StorageError> {
        let relative = dir_of(key);
        let dir = match self.object_dir(key)? {
            Some(dir) => dir,
            None => self.create_missing_dir(relative)?,
        };
        let name = format!(".{}.lock", key.name());
        let lock_path = self.path_of_relative(relative).join(&name);
        let flags =
            OFlags::RDWR | OFlags::CREATE | OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::NOCTTY;
        let fd = rfs::openat(&dir, name.as_str(), flags, Mode::from_raw_mode(0o666))
            .map_err(|e| io_error("open the lock file", &lock_path)(e.into()))?;
        let file = File::from(fd);
        file.lock().map_err(io_error("lock", &lock_path))?;
        Ok(file)
    }
}

impl Storage for LocalStorage {
    fn put(&self, key: &Key, bytes: &[u8]) -> Result<(), StorageError> {
        self.write_object(key, bytes, true).map(drop)
    }

    fn put_if_absent(&self, key: &Key, bytes: &[u8]) -> Result<bool, StorageError> {
        self.write_object(key, bytes, false)
    }

    /// One `statx` in the object's directory: a regular file of the right size is the object;
    /// anything else in its place (shorter, longer, a link, a FIFO) is replaced by a rename, which
    /// replaces a link itself, never what it points to.
    fn put_content(&self, key: &Key, bytes: &[u8]) -> Result<bool, StorageError> {
        let Some(dir) = self.object_dir(key)? else {
            return self.write_in(self.create_missing_dir(dir_of(key))?, key, bytes, false);
        };
        match rfs::statat(&dir, key.name(), AtFlags::SYMLINK_NOFOLLOW) {
            Ok(stat) if regular_size(&stat, key).is_ok_and(|size| size == bytes.len() as u64) => {
                Ok(false)
            }
            Ok(_) => self.write_in(dir, key, bytes, true),
            Err(Errno::NOENT) => self.write_in(dir, key, bytes, false),
            Err(e) => Err(io_error("inspect", &self.path_of(key))(e.into())),
        }
    }

    /// One rename to `aside` (in the same directory, as for blobs, or in another one below the
    /// root), then a comparison: if what was moved is not `content`, it is a copy a writer put
    /// there after the read, and it goes back (unless yet another copy is there by then).
    fn set_aside(&self, key: &Key, content: &[u8], aside: &Key) -> Result<bool, StorageError> {
        let Some(dir) = self.object_dir(key)? else {
            return Ok(false);
        };
        let elsewhere = match dir_of(aside) == dir_of(key) {
            true => None,
            false => Some(self.create_dir(dir_of(aside))?),
        };
        let aside_dir = elsewhere.as_ref().unwrap_or(&dir);
        match rfs::renameat(&dir, key.name(), aside_dir, aside.name()) {
            Ok(()) => {}
            Err(Errno::NOENT) => return Ok(false),
            Err(e) => return Err(io_error("set aside", &self.path_of(key))(e.into())),
        }
        let same = file_holds(aside_dir, aside.name(), content)
            .map_err(io_error("read", &self.path_of(aside)))?;
        if same {
            return Ok(true);
        }
        match rename_noreplace(aside_dir.as_fd(), aside.name(), dir.as_fd(), key.name()) {
            Ok(()) => Ok(false),
            // Yet another copy is in place: it stands, and the one moved is left aside.
            Err(Errno::EXIST) => Ok(false),
            Err(e) => Err(io_error("put back", &self.path_of(key))(e.into())),
        }
    }

    fn start_put(&self, near: &Key) -> Result<Box<dyn PendingObject>, StorageError> {
        let dir = self.create_dir(near.as_str())?;
        let temp = self.create_temp(dir, near.as_str())?;
        let file = temp
            .file
            .try_clone()
            .map_err(|e| io_error("open", &temp.path(self))(e))?;
        #[cfg(test)]
        let writer = match self.refuse_direct_after {
            Some(accept) => DirectWriter::failing_direct_after(file, accept, libc::EINVAL)
                .map_err(|e| io_error("open", &temp.path(self))(e))?,
            None => DirectWriter::new(file, temp.open_direct()),
        };
        #[cfg(not(test))]
        let writer = DirectWriter::new(file, temp.open_direct());
        Ok(Box::new(LocalPending {
            storage: self.clone(),
            temp,
            writer,
        }))
    }

    fn get(&self, key: &Key) -> Result<Vec<u8>, StorageError> {
        self.read_object(key, u64::MAX)
    }

    fn get_at_most(&self, key: &Key, limit: u64) -> Result<Vec<u8>, StorageError> {
        self.read_object(key, limit)
    }

    fn reader(&self, key: &Key) -> Result<Box<dyn Read + Send>, StorageError> {
        let (file, size) = self.open_object(key, "open")?;
        Ok(Box::new(file.take(size)))
    }

    fn size(&self, key: &Key) -> Result<Option<u64>, StorageError> {
        let fd = match self.beneath.open(key.as_str(), OFlags::PATH, Mode::empty()) {
            Ok(fd) => fd,
            Err(e) if is_absent(&e) => return Ok(None),
            Err(e) => return Err(io_error("inspect", &self.path_of(key))(e)),
        };
        let stat =
            rfs::fstat(&fd).map_err(|e| io_error("inspect", &self.path_of(key))(e.into()))?;
        match regular_size(&stat, key) {
            Ok(size) => Ok(Some(size)),
            Err(NotRegular::Directory) => Ok(None),
            Err(NotRegular::Other(e)) => Err(io_error("inspect", &self.path_of(key))(e)),
        }
    }

    fn list(&self, prefix: Option<&Key>) -> Result<Vec<Key>, StorageError> {
        let mut objects = Vec::new();
        // Keys of directories still to list, not open directories: a wide tree must not hold a
        // descriptor per pending directory.
        let mut pending = vec![prefix.cloned()];
        while let Some(dir_key) = pending.pop() {
            let relative = dir_key.as_ref().map_or(".", Key::as_str);
            let Some(dir) = self.open_listed_dir(relative)? else {
                continue;
            };
            let listed =
                entries(&dir).map_err(io_error("list", &self.path_of_relative(relative)))?;
            for (name, file_type) in listed {
                let Some(key) = Self::child_key(dir_key.as_ref(), &name) else {
                    continue;
                };
                match file_type {
                    FileType::RegularFile => objects.push(key),
                    FileType::Directory => pending.push(Some(key)),
                    // Links and anything else are not objects.
                    _ => {}
                }
            }
        }
        objects.sort();
        Ok(objects)
    }

    fn list_children(&self, prefix: Option<&Key>) -> Result<Children, StorageError> {
        let relative = prefix.map_or(".", Key::as_str);
        let mut children = Children::default();
        let Some(dir) = self.open_listed_dir(relative)? else {
            return Ok(children);
        };
        let listed = entries(&dir).map_err(io_error("list", &self.path_of_relative(relative)))?;
        for (name, file_type) in listed {
            let Some(key) = Self::child_key(prefix, &name) else {
                continue;
            };
            match file_type {
                FileType::RegularFile => children.objects.push(key),
                FileType::Directory => children.prefixes.push(key),
                _ => {}
            }
        }
        children.objects.sort();
        children.prefixes.sort();
        Ok(children)
    }

    fn delete(&self, key: &Key) -> Result<bool, StorageError> {
        let dir = match self.object_dir(key) {
            Ok(Some(dir)) => dir,
            Ok(None) => return Ok(false),
            Err(e) => return Err(e),
        };
        match rfs::unlinkat(&dir, key.name(), AtFlags::empty()) {
            Ok(()) => Ok(true),
            Err(Errno::NOENT | Errno::ISDIR | Errno::NOTDIR) => Ok(false),
            Err(e) => Err(io_error("delete", &self.path_of(key))(e.into())),
        }
    }

    /// Read, change and write under [`LocalStorage::lock`]; the write is the usual temporary
    /// file and rename, so a reader without the lock still sees the old object or the new one.
    fn update(&self, key: &Key, change: &mut ObjectChange<'_>) -> Result<bool, StorageError> {
        let _lock = self.lock(key)?;
        let current = match self.get_at_most(key, super::MAX_RECORD_SIZE) {
            Ok(bytes) => Some(bytes),
            Err(e) if e.is_not_found() => None,
            Err(e) => return Err(e),
        };
        match change(current.as_deref()) {
            Some(bytes) => self.write_object(key, &bytes, true),
            None => Ok(false),
        }
    }
}

/// A temporary file being written in a directory below the root, removed when dropped unless
/// it was renamed into place.
struct Temp {
    dir: OwnedFd,
    /// The directory's key (`.` for the root).
    relative: String,
    name: String,
    file: File,
    /// Renamed into place: nothing to remove.
    kept: bool,
}

impl Temp {
    fn path(&self, storage: &LocalStorage) -> PathBuf {
        storage.path_of_relative(&self.relative).join(&self.name)
    }

    /// The file opened a second time for direct I/O, where the system and the file system allow
    /// it.
    fn open_direct(&self) -> Option<File> {
        #[cfg(target_os = "linux")]
        {
            let flags = OFlags::WRONLY | OFlags::DIRECT | OFlags::NOFOLLOW | OFlags::CLOEXEC;
            rfs::openat(&self.dir, self.name.as_str(), flags, Mode::empty())
                .ok()
                .map(File::from)
        }
        #[cfg(not(target_os = "linux"))]
        None
    }
}

impl Drop for Temp {
    fn drop(&mut self) {
        if !self.kept {
            // Failing to remove it leaves a stale temporary file, which listings never show and
            // `remove_stale_temp_files` removes.
            let _ = rfs::unlinkat(&self.dir, self.name.as_str(), AtFlags::empty());
        }
    }
}

/// A streamed write into a temporary file, renamed into place on commit.
///
/// Streamed objects are the large ones (blobs past the spill threshold), so they are written
/// past the page cache on a second thread where the system allows it ([`DirectWriter`]).
struct LocalPending {
    storage: LocalStorage,
    temp: Temp,
    writer: DirectWriter,
}

impl LocalPending {
    /// Waits until every byte is in the temporary file, checked, then hands the file over.
    fn finish(self) -> Result<(LocalStorage, Temp), StorageError> {
        let LocalPending {
            storage,
            temp,
            writer,
        } = self;
        writer
            .finish()
            .map_err(|e| io_error("write", &temp.path(&storage))(e))?;
        Ok((storage, temp))
    }
}

impl Write for LocalPending {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.writer.write(buf)
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        self.writer.write_all(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.writer.flush()
    }
}

impl PendingObject for LocalPending {
    fn commit(self: Box<Self>, key: &Key) -> Result<(), StorageError> {
        let (storage, temp) = self.finish()?;
        storage.persist(temp, key, true).map(drop)
    }

    fn commit_if_absent(self: Box<Self>, key: &Key) -> Result<bool, StorageError> {
        // The temporary file exists whatever the answer; looking first only spares finishing
        // and flushing it to disk for nothing before it is removed.
        if let Some(dir) = self.storage.object_dir(key)?
            && self.storage.occupied(&dir, key)?
        {
            return Ok(false);
        }
        let (storage, temp) = self.finish()?;
        storage.persist(temp, key, false)
    }
}

/// The text of the key of `key`'s directory, `.` for the root.
fn dir_of(key: &Key) -> &str {
    key.as_str().rsplit_once('/').map_or(".", |(dir, _)| dir)
}

/// A name for a temporary file no other writer is likely to pick (creating it exclusively makes
/// sure): the prefix, then 12 hex digits of a hash of the process, a counter and the std
/// library's per-process random keys.
fn temp_name() -> String {
    use std::hash::{BuildHasher, Hasher};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut hasher = std::hash::RandomState::new().build_hasher();
    hasher.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    // `getpid` is a system call each time; this process never forks without exec.
    static PID: std::sync::OnceLock<u32> = std::sync::OnceLock::new();
    hasher.write_u32(*PID.get_or_init(std::process::id));
    format!("{TEMP_PREFIX}{:012x}", hasher.finish() & 0xffff_ffff_ffff)
}

/// Renames without replacing: `renameat2(RENAME_NOREPLACE)`, or where the file system does not
/// have it, a hard link then an unlink of the old name.
fn rename_noreplace(
    from_dir: BorrowedFd<'_>,
    from: &str,
    to_dir: BorrowedFd<'_>,
    to: &str,
) -> Result<(), Errno> {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    match rfs::renameat_with(from_dir, from, to_dir, to, rfs::RenameFlags::NOREPLACE) {
        Err(Errno::INVAL | Errno::NOSYS) => {}
        renamed => return renamed,
    }
    rfs::linkat(from_dir, from, to_dir, to, AtFlags::empty())?;
    // The link is the commit; a leftover old name is a stale temporary file, nothing worse.
    let _ = rfs::unlinkat(from_dir, from, AtFlags::empty());
    Ok(())
}

/// What a non-regular file at an object's place is.
enum NotRegular {
    /// A directory: no object there, as on an object store.
    Directory,
    /// A link, a FIFO, a device, a socket: refused.
    Other(io::Error),
}

/// The size of the file `stat` describes, if it is a regular file.
fn regular_size(stat: &Stat, key: &Key) -> Result<u64, NotRegular> {
    match FileType::from_raw_mode(stat.st_mode) {
        FileType::RegularFile => Ok(u64::try_from(stat.st_size).unwrap_or(0)),
        FileType::Directory => Err(NotRegular::Directory),
        FileType::Symlink => Err(NotRegular::Other(link_refused())),
        other => Err(NotRegular::Other(io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "`{key}` is not a regular file but {}; a datastore reads only regular files",
                match other {
                    FileType::Fifo => "a FIFO",
                    FileType::Socket => "a socket",
                    FileType::CharacterDevice => "a character device",
                    FileType::BlockDevice => "a block device",
                    _ => "something else",
                }
            ),
        ))),
    }
}

/// Reads `file` to its end, no further than `size` bytes (its size when opened): a file that
/// grows meanwhile is read as it was.
fn read_up_to(file: File, size: u64) -> io::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    let capacity = usize::try_from(size).unwrap_or(usize::MAX);
    bytes.try_reserve_exact(capacity).map_err(|_| {
        io::Error::new(
            io::ErrorKind::OutOfMemory,
            format!("not enough memory to read its {size} bytes"),
        )
    })?;
    file.take(size).read_to_end(&mut bytes)?;
    Ok(bytes)
}

/// Whether the regular file `name` in `dir` holds exactly `content`.
fn file_holds(dir: &OwnedFd, name: &str, content: &[u8]) -> io::Result<bool> {
    let flags = OFlags::RDONLY | OFlags::NONBLOCK | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let file = File::from(rfs::openat(dir, name, flags, Mode::empty())?);
    let stat = rfs::fstat(&file)?;
    if FileType::from_raw_mode(stat.st_mode) != FileType::RegularFile
        || u64::try_from(stat.st_size).ok() != Some(content.len() as u64)
    {
        return Ok(false);
    }
    let mut file = file.take(content.len() as u64 + 1);
    let mut buffer = vec![0; COMPARE_CHUNK.min(content.len().max(1))];
    let mut offset = 0;
    loop {
        let n = file.read(&mut buffer)?;
        if n == 0 {
            return Ok(offset == content.len());
        }
        if content.get(offset..offset + n) != Some(&buffer[..n]) {
            return Ok(false);
        }
        offset += n;
    }
}

/// The entries of the directory `dir`, without `.` and `..`, with their types as the directory
/// gives them (`lstat` where it does not): a link is a link, never what it points to. Names that
/// are not UTF-8 cannot be keys and are left out.
fn entries(dir: &OwnedFd) -> io::Result<Vec<(String, FileType)>> {
    let mut listing = rfs::Dir::read_from(dir)?;
    let mut out = Vec::new();
    while let Some(entry) = listing.read() {
        let entry = entry?;
        let Ok(name) = entry.file_name().to_str() else {
            continue;
        };
        if name == "." || name == ".." {
            continue;
        }
        let file_type = match entry.file_type() {
            FileType::Unknown => rfs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW)
                .map_or(FileType::Unknown, |stat| {
                    FileType::from_raw_mode(stat.st_mode)
                }),
            known => known,
        };
        out.push((name.to_owned(), file_type));
    }
    Ok(out)
}

/// When the file `stat` describes was last modified.
fn modified(stat: &Stat) -> SystemTime {
    let seconds = u64::try_from(stat.st_mtime).unwrap_or(0);
    let nanos = u32::try_from(stat.st_mtime_nsec).unwrap_or(0);
    SystemTime::UNIX_EPOCH + Duration::new(seconds, nanos)
}

/// Whether an I/O error means "no object there": nothing at the path, a file where a directory of
/// the path should be, or a directory where the object should be.
fn is_absent(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::NotFound | io::ErrorKind::NotADirectory | io::ErrorKind::IsADirectory
    )
}

fn not_found_or(error: io::Error, key: &Key, action: &'static str, path: &Path) -> StorageError {
    if is_absent(&error) {
        StorageError::NotFound { key: key.clone() }
    } else {
        io_error(action, path)(error)
    }
}

fn io_error(action: &'static str, path: &Path) -> impl FnOnce(io::Error) -> StorageError + use<> {
    let location = path.display().to_string();
    move |source| StorageError::Io {
        action,
        location,
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(s: &str) -> Key {
        Key::parse(s).unwrap()
    }

    fn store() -> (tempfile::TempDir, LocalStorage) {
        let dir = tempfile::tempdir().unwrap();
        let storage = LocalStorage::open(dir.path().join("ds")).unwrap();
        (dir, storage)
    }

    /// Every file under the root, temporary ones included, relative and sorted.
    fn files_on_disk(root: &Path) -> Vec<String> {
        let mut out = Vec::new();
        let mut dirs = vec![root.to_path_buf()];
        while let Some(dir) = dirs.pop() {
            for entry in fs::read_dir(dir).unwrap() {
                let entry = entry.unwrap();
                if entry.file_type().unwrap().is_dir() {
                    dirs.push(entry.path());
                } else {
                    let rel = entry.path().strip_prefix(root).unwrap().to_owned();
                    out.push(rel.to_string_lossy().into_owned());
                }
            }
        }
        out.sort();
        out
    }

    #[test]
    fn put_get_overwrite() {
        let (_dir, s) = store();
        let k = key("runs/1/meta.json");
        assert!(!s.exists(&k).unwrap());
        assert!(s.get(&k).unwrap_err().is_not_found());
        s.put(&k, b"one").unwrap();
        assert_eq!(s.get(&k).unwrap(), b"one");
        s.put(&k, b"two!").unwrap();
        assert_eq!(s.get(&k).unwrap(), b"two!");
        assert_eq!(s.size(&k).unwrap(), Some(4));
        let mut read = String::new();
        s.reader(&k).unwrap().read_to_string(&mut read).unwrap();
        assert_eq!(read, "two!");
        assert_eq!(files_on_disk(s.root()), ["runs/1/meta.json"]);
    }

    #[test]
    fn put_if_absent_keeps_the_first() {
        let (_dir, s) = store();
        let k = key("runs/17");
        assert!(s.put_if_absent(&k, b"first").unwrap());
        assert!(!s.put_if_absent(&k, b"second").unwrap());
        assert_eq!(s.get(&k).unwrap(), b"first");
        assert_eq!(files_on_disk(s.root()), ["runs/17"]);
    }

    #[cfg(unix)]
    #[test]
    fn put_if_absent_of_an_existing_object_creates_nothing() {
        use std::os::unix::fs::MetadataExt;
        let (_dir, s) = store();
        let k = key("blobs/ab/abc");
        assert!(s.put_if_absent(&k, b"x").unwrap());
        let state = || {
            let dir = fs::metadata(s.path_of(&key("blobs/ab"))).unwrap();
            let object = fs::metadata(s.path_of(&k)).unwrap();
            (dir.modified().unwrap(), dir.ino(), object.ino())
        };
        let before = state();
        // Directory times have a coarse clock: let it tick, so that a temporary file created and
        // removed in the directory would show.
        std::thread::sleep(Duration::from_millis(50));
        assert!(!s.put_if_absent(&k, b"x").unwrap());
        assert_eq!(state(), before);
        assert_eq!(files_on_disk(s.root()), ["blobs/ab/abc"]);
    }

    #[test]
    fn put_if_absent_has_one_winner_among_threads() {
        let (_dir, s) = store();
        let k = key("claims/run-1");
        let winners: usize = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..8)
                .map(|i| {
                    let s = &s;
                    let k = &k;
                    scope.spawn(move || s.put_if_absent(k, format!("{i}").as_bytes()).unwrap())
                })
                .collect();
            handles
                .into_iter()
                .map(|h| usize::from(h.join().unwrap()))
                .sum()
        });
        assert_eq!(winners, 1);
        assert_eq!(files_on_disk(s.root()), ["claims/run-1"]);
    }

    #[test]
    fn a_streamed_object_is_invisible_until_committed() {
        let (_dir, s) = store();
        let k = key("blobs/ab/abcdef");
        let mut pending = s.start_put(&key("blobs")).unwrap();
        pending.write_all(b"half of it").unwrap();
        // Written bytes exist only as a temporary file: no object, nothing listed.
        assert!(!s.exists(&k).unwrap());
        assert!(s.list(None).unwrap().is_empty());
        assert!(
            s.list_children(Some(&key("blobs")))
                .unwrap()
                .objects
                .is_empty()
        );
        let on_disk = files_on_disk(s.root());
        assert_eq!(on_disk.len(), 1);
        assert!(on_disk[0].starts_with("blobs/.tmp"), "{on_disk:?}");

        pending.write_all(b" and the rest").unwrap();
        pending.commit(&k).unwrap();
        assert_eq!(s.get(&k).unwrap(), b"half of it and the rest");
        assert_eq!(files_on_disk(s.root()), ["blobs/ab/abcdef"]);
    }

    #[test]
    fn an_abandoned_write_leaves_nothing() {
        let (_dir, s) = store();
        let mut pending = s.start_put(&key("blobs")).unwrap();
        pending.write_all(b"never finished").unwrap();
        drop(pending);
        assert!(files_on_disk(s.root()).is_empty());
    }

    #[test]
    fn commit_if_absent_discards_duplicates() {
        let (_dir, s) = store();
        let k = key("blobs/aa/same");
        let mut first = s.start_put(&key("blobs")).unwrap();
        first.write_all(b"x").unwrap();
        let mut second = s.start_put(&key("blobs")).unwrap();
        second.write_all(b"x").unwrap();
        assert!(first.commit_if_absent(&k).unwrap());
        assert!(!second.commit_if_absent(&k).unwrap());
        assert_eq!(files_on_disk(s.root()), ["blobs/aa/same"]);
    }

    #[test]
    fn listings_skip_temporary_and_foreign_files() {
        let (_dir, s) = store();
        s.put(&key("runs/1/start/0/index.json"), b"{}").unwrap();
        s.put(&key("runs/1/start/1/index.json"), b"{}").unwrap();
        s.put(&key("runs/2/meta"), b"").unwrap();
        s.put(&key("top"), b"").unwrap();
        // A crashed writer's leftover, and files no key can name.
        fs::write(s.root().join("runs/.tmpXYZ"), b"partial").unwrap();
        fs::write(s.root().join("runs/has space"), b"").unwrap();
        let _kept_open = s.start_put(&key("runs/1")).unwrap();

        assert_eq!(
            s.list(None).unwrap(),
            [
                key("runs/1/start/0/index.json"),
                key("runs/1/start/1/index.json"),
                key("runs/2/meta"),
                key("top"),
            ]
        );
        assert_eq!(
            s.list(Some(&key("runs/1"))).unwrap(),
            [
                key("runs/1/start/0/index.json"),
                key("runs/1/start/1/index.json")
            ]
        );
        let runs = s.list_children(Some(&key("runs"))).unwrap();
        assert_eq!(runs.prefixes, [key("runs/1"), key("runs/2")]);
        assert!(runs.objects.is_empty());
        let root = s.list_children(None).unwrap();
        assert_eq!(root.prefixes, [key("runs")]);
        assert_eq!(root.objects, [key("top")]);
        assert_eq!(
            s.list_children(Some(&key("nothing/here"))).unwrap(),
            Children::default()
        );
        assert!(s.list(Some(&key("top"))).unwrap().is_empty());
    }

    #[test]
    fn directories_are_not_objects() {
        let (_dir, s) = store();
        s.put(&key("runs/1/meta"), b"m").unwrap();
        assert!(!s.exists(&key("runs/1")).unwrap());
        assert!(s.get(&key("runs/1")).unwrap_err().is_not_found());
        assert!(s.reader(&key("runs/1")).err().unwrap().is_not_found());
        assert!(
            s.get(&key("runs/1/meta/deeper"))
                .unwrap_err()
                .is_not_found()
        );
        assert!(!s.delete(&key("runs/1")).unwrap());
        assert!(s.delete(&key("runs/1/meta")).unwrap());
        assert!(!s.delete(&key("runs/1/meta")).unwrap());
    }

    #[test]
    fn stale_temp_files_are_removed() {
        let (_dir, s) = store();
        s.put(&key("runs/1/meta"), b"m").unwrap();
        fs::write(s.root().join("runs/1/.tmpDEAD"), b"partial").unwrap();
        let live = s.start_put(&key("blobs")).unwrap();
        // Nothing is older than an hour.
        assert_eq!(
            s.remove_stale_temp_files(Duration::from_secs(3600))
                .unwrap(),
            0
        );
        assert_eq!(files_on_disk(s.root()).len(), 3);
        std::thread::sleep(Duration::from_millis(20));
        assert_eq!(
            s.remove_stale_temp_files(Duration::from_millis(10))
                .unwrap(),
            2
        );
        assert_eq!(files_on_disk(s.root()), ["runs/1/meta"]);
        drop(live);
    }

    #[cfg(unix)]
    #[test]
    fn objects_get_ordinary_permissions() {
        use std::os::unix::fs::PermissionsExt;
        let (_dir, s) = store();
        s.put(&key("a"), b"").unwrap();
        let mode = fs::metadata(s.path_of(&key("a")))
            .unwrap()
            .permissions()
            .mode();
        // Whatever the umask, tempfile's owner-only default (0o600) was not kept.
        let umask_allows_group_read = {
            fs::write(s.root().join("probe"), b"").unwrap();
            fs::metadata(s.root().join("probe"))
                .unwrap()
                .permissions()
                .mode()
                & 0o077
        };
        assert_eq!(mode & 0o077, umask_allows_group_read);
    }

    #[test]
    fn updates_from_many_threads_are_never_lost() {
        let (_dir, s) = store();
        let k = key("flows/F/latest/any");
        std::thread::scope(|scope| {
            for _ in 0..8 {
                // Each thread its own handle, as each process would have.
                let s = s.clone();
                let k = &k;
                scope.spawn(move || {
                    for _ in 0..50 {
                        s.update(k, &mut |current| {
                            let n: u64 = current
                                .and_then(|b| std::str::from_utf8(b).ok()?.parse().ok())
                                .unwrap_or(0);
                            Some((n + 1).to_string().into_bytes())
                        })
                        .unwrap();
                    }
                });
            }
        });
        assert_eq!(s.get(&k).unwrap(), b"400");
        // The lock file is hidden from listings.
        assert_eq!(s.list(None).unwrap(), std::slice::from_ref(&k));
        assert_eq!(
            files_on_disk(s.root()),
            ["flows/F/latest/.any.lock", "flows/F/latest/any"]
        );
    }

    #[test]
    fn an_update_that_changes_nothing_writes_nothing() {
        let (_dir, s) = store();
        let k = key("runs/1/run.json");
        assert!(!s.update(&k, &mut |_| None).unwrap());
        assert!(!s.exists(&k).unwrap());
        assert!(s.update(&k, &mut |_| Some(b"one".to_vec())).unwrap());
        assert!(
            !s.update(&k, &mut |current| {
                assert_eq!(current, Some(&b"one"[..]));
                None
            })
            .unwrap()
        );
        assert_eq!(s.get(&k).unwrap(), b"one");
    }

    #[cfg(unix)]
    #[test]
    fn an_update_does_not_follow_a_link_planted_as_its_lock_file() {
        let (dir, s) = store();
        let k = key("runs/1/run.json");
        s.put(&k, b"one").unwrap();
        let elsewhere = dir.path().join("elsewhere");
        std::os::unix::fs::symlink(&elsewhere, s.root().join("runs/1/.run.json.lock")).unwrap();
        let e = s
            .update(&k, &mut |_| Some(b"two".to_vec()))
            .unwrap_err()
            .to_string();
        assert!(e.contains(".run.json.lock"), "{e}");
        assert!(!elsewhere.exists());
        assert_eq!(s.get(&k).unwrap(), b"one");
    }

    #[test]
    fn io_errors_say_where() {
        let (_dir, s) = store();
        s.put(&key("file"), b"").unwrap();
        // "file" is an object, so nothing can be written below it.
        let err = s.put(&key("file/child"), b"").unwrap_err();
        let message = err.to_string();
        assert!(
            message.starts_with("could not create directory"),
            "{message}"
        );
        assert!(message.contains("file"), "{message}");
    }
}
