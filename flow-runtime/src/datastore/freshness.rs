//! How recently a blob a writer relies on was written: what lets a garbage collection run while
//! runs go on.
//!
//! A collection (`gc`) deletes a blob that no kept run references, but only if the blob was last
//! written before the collection began minus a grace period. A run going on at the same time may
//! reference a blob it did not write: one stored before (a value equal to an older run's, the
//! same data set every night). Its task's done marker, written after the collection read the
//! run, names that blob, which the collection may have found unreferenced. So every writer keeps
//! this rule, as git does when it "freshens" an object it would have written:
//!
//! **A blob a writer relies on without writing it was written at most [`fresh_for`] before.**
//! A lookup that finds the blob whole but last written more than half of that ago renews its
//! time ([`Storage::refresh`](super::Storage::refresh)); the blobs a run remembers
//! ([`KnownBlobs`](super::KnownBlobs)) are taken on trust for half of it only.
//!
//! A blob referenced by a marker written after the collection read that marker's run was so
//! relied on at most the time to store a task's artifacts before the marker, and so is younger
//! than the collection's start minus (`fresh_for` + that time): a grace period longer than
//! that keeps it. `fresh_for` is an hour; the collection's grace is a day by default.
//!
//! `BLOOMING_FRESH_FOR` (a duration, `90s`, `2h`) changes `fresh_for` for every process of a
//! test that must age blobs in seconds (an object store's times cannot be set back).

use std::sync::OnceLock;
use std::time::{Duration, SystemTime};

/// The environment variable that sets [`fresh_for`].
pub const FRESH_FOR_ENV: &str = "BLOOMING_FRESH_FOR";

/// How long a blob a writer relies on may have gone without being written: an hour unless
/// [`FRESH_FOR_ENV`] says otherwise (a value that is not a duration is ignored with a warning).
pub fn fresh_for() -> Duration {
    static FRESH_FOR: OnceLock<Duration> = OnceLock::new();
    *FRESH_FOR.get_or_init(|| {
        const DEFAULT: Duration = Duration::from_secs(3600);
        match std::env::var(FRESH_FOR_ENV) {
            Ok(text) => match humantime::parse_duration(text.trim()) {
                Ok(duration) if !duration.is_zero() => duration,
                _ => {
                    tracing::warn!(
                        "{FRESH_FOR_ENV}={text:?} is not a duration such as `1h` or `90s`; using 1h"
                    );
                    DEFAULT
                }
            },
            Err(_) => DEFAULT,
        }
    })
}

/// How long a found or written blob is taken as fresh without looking again: half of
/// [`fresh_for`], so that a renewal at the end of it still keeps the rule.
pub fn trust_for() -> Duration {
    fresh_for() / 2
}

/// Whether a blob last written at `modified` must be refreshed before a writer relies on it.
/// A time in the future (another machine's clock) counts as fresh.
pub fn needs_refresh(modified: SystemTime) -> bool {
    SystemTime::now()
        .duration_since(modified)
        .is_ok_and(|age| age > trust_for())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_blob_written_now_is_fresh_and_one_from_yesterday_is_not() {
        assert!(!needs_refresh(SystemTime::now()));
        assert!(!needs_refresh(SystemTime::now() + Duration::from_secs(60)));
        assert!(needs_refresh(
            SystemTime::now() - Duration::from_secs(24 * 3600)
        ));
        assert!(trust_for() < fresh_for());
    }
}
