//! Object store errors as [`StorageError`]s: a missing object as such, every other failure with
//! the object's URL and the server's message, and the failures that hide their kind in a message
//! (listings) sniffed for it.

use std::io;

use ::object_store::Error as ObjectError;

use crate::datastore::keys::Key;
use crate::datastore::storage::StorageError;

/// What messages name: the datastore, the endpoint that answers for it and its bucket.
#[derive(Debug)]
pub(super) struct Names {
    /// `s3://bucket/prefix` (or the store's own name and the prefix).
    pub(super) name: String,
    /// The endpoint URL (or the store's name).
    pub(super) endpoint: String,
    /// The bucket, for stores that have buckets.
    pub(super) bucket: Option<String>,
}

impl Names {
    /// "bucket `name`", or "the store" for a store without buckets.
    pub(super) fn bucket_name(&self) -> String {
        match &self.bucket {
            Some(bucket) => format!("bucket `{bucket}`"),
            None => "the store".to_owned(),
        }
    }

    /// The URL of the object `key`, for messages.
    pub(super) fn url_of(&self, key: &Key) -> String {
        format!("{}/{key}", self.name)
    }

    /// The failure of `action` on the object `key`: [`StorageError::NotFound`] for a missing
    /// object, else the server's message with the object's URL.
    pub(super) fn fail(&self, action: &'static str, key: &Key, error: ObjectError) -> StorageError {
        match error {
            ObjectError::NotFound { .. } => StorageError::NotFound { key: key.clone() },
            other => StorageError::Io {
                action,
                location: self.url_of(key),
                source: self.io_error(other),
            },
        }
    }

    /// An object store error as an I/O error of the matching kind. Its message is the
    /// client's, which includes the request, the HTTP status and the server's own message;
    /// refused credentials get a word on where to look first.
    pub(super) fn io_error(&self, error: ObjectError) -> io::Error {
        match error_kind(&error) {
            io::ErrorKind::PermissionDenied => io::Error::new(
                io::ErrorKind::PermissionDenied,
                format!(
                    "{} refused access to {} (check AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and the bucket's permissions): {error}",
                    self.endpoint,
                    self.bucket_name()
                ),
            ),
            kind => io::Error::new(kind, error),
        }
    }
}

/// The kind of failure an object store error is. Most requests map the HTTP status to a variant
/// (`NotFound`, `PermissionDenied`, …), but listings wrap every failure as `Generic`, with the
/// status and the server's error code only in the message: those are read from there.
pub(super) fn error_kind(error: &ObjectError) -> io::ErrorKind {
    match error {
        ObjectError::NotFound { .. } => io::ErrorKind::NotFound,
        ObjectError::PermissionDenied { .. } | ObjectError::Unauthenticated { .. } => {
            io::ErrorKind::PermissionDenied
        }
        ObjectError::AlreadyExists { .. } => io::ErrorKind::AlreadyExists,
        other => {
            let message = other.to_string();
            let has = |needles: &[&str]| needles.iter().any(|n| message.contains(n));
            if has(&["<Code>NoSuchBucket</Code>", "status code: 404"]) {
                io::ErrorKind::NotFound
            } else if has(&[
                "status code: 401",
                "status code: 403",
                "<Code>AccessDenied</Code>",
                "<Code>InvalidAccessKeyId</Code>",
                "<Code>SignatureDoesNotMatch</Code>",
            ]) {
                io::ErrorKind::PermissionDenied
            } else {
                io::ErrorKind::Other
            }
        }
    }
}
