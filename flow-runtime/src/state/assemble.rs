//! Rebuilding a flow's state from its stored fields with a deserializer of our own.
//!
//! The stored fields are presented to the struct's `Deserialize` impl as one map whose keys are the
//! field names; each value is [checked](super::bounded) then decoded straight from that field's
//! bytes by [`super::decoder`], so the fields are never concatenated into one buffer. Because serde's derived code drives the process, everything
//! the user declared keeps working: `#[serde(default)]` for fields absent from old runs, unknown
//! fields skipped (or rejected under `deny_unknown_fields`), renames and `flatten`.

use std::fmt::Display;

use serde::de::value::BorrowedStrDeserializer;
use serde::de::{self, DeserializeOwned, DeserializeSeed, MapAccess, Visitor};
use serde::forward_to_deserialize_any;

use super::decoder::{ChunkInput, Deserializer, Input, SliceInput};

/// Decodes one value for `seed` from `input`, which must hold exactly that value.
fn decode_seed<'de, S: DeserializeSeed<'de>, R: Input<'de>>(
    seed: S,
    input: R,
) -> Result<S::Value, rmp_serde::decode::Error> {
    let mut deserializer = Deserializer::new(input);
    let value = seed.deserialize(&mut deserializer)?;
    deserializer.end()?;
    Ok(value)
}

/// Why a flow's state could not be rebuilt from its fields.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// One field's bytes are not a valid encoding of that field's current type: the type changed
    /// incompatibly since the artifact was written, or the bytes are damaged.
    #[error("field `{field}` could not be decoded: {source}")]
    Field {
        /// The field's serialized name.
        field: String,
        /// What rmp-serde reported.
        #[source]
        source: rmp_serde::decode::Error,
    },
    /// The state as a whole was rejected by its `Deserialize` impl, e.g. a field without
    /// `#[serde(default)]` is missing, or an unknown field under `deny_unknown_fields`.
    #[error("flow state could not be rebuilt: {0}")]
    State(String),
}

impl de::Error for DecodeError {
    fn custom<T: Display>(msg: T) -> Self {
        DecodeError::State(msg.to_string())
    }
}

/// Rebuilds a flow's state from `(field name, encoded bytes)` pairs as stored by
/// [`encode_state`](super::encode_state) or the datastore.
///
/// Pairs may come in any order. Names the type does not know are skipped unless it denies unknown
/// fields; names it expects but that are absent take their `#[serde(default)]`.
///
/// # Errors
///
/// [`DecodeError::Field`] names the field whose bytes did not decode; [`DecodeError::State`] carries
/// serde's message for whole-state problems such as a missing field.
pub fn decode_state<F: DeserializeOwned>(fields: &[(&str, &[u8])]) -> Result<F, DecodeError> {
    decode_fields(
        fields
            .iter()
            .map(|&(name, bytes)| (name, FieldValue::Encoded(bytes)))
            .collect(),
    )
}

/// Where a field's encoding comes from, for [`decode_fields`].
pub(crate) enum FieldValue<'a> {
    /// In memory.
    Encoded(&'a [u8]),
    /// In chunks, as another thread reads them; called when the field's value is wanted.
    Chunks(Box<dyn FnOnce() -> ChunkInput + 'a>),
}

/// [`decode_state`], where some fields may arrive in chunks.
pub(crate) fn decode_fields<'a, F: DeserializeOwned>(
    fields: Vec<(&'a str, FieldValue<'a>)>,
) -> Result<F, DecodeError> {
    F::deserialize(Fields {
        fields: fields.into_iter(),
        current: None,
    })
}

/// The deserializer, and at the same time the map access over the fields.
struct Fields<'a> {
    fields: std::vec::IntoIter<(&'a str, FieldValue<'a>)>,
    current: Option<(&'a str, FieldValue<'a>)>,
}

impl<'de> de::Deserializer<'de> for Fields<'de> {
    type Error = DecodeError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        visitor.visit_map(self)
    }

    fn deserialize_unit<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        visitor.visit_unit()
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, DecodeError> {
        visitor.visit_unit()
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, DecodeError> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        visitor.visit_unit()
    }

    forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        option seq tuple tuple_struct map struct enum identifier
    }
}

impl<'de> MapAccess<'de> for Fields<'de> {
    type Error = DecodeError;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, DecodeError> {
        let Some((name, value)) = self.fields.next() else {
            return Ok(None);
        };
        self.current = Some((name, value));
        seed.deserialize(BorrowedStrDeserializer::new(name))
            .map(Some)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(
        &mut self,
        seed: V,
    ) -> Result<V::Value, DecodeError> {
        let (name, value) = self.current.take().ok_or_else(|| {
            DecodeError::State("a field value was requested before its name".to_owned())
        })?;
        let field_error = |source| DecodeError::Field {
            field: name.to_owned(),
            source,
        };
        match value {
            FieldValue::Encoded(bytes) => {
                super::bounded::check(bytes).map_err(field_error)?;
                decode_seed(seed, SliceInput::new(bytes)).map_err(field_error)
            }
            FieldValue::Chunks(open) => decode_seed(seed, open()).map_err(field_error),
        }
    }

    fn size_hint(&self) -> Option<usize> {
        self.fields.size_hint().1
    }
}
