//! Streamed writes ([`Storage::start_put`](crate::datastore::storage::Storage::start_put)): a temporary
//! file filled past the page cache on a second thread ([`DirectWriter`]), renamed into place on
//! commit.

use std::io::{self, Write};
use std::sync::Arc;

use super::direct_write::DirectWriter;
use super::errors::io_error;
use super::root::Root;
use super::temp_file::Temp;
use crate::datastore::keys::Key;
use crate::datastore::storage::{PendingObject, StorageError};

/// A streamed write into a temporary file, renamed into place on commit.
///
/// Streamed objects are the large ones (blobs past the spill threshold), so they are written
/// past the page cache on a second thread where the system allows it ([`DirectWriter`]).
pub(super) struct LocalPending {
    root: Arc<Root>,
    sync: bool,
    temp: Temp,
    writer: DirectWriter,
}

impl LocalPending {
    /// A streamed write into `temp`, through `writer` (which writes `temp`'s file).
    pub(super) fn new(root: Arc<Root>, sync: bool, temp: Temp, writer: DirectWriter) -> Self {
        LocalPending {
            root,
            sync,
            temp,
            writer,
        }
    }

    /// Waits until every byte is in the temporary file, checked, then hands the file over.
    fn finish(self) -> Result<(Arc<Root>, bool, Temp), StorageError> {
        let LocalPending {
            root,
            sync,
            temp,
            writer,
        } = self;
        writer
            .finish()
            .map_err(|e| io_error("write", &temp.path(&root))(e))?;
        Ok((root, sync, temp))
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
        let (root, sync, temp) = self.finish()?;
        temp.commit(&root, key, true, sync).map(drop)
    }

    fn commit_if_absent(self: Box<Self>, key: &Key) -> Result<bool, StorageError> {
        // The temporary file exists whatever the answer; looking first only spares finishing
        // and flushing it to disk for nothing before it is removed.
        if let Some(dir) = self.root.object_dir(key)?
            && self.root.occupied(&dir, key)?
        {
            return Ok(false);
        }
        let (root, sync, temp) = self.finish()?;
        temp.commit(&root, key, false, sync)
    }
}
