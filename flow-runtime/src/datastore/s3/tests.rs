//! `ObjectStorage`'s own tests, over an in-memory store: the shared contract
//! ([`conformance`]), then what only this backend does (probes, multipart uploads, staging,
//! request counts).

use std::fmt;
use std::future::Future;
use std::io::{Read, Write};
use std::ops::Range;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};

use ::object_store::memory::InMemory;
use ::object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, PutMode,
    PutMultipartOptions, PutOptions, PutResult, Result as ObjectResult,
};
use futures_util::stream::BoxStream;
use serde::{Deserialize, Serialize};

use super::upload::{MAX_PARTS, part_size_for};
use super::*;
use crate::datastore::conformance::{self, Backend};
use crate::datastore::{
    BlobErrorKind, BlobStore, LoadError, TaskError, TaskIndex, read_task, write_task,
};

type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// An in-memory store that counts requests, and can behave like a server that ignores
/// conditional writes (as Garage does).
#[derive(Debug, Default)]
struct Double {
    inner: InMemory,
    ignore_create: bool,
    /// Behave like a server that ignores `If-Match`.
    ignore_update: bool,
    /// Written over the object read by the next `GET`, once the read is done: another writer
    /// getting in between a read and the write that follows it.
    interfere: std::sync::Mutex<Option<Bytes>>,
    puts: AtomicUsize,
    uploads: AtomicUsize,
    copies: AtomicUsize,
}

impl fmt::Display for Double {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("memory://double")
    }
}

// `ObjectStore` is declared with `async_trait`; these are the signatures it expands to.
impl ObjectStore for Double {
    fn put_opts<'life0, 'life1, 'async_trait>(
        &'life0 self,
        location: &'life1 ObjectPath,
        payload: PutPayload,
        mut opts: PutOptions,
    ) -> BoxFuture<'async_trait, ObjectResult<PutResult>>
    where
        'life0: 'async_trait,
        'life1: 'async_trait,
        Self: 'async_trait,
    {
        self.puts.fetch_add(1, Ordering::SeqCst);
        if self.ignore_create && opts.mode == PutMode::Create {
            opts.mode = PutMode::Overwrite;
        }
        if self.ignore_update && matches!(opts.mode, PutMode::Update(_)) {
            opts.mode = PutMode::Overwrite;
        }
        self.inner.put_opts(location, payload, opts)
    }

    fn put_multipart_opts<'life0, 'life1, 'async_trait>(
        &'life0 self,
        location: &'life1 ObjectPath,
        opts: PutMultipartOptions,
    ) -> BoxFuture<'async_trait, ObjectResult<Box<dyn MultipartUpload>>>
    where
        'life0: 'async_trait,
        'life1: 'async_trait,
        Self: 'async_trait,
    {
        self.uploads.fetch_add(1, Ordering::SeqCst);
        self.inner.put_multipart_opts(location, opts)
    }

    fn get_opts<'life0, 'life1, 'async_trait>(
        &'life0 self,
        location: &'life1 ObjectPath,
        options: GetOptions,
    ) -> BoxFuture<'async_trait, ObjectResult<GetResult>>
    where
        'life0: 'async_trait,
        'life1: 'async_trait,
        Self: 'async_trait,
    {
        let interference = self
            .interfere
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        Box::pin(async move {
            let result = self.inner.get_opts(location, options).await;
            if let Some(bytes) = interference {
                self.inner.put(location, PutPayload::from(bytes)).await?;
            }
            result
        })
    }

    fn get_ranges<'life0, 'life1, 'life2, 'async_trait>(
        &'life0 self,
        location: &'life1 ObjectPath,
        ranges: &'life2 [Range<u64>],
    ) -> BoxFuture<'async_trait, ObjectResult<Vec<Bytes>>>
    where
        'life0: 'async_trait,
        'life1: 'async_trait,
        'life2: 'async_trait,
        Self: 'async_trait,
    {
        self.inner.get_ranges(location, ranges)
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, ObjectResult<ObjectPath>>,
    ) -> BoxStream<'static, ObjectResult<ObjectPath>> {
        self.inner.delete_stream(locations)
    }

    fn list(&self, prefix: Option<&ObjectPath>) -> BoxStream<'static, ObjectResult<ObjectMeta>> {
        self.inner.list(prefix)
    }

    fn list_with_delimiter<'life0, 'life1, 'async_trait>(
        &'life0 self,
        prefix: Option<&'life1 ObjectPath>,
    ) -> BoxFuture<'async_trait, ObjectResult<ListResult>>
    where
        'life0: 'async_trait,
        'life1: 'async_trait,
        Self: 'async_trait,
    {
        self.inner.list_with_delimiter(prefix)
    }

    fn copy_opts<'life0, 'life1, 'life2, 'async_trait>(
        &'life0 self,
        from: &'life1 ObjectPath,
        to: &'life2 ObjectPath,
        options: CopyOptions,
    ) -> BoxFuture<'async_trait, ObjectResult<()>>
    where
        'life0: 'async_trait,
        'life1: 'async_trait,
        'life2: 'async_trait,
        Self: 'async_trait,
    {
        self.copies.fetch_add(1, Ordering::SeqCst);
        self.inner.copy_opts(from, to, options)
    }
}

