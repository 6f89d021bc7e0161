//! Temporary files, through which every write goes: created exclusively beside where the object
//! will be, renamed into place when complete (the commit), removed otherwise; and the removal
//! of those that crashed writers left behind.
//!
//! Temporary names start with [`TEMP_PREFIX`], and so with `.`, which no key segment may: they
//! can never be mistaken for objects, and listings skip them.

use std::fs::File;
use std::io::Write;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use rustix::fs::{self as rfs, AtFlags, FileType, Mode, OFlags};
use rustix::io::Errno;

use super::errors::io_error;
use super::listing::entries;
use super::read::modified;
use super::root::{Root, dir_of};
use crate::datastore::keys::Key;
use crate::datastore::storage::StorageError;
use crate::datastore::unique_name::unique_name;

/// The prefix of the temporary files writers create.
pub(super) const TEMP_PREFIX: &str = ".tmp";

/// A temporary file being written in a directory below the root, removed when dropped unless
/// it was renamed into place.
pub(super) struct Temp {
    dir: OwnedFd,
    /// The directory's key (`.` for the root).
    relative: String,
    name: String,
    pub(super) file: File,
    /// Renamed into place: nothing to remove.
    kept: bool,
}

impl Temp {
    /// A new temporary file in `dir` (whose key is `relative`), readable and writable.
    pub(super) fn create(root: &Root, dir: OwnedFd, relative: &str) -> Result<Temp, StorageError> {
        // Objects are shared data: the permissions any other new file gets (0o666 minus the
        // umask). Exclusive creation makes the name ours; a name taken is tried again.
        let flags = OFlags::RDWR | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW;
        let mut attempts = 0;
        loop {
            let name = unique_name(TEMP_PREFIX);
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
                        &root.path_of_relative(relative),
                    )(e.into()));
                }
            }
        }
    }

    pub(super) fn path(&self, root: &Root) -> PathBuf {
        root.path_of_relative(&self.relative).join(&self.name)
    }

    /// The file opened a second time for direct I/O, where the system and the file system allow
    /// it.
    pub(super) fn open_direct(&self) -> Option<File> {
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

    /// Makes this file visible as `key`: a rename, or with `replace == false` a rename that
    /// fails if something is there already (`renameat2(RENAME_NOREPLACE)`, or where the file
    /// system lacks it a hard link then an unlink of the temporary name). Either way the
    /// temporary file's inode becomes the object's: committing allocates no inode and frees none.
    /// Only a commit that loses to an existing object deletes the temporary file. With `sync`,
    /// the file is flushed to disk before the rename and its directory after.
    ///
    /// The caller has checked for an existing object where that is worth a lookup; here the
    /// rename alone decides.
    pub(super) fn commit(
        mut self,
        root: &Root,
        key: &Key,
        replace: bool,
        sync: bool,
    ) -> Result<bool, StorageError> {
        if sync {
            self.file
                .sync_data()
                .map_err(|e| io_error("flush to disk", &self.path(root))(e))?;
        }
        let relative = dir_of(key);
        // A streamed object's temporary file is in a prefix of its directory, which may not
        // exist yet (a blob's fan-out directory).
        let elsewhere = match self.relative == relative {
            true => None,
            false => Some(root.create_dir(relative)?),
        };
        let target = elsewhere.as_ref().map_or(self.dir.as_fd(), AsFd::as_fd);
        let renamed = if replace {
            rfs::renameat(&self.dir, self.name.as_str(), target, key.name())
        } else {
            rename_noreplace(self.dir.as_fd(), &self.name, target, key.name())
        };
        match renamed {
            Ok(()) => self.kept = true,
            // Another writer committed the same key first: its object stands, ours is dropped
            // (the temporary file is removed with `self`).
            Err(Errno::EXIST) if !replace => return Ok(false),
            Err(e) => return Err(io_error("commit", &root.path_of(key))(e.into())),
        }
        if sync {
            rfs::fsync(target).map_err(|e| {
                io_error("flush to disk", &root.path_of_relative(relative))(e.into())
            })?;
        }
        Ok(true)
    }
}

impl Drop for Temp {
    fn drop(&mut self) {
        if !self.kept {
            // Failing to remove it leaves a stale temporary file, which listings never show and
            // `remove_stale` removes.
            let _ = rfs::unlinkat(&self.dir, self.name.as_str(), AtFlags::empty());
        }
    }
}

/// Writes `bytes` as `key`. Per call, in the steady state (directory present): `put` is open
/// directory + create + write + rename + two closes; `put_if_absent` (`replace == false`) one
/// `statx` more before it, and only the open, the `statx` and a close when the object exists,
/// so content-addressed writes of data that is already stored create and delete nothing.
pub(super) fn write_object(
    root: &Root,
    key: &Key,
    bytes: &[u8],
    replace: bool,
    sync: bool,
) -> Result<bool, StorageError> {
    let dir = match root.object_dir(key)? {
        Some(dir) if !replace && root.occupied(&dir, key)? => return Ok(false),
        Some(dir) => dir,
        None => root.create_missing_dir(dir_of(key))?,
    };
    write_in(root, dir, key, bytes, replace, sync)
}

/// Writes `bytes` as `key` through a temporary file in `dir`, the key's directory.
pub(super) fn write_in(
    root: &Root,
    dir: OwnedFd,
    key: &Key,
    bytes: &[u8],
    replace: bool,
    sync: bool,
) -> Result<bool, StorageError> {
    let mut temp = Temp::create(root, dir, dir_of(key))?;
    temp.file
        .write_all(bytes)
        .map_err(|e| io_error("write", &temp.path(root))(e))?;
    temp.commit(root, key, replace, sync)
}

/// Renames without replacing: `renameat2(RENAME_NOREPLACE)`, or where the file system does not
/// have it, a hard link then an unlink of the old name.
pub(super) fn rename_noreplace(
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

/// Removes the temporary files below `root` older than `older_than`; returns how many.
pub(super) fn remove_stale(root: &Root, older_than: Duration) -> Result<usize, StorageError> {
    let cutoff = SystemTime::now().checked_sub(older_than);
    let mut removed = 0;
    let mut dirs = vec![".".to_owned()];
    while let Some(relative) = dirs.pop() {
        let Some(dir) = root.open_listed_dir(&relative)? else {
            continue;
        };
        let path = root.path_of_relative(&relative);
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
