//! The artifact decoder: a serde `Deserializer` over a byte slice that reads MessagePack exactly
//! as `rmp_serde::Deserializer::from_read_ref` (rmp-serde 1.3.1) does, only faster.
//!
//! Every stored value was written by [`super::msgpack`] (or by rmp-serde, in older versions), and
//! every type that decoded from those bytes before must decode to the same value now: each
//! choice below (which markers a `deserialize_*` accepts, what an enum or an `Option` looks for,
//! when a string that is not UTF-8 is offered as bytes, how an `_ExtStruct` or an `i128` is read)
//! mirrors rmp-serde's, and the tests decode a wide corpus with both and compare.
//!
//! Why not rmp-serde itself: it reads through `std::io::Read`, a `read_exact` per marker and
//! per value, and routes every number through one `#[inline(never)]` function that matches on
//! rmp's `Marker` enum: about 8 ns per element of a `Vec<f32>`, a quarter of the time of loading
//! one. Here a number is a marker byte and a fixed-size load from the slice, inlined into the
//! caller's loop.
//!
//! Safety against damaged or crafted bytes stays with [`super::bounded::check`], which runs
//! before this decoder sees a value; on top of it, every nesting of an enum variant with data, an
//! `Option` or a newtype counts against a depth limit (rmp-serde counts only arrays and maps),
//! and no size hint exceeds the bytes left.

use std::io;

use rmp::Marker;
use rmp_serde::decode::Error;
use serde::de::{self, DeserializeOwned, DeserializeSeed, Unexpected, Visitor};
use serde::forward_to_deserialize_any;

use super::bounded::MAX_DEPTH;

/// The name rmp-serde gives the newtype struct that carries a MessagePack extension
/// (`rmp_serde::MSGPACK_EXT_STRUCT_NAME`).
const EXT_STRUCT_NAME: &str = rmp_serde::MSGPACK_EXT_STRUCT_NAME;

/// How many levels of `Option`, newtype and enum variant may nest without an array or a map
/// between them: what a type that wraps itself (`struct A(Option<Box<A>>)`) would otherwise
/// recurse on forever, since `Some` consumes no byte.
const MAX_WRAPPERS: usize = 4 * MAX_DEPTH;

/// Decodes one value of type `T` from `bytes`, which must hold exactly that value.
///
/// # Errors
///
/// rmp-serde's errors, as `rmp_serde::from_slice` would return them; bytes left after the value
/// are an `Error::Syntax`.
pub(crate) fn from_slice<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, Error> {
    let mut deserializer = Deserializer::new(SliceInput::new(bytes));
    let value = T::deserialize(&mut deserializer)?;
    deserializer.end()?;
    Ok(value)
}

/// Where a [`Deserializer`] reads from: a slice ([`SliceInput`]) or a stream of chunks
/// (`datastore::blob_reader`, which hashes them as they arrive).
pub(crate) trait Input<'de> {
    /// The next byte, or `None` at the end.
    fn byte(&mut self) -> Option<u8>;
    /// The next `N` bytes.
    ///
    /// # Errors
    ///
    /// `Error::InvalidDataRead` past the end.
    fn array<const N: usize>(&mut self) -> Result<[u8; N], Error>;
    /// The next `len` bytes.
    ///
    /// # Errors
    ///
    /// `Error::InvalidDataRead` past the end.
    fn bytes(&mut self, len: usize) -> Result<Bytes<'de, '_>, Error>;
    /// At most how many bytes are left: the most a size hint may promise.
    fn room(&self) -> usize;
    /// How many bytes were read.
    fn position(&self) -> usize;
}

/// Bytes an [`Input`] hands out: from the input itself (a slice), from its buffer (a chunk),
/// or gathered from several chunks into a vector of their own.
pub(crate) enum Bytes<'de, 's> {
    Borrowed(&'de [u8]),
    Copied(&'s [u8]),
    Owned(Vec<u8>),
}

/// A slice as an [`Input`].
pub(crate) struct SliceInput<'de> {
    rest: &'de [u8],
    len: usize,
}

impl<'de> SliceInput<'de> {
    pub(crate) fn new(bytes: &'de [u8]) -> Self {
        SliceInput {
            rest: bytes,
            len: bytes.len(),
        }
    }
}

impl<'de> Input<'de> for SliceInput<'de> {
    #[inline(always)]
    fn byte(&mut self) -> Option<u8> {
        let (&byte, rest) = self.rest.split_first()?;
        self.rest = rest;
        Some(byte)
    }

