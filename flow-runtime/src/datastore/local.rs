//! The datastore as a local directory.
//!
//! A key maps to the path of the same segments under the root. Every write goes to a temporary
//! file (named `.tmp…`, created by `tempfile`) in the directory of the object, or of the prefix given
//! to [`Storage::start_put`], and is renamed into place when complete; renames within one file system
//! are atomic, so readers see an object whole or not at all. Temporary names start with `.`, which no
//! key segment may, so they can never be mistaken for objects: listings skip them, and
//! [`LocalStorage::remove_stale_temp_files`] removes those a crashed writer left behind.
//!
//! Costs per write, in system calls, once the object's directory exists: `put` creates the
//! temporary file, writes, renames and closes (4); `put_if_absent` looks the key up first (5, or
//! just the lookup when the object exists); a committed write creates exactly one inode, the
//! object's, and deletes none. Directories are created on demand, when creating a file or
//! renaming into one fails because the directory is missing, so the steady state does no `mkdir`.
//! With sync on, add an `fdatasync` of the file and an `fsync` of its directory.

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use tempfile::NamedTempFile;

use super::direct_write::DirectWriter;

use super::keys::Key;
use super::storage::{Children, PendingObject, Storage, StorageError};

/// The prefix of the temporary files writers create (`tempfile`'s default).
const TEMP_PREFIX: &str = ".tmp";

/// A datastore kept in a directory of the local file system (or a shared one mounted locally).
///
/// Cheap to clone. By default every committed file is flushed to disk (`fsync`) before it is
/// renamed into place, and the directory after, so that a power loss cannot leave a done marker
/// pointing at data that never reached the disk; [`LocalStorage::with_sync`] turns that off where
/// speed matters more (tests, scratch runs on tmpfs).
#[derive(Debug, Clone)]
pub struct LocalStorage {
    root: PathBuf,
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
    /// A relative `root` is made absolute against the current directory once, here: the
    /// datastore stays where it was opened if the process changes directory later, and no write
    /// has to look the current directory up again.
    ///
    /// # Errors
    ///
    /// If the directory cannot be created.
    pub fn open(root: impl Into<PathBuf>) -> Result<Self, StorageError> {
        let root = root.into();
        let root = std::path::absolute(&root).map_err(io_error("locate", &root))?;
        fs::create_dir_all(&root).map_err(io_error("create the datastore directory", &root))?;
        Ok(LocalStorage {
            root,
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
        let mut dirs = vec![self.root.clone()];
        while let Some(dir) = dirs.pop() {
            for entry in read_dir(&dir)?.into_iter().flatten() {
                let entry = entry.map_err(io_error("list", &dir))?;
                let file_type = entry
                    .file_type()
                    .map_err(io_error("inspect", &entry.path()))?;
                let name = entry.file_name();
                let is_temp = name.to_str().is_some_and(|n| n.starts_with(TEMP_PREFIX));
                if file_type.is_dir() && !name.to_string_lossy().starts_with('.') {
                    dirs.push(entry.path());
                } else if file_type.is_file() && is_temp {
                    let path = entry.path();
                    let modified = entry
                        .metadata()
                        .and_then(|m| m.modified())
                        .map_err(io_error("inspect", &path))?;
                    if cutoff.is_some_and(|cutoff| modified < cutoff) {
                        match fs::remove_file(&path) {
                            Ok(()) => removed += 1,
                            Err(e) if is_absent(&e) => {}
                            Err(e) => return Err(io_error("remove", &path)(e)),
                        }
                    }
                }
            }
        }
        Ok(removed)
    }

    /// A new temporary file in `dir`, creating `dir` (and its parents) only if it is missing.
    ///
    /// The file is created first and the directory only on `ENOENT`, so writing into a directory
    /// that exists (the steady state: blob fan-out directories, a task's directory after its first
    /// object) costs no `mkdir` at all, and nothing needs to be remembered between calls.
    fn temp_file_in(&self, dir: &Path) -> Result<NamedTempFile, StorageError> {
        let mut builder = tempfile::Builder::new();
        builder.prefix(TEMP_PREFIX);
        // tempfile creates files readable by their owner only; objects are shared data, so give
        // them the permissions any other new file gets (0o666 minus the umask).
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            builder.permissions(fs::Permissions::from_mode(0o666));
        }
        match builder.tempfile_in(dir) {
            // `dir` is missing, or a file is where one of its parents should be (which creating
            // it reports clearly).
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
                ) =>
            {
                create_dir(dir)?;
                builder.tempfile_in(dir)
            }
            result => result,
        }
        .map_err(io_error("create a temporary file in", dir))
    }

