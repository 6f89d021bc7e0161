//! Run ids: sortable by start time and unique across processes and machines.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::datastore::{KeyError, validate_segment};

/// A new run id such as `20261127T021328123Z-3f9a1c7e`.
///
/// The time prefix makes ids sort by start time; the suffix hashes the host, process, time in
/// nanoseconds and a counter, so two runs started in the same millisecond on one datastore still
/// differ. Creating the run record with put-if-absent makes a collision an error, not a merge.
pub fn new_run_id() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let now = SystemTime::now();
    let stamp = humantime::format_rfc3339_millis(now).to_string();
    let compact: String = stamp
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .collect();
    let nanos = now
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let mut hasher = blake3::Hasher::new();
    hasher.update(&nanos.to_le_bytes());
    hasher.update(&std::process::id().to_le_bytes());
    hasher.update(&COUNTER.fetch_add(1, Ordering::Relaxed).to_le_bytes());
    hasher.update(hostname().as_bytes());
    hasher.update(format!("{:?}", std::thread::current().id()).as_bytes());
    let suffix = hasher.finalize().to_hex();
    format!("{compact}-{}", &suffix[..8])
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

/// The machine's name, for run records and run ids.
pub(crate) fn hostname() -> String {
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
        let many: std::collections::HashSet<String> = (0..1000).map(|_| new_run_id()).collect();
        assert_eq!(many.len(), 1000);
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