fn key(s: &str) -> Key {
    Key::parse(s).unwrap()
}

/// A storage under prefix `ds` of a fresh double, with 5 MiB parts.
fn storage_with(double: Double) -> (Arc<Double>, ObjectStorage) {
    let double = Arc::new(double);
    let storage = ObjectStorage::new(double.clone(), Some(&key("ds")))
        .unwrap()
        .with_part_size(MIN_PART_SIZE);
    (double, storage)
}

fn storage() -> (Arc<Double>, ObjectStorage) {
    storage_with(Double::default())
}

/// Every object in the store, staging objects and other prefixes included.
fn all_objects(store: &dyn ObjectStore) -> Vec<String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let mut paths: Vec<String> = runtime
        .block_on(store.list(None).try_collect::<Vec<_>>())
        .unwrap()
        .into_iter()
        .map(|meta| meta.location.to_string())
        .collect();
    paths.sort();
    paths
}

/// `len` bytes that differ from part to part, so that a misordered part would show.
fn pattern(len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i % 251) as u8 ^ (i >> 20) as u8)
        .collect()
}

#[test]
fn keeps_the_storage_contract() {
    conformance::run_all(&|| {
        let storage = ObjectStorage::new(Arc::new(InMemory::new()), Some(&key("ds")))
            .unwrap()
            .with_part_size(MIN_PART_SIZE);
        Box::new(storage)
    });
}

#[test]
fn keeps_the_storage_contract_on_the_whole_store() {
    conformance::run_all(&|| {
        let storage = ObjectStorage::new(Arc::new(InMemory::new()), None)
            .unwrap()
            .with_part_size(MIN_PART_SIZE);
        Box::new(storage)
    });
}

#[test]
fn objects_live_under_the_prefix() {
    let (double, s) = storage();
    let k = key("runs/1/meta.json");
    s.put(&k, b"one").unwrap();
    assert_eq!(s.path_of(&k).as_ref(), "ds/runs/1/meta.json");
    assert_eq!(all_objects(&*double), ["ds/runs/1/meta.json"]);
    assert!(s.delete(&k).unwrap());
    assert!(all_objects(&*double).is_empty());
}

#[test]
fn put_if_absent_keeps_the_first_and_sends_nothing_when_present() {
    let (double, s) = storage();
    let k = key("flows/F/runs/17/run.json");
    assert!(s.put_if_absent(&k, b"first").unwrap());
    let puts = double.puts.load(Ordering::SeqCst);
    assert!(!s.put_if_absent(&k, b"second").unwrap());
    assert_eq!(double.puts.load(Ordering::SeqCst), puts, "a lookup only");
    assert_eq!(s.get(&k).unwrap(), b"first");
    // The probe object was removed; only the object is there.
    assert_eq!(all_objects(&*double), ["ds/flows/F/runs/17/run.json"]);
}

#[test]
fn blobs_are_written_once_without_a_probe() {
    let (double, s) = storage();
    let blobs = BlobStore::new(&s);
    let stored = blobs.put_bytes(b"some bytes").unwrap();
    assert!(stored.newly_stored);
    assert_eq!(double.puts.load(Ordering::SeqCst), 1, "one PUT, no probe");
    let again = blobs.put_bytes(b"some bytes").unwrap();
    assert!(!again.newly_stored);
    assert_eq!(double.puts.load(Ordering::SeqCst), 1, "a lookup only");
    assert!(s.store.create_honoured.get().is_none());
}

#[test]
fn an_honest_server_is_trusted_and_its_probes_leave_nothing() {
    let (double, s) = storage();
    assert!(s.conditional_writes_honoured().unwrap());
    assert!(s.conditional_updates_honoured().unwrap());
    assert!(all_objects(&*double).is_empty());
}

