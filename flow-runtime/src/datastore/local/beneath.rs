//! Opening what lies below a directory, and nothing else.
//!
//! A local datastore is a directory that other people and programs can write to: a copied run,
//! a shared file system, a link planted by someone else. Keys cannot say `..`, but a directory or
//! file inside the datastore can be a symbolic link to anywhere (`/etc`, `/dev/zero`, another
//! user's files). So every file and directory below the root is opened relative to a descriptor
//! of the root and never through a symbolic link: with `openat2(RESOLVE_BENEATH |
//! RESOLVE_NO_SYMLINKS)` (Linux 5.6 and later) in one call, or where that is missing (older
//! kernels, seccomp filters that do not know it, other systems) one component at a time with
//! `O_NOFOLLOW`. The root's own path may go through links: users pass such paths, and only what is
//! beneath it is confined.
//!
//! System calls go through `rustix` (already in the dependency tree through `tempfile`), which
//! wraps each of them safely.

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;

use rustix::fs::{self as rfs, AtFlags, FileType, Mode, OFlags};
use rustix::io::Errno;

/// Flags of a directory opened to work in: readable (to list it), usable with `fsync`.
pub(super) const DIR_FLAGS: OFlags = OFlags::RDONLY
    .union(OFlags::DIRECTORY)
    .union(OFlags::CLOEXEC);

/// How paths below the root are resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Resolution {
    /// One `openat2` call per open, the kernel refusing links and escapes.
    Openat2,
    /// One `openat` per path component, each with `O_NOFOLLOW`.
    Walk,
}

/// A directory, opened once, below which paths are opened without following links.
#[derive(Debug)]
pub(super) struct Beneath {
    root: OwnedFd,
    resolution: Resolution,
}

impl Beneath {
    /// Opens the directory `root` (following links on its own path).
    ///
    /// # Errors
    ///
    /// If `root` cannot be opened as a directory.
    pub(super) fn root(root: &Path) -> io::Result<Self> {
        let root = rfs::open(root, DIR_FLAGS, Mode::empty())?;
        let resolution = probe(&root);
        Ok(Beneath { root, resolution })
    }

    /// This root, resolving paths one component at a time even where `openat2` works: the
    /// fallback's tests.
    #[cfg(test)]
    pub(super) fn walking(mut self) -> Self {
        self.resolution = Resolution::Walk;
        self
    }

    /// Opens `relative` (`/`-separated components, none of them `.` or `..`; `.` alone for the
    /// root itself) with `flags`, creating it with `mode` if `flags` say so.
    ///
    /// A symbolic link anywhere on the way, the last component included, is refused with
    /// [`link_refused`]; except that with `O_PATH | O_NOFOLLOW` a last component that is a link
    /// gives a descriptor of the link itself, as `openat` does, which the caller sees with
    /// `fstat`.
    ///
    /// # Errors
    ///
    /// The system's, with a link refused as above.
    pub(super) fn open(&self, relative: &str, flags: OFlags, mode: Mode) -> io::Result<OwnedFd> {
        let flags = flags | OFlags::CLOEXEC;
        let opened = match self.resolution {
            Resolution::Openat2 => openat2(&self.root, relative, flags, mode),
            Resolution::Walk => self.walk(relative, flags, mode),
        };
        opened.map_err(refusal)
    }

    /// Opens the directory `relative` to work in.
    ///
    /// # Errors
    ///
    /// As [`Beneath::open`]: `NotFound` when it does not exist.
    pub(super) fn open_dir(&self, relative: &str) -> io::Result<OwnedFd> {
        self.open(relative, DIR_FLAGS, Mode::empty())
    }

