//! The checks every stored MessagePack value passes before it is decoded.
//!
//! Decoding was rmp-serde's (it is now the crate's own `state::decoder`, which reads exactly what
//! rmp-serde reads and keeps these bounds itself; the check stays in front of it for values read whole,
//! where it also names the byte at fault), which trusts its input in two ways a damaged or
//! crafted blob can exploit. It recurses once per level of nesting and counts only some of the levels towards its
//! depth limit (not an enum's variant, which is a one-entry map: a recursive enum a million levels
//! deep overflows the stack, and that aborts the whole process). And it passes a length header
//! on as a size hint, which a `Deserialize` impl may allocate up front (`Vec::with_capacity`): a
//! five-byte header can claim four billion elements.
//!
//! [`check`] walks the encoding once, iteratively, before the decoder sees it: the bytes must hold
//! exactly one well-formed value, nested at most [`MAX_DEPTH`] arrays and maps deep, where every
//! length fits in the bytes that remain (an element takes at least a byte). A value that passes
//! can only make the decoder recurse as deep as its nesting (plus the type's own wrappers), and no
//! size hint exceeds the blob's length.
//!
//! No crate offers this walk: rmp reads one value at a time and rmpv builds the whole value in
//! memory. It costs well under a nanosecond per element on a numeric array (runs of equal
//! markers are skipped in a tight loop), against several for decoding that element.

use rmp_serde::decode::Error;

/// The deepest nesting of arrays and maps a stored value may have.
///
/// Every level of an artifact's Rust type that is a struct, a sequence, a map or an enum variant
/// with data is one level of nesting; a recursive type (a tree of `Box`ed nodes) adds one or two
/// per level of the value. Decoding one level of a struct like `Node { left: Option<Box<Node>>, …
/// }` takes about 5 KiB of stack in an unoptimized build (rmp-serde and serde's generated code),
/// so a value at the limit decodes within the 2 MiB a thread has by default, with room to spare
/// for the caller; an optimized build needs far less. (serde_json's limit is 128.)
pub const MAX_DEPTH: usize = 256;

/// What a marker byte starts.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    /// A value of this many bytes in all, marker included.
    Fixed(u8),
    /// A string or binary whose length follows the marker in this many bytes.
    Data(u8),
    /// An extension whose length follows the marker in this many bytes, then its type byte.
    Ext(u8),
    /// An array of this many elements (fixarray).
    FixArray(u8),
    /// A map of this many entries (fixmap).
    FixMap(u8),
    /// An array whose length follows the marker in this many bytes.
    Array(u8),
    /// A map whose length follows the marker in this many bytes.
    Map(u8),
    /// 0xc1, which MessagePack never uses.
    Reserved,
}

/// The [`Kind`] of every marker byte, from the MessagePack specification.
pub(super) static KINDS: [Kind; 256] = kinds();

/// The size of the value each marker starts when that is fixed (marker included), else 0.
static FIXED: [u8; 256] = fixed_sizes();

const fn fixed_sizes() -> [u8; 256] {
    let kinds = kinds();
    let mut sizes = [0; 256];
    let mut byte = 0;
    while byte < 256 {
        if let Kind::Fixed(size) = kinds[byte] {
            sizes[byte] = size;
        }
        byte += 1;
    }
    sizes
}

const fn kinds() -> [Kind; 256] {
    let mut kinds = [Kind::Reserved; 256];
    let mut byte = 0;
    while byte < 256 {
        let b = byte as u8;
        kinds[byte] = match b {
            0x00..=0x7f | 0xe0..=0xff | 0xc0 | 0xc2 | 0xc3 => Kind::Fixed(1),
            0x80..=0x8f => Kind::FixMap(b & 0x0f),
            0x90..=0x9f => Kind::FixArray(b & 0x0f),
            0xa0..=0xbf => Kind::Fixed(1 + (b & 0x1f)),
            0xc1 => Kind::Reserved,
            0xc4 | 0xd9 => Kind::Data(1),
            0xc5 | 0xda => Kind::Data(2),
            0xc6 | 0xdb => Kind::Data(4),
            0xc7 => Kind::Ext(1),
            0xc8 => Kind::Ext(2),
            0xc9 => Kind::Ext(4),
            0xca => Kind::Fixed(5),
            0xcb => Kind::Fixed(9),
            0xcc | 0xd0 => Kind::Fixed(2),
            0xcd | 0xd1 => Kind::Fixed(3),
            0xce | 0xd2 => Kind::Fixed(5),
            0xcf | 0xd3 => Kind::Fixed(9),
            0xd4 => Kind::Fixed(3),
            0xd5 => Kind::Fixed(4),
            0xd6 => Kind::Fixed(6),
            0xd7 => Kind::Fixed(10),
            0xd8 => Kind::Fixed(18),
            0xdc => Kind::Array(2),
            0xdd => Kind::Array(4),
            0xde => Kind::Map(2),
            0xdf => Kind::Map(4),
        };
        byte += 1;
    }
    kinds
}

/// Checks that `bytes` are exactly one well-formed MessagePack value, nested at most
/// [`MAX_DEPTH`] deep, whose every length fits in the bytes that remain.
///
/// # Errors
///
/// `Error::Syntax` saying what is wrong and at which byte.
pub fn check(bytes: &[u8]) -> Result<(), Error> {
    scan(bytes).map(|_| ())
}

