//! Artifacts shown without their Rust types: MessagePack to JSON, and a shortened rendering for
//! people.
//!
//! An artifact is stored as MessagePack with structs as maps keyed by field name (see
//! [`crate::state::encode_field`]), so it reads back as JSON with the same shape serde would give
//! the Rust value: structs and maps become objects, sequences and tuples arrays, unit enum variants
//! strings, other variants `{"Variant": …}`, `None` `null`.
//!
//! Where MessagePack says more than JSON can, the conversion picks:
//!
//! - binary data (`serde_bytes`, `bytes::Bytes`) becomes an array of byte values, exactly as
//!   `serde_json` serializes bytes, so `dump --json` equals `serde_json::to_value` of the field;
//! - a map key that is not a string becomes the JSON text of the key (`1` → `"1"`, as
//!   `serde_json` writes integer keys);
//! - a float that JSON cannot hold (NaN, ±infinity) becomes `null`, as in `serde_json`;
//! - a MessagePack extension value becomes `{"$ext": type, "data": [bytes…]}`.
//!
//! [`preview`] shortens a value read as a stream ([`MsgStream`]) within [`Limits`]: what the
//! CLI's `dump` and the web UI show of an artifact whatever its size.

use std::io::{self, Read, Write};

use rmp::Marker;
use rmpv::Value as Msg;
use serde_json::ser::{CharEscape, CompactFormatter, Formatter, PrettyFormatter};
use serde_json::{Map, Number, Value as Json};

/// `serde_json`'s pretty printer, with DEL and the C1 controls escaped as `\u007f`, `\u009b`:
/// `serde_json` escapes only the C0 controls, which leaves these raw for a terminal to act on.
/// The output is the same JSON to any reader.
#[derive(Default)]
pub struct EscapingFormatter {
    pretty: PrettyFormatter<'static>,
}

impl Formatter for EscapingFormatter {
    fn write_string_fragment<W: ?Sized + Write>(
        &mut self,
        writer: &mut W,
        fragment: &str,
    ) -> io::Result<()> {
        let mut start = 0;
        for (at, c) in fragment.char_indices() {
            if c.is_control() {
                writer.write_all(&fragment.as_bytes()[start..at])?;
                match u8::try_from(u32::from(c)) {
                    Ok(code) => self.write_char_escape(writer, CharEscape::AsciiControl(code))?,
                    // Every control character is below U+00A0.
                    Err(_) => writer.write_all(c.encode_utf8(&mut [0; 4]).as_bytes())?,
                }
                start = at + c.len_utf8();
            }
        }
        writer.write_all(&fragment.as_bytes()[start..])
    }

    fn begin_array<W: ?Sized + Write>(&mut self, writer: &mut W) -> io::Result<()> {
        self.pretty.begin_array(writer)
    }

    fn end_array<W: ?Sized + Write>(&mut self, writer: &mut W) -> io::Result<()> {
        self.pretty.end_array(writer)
    }

    fn begin_array_value<W: ?Sized + Write>(
        &mut self,
        writer: &mut W,
        first: bool,
    ) -> io::Result<()> {
        self.pretty.begin_array_value(writer, first)
    }

    fn end_array_value<W: ?Sized + Write>(&mut self, writer: &mut W) -> io::Result<()> {
        self.pretty.end_array_value(writer)
    }

    fn begin_object<W: ?Sized + Write>(&mut self, writer: &mut W) -> io::Result<()> {
        self.pretty.begin_object(writer)
    }

    fn end_object<W: ?Sized + Write>(&mut self, writer: &mut W) -> io::Result<()> {
        self.pretty.end_object(writer)
    }

    fn begin_object_key<W: ?Sized + Write>(
        &mut self,
        writer: &mut W,
        first: bool,
    ) -> io::Result<()> {
        self.pretty.begin_object_key(writer, first)
    }

    fn begin_object_value<W: ?Sized + Write>(&mut self, writer: &mut W) -> io::Result<()> {
        self.pretty.begin_object_value(writer)
    }

    fn end_object_value<W: ?Sized + Write>(&mut self, writer: &mut W) -> io::Result<()> {
        self.pretty.end_object_value(writer)
    }
}

/// Why an artifact's bytes are not one MessagePack value.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MsgpackError {
    /// The bytes do not decode.
    #[error("not valid MessagePack: {0}")]
    Decode(#[from] rmpv::decode::Error),
    /// One value decoded and bytes were left over.
    #[error("not one MessagePack value: {0} bytes follow it")]
    Trailing(usize),
}

/// Decodes one MessagePack value (an artifact's blob) and converts it to JSON, without the Rust
/// type it was written from: what `dump --json` prints.
///
/// Structs and maps become objects, sequences and tuples arrays, unit enum variants strings, other
/// variants `{"Variant": …}`, `None` `null`: the JSON `serde_json` makes of the Rust value. Where
/// MessagePack says more than JSON can:
///
/// - binary data (`serde_bytes`) becomes an array of byte values, as `serde_json` writes bytes;
/// - a map key that is not a string becomes the JSON text of the key (`1` → `"1"`);
/// - a float JSON cannot hold (NaN, ±infinity) becomes `null`;
/// - a MessagePack extension value becomes `{"$ext": type, "data": [bytes…]}`.
///
/// ```
/// # use flow_runtime::client::value::msgpack_to_json;
/// let mut bytes = Vec::new();
/// flow_runtime::state::encode_field(&mut bytes, &vec![("a", 1u8)]).expect("encodes");
/// assert_eq!(msgpack_to_json(&bytes).expect("converts"), serde_json::json!([["a", 1]]));
/// ```
///
/// # Errors
///
/// [`MsgpackError`] if `bytes` is not exactly one MessagePack value.
pub fn msgpack_to_json(bytes: &[u8]) -> Result<Json, MsgpackError> {
    Ok(to_json_value(&decode(bytes)?))
}