    #[inline(always)]
    fn array<const N: usize>(&mut self) -> Result<[u8; N], Error> {
        match self.rest.split_first_chunk::<N>() {
            Some((data, rest)) => {
                self.rest = rest;
                Ok(*data)
            }
            None => Err(Error::InvalidDataRead(eof())),
        }
    }

    #[inline]
    fn bytes(&mut self, len: usize) -> Result<Bytes<'de, '_>, Error> {
        if len > self.rest.len() {
            return Err(Error::InvalidDataRead(eof()));
        }
        let (data, rest) = self.rest.split_at(len);
        self.rest = rest;
        Ok(Bytes::Borrowed(data))
    }

    fn room(&self) -> usize {
        self.rest.len()
    }

    fn position(&self) -> usize {
        self.len - self.rest.len()
    }
}

/// The chunks of a value as another thread reads them (see `datastore::blob_reading`): an
/// [`Input`] that hands each chunk back for reuse once it is read, so that decoding a value of
/// any size needs a few chunks of memory besides the value itself.
pub(crate) struct ChunkInput {
    chunk: Vec<u8>,
    /// Where reading stands in `chunk`, and how much of it holds data.
    pos: usize,
    valid: usize,
    /// The bytes of the chunks before this one.
    before: usize,
    /// How many bytes the value has in all (at most), from its index entry and its size.
    total: usize,
    incoming: std::sync::mpsc::Receiver<(Vec<u8>, usize)>,
    spent: std::sync::mpsc::Sender<Vec<u8>>,
}

impl ChunkInput {
    /// An input fed `(chunk, bytes of data in it)` by `incoming`, which returns every chunk
    /// read to `spent`; `total` bounds the size hints it gives.
    pub(crate) fn new(
        total: usize,
        incoming: std::sync::mpsc::Receiver<(Vec<u8>, usize)>,
        spent: std::sync::mpsc::Sender<Vec<u8>>,
    ) -> Self {
        ChunkInput {
            chunk: Vec::new(),
            pos: 0,
            valid: 0,
            before: 0,
            total,
            incoming,
            spent,
        }
    }

    /// Moves to the next chunk; `false` at the end.
    #[cold]
    fn next_chunk(&mut self) -> bool {
        match self.incoming.recv() {
            Ok((chunk, valid)) => {
                let spent = std::mem::replace(&mut self.chunk, chunk);
                if spent.capacity() > 0 {
                    // The reader may be gone (it failed): the chunk is then dropped.
                    let _ = self.spent.send(spent);
                }
                self.before += self.valid;
                self.pos = 0;
                self.valid = valid.min(self.chunk.len());
                true
            }
            Err(_) => false,
        }
    }

    #[cold]
    fn byte_across(&mut self) -> Option<u8> {
        while self.pos >= self.valid {
            if !self.next_chunk() {
                return None;
            }
        }
        let byte = self.chunk[self.pos];
        self.pos += 1;
        Some(byte)
    }
}

impl<'de> Input<'de> for ChunkInput {
    #[inline(always)]
    fn byte(&mut self) -> Option<u8> {
        match self.chunk[..self.valid].get(self.pos) {
            Some(&byte) => {
                self.pos += 1;
                Some(byte)
            }
            None => self.byte_across(),
        }
    }

    #[inline(always)]
    fn array<const N: usize>(&mut self) -> Result<[u8; N], Error> {
        if let Some(data) = self.chunk[..self.valid]
            .get(self.pos..)
            .and_then(|rest| rest.first_chunk::<N>())
        {
            self.pos += N;
            return Ok(*data);
        }
        let mut data = [0; N];
        for byte in &mut data {
            *byte = self
                .byte_across()
                .ok_or_else(|| Error::InvalidDataRead(eof()))?;
        }
        Ok(data)
    }

