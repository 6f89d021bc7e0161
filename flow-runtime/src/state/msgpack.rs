//! The artifact encoder: a serde `Serializer` writing exactly the bytes of
//! `rmp_serde::encode::write_named` (rmp-serde 1.3.1, rmp 0.8.15), only faster.
//!
//! Artifacts are content-addressed, so the encoding is frozen: a field that did not change must
//! encode to the same bytes as when it was stored, by this version or an older one, or every
//! unchanged field of every task would be stored again. Every choice below (which marker, which
//! integer width, what a unit struct or an enum variant becomes, what an `_ExtStruct` or an
//! unknown-length sequence becomes) mirrors rmp-serde's `Serializer` in the configuration
//! `write_named` uses: structs as maps keyed by field name, enum variants by name,
//! `BytesMode::Normal`, binary (`is_human_readable` is `false`). The tests compare the two byte
//! for byte.
//!
//! Why not rmp-serde itself: it hands every value to the writer in pieces (for an `f32`, a
//! `write_all` of the marker and another of the four data bytes), each through `&mut W`; unless
//! the writer is a `Vec` whose `write_all` inlines to a copy, that costs 2 to 5 ns per element of
//! a large numeric field. This serializer keeps its own chunk buffer instead, and the sink sees
//! one `write_all` per chunk (up to [`MAX_CHUNK`] bytes); a byte payload at least as large as the
//! chunk skips the buffer and goes to the sink directly. In the buffer a value costs one bounds
//! check and two stores, provided the loop over a sequence keeps the buffer's position in a
//! register: see [`Serializer::put_value_slow`] and `collect_seq` for what that takes. Integers
//! are written without branching on their width ([`Serializer::put_int`]).
//!
//! One deliberate difference: hash collections are canonical. A `HashMap` or `HashSet` iterates in
//! an order chosen by its random hasher, so rmp-serde gives equal sets different encodings, and an
//! artifact left alone by a step (but decoded and encoded again, as a join's base is, or every
//! task's state in process mode) would look changed: stored again, and worse, ignored by
//! `Inputs::merge_artifacts`. Here the entries of such a collection are written sorted by their
//! encoded bytes (see [`is_unordered_type`] for which types), which decodes to the same value.
//! Every other container keeps rmp-serde's bytes exactly, so artifacts stored by older versions
//! keep their hashes.
//!
//! Decoding is [`super::decoder`]'s, which reads what rmp-serde reads, behind the checks of
//! [`super::bounded`].

use std::any::type_name;
use std::cell::Cell;
use std::io::{self, Write};
use std::mem;

use rmp::encode::ValueWriteError;

use super::bounded::MAX_DEPTH;
use rmp_serde::encode::Error;
use serde::ser::{self, Impossible, Serialize};

/// Size of the first chunk buffer; small so that encoding a small value allocates little.
const FIRST_CHUNK: usize = 4 << 10;

/// The chunk buffer doubles at every flush up to this size: large enough that the sink's cost per
/// call does not matter, small enough to stay in the L2 cache next to the sink's own buffer.
/// (Between 32 KiB and 256 KiB the speed measured the same.)
const MAX_CHUNK: usize = 64 << 10;

/// Initial buffer of [`to_vec_named`], which grows like a `Vec` instead of flushing.
const FIRST_IN_MEMORY: usize = 256;

/// Serializes `value` into `sink`, producing the same bytes as `rmp_serde::encode::write_named`.
///
/// The sink receives the encoding in chunks of up to [`MAX_CHUNK`] bytes (more while an
/// unknown-length sequence or map is pending, see [`Serializer`]); it is not flushed.
///
/// # Errors
///
/// The value's `Serialize` impl failing (as rmp-serde reports it), or the sink's I/O error as
/// `Error::InvalidValueWrite(ValueWriteError::InvalidDataWrite(_))`.
pub fn write_named<W, T>(sink: &mut W, value: &T) -> Result<(), Error>
where
    W: Write + ?Sized,
    T: Serialize + ?Sized,
{
    let mut serializer = Serializer::new(sink);
    serializer.next_type = type_name::<T>();
    value.serialize(&mut serializer)?;
    serializer.finish()
}

/// Serializes `value` into a new `Vec`, producing the same bytes as `rmp_serde::to_vec_named`.
///
/// # Errors
///
/// The value's `Serialize` impl failing.
pub fn to_vec_named<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, Error> {
    let mut serializer = Serializer::<io::Sink>::in_memory();
    serializer.next_type = type_name::<T>();
    value.serialize(&mut serializer)?;
    Ok(serializer.into_vec())
}

/// A MessagePack serializer that writes what `rmp_serde::encode::write_named` writes, through a
/// chunk buffer.
///
/// Build one with [`Serializer::new`], serialize a value into `&mut serializer`, then call
/// [`Serializer::finish`] to hand the rest of the buffer to the sink.
///
/// A sequence or map whose length serde does not give up front (`serialize_seq(None)`, a struct
/// with a `#[serde(flatten)]` field, an iterator without an exact size) is written the way
/// rmp-serde writes it: its elements are kept in memory until the end, then written after a header
/// with their count. Here they are kept in the chunk buffer itself, which grows meanwhile, and the
/// header is inserted in front of them at the end.
pub struct Serializer<'w, W: Write + ?Sized> {
    /// `buf[..pos]` is encoded output not yet written to the sink. The whole buffer stays
    /// initialized (zeroed when it is allocated) so that writing into it needs no `unsafe`.
    buf: Vec<u8>,
    /// End of the encoded bytes in `buf`.
    pos: usize,
    /// Where full chunks go; `None` for [`to_vec_named`], where the buffer is the result.
    sink: Option<&'w mut W>,
    /// How many unknown-length sequences or maps are open. Their header must precede their
    /// elements, so while one is open nothing is flushed: the buffer grows instead.
    held: usize,
    /// The size the chunk buffer doubles up to: [`MAX_CHUNK`], smaller in tests that exercise
    /// the flushing paths.
    max_chunk: usize,
    /// `std::any::type_name` of the value about to be serialized, as last seen by a generic
    /// method (serde hands the type to those only): read, and reset, when that value opens a
    /// sequence or map, to tell a hash collection ([`is_unordered_type`]). Storing it is all a
    /// scalar pays; the name is only looked at for sequences and maps.
    ///
    /// Reset as well when an array or map ends, so that what a value leaves here is never
    /// taken for the type of the next one: the elements of `collect_seq`'s fast loop do not
    /// set it.
    next_type: &'static str,
    /// The last type name looked at, and whether it is a hash collection: a sequence of
    /// sequences asks about the same type over and over.
    checked_type: (&'static str, bool),
    /// How many arrays and maps (structs, sequences, variants with data) enclose the value being
    /// serialized: at most [`MAX_DEPTH`], so that whatever is stored can be decoded again.
    depth: u32,
}

