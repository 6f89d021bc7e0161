//! A local datastore someone else can write to: links out of it, special files in it.

use std::fs;
use std::path::Path;
use std::sync::mpsc;
use std::time::Duration;

use super::LocalStorage;
use crate::datastore::{
    BlobErrorKind, BlobHash, BlobStore, Key, MAX_RECORD_SIZE, Storage, StorageError, TaskIndex,
    read_task, write_task,
};

fn key(s: &str) -> Key {
    Key::parse(s).unwrap()
}

/// A datastore in a temporary directory, and a directory beside it that is outside it; each
/// test runs on one resolving paths with `openat2` where the kernel has it, and on one walking
/// them component by component.
fn stores() -> Vec<(tempfile::TempDir, LocalStorage)> {
    [false, true]
        .into_iter()
        .map(|walking| {
            let dir = tempfile::tempdir().unwrap();
            fs::create_dir(dir.path().join("outside")).unwrap();
            let storage = LocalStorage::open(dir.path().join("ds"))
                .unwrap()
                .with_sync(false);
            let storage = if walking { storage.walking() } else { storage };
            (dir, storage)
        })
        .collect()
}

fn outside(dir: &tempfile::TempDir) -> std::path::PathBuf {
    dir.path().join("outside")
}

fn symlink(target: &Path, link: &Path) {
    fs::create_dir_all(link.parent().unwrap()).unwrap();
    std::os::unix::fs::symlink(target, link).unwrap();
}

/// Every file under `dir`, relative, sorted.
fn files_under(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut dirs = vec![dir.to_path_buf()];
    while let Some(d) = dirs.pop() {
        for entry in fs::read_dir(d).unwrap() {
            let entry = entry.unwrap();
            if entry.file_type().unwrap().is_dir() {
                dirs.push(entry.path());
            } else {
                let rel = entry.path().strip_prefix(dir).unwrap().to_owned();
                out.push(rel.to_string_lossy().into_owned());
            }
        }
    }
    out.sort();
    out
}

fn assert_refused_link(error: &StorageError, what: &str) {
    let message = error.to_string();
    assert!(
        !error.is_not_found() && message.contains("symbolic link"),
        "{what}: {message}"
    );
}

#[test]
fn a_step_directory_linked_outside_is_neither_read_nor_written_through() {
    for (dir, s) in stores() {
        let outside = outside(&dir);
        fs::create_dir(outside.join("0")).unwrap();
        fs::write(outside.join("0/done.json"), b"outside data").unwrap();
        symlink(&outside, &s.root().join("flows/f/runs/1/steps/train"));
        let task = key("flows/f/runs/1/steps/train/0");

        let read = s.get(&task.join("done.json").unwrap()).unwrap_err();
        assert_refused_link(&read, "get");
        assert_refused_link(
            &s.size(&task.join("done.json").unwrap()).unwrap_err(),
            "size",
        );
        assert_refused_link(
            &s.reader(&task.join("done.json").unwrap()).err().unwrap(),
            "reader",
        );
        for written in [
            s.put(&task.join("meta.json").unwrap(), b"in").err(),
            s.put_if_absent(&task.join("new.json").unwrap(), b"in")
                .err(),
            s.start_put(&task).err(),
        ] {
            assert_refused_link(&written.expect("a write through the link"), "write");
        }
        assert_refused_link(
            &s.delete(&task.join("done.json").unwrap()).unwrap_err(),
            "delete",
        );
        assert_eq!(files_under(&outside), ["0/done.json"]);
        assert_eq!(
            fs::read(outside.join("0/done.json")).unwrap(),
            b"outside data"
        );

        // Listings do not go through it either.
        assert!(s.list(None).unwrap().is_empty());
        let steps = s.list_children(Some(&key("flows/f/runs/1/steps"))).unwrap();
        assert!(steps.prefixes.is_empty() && steps.objects.is_empty());
        assert_refused_link(
            &s.list(Some(&key("flows/f/runs/1/steps/train")))
                .unwrap_err(),
            "list",
        );
    }
}

#[test]
fn a_done_marker_linked_to_a_file_outside_is_refused() {
    for (dir, s) in stores() {
        let task = key("flows/f/runs/1/steps/start/0");
        // A valid marker, outside: it must not complete the task.
        let foreign = outside(&dir).join("done.json");
        let index = TaskIndex::new(Vec::new());
        write_task(&s, &key("elsewhere/0"), &index).unwrap();
        fs::copy(s.path_of(&key("elsewhere/0/done.json")), &foreign).unwrap();
        symlink(&foreign, &s.path_of(&task.join("done.json").unwrap()));

        let err = read_task(&s, &task).unwrap_err();
        assert!(err.to_string().contains("symbolic link"), "{err}");
        // Nor can it be claimed through the link: the link is there, the task is not written.
        assert!(write_task(&s, &task, &index).is_err());
        assert_eq!(files_under(&outside(&dir)), ["done.json"]);
    }
}

