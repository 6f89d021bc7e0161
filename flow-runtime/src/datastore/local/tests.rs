//! The local backend's own tests; the contract it shares with every backend is checked by
//! [`conformance`](crate::datastore::conformance).

use std::io::Write;

use super::*;
use crate::datastore::conformance::{self, Backend};

fn key(s: &str) -> Key {
    Key::parse(s).unwrap()
}

fn store() -> (tempfile::TempDir, LocalStorage) {
    let dir = tempfile::tempdir().unwrap();
    let storage = LocalStorage::open(dir.path().join("ds")).unwrap();
    (dir, storage)
}

/// Every file under the root, temporary ones included, relative and sorted.
fn files_on_disk(root: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut dirs = vec![root.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in fs::read_dir(dir).unwrap() {
            let entry = entry.unwrap();
            if entry.file_type().unwrap().is_dir() {
                dirs.push(entry.path());
            } else {
                let rel = entry.path().strip_prefix(root).unwrap().to_owned();
                out.push(rel.to_string_lossy().into_owned());
            }
        }
    }
    out.sort();
    out
}

/// A local datastore in a temporary directory, for the conformance suite.
struct LocalBackend {
    dir: tempfile::TempDir,
    storage: LocalStorage,
}

impl LocalBackend {
    /// With sync on, as a datastore is by default; `walking` (without sync, for speed) resolves
    /// paths one component at a time, as where `openat2` is missing.
    fn fresh(walking: bool) -> Box<dyn Backend> {
        let dir = tempfile::tempdir().unwrap();
        let storage = LocalStorage::open(dir.path().join("ds")).unwrap();
        let storage = if walking {
            storage.with_sync(false).walking()
        } else {
            storage
        };
        Box::new(LocalBackend { dir, storage })
    }
}

impl Backend for LocalBackend {
    fn storage(&self) -> &dyn Storage {
        &self.storage
    }

    fn plant(&self, name: &str, bytes: &[u8]) {
        let path = self.dir.path().join("ds").join(name);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, bytes).unwrap();
    }

    fn raw_names(&self) -> Vec<String> {
        files_on_disk(self.storage.root())
    }
}

#[test]
fn keeps_the_storage_contract() {
    conformance::run_all(&|| LocalBackend::fresh(false));
}

#[test]
fn keeps_the_storage_contract_walking_paths() {
    conformance::run_all(&|| LocalBackend::fresh(true));
}

/// `prune` removes the folders of a prefix whose objects all went (and the lock files of their
/// updates), deepest first, and nothing with an object or a write in progress below it.
#[test]
fn prune_removes_the_folders_of_deleted_objects() {
    let (_dir, s) = store();
    let gone = key("runs/1/steps/a/0/done.json");
    s.put(&gone, b"x").unwrap();
    s.update(&key("runs/1/run.json"), &mut |_| Some(b"{}".to_vec()))
        .unwrap();
    s.put(&key("runs/2/steps/a/0/done.json"), b"kept").unwrap();
    fs::write(s.root().join("runs/2/steps/.tmp-writing"), b"partial").unwrap();
    assert!(s.delete(&gone).unwrap() && s.delete(&key("runs/1/run.json")).unwrap());
    s.prune(&key("runs/1")).unwrap();
    s.prune(&key("runs/2")).unwrap();
    assert!(!s.root().join("runs/1").exists(), "the folders went");
    assert_eq!(
        s.list_children(Some(&key("runs"))).unwrap().prefixes,
        [key("runs/2")]
    );
    assert!(s.root().join("runs/2/steps/.tmp-writing").exists());
    assert_eq!(s.get(&key("runs/2/steps/a/0/done.json")).unwrap(), b"kept");
}

#[cfg(unix)]
#[test]
fn put_if_absent_of_an_existing_object_creates_nothing() {
    use std::os::unix::fs::MetadataExt;
    let (_dir, s) = store();
    let k = key("blobs/ab/abc");
    assert!(s.put_if_absent(&k, b"x").unwrap());
    let state = || {
        let dir = fs::metadata(s.path_of(&key("blobs/ab"))).unwrap();
        let object = fs::metadata(s.path_of(&k)).unwrap();
        (dir.modified().unwrap(), dir.ino(), object.ino())
    };
    let before = state();
    // Directory times have a coarse clock: let it tick, so that a temporary file created and
    // removed in the directory would show.
    std::thread::sleep(Duration::from_millis(50));
    assert!(!s.put_if_absent(&k, b"x").unwrap());
    assert_eq!(state(), before);
    assert_eq!(files_on_disk(s.root()), ["blobs/ab/abc"]);
}

