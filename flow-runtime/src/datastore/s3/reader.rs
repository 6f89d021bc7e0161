//! Streamed reads ([`Storage::reader`](crate::datastore::storage::Storage::reader)): the body of one
//! `GET`, chunk by chunk as the reader asks for it, holding one chunk.

use std::io::{self, Read};
use std::sync::Arc;

use ::object_store::Error as ObjectError;
use bytes::{Buf, Bytes};
use futures_util::StreamExt;
use futures_util::stream::BoxStream;

use super::store::Store;
use crate::datastore::keys::Key;

/// The body of a `GET`, read chunk by chunk as the reader asks for it.
pub(super) struct ObjectReader {
    store: Arc<Store>,
    key: Key,
    stream: BoxStream<'static, Result<Bytes, ObjectError>>,
    /// What is left of the last chunk received.
    chunk: Bytes,
}

impl ObjectReader {
    /// A reader of `stream`, the body of the object `key`.
    pub(super) fn new(
        store: Arc<Store>,
        key: Key,
        stream: BoxStream<'static, Result<Bytes, ObjectError>>,
    ) -> Self {
        ObjectReader {
            store,
            key,
            stream,
            chunk: Bytes::new(),
        }
    }
}

impl Read for ObjectReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        while self.chunk.is_empty() {
            match self.store.block_on(self.stream.next()) {
                None => return Ok(0),
                Some(Ok(chunk)) => self.chunk = chunk,
                Some(Err(e)) => {
                    let e = self.store.names.io_error(e);
                    return Err(io::Error::new(
                        e.kind(),
                        format!("reading {}: {e}", self.store.url_of(&self.key)),
                    ));
                }
            }
        }
        let n = buf.len().min(self.chunk.len());
        buf[..n].copy_from_slice(&self.chunk[..n]);
        self.chunk.advance(n);
        Ok(n)
    }
}