/// Decodes exactly one MessagePack value.
fn decode(bytes: &[u8]) -> Result<Msg, MsgpackError> {
    let mut rest = bytes;
    let value = rmpv::decode::read_value(&mut rest)?;
    if !rest.is_empty() {
        return Err(MsgpackError::Trailing(rest.len()));
    }
    Ok(value)
}

fn to_json_value(value: &Msg) -> Json {
    match value {
        Msg::Nil => Json::Null,
        Msg::Boolean(b) => Json::Bool(*b),
        Msg::Integer(i) => match (i.as_u64(), i.as_i64()) {
            (Some(u), _) => Json::Number(u.into()),
            (None, Some(s)) => Json::Number(s.into()),
            // rmpv integers are always a u64 or an i64; keep the text if that ever changes.
            (None, None) => Json::String(i.to_string()),
        },
        Msg::F32(f) => float(f64::from(*f)),
        Msg::F64(f) => float(*f),
        Msg::String(s) => Json::String(utf8(s)),
        Msg::Binary(bytes) => bytes_json(bytes),
        Msg::Array(items) => Json::Array(items.iter().map(to_json_value).collect()),
        Msg::Map(entries) => {
            let mut map = Map::new();
            for (k, v) in entries {
                map.insert(key_text(k), to_json_value(v));
            }
            Json::Object(map)
        }
        Msg::Ext(kind, data) => {
            let mut map = Map::new();
            map.insert("$ext".to_owned(), Json::Number((*kind).into()));
            map.insert("data".to_owned(), bytes_json(data));
            Json::Object(map)
        }
    }
}

fn float(f: f64) -> Json {
    Number::from_f64(f).map_or(Json::Null, Json::Number)
}

fn utf8(s: &rmpv::Utf8String) -> String {
    match s.as_str() {
        Some(s) => s.to_owned(),
        None => String::from_utf8_lossy(s.as_bytes()).into_owned(),
    }
}

fn bytes_json(bytes: &[u8]) -> Json {
    Json::Array(bytes.iter().map(|b| Json::Number((*b).into())).collect())
}

/// A map key as JSON object keys must be: strings as they are, anything else as its JSON text.
fn key_text(key: &Msg) -> String {
    match key {
        Msg::String(s) => utf8(s),
        other => to_json_value(other).to_string(),
    }
}

// ---------------------------------------------------------------------------------------------
// Streamed: values read item by item from a blob, never held whole.

/// A decoding error of rmpv's kind: the streamed reader reports what rmpv would.
type DecodeError = rmpv::decode::Error;

/// How much of a string or binary value is read at a time.
const CHUNK: u64 = 64 << 10;

/// Why a streamed rendering stopped.
#[derive(Debug)]
pub(crate) enum RenderError {
    /// The bytes are not one MessagePack value.
    Value(MsgpackError),
    /// Writing the output failed.
    Output(io::Error),
}

impl From<DecodeError> for RenderError {
    fn from(e: DecodeError) -> Self {
        RenderError::Value(MsgpackError::Decode(e))
    }
}

impl From<io::Error> for RenderError {
    fn from(e: io::Error) -> Self {
        RenderError::Output(e)
    }
}

/// One MessagePack item: a whole scalar, or the header of a string, binary value, array, map or
/// extension, whose content follows.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Head {
    Nil,
    Bool(bool),
    UInt(u64),
    Int(i64),
    F32(f32),
    F64(f64),
    Str(u32),
    Bin(u32),
    Array(u32),
    Map(u32),
    Ext(i8, u32),
}

/// A MessagePack value read from a stream item by item: nothing is held but the item at hand, so
/// a 1 GiB blob costs what one chunk costs, and nesting is followed without recursion where
/// nothing is shown (a crafted deep blob cannot exhaust the stack).
pub struct MsgStream<R> {
    rd: R,
}

impl<R: Read> MsgStream<R> {
    /// Reads the value `rd` holds.
    pub fn new(rd: R) -> Self {
        MsgStream { rd }
    }