    fn bytes(&mut self, len: usize) -> Result<Bytes<'de, '_>, Error> {
        if len > self.room() {
            return Err(Error::InvalidDataRead(eof()));
        }
        if self.valid - self.pos >= len {
            let start = self.pos;
            self.pos += len;
            return Ok(Bytes::Copied(&self.chunk[start..start + len]));
        }
        // Across chunks: gathered into a vector of its own, which a visitor may keep (a large
        // `serde_bytes` field becomes that vector, copied once).
        let mut data = Vec::with_capacity(len);
        while data.len() < len {
            if self.pos >= self.valid && !self.next_chunk() {
                return Err(Error::InvalidDataRead(eof()));
            }
            let take = (len - data.len()).min(self.valid - self.pos);
            data.extend_from_slice(&self.chunk[self.pos..self.pos + take]);
            self.pos += take;
        }
        Ok(Bytes::Owned(data))
    }

    fn room(&self) -> usize {
        self.total.saturating_sub(self.position())
    }

    fn position(&self) -> usize {
        self.before + self.pos
    }
}

/// The deserializer: its input, and a marker read ahead (by `Option` and unit structs, which
/// look at a marker and may leave it for the value).
pub(crate) struct Deserializer<R> {
    input: R,
    marker: Option<u8>,
    /// Arrays and maps that may still open.
    depth: usize,
    /// Wrappers (`Option`, newtype, enum variant) that may still open.
    wrappers: usize,
}

impl<'de, R: Input<'de>> Deserializer<R> {
    /// A deserializer at the start of `input`.
    pub(crate) fn new(input: R) -> Self {
        Deserializer {
            input,
            marker: None,
            depth: MAX_DEPTH,
            wrappers: MAX_WRAPPERS,
        }
    }

    /// Fails unless every byte was read.
    pub(crate) fn end(&mut self) -> Result<(), Error> {
        if self.marker.is_none() && self.input.byte().is_none() {
            Ok(())
        } else {
            Err(Error::Syntax(format!(
                "bytes left after the value, at byte {}",
                self.input.position().saturating_sub(1)
            )))
        }
    }

    #[inline(always)]
    fn take_marker(&mut self) -> Result<u8, Error> {
        if let Some(marker) = self.marker.take() {
            return Ok(marker);
        }
        self.input
            .byte()
            .ok_or_else(|| Error::InvalidMarkerRead(eof()))
    }

    #[inline(always)]
    fn data<const N: usize>(&mut self) -> Result<[u8; N], Error> {
        self.input.array()
    }