impl<'w, W: Write + ?Sized> Serializer<'w, W> {
    /// A serializer writing to `sink` through a chunk buffer.
    pub fn new(sink: &'w mut W) -> Self {
        Self {
            buf: take_spare_chunk(),
            pos: 0,
            sink: Some(sink),
            held: 0,
            max_chunk: MAX_CHUNK,
            next_type: "",
            checked_type: ("", false),
            depth: 0,
        }
    }

    /// A serializer whose chunk starts at `first` bytes and doubles up to `max`: tiny chunks make
    /// every value take the slow paths.
    #[cfg(test)]
    fn with_chunks(sink: &'w mut W, first: usize, max: usize) -> Self {
        Self {
            buf: vec![0; first],
            pos: 0,
            sink: Some(sink),
            held: 0,
            max_chunk: max,
            next_type: "",
            checked_type: ("", false),
            depth: 0,
        }
    }

    /// A serializer that only accumulates into its buffer (see [`Serializer::into_vec`]).
    fn in_memory() -> Self {
        Self {
            buf: vec![0; FIRST_IN_MEMORY],
            pos: 0,
            sink: None,
            held: 0,
            max_chunk: MAX_CHUNK,
            next_type: "",
            checked_type: ("", false),
            depth: 0,
        }
    }

    /// Writes what is still buffered to the sink; call it once the value is serialized.
    ///
    /// # Errors
    ///
    /// The sink's I/O error.
    pub fn finish(mut self) -> Result<(), Error> {
        if let Some(sink) = self.sink.as_deref_mut() {
            sink.write_all(&self.buf[..self.pos]).map_err(io_error)?;
        }
        keep_spare_chunk(self.buf);
        Ok(())
    }

    /// The encoding, for a serializer made by [`Serializer::in_memory`].
    fn into_vec(mut self) -> Vec<u8> {
        self.buf.truncate(self.pos);
        self.buf
    }

    /// Appends one byte (a marker that is the whole value): one bounds check, one store.
    #[inline(always)]
    fn put_byte(&mut self, byte: u8) -> Result<(), Error> {
        let pos = self.pos;
        if let Some(dst) = self.buf.get_mut(pos) {
            *dst = byte;
            self.pos = pos + 1;
            Ok(())
        } else {
            self.put_value_slow(byte, 0, 0)
        }
    }

    /// Appends a marker and its `N` data bytes: the fast path of most values, one bounds check
    /// then two stores.
    ///
    /// The marker and the data are stored separately on purpose: building the value as one
    /// `[u8; 1 + N]` first makes LLVM assemble it on the stack and reload it with a wider load
    /// that spans two stores, which defeats store forwarding and cost several nanoseconds per
    /// `f64`.
    #[inline(always)]
    fn put_marked<const N: usize>(&mut self, marker: u8, data: [u8; N]) -> Result<(), Error> {
        const { assert!(N <= 8) };
        let pos = self.pos;
        if let Some(dst) = self.buf.get_mut(pos..pos + 1 + N)
            && let Some((first, rest)) = dst.split_first_mut()
        {
            *first = marker;
            rest.copy_from_slice(&data);
            self.pos = pos + 1 + N;
            Ok(())
        } else {
            // `N` is at most 8: the data, left-aligned in a `u64`, travels in a register.
            let mut payload = [0; 8];
            payload[..N].copy_from_slice(&data);
            self.put_value_slow(marker, u64::from_be_bytes(payload), N)
        }
    }

    /// Appends a string or byte payload.
    #[inline]
    fn put_slice(&mut self, data: &[u8]) -> Result<(), Error> {
        let pos = self.pos;
        if let Some(dst) = self.buf.get_mut(pos..pos + data.len()) {
            dst.copy_from_slice(data);
            self.pos = pos + data.len();
            Ok(())
        } else {
            self.put_slice_slow(data)
        }
    }

    /// [`Serializer::spill`] for a string or byte payload. Lends `self` rather than moving it
    /// (see [`Serializer::put_value_slow`]): payloads are copied with `memcpy` anyway, and this
    /// keeps the code at each call site small.
    #[cold]
    #[inline(never)]
    fn put_slice_slow(&mut self, data: &[u8]) -> Result<(), Error> {
        self.spill(data)
    }

    /// Appends a value that does not fit in the rest of the buffer: `marker`, then the first
    /// `len` bytes of `payload` (big-endian, so its top bytes).
    ///
    /// The serializer is moved into the out-of-line call and back rather than lent to it: once
    /// its address escapes into a call, even one on a cold path, LLVM must assume that the stores
    /// into the buffer may change `pos`, and reloads and stores `pos` around every element of a
    /// hot loop. Moved, it does not escape, and `pos` and the buffer stay in registers: that is
    /// most of the speed of a `Vec<f32>`. The value travels in registers, to keep the code at
    /// each of the many call sites small (which also keeps callers small enough to inline).
    #[inline(always)]
    fn put_value_slow(&mut self, marker: u8, payload: u64, len: usize) -> Result<(), Error> {
        let this = mem::replace(self, Self::placeholder());
        let (this, result) = this.spill_value(marker, payload, len);
        *self = this;
        result
    }

    /// What `put_value_slow` leaves in `self` during the call: no allocation, nothing to drop.
    const fn placeholder() -> Self {
        Self {
            buf: Vec::new(),
            pos: 0,
            sink: None,
            held: 0,
            max_chunk: 0,
            next_type: "",
            checked_type: ("", false),
            depth: 0,
        }
    }

    /// [`Serializer::spill`] of a value given as in `put_value_slow`, taking and giving back the
    /// serializer by value.
    #[cold]
    #[inline(never)]
    fn spill_value(mut self, marker: u8, payload: u64, len: usize) -> (Self, Result<(), Error>) {
        let mut bytes = [0; 9];
        bytes[0] = marker;
        bytes[1..].copy_from_slice(&payload.to_be_bytes());
        let result = self.spill(&bytes[..=len]);
        (self, result)
    }

    /// Appends `data` when it does not fit in the rest of the buffer: flushes the buffer (or, while
    /// it must be held, grows it), and writes a payload as large as a chunk directly to the sink.
    fn spill(&mut self, data: &[u8]) -> Result<(), Error> {
        match self.sink.as_deref_mut() {
            Some(sink) if self.held == 0 => {
                sink.write_all(&self.buf[..self.pos]).map_err(io_error)?;
                self.pos = 0;
                // Double the chunk up to its cap; a buffer grown while holding goes back to the cap.
                let chunk = (self.buf.len() * 2).min(self.max_chunk);
                if chunk != self.buf.len() {
                    // Empty: a fresh allocation is cheaper than `resize`, which copies.
                    self.buf = vec![0; chunk];
                }
                if data.len() >= self.buf.len() {
                    return sink.write_all(data).map_err(io_error);
                }
            }
            _ => {
                let needed = self.pos + data.len();
                if needed > self.buf.len() {
                    self.buf.resize(needed.max(self.buf.len() * 2), 0);
                }
            }
        }
        self.buf[self.pos..self.pos + data.len()].copy_from_slice(data);
        self.pos += data.len();
        Ok(())
    }

