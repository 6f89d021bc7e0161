//! Splitting a flow's state into its top-level fields with a serializer of our own.
//!
//! The serializer accepts exactly one level: a struct (what `#[derive(Serialize)]` emits for a
//! struct with named fields) or a map with string keys (what it emits when a field is
//! `#[serde(flatten)]`). Each entry's value is handed, unserialized, to a [`FieldSink`], which decides
//! how to encode and where to put it. Anything else at the top level is rejected with an error that
//! says what was found.

use std::any::type_name;
use std::collections::HashSet;
use std::fmt::Display;

use serde::Serialize;
use serde::ser::{self, Impossible, SerializeMap, SerializeStruct};

/// Receives the top-level fields of a flow's state, one call per field.
///
/// Implemented by whatever stores artifacts: the in-memory encoder behind
/// [`encode_state`](super::encode_state) and the datastore's blob writer. The value is passed
/// still typed, so the sink can stream its encoding wherever it wants without an intermediate copy.
pub trait FieldSink {
    /// What storing one field can fail with; [`split_state`] wraps it with the field's name.
    type Error: std::error::Error + Send + Sync + 'static;

    /// Stores one field.
    ///
    /// `name` is the field's serialized name; `type_name` is `std::any::type_name` of its Rust
    /// type (leading `&` removed), for the task index. It is informative, not a stable identifier:
    /// a field with `#[serde(with = …)]` shows serde's adapter type.
    ///
    /// # Errors
    ///
    /// Whatever keeps the sink from storing the value, including the value's own `Serialize`
    /// impl failing; splitting stops at the first error.
    fn field<T: Serialize + ?Sized>(
        &mut self,
        name: &str,
        type_name: &'static str,
        value: &T,
    ) -> Result<(), Self::Error>;
}

/// Why a flow's state could not be split into fields.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SplitError<E: std::error::Error + 'static> {
    /// The state's `Serialize` impl produced something other than a struct or a map.
    #[error(
        "flow state must be a struct with named fields, found {found}; \
         derive `Serialize` on a struct like `struct MyFlow {{ field: Type, … }}`"
    )]
    NotAStruct {
        /// What was found instead, e.g. "a sequence".
        found: &'static str,
    },
    /// The state serialized as a map whose keys are not strings (a map at the top level is
    /// accepted for `#[serde(flatten)]`, whose keys are field names).
    #[error(
        "flow state serialized as a map, but its keys must be field names (strings), found {found}"
    )]
    NonStringKey {
        /// What kind of key was found.
        found: &'static str,
    },
    /// Two top-level fields have the same name, typically through `#[serde(flatten)]` or
    /// `#[serde(rename)]`; one would silently overwrite the other.
    #[error(
        "flow state has two fields named `{name}` (check `#[serde(flatten)]` and `#[serde(rename)]`)"
    )]
    DuplicateField {
        /// The repeated name.
        name: String,
    },
    /// The sink failed to store a field (for instance the field's `Serialize` impl failed).
    #[error("field `{field}` could not be stored: {source}")]
    Field {
        /// The field's serialized name.
        field: String,
        /// The sink's error.
        #[source]
        source: E,
    },
    /// The state's own `Serialize` impl reported an error.
    #[error("flow state could not be serialized: {0}")]
    Custom(String),
}

impl<E: std::error::Error + 'static> ser::Error for SplitError<E> {
    fn custom<T: Display>(msg: T) -> Self {
        SplitError::Custom(msg.to_string())
    }
}

/// Serializes `state` and hands each of its top-level fields to `sink`, in serialization order.
///
/// Fields skipped by serde (`#[serde(skip)]`, `skip_serializing_if`) never reach the sink;
/// the fields of a `#[serde(flatten)]` member arrive as top-level fields. A unit struct has no
/// fields and is accepted; a newtype struct is looked through.
///
/// # Errors
///
/// See [`SplitError`]: not a struct, non-string map key, duplicate field name, or the sink's error
/// for a named field.
pub fn split_state<F, S>(state: &F, sink: &mut S) -> Result<(), SplitError<S::Error>>
where
    F: Serialize + ?Sized,
    S: FieldSink,
{
    state.serialize(Splitter {
        sink,
        seen: HashSet::new(),
    })
}

/// The top-level serializer; owns the sink borrow and the set of names seen so far.
struct Splitter<'a, S> {
    sink: &'a mut S,
    seen: HashSet<String>,
}