    fn head(&mut self) -> Result<Head, DecodeError> {
        let [marker] = self
            .data::<1>()
            .map_err(|e| DecodeError::InvalidMarkerRead(io_of(e)))?;
        Ok(match Marker::from_u8(marker) {
            Marker::FixPos(n) => Head::UInt(n.into()),
            Marker::FixNeg(n) => Head::Int(n.into()),
            Marker::Null => Head::Nil,
            Marker::True => Head::Bool(true),
            Marker::False => Head::Bool(false),
            Marker::U8 => Head::UInt(u8::from_be_bytes(self.data()?).into()),
            Marker::U16 => Head::UInt(u16::from_be_bytes(self.data()?).into()),
            Marker::U32 => Head::UInt(u32::from_be_bytes(self.data()?).into()),
            Marker::U64 => Head::UInt(u64::from_be_bytes(self.data()?)),
            Marker::I8 => Head::Int(i8::from_be_bytes(self.data()?).into()),
            Marker::I16 => Head::Int(i16::from_be_bytes(self.data()?).into()),
            Marker::I32 => Head::Int(i32::from_be_bytes(self.data()?).into()),
            Marker::I64 => Head::Int(i64::from_be_bytes(self.data()?)),
            Marker::F32 => Head::F32(f32::from_be_bytes(self.data()?)),
            Marker::F64 => Head::F64(f64::from_be_bytes(self.data()?)),
            Marker::FixStr(n) => Head::Str(n.into()),
            Marker::Str8 => Head::Str(self.len8()?),
            Marker::Str16 => Head::Str(self.len16()?),
            Marker::Str32 => Head::Str(self.len32()?),
            Marker::Bin8 => Head::Bin(self.len8()?),
            Marker::Bin16 => Head::Bin(self.len16()?),
            Marker::Bin32 => Head::Bin(self.len32()?),
            Marker::FixArray(n) => Head::Array(n.into()),
            Marker::Array16 => Head::Array(self.len16()?),
            Marker::Array32 => Head::Array(self.len32()?),
            Marker::FixMap(n) => Head::Map(n.into()),
            Marker::Map16 => Head::Map(self.len16()?),
            Marker::Map32 => Head::Map(self.len32()?),
            Marker::FixExt1 => self.ext(1)?,
            Marker::FixExt2 => self.ext(2)?,
            Marker::FixExt4 => self.ext(4)?,
            Marker::FixExt8 => self.ext(8)?,
            Marker::FixExt16 => self.ext(16)?,
            Marker::Ext8 => {
                let len = self.len8()?;
                self.ext(len)?
            }
            Marker::Ext16 => {
                let len = self.len16()?;
                self.ext(len)?
            }
            Marker::Ext32 => {
                let len = self.len32()?;
                self.ext(len)?
            }
            Marker::Reserved => {
                return Err(DecodeError::InvalidMarkerRead(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "the reserved marker 0xc1",
                )));
            }
        })
    }

    fn data<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let mut bytes = [0; N];
        self.rd
            .read_exact(&mut bytes)
            .map_err(DecodeError::InvalidDataRead)?;
        Ok(bytes)
    }

    fn len8(&mut self) -> Result<u32, DecodeError> {
        Ok(u8::from_be_bytes(self.data()?).into())
    }

    fn len16(&mut self) -> Result<u32, DecodeError> {
        Ok(u16::from_be_bytes(self.data()?).into())
    }

    fn len32(&mut self) -> Result<u32, DecodeError> {
        Ok(u32::from_be_bytes(self.data()?))
    }

    fn ext(&mut self, len: u32) -> Result<Head, DecodeError> {
        Ok(Head::Ext(i8::from_be_bytes(self.data()?), len))
    }

    /// Appends the next `n` bytes (of a string, binary value or extension) to `into`.
    fn bytes(&mut self, n: u64, into: &mut Vec<u8>) -> Result<(), DecodeError> {
        let got = (&mut self.rd)
            .take(n)
            .read_to_end(into)
            .map_err(DecodeError::InvalidDataRead)?;
        if (got as u64) < n {
            return Err(DecodeError::InvalidDataRead(
                io::ErrorKind::UnexpectedEof.into(),
            ));
        }
        Ok(())
    }

    fn skip_bytes(&mut self, n: u64) -> Result<(), DecodeError> {
        let skipped = io::copy(&mut (&mut self.rd).take(n), &mut io::sink())
            .map_err(DecodeError::InvalidDataRead)?;
        if skipped < n {
            return Err(DecodeError::InvalidDataRead(
                io::ErrorKind::UnexpectedEof.into(),
            ));
        }
        Ok(())
    }

    /// Skips `count` whole values, counting the items still owed instead of recursing.
    fn skip_values(&mut self, count: u64) -> Result<(), DecodeError> {
        let mut owed = count;
        while owed > 0 {
            owed -= 1;
            match self.head()? {
                Head::Str(n) | Head::Bin(n) | Head::Ext(_, n) => self.skip_bytes(n.into())?,
                Head::Array(n) => owed = owed.saturating_add(n.into()),
                Head::Map(n) => owed = owed.saturating_add(2 * u64::from(n)),
                _ => {}
            }
        }
        Ok(())
    }

    /// How many bytes follow the value: 0 for a blob that is exactly one value.
    fn rest(&mut self) -> Result<u64, DecodeError> {
        io::copy(&mut self.rd, &mut io::sink()).map_err(DecodeError::InvalidDataRead)
    }
}

fn io_of(e: DecodeError) -> io::Error {
    match e {
        DecodeError::InvalidMarkerRead(e) | DecodeError::InvalidDataRead(e) => e,
        DecodeError::DepthLimitExceeded => io::Error::other("depth limit exceeded"),
    }
}

/// Writes the one MessagePack value `msg` holds as JSON, the JSON [`msgpack_to_json`] makes of
/// it, in `fmt`'s layout, holding no more than a chunk of it. Object keys keep their stored order.
///
/// # Errors
///
/// [`RenderError::Value`] for bytes that are not exactly one value (nested deeper than rmpv's
/// limit, too), [`RenderError::Output`] when writing fails.
pub(crate) fn write_json<R: Read, W: Write + ?Sized, F: Formatter>(
    msg: &mut MsgStream<R>,
    out: &mut W,
    fmt: &mut F,
) -> Result<(), RenderError> {
    let head = msg.head()?;
    json_value(msg, head, out, fmt, rmpv::decode::MAX_DEPTH)?;
    match msg.rest()? {
        0 => Ok(()),
        n => Err(RenderError::Value(MsgpackError::Trailing(
            usize::try_from(n).unwrap_or(usize::MAX),
        ))),
    }
}

