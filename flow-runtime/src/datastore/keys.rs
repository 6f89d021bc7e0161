//! Validated datastore keys.
//!
//! Every object in a datastore is addressed by a [`Key`]: a relative path of `/`-separated segments,
//! each made of ASCII letters, digits, `.`, `_` and `-`. Run ids, step names and task ids become
//! segments, and they can come from the command line or from another machine, so a key is validated
//! once when it is built and can then be trusted: it cannot name anything outside the datastore's
//! root (no `..`, no absolute path, no backslash), it means the same on a local file system and on an
//! object store, and it never collides with the temporary files writers leave while working (those
//! start with `.`, which a segment may not).

use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// The longest segment accepted, in bytes: the usual limit of a file name.
pub const MAX_SEGMENT_LEN: usize = 255;

/// A relative, validated path to an object (or a prefix of objects) in a datastore.
///
/// Built with [`Key::parse`], [`Key::segment`] or [`Key::join`]; each rejects anything that could
/// escape the datastore or be read differently by another storage backend.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Key(String);

impl Key {
    /// Parses a `/`-separated relative path, validating every segment.
    ///
    /// # Errors
    ///
    /// Rejects an empty path, an absolute path, backslashes, empty segments, `.` and `..`,
    /// segments starting with `.`, characters outside `[A-Za-z0-9._-]` and over-long segments;
    /// the error says which segment and why.
    pub fn parse(path: &str) -> Result<Key, KeyError> {
        let fail = |problem| Err(KeyError::new(path, problem));
        if path.is_empty() {
            return fail(KeyProblem::Empty);
        }
        if path.starts_with('/') {
            return fail(KeyProblem::Absolute);
        }
        if path.contains('\\') {
            return fail(KeyProblem::Backslash);
        }
        for (index, segment) in path.split('/').enumerate() {
            if segment.is_empty() {
                return fail(KeyProblem::EmptySegment { index });
            }
            if let Err(problem) = check_segment(segment) {
                return fail(problem);
            }
        }
        Ok(Key(path.to_owned()))
    }

    /// A key of exactly one segment, e.g. a run id on its own.
    ///
    /// # Errors
    ///
    /// As [`Key::parse`], and `/` is rejected like any other disallowed character.
    pub fn segment(name: &str) -> Result<Key, KeyError> {
        validate_segment(name)?;
        Ok(Key(name.to_owned()))
    }

    /// This key with one more segment, e.g. `runs/12` joined with a step name.
    ///
    /// # Errors
    ///
    /// As [`Key::segment`]: `segment` must be a single valid segment, so a value like `../x`
    /// cannot climb out of `self`.
    pub fn join(&self, segment: &str) -> Result<Key, KeyError> {
        validate_segment(segment)?;
        Ok(self.join_unchecked(segment))
    }

    /// This key followed by all segments of `rest`; infallible because both are valid.
    pub fn join_key(&self, rest: &Key) -> Key {
        self.join_unchecked(&rest.0)
    }

    /// The key as a `/`-separated string, e.g. for an object store path or a message.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The segments of the key, first to last; each is safe to use as a file name.
    pub fn segments(&self) -> impl DoubleEndedIterator<Item = &str> + '_ {
        self.0.split('/')
    }

    /// The last segment: the object's own name within its prefix.
    pub fn name(&self) -> &str {
        self.0.rsplit('/').next().unwrap_or(&self.0)
    }

    /// The key without its last segment, or `None` for a single-segment key (whose parent is the
    /// datastore root).
    pub fn parent(&self) -> Option<Key> {
        self.0
            .rsplit_once('/')
            .map(|(parent, _)| Key(parent.to_owned()))
    }

    /// Whether `prefix` is this key or one of its ancestors, segment-wise (`runs/1` is not a
    /// prefix of `runs/10`).
    pub fn starts_with(&self, prefix: &Key) -> bool {
        match self.0.strip_prefix(&prefix.0) {
            Some(rest) => rest.is_empty() || rest.starts_with('/'),
            None => false,
        }
    }

    fn join_unchecked(&self, rest: &str) -> Key {
        Key(format!("{}/{}", self.0, rest))
    }
}

/// Checks that `segment` can be one segment of a [`Key`].
///
/// For callers that store a name (a run id, a tag) before turning it into a key, so that a bad
/// value is rejected when it enters the system rather than when it is first used as a path.
///
/// # Errors
///
/// See [`KeyProblem`] for the rules.
pub fn validate_segment(segment: &str) -> Result<(), KeyError> {
    if segment.is_empty() {
        return Err(KeyError::new(segment, KeyProblem::Empty));
    }
    if segment.starts_with('/') {
        return Err(KeyError::new(segment, KeyProblem::Absolute));
    }
    if segment.contains('\\') {
        return Err(KeyError::new(segment, KeyProblem::Backslash));
    }
    if segment.contains('/') {
        // Name the escape attempt if there is one: it is the more useful diagnosis.
        let problem = segment
            .split('/')
            .find(|part| *part == "." || *part == "..")
            .map_or(KeyProblem::Separator, |part| KeyProblem::DotSegment {
                segment: part.to_owned(),
            });
        return Err(KeyError::new(segment, problem));
    }
    check_segment(segment).map_err(|problem| KeyError::new(segment, problem))
}

