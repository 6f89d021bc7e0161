//! System errors of the local backend as [`StorageError`]s: which ones mean "no object", and
//! the path every other one names.

use std::io;
use std::path::Path;

use crate::datastore::keys::Key;
use crate::datastore::storage::StorageError;

/// Whether an I/O error means "no object there": nothing at the path, a file where a directory of
/// the path should be, or a directory where the object should be.
pub(super) fn is_absent(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::NotFound | io::ErrorKind::NotADirectory | io::ErrorKind::IsADirectory
    )
}

/// [`StorageError::NotFound`] for an error that means no object (see [`is_absent`]), else the
/// failure of `action` at `path`.
pub(super) fn not_found_or(
    error: io::Error,
    key: &Key,
    action: &'static str,
    path: &Path,
) -> StorageError {
    if is_absent(&error) {
        StorageError::NotFound { key: key.clone() }
    } else {
        io_error(action, path)(error)
    }
}

/// The failure of `action` at `path`, as a function of the I/O error (for `map_err`).
pub(super) fn io_error(
    action: &'static str,
    path: &Path,
) -> impl FnOnce(io::Error) -> StorageError + use<> {
    let location = path.display().to_string();
    move |source| StorageError::Io {
        action,
        location,
        source,
    }
}
