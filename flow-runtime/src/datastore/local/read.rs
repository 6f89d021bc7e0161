//! Reading objects of a local datastore: only regular files, reached without links, opened
//! without blocking (a FIFO cannot hang the reader), and read no further than the size they had
//! when opened, nor past the caller's limit.

use std::fs::File;
use std::io::{self, Read};
use std::os::fd::OwnedFd;
use std::time::{Duration, SystemTime};

use rustix::fs::{self as rfs, FileType, Mode, OFlags, Stat};

use super::beneath::link_refused;
use super::errors::{io_error, is_absent, not_found_or};
use super::root::Root;
use crate::datastore::keys::Key;
use crate::datastore::storage::{ObjectStat, StorageError};

/// How much of an object is compared at a time by [`file_holds`].
const COMPARE_CHUNK: usize = 1 << 20;

/// Opens the object `key` for reading and returns it with its size: a regular file, reached
/// without links, opened without blocking (a FIFO would otherwise wait for a writer).
pub(super) fn open_object(
    root: &Root,
    key: &Key,
    action: &'static str,
) -> Result<(File, u64), StorageError> {
    let flags = OFlags::RDONLY | OFlags::NONBLOCK | OFlags::NOCTTY;
    let fd = root
        .beneath()
        .open(key.as_str(), flags, Mode::empty())
        .map_err(|e| not_found_or(e, key, action, &root.path_of(key)))?;
    let stat = rfs::fstat(&fd).map_err(|e| io_error("inspect", &root.path_of(key))(e.into()))?;
    let size = regular_size(&stat, key).map_err(|e| match e {
        NotRegular::Directory => StorageError::NotFound { key: key.clone() },
        NotRegular::Other(e) => io_error(action, &root.path_of(key))(e),
    })?;
    Ok((File::from(fd), size))
}

/// Reads the object `key`, at most `limit` bytes of it.
pub(super) fn read_object(root: &Root, key: &Key, limit: u64) -> Result<Vec<u8>, StorageError> {
    let (file, size) = open_object(root, key, "read")?;
    if size > limit {
        return Err(StorageError::TooLarge {
            key: key.clone(),
            size,
            limit,
        });
    }
    read_up_to(file, size).map_err(io_error("read", &root.path_of(key)))
}

/// The size and modification time of the object `key`, or `None` where there is none.
pub(super) fn object_stat(root: &Root, key: &Key) -> Result<Option<ObjectStat>, StorageError> {
    let fd = match root
        .beneath()
        .open(key.as_str(), OFlags::PATH, Mode::empty())
    {
        Ok(fd) => fd,
        Err(e) if is_absent(&e) => return Ok(None),
        Err(e) => return Err(io_error("inspect", &root.path_of(key))(e)),
    };
    let stat = rfs::fstat(&fd).map_err(|e| io_error("inspect", &root.path_of(key))(e.into()))?;
    match regular_size(&stat, key) {
        Ok(size) => Ok(Some(ObjectStat {
            size,
            modified: modified(&stat),
        })),
        Err(NotRegular::Directory) => Ok(None),
        Err(NotRegular::Other(e)) => Err(io_error("inspect", &root.path_of(key))(e)),
    }
}

/// When the file `stat` describes was last modified.
pub(super) fn modified(stat: &Stat) -> SystemTime {
    let seconds = u64::try_from(stat.st_mtime).unwrap_or(0);
    let nanos = u32::try_from(stat.st_mtime_nsec).unwrap_or(0);
    SystemTime::UNIX_EPOCH + Duration::new(seconds, nanos)
}

/// What a non-regular file at an object's place is.
pub(super) enum NotRegular {
    /// A directory: no object there, as on an object store.
    Directory,
    /// A link, a FIFO, a device, a socket: refused.
    Other(io::Error),
}

/// The size of the file `stat` describes, if it is a regular file.
pub(super) fn regular_size(stat: &Stat, key: &Key) -> Result<u64, NotRegular> {
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
pub(super) fn file_holds(dir: &OwnedFd, name: &str, content: &[u8]) -> io::Result<bool> {
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
