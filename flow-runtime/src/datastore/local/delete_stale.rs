//! Deleting an object only if it was not written since a time, with no window in which a
//! refresh could be lost ([`Storage::delete_if_written_before`]).
//!
//! [`Storage::delete_if_written_before`]: crate::datastore::Storage::delete_if_written_before

use std::os::fd::AsFd;
use std::time::SystemTime;

use rustix::fs::{self as rfs, AtFlags};
use rustix::io::Errno;

use super::errors::io_error;
use super::read::modified;
use super::root::Root;
use super::temp_file::{TEMP_PREFIX, rename_noreplace};
use crate::datastore::keys::Key;
use crate::datastore::storage::StorageError;
use crate::datastore::unique_name::unique_name;

/// Renames `key` aside (a temporary name, which no reader or writer looks at), then reads the
/// time of what was moved: written before `cutoff`, it is removed; written since (a writer
/// refreshed it after the caller looked), it goes back, unless a writer stored a new copy in the
/// meantime, which then stays. A crash in between leaves a stale temporary file, which
/// `LocalStorage::remove_stale_temp_files` removes.
pub(super) fn delete_if_written_before(
    root: &Root,
    key: &Key,
    cutoff: SystemTime,
) -> Result<bool, StorageError> {
    let Some(dir) = root.object_dir(key)? else {
        return Ok(false);
    };
    let path = root.path_of(key);
    let aside = unique_name(&format!("{TEMP_PREFIX}-gc-"));
    match rfs::renameat(&dir, key.name(), &dir, aside.as_str()) {
        Ok(()) => {}
        Err(Errno::NOENT) => return Ok(false),
        Err(e) => return Err(io_error("delete", &path)(e.into())),
    }
    let stat = rfs::statat(&dir, aside.as_str(), AtFlags::SYMLINK_NOFOLLOW)
        .map_err(|e| io_error("inspect", &path)(e.into()))?;
    if modified(&stat) < cutoff {
        rfs::unlinkat(&dir, aside.as_str(), AtFlags::empty())
            .map_err(|e| io_error("delete", &path)(e.into()))?;
        return Ok(true);
    }
    match rename_noreplace(dir.as_fd(), aside.as_str(), dir.as_fd(), key.name()) {
        Ok(()) => Ok(false),
        // A writer stored it again meanwhile: that copy stays, this one goes.
        Err(Errno::EXIST) => {
            let _ = rfs::unlinkat(&dir, aside.as_str(), AtFlags::empty());
            Ok(false)
        }
        Err(e) => Err(io_error("put back", &path)(e.into())),
    }
}