    /// A number, `nil` or a boolean, as rmp-serde's `any_num` reads it.
    #[inline(always)]
    fn number<V: Visitor<'de>>(&mut self, marker: u8, visitor: V) -> Result<V::Value, Error> {
        match marker {
            0x00..=0x7f => visitor.visit_u8(marker),
            0xe0..=0xff => visitor.visit_i8(marker as i8),
            0xca => visitor.visit_f32(f32::from_be_bytes(self.data()?)),
            0xcb => visitor.visit_f64(f64::from_be_bytes(self.data()?)),
            0xcc => visitor.visit_u8(u8::from_be_bytes(self.data()?)),
            0xcd => visitor.visit_u16(u16::from_be_bytes(self.data()?)),
            0xce => visitor.visit_u32(u32::from_be_bytes(self.data()?)),
            0xcf => visitor.visit_u64(u64::from_be_bytes(self.data()?)),
            0xd0 => visitor.visit_i8(i8::from_be_bytes(self.data()?)),
            0xd1 => visitor.visit_i16(i16::from_be_bytes(self.data()?)),
            0xd2 => visitor.visit_i32(i32::from_be_bytes(self.data()?)),
            0xd3 => visitor.visit_i64(i64::from_be_bytes(self.data()?)),
            0xc0 => visitor.visit_unit(),
            0xc2 => visitor.visit_bool(false),
            0xc3 => visitor.visit_bool(true),
            other => Err(mismatch(other)),
        }
    }

    /// Any value, as rmp-serde's `any_inner`; `allow_bytes` off reads a binary as a sequence of
    /// its bytes (what `deserialize_seq` does).
    ///
    /// Each kind of value is read by a function of its own, so that in an unoptimized build a
    /// level of nesting costs the stack of one kind only (a value at the depth limit must
    /// decode within a thread's default 2 MiB).
    fn any<V: Visitor<'de>>(&mut self, visitor: V, allow_bytes: bool) -> Result<V::Value, Error> {
        let marker = self.take_marker()?;
        match marker {
            0x00..=0x7f | 0xe0..=0xff | 0xc0 | 0xc2 | 0xc3 | 0xca..=0xd3 => {
                self.number(marker, visitor)
            }
            0xa0..=0xbf | 0xd9..=0xdb => self.str(marker, visitor),
            0x90..=0x9f | 0xdc | 0xdd => self.seq(marker, visitor),
            0x80..=0x8f | 0xde | 0xdf => self.map(marker, visitor),
            0xc4..=0xc6 => self.bin(marker, visitor, allow_bytes),
            0xd4..=0xd8 | 0xc7..=0xc9 => self.ext(marker, visitor),
            other => Err(mismatch(other)),
        }
    }

    fn str<V: Visitor<'de>>(&mut self, marker: u8, visitor: V) -> Result<V::Value, Error> {
        let len = match marker {
            0xd9 => usize::from(self.data::<1>()?[0]),
            0xda => usize::from(u16::from_be_bytes(self.data()?)),
            0xdb => u32::from_be_bytes(self.data()?) as usize,
            _ => usize::from(marker & 0x1f),
        };
        match self.input.bytes(len)? {
            Bytes::Borrowed(data) => match std::str::from_utf8(data) {
                Ok(text) => visitor.visit_borrowed_str(text),
                Err(error) => visitor
                    .visit_borrowed_bytes::<Error>(data)
                    .map_err(|_| Error::Utf8Error(error)),
            },
            Bytes::Copied(data) => match std::str::from_utf8(data) {
                Ok(text) => visitor.visit_str(text),
                Err(error) => visitor
                    .visit_bytes::<Error>(data)
                    .map_err(|_| Error::Utf8Error(error)),
            },
            Bytes::Owned(data) => match String::from_utf8(data) {
                Ok(text) => visitor.visit_string(text),
                Err(error) => {
                    let utf8 = error.utf8_error();
                    visitor
                        .visit_byte_buf::<Error>(error.into_bytes())
                        .map_err(|_| Error::Utf8Error(utf8))
                }
            },
        }
    }

    fn seq<V: Visitor<'de>>(&mut self, marker: u8, visitor: V) -> Result<V::Value, Error> {
        let len = match marker {
            0xdc => u32::from(u16::from_be_bytes(self.data()?)),
            0xdd => u32::from_be_bytes(self.data()?),
            _ => u32::from(marker & 0x0f),
        };
        self.enter()?;
        let mut seq = SeqAccess {
            de: self,
            left: len,
        };
        let value = visitor.visit_seq(&mut seq);
        let left = seq.left;
        self.depth += 1;
        let value = value?;
        match left {
            0 => Ok(value),
            excess => Err(Error::LengthMismatch(len - excess)),
        }
    }

    fn map<V: Visitor<'de>>(&mut self, marker: u8, visitor: V) -> Result<V::Value, Error> {
        let len = match marker {
            0xde => u32::from(u16::from_be_bytes(self.data()?)),
            0xdf => u32::from_be_bytes(self.data()?),
            _ => u32::from(marker & 0x0f),
        };
        self.enter()?;
        let mut map = MapAccess {
            de: self,
            left: len,
        };
        let value = visitor.visit_map(&mut map);
        let left = map.left;
        self.depth += 1;
        let value = value?;
        match left {
            0 => Ok(value),
            excess => Err(Error::LengthMismatch(len - excess)),
        }
    }

    fn bin<V: Visitor<'de>>(
        &mut self,
        marker: u8,
        visitor: V,
        allow_bytes: bool,
    ) -> Result<V::Value, Error> {
        let len = match marker {
            0xc4 => usize::from(self.data::<1>()?[0]),
            0xc5 => usize::from(u16::from_be_bytes(self.data()?)),
            _ => u32::from_be_bytes(self.data()?) as usize,
        };
        match (self.input.bytes(len)?, allow_bytes) {
            (Bytes::Borrowed(data), true) => visitor.visit_borrowed_bytes(data),
            (Bytes::Copied(data), true) => visitor.visit_bytes(data),
            (Bytes::Owned(data), true) => visitor.visit_byte_buf(data),
            (Bytes::Borrowed(data) | Bytes::Copied(data), false) => visitor.visit_seq(
                de::value::SeqDeserializer::<_, Error>::new(data.iter().copied()),
            ),
            (Bytes::Owned(data), false) => visitor.visit_seq(
                de::value::SeqDeserializer::<_, Error>::new(data.into_iter()),
            ),
        }
    }

    fn ext<V: Visitor<'de>>(&mut self, marker: u8, visitor: V) -> Result<V::Value, Error> {
        let len = self.ext_len(marker)?;
        self.enter()?;
        let value = visitor.visit_newtype_struct(ExtDeserializer {
            de: &mut *self,
            len,
            state: ExtState::New,
        });
        self.depth += 1;
        value
    }

    fn ext_len(&mut self, marker: u8) -> Result<usize, Error> {
        Ok(match marker {
            0xd4 => 1,
            0xd5 => 2,
            0xd6 => 4,
            0xd7 => 8,
            0xd8 => 16,
            0xc7 => usize::from(self.data::<1>()?[0]),
            0xc8 => usize::from(u16::from_be_bytes(self.data()?)),
            0xc9 => u32::from_be_bytes(self.data()?) as usize,
            other => return Err(mismatch(other)),
        })
    }

    /// Opens an array or a map (or an extension, as rmp-serde counts it).
    #[inline(always)]
    fn enter(&mut self) -> Result<(), Error> {
        if self.depth == 0 {
            return Err(Error::DepthLimitExceeded);
        }
        self.depth -= 1;
        Ok(())
    }

    /// Opens an `Option`, a newtype or an enum variant.
    #[inline(always)]
    fn wrap(&mut self) -> Result<(), Error> {
        if self.wrappers == 0 {
            return Err(Error::DepthLimitExceeded);
        }
        self.wrappers -= 1;
        Ok(())
    }

    fn i128(&mut self) -> Result<i128, Error> {
        let marker = self.take_marker()?;
        Ok(match marker {
            0x00..=0x7f => i128::from(marker),
            0xe0..=0xff => i128::from(marker as i8),
            0xcc => i128::from(u8::from_be_bytes(self.data()?)),
            0xcd => i128::from(u16::from_be_bytes(self.data()?)),
            0xce => i128::from(u32::from_be_bytes(self.data()?)),
            0xcf => i128::from(u64::from_be_bytes(self.data()?)),
            0xd0 => i128::from(i8::from_be_bytes(self.data()?)),
            0xd1 => i128::from(i16::from_be_bytes(self.data()?)),
            0xd2 => i128::from(i32::from_be_bytes(self.data()?)),
            0xd3 => i128::from(i64::from_be_bytes(self.data()?)),
            // rmp-serde writes an i128 as a 16-byte binary; it also reads one after a
            // sixteen-element array marker.
            0xc4 | 0x90..=0x9f => {
                let len = if marker == 0xc4 {
                    self.data::<1>()?[0]
                } else {
                    marker & 0x0f
                };
                if len != 16 {
                    return Err(Error::LengthMismatch(16));
                }
                i128::from_be_bytes(self.data()?)
            }
            other => return Err(mismatch(other)),
        })
    }

    /// How many elements of at least one byte the input can still hold: the most a size hint
    /// may promise.
    fn room(&self) -> usize {
        self.input.room()
    }
}

