//! The contract of [`Storage`], checked: one suite that every backend runs, in the manner of
//! `object_store`'s `integration` module.
//!
//! Each check gets a [`Backend`]: a storage, empty when the check starts, and a way around it to
//! plant what a crashed writer or another program leaves beside the objects, and to see every
//! name the backend holds. A check panics (`assert!`) where the contract is broken;
//! [`run_all`] runs every check of [`CHECKS`] on a fresh backend and names the one that failed.
//!
//! Run by the local backend's unit tests, by `ObjectStorage`'s over
//! `object_store::memory::InMemory`, and by the S3 server tests on SeaweedFS. Backend-specific
//! behaviour (confinement below the root, direct I/O, probes, multipart uploads, staging
//! cleanup) is tested beside each backend. Not a stable API: it exists for these tests.

use std::io::{Read, Write};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::{Duration, SystemTime};

use super::keys::Key;
use super::storage::{Children, MAX_RECORD_SIZE, Storage, StorageError};

/// A backend under test, as the checks see it.
pub trait Backend {
    /// The storage under test; empty when a check gets it.
    ///
    /// An `ObjectStorage` should have its smallest part size (`MIN_PART_SIZE`), so that a
    /// streamed object of [`LARGE`] bytes is a multipart upload.
    fn storage(&self) -> &dyn Storage;

    /// Stores `bytes` under `name` (`/`-separated, relative to the datastore's root) without
    /// going through the storage, as a crashed writer or another program would: `name` need not
    /// be a valid key (`.tmp/upload-1`, `runs/has space`).
    fn plant(&self, name: &str, bytes: &[u8]);

    /// Every name under the datastore's root that holds data, `/`-separated and sorted: objects,
    /// the backend's temporary data and planted names alike (directories are not names). The
    /// checks expect no more than the objects after anything but an update, which may keep data
    /// of its own (the local backend's lock files).
    fn raw_names(&self) -> Vec<String>;
}

/// One check of the contract.
pub type Check = fn(&dyn Backend);

/// A streamed object long enough to span several parts of the smallest size S3 takes (5 MiB):
/// two whole parts and some.
pub const LARGE: usize = 2 * (5 << 20) + 12_345;

/// Every check, by name.
pub const CHECKS: &[(&str, Check)] = &[
    ("put_get_overwrite", put_get_overwrite),
    (
        "missing_objects_are_not_found",
        missing_objects_are_not_found,
    ),
    ("prefixes_are_not_objects", prefixes_are_not_objects),
    (
        "put_if_absent_keeps_the_first",
        put_if_absent_keeps_the_first,
    ),
    (
        "put_if_absent_has_one_winner_among_threads",
        put_if_absent_has_one_winner_among_threads,
    ),
    (
        "streamed_writes_are_invisible_until_committed",
        streamed_writes_are_invisible_until_committed,
    ),
    (
        "abandoned_writes_leave_nothing",
        abandoned_writes_leave_nothing,
    ),
    (
        "commit_if_absent_keeps_the_first",
        commit_if_absent_keeps_the_first,
    ),
    (
        "put_content_repairs_an_object_of_another_size",
        put_content_repairs_an_object_of_another_size,
    ),
    (
        "set_aside_moves_only_the_content_it_was_given",
        set_aside_moves_only_the_content_it_was_given,
    ),
    (
        "get_at_most_refuses_a_larger_object",
        get_at_most_refuses_a_larger_object,
    ),
    (
        "readers_stream_in_small_reads",
        readers_stream_in_small_reads,
    ),
    ("listings_show_only_objects", listings_show_only_objects),
    (
        "updates_change_objects_in_place",
        updates_change_objects_in_place,
    ),
    (
        "concurrent_updates_lose_nothing",
        concurrent_updates_lose_nothing,
    ),
    (
        "updates_refuse_an_object_larger_than_a_record",
        updates_refuse_an_object_larger_than_a_record,
    ),
    ("stat_gives_size_and_time", stat_gives_size_and_time),
    (
        "refresh_renews_the_time_and_keeps_the_content",
        refresh_renews_the_time_and_keeps_the_content,
    ),
    ("list_stats_matches_list", list_stats_matches_list),
    (
        "delete_if_written_before_spares_what_was_written_since",
        delete_if_written_before_spares_what_was_written_since,
    ),
    (
        "prune_removes_only_empty_prefixes",
        prune_removes_only_empty_prefixes,
    ),
];