#[test]
fn a_server_that_ignores_conditional_writes_is_detected() {
    let (double, s) = storage_with(Double {
        ignore_create: true,
        ..Double::default()
    });
    assert!(!s.conditional_writes_honoured().unwrap());
    // Claims still refuse an existing object (lookup, then write).
    let k = key("flows/F/runs/r2/run.json");
    assert!(s.put_if_absent(&k, b"first").unwrap());
    assert!(!s.put_if_absent(&k, b"second").unwrap());
    assert_eq!(s.get(&k).unwrap(), b"first");
    assert_eq!(all_objects(&*double), ["ds/flows/F/runs/r2/run.json"]);
}

#[test]
fn an_update_that_loses_to_another_writer_starts_again_from_its_write() {
    let (double, s) = storage();
    let k = key("flows/F/latest/any");
    assert!(conformance::increment(&s, &k).unwrap());
    assert_eq!(s.get(&k).unwrap(), b"1");
    // Between the update's read (1) and its write (2), another writer stores 10.
    *double.interfere.lock().unwrap() = Some(Bytes::from_static(b"10"));
    let mut seen = Vec::new();
    s.update(&k, &mut |current| {
        let n: u64 = std::str::from_utf8(current.unwrap())
            .unwrap()
            .parse()
            .unwrap();
        seen.push(n);
        Some((n + 1).to_string().into_bytes())
    })
    .unwrap();
    assert_eq!(seen, [1, 10]);
    assert_eq!(s.get(&k).unwrap(), b"11");
    assert!(s.conditional_updates_honoured().unwrap());
    // The probe left nothing behind.
    assert_eq!(all_objects(&*double), ["ds/flows/F/latest/any"]);
}

#[test]
fn an_update_that_changes_nothing_writes_nothing() {
    let (double, s) = storage();
    let k = key("flows/F/runs/r/run.json");
    assert!(!s.update(&k, &mut |_| None).unwrap());
    assert!(!s.exists(&k).unwrap());
    s.put(&k, b"x").unwrap();
    let puts = double.puts.load(Ordering::SeqCst);
    assert!(!s.update(&k, &mut |_| None).unwrap());
    assert_eq!(double.puts.load(Ordering::SeqCst), puts);
}

#[test]
fn a_server_that_ignores_if_match_is_detected() {
    let (double, s) = storage_with(Double {
        ignore_update: true,
        ..Double::default()
    });
    assert!(s.conditional_writes_honoured().unwrap());
    assert!(!s.conditional_updates_honoured().unwrap());
    // Updates still work, as a read then a write.
    let k = key("flows/F/latest/any");
    conformance::increment(&s, &k).unwrap();
    conformance::increment(&s, &k).unwrap();
    assert_eq!(s.get(&k).unwrap(), b"2");
    assert_eq!(all_objects(&*double), ["ds/flows/F/latest/any"]);
}

#[test]
fn a_server_that_ignores_if_none_match_gets_no_conditional_updates() {
    let (_double, s) = storage_with(Double {
        ignore_create: true,
        ..Double::default()
    });
    assert!(!s.conditional_updates_honoured().unwrap());
}

#[test]
fn a_streamed_object_within_one_part_is_one_put() {
    let (double, s) = storage();
    let k = key("blobs/ab/small");
    let mut pending = s.start_put(&key("blobs")).unwrap();
    pending.write_all(&pattern(1 << 20)).unwrap();
    assert!(all_objects(&*double).is_empty());
    pending.commit(&k).unwrap();
    assert_eq!(s.get(&k).unwrap(), pattern(1 << 20));
    assert_eq!(double.uploads.load(Ordering::SeqCst), 0);
    assert_eq!(double.copies.load(Ordering::SeqCst), 0);
    assert_eq!(all_objects(&*double), ["ds/blobs/ab/small"]);
}

#[test]
fn a_streamed_object_is_invisible_until_committed() {
    let (double, s) = storage();
    let k = key("blobs/cd/large");
    let content = pattern(2 * MIN_PART_SIZE + 12_345);
    let mut pending = s.start_put(&key("blobs")).unwrap();
    // Odd-sized writes, so that parts are cut in the middle of a write.
    for piece in content.chunks(999_983) {
        pending.write_all(piece).unwrap();
    }
    // Two parts went up, to a staging upload: nothing is listed, nothing is an object yet.
    assert!(!s.exists(&k).unwrap());
    assert!(s.list(None).unwrap().is_empty());
    assert_eq!(s.list_children(None).unwrap(), Children::default());
    pending.commit(&k).unwrap();
    assert_eq!(s.get(&k).unwrap(), content);
    let mut streamed = Vec::new();
    s.reader(&k).unwrap().read_to_end(&mut streamed).unwrap();
    assert_eq!(streamed, content);
    assert_eq!(double.uploads.load(Ordering::SeqCst), 1);
    assert_eq!(double.copies.load(Ordering::SeqCst), 1);
    // The staging object was removed.
    assert_eq!(all_objects(&*double), ["ds/blobs/cd/large"]);
}