fn json_value<R: Read, W: Write + ?Sized, F: Formatter>(
    msg: &mut MsgStream<R>,
    head: Head,
    out: &mut W,
    fmt: &mut F,
    depth: usize,
) -> Result<(), RenderError> {
    match head {
        Head::Nil => fmt.write_null(out)?,
        Head::Bool(b) => fmt.write_bool(out, b)?,
        Head::UInt(u) => fmt.write_u64(out, u)?,
        Head::Int(i) => fmt.write_i64(out, i)?,
        Head::F32(f) => json_float(out, fmt, f64::from(f))?,
        Head::F64(f) => json_float(out, fmt, f)?,
        Head::Str(len) => json_string(msg, len, out, fmt)?,
        Head::Bin(len) => json_bytes(msg, len, out, fmt)?,
        Head::Array(len) => {
            let depth = depth
                .checked_sub(1)
                .ok_or(DecodeError::DepthLimitExceeded)?;
            fmt.begin_array(out)?;
            for i in 0..len {
                fmt.begin_array_value(out, i == 0)?;
                let head = msg.head()?;
                json_value(msg, head, out, fmt, depth)?;
                fmt.end_array_value(out)?;
            }
            fmt.end_array(out)?;
        }
        Head::Map(len) => {
            let depth = depth
                .checked_sub(1)
                .ok_or(DecodeError::DepthLimitExceeded)?;
            fmt.begin_object(out)?;
            for i in 0..len {
                fmt.begin_object_key(out, i == 0)?;
                match msg.head()? {
                    Head::Str(len) => json_string(msg, len, out, fmt)?,
                    // As `key_text`: the compact JSON text of the key, as a string.
                    other => {
                        let mut text = Vec::new();
                        json_value(msg, other, &mut text, &mut CompactFormatter, depth)?;
                        write_json_str(out, fmt, &String::from_utf8_lossy(&text))?;
                    }
                }
                fmt.end_object_key(out)?;
                fmt.begin_object_value(out)?;
                let head = msg.head()?;
                json_value(msg, head, out, fmt, depth)?;
                fmt.end_object_value(out)?;
            }
            fmt.end_object(out)?;
        }
        Head::Ext(kind, len) => {
            fmt.begin_object(out)?;
            fmt.begin_object_key(out, true)?;
            write_json_str(out, fmt, "$ext")?;
            fmt.end_object_key(out)?;
            fmt.begin_object_value(out)?;
            fmt.write_i64(out, kind.into())?;
            fmt.end_object_value(out)?;
            fmt.begin_object_key(out, false)?;
            write_json_str(out, fmt, "data")?;
            fmt.end_object_key(out)?;
            fmt.begin_object_value(out)?;
            json_bytes(msg, len, out, fmt)?;
            fmt.end_object_value(out)?;
            fmt.end_object(out)?;
        }
    }
    Ok(())
}

fn json_float<W: Write + ?Sized, F: Formatter>(out: &mut W, fmt: &mut F, f: f64) -> io::Result<()> {
    if f.is_finite() {
        fmt.write_f64(out, f)
    } else {
        fmt.write_null(out)
    }
}

/// Binary data as an array of byte values, read a chunk at a time.
fn json_bytes<R: Read, W: Write + ?Sized, F: Formatter>(
    msg: &mut MsgStream<R>,
    len: u32,
    out: &mut W,
    fmt: &mut F,
) -> Result<(), RenderError> {
    fmt.begin_array(out)?;
    let mut left = u64::from(len);
    let mut chunk = Vec::new();
    let mut first = true;
    while left > 0 {
        let n = left.min(CHUNK);
        chunk.clear();
        msg.bytes(n, &mut chunk)?;
        left -= n;
        for &byte in &chunk {
            fmt.begin_array_value(out, first)?;
            first = false;
            fmt.write_u8(out, byte)?;
            fmt.end_array_value(out)?;
        }
    }
    fmt.end_array(out)?;
    Ok(())
}

/// A string read a chunk at a time, bytes that are not UTF-8 replaced as
/// `String::from_utf8_lossy` replaces them (a character split between chunks is put back
/// together first).
fn json_string<R: Read, W: Write + ?Sized, F: Formatter>(
    msg: &mut MsgStream<R>,
    len: u32,
    out: &mut W,
    fmt: &mut F,
) -> Result<(), RenderError> {
    fmt.begin_string(out)?;
    let mut left = u64::from(len);
    let mut buf = Vec::new();
    loop {
        let n = left.min(CHUNK);
        msg.bytes(n, &mut buf)?;
        left -= n;
        let mut rest: &[u8] = &buf;
        while !rest.is_empty() {
            match std::str::from_utf8(rest) {
                Ok(text) => {
                    string_contents(out, fmt, text)?;
                    rest = &[];
                }
                Err(e) => {
                    let (valid, after) = rest.split_at(e.valid_up_to());
                    string_contents(out, fmt, &String::from_utf8_lossy(valid))?;
                    match e.error_len() {
                        Some(bad) => {
                            string_contents(out, fmt, "\u{fffd}")?;
                            rest = &after[bad..];
                        }
                        None if left > 0 => {
                            rest = after;
                            break;
                        }
                        None => {
                            string_contents(out, fmt, "\u{fffd}")?;
                            rest = &[];
                        }
                    }
                }
            }
        }
        let carried = rest.len();
        buf.drain(..buf.len() - carried);
        if left == 0 {
            break;
        }
    }
    fmt.end_string(out)?;
    Ok(())
}

/// `text` between the quotes of a JSON string, escaped as `serde_json` escapes it (the formatter
/// may escape more).
fn string_contents<W: Write + ?Sized, F: Formatter>(
    out: &mut W,
    fmt: &mut F,
    text: &str,
) -> io::Result<()> {
    let mut start = 0;
    for (at, byte) in text.bytes().enumerate() {
        let escape = match byte {
            b'"' => CharEscape::Quote,
            b'\\' => CharEscape::ReverseSolidus,
            0x08 => CharEscape::Backspace,
            0x0c => CharEscape::FormFeed,
            b'\n' => CharEscape::LineFeed,
            b'\r' => CharEscape::CarriageReturn,
            b'\t' => CharEscape::Tab,
            0x00..=0x1f => CharEscape::AsciiControl(byte),
            _ => continue,
        };
        // Only ASCII bytes are escaped, so `at` is on a character boundary.
        if start < at {
            fmt.write_string_fragment(out, &text[start..at])?;
        }
        fmt.write_char_escape(out, escape)?;
        start = at + 1;
    }
    if start < text.len() {
        fmt.write_string_fragment(out, &text[start..])?;
    }
    Ok(())
}

