//! The datastore's directory, open: where each key is on disk, and the directories of objects
//! opened (or created) below the root without following links.

use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use rustix::fs::{self as rfs, AtFlags};
use rustix::io::Errno;

use super::beneath::Beneath;
use super::errors::{io_error, is_absent};
use crate::datastore::keys::Key;
use crate::datastore::storage::StorageError;

/// The root directory of a local datastore: its absolute path, for messages, and the directory
/// itself, open, from which everything below it is reached.
#[derive(Debug)]
pub(super) struct Root {
    path: PathBuf,
    beneath: Beneath,
}

impl Root {
    /// `path` (absolute, an existing directory), opened.
    pub(super) fn open(path: PathBuf) -> Result<Self, StorageError> {
        let beneath =
            Beneath::root(&path).map_err(io_error("open the datastore directory", &path))?;
        Ok(Root { path, beneath })
    }

    /// This root resolving paths one component at a time, as where `openat2` is missing: the
    /// fallback's tests.
    #[cfg(test)]
    pub(super) fn walking(&self) -> Self {
        let beneath = Beneath::root(&self.path).unwrap().walking();
        Root {
            path: self.path.clone(),
            beneath,
        }
    }

    /// The root's path.
    pub(super) fn path(&self) -> &Path {
        &self.path
    }

    /// The root, open: every path below it is opened through this.
    pub(super) fn beneath(&self) -> &Beneath {
        &self.beneath
    }

    /// The path of the file that holds the object `key`.
    pub(super) fn path_of(&self, key: &Key) -> PathBuf {
        let mut path = self.path.clone();
        path.extend(key.segments());
        path
    }

    /// The path of `relative` (a key's text, or `.` for the root), for messages.
    pub(super) fn path_of_relative(&self, relative: &str) -> PathBuf {
        let mut path = self.path.clone();
        path.extend(relative.split('/').filter(|c| *c != "."));
        path
    }

    /// The directory of the object `key`, opened; `None` if it does not exist.
    pub(super) fn object_dir(&self, key: &Key) -> Result<Option<OwnedFd>, StorageError> {
        let relative = dir_of(key);
        match self.beneath.open_dir(relative) {
            Ok(dir) => Ok(Some(dir)),
            Err(e) if is_absent(&e) => Ok(None),
            Err(e) => Err(io_error("open", &self.path_of_relative(relative))(e)),
        }
    }

    /// The directory `relative`, opened, created first (with its parents) if it is missing.
    pub(super) fn create_dir(&self, relative: &str) -> Result<OwnedFd, StorageError> {
        self.beneath.create_dir(relative).map_err(io_error(
            "create directory",
            &self.path_of_relative(relative),
        ))
    }

    /// The directory `relative`, which was just found missing, created (with its parents).
    pub(super) fn create_missing_dir(&self, relative: &str) -> Result<OwnedFd, StorageError> {
        self.beneath.create_missing_dir(relative).map_err(io_error(
            "create directory",
            &self.path_of_relative(relative),
        ))
    }

    /// A prefix's directory to list, or `None` where there is none (nothing listed under it).
    pub(super) fn open_listed_dir(&self, relative: &str) -> Result<Option<OwnedFd>, StorageError> {
        match self.beneath.open_dir(relative) {
            Ok(dir) => Ok(Some(dir)),
            Err(e) if is_absent(&e) => Ok(None),
            Err(e) => Err(io_error("list", &self.path_of_relative(relative))(e)),
        }
    }

    /// Whether something (an object, or anything else in its place) is at `key`, whose
    /// directory is `dir`.
    pub(super) fn occupied(&self, dir: &OwnedFd, key: &Key) -> Result<bool, StorageError> {
        match rfs::statat(dir, key.name(), AtFlags::SYMLINK_NOFOLLOW) {
            Ok(_) => Ok(true),
            Err(Errno::NOENT) => Ok(false),
            Err(e) => Err(io_error("inspect", &self.path_of(key))(e.into())),
        }
    }
}

/// The text of the key of `key`'s directory, `.` for the root.
pub(super) fn dir_of(key: &Key) -> &str {
    key.as_str().rsplit_once('/').map_or(".", |(dir, _)| dir)
}