#[test]
fn many_parts_in_flight_keep_their_order() {
    for in_flight in [1, 2, 5] {
        let (double, s) = storage();
        let s = s.with_parts_in_flight(in_flight);
        let k = key("blobs/77/many");
        let content = pattern(7 * MIN_PART_SIZE + 3);
        let mut pending = s.start_put(&key("blobs")).unwrap();
        for piece in content.chunks(3 << 20) {
            pending.write_all(piece).unwrap();
        }
        pending.commit(&k).unwrap();
        assert!(s.get(&k).unwrap() == content, "{in_flight} in flight");
        assert_eq!(all_objects(&*double), ["ds/blobs/77/many"]);
    }
}

#[test]
fn a_streamed_object_beyond_the_copy_limit_is_copied_through() {
    let (double, s) = storage();
    let s = s.with_copy_limit(MIN_PART_SIZE as u64);
    let k = key("blobs/ef/huge");
    let content = pattern(3 * MIN_PART_SIZE + 7);
    let mut pending = s.start_put(&key("blobs")).unwrap();
    pending.write_all(&content).unwrap();
    pending.commit(&k).unwrap();
    assert_eq!(s.get(&k).unwrap(), content);
    assert_eq!(double.copies.load(Ordering::SeqCst), 0);
    assert_eq!(double.uploads.load(Ordering::SeqCst), 2);
    assert_eq!(all_objects(&*double), ["ds/blobs/ef/huge"]);
}

#[test]
fn commit_if_absent_of_an_existing_object_completes_nothing() {
    let (double, s) = storage();
    let k = key("blobs/aa/same");
    let content = pattern(MIN_PART_SIZE + 1);
    let mut first = s.start_put(&key("blobs")).unwrap();
    first.write_all(&content).unwrap();
    let mut second = s.start_put(&key("blobs")).unwrap();
    second.write_all(&content).unwrap();
    assert!(first.commit_if_absent(&k).unwrap());
    let copies = double.copies.load(Ordering::SeqCst);
    assert!(!second.commit_if_absent(&k).unwrap());
    assert_eq!(double.copies.load(Ordering::SeqCst), copies);
    assert_eq!(all_objects(&*double), ["ds/blobs/aa/same"]);

    // The same within one part: a lookup, no write.
    let mut small = s.start_put(&key("blobs")).unwrap();
    small.write_all(b"x").unwrap();
    let puts = double.puts.load(Ordering::SeqCst);
    assert!(!small.commit_if_absent(&k).unwrap());
    assert_eq!(double.puts.load(Ordering::SeqCst), puts);
}

#[test]
fn listings_stay_in_their_prefix() {
    let (double, s) = storage();
    s.put(&key("runs/1/meta"), b"").unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    for foreign in ["other/runs/1/x", "dsx/runs/1/x"] {
        runtime
            .block_on(
                double
                    .inner
                    .put(&ObjectPath::from(foreign), PutPayload::new()),
            )
            .unwrap();
    }
    assert_eq!(s.list(None).unwrap(), [key("runs/1/meta")]);
    let root = s.list_children(None).unwrap();
    assert_eq!(root.prefixes, [key("runs")]);
    assert!(root.objects.is_empty());
    assert_eq!(s.raw_names(), ["runs/1/meta"]);
}