/// Runs every check of [`CHECKS`], each on a fresh backend from `fresh`.
///
/// # Panics
///
/// When a check fails; the panic names the check and repeats its message.
pub fn run_all(fresh: &dyn Fn() -> Box<dyn Backend>) {
    for (name, check) in CHECKS {
        let backend = fresh();
        if let Err(panic) = catch_unwind(AssertUnwindSafe(|| check(&*backend))) {
            let message = panic
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| panic.downcast_ref::<&str>().copied())
                .unwrap_or("(no message)");
            panic!("storage contract check `{name}` failed: {message}");
        }
    }
}

/// Writes, reads back, overwrites; an empty object is an object; nothing but the objects is
/// left.
pub fn put_get_overwrite(backend: &dyn Backend) {
    let s = backend.storage();
    let k = key("runs/1/meta.json");
    s.put(&k, b"one").expect("put");
    assert_eq!(s.get(&k).expect("get"), b"one");
    s.put(&k, b"two!").expect("overwrite");
    assert_eq!(s.get(&k).expect("get"), b"two!");
    assert_eq!(s.size(&k).expect("size"), Some(4));
    assert!(s.exists(&k).expect("exists"));
    assert_eq!(read_all(s, &k), b"two!");

    let empty = key("runs/1/empty");
    s.put(&empty, b"").expect("put an empty object");
    assert_eq!(s.size(&empty).expect("size"), Some(0));
    assert!(s.exists(&empty).expect("exists"));
    assert_eq!(s.get(&empty).expect("get"), b"");
    assert_eq!(backend.raw_names(), ["runs/1/empty", "runs/1/meta.json"]);
}

/// Every read of a missing object is [`StorageError::NotFound`], naming the key; every lookup
/// says no; an update sees no object.
pub fn missing_objects_are_not_found(backend: &dyn Backend) {
    let s = backend.storage();
    let k = key("runs/9/x");
    let err = s.get(&k).expect_err("get of a missing object");
    assert!(err.is_not_found(), "{err}");
    assert!(err.to_string().contains("runs/9/x"), "{err}");
    assert_not_found(s, &k);
    assert!(!s.delete(&k).expect("delete"));
    assert!(!s.set_aside(&k, b"x", &key("runs/9/y")).expect("set aside"));
    assert!(backend.raw_names().is_empty(), "{:?}", backend.raw_names());
    // (An update may leave data of its own, such as a lock file: only objects are checked after.)
    let mut seen = Vec::new();
    let wrote = s
        .update(&k, &mut |current| {
            seen.push(current.map(<[u8]>::to_vec));
            None
        })
        .expect("update");
    assert!(!wrote);
    assert_eq!(seen, [None]);
    assert_not_found(s, &k);
    assert!(s.list(None).expect("list").is_empty());
}

/// A key that only prefixes objects is not an object, nor is a key below an object; deleting
/// either deletes nothing.
pub fn prefixes_are_not_objects(backend: &dyn Backend) {
    let s = backend.storage();
    let meta = key("runs/1/meta");
    s.put(&meta, b"m").expect("put");
    assert_not_found(s, &key("runs/1"));
    assert_not_found(s, &key("runs/1/meta/deeper"));
    assert!(!s.delete(&key("runs/1")).expect("delete a prefix"));
    assert!(s.delete(&meta).expect("delete"));
    assert!(!s.delete(&meta).expect("delete again"));
    assert_not_found(s, &meta);
    assert!(s.list(None).expect("list").is_empty());
}

/// A second `put_if_absent` changes nothing and says so, for a claimed name as for a blob.
pub fn put_if_absent_keeps_the_first(backend: &dyn Backend) {
    let s = backend.storage();
    let claimed = key("flows/F/runs/17/run.json");
    assert!(s.put_if_absent(&claimed, b"first").expect("claim"));
    assert!(!s.put_if_absent(&claimed, b"second").expect("claim again"));
    assert_eq!(s.get(&claimed).expect("get"), b"first");

    let blob = key(&format!("blobs/ab/{}", "ab".repeat(32)));
    assert!(s.put_if_absent(&blob, b"x").expect("store a blob"));
    assert!(!s.put_if_absent(&blob, b"x").expect("store it again"));
    assert_eq!(s.get(&blob).expect("get"), b"x");
    // Nothing else: no temporary data, no probe.
    assert_eq!(backend.raw_names(), [blob.as_str(), claimed.as_str()]);
}