    /// Makes `temp` visible as `key`: a rename, or with `replace == false` a rename that fails if
    /// something is there already (`renameat2(RENAME_NOREPLACE)`, or where the file system lacks
    /// it a hard link then an unlink of the temporary name). Either way the temporary file's inode
    /// becomes the object's: committing allocates no inode and frees none. Only a commit that
    /// loses to an existing object deletes the temporary file.
    ///
    /// The caller has checked for an existing object where that is worth a lookup; here the
    /// rename alone decides.
    fn persist(&self, temp: NamedTempFile, key: &Key, replace: bool) -> Result<bool, StorageError> {
        let path = self.path_of(key);
        if self.sync {
            temp.as_file()
                .sync_data()
                .map_err(io_error("flush to disk", temp.path()))?;
        }
        let dir = parent_dir(&path);
        let rename = |temp: NamedTempFile| {
            if replace {
                temp.persist(&path)
            } else {
                temp.persist_noclobber(&path)
            }
        };
        let persisted = match rename(temp) {
            // The object's directory does not exist yet (a streamed blob's fan-out directory):
            // create it and try once more.
            Err(e) if e.error.kind() == io::ErrorKind::NotFound => {
                create_dir(dir)?;
                rename(e.file)
            }
            result => result,
        };
        match persisted {
            Ok(_) => {}
            // Another writer committed the same key first: its object stands, ours is dropped
            // (the temporary file is removed with the error).
            Err(e) if !replace && e.error.kind() == io::ErrorKind::AlreadyExists => {
                return Ok(false);
            }
            Err(e) => return Err(io_error("commit", &path)(e.error)),
        }
        if self.sync {
            File::open(dir)
                .and_then(|d| d.sync_all())
                .map_err(io_error("flush to disk", dir))?;
        }
        Ok(true)
    }

    /// Whether something (an object, or anything else in its place) is at `path`.
    fn occupied(path: &Path) -> bool {
        fs::symlink_metadata(path).is_ok()
    }

    /// Writes `bytes` as `key`. Per call, in the steady state (directory present):
    /// `put` is open + write + rename + close; `put_if_absent` one `statx` more before it, and
    /// only that `statx` when the object exists, so content-addressed writes of data that is
    /// already stored create and delete nothing.
    fn write_object(&self, key: &Key, bytes: &[u8], replace: bool) -> Result<bool, StorageError> {
        let path = self.path_of(key);
        if !replace && Self::occupied(&path) {
            return Ok(false);
        }
        let mut temp = self.temp_file_in(parent_dir(&path))?;
        temp.write_all(bytes)
            .map_err(io_error("write", temp.path()))?;
        self.persist(temp, key, replace)
    }

    /// The key of the entry `name` under `prefix`, or `None` for anything that is not an object
    /// name: temporary files and foreign files whose names are not valid segments.
    fn child_key(prefix: Option<&Key>, name: &std::ffi::OsStr) -> Option<Key> {
        let name = name.to_str()?;
        match prefix {
            Some(prefix) => prefix.join(name).ok(),
            None => Key::segment(name).ok(),
        }
    }

    fn prefix_dir(&self, prefix: Option<&Key>) -> PathBuf {
        prefix.map_or_else(|| self.root.clone(), |p| self.path_of(p))
    }
}

impl Storage for LocalStorage {
    fn put(&self, key: &Key, bytes: &[u8]) -> Result<(), StorageError> {
        self.write_object(key, bytes, true).map(drop)
    }

    fn put_if_absent(&self, key: &Key, bytes: &[u8]) -> Result<bool, StorageError> {
        self.write_object(key, bytes, false)
    }

    fn start_put(&self, near: &Key) -> Result<Box<dyn PendingObject>, StorageError> {
        let temp = self.temp_file_in(&self.path_of(near))?;
        let file = temp
            .as_file()
            .try_clone()
            .map_err(io_error("open", temp.path()))?;
        #[cfg(test)]
        let writer = match self.refuse_direct_after {
            Some(accept) => DirectWriter::failing_direct_after(file, accept, libc::EINVAL)
                .map_err(io_error("open", temp.path()))?,
            None => DirectWriter::new(file, open_direct(temp.path())),
        };
        #[cfg(not(test))]
        let writer = DirectWriter::new(file, open_direct(temp.path()));
        Ok(Box::new(LocalPending {
            storage: self.clone(),
            temp,
            writer,
        }))
    }

    fn get(&self, key: &Key) -> Result<Vec<u8>, StorageError> {
        let path = self.path_of(key);
        fs::read(&path).map_err(|e| not_found_or(e, key, "read", &path))
    }