#[test]
fn stale_staging_objects_are_removed() {
    let (double, s) = storage();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    runtime
        .block_on(
            double
                .inner
                .put(&ObjectPath::from("ds/.tmp/upload-old"), PutPayload::new()),
        )
        .unwrap();
    s.put(&key("runs/1/meta"), b"m").unwrap();
    assert_eq!(
        s.remove_stale_staging(Duration::from_secs(3600)).unwrap(),
        0
    );
    std::thread::sleep(Duration::from_millis(20));
    assert_eq!(
        s.remove_stale_staging(Duration::from_millis(10)).unwrap(),
        1
    );
    assert_eq!(all_objects(&*double), ["ds/runs/1/meta"]);
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct State {
    xs: Vec<u64>,
    #[serde(with = "serde_bytes")]
    big: Vec<u8>,
    note: String,
}

#[test]
fn tasks_round_trip_through_blobs_and_done_markers() {
    let (double, s) = storage();
    let blobs = BlobStore::new(&s);
    // `big` is past the spill threshold: it is streamed through `start_put`, in parts.
    let state = State {
        xs: vec![1, 4, 9],
        big: pattern(crate::datastore::SPILL_THRESHOLD + MIN_PART_SIZE + 1),
        note: "hello".into(),
    };
    let artifacts = blobs.store_state(&state).unwrap();
    let task = key("flows/F/runs/r/steps/start/0");
    write_task(&s, &task, &TaskIndex::new(artifacts.clone())).unwrap();
    assert!(matches!(
        write_task(&s, &task, &TaskIndex::new(artifacts.clone())),
        Err(TaskError::AlreadyComplete { .. })
    ));
    let index = read_task(&s, &task).unwrap().expect("the task is complete");
    let back: State = blobs.load_state(&index.artifacts).unwrap();
    assert_eq!(back, state);
    assert!(double.uploads.load(Ordering::SeqCst) >= 1);

    // Storing the same state again creates no blob.
    let objects = all_objects(&*double);
    let again = blobs.store_state(&state).unwrap();
    assert_eq!(again, artifacts);
    assert_eq!(all_objects(&*double), objects);

    // A damaged blob is reported, not decoded.
    let entry = &index.artifacts[0];
    let mut bytes = s.get(&entry.hash.key()).unwrap();
    bytes[0] ^= 0xff;
    s.put(&entry.hash.key(), &bytes).unwrap();
    match blobs.load_state::<State>(&index.artifacts) {
        Err(LoadError::Blob(e)) => {
            assert!(
                matches!(e.kind(), BlobErrorKind::HashMismatch { .. }),
                "{e}"
            );
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn damaged_blobs_are_repaired_by_the_next_store_of_their_value() {
    let (double, s) = storage();
    let blobs = BlobStore::new(&s);
    let state = State {
        xs: vec![1, 4, 9],
        big: pattern(crate::datastore::SPILL_THRESHOLD + MIN_PART_SIZE + 1),
        note: "hello".into(),
    };
    let artifacts = blobs.store_state(&state).unwrap();
    let task = key("flows/F/runs/r/steps/start/0");
    write_task(&s, &task, &TaskIndex::new(artifacts.clone())).unwrap();

    // `xs` emptied, `big` cut short (as a power loss can leave them), `note` damaged in
    // place, which shows only when read.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let overwrite = |entry: &crate::datastore::ArtifactEntry, bytes: Vec<u8>| {
        runtime
            .block_on(
                double
                    .inner
                    .put(&s.path_of(&entry.hash.key()), PutPayload::from(bytes)),
            )
            .unwrap();
    };
    overwrite(&artifacts[0], Vec::new());
    let big = s.get(&artifacts[1].hash.key()).unwrap();
    overwrite(&artifacts[1], big[..big.len() / 2].to_vec());
    let mut note = s.get(&artifacts[2].hash.key()).unwrap();
    note[1] ^= 0x20;
    overwrite(&artifacts[2], note);
    assert!(blobs.load_state::<State>(&artifacts).is_err());
    let err = blobs.load_artifact::<String>(&artifacts[2]).unwrap_err();
    assert!(err.to_string().contains("is corrupted"), "{err}");

    // The next run that stores the same values repairs all three.
    assert_eq!(blobs.store_state(&state).unwrap(), artifacts);
    let index = read_task(&s, &task).unwrap().expect("the task is complete");
    let back: State = blobs.load_state(&index.artifacts).unwrap();
    assert_eq!(back, state);
}

#[test]
fn works_from_inside_an_async_runtime_and_drops_there() {
    let (_double, s) = storage();
    s.put(&key("a"), b"x").unwrap();
    let outer = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    outer.block_on(async move {
        assert_eq!(s.get(&key("a")).unwrap(), b"x");
        let mut pending = s.start_put(&key("blobs")).unwrap();
        pending.write_all(&pattern(MIN_PART_SIZE + 1)).unwrap();
        pending.commit(&key("b")).unwrap();
        assert_eq!(s.size(&key("b")).unwrap(), Some(MIN_PART_SIZE as u64 + 1));
        // The last clone, with its runtime, is dropped inside this runtime.
        drop(s);
    });
}

#[test]
fn part_sizes_grow_to_reach_large_objects() {
    assert_eq!(part_size_for(DEFAULT_PART_SIZE, 0), DEFAULT_PART_SIZE);
    assert_eq!(part_size_for(DEFAULT_PART_SIZE, 1999), DEFAULT_PART_SIZE);
    assert_eq!(
        part_size_for(DEFAULT_PART_SIZE, 2000),
        2 * DEFAULT_PART_SIZE
    );
    let total: u64 = (0..MAX_PARTS)
        .map(|i| part_size_for(DEFAULT_PART_SIZE, i) as u64)
        .sum();
    assert!(total > 450 << 30, "{total}");
}