/// Sixteen threads claim one name at once: exactly one wins, and its content stands.
pub fn put_if_absent_has_one_winner_among_threads(backend: &dyn Backend) {
    let s = backend.storage();
    let k = key("flows/F/runs/r1/run.json");
    let winners: Vec<usize> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..16)
            .map(|i| {
                let k = &k;
                scope.spawn(move || {
                    s.put_if_absent(k, format!("claimer {i}").as_bytes())
                        .expect("claim")
                        .then_some(i)
                })
            })
            .collect();
        handles
            .into_iter()
            .filter_map(|h| h.join().expect("a claimer panicked"))
            .collect()
    });
    assert_eq!(winners.len(), 1, "winners: {winners:?}");
    let content = String::from_utf8(s.get(&k).expect("get")).expect("UTF-8");
    assert_eq!(content, format!("claimer {}", winners[0]));
    assert_eq!(backend.raw_names(), [k.as_str()]);
}

/// A streamed object, short or [`LARGE`], written in odd-sized pieces: neither it nor anything
/// else shows before the commit; after it, the object reads back whole and nothing else is
/// left.
pub fn streamed_writes_are_invisible_until_committed(backend: &dyn Backend) {
    let s = backend.storage();
    let mut committed = Vec::new();
    for (n, len) in [(0u8, 1 << 20), (1, LARGE)] {
        let k = key(&format!("blobs/cd/streamed-{n}"));
        let content = pattern(len, n);
        let (head, tail) = content.split_at(len / 2);
        let mut pending = s.start_put(&key("blobs")).expect("start a streamed write");
        for piece in head.chunks(999_983) {
            pending.write_all(piece).expect("write");
        }
        assert!(!s.exists(&k).expect("exists"));
        assert_eq!(s.list(None).expect("list"), committed);
        let children = s
            .list_children(Some(&key("blobs/cd")))
            .expect("list children");
        assert_eq!(children.objects, committed);
        for piece in tail.chunks(999_983) {
            pending.write_all(piece).expect("write");
        }
        pending.commit(&k).expect("commit");
        committed.push(k.clone());
        assert!(
            s.get(&k).expect("get") == content,
            "{k} reads back other bytes"
        );
        assert!(read_all(s, &k) == content, "{k} streams back other bytes");
        assert_eq!(s.size(&k).expect("size"), Some(len as u64));
    }
    assert_eq!(
        backend.raw_names(),
        ["blobs/cd/streamed-0", "blobs/cd/streamed-1"]
    );
}

/// A streamed write dropped without a commit, short or [`LARGE`], leaves nothing at all.
pub fn abandoned_writes_leave_nothing(backend: &dyn Backend) {
    let s = backend.storage();
    for len in [10, LARGE] {
        let mut pending = s.start_put(&key("blobs")).expect("start a streamed write");
        pending.write_all(&pattern(len, 3)).expect("write");
        drop(pending);
    }
    assert!(s.list(None).expect("list").is_empty());
    assert!(backend.raw_names().is_empty(), "{:?}", backend.raw_names());
}

/// `commit_if_absent` onto an existing object discards the new content and says so; `commit`
/// replaces it.
pub fn commit_if_absent_keeps_the_first(backend: &dyn Backend) {
    let s = backend.storage();
    let near = key("runs/1");
    for (n, len) in [(0u8, 10), (1, LARGE)] {
        let k = key(&format!("runs/1/object-{n}"));
        let (first, second) = (pattern(len, 1), pattern(len, 2));
        let mut a = s.start_put(&near).expect("start");
        a.write_all(&first).expect("write");
        let mut b = s.start_put(&near).expect("start");
        b.write_all(&second).expect("write");
        assert!(a.commit_if_absent(&k).expect("commit the first"));
        assert!(!b.commit_if_absent(&k).expect("commit the second"));
        assert!(s.get(&k).expect("get") == first, "{k}: the first stands");

        let mut c = s.start_put(&near).expect("start");
        c.write_all(&second).expect("write");
        c.commit(&k).expect("commit over it");
        assert!(s.get(&k).expect("get") == second, "{k}: replaced");
    }
    assert_eq!(backend.raw_names(), ["runs/1/object-0", "runs/1/object-1"]);
}

