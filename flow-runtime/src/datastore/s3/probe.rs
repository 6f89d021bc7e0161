//! Whether the server honours conditional writes, found out once per storage by trying them on
//! a probe object: `PutMode::Create` (`If-None-Match: *`), which claims of unique names rely
//! on, and `PutMode::Update` (`If-Match: <ETag>`), which updates rely on. Some servers ignore
//! them (Garage ignores `If-None-Match`; s3s-fs checks it non-atomically), and a server that
//! ignores one would let two writers both win silently, so neither is trusted unprobed.

use std::sync::{Arc, OnceLock};

use ::object_store::{
    Error as ObjectError, ObjectStoreExt, PutMode, PutOptions, PutPayload, UpdateVersion,
};

use super::store::Store;
use crate::datastore::storage::StorageError;

impl Store {
    /// Whether the server honours conditional creation; probed once, by the first caller
    /// (which writes and deletes a probe object under `.tmp/`).
    pub(super) fn conditional_writes_honoured(&self) -> Result<bool, StorageError> {
        self.probed_once(
            &self.create_honoured,
            || self.probe_conditional_writes(),
            "conditional writes: unique names are claimed with a lookup then a write, which two writers racing for the same name can both win",
        )
    }

    /// Creates a probe object, then creates it again: an honest server refuses the second.
    fn probe_conditional_writes(&self) -> Result<bool, StorageError> {
        let path = self.staging_path("probe");
        let store = Arc::clone(&self.store);
        let create = || PutOptions::from(PutMode::Create);
        let result = self.block_on(async {
            match store
                .put_opts(&path, PutPayload::from_static(b"1"), create())
                .await
            {
                Ok(_) => {}
                // The server, or the client's configuration (`AWS_CONDITIONAL_PUT=disabled`),
                // has no conditional writes at all.
                Err(ObjectError::NotImplemented { .. } | ObjectError::NotSupported { .. }) => {
                    return Ok(false);
                }
                Err(e) => return Err(e),
            }
            let second = store
                .put_opts(&path, PutPayload::from_static(b"2"), create())
                .await;
            // The probe object is removed whatever the answer; failing to is only litter under
            // `.tmp/`, which listings never show.
            let _ = store.delete(&path).await;
            match second {
                Err(ObjectError::AlreadyExists { .. }) => Ok(true),
                Ok(_)
                | Err(ObjectError::NotImplemented { .. } | ObjectError::NotSupported { .. }) => {
                    Ok(false)
                }
                Err(e) => Err(e),
            }
        });
        result.map_err(|e| StorageError::Io {
            action: "probe conditional writes in",
            location: self.url_of_path(&path),
            source: self.names.io_error(e),
        })
    }

    /// Whether the server honours conditional updates (and conditional creation, which an
    /// update of an object not there yet uses); probed once, by the first caller (which writes
    /// and deletes a probe object under `.tmp/`).
    pub(super) fn conditional_updates_honoured(&self) -> Result<bool, StorageError> {
        self.probed_once(
            &self.update_honoured,
            || Ok(self.conditional_writes_honoured()? && self.probe_conditional_updates()?),
            "conditional updates (If-Match): run records and latest pointers are updated with a read then a write, which two writers at the same moment can undo each other's change with",
        )
    }

    /// Writes a probe object, updates it with the version it got (which must succeed), then
    /// again with that same version, now stale (which must be refused).
    fn probe_conditional_updates(&self) -> Result<bool, StorageError> {
        let path = self.staging_path("probe");
        let store = Arc::clone(&self.store);
        let update = |version: &UpdateVersion| PutOptions::from(PutMode::Update(version.clone()));
        let result = self.block_on(async {
            let first = UpdateVersion::from(store.put(&path, PutPayload::from_static(b"1")).await?);
            let answer =
                async {
                    if first.e_tag.is_none() && first.version.is_none() {
                        return Ok(false);
                    }
                    match store
                        .put_opts(&path, PutPayload::from_static(b"2"), update(&first))
                        .await
                    {
                        Ok(_) => {}
                        // No conditional updates at all, or a current version refused: either way
                        // not something to build on.
                        Err(
                            ObjectError::NotImplemented { .. }
                            | ObjectError::NotSupported { .. }
                            | ObjectError::Precondition { .. },
                        ) => return Ok(false),
                        Err(e) => return Err(e),
                    }
                    match store
                        .put_opts(&path, PutPayload::from_static(b"3"), update(&first))
                        .await
                    {
                        Err(ObjectError::Precondition { .. }) => Ok(true),
                        Ok(_)
                        | Err(
                            ObjectError::NotImplemented { .. } | ObjectError::NotSupported { .. },
                        ) => Ok(false),
                        Err(e) => Err(e),
                    }
                }
                .await;
            // As for the other probe: failing to remove it only leaves litter under `.tmp/`.
            let _ = store.delete(&path).await;
            answer
        });
        result.map_err(|e| StorageError::Io {
            action: "probe conditional updates in",
            location: self.url_of_path(&path),
            source: self.names.io_error(e),
        })
    }

    /// The answer in `cell`, or, the first time, what `probe` finds, with a warning naming what
    /// the server does not honour (`what`) when it does not. A probe that fails is tried again by
    /// the next caller.
    fn probed_once(
        &self,
        cell: &OnceLock<bool>,
        probe: impl FnOnce() -> Result<bool, StorageError>,
        what: &str,
    ) -> Result<bool, StorageError> {
        if let Some(&honoured) = cell.get() {
            return Ok(honoured);
        }
        let honoured = probe()?;
        if !honoured {
            tracing::warn!("{} does not honour {what}", self.names.endpoint);
        }
        Ok(*cell.get_or_init(|| honoured))
    }
}