    /// `write_uint`: the smallest of positive fixint, u8, u16, u32, u64.
    #[inline(always)]
    fn put_uint(&mut self, v: u64) -> Result<(), Error> {
        // `| 1`: the bit length of 0 is that of 1 (both are fixints), and `ilog2` needs no zero
        // check.
        self.put_int(v, INT_FORMATS[(v | 1).ilog2() as usize])
    }

    /// `write_sint`: a non-negative value as `write_uint` writes it (so `5i64` and `5u64` encode
    /// alike), a negative one as the smallest of negative fixint, i8, i16, i32, i64.
    #[inline(always)]
    fn put_sint(&mut self, v: i64) -> Result<(), Error> {
        // The width follows from the bit length of `v` for a non-negative value, of `!v` for a
        // negative one, whose formats are the second half of the table.
        let sign = (v >> 63) as u64;
        let magnitude = v as u64 ^ sign;
        let index = (sign & 64) as usize | (magnitude | 1).ilog2() as usize;
        self.put_int(v as u64, INT_FORMATS[index])
    }

    /// `write_uint` for a `u8`: a positive fixint below 128, else u8. Two formats need no table.
    #[inline(always)]
    fn put_u8(&mut self, v: u8) -> Result<(), Error> {
        self.put_one_or_two(v < 128, 0xcc, v)
    }

    /// `write_sint` for an `i8`: a fixint from -32 up, else i8.
    #[inline(always)]
    fn put_i8(&mut self, v: i8) -> Result<(), Error> {
        self.put_one_or_two(v >= -32, 0xd0, v as u8)
    }

    /// Appends `byte` alone (a fixint) if `fixint`, else `marker` and `byte`, without a branch:
    /// both bytes are always stored, the position advances by one or two.
    #[inline(always)]
    fn put_one_or_two(&mut self, fixint: bool, marker: u8, byte: u8) -> Result<(), Error> {
        let first = if fixint { byte } else { marker };
        let len = 2 - usize::from(fixint);
        let pos = self.pos;
        if let Some(dst) = self
            .buf
            .get_mut(pos..)
            .and_then(<[u8]>::first_chunk_mut::<2>)
        {
            *dst = [first, byte];
            self.pos = pos + len;
            Ok(())
        } else {
            self.put_value_slow(first, u64::from(byte) << 56, len - 1)
        }
    }

    /// Appends an integer in the format chosen from [`INT_FORMATS`], without branching on the
    /// value: a sequence of integers of mixed widths would otherwise mispredict a branch on many
    /// values (rmp's cascade of comparisons costs several nanoseconds a value on such data).
    ///
    /// Always stores 9 bytes (the marker, then the 8 bytes of the value shifted so that its low
    /// `len` bytes come first, big-endian) and advances by `1 + len`; the bytes past that are
    /// scratch space that the next value overwrites, or that is never flushed.
    #[inline(always)]
    fn put_int(&mut self, raw: u64, format: IntFormat) -> Result<(), Error> {
        // A fixint is its own marker: `fixint_mask` keeps the value's low byte, `marker` is 0.
        let marker = format.marker | (raw as u8 & format.fixint_mask);
        let len = usize::from(format.len);
        let payload = (raw << format.shift).to_be_bytes();
        let pos = self.pos;
        if let Some(dst) = self
            .buf
            .get_mut(pos..)
            .and_then(<[u8]>::first_chunk_mut::<9>)
        {
            dst[0] = marker;
            dst[1..].copy_from_slice(&payload);
            self.pos = pos + 1 + len;
            Ok(())
        } else {
            self.put_value_slow(marker, raw << format.shift, len)
        }
    }

    /// A length header: `fix` (fixarray or fixmap, length < 16), else the 16- or 32-bit form.
    #[inline(always)]
    fn put_len(&mut self, len: u32, fix: u8, marker16: u8) -> Result<(), Error> {
        if len < 16 {
            self.put_byte(fix | len as u8)
        } else if let Ok(len) = u16::try_from(len) {
            self.put_marked(marker16, len.to_be_bytes())
        } else {
            self.put_marked(marker16 + 1, len.to_be_bytes())
        }
    }

    /// `write_array_len`.
    #[inline(always)]
    fn put_array_len(&mut self, len: u32) -> Result<(), Error> {
        self.put_len(len, 0x90, 0xdc)
    }

    /// `write_map_len`.
    #[inline(always)]
    fn put_map_len(&mut self, len: u32) -> Result<(), Error> {
        self.put_len(len, 0x80, 0xde)
    }

    /// `write_str`: fixstr, str8, str16 or str32, then the UTF-8 bytes.
    ///
    /// A short string (field and variant names, most map keys) in one step, inlined so that a
    /// field name's length is a constant and its copy a few moves; others out of line.
    #[inline(always)]
    fn put_str(&mut self, s: &str) -> Result<(), Error> {
        let bytes = s.as_bytes();
        let pos = self.pos;
        if bytes.len() < 32
            && let Some(dst) = self.buf.get_mut(pos..pos + 1 + bytes.len())
            && let Some((marker, rest)) = dst.split_first_mut()
        {
            *marker = 0xa0 | bytes.len() as u8;
            rest.copy_from_slice(bytes);
            self.pos = pos + 1 + bytes.len();
            return Ok(());
        }
        self.put_str_general(bytes)
    }

    /// [`Serializer::put_str`] for any length and any room left.
    #[inline(never)]
    fn put_str_general(&mut self, bytes: &[u8]) -> Result<(), Error> {
        // rmp writes the length as `u32` (`len as u32`, wrapping past 4 GiB) and the payload whole.
        let len = bytes.len() as u32;
        if len < 32 {
            self.put_byte(0xa0 | len as u8)?;
        } else if len < 256 {
            self.put_marked(0xd9, [len as u8])?;
        } else if let Ok(len) = u16::try_from(len) {
            self.put_marked(0xda, len.to_be_bytes())?;
        } else {
            self.put_marked(0xdb, len.to_be_bytes())?;
        }
        self.put_slice(bytes)
    }

    /// `write_bin`: bin8 (even when empty), bin16 or bin32, then the bytes.
    #[inline]
    fn put_bin(&mut self, bytes: &[u8]) -> Result<(), Error> {
        // As for strings, the length is truncated to `u32` like rmp does.
        let len = bytes.len() as u32;
        if len < 256 {
            self.put_marked(0xc4, [len as u8])?;
        } else if let Ok(len) = u16::try_from(len) {
            self.put_marked(0xc5, len.to_be_bytes())?;
        } else {
            self.put_marked(0xc6, len.to_be_bytes())?;
        }
        self.put_slice(bytes)
    }

