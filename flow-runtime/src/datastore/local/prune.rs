//! Removing the directories of a prefix once no object is below them ([`Storage::prune`]):
//! a deleted run leaves no empty folders that listings would still show as a run.
//!
//! [`Storage::prune`]: crate::datastore::Storage::prune

use rustix::fs::{self as rfs, AtFlags, FileType};
use rustix::io::Errno;

use super::errors::io_error;
use super::listing::entries;
use super::root::Root;
use crate::datastore::keys::Key;
use crate::datastore::storage::StorageError;

/// Removes the directory of `prefix` and those below it that hold no object, deepest first. A
/// lock file (`.<name>.lock`, see `lock.rs`) whose object is gone goes with them; anything else
/// (an object, a temporary file of a write in progress or abandoned) keeps its directory.
pub(super) fn prune(root: &Root, prefix: &Key) -> Result<(), StorageError> {
    // Parents before children, so that removing in reverse goes deepest first.
    let mut dirs = vec![prefix.as_str().to_owned()];
    let mut next = 0;
    while let Some(relative) = dirs.get(next).cloned() {
        next += 1;
        let Some(dir) = root.open_listed_dir(&relative)? else {
            continue;
        };
        let path = root.path_of_relative(&relative);
        let listed = entries(&dir).map_err(io_error("list", &path))?;
        for (name, file_type) in &listed {
            match file_type {
                FileType::Directory if !name.starts_with('.') => {
                    dirs.push(format!("{relative}/{name}"));
                }
                FileType::RegularFile => {
                    let Some(object) = lock_file_object(name) else {
                        continue;
                    };
                    let object_there = listed.iter().any(|(other, _)| other == object);
                    if !object_there {
                        match rfs::unlinkat(&dir, name.as_str(), AtFlags::empty()) {
                            Ok(()) | Err(Errno::NOENT) => {}
                            Err(e) => {
                                return Err(io_error("remove", &path.join(name))(e.into()));
                            }
                        }
                    }
                }
                _ => {}
            }
        }
    }
    for relative in dirs.iter().rev() {
        let (parent, name) = relative.rsplit_once('/').unwrap_or((".", relative));
        let Some(parent_dir) = root.open_listed_dir(parent)? else {
            continue;
        };
        match rfs::unlinkat(&parent_dir, name, AtFlags::REMOVEDIR) {
            // Gone already, or something is still (or again) below it: it stays.
            Ok(()) | Err(Errno::NOENT | Errno::NOTEMPTY | Errno::EXIST) => {}
            Err(e) => {
                return Err(io_error("remove", &root.path_of_relative(relative))(
                    e.into(),
                ));
            }
        }
    }
    Ok(())
}

/// The object a lock file `.<name>.lock` locks, if `file` is one.
fn lock_file_object(file: &str) -> Option<&str> {
    file.strip_prefix('.')?
        .strip_suffix(".lock")
        .filter(|name| !name.is_empty())
}