#[cold]
fn eof() -> io::Error {
    io::ErrorKind::UnexpectedEof.into()
}

#[cold]
fn mismatch(marker: u8) -> Error {
    Error::TypeMismatch(Marker::from_u8(marker))
}

macro_rules! numbers {
    ($($method:ident)*) => {$(
        #[inline(always)]
        fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
            let marker = self.take_marker()?;
            self.number(marker, visitor)
        }
    )*};
}

impl<'de, R: Input<'de>> de::Deserializer<'de> for &mut Deserializer<R> {
    type Error = Error;

    fn is_human_readable(&self) -> bool {
        false
    }

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.any(visitor, true)
    }

    numbers! {
        deserialize_bool deserialize_u8 deserialize_u16 deserialize_u32 deserialize_u64
        deserialize_i8 deserialize_i16 deserialize_i32 deserialize_i64
        deserialize_f32 deserialize_f64
    }

    fn deserialize_i128<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_i128(self.i128()?)
    }

    fn deserialize_u128<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_u128(self.i128()? as u128)
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        let marker = self.take_marker()?;
        if marker == 0xc0 {
            visitor.visit_none()
        } else {
            self.marker = Some(marker);
            self.wrap()?;
            let value = visitor.visit_some(&mut *self);
            self.wrappers += 1;
            value
        }
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        let marker = match self.marker {
            Some(marker) => marker,
            None => {
                let marker = self.take_marker()?;
                self.marker = Some(marker);
                marker
            }
        };
        let len = match marker {
            0x80..=0x8f => Some(u32::from(marker & 0x0f)),
            0xde => self
                .data::<2>()
                .ok()
                .map(|d| u32::from(u16::from_be_bytes(d))),
            0xdf => self.data::<4>().ok().map(u32::from_be_bytes),
            _ => None,
        };
        match len {
            Some(1) => {
                self.marker = None;
                self.enter()?;
                let value = visitor.visit_enum(VariantAccess { de: &mut *self });
                self.depth += 1;
                value
            }
            Some(n) => Err(Error::LengthMismatch(n)),
            None => visitor.visit_enum(UnitVariantAccess { de: self }),
        }
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Error> {
        if name == EXT_STRUCT_NAME {
            let marker = self.take_marker()?;
            let len = self.ext_len(marker)?;
            return visitor.visit_newtype_struct(ExtDeserializer {
                de: self,
                len,
                state: ExtState::New,
            });
        }
        self.wrap()?;
        let value = visitor.visit_newtype_struct(&mut *self);
        self.wrappers += 1;
        value
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Error> {
        match self.take_marker()? {
            0xc0 | 0x90 => visitor.visit_unit(),
            marker => {
                self.marker = Some(marker);
                self.any(visitor, true)
            }
        }
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.any(visitor, false)
    }

    fn deserialize_tuple<V: Visitor<'de>>(
        self,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, Error> {
        self.any(visitor, false)
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        self.any(visitor, false)
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, Error> {
        self.any(visitor, false)
    }

    forward_to_deserialize_any! {
        bytes byte_buf unit map identifier str string char ignored_any
    }
}

struct SeqAccess<'a, R> {
    de: &'a mut Deserializer<R>,
    left: u32,
}