/// `put_content` writes an absent object, leaves one of the right size alone, and replaces one
/// of any other size.
pub fn put_content_repairs_an_object_of_another_size(backend: &dyn Backend) {
    let s = backend.storage();
    let k = key("blobs/ef/content");
    let right = b"the right bytes";
    assert!(s.put_content(&k, right).expect("store"));
    assert_eq!(s.get(&k).expect("get"), right);
    assert!(!s.put_content(&k, right).expect("store again"));
    for damaged in [&b""[..], b"the right", b"the right bytes and more"] {
        s.put(&k, damaged).expect("damage");
        assert!(s.put_content(&k, right).expect("repair"));
        assert_eq!(s.get(&k).expect("get"), right);
    }
    // Damage that keeps the size is for readers to find (and `set_aside` to move away).
    s.put(&k, b"THE RIGHT BYTES").expect("damage in place");
    assert!(!s.put_content(&k, right).expect("store over it"));
    assert_eq!(s.get(&k).expect("get"), b"THE RIGHT BYTES");
    assert_eq!(backend.raw_names(), [k.as_str()]);
}

/// `set_aside` moves an object holding the given content (replacing what is aside, in the same
/// prefix or another), and leaves one holding anything else.
pub fn set_aside_moves_only_the_content_it_was_given(backend: &dyn Backend) {
    let s = backend.storage();
    let k = key("blobs/ab/damaged");
    let aside = key("blobs/ab/damaged.aside");
    s.put(&k, b"damaged").expect("put");
    assert!(
        !s.set_aside(&k, b"other content", &aside)
            .expect("set aside")
    );
    assert_eq!(s.get(&k).expect("get"), b"damaged");
    assert!(!s.exists(&aside).expect("exists"));

    s.put(&aside, b"an older copy").expect("put");
    assert!(s.set_aside(&k, b"damaged", &aside).expect("set aside"));
    assert!(!s.exists(&k).expect("exists"));
    assert_eq!(s.get(&aside).expect("get"), b"damaged");

    s.put(&k, b"again").expect("put");
    let elsewhere = key("damaged/ab/x");
    assert!(s.set_aside(&k, b"again", &elsewhere).expect("set aside"));
    assert!(!s.exists(&k).expect("exists"));
    assert_eq!(s.get(&elsewhere).expect("get"), b"again");
    assert_eq!(backend.raw_names(), [aside.as_str(), elsewhere.as_str()]);
}

