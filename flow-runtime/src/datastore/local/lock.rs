//! The lock that makes [`Storage::update`](crate::datastore::storage::Storage::update) atomic between
//! writers on one machine: `flock` on a lock file beside the object.

use std::fs::File;

use rustix::fs::{self as rfs, Mode, OFlags};

use super::errors::io_error;
use super::root::{Root, dir_of};
use crate::datastore::keys::Key;
use crate::datastore::storage::StorageError;

/// An exclusive lock on the object `key`, held until the returned file is dropped: `flock`
/// on `.<name>.lock` beside the object. The object itself cannot carry the lock, since every
/// write replaces its inode. Like temporary files, lock files start with `.`, which no key
/// segment may: listings skip them. They are kept (one per object ever updated): removing a
/// lock file another process has open would let a third lock a new one at the same time.
///
/// The lock file is opened from the object's directory descriptor, without following a link
/// planted in its place. `flock` holds between processes on one machine; on NFS, Linux maps
/// it to a POSIX lock on the server (NFSv4, or v3 with the lock manager).
pub(super) fn lock(root: &Root, key: &Key) -> Result<File, StorageError> {
    let relative = dir_of(key);
    let dir = match root.object_dir(key)? {
        Some(dir) => dir,
        None => root.create_missing_dir(relative)?,
    };
    let name = format!(".{}.lock", key.name());
    let lock_path = root.path_of_relative(relative).join(&name);
    let flags = OFlags::RDWR | OFlags::CREATE | OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::NOCTTY;
    let fd = rfs::openat(&dir, name.as_str(), flags, Mode::from_raw_mode(0o666))
        .map_err(|e| io_error("open the lock file", &lock_path)(e.into()))?;
    let file = File::from(fd);
    file.lock().map_err(io_error("lock", &lock_path))?;
    Ok(file)
}
