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

use rmpv::Value as Msg;
use serde_json::{Map, Number, Value as Json};

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
/// # use flow_runtime::cli::msgpack_to_json;
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
pub(crate) fn decode(bytes: &[u8]) -> Result<Msg, MsgpackError> {
    let mut rest = bytes;
    let value = rmpv::decode::read_value(&mut rest)?;
    if !rest.is_empty() {
        return Err(MsgpackError::Trailing(rest.len()));
    }
    Ok(value)
}

pub(crate) fn to_json_value(value: &Msg) -> Json {
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

/// Limits of the human rendering of a value.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    /// Elements shown per array or map.
    pub items: usize,
    /// Characters shown per string.
    pub chars: usize,
    /// Bytes shown per binary value.
    pub bytes: usize,
    /// Lines of output.
    pub lines: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            items: 20,
            chars: 400,
            bytes: 32,
            lines: 200,
        }
    }
}

/// A value rendered for a terminal: pretty JSON, shortened where it is large. Returns the text
/// and whether anything was left out.
pub(crate) fn render_human(value: &Msg, limits: Limits) -> (String, bool) {
    let mut cut = false;
    let json = shorten(value, limits, &mut cut);
    let text = serde_json::to_string_pretty(&json).unwrap_or_else(|_| json.to_string());
    let total = text.lines().count();
    if total > limits.lines {
        let mut kept: String = text
            .lines()
            .take(limits.lines)
            .collect::<Vec<_>>()
            .join("\n");
        kept.push_str(&format!("\n… {} more lines", total - limits.lines));
        return (kept, true);
    }
    (text, cut)
}

fn shorten(value: &Msg, limits: Limits, cut: &mut bool) -> Json {
    match value {
        Msg::String(s) => {
            let s = utf8(s);
            let n = s.chars().count();
            if n > limits.chars {
                *cut = true;
                let head: String = s.chars().take(limits.chars).collect();
                Json::String(format!("{head}… ({} more characters)", n - limits.chars))
            } else {
                Json::String(s)
            }
        }
        Msg::Binary(bytes) => {
            let shown: String = bytes
                .iter()
                .take(limits.bytes)
                .map(|b| format!("{b:02x}"))
                .collect();
            if bytes.len() > limits.bytes {
                *cut = true;
            }
            let more = if bytes.len() > limits.bytes {
                "…"
            } else {
                ""
            };
            Json::String(format!("<{} bytes: {shown}{more}>", bytes.len()))
        }
        Msg::Array(items) => {
            let mut out: Vec<Json> = items
                .iter()
                .take(limits.items)
                .map(|v| shorten(v, limits, cut))
                .collect();
            if items.len() > limits.items {
                *cut = true;
                out.push(Json::String(format!(
                    "… {} more items ({} in all)",
                    items.len() - limits.items,
                    items.len()
                )));
            }
            Json::Array(out)
        }
        Msg::Map(entries) => {
            let mut map = Map::new();
            for (k, v) in entries.iter().take(limits.items) {
                map.insert(key_text(k), shorten(v, limits, cut));
            }
            if entries.len() > limits.items {
                *cut = true;
                map.insert(
                    "…".to_owned(),
                    Json::String(format!(
                        "{} more entries ({} in all)",
                        entries.len() - limits.items,
                        entries.len()
                    )),
                );
            }
            Json::Object(map)
        }
        Msg::F32(f) if !f.is_finite() => Json::String(f.to_string()),
        Msg::F64(f) if !f.is_finite() => Json::String(f.to_string()),
        other => to_json_value(other),
    }
}

/// A Rust type name as `std::any::type_name` spells it, without module paths:
/// `alloc::vec::Vec<alloc::string::String>` becomes `Vec<String>`.
pub(crate) fn short_type_name(full: &str) -> String {
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

    #[test]
    fn human_rendering_shortens_large_values() {
        let xs: Vec<u64> = (0..1000).collect();
        let (text, cut) = render_human(&decode(&encoded(&xs)).expect("decodes"), Limits::default());
        assert!(cut);
        assert!(text.contains("980 more items (1000 in all)"), "{text}");
        let long = "x".repeat(1000);
        let (text, cut) = render_human(
            &decode(&encoded(&long)).expect("decodes"),
            Limits::default(),
        );
        assert!(cut && text.contains("600 more characters"), "{text}");
        let (text, cut) = render_human(
            &decode(&encoded(&vec![1u8, 2])).expect("decodes"),
            Limits::default(),
        );
        assert!(!cut);
        assert_eq!(text, "[\n  1,\n  2\n]");
        let deep: Vec<Vec<u8>> = (0..20).map(|_| (0..20).collect()).collect();
        let (text, cut) = render_human(
            &decode(&encoded(&deep)).expect("decodes"),
            Limits::default(),
        );
        assert!(cut && text.ends_with("more lines"), "{text}");
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
