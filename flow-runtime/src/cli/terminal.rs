//! Keeping text from the datastore from acting on the terminal.
//!
//! Artifacts, logs, run records and task metadata hold whatever a step or another machine put
//! there, and a terminal acts on control characters: ESC starts CSI sequences (clear the screen,
//! move the cursor, recolour) and OSC sequences (OSC 52 writes the clipboard, OSC 8 makes links),
//! BEL ends them, backspace and carriage return overwrite what was printed, and in UTF-8 the C1
//! controls U+0080–U+009F are a second way to write the same. So every control character but
//! newline and tab is shown as a visible escape: `\x1b` for C0 controls and DEL, `\u{9b}` for C1
//! controls, and, in byte streams that are not UTF-8, `\xNN` for each byte that is not.
//!
//! JSON output escapes control characters the JSON way instead (`\u001b`), which JSON readers
//! undo; [`EscapingFormatter`] adds DEL and the C1 controls, which `serde_json` writes raw.

use std::borrow::Cow;
use std::fmt::Write as _;
use std::io::{self, Write};

/// Whether `c` is shown as an escape rather than written.
fn must_escape(c: char) -> bool {
    c.is_control() && !matches!(c, '\n' | '\t')
}

fn push_escape(out: &mut String, c: char) {
    let code = u32::from(c);
    // Writing to a `String` cannot fail.
    let _ = if code < 0x80 {
        write!(out, "\\x{code:02x}")
    } else {
        write!(out, "\\u{{{code:x}}}")
    };
}

/// `text` with every control character but newline and tab replaced by a visible escape.
pub(crate) fn escape_controls(text: &str) -> Cow<'_, str> {
    if !text.chars().any(must_escape) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        if must_escape(c) {
            push_escape(&mut out, c);
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// A writer that passes text on with its control characters escaped (see the module's doc), for
/// output that is all text for people. Bytes that are not UTF-8 are shown as `\xNN`; a character
/// split between two writes is put back together first.
pub(crate) struct ControlEscaper<W: Write> {
    inner: W,
    /// The start of a UTF-8 sequence the last write ended in the middle of (at most 3 bytes).
    pending: Vec<u8>,
}

impl<W: Write> ControlEscaper<W> {
    pub fn new(inner: W) -> Self {
        ControlEscaper {
            inner,
            pending: Vec::new(),
        }
    }

    /// Writes out what is left of an unfinished UTF-8 sequence (as `\xNN` escapes) and flushes.
    pub fn finish(&mut self) -> io::Result<()> {
        let pending = std::mem::take(&mut self.pending);
        let mut shown = String::new();
        for byte in pending {
            let _ = write!(shown, "\\x{byte:02x}");
        }
        self.inner.write_all(shown.as_bytes())?;
        self.inner.flush()
    }

    fn write_escaped(&mut self, bytes: &[u8]) -> io::Result<()> {
        let mut rest = bytes;
        let mut shown = String::with_capacity(bytes.len() + 16);
        while !rest.is_empty() {
            match std::str::from_utf8(rest) {
                Ok(text) => {
                    shown.push_str(&escape_controls(text));
                    rest = &[];
                }
                Err(e) => {
                    let (valid, after) = rest.split_at(e.valid_up_to());
                    // `valid` is UTF-8 up to `valid_up_to` by the error's own account.
                    shown.push_str(&escape_controls(&String::from_utf8_lossy(valid)));
                    match e.error_len() {
                        Some(bad) => {
                            for byte in &after[..bad] {
                                let _ = write!(shown, "\\x{byte:02x}");
                            }
                            rest = &after[bad..];
                        }
                        None => {
                            // An incomplete sequence at the end: the next write may finish it.
                            self.pending.extend_from_slice(after);
                            rest = &[];
                        }
                    }
                }
            }
        }
        self.inner.write_all(shown.as_bytes())
    }
}

impl<W: Write> Write for ControlEscaper<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.pending.is_empty() {
            self.write_escaped(buf)?;
        } else {
            let mut joined = std::mem::take(&mut self.pending);
            joined.extend_from_slice(buf);
            self.write_escaped(&joined)?;
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

pub(crate) use crate::client::value::EscapingFormatter;

/// Writes `value` as pretty JSON with every control character escaped, and a newline.
pub(crate) fn write_json_line<T: serde::Serialize + ?Sized>(
    out: &mut dyn Write,
    value: &T,
) -> io::Result<()> {
    let mut serializer =
        serde_json::Serializer::with_formatter(&mut *out, EscapingFormatter::default());
    value.serialize(&mut serializer).map_err(io::Error::other)?;
    out.write_all(b"\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOSTILE: &str = "a\x1b]52;c;aGVsbG8=\x07b\x1b[2Jc\u{9b}31md\x08e\rf\x7f\n\tg";

    #[test]
    fn text_keeps_newlines_and_tabs_and_shows_every_other_control() {
        assert_eq!(
            escape_controls(HOSTILE),
            r"a\x1b]52;c;aGVsbG8=\x07b\x1b[2Jc\u{9b}31md\x08e\x0df\x7f".to_owned() + "\n\tg"
        );
        assert!(matches!(escape_controls("plain ünïcode"), Cow::Borrowed(_)));
    }

    #[test]
    fn a_stream_escapes_across_writes_and_shows_bytes_that_are_not_utf8() {
        let mut out = Vec::new();
        let mut escaper = ControlEscaper::new(&mut out);
        // U+009B is C2 9B in UTF-8: split between two writes, it is still recognised.
        escaper.write_all(b"x\xc2").expect("write");
        escaper.write_all(b"\x9by\xff\x1b").expect("write");
        escaper.write_all(b"\xe2\x82").expect("write");
        escaper.finish().expect("finish");
        assert_eq!(
            String::from_utf8(out).expect("UTF-8"),
            r"x\u{9b}y\xff\x1b\xe2\x82"
        );
    }

    #[test]
    fn json_escapes_every_control_and_reads_back_unchanged() {
        let mut out = Vec::new();
        write_json_line(&mut out, &serde_json::json!({ "k\u{85}": [HOSTILE] })).expect("write");
        let text = String::from_utf8(out).expect("UTF-8");
        assert!(
            !text.chars().any(|c| c.is_control() && c != '\n'),
            "{text:?}"
        );
        assert!(
            text.contains(r"\u009b31m") && text.contains(r"\u007f"),
            "{text}"
        );
        assert!(
            text.starts_with("{\n  \"k\\u0085\": [\n    \"a\\u001b]52"),
            "{text}"
        );
        let back: serde_json::Value = serde_json::from_str(&text).expect("JSON");
        assert_eq!(back, serde_json::json!({ "k\u{85}": [HOSTILE] }));
    }
}
