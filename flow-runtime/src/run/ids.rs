//! Run, task and step ids: what names a run, a task within its step, and a step, as held by
//! records, handles and the executor (functions that only pass an id along take `&str`, which
//! each of these derefs to). Run ids made here sort by start time and are unique across
//! processes and machines.

use std::borrow::Borrow;
use std::ffi::OsStr;
use std::fmt;
use std::ops::Deref;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::datastore::unique_name::unique_name;
use crate::datastore::{KeyError, validate_segment};

/// A `String` newtype for an id: stored exactly as the string (`#[serde(transparent)]`), and
/// usable as a `&str` wherever one is read (`Deref`, `AsRef` as `String` has them, `Borrow`,
/// comparisons with `str`, `&str` and `String` both ways).
macro_rules! string_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// The id as a string slice.
            pub fn as_str(&self) -> &str {
                &self.0
            }

            /// The id as the `String` it wraps.
            pub fn into_string(self) -> String {
                self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                // As `str` does: widths and alignment apply (`{:<28}` in listings).
                f.pad(&self.0)
            }
        }

        impl Deref for $name {
            type Target = str;

            fn deref(&self) -> &str {
                &self.0
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        // As `String` has them: an id joins a path (`dir.join(&run_id)`), names a command's
        // argument, and is written as bytes.
        impl AsRef<Path> for $name {
            fn as_ref(&self) -> &Path {
                self.0.as_ref()
            }
        }

        impl AsRef<OsStr> for $name {
            fn as_ref(&self) -> &OsStr {
                self.0.as_ref()
            }
        }

        impl AsRef<[u8]> for $name {
            fn as_ref(&self) -> &[u8] {
                self.0.as_bytes()
            }
        }

        impl Borrow<str> for $name {
            fn borrow(&self) -> &str {
                &self.0
            }
        }

        impl From<String> for $name {
            fn from(id: String) -> Self {
                $name(id)
            }
        }

        impl From<&str> for $name {
            fn from(id: &str) -> Self {
                $name(id.to_owned())
            }
        }

        impl From<&String> for $name {
            fn from(id: &String) -> Self {
                $name(id.clone())
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0
            }
        }

        impl PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                self.0 == other
            }
        }

        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                self.0 == *other
            }
        }

        impl PartialEq<String> for $name {
            fn eq(&self, other: &String) -> bool {
                &self.0 == other
            }
        }

        impl PartialEq<$name> for str {
            fn eq(&self, other: &$name) -> bool {
                self == other.0
            }
        }

        impl PartialEq<$name> for &str {
            fn eq(&self, other: &$name) -> bool {
                *self == other.0
            }
        }

        impl PartialEq<$name> for String {
            fn eq(&self, other: &$name) -> bool {
                *self == other.0
            }
        }

        // What comparisons of a `&str` accessor with an owned string allowed.
        impl PartialEq<String> for &$name {
            fn eq(&self, other: &String) -> bool {
                self.0 == *other
            }
        }

        impl PartialEq<&$name> for String {
            fn eq(&self, other: &&$name) -> bool {
                *self == other.0
            }
        }

        impl PartialEq<$name> for &$name {
            fn eq(&self, other: &$name) -> bool {
                self.0 == other.0
            }
        }

        impl PartialEq<&$name> for $name {
            fn eq(&self, other: &&$name) -> bool {
                self.0 == other.0
            }
        }
    };
}

string_id! {
    /// The id of a run of a flow: one datastore key segment, such as
    /// `20261127T021328123Z-3f9a1c7e` (made by [`new_run_id`] when a run starts) or a name given
    /// by hand (`init --run-id`, which Argo fills with its workflow's name; see
    /// [`validate_run_id`]). Stored as the plain string, in run records, task metadata and the
    /// `latest` pointers.
    ///
    /// It reads as a `&str` wherever one is wanted, and compares with strings:
    ///
    /// ```
    /// use flow_runtime::run::RunId;
    ///
    /// let id = RunId::from("20261127T021328123Z-3f9a1c7e");
    /// assert_eq!(id, "20261127T021328123Z-3f9a1c7e");
    /// assert!(id.starts_with("2026"));
    /// assert_eq!(serde_json::to_string(&id).unwrap(), r#""20261127T021328123Z-3f9a1c7e""#);
    /// let name: String = id.into_string();
    /// assert_eq!(name.len(), 28);
    /// ```
    RunId
}

string_id! {
    /// The id of a task within its step: `0` outside every foreach, else the indices of its
    /// foreach elements, outermost first, joined by `-` (`3`, `3-0`). The executor derives it
    /// from the task's open foreach splits when it schedules the task; it is the task's key
    /// segment under its step, and is stored in task specs and metadata.
    TaskId
}

string_id! {
    /// The name of a step of a flow, as held by a task's path and spec: the name of the step's
    /// method in the flow's `impl` block (see [`FlowGraph`](crate::FlowGraph)), which is also
    /// the step's key segment in a run.
    StepName
}