/// `get_at_most` reads an object of up to its limit, refuses a larger one with its size, and
/// finds no missing one.
pub fn get_at_most_refuses_a_larger_object(backend: &dyn Backend) {
    let s = backend.storage();
    let k = key("blobs/12/x");
    s.put(&k, &pattern(1000, 4)).expect("put");
    assert_eq!(s.get_at_most(&k, 1000).expect("read"), pattern(1000, 4));
    assert_eq!(s.get_at_most(&k, u64::MAX).expect("read"), pattern(1000, 4));
    let err = s.get_at_most(&k, 999).expect_err("a larger object");
    assert!(
        matches!(
            err,
            StorageError::TooLarge {
                size: 1000,
                limit: 999,
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("blobs/12/x"), "{err}");
    let empty = key("blobs/12/empty");
    s.put(&empty, b"").expect("put");
    assert_eq!(s.get_at_most(&empty, 0).expect("read"), b"");
    let err = s
        .get_at_most(&key("blobs/12/y"), 10)
        .expect_err("a missing object");
    assert!(err.is_not_found(), "{err}");
}

/// A reader gives the whole object through many small reads.
pub fn readers_stream_in_small_reads(backend: &dyn Backend) {
    let s = backend.storage();
    let k = key("blobs/12/x");
    let content = pattern(3 << 20, 5);
    s.put(&k, &content).expect("put");
    let mut reader = s.reader(&k).expect("open");
    let mut back = Vec::new();
    let mut buf = [0u8; 4093];
    loop {
        let n = reader.read(&mut buf).expect("read");
        if n == 0 {
            break;
        }
        back.extend_from_slice(&buf[..n]);
    }
    assert!(back == content, "the reader gave other bytes");
}

/// `list` and `list_children` give objects and prefixes, sorted, within their prefix; neither
/// shows temporary data, a write in progress, or names that are not keys.
pub fn listings_show_only_objects(backend: &dyn Backend) {
    let s = backend.storage();
    for k in [
        "runs/1/start/0/index.json",
        "runs/1/start/1/index.json",
        "runs/10/meta",
        "runs/2/meta",
        "top",
    ] {
        s.put(&key(k), b"{}").expect("put");
    }
    check_listings(s);
    // A crashed writer's leftovers and names no key can have.
    for name in [
        "runs/.tmpXYZ",
        "runs/has space",
        "runs/.hidden",
        ".tmp/upload-123",
    ] {
        backend.plant(name, b"partial");
    }
    let mut in_progress = s.start_put(&key("runs/1")).expect("start");
    in_progress.write_all(&pattern(LARGE, 6)).expect("write");
    check_listings(s);
    drop(in_progress);
}

fn check_listings(s: &dyn Storage) {
    assert_eq!(
        s.list(None).expect("list"),
        keys(&[
            "runs/1/start/0/index.json",
            "runs/1/start/1/index.json",
            "runs/10/meta",
            "runs/2/meta",
            "top",
        ])
    );
    assert_eq!(
        s.list(Some(&key("runs/1"))).expect("list"),
        keys(&["runs/1/start/0/index.json", "runs/1/start/1/index.json"])
    );
    let runs = s.list_children(Some(&key("runs"))).expect("list children");
    assert_eq!(runs.prefixes, keys(&["runs/1", "runs/10", "runs/2"]));
    assert!(runs.objects.is_empty(), "{:?}", runs.objects);
    let root = s.list_children(None).expect("list children");
    assert_eq!(root.prefixes, keys(&["runs"]));
    assert_eq!(root.objects, keys(&["top"]));
    assert_eq!(
        s.list_children(Some(&key("nothing/here"))).expect("list"),
        Children::default()
    );
    assert!(s.list(Some(&key("nothing"))).expect("list").is_empty());
    // An object is not a prefix of itself.
    assert!(s.list(Some(&key("top"))).expect("list").is_empty());
}

/// `update` gives the current content (`None` for no object), writes what the change returns,
/// and writes nothing when it returns `None`.
pub fn updates_change_objects_in_place(backend: &dyn Backend) {
    let s = backend.storage();
    let k = key("flows/F/latest/any");
    assert!(!update_once(s, &k, None, None));
    assert!(!s.exists(&k).expect("exists"));
    assert!(update_once(s, &k, None, Some(b"one")));
    assert_eq!(s.get(&k).expect("get"), b"one");
    assert!(!update_once(s, &k, Some(b"one"), None));
    assert_eq!(s.get(&k).expect("get"), b"one");
    assert!(update_once(s, &k, Some(b"one"), Some(b"one two")));
    assert_eq!(s.get(&k).expect("get"), b"one two");
    assert_eq!(s.list(None).expect("list"), [k]);
}

/// Updates `k`, checking that the change is called once, with `expected`; it returns `new`.
fn update_once(s: &dyn Storage, k: &Key, expected: Option<&[u8]>, new: Option<&[u8]>) -> bool {
    let mut calls = 0;
    let wrote = s
        .update(k, &mut |current| {
            calls += 1;
            assert_eq!(current, expected);
            new.map(<[u8]>::to_vec)
        })
        .expect("update");
    assert_eq!(calls, 1);
    wrote
}

/// Eight threads update one object 25 times each, at once: every update counts.
pub fn concurrent_updates_lose_nothing(backend: &dyn Backend) {
    let s = backend.storage();
    let k = key("flows/F/runs/r/run.json");
    std::thread::scope(|scope| {
        for _ in 0..8 {
            let k = &k;
            scope.spawn(move || {
                for _ in 0..25 {
                    increment(s, k).expect("update");
                }
            });
        }
    });
    assert_eq!(s.get(&k).expect("get"), b"200");
    assert_eq!(s.list(None).expect("list"), [k]);
}

/// Adds one to the decimal count in the object `k` (none: 0), with [`Storage::update`].
///
/// # Errors
///
/// As [`Storage::update`].
pub fn increment(s: &dyn Storage, k: &Key) -> Result<bool, StorageError> {
    s.update(k, &mut |current| {
        let n: u64 = current
            .and_then(|b| std::str::from_utf8(b).ok()?.parse().ok())
            .unwrap_or(0);
        Some((n + 1).to_string().into_bytes())
    })
}

/// `update` does not read an object larger than any record; it stays as it is.
pub fn updates_refuse_an_object_larger_than_a_record(backend: &dyn Backend) {
    let s = backend.storage();
    let k = key("flows/F/latest/any");
    let size = MAX_RECORD_SIZE + 1;
    let len = usize::try_from(size).expect("16 MiB fits in memory");
    s.put(&k, &vec![b'x'; len]).expect("put");
    let err = s
        .update(&k, &mut |_| panic!("the change was given a huge object"))
        .expect_err("an update of a huge object");
    assert!(
        matches!(err, StorageError::TooLarge { size: found, limit, .. } if found == size && limit == MAX_RECORD_SIZE),
        "{err}"
    );
    assert_eq!(s.size(&k).expect("size"), Some(size));
}

/// Every read of `k` says it does not exist.
fn assert_not_found(s: &dyn Storage, k: &Key) {
    assert!(!s.exists(k).expect("exists"), "{k} exists");
    assert_eq!(s.size(k).expect("size"), None, "{k} has a size");
    for (what, result) in [
        ("get", s.get(k).map(drop)),
        ("get_at_most", s.get_at_most(k, 10).map(drop)),
        ("reader", s.reader(k).map(drop)),
    ] {
        match result {
            Err(e) if e.is_not_found() => {}
            Err(e) => panic!("{what} of {k}: {e}, not NotFound"),
            Ok(()) => panic!("{what} of {k} found an object"),
        }
    }
}

/// The whole object `k`, through its reader.
fn read_all(s: &dyn Storage, k: &Key) -> Vec<u8> {
    let mut bytes = Vec::new();
    s.reader(k)
        .expect("open")
        .read_to_end(&mut bytes)
        .expect("read");
    bytes
}

/// `stat` gives an object's size and a last-write time near the local clock (a server's clock
/// may be a little off); a missing object has none.
pub fn stat_gives_size_and_time(backend: &dyn Backend) {
    let s = backend.storage();
    let k = key("blobs/aa/stat");
    s.put(&k, b"12345").expect("put");
    let stat = s.stat(&k).expect("stat").expect("the object is there");
    assert_eq!(stat.size, 5);
    let skew = |a: SystemTime, b: SystemTime| a.duration_since(b).unwrap_or_else(|e| e.duration());
    assert!(
        skew(stat.modified, SystemTime::now()) < Duration::from_secs(3600),
        "written now, but stat says {:?}",
        stat.modified
    );
    assert_eq!(s.stat(&key("blobs/aa/none")).expect("stat"), None);
    assert_eq!(s.stat(&key("blobs/aa")).expect("stat of a prefix"), None);
}

/// `refresh` moves the last-write time forward and leaves the content as it was; a missing
/// object is `false`. Waits past a second: object stores keep times to the second.
pub fn refresh_renews_the_time_and_keeps_the_content(backend: &dyn Backend) {
    let s = backend.storage();
    let k = key("blobs/bb/refreshed");
    s.put(&k, b"the same bytes").expect("put");
    let before = s.stat(&k).expect("stat").expect("there").modified;
    std::thread::sleep(Duration::from_millis(1100));
    assert!(s.refresh(&k).expect("refresh"), "the object is there");
    let after = s.stat(&k).expect("stat").expect("still there");
    assert!(
        after.modified > before,
        "refreshed at {:?}, no later than {before:?}",
        after.modified
    );
    assert_eq!(s.get(&k).expect("get"), b"the same bytes");
    assert!(!s.refresh(&key("blobs/bb/none")).expect("refresh"));
    assert_eq!(
        backend.raw_names(),
        ["blobs/bb/refreshed"],
        "nothing left but the object"
    );
}

/// `list_stats` lists what `list` lists, with each object's size.
pub fn list_stats_matches_list(backend: &dyn Backend) {
    let s = backend.storage();
    for (name, len) in [("cc/a", 1), ("cc/b/c", 22), ("cc/b/d", 0), ("cd/x", 3)] {
        s.put(&key(name), &vec![7; len]).expect("put");
    }
    backend.plant("cc/.tmp-abandoned", b"not an object");
    let listed = s.list_stats(&key("cc")).expect("list_stats");
    let names: Vec<(&str, u64)> = listed.iter().map(|(k, st)| (k.as_str(), st.size)).collect();
    assert_eq!(names, [("cc/a", 1), ("cc/b/c", 22), ("cc/b/d", 0)]);
    assert_eq!(
        listed.iter().map(|(k, _)| k.clone()).collect::<Vec<_>>(),
        s.list(Some(&key("cc"))).expect("list")
    );
}

/// `delete_if_written_before` deletes an object written before the cutoff and spares one written
/// after it.
pub fn delete_if_written_before_spares_what_was_written_since(backend: &dyn Backend) {
    let s = backend.storage();
    let k = key("blobs/dd/candidate");
    s.put(&k, b"x").expect("put");
    let hour = Duration::from_secs(3600);
    let an_hour_ago = SystemTime::now() - hour;
    assert!(!s.delete_if_written_before(&k, an_hour_ago).expect("delete"));
    assert_eq!(s.get(&k).expect("still there"), b"x");
    assert!(
        s.delete_if_written_before(&k, SystemTime::now() + hour)
            .expect("delete")
    );
    assert_not_found(s, &k);
    assert!(
        !s.delete_if_written_before(&k, SystemTime::now() + hour)
            .expect("delete a missing object")
    );
    assert_eq!(backend.raw_names(), Vec::<String>::new(), "nothing left");
}

/// `prune` removes what the backend keeps of a prefix whose objects were all deleted (lock files
/// of updates included), and keeps one with an object below it.
pub fn prune_removes_only_empty_prefixes(backend: &dyn Backend) {
    let s = backend.storage();
    let gone = [
        "runs/1/steps/a/0/done.json",
        "runs/1/steps/b/0/attempt-0.log",
    ];
    for name in gone {
        s.put(&key(name), b"x").expect("put");
    }
    let record = key("runs/1/run.json");
    update_once(s, &record, None, Some(b"{}"));
    s.put(&key("runs/2/run.json"), b"kept").expect("put");
    for name in gone {
        assert!(s.delete(&key(name)).expect("delete"));
    }
    assert!(s.delete(&record).expect("delete"));
    s.prune(&key("runs/1")).expect("prune");
    s.prune(&key("runs/2"))
        .expect("prune a prefix with an object");
    // An object store has no folders, but one that emulates them over a file system (SeaweedFS's
    // filer) may go on listing the emptied prefix: what matters is that nothing is below it. The
    // local backend's own tests check that its folder goes.
    let prefixes = s.list_children(Some(&key("runs"))).expect("list").prefixes;
    assert!(prefixes.contains(&key("runs/2")), "{prefixes:?}");
    assert!(
        s.list(Some(&key("runs/1"))).expect("list").is_empty(),
        "nothing left under the pruned prefix"
    );
    assert_eq!(s.get(&key("runs/2/run.json")).expect("get"), b"kept");
    assert_eq!(backend.raw_names(), ["runs/2/run.json"]);
    s.prune(&key("runs/3"))
        .expect("prune a prefix that never was");
}

fn key(text: &str) -> Key {
    Key::parse(text).unwrap_or_else(|e| panic!("{text:?} is not a key: {e}"))
}

fn keys(texts: &[&str]) -> Vec<Key> {
    texts.iter().map(|t| key(t)).collect()
}

/// `len` bytes that differ from MiB to MiB and with `seed`, so that a misplaced part or a mixed
/// up object shows.
fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i % 251) as u8 ^ (i >> 20) as u8 ^ seed)
        .collect()
}