/// `text` as a JSON string.
pub(crate) fn write_json_str<W: Write + ?Sized, F: Formatter>(
    out: &mut W,
    fmt: &mut F,
    text: &str,
) -> io::Result<()> {
    fmt.begin_string(out)?;
    string_contents(out, fmt, text)?;
    fmt.end_string(out)
}

/// Limits of the preview of a value (`dump --artifact` without `--json` or `--raw`).
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Elements shown per array or map.
    pub items: usize,
    /// Characters shown per string.
    pub chars: usize,
    /// Bytes shown per binary value.
    pub bytes: usize,
    /// Arrays and maps nested deeper are shown by their length only.
    pub depth: usize,
    /// Lines of output.
    pub lines: usize,
    /// Bytes of output.
    pub output: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            items: 20,
            chars: 400,
            bytes: 32,
            depth: 16,
            lines: 200,
            output: 256 << 10,
        }
    }
}

/// A value shortened for people.
#[derive(Debug)]
pub struct Preview {
    /// Pretty JSON of what is shown, with notes where something was left out.
    pub text: String,
    /// Whether anything was left out.
    pub cut: bool,
}

/// Renders the value `msg` holds as pretty JSON within `limits`, reading no more of the stream
/// than what it shows and what lies before it: a 1 GiB field costs what its first elements cost.
/// Strings are shortened to `limits.chars` characters, binary values to their first
/// `limits.bytes` bytes in hex, arrays and maps to their first `limits.items` elements, nesting
/// to `limits.depth` levels, the whole to `limits.lines` lines; each cut says how much it left.
///
/// # Errors
///
/// [`MsgpackError`] for bytes that are not one MessagePack value, as far as they were read.
pub fn preview<R: Read>(msg: &mut MsgStream<R>, limits: Limits) -> Result<Preview, MsgpackError> {
    let mut previewer = Previewer {
        msg,
        limits,
        out: Vec::new(),
        fmt: EscapingFormatter::default(),
        lines: 0,
        counted: 0,
        cut: false,
        full: false,
        stopped: false,
    };
    let head = previewer.msg.head()?;
    previewer.value(head, 0, true)?;
    if !previewer.stopped {
        let rest = previewer.msg.rest()?;
        if rest > 0 {
            return Err(MsgpackError::Trailing(
                usize::try_from(rest).unwrap_or(usize::MAX),
            ));
        }
    }
    Ok(previewer.finish())
}

struct Previewer<'m, R> {
    msg: &'m mut MsgStream<R>,
    limits: Limits,
    out: Vec<u8>,
    fmt: EscapingFormatter,
    /// Lines in `out[..counted]`.
    lines: usize,
    counted: usize,
    cut: bool,
    /// The output reached its limits: nothing more is read or written.
    full: bool,
    /// The stream was left before the value's end (nothing after it was to be shown).
    stopped: bool,
}