impl<S: FieldSink> Splitter<'_, S> {
    fn emit<T: Serialize + ?Sized>(
        &mut self,
        name: &str,
        value: &T,
    ) -> Result<(), SplitError<S::Error>> {
        if !self.seen.insert(name.to_owned()) {
            return Err(SplitError::DuplicateField {
                name: name.to_owned(),
            });
        }
        self.sink
            .field(name, display_type_name::<T>(), value)
            .map_err(|source| SplitError::Field {
                field: name.to_owned(),
                source,
            })
    }
}

/// `std::any::type_name` of a field's type, without the references serde adds on the way (the
/// entries of a flattened map arrive as `&V`).
fn display_type_name<T: ?Sized>() -> &'static str {
    let mut name = type_name::<T>();
    while let Some(rest) = name.strip_prefix('&') {
        name = rest.strip_prefix("mut ").unwrap_or(rest);
    }
    name
}

/// Writes the methods of a `Serializer` that reject their input with `$err { found }`.
macro_rules! reject {
    ($err:ident; $($method:ident($($arg:ty),*) -> $ret:ty => $found:literal;)*) => {
        $(
            fn $method(self, $(_: $arg),*) -> Result<$ret, Self::Error> {
                Err(SplitError::$err { found: $found })
            }
        )*
    };
}

impl<'a, S: FieldSink> ser::Serializer for Splitter<'a, S> {
    type Ok = ();
    type Error = SplitError<S::Error>;
    type SerializeSeq = Impossible<(), Self::Error>;
    type SerializeTuple = Impossible<(), Self::Error>;
    type SerializeTupleStruct = Impossible<(), Self::Error>;
    type SerializeTupleVariant = Impossible<(), Self::Error>;
    type SerializeMap = MapSplitter<'a, S>;
    type SerializeStruct = Self;
    type SerializeStructVariant = Impossible<(), Self::Error>;

    fn serialize_struct(
        self,
        _name: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeStruct, Self::Error> {
        Ok(self)
    }

    fn serialize_map(self, _len: Option<usize>) -> Result<Self::SerializeMap, Self::Error> {
        Ok(MapSplitter {
            splitter: self,
            pending_key: None,
        })
    }

    fn serialize_unit_struct(self, _name: &'static str) -> Result<(), Self::Error> {
        Ok(())
    }

    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        value: &T,
    ) -> Result<(), Self::Error> {
        value.serialize(self)
    }

    fn serialize_some<T: Serialize + ?Sized>(self, _: &T) -> Result<(), Self::Error> {
        Err(SplitError::NotAStruct {
            found: "an `Option`",
        })
    }

    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: &T,
    ) -> Result<(), Self::Error> {
        Err(SplitError::NotAStruct { found: "an enum" })
    }

    reject! { NotAStruct;
        serialize_bool(bool) -> () => "a boolean";
        serialize_i8(i8) -> () => "an integer";
        serialize_i16(i16) -> () => "an integer";
        serialize_i32(i32) -> () => "an integer";
        serialize_i64(i64) -> () => "an integer";
        serialize_i128(i128) -> () => "an integer";
        serialize_u8(u8) -> () => "an integer";
        serialize_u16(u16) -> () => "an integer";
        serialize_u32(u32) -> () => "an integer";
        serialize_u64(u64) -> () => "an integer";
        serialize_u128(u128) -> () => "an integer";
        serialize_f32(f32) -> () => "a floating-point number";
        serialize_f64(f64) -> () => "a floating-point number";
        serialize_char(char) -> () => "a character";
        serialize_str(&str) -> () => "a string";
        serialize_bytes(&[u8]) -> () => "a byte array";
        serialize_none() -> () => "`None`";
        serialize_unit() -> () => "`()`";
        serialize_unit_variant(&'static str, u32, &'static str) -> () => "an enum";
        serialize_seq(Option<usize>) -> Self::SerializeSeq => "a sequence";
        serialize_tuple(usize) -> Self::SerializeTuple => "a tuple";
        serialize_tuple_struct(&'static str, usize) -> Self::SerializeTupleStruct => "a tuple struct";
        serialize_tuple_variant(&'static str, u32, &'static str, usize)
            -> Self::SerializeTupleVariant => "an enum";
        serialize_struct_variant(&'static str, u32, &'static str, usize)
            -> Self::SerializeStructVariant => "an enum";
    }
}

impl<S: FieldSink> SerializeStruct for Splitter<'_, S> {
    type Ok = ();
    type Error = SplitError<S::Error>;

    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), Self::Error> {
        self.emit(key, value)
    }

    fn end(self) -> Result<(), Self::Error> {
        Ok(())
    }
}

