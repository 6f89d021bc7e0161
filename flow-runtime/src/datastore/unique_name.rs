//! Names no other writer picks: the local backend's temporary files, the S3 backend's staging
//! and probe objects, and the random part of run ids ([`new_run_id`](crate::run::new_run_id)).

use std::hash::{BuildHasher, Hasher};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

/// `prefix` followed by 24 hex digits that no other writer, in this process or another, on this
/// machine or another, draws.
///
/// The digits are two SipHash values keyed by the standard library's random keys, which each
/// thread seeds from the operating system's random source and every call changes, over a
/// per-process counter and the process id. That costs no system call (a name is drawn for every
/// local write) and, unlike a hash of the time and the host, stays unique across machines
/// whose clocks agree and whose names clash. The local backend still creates its files
/// exclusively; an object store cannot, so the 96 bits are what keeps two staging objects apart.
pub(crate) fn unique_name(prefix: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    // `getpid` is a system call each time; this process never forks without exec.
    static PID: OnceLock<u32> = OnceLock::new();
    let draw = || {
        let mut hasher = std::hash::RandomState::new().build_hasher();
        hasher.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
        hasher.write_u32(*PID.get_or_init(std::process::id));
        hasher.finish()
    };
    let (high, low) = (draw(), draw());
    format!("{prefix}{high:016x}{:08x}", low & 0xffff_ffff)
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;
    use crate::datastore::Key;

    #[test]
    fn unique_names_differ() {
        let names: HashSet<String> = (0..1000).map(|_| unique_name("upload-")).collect();
        assert_eq!(names.len(), 1000);
        assert!(names.iter().all(|n| Key::segment(n).is_ok()));
    }

    #[test]
    fn names_differ_across_threads() {
        let names: HashSet<String> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..8)
                .map(|_| scope.spawn(|| (0..500).map(|_| unique_name(".tmp")).collect::<Vec<_>>()))
                .collect();
            handles
                .into_iter()
                .flat_map(|h| h.join().unwrap())
                .collect()
        });
        assert_eq!(names.len(), 4000);
        assert!(names.iter().all(|n| n.len() == ".tmp".len() + 24));
    }
}