impl<R: Read> Previewer<'_, R> {
    /// Renders one value; `tail` says that nothing after it is shown, so what it leaves out need
    /// not be read past.
    fn value(&mut self, head: Head, depth: usize, tail: bool) -> Result<(), MsgpackError> {
        // Writing to a `Vec` cannot fail: the results of `fmt` are ignored below.
        match head {
            Head::Nil => {
                let _ = self.fmt.write_null(&mut self.out);
            }
            Head::Bool(b) => {
                let _ = self.fmt.write_bool(&mut self.out, b);
            }
            Head::UInt(u) => {
                let _ = self.fmt.write_u64(&mut self.out, u);
            }
            Head::Int(i) => {
                let _ = self.fmt.write_i64(&mut self.out, i);
            }
            Head::F32(f) => self.float(f64::from(f)),
            Head::F64(f) => self.float(f),
            Head::Str(len) => {
                let text = self.short_string(len, tail)?;
                self.string(&text);
            }
            Head::Bin(len) => {
                let shown = self.short_bytes(len, tail)?;
                self.string(&shown);
            }
            Head::Ext(kind, len) => {
                let shown = self.short_bytes(len, tail)?;
                self.string(&format!("extension {kind}: {shown}"));
            }
            Head::Array(len) | Head::Map(len) if depth >= self.limits.depth => {
                self.cut = true;
                let (what, per_item) = match head {
                    Head::Array(_) => (format!("[… {len} items]"), 1),
                    _ => (format!("{{… {len} entries}}"), 2),
                };
                self.string(&what);
                self.skip_values(per_item * u64::from(len), tail)?;
            }
            Head::Array(len) => self.array(len, depth, tail)?,
            Head::Map(len) => self.map(len, depth, tail)?,
        }
        Ok(())
    }

    fn array(&mut self, len: u32, depth: usize, tail: bool) -> Result<(), MsgpackError> {
        let shown = len.min(u32::try_from(self.limits.items).unwrap_or(u32::MAX));
        let _ = self.fmt.begin_array(&mut self.out);
        for i in 0..shown {
            let _ = self.fmt.begin_array_value(&mut self.out, i == 0);
            let head = self.msg.head()?;
            self.value(head, depth + 1, tail && i + 1 == shown)?;
            let _ = self.fmt.end_array_value(&mut self.out);
            if self.check_full() {
                return Ok(());
            }
        }
        if len > shown {
            self.cut = true;
            let _ = self.fmt.begin_array_value(&mut self.out, shown == 0);
            self.string(&format!("… {} more items ({len} in all)", len - shown));
            let _ = self.fmt.end_array_value(&mut self.out);
            self.skip_values(u64::from(len - shown), tail)?;
        }
        let _ = self.fmt.end_array(&mut self.out);
        Ok(())
    }

    fn map(&mut self, len: u32, depth: usize, tail: bool) -> Result<(), MsgpackError> {
        let shown = len.min(u32::try_from(self.limits.items).unwrap_or(u32::MAX));
        let _ = self.fmt.begin_object(&mut self.out);
        for i in 0..shown {
            let _ = self.fmt.begin_object_key(&mut self.out, i == 0);
            let key = self.key_text()?;
            self.string(&key);
            let _ = self.fmt.end_object_key(&mut self.out);
            let _ = self.fmt.begin_object_value(&mut self.out);
            let head = self.msg.head()?;
            self.value(head, depth + 1, tail && i + 1 == shown)?;
            let _ = self.fmt.end_object_value(&mut self.out);
            if self.check_full() {
                return Ok(());
            }
        }
        if len > shown {
            self.cut = true;
            let _ = self.fmt.begin_object_key(&mut self.out, shown == 0);
            self.string("…");
            let _ = self.fmt.end_object_key(&mut self.out);
            let _ = self.fmt.begin_object_value(&mut self.out);
            self.string(&format!("{} more entries ({len} in all)", len - shown));
            let _ = self.fmt.end_object_value(&mut self.out);
            self.skip_values(2 * u64::from(len - shown), tail)?;
        }
        let _ = self.fmt.end_object(&mut self.out);
        Ok(())
    }

    /// A map key as JSON object keys must be (see `key_text`), shortened like a string.
    fn key_text(&mut self) -> Result<String, MsgpackError> {
        let text = match self.msg.head()? {
            Head::Str(len) => return self.short_string(len, false),
            other => {
                let mut text = Vec::new();
                match json_value(
                    self.msg,
                    other,
                    &mut text,
                    &mut CompactFormatter,
                    rmpv::decode::MAX_DEPTH,
                ) {
                    Ok(()) => {}
                    Err(RenderError::Value(e)) => return Err(e),
                    Err(RenderError::Output(e)) => {
                        return Err(MsgpackError::Decode(DecodeError::InvalidDataRead(e)));
                    }
                }
                String::from_utf8_lossy(&text).into_owned()
            }
        };
        if text.chars().count() <= self.limits.chars {
            return Ok(text);
        }
        self.cut = true;
        Ok(text.chars().take(self.limits.chars).collect::<String>() + "…")
    }

    /// The start of a string of `len` bytes, and how much was left out.
    fn short_string(&mut self, len: u32, tail: bool) -> Result<String, MsgpackError> {
        let len = u64::from(len);
        let want = len.min(4 * self.limits.chars as u64);
        let mut bytes = Vec::new();
        self.msg.bytes(want, &mut bytes)?;
        // A string that goes on may have been cut inside a character.
        let valid = match std::str::from_utf8(&bytes) {
            Err(e) if want < len && e.error_len().is_none() => e.valid_up_to(),
            _ => bytes.len(),
        };
        let text = String::from_utf8_lossy(&bytes[..valid]);
        let head: String = text.chars().take(self.limits.chars).collect();
        let whole = want == len && head.len() == text.len();
        let shown = if whole {
            text.into_owned()
        } else {
            self.cut = true;
            let more = len.saturating_sub(head.len() as u64);
            format!("{head}… ({len} bytes, {more} more)")
        };
        self.skip_bytes(len - want, tail)?;
        Ok(shown)
    }

    /// `<N bytes: HEX…>` for binary data (and extensions) of `len` bytes.
    fn short_bytes(&mut self, len: u32, tail: bool) -> Result<String, MsgpackError> {
        let len = u64::from(len);
        let want = len.min(self.limits.bytes as u64);
        let mut bytes = Vec::new();
        self.msg.bytes(want, &mut bytes)?;
        let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        self.skip_bytes(len - want, tail)?;
        if want == len {
            return Ok(format!("<{len} bytes: {hex}>"));
        }
        self.cut = true;
        Ok(format!("<{len} bytes: {hex}…, {} more>", len - want))
    }

    fn skip_bytes(&mut self, n: u64, tail: bool) -> Result<(), MsgpackError> {
        if n == 0 {
            Ok(())
        } else if tail {
            self.stopped = true;
            Ok(())
        } else {
            Ok(self.msg.skip_bytes(n)?)
        }
    }

    fn skip_values(&mut self, n: u64, tail: bool) -> Result<(), MsgpackError> {
        if n == 0 {
            Ok(())
        } else if tail {
            self.stopped = true;
            Ok(())
        } else {
            Ok(self.msg.skip_values(n)?)
        }
    }

    fn float(&mut self, f: f64) {
        if f.is_finite() {
            let _ = self.fmt.write_f64(&mut self.out, f);
        } else {
            self.string(&f.to_string());
        }
    }

    fn string(&mut self, text: &str) {
        let _ = write_json_str(&mut self.out, &mut self.fmt, text);
    }

    /// Whether the output reached its limits; from then on nothing is read or written.
    fn check_full(&mut self) -> bool {
        if !self.full {
            self.lines += self.out[self.counted..]
                .iter()
                .filter(|b| **b == b'\n')
                .count();
            self.counted = self.out.len();
            if self.lines >= self.limits.lines || self.out.len() > self.limits.output {
                self.full = true;
                self.stopped = true;
            }
        }
        self.full
    }

    fn finish(self) -> Preview {
        let text = String::from_utf8_lossy(&self.out).into_owned();
        if !self.full {
            return Preview {
                text,
                cut: self.cut,
            };
        }
        let mut end = 0;
        for (n, line) in text.split_inclusive('\n').enumerate() {
            if n >= self.limits.lines || end + line.len() > self.limits.output {
                break;
            }
            end += line.len();
        }
        let mut kept = text[..end].to_owned();
        kept.push_str(&format!(
            "… (the preview stops at {} lines)",
            self.limits.lines
        ));
        Preview {
            text: kept,
            cut: true,
        }
    }
}