#[test]
fn a_streamed_object_is_invisible_until_committed() {
    let (_dir, s) = store();
    let k = key("blobs/ab/abcdef");
    let mut pending = s.start_put(&key("blobs")).unwrap();
    pending.write_all(b"half of it").unwrap();
    // Written bytes exist only as a temporary file: no object, nothing listed.
    assert!(!s.exists(&k).unwrap());
    assert!(s.list(None).unwrap().is_empty());
    assert!(
        s.list_children(Some(&key("blobs")))
            .unwrap()
            .objects
            .is_empty()
    );
    let on_disk = files_on_disk(s.root());
    assert_eq!(on_disk.len(), 1);
    assert!(on_disk[0].starts_with("blobs/.tmp"), "{on_disk:?}");

    pending.write_all(b" and the rest").unwrap();
    pending.commit(&k).unwrap();
    assert_eq!(s.get(&k).unwrap(), b"half of it and the rest");
    assert_eq!(files_on_disk(s.root()), ["blobs/ab/abcdef"]);
}

#[test]
fn stale_temp_files_are_removed() {
    let (_dir, s) = store();
    s.put(&key("runs/1/meta"), b"m").unwrap();
    fs::write(s.root().join("runs/1/.tmpDEAD"), b"partial").unwrap();
    let live = s.start_put(&key("blobs")).unwrap();
    // Nothing is older than an hour.
    assert_eq!(
        s.remove_stale_temp_files(Duration::from_secs(3600))
            .unwrap(),
        0
    );
    assert_eq!(files_on_disk(s.root()).len(), 3);
    std::thread::sleep(Duration::from_millis(20));
    assert_eq!(
        s.remove_stale_temp_files(Duration::from_millis(10))
            .unwrap(),
        2
    );
    assert_eq!(files_on_disk(s.root()), ["runs/1/meta"]);
    drop(live);
}

#[cfg(unix)]
#[test]
fn objects_get_ordinary_permissions() {
    use std::os::unix::fs::PermissionsExt;
    let (_dir, s) = store();
    s.put(&key("a"), b"").unwrap();
    let mode = fs::metadata(s.path_of(&key("a")))
        .unwrap()
        .permissions()
        .mode();
    // Whatever the umask, tempfile's owner-only default (0o600) was not kept.
    let umask_allows_group_read = {
        fs::write(s.root().join("probe"), b"").unwrap();
        fs::metadata(s.root().join("probe"))
            .unwrap()
            .permissions()
            .mode()
            & 0o077
    };
    assert_eq!(mode & 0o077, umask_allows_group_read);
}

#[test]
fn updates_from_many_threads_are_never_lost() {
    let (_dir, s) = store();
    let k = key("flows/F/latest/any");
    std::thread::scope(|scope| {
        for _ in 0..8 {
            // Each thread its own handle, as each process would have.
            let s = s.clone();
            let k = &k;
            scope.spawn(move || {
                for _ in 0..50 {
                    conformance::increment(&s, k).unwrap();
                }
            });
        }
    });
    assert_eq!(s.get(&k).unwrap(), b"400");
    // The lock file is hidden from listings.
    assert_eq!(s.list(None).unwrap(), std::slice::from_ref(&k));
    assert_eq!(
        files_on_disk(s.root()),
        ["flows/F/latest/.any.lock", "flows/F/latest/any"]
    );
}

#[cfg(unix)]
#[test]
fn an_update_does_not_follow_a_link_planted_as_its_lock_file() {
    let (dir, s) = store();
    let k = key("runs/1/run.json");
    s.put(&k, b"one").unwrap();
    let elsewhere = dir.path().join("elsewhere");
    std::os::unix::fs::symlink(&elsewhere, s.root().join("runs/1/.run.json.lock")).unwrap();
    let e = s
        .update(&k, &mut |_| Some(b"two".to_vec()))
        .unwrap_err()
        .to_string();
    assert!(e.contains(".run.json.lock"), "{e}");
    assert!(!elsewhere.exists());
    assert_eq!(s.get(&k).unwrap(), b"one");
}

#[test]
fn io_errors_say_where() {
    let (_dir, s) = store();
    s.put(&key("file"), b"").unwrap();
    // "file" is an object, so nothing can be written below it.
    let err = s.put(&key("file/child"), b"").unwrap_err();
    let message = err.to_string();
    assert!(
        message.starts_with("could not create directory"),
        "{message}"
    );
    assert!(message.contains("file"), "{message}");
}