impl<'de, R: Input<'de>> de::SeqAccess<'de> for SeqAccess<'_, R> {
    type Error = Error;

    #[inline(always)]
    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, Error> {
        if self.left > 0 {
            self.left -= 1;
            seed.deserialize(&mut *self.de).map(Some)
        } else {
            Ok(None)
        }
    }

    fn size_hint(&self) -> Option<usize> {
        Some((self.left as usize).min(self.de.room()))
    }
}

struct MapAccess<'a, R> {
    de: &'a mut Deserializer<R>,
    left: u32,
}

impl<'de, R: Input<'de>> de::MapAccess<'de> for MapAccess<'_, R> {
    type Error = Error;

    #[inline]
    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Error> {
        if self.left > 0 {
            self.left -= 1;
            seed.deserialize(&mut *self.de).map(Some)
        } else {
            Ok(None)
        }
    }

    #[inline]
    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, Error> {
        seed.deserialize(&mut *self.de)
    }

    fn size_hint(&self) -> Option<usize> {
        Some((self.left as usize).min(self.de.room() / 2))
    }
}

/// An enum written as a one-entry map: the variant, then its data.
struct VariantAccess<'a, R> {
    de: &'a mut Deserializer<R>,
}

impl<'de, R: Input<'de>> de::EnumAccess<'de> for VariantAccess<'_, R> {
    type Error = Error;
    type Variant = Self;

    fn variant_seed<V: DeserializeSeed<'de>>(self, seed: V) -> Result<(V::Value, Self), Error> {
        Ok((seed.deserialize(&mut *self.de)?, self))
    }
}

impl<'de, R: Input<'de>> de::VariantAccess<'de> for VariantAccess<'_, R> {
    type Error = Error;

    fn unit_variant(self) -> Result<(), Error> {
        match self.de.take_marker()? {
            0xc0 => Ok(()),
            other => Err(mismatch(other)),
        }
    }

    fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> Result<T::Value, Error> {
        seed.deserialize(self.de)
    }