    /// `write_ext_meta` and the payload: fixext for 1/2/4/8/16 bytes, else ext8/16/32.
    fn put_ext(&mut self, tag: i8, data: &[u8]) -> Result<(), Error> {
        let len = data.len() as u32;
        let tag = tag as u8;
        match len {
            1 => self.put_marked(0xd4, [tag])?,
            2 => self.put_marked(0xd5, [tag])?,
            4 => self.put_marked(0xd6, [tag])?,
            8 => self.put_marked(0xd7, [tag])?,
            16 => self.put_marked(0xd8, [tag])?,
            0..=255 => self.put_marked(0xc7, [len as u8, tag])?,
            256..=65535 => {
                let [a, b] = (len as u16).to_be_bytes();
                self.put_marked(0xc8, [a, b, tag])?;
            }
            _ => {
                let [a, b, c, d] = len.to_be_bytes();
                self.put_marked(0xc9, [a, b, c, d, tag])?;
            }
        }
        self.put_slice(data)
    }

    /// Whether the value now opening a sequence or map is a hash collection, whose entries are
    /// to be sorted. Resets the type, so that a sequence or map nested in it without passing a
    /// generic method (which would name its own type) is not taken for one.
    #[inline]
    fn take_unordered(&mut self) -> bool {
        let name = mem::take(&mut self.next_type);
        self.is_unordered(name)
    }

    /// [`is_unordered_type`], remembering the last answer.
    #[inline]
    fn is_unordered(&mut self, name: &'static str) -> bool {
        if name.is_empty() {
            return false;
        }
        let (checked, unordered) = self.checked_type;
        if std::ptr::eq(name, checked) {
            return unordered;
        }
        self.check_type(name)
    }

    /// [`Serializer::is_unordered`] for a type not asked about just before.
    #[inline(never)]
    fn check_type(&mut self, name: &'static str) -> bool {
        let unordered = is_unordered_type(name);
        self.checked_type = (name, unordered);
        unordered
    }

    /// Enters one more array or map, if a stored value may nest that deep.
    #[inline]
    fn enter(&mut self) -> Result<(), Error> {
        if self.depth as usize >= MAX_DEPTH {
            return Err(too_deep());
        }
        self.depth += 1;
        Ok(())
    }

    /// Leaves `levels` arrays or maps. Saturating: while unwinding from a panic in
    /// `collect_seq`'s loop, the serializer is a placeholder.
    #[inline]
    fn leave(&mut self, levels: u32) {
        self.depth = self.depth.saturating_sub(levels);
        self.next_type = "";
    }

    /// Starts a sequence or map: its header now if its length is known, else at its end. The
    /// entries of a hash collection are held until its end, to be sorted.
    fn open(
        &mut self,
        len: Option<usize>,
        map: bool,
        unordered: bool,
    ) -> Result<SeqCompound<'_, 'w, W>, Error> {
        self.enter()?;
        if let Some(len) = len {
            // rmp-serde casts the length with `as u32` too.
            let len = len as u32;
            if map {
                self.put_map_len(len)?;
            } else {
                self.put_array_len(len)?;
            }
            if !unordered {
                return Ok(SeqCompound {
                    ser: self,
                    pending: None,
                });
            }
        }
        self.held += 1;
        let pending = Pending {
            start: self.pos,
            count: 0,
            map,
            header: len.is_none(),
            entries: unordered.then(Vec::new),
        };
        Ok(SeqCompound {
            ser: self,
            pending: Some(pending),
        })
    }

    /// Ends a held sequence or map: sorts the entries of a hash collection, and inserts the
    /// header of an unknown-length one before its elements.
    fn close(&mut self, mut pending: Pending) {
        if let Some(entries) = pending.entries.take() {
            self.sort_entries(&entries);
        }
        if pending.header {
            self.insert_header(&pending);
        }
        self.held -= 1;
    }

    /// Rewrites the entries of a hash collection, which start at `entries` and end at `pos`,
    /// in the order of their encoded bytes. Encodings are prefix-free, so for a map this is the
    /// order of the keys' encodings (then of the values', should two keys encode alike).
    fn sort_entries(&mut self, entries: &[usize]) {
        let [first, ..] = *entries else { return };
        if entries.len() < 2 {
            return;
        }
        let end = self.pos;
        let buf = &self.buf;
        // Each entry with its first 16 bytes as a number (zero-padded): most comparisons are
        // decided there, without following the range into the buffer.
        let mut ranges: Vec<(u128, usize, usize)> = entries
            .iter()
            .zip(entries[1..].iter().chain([&end]))
            .map(|(&start, &end)| {
                let mut prefix = [0; 16];
                let len = (end - start).min(16);
                prefix[..len].copy_from_slice(&buf[start..start + len]);
                (u128::from_be_bytes(prefix), start, end)
            })
            .collect();
        ranges.sort_unstable_by(|a, b| {
            a.0.cmp(&b.0)
                .then_with(|| buf[a.1..a.2].cmp(&buf[b.1..b.2]))
        });
        let mut sorted = Vec::with_capacity(end - first);
        for (_, start, end) in ranges {
            sorted.extend_from_slice(&buf[start..end]);
        }
        self.buf[first..end].copy_from_slice(&sorted);
    }

    /// Inserts the header of an unknown-length sequence or map before its elements.
    fn insert_header(&mut self, pending: &Pending) {
        // rmp-serde counts map keys and values alike and writes half of that.
        let (count, fix, marker16) = if pending.map {
            (pending.count / 2, 0x80, 0xde)
        } else {
            (pending.count, 0x90, 0xdc)
        };
        let mut header = [0u8; 5];
        let header_len = if count < 16 {
            header[0] = fix | count as u8;
            1
        } else if let Ok(count) = u16::try_from(count) {
            header[0] = marker16;
            header[1..3].copy_from_slice(&count.to_be_bytes());
            3
        } else {
            header[0] = marker16 + 1;
            header[1..5].copy_from_slice(&count.to_be_bytes());
            5
        };
        let end = self.pos + header_len;
        if end > self.buf.len() {
            self.buf.resize(end.max(self.buf.len() * 2), 0);
        }
        self.buf
            .copy_within(pending.start..self.pos, pending.start + header_len);
        self.buf[pending.start..pending.start + header_len].copy_from_slice(&header[..header_len]);
        self.pos = end;
    }
}

/// How an integer is written: a marker and `len` big-endian bytes of payload.
///
/// Four bytes, aligned as a `u32`, so that fetching one from [`INT_FORMATS`] is one load.
#[derive(Clone, Copy)]
#[repr(C, align(4))]
struct IntFormat {
    /// The marker, 0 for a fixint (whose marker byte is the value itself).
    marker: u8,
    /// 0xff for a fixint, else 0: which of the value's bits go into the marker byte.
    fixint_mask: u8,
    /// Payload bytes: 0, 1, 2, 4 or 8.
    len: u8,
    /// `64 - 8 * len` (modulo 64): the shift that brings the payload to the top of a `u64`.
    shift: u8,
}

