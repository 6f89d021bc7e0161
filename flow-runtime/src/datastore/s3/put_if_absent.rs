//! Writing an object only if it is not there: a `HEAD` first, so that the common case (a blob
//! already stored, a name already claimed) sends no data; then a plain `PUT` for a blob, whose
//! content its name determines, or a conditional create (`PutMode::Create`) for any other key,
//! where the server is trusted with one (see [`probe`](super::probe)).

use ::object_store::{Error as ObjectError, PutMode, PutOptions, PutPayload};

use super::store::Store;
use crate::datastore::blob_hash::is_blob_key;
use crate::datastore::keys::Key;
use crate::datastore::storage::StorageError;

impl Store {
    /// `put_if_absent` of content already in memory; returns whether it wrote.
    pub(super) fn put_payload_if_absent(
        &self,
        key: &Key,
        payload: PutPayload,
    ) -> Result<bool, StorageError> {
        if self.head(key)?.is_some() {
            return Ok(false);
        }
        if is_blob_key(key) || !self.conditional_writes_honoured()? {
            self.put_payload(key, payload)?;
            return Ok(true);
        }
        let path = self.path_of(key);
        let options = PutOptions::from(PutMode::Create);
        match self.block_on(self.store.put_opts(&path, payload, options)) {
            Ok(_) => Ok(true),
            Err(ObjectError::AlreadyExists { .. }) => Ok(false),
            Err(e) => Err(self.fail("write", key, e)),
        }
    }
}