/// A new run id such as `20261127T021328123Z-3f9a1c7e`.
///
/// The time prefix (to the millisecond, UTC) makes ids sort by start time; the suffix is the
/// first 8 hex digits of a name from the datastore's unique-name generator (random keys drawn
/// by the standard library, a per-process counter and the process id), so two runs started in
/// the same millisecond on one datastore still differ. Creating the run record with
/// put-if-absent makes a collision an error, not a merge.
pub fn new_run_id() -> RunId {
    let stamp = humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string();
    let mut id: String = stamp
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .collect();
    id.push('-');
    id.push_str(&unique_name("")[..8]);
    RunId(id)
}

/// Checks that `id` can be a run id: one datastore key segment (ASCII letters, digits, `.`, `_`
/// and `-`, not starting with `.`, at most [`MAX_SEGMENT_LEN`](crate::datastore::MAX_SEGMENT_LEN)
/// bytes). Ids made by [`new_run_id`] always are; ids given by hand (`init --run-id`, which Argo
/// fills with its own names) are held to the same rule, so nothing read as a run id can name a
/// path outside its run.
///
/// # Errors
///
/// The rule `id` breaks. The error quotes `id`: give it to a user only when the user typed it.
pub fn validate_run_id(id: &str) -> Result<(), KeyError> {
    validate_segment(id).map_err(|e| e.describing("run id"))
}

/// The machine's name, for run records; looked up once per process.
pub(crate) fn hostname() -> String {
    static HOST: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    HOST.get_or_init(look_up_hostname).clone()
}

fn look_up_hostname() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| std::fs::read_to_string("/proc/sys/kernel/hostname").ok())
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|| "localhost".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unique_valid_and_sorted_by_time() {
        let a = new_run_id();
        std::thread::sleep(std::time::Duration::from_millis(2));
        let b = new_run_id();
        assert_ne!(a, b);
        assert!(a < b, "{a} should sort before {b}");
        validate_run_id(&a).expect("a run id is a valid key segment");
        let many: std::collections::HashSet<RunId> = (0..1000).map(|_| new_run_id()).collect();
        assert_eq!(many.len(), 1000);
    }

    #[test]
    fn run_ids_have_a_time_prefix_and_an_eight_digit_suffix() {
        let id = new_run_id();
        let (stamp, suffix) = id.split_once('-').expect("a dash");
        assert_eq!(stamp.len(), "20261127T021328123Z".len(), "{id}");
        assert!(stamp.ends_with('Z') && stamp.as_bytes()[8] == b'T', "{id}");
        assert_eq!(suffix.len(), 8, "{id}");
        assert!(
            suffix
                .bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        );
    }

    #[test]
    fn ids_are_stored_as_their_strings() {
        let id = RunId::from("20261127T021328123Z-3f9a1c7e");
        let plain = "20261127T021328123Z-3f9a1c7e".to_string();
        assert_eq!(
            serde_json::to_vec(&id).unwrap(),
            serde_json::to_vec(&plain).unwrap()
        );
        assert_eq!(
            rmp_serde::to_vec_named(&id).unwrap(),
            rmp_serde::to_vec_named(&plain).unwrap()
        );
        let back: RunId = serde_json::from_str(r#""20261127T021328123Z-3f9a1c7e""#).unwrap();
        assert_eq!(back, id);
        let task: TaskId = rmp_serde::from_slice(&rmp_serde::to_vec(&"3-0").unwrap()).unwrap();
        assert_eq!(task, "3-0");
    }

    #[test]
    fn ids_compare_and_borrow_as_strings() {
        let step = StepName::from("train".to_string());
        assert_eq!(step, "train");
        assert_eq!("train", step);
        assert_eq!(step, *"train");
        assert_eq!(step, "train".to_string());
        assert_eq!("train".to_string(), step);
        assert_eq!(step.as_str(), "train");
        assert_eq!(step.to_string(), "train");
        assert_eq!(format!("{step:>6}"), " train");
        let set: std::collections::HashSet<StepName> = [step.clone()].into();
        assert!(set.contains("train"));
        let mut tasks = vec![TaskId::from("1"), TaskId::from("0")];
        tasks.sort();
        assert_eq!(tasks, ["0", "1"]);
        assert_eq!(String::from(step.clone()), step.into_string());
    }

    #[test]
    fn run_ids_are_single_plain_segments() {
        for good in ["20261127T021328123Z-3f9a1c7e", "argo-wf-x7k2p", "a.b_c"] {
            validate_run_id(good).expect(good);
        }
        for bad in ["", "../x", "a/b", ".hidden", "has space", "\u{1b}[31m", "ü"] {
            let e = validate_run_id(bad).expect_err(bad);
            assert!(e.to_string().contains("run id"), "{e}");
        }
    }
}