impl IntFormat {
    const fn new(marker: u8, len: u8) -> Self {
        Self {
            marker,
            fixint_mask: if marker == 0 { 0xff } else { 0 },
            len,
            shift: (64 - 8 * len) % 64,
        }
    }
}

/// The formats rmp's `write_uint` and `write_sint` choose, indexed by the integer's bit length
/// minus one (`ilog2(x | 1)`): of `v` for a non-negative value (entries 0..64), of `!v` for a
/// negative one (entries 64..128).
static INT_FORMATS: [IntFormat; 128] = int_formats();

const fn int_formats() -> [IntFormat; 128] {
    let mut formats = [IntFormat::new(0, 0); 128];
    let mut log = 0;
    while log < 64 {
        formats[log] = match log {
            0..=6 => IntFormat::new(0, 0),      // positive fixint: v < 128
            7 => IntFormat::new(0xcc, 1),       // u8: v < 256
            8..=15 => IntFormat::new(0xcd, 2),  // u16: v < 65536
            16..=31 => IntFormat::new(0xce, 4), // u32: v < 2^32
            _ => IntFormat::new(0xcf, 8),       // u64
        };
        formats[64 + log] = match log {
            0..=4 => IntFormat::new(0, 0), // negative fixint: v >= -32 (!v <= 31)
            5..=6 => IntFormat::new(0xd0, 1), // i8: v >= -128
            7..=14 => IntFormat::new(0xd1, 2), // i16: v >= -32768
            15..=30 => IntFormat::new(0xd2, 4), // i32: v >= -2^31
            _ => IntFormat::new(0xd3, 8),  // i64
        };
        log += 1;
    }
    formats
}

/// Whether a value of the type `std::any::type_name` spells `name` is a hash collection: a map
/// or set whose iteration order depends on its hasher, not on its value, so that its entries are
/// written sorted.
///
/// These are the types whose last path segment ends with `HashMap` or `HashSet`: std's, hashbrown's,
/// im's, and wrappers such as ahash's `AHashMap` (an alias like rustc-hash's `FxHashMap` is std's
/// type). Excepted are those that keep their insertion order (`LinkedHashMap`, `OrderedHashMap`,
/// `IndexedHashMap`…), whose order is part of their value. The type may be behind references and
/// wrappers whose `Serialize` forwards to their content (`Box`, `Rc`, `Arc`, `Cow`, `RefCell`,
/// `Mutex`, `RwLock`), since those reach the serializer without naming the inner type.
///
/// A hash collection this rule misses (a type of another name that serializes a `HashMap`'s
/// iteration) keeps rmp-serde's encoding; `Inputs::merge_artifacts` still compares maps
/// regardless of their order.
pub(crate) fn is_unordered_type(mut name: &str) -> bool {
    /// Types whose `Serialize` is their content's.
    const FORWARDING: [&str; 7] = ["Box", "Rc", "Arc", "Cow", "RefCell", "Mutex", "RwLock"];
    /// Prefixes of hash collections that keep insertion order.
    const ORDERED: [&str; 4] = ["Linked", "Ordered", "Index", "Insertion"];
    loop {
        name = name.trim_start_matches('&').trim_start_matches("mut ");
        // The lifetime parameters of a wrapper such as `Cow<'_, T>`.
        while let Some(rest) = name.strip_prefix('\'') {
            name = rest.split_once(", ").map_or("", |(_, rest)| rest);
        }
        let (path, args) = match name.split_once('<') {
            Some((path, args)) => (path, args.strip_suffix('>').unwrap_or(args)),
            None => (name, ""),
        };
        if !path
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b':')
        {
            return false; // a tuple, array, slice, function or trait object
        }
        let last = path.rsplit("::").next().unwrap_or(path);
        if last.ends_with("HashMap") || last.ends_with("HashSet") {
            return !ORDERED.iter().any(|prefix| last.starts_with(prefix));
        }
        if args.is_empty() || !FORWARDING.contains(&last) {
            return false;
        }
        name = args;
    }
}

thread_local! {
    /// The chunk buffer of the last serializer that finished on this thread, for the next one:
    /// without it, encoding a small value cost a (zeroed) allocation, ten times the encoding.
    static SPARE_CHUNK: Cell<Vec<u8>> = const { Cell::new(Vec::new()) };
}

/// A chunk buffer for a new serializer: the spare one if there is one (its contents are stale
/// but initialized, which is all the serializer needs), else a new one.
#[inline]
fn take_spare_chunk() -> Vec<u8> {
    let spare = SPARE_CHUNK.try_with(Cell::take).unwrap_or_default();
    if spare.is_empty() {
        vec![0; FIRST_CHUNK]
    } else {
        spare
    }
}

/// Keeps `chunk` for the next serializer on this thread, unless it grew past a chunk (holding
/// an unknown-length sequence): that memory is given back.
#[inline]
fn keep_spare_chunk(chunk: Vec<u8>) {
    if chunk.len() <= MAX_CHUNK {
        // Fails only while the thread is being torn down; the chunk is then simply freed.
        let _ = SPARE_CHUNK.try_with(|spare| spare.set(chunk));
    }
}

/// The error for a value nested deeper than [`MAX_DEPTH`], which could be stored but never read.
#[cold]
fn too_deep() -> Error {
    Error::Syntax(format!(
        "the value nests more than {MAX_DEPTH} levels of structs, sequences, maps and enum \
         variants; a stored value may nest at most that deep, so that it can be decoded again"
    ))
}

/// Maps an I/O error of the sink as rmp-serde reports a failed data write.
#[cold]
fn io_error(error: io::Error) -> Error {
    Error::InvalidValueWrite(ValueWriteError::InvalidDataWrite(error))
}

impl<'a, 'w, W: Write + ?Sized> ser::Serializer for &'a mut Serializer<'w, W> {
    type Ok = ();
    type Error = Error;
    type SerializeSeq = SeqCompound<'a, 'w, W>;
    type SerializeTuple = Compound<'a, 'w, W>;
    type SerializeTupleStruct = Compound<'a, 'w, W>;
    type SerializeTupleVariant = Compound<'a, 'w, W>;
    type SerializeMap = SeqCompound<'a, 'w, W>;
    type SerializeStruct = Compound<'a, 'w, W>;
    type SerializeStructVariant = Compound<'a, 'w, W>;

    fn is_human_readable(&self) -> bool {
        false
    }

    #[inline]
    fn serialize_bool(self, v: bool) -> Result<(), Error> {
        self.put_byte(if v { 0xc3 } else { 0xc2 })
    }

    #[inline]
    fn serialize_i8(self, v: i8) -> Result<(), Error> {
        self.put_i8(v)
    }

    #[inline]
    fn serialize_i16(self, v: i16) -> Result<(), Error> {
        self.put_sint(v.into())
    }