    fn reader(&self, key: &Key) -> Result<Box<dyn Read + Send>, StorageError> {
        let path = self.path_of(key);
        let file = File::open(&path).map_err(|e| not_found_or(e, key, "open", &path))?;
        let metadata = file.metadata().map_err(io_error("inspect", &path))?;
        if !metadata.is_file() {
            return Err(StorageError::NotFound { key: key.clone() });
        }
        Ok(Box::new(file))
    }

    fn size(&self, key: &Key) -> Result<Option<u64>, StorageError> {
        let path = self.path_of(key);
        match fs::metadata(&path) {
            Ok(metadata) if metadata.is_file() => Ok(Some(metadata.len())),
            Ok(_) => Ok(None),
            Err(e) if is_absent(&e) => Ok(None),
            Err(e) => Err(io_error("inspect", &path)(e)),
        }
    }

    fn list(&self, prefix: Option<&Key>) -> Result<Vec<Key>, StorageError> {
        let mut objects = Vec::new();
        let mut pending = vec![(self.prefix_dir(prefix), prefix.cloned())];
        while let Some((dir, dir_key)) = pending.pop() {
            for entry in read_dir(&dir)?.into_iter().flatten() {
                let entry = entry.map_err(io_error("list", &dir))?;
                let Some(key) = Self::child_key(dir_key.as_ref(), &entry.file_name()) else {
                    continue;
                };
                let file_type = entry
                    .file_type()
                    .map_err(io_error("inspect", &entry.path()))?;
                if file_type.is_file() {
                    objects.push(key);
                } else if file_type.is_dir() {
                    pending.push((entry.path(), Some(key)));
                }
            }
        }
        objects.sort();
        Ok(objects)
    }

    fn list_children(&self, prefix: Option<&Key>) -> Result<Children, StorageError> {
        let dir = self.prefix_dir(prefix);
        let mut children = Children::default();
        for entry in read_dir(&dir)?.into_iter().flatten() {
            let entry = entry.map_err(io_error("list", &dir))?;
            let Some(key) = Self::child_key(prefix, &entry.file_name()) else {
                continue;
            };
            let file_type = entry
                .file_type()
                .map_err(io_error("inspect", &entry.path()))?;
            if file_type.is_file() {
                children.objects.push(key);
            } else if file_type.is_dir() {
                children.prefixes.push(key);
            }
        }
        children.objects.sort();
        children.prefixes.sort();
        Ok(children)
    }

    fn delete(&self, key: &Key) -> Result<bool, StorageError> {
        let path = self.path_of(key);
        match fs::remove_file(&path) {
            Ok(()) => Ok(true),
            Err(e) if is_absent(&e) => Ok(false),
            Err(e) => Err(io_error("delete", &path)(e)),
        }
    }
}

/// A streamed write into a temporary file, renamed into place on commit.
///
/// Streamed objects are the large ones (blobs past the spill threshold), so they are written
/// past the page cache on a second thread where the system allows it ([`DirectWriter`]).
struct LocalPending {
    storage: LocalStorage,
    temp: NamedTempFile,
    writer: DirectWriter,
}

impl LocalPending {
    /// Waits until every byte is in the temporary file, then hands the file over.
    fn finish(self) -> Result<(LocalStorage, NamedTempFile), StorageError> {
        let LocalPending {
            storage,
            temp,
            writer,
        } = self;
        writer.finish().map_err(io_error("write", temp.path()))?;
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
        if LocalStorage::occupied(&self.storage.path_of(key)) {
            return Ok(false);
        }
        let (storage, temp) = self.finish()?;
        storage.persist(temp, key, false)
    }
}

fn open_direct(path: &Path) -> Option<File> {
    use std::os::unix::fs::OpenOptionsExt;
    fs::OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_DIRECT)
        .open(path)
        .ok()
}

/// Reads a directory; one that does not exist (or is a file) has no entries, as an object
/// store's prefix with nothing under it.
fn read_dir(dir: &Path) -> Result<Option<fs::ReadDir>, StorageError> {
    match fs::read_dir(dir) {
        Ok(entries) => Ok(Some(entries)),
        Err(e) if is_absent(&e) => Ok(None),
        Err(e) => Err(io_error("list", dir)(e)),
    }
}

/// Creates `dir` and any missing parents.
fn create_dir(dir: &Path) -> Result<(), StorageError> {
    fs::create_dir_all(dir).map_err(io_error("create directory", dir))
}

/// The directory `path` is in; every object path has one, since it is below the root.
fn parent_dir(path: &Path) -> &Path {
    path.parent().unwrap_or(path)
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