/// A Rust type name as `std::any::type_name` spells it, without module paths:
/// `alloc::vec::Vec<alloc::string::String>` becomes `Vec<String>`.
pub fn short_type_name(full: &str) -> String {
    let mut out = String::with_capacity(full.len());
    let mut ident = String::new();
    let mut chars = full.chars().peekable();
    while let Some(c) = chars.next() {
        if c.is_alphanumeric() || c == '_' {
            ident.push(c);
        } else if c == ':' && chars.peek() == Some(&':') {
            chars.next();
            ident.clear();
        } else {
            out.push_str(&ident);
            ident.clear();
            out.push(c);
        }
    }
    out.push_str(&ident);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Serialize;
    use std::collections::BTreeMap;

    fn encoded<T: Serialize>(value: &T) -> Vec<u8> {
        let mut bytes = Vec::new();
        crate::state::encode_field(&mut bytes, value).expect("encodes");
        bytes
    }

    #[derive(Serialize)]
    enum Shape {
        Dot,
        Circle { r: f64 },
        Pair(u8, u8),
    }

    #[derive(Serialize)]
    struct Nested {
        name: String,
        xs: Vec<i64>,
        shapes: Vec<Shape>,
        maybe: Option<u32>,
        #[serde(with = "serde_bytes")]
        raw: Vec<u8>,
        by_id: BTreeMap<u32, String>,
        big: u64,
    }

    #[test]
    fn json_matches_what_serde_json_makes_of_the_rust_value() {
        let value = Nested {
            name: "ünï".into(),
            xs: vec![-1, 0, i64::MIN],
            shapes: vec![Shape::Dot, Shape::Circle { r: 1.5 }, Shape::Pair(1, 2)],
            maybe: None,
            raw: vec![0, 255, 7],
            by_id: BTreeMap::from([(1, "a".into()), (20, "b".into())]),
            big: u64::MAX,
        };
        let json = msgpack_to_json(&encoded(&value)).expect("converts");
        assert_eq!(json, serde_json::to_value(&value).expect("serde_json"));
    }

    #[test]
    fn odd_values_have_documented_forms() {
        assert_eq!(
            msgpack_to_json(&encoded(&f64::NAN)).expect("nan"),
            Json::Null
        );
        let mut bytes = Vec::new();
        rmpv::encode::write_value(&mut bytes, &Msg::Ext(5, vec![1, 2])).expect("ext");
        assert_eq!(
            msgpack_to_json(&bytes).expect("ext"),
            serde_json::json!({"$ext": 5, "data": [1, 2]})
        );
        let map = Msg::Map(vec![(Msg::Array(vec![Msg::from(1)]), Msg::from("x"))]);
        let mut bytes = Vec::new();
        rmpv::encode::write_value(&mut bytes, &map).expect("map");
        assert_eq!(
            msgpack_to_json(&bytes).expect("map"),
            serde_json::json!({"[1]": "x"})
        );
    }

    #[test]
    fn garbage_and_trailing_bytes_are_errors() {
        assert!(matches!(
            msgpack_to_json(&[0xd9]),
            Err(MsgpackError::Decode(_))
        ));
        assert!(matches!(
            msgpack_to_json(&[0x01, 0x02]),
            Err(MsgpackError::Trailing(1))
        ));
        assert!(matches!(
            msgpack_to_json(&[0x92, 0x01]),
            Err(MsgpackError::Decode(_))
        ));
    }

    /// What `dump --json` streams for `bytes`.
    fn streamed_json(bytes: &[u8]) -> Result<String, MsgpackError> {
        let mut out = Vec::new();
        match write_json(
            &mut MsgStream::new(bytes),
            &mut out,
            &mut EscapingFormatter::default(),
        ) {
            Ok(()) => Ok(String::from_utf8(out).expect("JSON is UTF-8")),
            Err(RenderError::Value(e)) => Err(e),
            Err(RenderError::Output(e)) => panic!("a Vec refused a write: {e}"),
        }
    }

    fn preview_of(bytes: &[u8]) -> Result<Preview, MsgpackError> {
        preview(&mut MsgStream::new(bytes), Limits::default())
    }

    fn msgpack(value: &Msg) -> Vec<u8> {
        let mut bytes = Vec::new();
        rmpv::encode::write_value(&mut bytes, value).expect("encodes");
        bytes
    }

    #[test]
    fn streamed_json_is_the_json_of_the_decoded_value() {
        let nested = Nested {
            name: "ünï \"quoted\" \\ \u{1b}[2J \u{9b}".into(),
            xs: vec![-1, 0, i64::MIN],
            shapes: vec![Shape::Dot, Shape::Circle { r: 1.5 }, Shape::Pair(1, 2)],
            maybe: None,
            raw: vec![0, 255, 7],
            by_id: BTreeMap::from([(1, "a".into()), (20, "b".into())]),
            big: u64::MAX,
        };
        let long = "é".repeat(100_000);
        let values = [
            encoded(&nested),
            encoded(&f64::NAN),
            encoded(&1e20f64),
            encoded(&0.1f32),
            encoded(&long),
            msgpack(&Msg::Ext(5, vec![1, 2])),
            msgpack(&Msg::Map(vec![(
                Msg::Array(vec![Msg::from(1)]),
                Msg::from("x"),
            )])),
            // A string that is not UTF-8 (a fixstr of 5 bytes).
            vec![0xa5, b'a', 0xff, b'b', 0xe2, 0x82],
        ];
        for bytes in values {
            let text = streamed_json(&bytes).expect("streams");
            let expected = msgpack_to_json(&bytes).expect("converts");
            assert_eq!(serde_json::from_str::<Json>(&text).expect("JSON"), expected);
        }
        // The layout is serde_json's (whose objects are sorted by key, so none here has two).
        for bytes in [
            encoded(&vec![vec![1u8, 2], vec![]]),
            encoded(&(1.5f64, -3i64, true, (), "a\u{1b}b\u{9b}c\"d\\e")),
            encoded(&BTreeMap::from([(7u8, vec![Some(1u8), None])])),
            msgpack(&Msg::Ext(5, vec![1, 2])),
        ] {
            let text = streamed_json(&bytes).expect("streams");
            let expected = msgpack_to_json(&bytes).expect("converts");
            let layout = serde_json::to_string_pretty(&expected)
                .expect("JSON")
                .replace('\u{9b}', "\\u009b");
            assert_eq!(text, layout);
        }
    }

    #[test]
    fn streamed_json_refuses_garbage_trailing_bytes_and_deep_nesting() {
        assert!(matches!(
            streamed_json(&[0xd9]),
            Err(MsgpackError::Decode(_))
        ));
        assert!(matches!(
            streamed_json(&[0x01, 0x02]),
            Err(MsgpackError::Trailing(1))
        ));
        assert!(matches!(
            streamed_json(&[0x92, 0x01]),
            Err(MsgpackError::Decode(_))
        ));
        assert!(matches!(
            streamed_json(&[0xc1]),
            Err(MsgpackError::Decode(_))
        ));
        // A million nested one-element arrays: an error, not a stack overflow.
        let deep = [vec![0x91; 1_000_000], vec![0x01]].concat();
        assert!(matches!(
            streamed_json(&deep),
            Err(MsgpackError::Decode(DecodeError::DepthLimitExceeded))
        ));
    }

    #[test]
    fn previews_shorten_large_values_and_say_how_much_is_left() {
        let xs: Vec<u64> = (0..1000).collect();
        let p = preview_of(&encoded(&xs)).expect("previews");
        assert!(p.cut);
        assert!(
            p.text.contains("980 more items (1000 in all)"),
            "{}",
            p.text
        );
        let p = preview_of(&encoded(&"x".repeat(1000))).expect("previews");
        assert!(
            p.cut && p.text.contains("… (1000 bytes, 600 more)"),
            "{}",
            p.text
        );
        let p =
            preview_of(&encoded(&serde_bytes::ByteBuf::from(vec![7u8; 100]))).expect("previews");
        assert!(
            p.text
                .contains(&format!("<100 bytes: {}…, 68 more>", "07".repeat(32))),
            "{}",
            p.text
        );
        let p = preview_of(&encoded(&vec![1u8, 2])).expect("previews");
        assert!(!p.cut);
        assert_eq!(p.text, "[\n  1,\n  2\n]");
        let many: BTreeMap<String, u8> = (0..30).map(|i| (format!("k{i:02}"), i)).collect();
        let p = preview_of(&encoded(&many)).expect("previews");
        assert!(
            p.text.contains("\"…\": \"10 more entries (30 in all)\""),
            "{}",
            p.text
        );
        let deep: Vec<Vec<u8>> = (0..20).map(|_| (0..20).collect()).collect();
        let p = preview_of(&encoded(&deep)).expect("previews");
        assert!(
            p.cut && p.text.ends_with("(the preview stops at 200 lines)"),
            "{}",
            p.text
        );
        assert_eq!(p.text.lines().count(), 201);
    }

    #[test]
    fn a_preview_reads_past_what_it_leaves_out_to_show_what_follows() {
        #[derive(Serialize)]
        struct Wide {
            numbers: Vec<u32>,
            text: String,
            nested: Vec<Vec<String>>,
            after: &'static str,
        }
        let wide = Wide {
            numbers: (0..100_000).collect(),
            text: "y".repeat(5000),
            nested: vec![vec!["z".repeat(3000); 30]; 3],
            after: "the last field",
        };
        let p = preview_of(&encoded(&wide)).expect("previews");
        assert!(
            p.text.contains("\"after\": \"the last field\""),
            "{}",
            p.text
        );
        // What is shown of a blob whose end is not needed is all that is read of it.
        let big = encoded(&serde_bytes::ByteBuf::from(vec![1u8; 1 << 20]));
        let mut reader: &[u8] = &big;
        let p = preview(&mut MsgStream::new(&mut reader), Limits::default()).expect("previews");
        assert!(p.text.contains("1048576 bytes"), "{}", p.text);
        assert!(
            reader.len() > 1_000_000,
            "{} bytes left unread",
            reader.len()
        );
    }

    #[test]
    fn a_preview_of_deep_or_bad_blobs_is_bounded_or_an_error() {
        let deep = [vec![0x91; 1_000_000], vec![0x01]].concat();
        let p = preview_of(&deep).expect("previews");
        assert!(p.cut && p.text.contains("[… 1 items]"), "{}", p.text);
        // The same nesting inside a map key, which is rendered whole.
        let key = [vec![0x81], vec![0x91; 1_000_000], vec![0x01, 0x01]].concat();
        assert!(matches!(
            preview_of(&key),
            Err(MsgpackError::Decode(DecodeError::DepthLimitExceeded))
        ));
        assert!(matches!(
            preview_of(&[0x92, 0x01]),
            Err(MsgpackError::Decode(_))
        ));
        assert!(matches!(
            preview_of(&[0x01, 0x02]),
            Err(MsgpackError::Trailing(1))
        ));
        let p = preview_of(&msgpack(&Msg::from("a\u{1b}]52;c;eA==\u{7}\u{9b}"))).expect("previews");
        assert_eq!(p.text, "\"a\\u001b]52;c;eA==\\u0007\\u009b\"");
    }

    #[test]
    fn type_names_lose_their_paths() {
        assert_eq!(
            short_type_name("alloc::vec::Vec<alloc::string::String>"),
            "Vec<String>"
        );
        assert_eq!(
            short_type_name(
                "core::option::Option<(u64, std::collections::hash::map::HashMap<alloc::string::String, f32>)>"
            ),
            "Option<(u64, HashMap<String, f32>)>"
        );
        assert_eq!(short_type_name("[u8; 4]"), "[u8; 4]");
        assert_eq!(short_type_name("u64"), "u64");
    }
}