    #[inline]
    fn serialize_i32(self, v: i32) -> Result<(), Error> {
        self.put_sint(v.into())
    }

    #[inline]
    fn serialize_i64(self, v: i64) -> Result<(), Error> {
        self.put_sint(v)
    }

    /// Like rmp-serde: the 16 big-endian bytes as `bin`.
    fn serialize_i128(self, v: i128) -> Result<(), Error> {
        self.put_bin(&v.to_be_bytes())
    }

    #[inline]
    fn serialize_u8(self, v: u8) -> Result<(), Error> {
        self.put_u8(v)
    }

    #[inline]
    fn serialize_u16(self, v: u16) -> Result<(), Error> {
        self.put_uint(v.into())
    }

    #[inline]
    fn serialize_u32(self, v: u32) -> Result<(), Error> {
        self.put_uint(v.into())
    }

    #[inline]
    fn serialize_u64(self, v: u64) -> Result<(), Error> {
        self.put_uint(v)
    }

    /// Like rmp-serde: the 16 big-endian bytes as `bin`.
    fn serialize_u128(self, v: u128) -> Result<(), Error> {
        self.put_bin(&v.to_be_bytes())
    }

    /// Always float32 (rmp never narrows or widens a float), bits as they are (NaN payloads too).
    #[inline]
    fn serialize_f32(self, v: f32) -> Result<(), Error> {
        self.put_marked(0xca, v.to_be_bytes())
    }

    #[inline]
    fn serialize_f64(self, v: f64) -> Result<(), Error> {
        self.put_marked(0xcb, v.to_be_bytes())
    }

    /// As a one-character string.
    fn serialize_char(self, v: char) -> Result<(), Error> {
        self.put_str(v.encode_utf8(&mut [0; 4]))
    }

    #[inline]
    fn serialize_str(self, v: &str) -> Result<(), Error> {
        self.put_str(v)
    }

    #[inline]
    fn serialize_bytes(self, v: &[u8]) -> Result<(), Error> {
        self.put_bin(v)
    }

    /// `None` is nil, like `()`.
    fn serialize_none(self) -> Result<(), Error> {
        self.put_byte(0xc0)
    }

    /// `Some(v)` is `v` itself.
    #[inline]
    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<(), Error> {
        self.next_type = type_name::<T>();
        value.serialize(self)
    }

    fn serialize_unit(self) -> Result<(), Error> {
        self.put_byte(0xc0)
    }

    /// An empty array (not nil, unlike `()`).
    fn serialize_unit_struct(self, _name: &'static str) -> Result<(), Error> {
        self.put_byte(0x90)
    }

    /// The variant's name as a string.
    fn serialize_unit_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
    ) -> Result<(), Error> {
        self.put_str(variant)
    }

    /// The inner value, except for rmp's ext marker type `_ExtStruct((i8, bytes))`, which is
    /// written as a MessagePack ext.
    #[inline]
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        name: &'static str,
        value: &T,
    ) -> Result<(), Error> {
        if name == rmp_serde::MSGPACK_EXT_STRUCT_NAME {
            let mut ext = ExtSerializer {
                fields: ExtFieldSerializer {
                    ser: self,
                    tag: None,
                    finished: false,
                },
                tuple_received: false,
            };
            value.serialize(&mut ext)?;
            return ext.end();
        }
        self.next_type = type_name::<T>();
        value.serialize(self)
    }

    /// A one-entry map from the variant's name to the value.
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        value: &T,
    ) -> Result<(), Error> {
        self.enter()?;
        self.put_byte(0x81)?;
        self.put_str(variant)?;
        self.next_type = type_name::<T>();
        let result = value.serialize(&mut *self);
        self.leave(1);
        result
    }

    fn serialize_seq(self, len: Option<usize>) -> Result<Self::SerializeSeq, Error> {
        let unordered = self.take_unordered();
        self.open(len, false, unordered)
    }

    /// An array; with `BytesMode::Normal` rmp-serde does not turn `[u8; N]` into `bin`.
    fn serialize_tuple(self, len: usize) -> Result<Self::SerializeTuple, Error> {
        self.enter()?;
        self.put_array_len(len as u32)?;
        Ok(Compound::new(self, 1))
    }

    fn serialize_tuple_struct(
        self,
        _name: &'static str,
        len: usize,
    ) -> Result<Self::SerializeTupleStruct, Error> {
        self.enter()?;
        self.put_array_len(len as u32)?;
        Ok(Compound::new(self, 1))
    }

    /// A one-entry map from the variant's name to an array of the fields.
    fn serialize_tuple_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<Self::SerializeTupleVariant, Error> {
        self.enter()?;
        self.put_byte(0x81)?;
        self.put_str(variant)?;
        self.enter()?;
        self.put_array_len(len as u32)?;
        Ok(Compound::new(self, 2))
    }

    fn serialize_map(self, len: Option<usize>) -> Result<Self::SerializeMap, Error> {
        let unordered = self.take_unordered();
        self.open(len, true, unordered)
    }

    /// A map from field names to values (`len` is the number of fields serde will write, which
    /// already leaves out `skip_serializing_if` fields).
    #[inline(always)]
    fn serialize_struct(
        self,
        _name: &'static str,
        len: usize,
    ) -> Result<Self::SerializeStruct, Error> {
        self.enter()?;
        self.put_map_len(len as u32)?;
        Ok(Compound::new(self, 1))
    }

    /// A one-entry map from the variant's name to a map of the fields.
    fn serialize_struct_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<Self::SerializeStructVariant, Error> {
        self.enter()?;
        self.put_byte(0x81)?;
        self.put_str(variant)?;
        self.enter()?;
        self.put_map_len(len as u32)?;
        Ok(Compound::new(self, 2))
    }

    /// The path of `Vec`, slices, sets and the like. Same length rule as rmp-serde (an exact size
    /// hint that fits a `u32`, else an unknown-length sequence); with a known length the elements
    /// are serialized in a plain loop, which is the hot path of large numeric fields.
    #[inline]
    fn collect_seq<I>(self, iter: I) -> Result<(), Error>
    where
        I: IntoIterator,
        I::Item: Serialize,
    {
        let mut iter = iter.into_iter();
        let exact = match iter.size_hint() {
            (lo, Some(hi)) if lo == hi && u32::try_from(lo).is_ok() => Some(lo),
            _ => None,
        };
        let unordered = self.take_unordered();
        match exact {
            // Elements that are hash collections need their type named: see below.
            Some(lo) if !unordered && !self.is_unordered(type_name::<I::Item>()) => {
                self.enter()?;
                self.put_array_len(lo as u32)?;
                // The loop runs on a local serializer, moved out of `*self` and back: LLVM keeps a
                // local's `pos` and buffer in registers only if its address never escapes, which
                // `self`'s may do anywhere in the caller (it does in the unknown-length branch
                // below). For a `Vec<f32>` that is the difference between ~1 and ~5 ns a value.
                let mut local = mem::replace(self, Serializer::placeholder());
                let result = iter.try_for_each(|item| item.serialize(&mut local));
                *self = local;
                self.leave(1);
                result
            }
            _ => collect_seq_slowly(self, iter, exact, unordered),
        }
    }
}

