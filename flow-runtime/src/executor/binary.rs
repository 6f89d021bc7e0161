//! The flow binary a run's tasks run, fixed when the run starts.
//!
//! Process and Slurm modes start every task by running the flow binary again. A `cargo build`
//! during a long run replaces that file, and tasks started after it would run other code than
//! the tasks before them: a silent mix of two versions in one run.
//!
//! - Process mode launches a private copy instead, made when the run starts in a directory only
//!   its user can enter (a hard link where the file system allows: no bytes are copied, and a
//!   build replaces the file by a new one rather than writing into it, which the kernel refuses
//!   for a binary being run anyway).
//! - Slurm's nodes may not see this machine's temporary directory, so there the coordinator
//!   hashes the binary it runs (BLAKE3) and passes the hash to every job, whose `step` checks its
//!   own binary against it before running the task ([`verify_running_binary`]).

use std::io;
use std::path::{Path, PathBuf};

/// The binary this process runs: `/proc/self/exe` where there is one, which is the file as it
/// was started even if it was replaced or removed since, else the path it was started from.
fn running_binary() -> io::Result<PathBuf> {
    let proc_exe = Path::new("/proc/self/exe");
    if proc_exe.exists() {
        Ok(proc_exe.to_path_buf())
    } else {
        std::env::current_exe()
    }
}

/// A copy of the running flow binary that lives as long as the run.
#[derive(Debug)]
pub(crate) struct PrivateCopy {
    /// Removed (with the copy) when dropped.
    _dir: tempfile::TempDir,
    path: PathBuf,
}

impl PrivateCopy {
    /// Copies the running binary, started from `exe`, into a new directory (mode 0700) in the
    /// system's temporary directory: a hard link to `exe` when `exe` still is the running binary
    /// and both are on one file system, else a copy of the running binary's bytes.
    pub(crate) fn of(exe: &Path) -> io::Result<Self> {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::Builder::new()
            .prefix("blooming-run-")
            .permissions(std::fs::Permissions::from_mode(0o700))
            .tempdir()?;
        let name = exe.file_name().unwrap_or(std::ffi::OsStr::new("flow"));
        let path = dir.path().join(name);
        let running = running_binary()?;
        if std::fs::hard_link(exe, &path).is_ok() {
            if same_file(&path, &running)? {
                return Ok(PrivateCopy { _dir: dir, path });
            }
            // `exe` was replaced between this process's start and now.
            std::fs::remove_file(&path)?;
        }
        std::fs::copy(&running, &path)?;
        Ok(PrivateCopy { _dir: dir, path })
    }

    /// Where the copy is.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }
}

fn same_file(a: &Path, b: &Path) -> io::Result<bool> {
    use std::os::unix::fs::MetadataExt as _;
    let (a, b) = (std::fs::metadata(a)?, std::fs::metadata(b)?);
    Ok(a.dev() == b.dev() && a.ino() == b.ino())
}

/// The BLAKE3 hash (64 hex digits) of the binary this process runs, from the hash cache when
/// it holds one for this very file (see [`hash_with_cache`]).
pub(crate) fn hash_of_running_binary() -> io::Result<String> {
    hash_with_cache(&running_binary()?, hash_cache_dir().as_deref())
}

/// Where hashes of flow binaries are remembered: `$XDG_CACHE_HOME/blooming-flowers/binaries`,
/// else `~/.cache/blooming-flowers/binaries`; `None` without either variable.
fn hash_cache_dir() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .filter(|dir| Path::new(dir).is_absolute())
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME")
                .filter(|home| Path::new(home).is_absolute())
                .map(|home| Path::new(&home).join(".cache"))
        })?;
    Some(base.join("blooming-flowers").join("binaries"))
}

/// The BLAKE3 hash of the file `path`, remembered in `cache` under the file's identity.
///
/// Every run records its binary's hash, and hashing a binary costs about a millisecond per 7 MB
/// (10 ms for a 43 MB release build with debug info): more than the rest of a small run. The
/// file's identity is what `stat` says of it: device, inode, size, and modification and change
/// times to the nanosecond. A build that writes a new binary makes a new file or changes its
/// times, and the change time cannot be set back by anyone but the kernel, so a cached hash is
/// never the hash of other contents (`cargo` itself trusts times to tell a changed file). A
/// cache entry that cannot be read, or is not a hash, is ignored; one that cannot be written
/// only costs the next run the hashing again.
fn hash_with_cache(path: &Path, cache: Option<&Path>) -> io::Result<String> {
    use std::os::unix::fs::MetadataExt as _;
    let file = std::fs::File::open(path)?;
    let meta = file.metadata()?;
    let identity = format!(
        "{:x}-{:x}-{:x}-{}.{:09}-{}.{:09}",
        meta.dev(),
        meta.ino(),
        meta.size(),
        meta.mtime(),
        meta.mtime_nsec(),
        meta.ctime(),
        meta.ctime_nsec()
    );
    let entry = cache.map(|dir| dir.join(&identity));
    if let Some(entry) = &entry
        && let Ok(cached) = std::fs::read_to_string(entry)
        && cached.len() == 64
        && cached.bytes().all(|b| b.is_ascii_hexdigit())
    {
        return Ok(cached);
    }
    let mut hasher = blake3::Hasher::new();
    hasher.update_reader(file)?;
    let hash = hasher.finalize().to_hex().to_string();
    if let (Some(dir), Some(entry)) = (cache, &entry) {
        let remembered = std::fs::create_dir_all(dir).and_then(|()| {
            let mut temp = tempfile::NamedTempFile::new_in(dir)?;
            io::Write::write_all(&mut temp, hash.as_bytes())?;
            temp.persist(entry).map_err(|e| e.error)?;
            Ok(())
        });
        if let Err(e) = remembered {
            tracing::debug!("could not remember the hash of {}: {e}", path.display());
        }
    }
    Ok(hash)
}

