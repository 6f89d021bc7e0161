//! Listing a local datastore: directory entries read from open directories, never through a
//! link, and only names that are keys (temporary files, lock files and foreign names skipped).

use std::io;
use std::os::fd::OwnedFd;

use rustix::fs::{self as rfs, AtFlags, FileType};

use super::errors::io_error;
use super::root::Root;
use crate::datastore::keys::Key;
use crate::datastore::storage::{Children, StorageError};

/// Every object under `prefix` (the whole datastore for `None`), at any depth, sorted.
pub(super) fn list(root: &Root, prefix: Option<&Key>) -> Result<Vec<Key>, StorageError> {
    let mut objects = Vec::new();
    // Keys of directories still to list, not open directories: a wide tree must not hold a
    // descriptor per pending directory.
    let mut pending = vec![prefix.cloned()];
    while let Some(dir_key) = pending.pop() {
        let relative = dir_key.as_ref().map_or(".", Key::as_str);
        let Some(dir) = root.open_listed_dir(relative)? else {
            continue;
        };
        let listed = entries(&dir).map_err(io_error("list", &root.path_of_relative(relative)))?;
        for (name, file_type) in listed {
            let Some(key) = child_key(dir_key.as_ref(), &name) else {
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

/// The files and directories directly under `prefix`, each sorted.
pub(super) fn list_children(root: &Root, prefix: Option<&Key>) -> Result<Children, StorageError> {
    let relative = prefix.map_or(".", Key::as_str);
    let mut children = Children::default();
    let Some(dir) = root.open_listed_dir(relative)? else {
        return Ok(children);
    };
    let listed = entries(&dir).map_err(io_error("list", &root.path_of_relative(relative)))?;
    for (name, file_type) in listed {
        let Some(key) = child_key(prefix, &name) else {
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

/// The key of the entry `name` under `prefix`, or `None` for anything that is not an object
/// name: temporary files and foreign files whose names are not valid segments.
fn child_key(prefix: Option<&Key>, name: &str) -> Option<Key> {
    match prefix {
        Some(prefix) => prefix.join(name).ok(),
        None => Key::segment(name).ok(),
    }
}

/// The entries of the directory `dir`, without `.` and `..`, with their types as the directory
/// gives them (`lstat` where it does not): a link is a link, never what it points to. Names that
/// are not UTF-8 cannot be keys and are left out.
pub(super) fn entries(dir: &OwnedFd) -> io::Result<Vec<(String, FileType)>> {
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