/// `collect_seq` for a sequence of unknown length, a hash set, or elements that are hash
/// collections: through `serialize_element`, which names each element's type. Out of line, so
/// that the fast path stays small enough to be inlined where it is used.
#[inline(never)]
fn collect_seq_slowly<W, I>(
    ser: &mut Serializer<'_, W>,
    iter: I,
    exact: Option<usize>,
    unordered: bool,
) -> Result<(), Error>
where
    W: Write + ?Sized,
    I: Iterator,
    I::Item: Serialize,
{
    let mut seq = ser.open(exact, false, unordered)?;
    for item in iter {
        ser::SerializeSeq::serialize_element(&mut seq, &item)?;
    }
    ser::SerializeSeq::end(seq)
}

/// A sequence or map held in the buffer until its end: one of unknown length (its header comes
/// last), or a hash collection (its entries are sorted at the end). Where its elements start in
/// the buffer and how many `serialize_element`/`serialize_key`/`serialize_value` calls it has seen.
struct Pending {
    start: usize,
    /// `u32` and wrapping, like rmp-serde's counter (in release builds).
    count: u32,
    map: bool,
    /// The header is still to be written (unknown length).
    header: bool,
    /// For a hash collection, where each entry (element, or key and value) starts.
    entries: Option<Vec<usize>>,
}

/// A sequence or map in progress.
pub struct SeqCompound<'a, 'w, W: Write + ?Sized> {
    ser: &'a mut Serializer<'w, W>,
    /// `Some` while the header is still to be written (unknown length).
    pending: Option<Pending>,
}

impl<W: Write + ?Sized> SeqCompound<'_, '_, W> {
    /// Serializes an element, or a map's key (`starts_entry`) or value.
    #[inline]
    fn element<T: Serialize + ?Sized>(
        &mut self,
        value: &T,
        starts_entry: bool,
    ) -> Result<(), Error> {
        if starts_entry
            && let Some(Pending {
                entries: Some(entries),
                ..
            }) = &mut self.pending
        {
            entries.push(self.ser.pos);
        }
        self.ser.next_type = type_name::<T>();
        value.serialize(&mut *self.ser)?;
        if let Some(pending) = &mut self.pending {
            pending.count = pending.count.wrapping_add(1);
        }
        Ok(())
    }

    fn end(mut self) -> Result<(), Error> {
        if let Some(pending) = self.pending.take() {
            self.ser.close(pending);
        }
        Ok(())
    }
}

impl<W: Write + ?Sized> Drop for SeqCompound<'_, '_, W> {
    /// An unknown-length compound dropped without `end` (a `Serialize` impl that swallowed an
    /// element's error) loses its elements, as rmp-serde's separate buffer would; a hash
    /// collection of known length keeps them unsorted after its header, as rmp-serde would have
    /// written them.
    fn drop(&mut self) {
        // `held == 0` only while unwinding from a panic in `collect_seq`'s loop, which left a
        // placeholder in the serializer: then there is nothing to restore.
        if let Some(pending) = self.pending.take()
            && self.ser.held > 0
        {
            if pending.header {
                self.ser.pos = pending.start;
            }
            self.ser.held -= 1;
        }
        self.ser.leave(1);
    }
}

impl<W: Write + ?Sized> ser::SerializeSeq for SeqCompound<'_, '_, W> {
    type Ok = ();
    type Error = Error;

    #[inline]
    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Error> {
        self.element(value, true)
    }

    fn end(self) -> Result<(), Error> {
        SeqCompound::end(self)
    }
}

impl<W: Write + ?Sized> ser::SerializeMap for SeqCompound<'_, '_, W> {
    type Ok = ();
    type Error = Error;

    #[inline]
    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<(), Error> {
        self.element(key, true)
    }

    #[inline]
    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Error> {
        self.element(value, false)
    }

    fn end(self) -> Result<(), Error> {
        SeqCompound::end(self)
    }
}

/// A tuple, struct or variant in progress; its header is already written.
pub struct Compound<'a, 'w, W: Write + ?Sized> {
    ser: &'a mut Serializer<'w, W>,
    /// The levels of nesting it opened: 2 for a variant (a map around an array or map), else 1.
    levels: u32,
}

impl<'a, 'w, W: Write + ?Sized> Compound<'a, 'w, W> {
    #[inline]
    fn new(ser: &'a mut Serializer<'w, W>, levels: u32) -> Self {
        Self { ser, levels }
    }
}

impl<W: Write + ?Sized> Drop for Compound<'_, '_, W> {
    /// Leaves the levels it entered, at its end or when abandoned.
    #[inline]
    fn drop(&mut self) {
        self.ser.leave(self.levels);
    }
}

/// The serde traits of a sequence-like compound: each element written as it comes, nothing at
/// the end (the length was written first).
macro_rules! elements {
    ($($trait:ident :: $method:ident;)*) => {$(
        impl<W: Write + ?Sized> ser::$trait for Compound<'_, '_, W> {
            type Ok = ();
            type Error = Error;

            #[inline]
            fn $method<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Error> {
                self.ser.next_type = type_name::<T>();
                value.serialize(&mut *self.ser)
            }

            fn end(self) -> Result<(), Error> {
                Ok(())
            }
        }
    )*};
}

elements! {
    SerializeTuple::serialize_element;
    SerializeTupleStruct::serialize_field;
    SerializeTupleVariant::serialize_field;
}

/// The same for struct-like compounds, whose fields are written as a map: name, then value.
macro_rules! named_fields {
    ($($trait:ident),*) => {$(
        impl<W: Write + ?Sized> ser::$trait for Compound<'_, '_, W> {
            type Ok = ();
            type Error = Error;

            #[inline(always)]
            fn serialize_field<T: Serialize + ?Sized>(
                &mut self,
                key: &'static str,
                value: &T,
            ) -> Result<(), Error> {
                self.ser.put_str(key)?;
                self.ser.next_type = type_name::<T>();
                value.serialize(&mut *self.ser)
            }

            fn end(self) -> Result<(), Error> {
                Ok(())
            }
        }
    )*};
}

named_fields!(SerializeStruct, SerializeStructVariant);

/// Methods of the two ext serializers that reject their input, with rmp-serde's message.
///
/// They implement exactly the methods rmp-serde's `ExtSerializer`/`ExtFieldSerializer` implement;
/// the others keep serde's defaults as there (`serialize_i128` fails with serde's message,
/// `is_human_readable` is `true`), so that even a value that fails fails the same way.
macro_rules! reject {
    ($msg:literal; $($method:ident($($arg:ty),*) -> $ret:ty;)*) => {
        $(
            fn $method(self, $(_: $arg),*) -> Result<$ret, Error> {
                Err(Error::InvalidDataModel($msg))
            }
        )*
    };
}