/// The rules for one non-empty segment.
fn check_segment(segment: &str) -> Result<(), KeyProblem> {
    if segment == "." || segment == ".." {
        return Err(KeyProblem::DotSegment {
            segment: segment.to_owned(),
        });
    }
    if segment.starts_with('.') {
        return Err(KeyProblem::LeadingDot {
            segment: segment.to_owned(),
        });
    }
    if let Some(character) = segment
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        return Err(KeyProblem::Character {
            segment: segment.to_owned(),
            character,
        });
    }
    if segment.len() > MAX_SEGMENT_LEN {
        return Err(KeyProblem::TooLong {
            segment: segment.chars().take(32).collect::<String>() + "…",
            len: segment.len(),
        });
    }
    Ok(())
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Key({:?})", self.0)
    }
}

impl AsRef<str> for Key {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl FromStr for Key {
    type Err = KeyError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Key::parse(s)
    }
}

impl TryFrom<String> for Key {
    type Error = KeyError;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        Key::parse(&value)
    }
}

impl From<Key> for String {
    fn from(key: Key) -> Self {
        key.0
    }
}

/// A string that cannot be a datastore key, with the reason.
///
/// The message names what the string was meant to be (a "datastore key" unless the caller says
/// otherwise with [`KeyError::describing`], e.g. "run id"), the offending input and the segment at
/// fault: `invalid run id "../x": segment ".." refers to a parent directory …`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {what} {input:?}: {problem}")]
pub struct KeyError {
    what: Cow<'static, str>,
    input: String,
    problem: KeyProblem,
}

impl KeyError {
    fn new(input: &str, problem: KeyProblem) -> Self {
        KeyError {
            what: Cow::Borrowed("datastore key"),
            input: input.to_owned(),
            problem,
        }
    }

    /// Names what the rejected string was meant to be, for the message ("run id", "step name").
    #[must_use]
    pub fn describing(mut self, what: impl Into<Cow<'static, str>>) -> Self {
        self.what = what.into();
        self
    }

    /// The rejected string.
    pub fn input(&self) -> &str {
        &self.input
    }

    /// Why it was rejected.
    pub fn problem(&self) -> &KeyProblem {
        &self.problem
    }
}