/// The BLAKE3 hash of the binary this process runs, computed at the first call only (the file a
/// process runs does not change under it: see [`running_binary`]); `None` if it cannot be read.
///
/// Hashing reads at about 2 GB/s (BLAKE3's SIMD code is compiled optimized even in debug
/// builds): measured 30 ms for the 70 MB debug build of `examples/squares`, 0.24 s for a 290 MB
/// test binary read cold; a release binary of a few MB takes milliseconds.
pub(crate) fn running_binary_hash() -> Option<&'static str> {
    static HASH: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    HASH.get_or_init(|| hash_of_running_binary().ok())
        .as_deref()
}

/// Why this process may not run a task of a run: it does not run the binary the run started
/// with, or cannot tell.
#[derive(Debug, thiserror::Error)]
pub enum BinaryCheckError {
    /// The running binary cannot be read to hash it.
    #[error("cannot read the flow binary {path} to check it: {source}")]
    Unreadable {
        /// The binary's path, as shown to the user.
        path: String,
        /// What reading it failed with.
        source: io::Error,
    },
    /// The running binary is another one than the run started with.
    #[error(
        "the flow binary changed since the run started: {path} has BLAKE3 hash {actual}, the \
         run started with {expected}; resume the run to go on with the new binary"
    )]
    Changed {
        /// The binary's path, as shown to the user.
        path: String,
        /// Its BLAKE3 hash.
        actual: String,
        /// The hash the run started with.
        expected: String,
    },
}

/// Checks that this process runs the binary a run started with (its hash `expected`); the
/// error says what to do otherwise.
///
/// # Errors
///
/// [`BinaryCheckError`] when the hashes differ or the binary cannot be read.
pub fn verify_running_binary(expected: &str) -> Result<(), BinaryCheckError> {
    let path = std::env::current_exe()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|_| "this program".into());
    let actual = match hash_of_running_binary() {
        Ok(actual) => actual,
        Err(source) => return Err(BinaryCheckError::Unreadable { path, source }),
    };
    if actual.eq_ignore_ascii_case(expected) {
        Ok(())
    } else {
        Err(BinaryCheckError::Changed {
            path,
            actual,
            expected: expected.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_private_copy_is_the_running_binary_in_a_private_directory() {
        use std::os::unix::fs::PermissionsExt as _;
        let exe = std::env::current_exe().expect("own path");
        let copy = PrivateCopy::of(&exe).expect("a copy");
        let dir = copy.path().parent().expect("a directory").to_path_buf();
        let mode = std::fs::metadata(&dir).expect("dir").permissions().mode();
        assert_eq!(mode & 0o777, 0o700);
        assert!(same_file(copy.path(), &running_binary().expect("running")).expect("stat"));
        drop(copy);
        assert!(!dir.exists(), "the copy is removed with the run");
    }

    #[test]
    fn a_copy_made_after_the_binary_was_replaced_is_the_running_one() {
        let dir = tempfile::tempdir().expect("dir");
        let other = dir.path().join("flow");
        std::fs::write(&other, b"#!/bin/sh\nexit 3\n").expect("write");
        let copy = PrivateCopy::of(&other).expect("a copy");
        let running = std::fs::read(running_binary().expect("running")).expect("read");
        assert_eq!(std::fs::read(copy.path()).expect("read"), running);
    }

    #[test]
    fn a_remembered_hash_is_used_for_the_same_file_only() {
        let dir = tempfile::tempdir().expect("dir");
        let cache = dir.path().join("cache");
        let binary = dir.path().join("flow");
        std::fs::write(&binary, b"first build").expect("write");
        let first = hash_with_cache(&binary, Some(&cache)).expect("hash");
        assert_eq!(first, blake3::hash(b"first build").to_hex().to_string());
        let entries: Vec<_> = std::fs::read_dir(&cache).expect("cache").collect();
        assert_eq!(entries.len(), 1, "remembered");

        // The entry is what the next call uses: a planted value under the file's identity is
        // returned as is.
        let entry = entries[0].as_ref().expect("entry").path();
        std::fs::write(&entry, "a".repeat(64)).expect("plant");
        assert_eq!(
            hash_with_cache(&binary, Some(&cache)).expect("hash"),
            "a".repeat(64)
        );

        // Written again (a new build in place): its times change, so it is hashed again.
        std::thread::sleep(std::time::Duration::from_millis(5));
        std::fs::write(&binary, b"second build").expect("write");
        assert_eq!(
            hash_with_cache(&binary, Some(&cache)).expect("hash"),
            blake3::hash(b"second build").to_hex().to_string()
        );

        // A damaged entry is ignored; no cache at all works too.
        for entry in std::fs::read_dir(&cache).expect("cache") {
            std::fs::write(entry.expect("entry").path(), "not a hash").expect("damage");
        }
        let expected = blake3::hash(b"second build").to_hex().to_string();
        assert_eq!(
            hash_with_cache(&binary, Some(&cache)).expect("hash"),
            expected
        );
        assert_eq!(hash_with_cache(&binary, None).expect("hash"), expected);
    }

    #[test]
    fn the_running_binary_verifies_against_its_own_hash_only() {
        let hash = hash_of_running_binary().expect("hash");
        assert_eq!(hash.len(), 64);
        verify_running_binary(&hash).expect("the same binary");
        let other = "0".repeat(64);
        let error = verify_running_binary(&other)
            .expect_err("another hash")
            .to_string();
        assert!(
            error.starts_with("the flow binary changed since the run started: "),
            "{error}"
        );
        assert!(error.contains(&hash) && error.contains(&other), "{error}");
    }
}
