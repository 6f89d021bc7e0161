//! A flow's state as a set of artifacts: one MessagePack value per top-level field.
//!
//! The flow struct only derives serde's traits, so the runtime cannot name its fields directly.
//! Instead [`split_state`] runs the struct's own `Serialize` impl against a serializer of ours that
//! stops at the top level and hands every field to a [`FieldSink`] (which may encode it into memory,
//! as [`encode_state`] does, or stream it into the datastore). [`decode_state`] goes the other way:
//! it presents the stored `(name, bytes)` pairs to the struct's `Deserialize` impl as if they were one
//! map, so `#[serde(default)]`, renames, `flatten` and unknown-field handling behave exactly as the user
//! declared them.
//!
//! Every field is encoded with [`encode_field`] and decoded with [`decode_field`]: MessagePack with
//! structs written as maps keyed by field name, so a struct nested in an artifact can also gain a
//! `#[serde(default)]` field without making old runs unreadable.

mod assemble;
pub mod bounded;
pub mod canonical;
pub(crate) mod decoder;
mod field_at;
pub(crate) mod msgpack;
mod split;

use std::io::Write;

use serde::Serialize;
use serde::de::DeserializeOwned;

pub use assemble::{DecodeError, decode_state};
pub(crate) use assemble::{FieldValue, decode_fields};
pub(crate) use field_at::field_at;
pub use split::{FieldSink, SplitError, split_state};

/// The name recorded in a task's index for the encoding [`encode_field`] produces.
///
/// Stored next to every artifact so that a later version can change the encoding and still tell
/// old artifacts apart.
pub const FIELD_ENCODING: &str = "msgpack";

/// Encodes one artifact value into `writer`: MessagePack, structs as maps with field names.
///
/// This is the single place that chooses the encoding's configuration; everything that writes an
/// artifact goes through it so that all artifacts can be read back by [`decode_field`]. The bytes
/// are those of `rmp_serde::encode::write_named` (artifacts are content-addressed, so an
/// unchanged value must keep its encoding), produced by a faster serializer of ours, with one
/// difference: the entries of a `HashMap` or `HashSet` are written sorted by their encoded bytes,
/// so that equal collections encode alike whatever their hasher (see `msgpack::is_unordered_type`
/// for which types). The value is streamed into the writer in chunks of at most 64 KiB, never
/// buffered whole (except for a sequence or map whose length serde does not know up front, which
/// rmp-serde buffers too, and a hash collection, held until its entries are sorted).
///
/// # Errors
///
/// Fails if the value's `Serialize` impl fails, if it nests deeper than [`bounded::MAX_DEPTH`]
/// (it could not be decoded again), or the writer returns an I/O error (reported as
/// `Error::InvalidValueWrite(ValueWriteError::InvalidDataWrite(_))`).
pub fn encode_field<W, T>(writer: &mut W, value: &T) -> Result<(), rmp_serde::encode::Error>
where
    W: Write + ?Sized,
    T: Serialize + ?Sized,
{
    msgpack::write_named(writer, value)
}

/// Decodes one artifact value written by [`encode_field`], or any MessagePack value read from
/// storage (a foreach's elements).
///
/// Used to load a single artifact by name without rebuilding the whole state. The bytes are
/// [checked](bounded::check) first, so that damaged or crafted bytes are an error, never a stack
/// overflow or an allocation larger than they are.
///
/// # Errors
///
/// Fails if `bytes` is not one MessagePack encoding of a `T`, or nests deeper than
/// [`bounded::MAX_DEPTH`].
pub fn decode_field<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, rmp_serde::decode::Error> {
    bounded::check(bytes)?;
    decoder::from_slice(bytes)
}

/// [`decode_field`] for a value that arrives in chunks: the bounds it needs are the decoder's
/// own (see [`decoder`]).
pub(crate) fn decode_chunks<T: DeserializeOwned>(
    input: decoder::ChunkInput,
) -> Result<T, rmp_serde::decode::Error> {
    let mut deserializer = decoder::Deserializer::new(input);
    let value = T::deserialize(&mut deserializer)?;
    deserializer.end()?;
    Ok(value)
}

/// One artifact encoded in memory by [`encode_state`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodedField {
    /// The field's serialized name (after `#[serde(rename)]`); the key it is stored and looked up under.
    pub name: String,
    /// The Rust type of the field as `std::any::type_name` spells it; informative only (shown by
    /// `dump`), never used to decode.
    pub type_name: &'static str,
    /// The field's encoding, as produced by [`encode_field`].
    pub bytes: Vec<u8>,
}

/// The error of [`encode_state`]: splitting failed, or one field could not be encoded.
pub type EncodeError = SplitError<rmp_serde::encode::Error>;

/// Encodes every top-level field of `state` into memory, in the order the struct serializes them.
///
/// Suited to small states and to tests; the datastore streams each field to storage instead
/// (see `datastore::BlobStore::store_state`), so that a large field is never held twice.
///
/// # Errors
///
/// Fails if `state` does not serialize as a struct or map with string keys, if two fields share a
/// name, or if a field's `Serialize` impl fails (the error names the field).
pub fn encode_state<F: Serialize + ?Sized>(state: &F) -> Result<Vec<EncodedField>, EncodeError> {
    let mut sink = MemorySink::default();
    split_state(state, &mut sink)?;
    Ok(sink.fields)
}

/// The [`FieldSink`] behind [`encode_state`].
#[derive(Default)]
struct MemorySink {
    fields: Vec<EncodedField>,
}

impl FieldSink for MemorySink {
    type Error = rmp_serde::encode::Error;

    fn field<T: Serialize + ?Sized>(
        &mut self,
        name: &str,
        type_name: &'static str,
        value: &T,
    ) -> Result<(), Self::Error> {
        // What `encode_field` into a `Vec` produces, without the detour through a chunk buffer.
        let bytes = msgpack::to_vec_named(value)?;
        self.fields.push(EncodedField {
            name: name.to_owned(),
            type_name,
            bytes,
        });
        Ok(())
    }
}

#[cfg(test)]
mod tests;