#[test]
fn a_blob_linked_to_dev_zero_is_an_error_not_an_endless_read() {
    for (_dir, s) in stores() {
        let hash = BlobHash::of(b"never stored");
        symlink(Path::new("/dev/zero"), &s.path_of(&hash.key()));
        let blobs = BlobStore::new(&s);
        let (sender, receiver) = mpsc::channel();
        let s2 = s.clone();
        std::thread::spawn(move || {
            let blobs = BlobStore::new(&s2);
            let _ = sender.send(blobs.get(&hash, None).map(|b| b.len()));
        });
        let result = receiver
            .recv_timeout(Duration::from_secs(20))
            .expect("reading a blob linked to /dev/zero must not go on forever");
        let err = result.unwrap_err();
        assert!(
            matches!(err.kind(), BlobErrorKind::Storage(e) if e.to_string().contains("symbolic link")),
            "{err}"
        );
        // The next write of the blob's bytes replaces the link, not /dev/zero.
        let stored = blobs.put_bytes(b"never stored").unwrap();
        assert!(stored.newly_stored);
        assert_eq!(blobs.get(&hash, Some(12)).unwrap(), b"never stored");
    }
}

/// A record read as the run layer reads its run records (`RunStore::read_run`: one
/// `get_at_most` of `MAX_RECORD_SIZE`), and as a done marker: a FIFO in its place is an error
/// naming it, not a reader blocked until someone writes to the FIFO.
#[test]
fn a_fifo_as_run_record_is_an_error_not_a_hang() {
    for (_dir, s) in stores() {
        let task = key("flows/f/runs/1/steps/start/0");
        for (record, read) in [
            (
                key("flows/f/runs/1/run.json"),
                read_as_record as fn(&LocalStorage, &Key) -> _,
            ),
            (task.join("done.json").unwrap(), read_as_done_marker),
        ] {
            let path = s.path_of(&record);
            fs::create_dir_all(path.parent().unwrap()).unwrap();
            rustix::fs::mkfifoat(
                rustix::fs::CWD,
                &path,
                rustix::fs::Mode::from_raw_mode(0o644),
            )
            .unwrap();
            let (sender, receiver) = mpsc::channel();
            let s2 = s.clone();
            std::thread::spawn(move || {
                let _ = sender.send(read(&s2, &record));
            });
            let result = receiver.recv_timeout(Duration::from_secs(20));
            if result.is_err() {
                // Let the reader go before failing: open the FIFO's other end.
                let _ = fs::OpenOptions::new().write(true).open(&path);
            }
            let message = result
                .expect("reading a FIFO as a record must not block")
                .unwrap_err();
            assert!(message.contains("not a regular file"), "{message}");
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            assert!(message.contains(&name), "{message}");
        }
    }
}

fn read_as_record(s: &LocalStorage, record: &Key) -> Result<usize, String> {
    s.get_at_most(record, MAX_RECORD_SIZE)
        .map(|bytes| bytes.len())
        .map_err(|e| e.to_string())
}

fn read_as_done_marker(s: &LocalStorage, marker: &Key) -> Result<usize, String> {
    let task = Key::parse(marker.as_str().trim_end_matches("/done.json")).unwrap();
    read_task(s, &task)
        .map(|index| index.map_or(0, |i| i.artifacts.len()))
        .map_err(|e| e.to_string())
}

#[test]
fn a_root_reached_through_a_link_is_used() {
    let dir = tempfile::tempdir().unwrap();
    fs::create_dir(dir.path().join("real")).unwrap();
    std::os::unix::fs::symlink(dir.path().join("real"), dir.path().join("link")).unwrap();
    let s = LocalStorage::open(dir.path().join("link"))
        .unwrap()
        .with_sync(false);
    s.put(&key("runs/1/meta"), b"m").unwrap();
    assert_eq!(s.get(&key("runs/1/meta")).unwrap(), b"m");
    assert_eq!(fs::read(dir.path().join("real/runs/1/meta")).unwrap(), b"m");
    assert_eq!(s.list(None).unwrap(), [key("runs/1/meta")]);
}

#[test]
fn a_huge_file_in_place_of_a_record_is_refused_unread() {
    for (_dir, s) in stores() {
        let k = key("flows/f/runs/1/run.json");
        s.put(&k, b"{}").unwrap();
        // Sparse: 64 MiB that cost nothing on disk, and must cost nothing in memory.
        fs::File::options()
            .write(true)
            .open(s.path_of(&k))
            .unwrap()
            .set_len(64 << 20)
            .unwrap();
        let err = s.get_at_most(&k, MAX_RECORD_SIZE).unwrap_err();
        assert!(
            matches!(err, StorageError::TooLarge { size, .. } if size == 64 << 20),
            "{err}"
        );
        assert!(err.to_string().contains("flows/f/runs/1/run.json"), "{err}");
    }
}