/// Why a string is not a valid key or segment.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyProblem {
    /// Nothing to name an object by.
    #[error("it is empty")]
    Empty,
    /// Starts with `/`: it would name a path outside the datastore.
    #[error("it is an absolute path; keys are relative to the datastore root")]
    Absolute,
    /// Contains `\`, which some platforms read as a separator.
    #[error("it contains a backslash; segments are separated by `/`")]
    Backslash,
    /// A `/` where a single segment was expected (a run id, a step name).
    #[error("it contains `/`; a single name was expected")]
    Separator,
    /// Two separators in a row, or one at the end.
    #[error("segment {index} is empty (a doubled or trailing `/`)")]
    EmptySegment {
        /// Zero-based position of the empty segment.
        index: usize,
    },
    /// `.` or `..`: could move out of the intended prefix or the datastore itself.
    #[error(
        "segment {segment:?} refers to the current or a parent directory and could escape the datastore"
    )]
    DotSegment {
        /// The segment.
        segment: String,
    },
    /// Names starting with `.` are reserved for temporary files.
    #[error("segment {segment:?} starts with `.`, which is reserved for temporary files")]
    LeadingDot {
        /// The segment.
        segment: String,
    },
    /// A character outside `[A-Za-z0-9._-]`.
    #[error(
        "segment {segment:?} contains {character:?}; only ASCII letters, digits, `.`, `_` and `-` are allowed"
    )]
    Character {
        /// The segment.
        segment: String,
        /// The first disallowed character.
        character: char,
    },
    /// Longer than [`MAX_SEGMENT_LEN`] bytes.
    #[error("segment {segment:?} is {len} bytes long; at most {MAX_SEGMENT_LEN} are allowed")]
    TooLong {
        /// The start of the segment.
        segment: String,
        /// Its length in bytes.
        len: usize,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_normal_ids() {
        for ok in [
            "runs",
            "runs/1699999999-ab12/train/3",
            "blobs/ab/ab12cd",
            "my_flow/run-2024.01.01",
            "a.b",
            "x..y",
            "A-Z_0-9",
        ] {
            let key = Key::parse(ok).unwrap();
            assert_eq!(key.as_str(), ok);
            assert_eq!(key.to_string(), ok);
        }
        let key = Key::segment("runs")
            .unwrap()
            .join("17")
            .unwrap()
            .join("start")
            .unwrap();
        assert_eq!(key.as_str(), "runs/17/start");
        assert_eq!(key.segments().collect::<Vec<_>>(), ["runs", "17", "start"]);
        assert_eq!(key.name(), "start");
        assert_eq!(key.parent().unwrap().as_str(), "runs/17");
        assert_eq!(Key::parse("runs").unwrap().parent(), None);
        assert_eq!(
            key.join_key(&Key::parse("a/b").unwrap()).as_str(),
            "runs/17/start/a/b"
        );
    }

    type Expect = fn(&KeyProblem) -> bool;

    #[test]
    fn rejects_escapes_and_malformed_keys() {
        let cases: [(&str, Expect); 12] = [
            ("", |p| matches!(p, KeyProblem::Empty)),
            ("..", |p| matches!(p, KeyProblem::DotSegment { .. })),
            (".", |p| matches!(p, KeyProblem::DotSegment { .. })),
            ("../x", |p| matches!(p, KeyProblem::DotSegment { .. })),
            (
                "a/../b",
                |p| matches!(p, KeyProblem::DotSegment { segment } if segment == ".."),
            ),
            (
                "a/./b",
                |p| matches!(p, KeyProblem::DotSegment { segment } if segment == "."),
            ),
            ("/etc", |p| matches!(p, KeyProblem::Absolute)),
            ("/abs/path", |p| matches!(p, KeyProblem::Absolute)),
            ("a\\..\\b", |p| matches!(p, KeyProblem::Backslash)),
            ("a//b", |p| {
                matches!(p, KeyProblem::EmptySegment { index: 1 })
            }),
            ("a/b/", |p| {
                matches!(p, KeyProblem::EmptySegment { index: 2 })
            }),
            ("a/.tmp123", |p| matches!(p, KeyProblem::LeadingDot { .. })),
        ];
        for (input, expected) in cases {
            let err = Key::parse(input).unwrap_err();
            assert!(expected(err.problem()), "{input:?}: {err}");
            assert_eq!(err.input(), input);
        }
        for bad in ["a b", "C:x", "é", "a\0b", "run*"] {
            let err = Key::parse(bad).unwrap_err();
            assert!(
                matches!(err.problem(), KeyProblem::Character { .. }),
                "{bad:?}: {err}"
            );
        }
        let long = "x".repeat(MAX_SEGMENT_LEN + 1);
        assert!(matches!(
            Key::parse(&long).unwrap_err().problem(),
            KeyProblem::TooLong { .. }
        ));
        assert!(Key::parse(&"x".repeat(MAX_SEGMENT_LEN)).is_ok());
    }

    #[test]
    fn join_takes_exactly_one_segment() {
        let runs = Key::segment("runs").unwrap();
        for bad in ["../x", "..", "a/b", "/etc", "", ".hidden", "a/./b"] {
            assert!(runs.join(bad).is_err(), "{bad:?}");
            assert!(Key::segment(bad).is_err(), "{bad:?}");
        }
        assert_eq!(
            *Key::segment("a/b").unwrap_err().problem(),
            KeyProblem::Separator
        );
    }

    #[test]
    fn messages_say_which_component_and_why() {
        let err = Key::segment("runs")
            .unwrap()
            .join("../x")
            .unwrap_err()
            .describing("run id");
        assert_eq!(
            err.to_string(),
            "invalid run id \"../x\": segment \"..\" refers to the current or a parent \
             directory and could escape the datastore"
        );
        let err = Key::parse("/etc/passwd").unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid datastore key \"/etc/passwd\": it is an absolute path; \
             keys are relative to the datastore root"
        );
        let err = Key::segment("my step").unwrap_err().describing("step name");
        assert!(err.to_string().contains("contains ' '"), "{err}");
    }

    #[test]
    fn prefixes_are_segment_wise() {
        let key = Key::parse("runs/10/start").unwrap();
        assert!(key.starts_with(&Key::parse("runs/10").unwrap()));
        assert!(key.starts_with(&key));
        assert!(!key.starts_with(&Key::parse("runs/1").unwrap()));
    }

    #[test]
    fn serde_validates() {
        let key: Key = serde_json::from_str("\"runs/1\"").unwrap();
        assert_eq!(key.as_str(), "runs/1");
        assert_eq!(serde_json::to_string(&key).unwrap(), "\"runs/1\"");
        assert!(serde_json::from_str::<Key>("\"../etc\"").is_err());
    }
}