/// Same for the generic methods.
macro_rules! reject_generic {
    ($msg:literal) => {
        fn serialize_newtype_struct<T: Serialize + ?Sized>(
            self,
            _name: &'static str,
            _value: &T,
        ) -> Result<(), Error> {
            Err(Error::InvalidDataModel($msg))
        }

        fn serialize_newtype_variant<T: Serialize + ?Sized>(
            self,
            _name: &'static str,
            _index: u32,
            _variant: &'static str,
            _value: &T,
        ) -> Result<(), Error> {
            Err(Error::InvalidDataModel($msg))
        }

        fn serialize_some<T: Serialize + ?Sized>(self, _value: &T) -> Result<(), Error> {
            Err(Error::InvalidDataModel($msg))
        }
    };
}

/// Serializes the value of an `_ExtStruct` newtype, which must be a tuple `(i8, bytes)`.
pub struct ExtSerializer<'a, 'w, W: Write + ?Sized> {
    fields: ExtFieldSerializer<'a, 'w, W>,
    tuple_received: bool,
}

impl<W: Write + ?Sized> ExtSerializer<'_, '_, W> {
    fn end(self) -> Result<(), Error> {
        if !self.tuple_received {
            Err(Error::InvalidDataModel("expected tuple"))
        } else if !self.fields.finished {
            Err(Error::InvalidDataModel("expected i8 and bytes"))
        } else {
            Ok(())
        }
    }
}

/// Serializes the fields of an ext tuple: the `i8` type tag, then the payload, which writes the
/// ext. Like rmp-serde, a further `i8` and bytes would write a second ext.
pub struct ExtFieldSerializer<'a, 'w, W: Write + ?Sized> {
    ser: &'a mut Serializer<'w, W>,
    tag: Option<i8>,
    finished: bool,
}

impl<W: Write + ?Sized> ser::Serializer for &mut ExtSerializer<'_, '_, W> {
    type Ok = ();
    type Error = Error;
    type SerializeSeq = Impossible<(), Error>;
    type SerializeTuple = Self;
    type SerializeTupleStruct = Impossible<(), Error>;
    type SerializeTupleVariant = Impossible<(), Error>;
    type SerializeMap = Impossible<(), Error>;
    type SerializeStruct = Impossible<(), Error>;
    type SerializeStructVariant = Impossible<(), Error>;

    reject! { "expected tuple";
        serialize_bool(bool) -> ();
        serialize_i8(i8) -> ();
        serialize_i16(i16) -> ();
        serialize_i32(i32) -> ();
        serialize_i64(i64) -> ();
        serialize_u8(u8) -> ();
        serialize_u16(u16) -> ();
        serialize_u32(u32) -> ();
        serialize_u64(u64) -> ();
        serialize_f32(f32) -> ();
        serialize_f64(f64) -> ();
        serialize_char(char) -> ();
        serialize_str(&str) -> ();
        serialize_bytes(&[u8]) -> ();
        serialize_none() -> ();
        serialize_unit() -> ();
        serialize_unit_struct(&'static str) -> ();
        serialize_unit_variant(&'static str, u32, &'static str) -> ();
        serialize_seq(Option<usize>) -> Impossible<(), Error>;
        serialize_tuple_struct(&'static str, usize) -> Impossible<(), Error>;
        serialize_tuple_variant(&'static str, u32, &'static str, usize) -> Impossible<(), Error>;
        serialize_map(Option<usize>) -> Impossible<(), Error>;
        serialize_struct(&'static str, usize) -> Impossible<(), Error>;
        serialize_struct_variant(&'static str, u32, &'static str, usize) -> Impossible<(), Error>;
    }
    reject_generic!("expected tuple");

    fn serialize_tuple(self, _len: usize) -> Result<Self, Error> {
        // rmp-serde does not check the length either.
        self.tuple_received = true;
        Ok(self)
    }
}

impl<W: Write + ?Sized> ser::SerializeTuple for &mut ExtSerializer<'_, '_, W> {
    type Ok = ();
    type Error = Error;

    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Error> {
        value.serialize(&mut self.fields)
    }

    fn end(self) -> Result<(), Error> {
        Ok(())
    }
}

impl<W: Write + ?Sized> ser::Serializer for &mut ExtFieldSerializer<'_, '_, W> {
    type Ok = ();
    type Error = Error;
    type SerializeSeq = Impossible<(), Error>;
    type SerializeTuple = Impossible<(), Error>;
    type SerializeTupleStruct = Impossible<(), Error>;
    type SerializeTupleVariant = Impossible<(), Error>;
    type SerializeMap = Impossible<(), Error>;
    type SerializeStruct = Impossible<(), Error>;
    type SerializeStructVariant = Impossible<(), Error>;

    fn serialize_i8(self, v: i8) -> Result<(), Error> {
        if self.tag.is_none() {
            self.tag = Some(v);
            Ok(())
        } else {
            Err(Error::InvalidDataModel("expected i8 and bytes"))
        }
    }

    fn serialize_bytes(self, v: &[u8]) -> Result<(), Error> {
        let Some(tag) = self.tag.take() else {
            return Err(Error::InvalidDataModel("expected i8 and bytes"));
        };
        self.ser.put_ext(tag, v)?;
        self.finished = true;
        Ok(())
    }

    reject! { "expected i8 and bytes";
        serialize_bool(bool) -> ();
        serialize_i16(i16) -> ();
        serialize_i32(i32) -> ();
        serialize_i64(i64) -> ();
        serialize_u8(u8) -> ();
        serialize_u16(u16) -> ();
        serialize_u32(u32) -> ();
        serialize_u64(u64) -> ();
        serialize_f32(f32) -> ();
        serialize_f64(f64) -> ();
        serialize_char(char) -> ();
        serialize_str(&str) -> ();
        serialize_none() -> ();
        serialize_unit() -> ();
        serialize_unit_struct(&'static str) -> ();
        serialize_unit_variant(&'static str, u32, &'static str) -> ();
        serialize_seq(Option<usize>) -> Impossible<(), Error>;
        serialize_tuple(usize) -> Impossible<(), Error>;
        serialize_tuple_struct(&'static str, usize) -> Impossible<(), Error>;
        serialize_tuple_variant(&'static str, u32, &'static str, usize) -> Impossible<(), Error>;
        serialize_map(Option<usize>) -> Impossible<(), Error>;
        serialize_struct(&'static str, usize) -> Impossible<(), Error>;
        serialize_struct_variant(&'static str, u32, &'static str, usize) -> Impossible<(), Error>;
    }
    reject_generic!("expected i8 and bytes");
}

#[cfg(test)]
mod canonical_tests;
#[cfg(test)]
mod tests;
