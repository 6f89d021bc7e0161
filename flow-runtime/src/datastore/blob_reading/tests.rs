//! Large blobs decoded while read: the same values as decoding them whole, and every kind of
//! damage reported as `BlobStore::get` reports it, before any decoding error.

use std::collections::BTreeMap;
use std::fs;

use serde::{Deserialize, Serialize};

use super::{CHUNK, STREAMED_FROM};
use crate::datastore::{ArtifactEntry, BlobErrorKind, BlobStore, LoadError, LocalStorage, Storage};

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
struct Big {
    #[serde(with = "serde_bytes")]
    bytes: Vec<u8>,
    floats: Vec<f32>,
    /// Strings and small binaries that straddle chunk boundaries somewhere.
    words: Vec<String>,
    table: BTreeMap<u32, (i64, Option<String>)>,
    small: u64,
}

fn big() -> Big {
    Big {
        bytes: (0..STREAMED_FROM as usize + 12_345)
            .map(|i| (i % 251) as u8)
            .collect(),
        floats: (0..(STREAMED_FROM as usize / 4) + 777)
            .map(|i| i as f32 * 0.25)
            .collect(),
        words: (0..400_000).map(|i| format!("word-{i}-é")).collect(),
        table: (0..300_000u32)
            .map(|i| {
                (
                    i,
                    (
                        -(i as i64),
                        (i % 3 == 0).then(|| "x".repeat(i as usize % 40)),
                    ),
                )
            })
            .collect(),
        small: 42,
    }
}

fn store() -> (tempfile::TempDir, LocalStorage) {
    let dir = tempfile::tempdir().expect("temp dir");
    let storage = LocalStorage::open(dir.path())
        .expect("storage")
        .with_sync(false);
    (dir, storage)
}

fn stored(blobs: &BlobStore<'_>, state: &Big) -> Vec<ArtifactEntry> {
    let entries = blobs.store_state(state).expect("stored");
    let large = entries.iter().filter(|e| e.size >= STREAMED_FROM).count();
    assert_eq!(large, 4, "four fields are read as streams: {entries:?}");
    assert!(
        entries
            .iter()
            .all(|e| e.size as usize > 2 * CHUNK || e.name == "small"),
        "each spans several chunks"
    );
    entries
}

#[test]
fn a_state_of_large_fields_decodes_as_it_was_stored() {
    let (_dir, storage) = store();
    let blobs = BlobStore::new(&storage);
    let state = big();
    let entries = stored(&blobs, &state);
    let back: Big = blobs.load_state(&entries).expect("loads");
    assert_eq!(back, state);
    for entry in &entries {
        match entry.name.as_str() {
            "bytes" => {
                let bytes: serde_bytes::ByteBuf = blobs.load_artifact(entry).expect("loads");
                assert_eq!(bytes.into_vec(), state.bytes);
            }
            "floats" => {
                let floats: Vec<f32> = blobs.load_artifact(entry).expect("loads");
                assert_eq!(floats, state.floats);
            }
            _ => {}
        }
    }
}

fn damage_blob(storage: &LocalStorage, entry: &ArtifactEntry, change: impl FnOnce(&mut Vec<u8>)) {
    let path = storage.path_of(&entry.hash.key());
    let mut bytes = fs::read(&path).expect("blob");
    change(&mut bytes);
    fs::write(&path, &bytes).expect("damaged");
}

fn floats_entry(entries: &[ArtifactEntry]) -> &ArtifactEntry {
    entries.iter().find(|e| e.name == "floats").expect("floats")
}

#[test]
fn a_flipped_byte_late_in_a_large_blob_is_reported_and_set_aside() {
    let (_dir, storage) = store();
    let blobs = BlobStore::new(&storage);
    let entries = stored(&blobs, &big());
    let floats = floats_entry(&entries).clone();
    // In the data of the last element: the value still decodes (to another number).
    damage_blob(&storage, &floats, |bytes| {
        let at = bytes.len() - 2;
        bytes[at] ^= 0x10;
    });
    for result in [
        blobs.load_state::<Big>(&entries).map(|_| ()),
        blobs.load_artifact::<Vec<f32>>(&floats).map(|_| ()),
    ] {
        let error = result.expect_err("damaged");
        let LoadError::Blob(error) = error else {
            panic!("not reported as damage: {error}");
        };
        assert!(
            matches!(
                error.kind(),
                BlobErrorKind::HashMismatch { .. } | BlobErrorKind::SetAside { .. }
            ),
            "{error}"
        );
        assert!(error.to_string().contains("artifact `floats`"), "{error}");
    }
    assert!(
        storage
            .exists(&BlobStore::set_aside_key(&floats.hash))
            .expect("exists"),
        "the damaged blob is set aside"
    );
}

#[test]
fn damage_that_also_breaks_decoding_is_reported_as_damage() {
    let (_dir, storage) = store();
    let blobs = BlobStore::new(&storage);
    let entries = stored(&blobs, &big());
    let floats = floats_entry(&entries).clone();
    // A marker in the middle becomes a string marker: decoding as f32 fails there.
    damage_blob(&storage, &floats, |bytes| {
        let at = bytes.len() / 2 / 5 * 5;
        bytes[at] = 0xa3;
    });
    let error = blobs
        .load_artifact::<Vec<f32>>(&floats)
        .expect_err("damaged");
    assert!(
        matches!(&error, LoadError::Blob(e) if matches!(e.kind(), BlobErrorKind::HashMismatch { .. })),
        "{error}"
    );
}