    /// Opens the directory `relative`, creating it and its missing parents first (`0o777` less
    /// the umask, as `mkdir -p`).
    ///
    /// # Errors
    ///
    /// As [`Beneath::open`]; a file where a directory should be is `NotADirectory`.
    pub(super) fn create_dir(&self, relative: &str) -> io::Result<OwnedFd> {
        match self.open_dir(relative) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => self.create_missing_dir(relative),
            opened => opened,
        }
    }

    /// [`Beneath::create_dir`] of a directory the caller just found missing: starts from the
    /// deepest ancestor that exists (usually the parent: a new task's directory in its step's),
    /// so that creating one directory costs an open, a `mkdir` and an open, not a walk from the
    /// root.
    ///
    /// # Errors
    ///
    /// As [`Beneath::create_dir`].
    pub(super) fn create_missing_dir(&self, relative: &str) -> io::Result<OwnedFd> {
        let mut existing = relative;
        let (mut dir, missing) = loop {
            match existing.rsplit_once('/') {
                None => break (self.open_dir(".")?, relative),
                Some((parent, _)) => match self.open_dir(parent) {
                    Ok(dir) => break (dir, &relative[parent.len() + 1..]),
                    Err(e) if e.kind() == io::ErrorKind::NotFound => existing = parent,
                    Err(e) => return Err(e),
                },
            }
        };
        for component in missing.split('/') {
            let next = match open_component(dir.as_fd(), component, DIR_FLAGS, Mode::empty()) {
                Err(Errno::NOENT) => {
                    match rfs::mkdirat(&dir, component, Mode::from_raw_mode(0o777)) {
                        // Created by someone else meanwhile: as good.
                        Ok(()) | Err(Errno::EXIST) => {}
                        Err(e) => return Err(refusal(e)),
                    }
                    open_component(dir.as_fd(), component, DIR_FLAGS, Mode::empty())
                }
                opened => opened,
            };
            dir = next.map_err(refusal)?;
        }
        Ok(dir)
    }

    fn walk(&self, relative: &str, flags: OFlags, mode: Mode) -> Result<OwnedFd, Errno> {
        let mut components = relative.split('/');
        let last = components.next_back().unwrap_or(".");
        let mut dir: Option<OwnedFd> = None;
        for component in components {
            let at = dir.as_ref().map_or(self.root.as_fd(), AsFd::as_fd);
            dir = Some(open_component(at, component, DIR_FLAGS, Mode::empty())?);
        }
        let at = dir.as_ref().map_or(self.root.as_fd(), AsFd::as_fd);
        open_component(at, last, flags, mode)
    }
}

/// Opens the single component `name` in `dir` without following a link.
fn open_component(
    dir: BorrowedFd<'_>,
    name: &str,
    flags: OFlags,
    mode: Mode,
) -> Result<OwnedFd, Errno> {
    match rfs::openat(dir, name, flags | OFlags::NOFOLLOW | OFlags::CLOEXEC, mode) {
        // `O_DIRECTORY | O_NOFOLLOW` on a link says "not a directory": say what it is.
        Err(Errno::NOTDIR) if flags.contains(OFlags::DIRECTORY) && is_link(dir, name) => {
            Err(Errno::LOOP)
        }
        opened => opened,
    }
}

/// Whether `name` in `dir` is a symbolic link.
pub(super) fn is_link(dir: BorrowedFd<'_>, name: &str) -> bool {
    rfs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW)
        .is_ok_and(|stat| FileType::from_raw_mode(stat.st_mode) == FileType::Symlink)
}

/// The error for a path that goes through a symbolic link (or would leave the root).
pub(super) fn link_refused() -> io::Error {
    io::Error::new(
        io::ErrorKind::PermissionDenied,
        "it is or goes through a symbolic link, and a datastore follows none below its root",
    )
}

/// An error of the system as an I/O error, links and escapes said as such.
fn refusal(errno: Errno) -> io::Error {
    match errno {
        // ELOOP: a link where none may be; EXDEV: a path that would leave the root.
        Errno::LOOP | Errno::XDEV => link_refused(),
        other => other.into(),
    }
}

#[cfg(any(target_os = "linux", target_os = "android"))]
fn openat2(root: &OwnedFd, relative: &str, flags: OFlags, mode: Mode) -> Result<OwnedFd, Errno> {
    use rustix::fs::ResolveFlags;
    let resolve = ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS;
    loop {
        match rfs::openat2(root, relative, flags, mode, resolve) {
            // Only a concurrent rename or mount can make the kernel unsure: try again.
            Err(Errno::AGAIN) => {}
            opened => return opened,
        }
    }
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn openat2(
    _root: &OwnedFd,
    _relative: &str,
    _flags: OFlags,
    _mode: Mode,
) -> Result<OwnedFd, Errno> {
    Err(Errno::NOSYS)
}

/// Whether `openat2` with the flags this module needs works here: a kernel older than 5.6 says
/// `ENOSYS`, a seccomp filter that does not know the call `ENOSYS` or `EPERM`.
fn probe(root: &OwnedFd) -> Resolution {
    match openat2(root, ".", DIR_FLAGS, Mode::empty()) {
        Ok(_) => Resolution::Openat2,
        Err(_) => Resolution::Walk,
    }
}