    fn tuple_variant<V: Visitor<'de>>(self, len: usize, visitor: V) -> Result<V::Value, Error> {
        de::Deserializer::deserialize_tuple(self.de, len, visitor)
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        de::Deserializer::deserialize_tuple(self.de, fields.len(), visitor)
    }
}

/// An enum written as its variant alone (a unit variant: its name or index).
struct UnitVariantAccess<'a, R> {
    de: &'a mut Deserializer<R>,
}

impl<'de, R: Input<'de>> de::EnumAccess<'de> for UnitVariantAccess<'_, R> {
    type Error = Error;
    type Variant = Self;

    fn variant_seed<V: DeserializeSeed<'de>>(self, seed: V) -> Result<(V::Value, Self), Error> {
        let variant = seed.deserialize(&mut *self.de)?;
        Ok((variant, self))
    }
}

impl<'de, R: Input<'de>> de::VariantAccess<'de> for UnitVariantAccess<'_, R> {
    type Error = Error;

    fn unit_variant(self) -> Result<(), Error> {
        Ok(())
    }

    fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, _seed: T) -> Result<T::Value, Error> {
        Err(de::Error::invalid_type(
            Unexpected::UnitVariant,
            &"newtype variant",
        ))
    }

    fn tuple_variant<V: Visitor<'de>>(self, _len: usize, _visitor: V) -> Result<V::Value, Error> {
        Err(de::Error::invalid_type(
            Unexpected::UnitVariant,
            &"tuple variant",
        ))
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        _fields: &'static [&'static str],
        _visitor: V,
    ) -> Result<V::Value, Error> {
        Err(de::Error::invalid_type(
            Unexpected::UnitVariant,
            &"struct variant",
        ))
    }
}

/// Where an extension's reading stands: rmp-serde presents one as a sequence of its type (an
/// `i8`) and its data (bytes).
#[derive(Clone, Copy, PartialEq, Eq)]
enum ExtState {
    New,
    ReadTag,
    ReadData,
}

struct ExtDeserializer<'a, R> {
    de: &'a mut Deserializer<R>,
    len: usize,
    state: ExtState,
}

impl<'de, R: Input<'de>> de::Deserializer<'de> for ExtDeserializer<'_, R> {
    type Error = Error;

    fn deserialize_any<V: Visitor<'de>>(mut self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_seq(ExtSeq(&mut self))
    }

    forward_to_deserialize_any! {
        bool u8 u16 u32 u64 i8 i16 i32 i64 f32 f64 char str string unit option
        seq bytes byte_buf map unit_struct newtype_struct
        struct identifier tuple enum ignored_any tuple_struct
    }
}

/// The sequence an extension is presented as.
struct ExtSeq<'b, 'a, R>(&'b mut ExtDeserializer<'a, R>);

impl<'de, R: Input<'de>> de::SeqAccess<'de> for ExtSeq<'_, '_, R> {
    type Error = Error;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, Error> {
        match self.0.state {
            ExtState::New | ExtState::ReadTag => Ok(Some(seed.deserialize(&mut *self.0)?)),
            ExtState::ReadData => Ok(None),
        }
    }
}

impl<'de, R: Input<'de>> de::Deserializer<'de> for &mut ExtDeserializer<'_, R> {
    type Error = Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.state {
            ExtState::New => {
                let tag = i8::from_be_bytes(self.de.data()?);
                self.state = ExtState::ReadTag;
                visitor.visit_i8(tag)
            }
            ExtState::ReadTag => {
                let len = self.len;
                self.state = ExtState::ReadData;
                match self.de.input.bytes(len)? {
                    Bytes::Borrowed(data) => visitor.visit_borrowed_bytes(data),
                    Bytes::Copied(data) => visitor.visit_bytes(data),
                    Bytes::Owned(data) => visitor.visit_byte_buf(data),
                }
            }
            ExtState::ReadData => Err(Error::TypeMismatch(Marker::Reserved)),
        }
    }

    forward_to_deserialize_any! {
        bool u8 u16 u32 u64 i8 i16 i32 i64 f32 f64 char str string unit option
        seq bytes byte_buf map unit_struct newtype_struct
        tuple_struct struct identifier tuple enum ignored_any
    }
}

#[cfg(test)]
mod tests;