#[test]
fn a_truncated_or_longer_large_blob_is_reported_with_its_sizes() {
    let (_dir, storage) = store();
    let blobs = BlobStore::new(&storage);
    let entries = stored(&blobs, &big());
    let floats = floats_entry(&entries).clone();
    damage_blob(&storage, &floats, |bytes| {
        bytes.truncate(bytes.len() - CHUNK - 3)
    });
    let error = blobs
        .load_artifact::<Vec<f32>>(&floats)
        .expect_err("truncated");
    assert!(
        matches!(&error, LoadError::Blob(e) if matches!(e.kind(), BlobErrorKind::Truncated { expected, actual } if *expected == floats.size && *actual == floats.size - CHUNK as u64 - 3)),
        "{error}"
    );

    let (_dir, storage) = store();
    let blobs = BlobStore::new(&storage);
    let entries = stored(&blobs, &big());
    let floats = floats_entry(&entries).clone();
    damage_blob(&storage, &floats, |bytes| {
        bytes.extend_from_slice(&[0xca; 9])
    });
    let error = blobs.load_state::<Big>(&entries).expect_err("longer");
    assert!(
        matches!(&error, LoadError::Blob(e) if matches!(e.kind(), BlobErrorKind::Oversized { expected, .. } if *expected == floats.size)),
        "{error}"
    );
}

#[test]
fn an_intact_large_blob_of_another_type_is_a_decoding_error_naming_the_field() {
    let (_dir, storage) = store();
    let blobs = BlobStore::new(&storage);
    let entries = stored(&blobs, &big());
    let error = blobs
        .load_artifact::<Vec<String>>(floats_entry(&entries))
        .expect_err("not strings");
    assert!(matches!(error, LoadError::Decode(_)), "{error}");
    assert!(error.to_string().contains("field `floats`"), "{error}");
    // The blob is intact and was not set aside.
    let floats: Vec<f32> = blobs
        .load_artifact(floats_entry(&entries))
        .expect("still loads");
    assert_eq!(floats.len(), big().floats.len());
}

#[test]
fn a_missing_large_blob_is_reported_as_missing() {
    let (_dir, storage) = store();
    let blobs = BlobStore::new(&storage);
    let entries = stored(&blobs, &big());
    let floats = floats_entry(&entries).clone();
    storage.delete(&floats.hash.key()).expect("deleted");
    let error = blobs.load_state::<Big>(&entries).expect_err("missing");
    assert!(
        matches!(&error, LoadError::Blob(e) if matches!(e.kind(), BlobErrorKind::Missing)),
        "{error}"
    );
    assert!(error.to_string().contains("artifact `floats`"), "{error}");
}

fn bytes_entry(entries: &[ArtifactEntry]) -> &ArtifactEntry {
    entries.iter().find(|e| e.name == "bytes").expect("bytes")
}

#[test]
fn a_large_binary_is_checked_for_every_kind_of_damage() {
    type Damage = fn(&mut Vec<u8>);
    type Expected = fn(&BlobErrorKind) -> bool;
    let damages: [(Damage, Expected); 4] = [
        (
            |bytes| {
                let at = bytes.len() - 1;
                bytes[at] ^= 1;
            },
            |kind| {
                matches!(
                    kind,
                    BlobErrorKind::HashMismatch {
                        set_aside: Some(_),
                        ..
                    }
                )
            },
        ),
        (
            |bytes| bytes.truncate(bytes.len() - CHUNK - 1),
            |kind| matches!(kind, BlobErrorKind::Truncated { .. }),
        ),
        (
            |bytes| bytes.push(0),
            |kind| matches!(kind, BlobErrorKind::Oversized { .. }),
        ),
        // The header says fewer bytes than the index.
        (
            |bytes| bytes[4] ^= 1,
            |kind| matches!(kind, BlobErrorKind::HashMismatch { .. }),
        ),
    ];
    for (damage, expected) in damages {
        let (_dir, storage) = store();
        let blobs = BlobStore::new(&storage);
        let entries = stored(&blobs, &big());
        let bytes = bytes_entry(&entries).clone();
        damage_blob(&storage, &bytes, damage);
        for result in [
            blobs.load_state::<Big>(&entries).map(|_| ()),
            blobs
                .load_artifact::<serde_bytes::ByteBuf>(&bytes)
                .map(|_| ()),
        ] {
            let error = result.expect_err("damaged");
            let LoadError::Blob(error) = error else {
                panic!("not reported as damage: {error}");
            };
            assert!(
                expected(error.kind()) || matches!(error.kind(), BlobErrorKind::SetAside { .. }),
                "{error}"
            );
            assert!(error.to_string().contains("artifact `bytes`"), "{error}");
        }
    }
}

#[test]
fn a_large_binary_decodes_as_other_types_do_from_a_slice() {
    let (_dir, storage) = store();
    let blobs = BlobStore::new(&storage);
    let entries = stored(&blobs, &big());
    let bytes = bytes_entry(&entries);
    let as_vec: Vec<u8> = blobs.load_artifact(bytes).expect("a sequence of bytes");
    assert_eq!(as_vec, big().bytes);
    let some: Option<serde_bytes::ByteBuf> = blobs.load_artifact(bytes).expect("an option");
    assert_eq!(some.map(|b| b.into_vec()), Some(big().bytes));
    for error in [
        blobs.load_artifact::<u64>(bytes).map(|_| ()),
        blobs.load_artifact::<String>(bytes).map(|_| ()),
        blobs.load_artifact::<Vec<String>>(bytes).map(|_| ()),
    ] {
        let error = error.expect_err("not that type");
        assert!(matches!(error, LoadError::Decode(_)), "{error}");
    }
}