/// [`check`], telling whether the value holds a map (a struct, an enum variant with data, a
/// map).
pub(super) fn scan(bytes: &[u8]) -> Result<bool, Error> {
    let len = bytes.len();
    let mut has_map = false;
    // The elements still to read at each open level, innermost last; the top level is one value.
    let mut open: Vec<u64> = Vec::new();
    let mut left: u64 = 1;
    let mut pos = 0usize;
    loop {
        while left == 0 {
            match open.pop() {
                Some(outer) => left = outer,
                None if pos == len => return Ok(has_map),
                None => {
                    return Err(syntax(format!(
                        "{} bytes follow the value, which ends at byte {pos}",
                        len - pos
                    )));
                }
            }
        }
        let Some(&marker) = bytes.get(pos) else {
            return Err(truncated(pos, len));
        };
        left -= 1;
        match KINDS[usize::from(marker)] {
            Kind::Fixed(size) => {
                // The values that follow in the same array or map, while they have a fixed
                // size: most elements of numeric arrays and structs.
                let size = usize::from(size);
                pos += size;
                // Values of the same size (a numeric array): the position does not wait for
                // each marker to be looked up.
                while left > 0
                    && let Some(&next) = bytes.get(pos)
                    && usize::from(FIXED[usize::from(next)]) == size
                {
                    pos += size;
                    left -= 1;
                }
                while left > 0
                    && let Some(&next) = bytes.get(pos)
                    && let next = usize::from(FIXED[usize::from(next)])
                    && next != 0
                {
                    pos += next;
                    left -= 1;
                }
                if pos > len {
                    return Err(truncated(pos, len));
                }
            }
            Kind::Data(width) => {
                let data = read_len(bytes, pos + 1, width)?;
                pos = skip(pos + 1 + usize::from(width), data, len)?;
            }
            Kind::Ext(width) => {
                let data = read_len(bytes, pos + 1, width)?;
                // The type byte, then the data.
                pos = skip(pos + 2 + usize::from(width), data, len)?;
            }
            Kind::FixArray(n) => {
                pos += 1;
                nest(&mut open, &mut left, u64::from(n), pos, len)?;
            }
            Kind::FixMap(n) => {
                has_map = true;
                pos += 1;
                nest(&mut open, &mut left, 2 * u64::from(n), pos, len)?;
            }
            Kind::Array(width) => {
                let n = read_len(bytes, pos + 1, width)?;
                pos += 1 + usize::from(width);
                nest(&mut open, &mut left, n, pos, len)?;
            }
            Kind::Map(width) => {
                has_map = true;
                let n = read_len(bytes, pos + 1, width)?;
                pos += 1 + usize::from(width);
                nest(&mut open, &mut left, 2 * n, pos, len)?;
            }
            Kind::Reserved => {
                return Err(syntax(format!(
                    "byte {pos} is 0xc1, which is not a MessagePack marker"
                )));
            }
        }
    }
}

/// Opens an array or map of `elements` values (a map's keys and values both count), whose first
/// element would be at byte `pos`.
#[inline]
fn nest(
    open: &mut Vec<u64>,
    left: &mut u64,
    elements: u64,
    pos: usize,
    len: usize,
) -> Result<(), Error> {
    let remaining = len.saturating_sub(pos) as u64;
    if elements > remaining {
        return Err(syntax(format!(
            "the array or map before byte {pos} declares {elements} elements, \
             but only {remaining} bytes follow"
        )));
    }
    if elements == 0 {
        return Ok(());
    }
    if open.len() >= MAX_DEPTH {
        return Err(syntax(format!(
            "the value is nested more than {MAX_DEPTH} arrays and maps deep (at byte {pos})"
        )));
    }
    open.push(*left);
    *left = elements;
    Ok(())
}

/// The big-endian length of `width` bytes at `at`.
#[inline]
pub(super) fn read_len(bytes: &[u8], at: usize, width: u8) -> Result<u64, Error> {
    let end = at + usize::from(width);
    let Some(field) = bytes.get(at..end) else {
        return Err(truncated(end, bytes.len()));
    };
    Ok(field
        .iter()
        .fold(0u64, |n, &byte| (n << 8) | u64::from(byte)))
}

/// The position after `data` bytes starting at `start`, if they are there.
#[inline]
fn skip(start: usize, data: u64, len: usize) -> Result<usize, Error> {
    match usize::try_from(data)
        .ok()
        .and_then(|d| start.checked_add(d))
    {
        Some(end) if end <= len => Ok(end),
        _ => Err(syntax(format!(
            "a string, binary or extension at byte {start} declares {data} bytes, \
             but only {} follow",
            len.saturating_sub(start)
        ))),
    }
}

#[cold]
fn truncated(needed: usize, len: usize) -> Error {
    syntax(format!(
        "the value is cut short: it needs at least {needed} bytes, there are {len}"
    ))
}

#[cold]
fn syntax(message: String) -> Error {
    Error::Syntax(message)
}

#[cfg(test)]
mod tests;
