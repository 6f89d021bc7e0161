//! The names under the datastore's prefix that are not objects of it (staging objects, foreign
//! names), reached around [`Storage`]: what the conformance suite plants and looks at.

use ::object_store::path::Path as ObjectPath;
use ::object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use bytes::Bytes;
use futures_util::TryStreamExt;

use super::ObjectStorage;
use crate::datastore::conformance::Backend;
use crate::datastore::storage::Storage;

impl Backend for ObjectStorage {
    fn storage(&self) -> &dyn Storage {
        self
    }

    fn plant(&self, name: &str, bytes: &[u8]) {
        let mut path = self.store.root.clone();
        path.extend(name.split('/'));
        let payload = PutPayload::from(Bytes::copy_from_slice(bytes));
        if let Err(e) = self.store.block_on(self.store.store.put(&path, payload)) {
            panic!("could not plant {name} in {}: {e}", self.name());
        }
    }

    fn raw_names(&self) -> Vec<String> {
        let root = &self.store.root;
        let prefix = (!root.as_ref().is_empty()).then(|| root.clone());
        let listed: Result<Vec<_>, _> = self
            .store
            .block_on(self.store.store.list(prefix.as_ref()).try_collect());
        let listed = listed.unwrap_or_else(|e| panic!("could not list {}: {e}", self.name()));
        let mut names: Vec<String> = listed
            .iter()
            .filter_map(|meta| relative_name(root, &meta.location))
            .collect();
        names.sort();
        names
    }
}

/// The name of `path` relative to `root`, `/`-separated.
fn relative_name(root: &ObjectPath, path: &ObjectPath) -> Option<String> {
    let parts: Vec<String> = path
        .prefix_match(root)?
        .map(|part| part.as_ref().to_owned())
        .collect();
    Some(parts.join("/"))
}