/// The top level seen as a map: what serde emits for a struct with a `#[serde(flatten)]` field.
struct MapSplitter<'a, S> {
    splitter: Splitter<'a, S>,
    pending_key: Option<String>,
}

impl<S: FieldSink> SerializeMap for MapSplitter<'_, S> {
    type Ok = ();
    type Error = SplitError<S::Error>;

    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<(), Self::Error> {
        self.pending_key = Some(key.serialize(KeySerializer::<S::Error>::new())?);
        Ok(())
    }

    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Self::Error> {
        let key = self.pending_key.take().ok_or_else(|| {
            SplitError::Custom("a map value was serialized before its key".to_owned())
        })?;
        self.splitter.emit(&key, value)
    }

    fn serialize_entry<K, V>(&mut self, key: &K, value: &V) -> Result<(), Self::Error>
    where
        K: Serialize + ?Sized,
        V: Serialize + ?Sized,
    {
        let key = key.serialize(KeySerializer::<S::Error>::new())?;
        self.splitter.emit(&key, value)
    }

    fn end(self) -> Result<(), Self::Error> {
        Ok(())
    }
}

/// Turns a map key into a field name: strings, characters and unit enum variants (whose name is
/// used, as serde_json does) are accepted.
struct KeySerializer<E>(std::marker::PhantomData<E>);

impl<E> KeySerializer<E> {
    fn new() -> Self {
        KeySerializer(std::marker::PhantomData)
    }
}

impl<E: std::error::Error + Send + Sync + 'static> ser::Serializer for KeySerializer<E> {
    type Ok = String;
    type Error = SplitError<E>;
    type SerializeSeq = Impossible<String, Self::Error>;
    type SerializeTuple = Impossible<String, Self::Error>;
    type SerializeTupleStruct = Impossible<String, Self::Error>;
    type SerializeTupleVariant = Impossible<String, Self::Error>;
    type SerializeMap = Impossible<String, Self::Error>;
    type SerializeStruct = Impossible<String, Self::Error>;
    type SerializeStructVariant = Impossible<String, Self::Error>;

    fn serialize_str(self, v: &str) -> Result<String, Self::Error> {
        Ok(v.to_owned())
    }

    fn serialize_char(self, v: char) -> Result<String, Self::Error> {
        Ok(v.to_string())
    }

    fn serialize_unit_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
    ) -> Result<String, Self::Error> {
        Ok(variant.to_owned())
    }

    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        value: &T,
    ) -> Result<String, Self::Error> {
        value.serialize(self)
    }

    fn serialize_some<T: Serialize + ?Sized>(self, _: &T) -> Result<String, Self::Error> {
        Err(SplitError::NonStringKey {
            found: "an `Option`",
        })
    }

    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: &T,
    ) -> Result<String, Self::Error> {
        Err(SplitError::NonStringKey {
            found: "an enum with data",
        })
    }

    reject! { NonStringKey;
        serialize_bool(bool) -> String => "a boolean";
        serialize_i8(i8) -> String => "an integer";
        serialize_i16(i16) -> String => "an integer";
        serialize_i32(i32) -> String => "an integer";
        serialize_i64(i64) -> String => "an integer";
        serialize_i128(i128) -> String => "an integer";
        serialize_u8(u8) -> String => "an integer";
        serialize_u16(u16) -> String => "an integer";
        serialize_u32(u32) -> String => "an integer";
        serialize_u64(u64) -> String => "an integer";
        serialize_u128(u128) -> String => "an integer";
        serialize_f32(f32) -> String => "a floating-point number";
        serialize_f64(f64) -> String => "a floating-point number";
        serialize_bytes(&[u8]) -> String => "a byte array";
        serialize_none() -> String => "`None`";
        serialize_unit() -> String => "`()`";
        serialize_unit_struct(&'static str) -> String => "a unit struct";
        serialize_seq(Option<usize>) -> Self::SerializeSeq => "a sequence";
        serialize_tuple(usize) -> Self::SerializeTuple => "a tuple";
        serialize_tuple_struct(&'static str, usize) -> Self::SerializeTupleStruct => "a tuple struct";
        serialize_tuple_variant(&'static str, u32, &'static str, usize)
            -> Self::SerializeTupleVariant => "an enum with data";
        serialize_map(Option<usize>) -> Self::SerializeMap => "a map";
        serialize_struct(&'static str, usize) -> Self::SerializeStruct => "a struct";
        serialize_struct_variant(&'static str, u32, &'static str, usize)
            -> Self::SerializeStructVariant => "an enum with data";
    }
}
