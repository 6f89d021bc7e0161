//! The object store under the datastore's prefix, as every part of the backend uses it: keys
//! and object paths, the runtime requests block on, the names messages use, and the plain
//! requests (`HEAD`, `PUT`).

use std::future::Future;
use std::sync::{Arc, OnceLock};
use std::time::SystemTime;

use ::object_store::path::Path as ObjectPath;
use ::object_store::{Error as ObjectError, ObjectStore, ObjectStoreExt, PutPayload};

use super::blocking::BlockingRuntime;
use super::errors::Names;
use crate::datastore::keys::Key;
use crate::datastore::storage::{ObjectStat, StorageError};

/// What every clone of an `ObjectStorage`, and every reader and writer
/// it hands out, shares.
pub(super) struct Store {
    pub(super) store: Arc<dyn ObjectStore>,
    /// The datastore's prefix as an object path; empty for the whole bucket.
    pub(super) root: ObjectPath,
    pub(super) names: Names,
    pub(super) runtime: BlockingRuntime,
    /// Whether the server honours `PutMode::Create`, once probed.
    pub(super) create_honoured: OnceLock<bool>,
    /// Whether the server honours `PutMode::Update` (`If-Match`), once probed.
    pub(super) update_honoured: OnceLock<bool>,
}

impl Store {
    /// Runs `future` on the runtime, blocking the calling thread until it ends.
    pub(super) fn block_on<F>(&self, future: F) -> F::Output
    where
        F: Future + Send,
        F::Output: Send,
    {
        self.runtime.block_on(future)
    }

    /// The path in the object store of the object `key`.
    pub(super) fn path_of(&self, key: &Key) -> ObjectPath {
        let mut path = self.root.clone();
        path.extend(key.segments());
        path
    }

    /// The key of the object at `path`, if it is an object of the datastore.
    pub(super) fn key_of(&self, path: &ObjectPath) -> Option<Key> {
        let parts: Vec<_> = path.prefix_match(&self.root)?.collect();
        let relative = parts
            .iter()
            .map(|part| part.as_ref())
            .collect::<Vec<&str>>()
            .join("/");
        Key::parse(&relative).ok()
    }

    /// The URL of the object `key`, for messages.
    pub(super) fn url_of(&self, key: &Key) -> String {
        self.names.url_of(key)
    }

    /// The URL of the object at `path` (a staging or probe object), for messages.
    pub(super) fn url_of_path(&self, path: &ObjectPath) -> String {
        match path.prefix_match(&self.root) {
            Some(parts) => {
                let rest: Vec<String> = parts.map(|p| p.as_ref().to_owned()).collect();
                format!("{}/{}", self.names.name, rest.join("/"))
            }
            None => format!("{} (object {path})", self.names.name),
        }
    }

    /// The failure of `action` on the object `key` (see [`Names::fail`]).
    pub(super) fn fail(&self, action: &'static str, key: &Key, error: ObjectError) -> StorageError {
        self.names.fail(action, key, error)
    }

    /// The size of the object `key`, or `None` if there is none: one `HEAD`.
    pub(super) fn head(&self, key: &Key) -> Result<Option<u64>, StorageError> {
        Ok(self.head_stat(key)?.map(|stat| stat.size))
    }

    /// The size and last-modified time of the object `key`, or `None` if there is none: one
    /// `HEAD`.
    pub(super) fn head_stat(&self, key: &Key) -> Result<Option<ObjectStat>, StorageError> {
        let path = self.path_of(key);
        match self.block_on(self.store.head(&path)) {
            Ok(meta) => Ok(Some(ObjectStat {
                size: meta.size,
                modified: SystemTime::from(meta.last_modified),
            })),
            Err(ObjectError::NotFound { .. }) => Ok(None),
            Err(e) => Err(self.fail("look up", key, e)),
        }
    }

    /// Writes `payload` as the object `key`, replacing any: one `PUT`.
    pub(super) fn put_payload(&self, key: &Key, payload: PutPayload) -> Result<(), StorageError> {
        let path = self.path_of(key);
        self.block_on(self.store.put(&path, payload))
            .map(drop)
            .map_err(|e| self.fail("write", key, e))
    }
}
