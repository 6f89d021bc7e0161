//! Blobs damaged on disk (emptied or cut short by a power loss without `BLOOMING_SYNC`, a byte
//! changed by a bad disk) are not reused by later runs: the next run that stores the same values
//! repairs them, and then every run's artifacts load.

use std::ffi::OsString;
use std::path::Path;

use blooming_flowers::StateOwned;
use blooming_flowers::cli::run_cli_with;
use blooming_flowers::datastore::{BlobStore, LocalStorage};
use blooming_flowers::run::RunStore;

/// `examples/big_field.rs` itself: a field past the spill threshold (streamed to disk) when run
/// with `--mib 9`, and small ones.
#[allow(dead_code)]
#[path = "../examples/big_field.rs"]
mod big_field;
use big_field::BigField;

fn run(datastore: &Path) -> String {
    let argv: Vec<OsString> = ["big_field", "--datastore"]
        .into_iter()
        .map(OsString::from)
        .chain([datastore.as_os_str().to_owned()])
        .chain(["run", "--mib", "9"].into_iter().map(OsString::from))
        .collect();
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let code = run_cli_with::<BigField, _, _>(argv, &mut out, &mut err);
    let (out, err) = (String::from_utf8_lossy(&out), String::from_utf8_lossy(&err));
    assert_eq!(code, 0, "run\n{out}\n{err}");
    out.split_whitespace()
        .skip_while(|w| *w != "Run")
        .nth(1)
        .unwrap_or_default()
        .to_owned()
}

/// Loads every task of `run_id`; returns how many, or the first failure.
fn every_task_loads(store: &RunStore, run_id: &str) -> Result<usize, String> {
    let mut loaded = 0;
    for step in store
        .list_steps("BigField", run_id)
        .map_err(|e| e.to_string())?
    {
        for task in store
            .list_tasks("BigField", run_id, &step)
            .map_err(|e| e.to_string())?
        {
            let key =
                RunStore::task_key("BigField", run_id, &step, &task).map_err(|e| e.to_string())?;
            let index = store
                .read_index(&key)
                .map_err(|e| e.to_string())?
                .ok_or_else(|| format!("{step}/{task} is not complete"))?;
            store
                .blobs()
                .load_state::<StateOwned<BigField>>(&index.artifacts)
                .map_err(|e| format!("{run_id}/{step}/{task}: {e}"))?;
            loaded += 1;
        }
    }
    Ok(loaded)
}

#[test]
fn damaged_blobs_are_repaired_by_the_next_run_that_stores_their_values() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let datastore = dir.path().join("ds");
    let first = run(&datastore);
    let store = RunStore::open_local(&datastore).expect("store");
    let storage = LocalStorage::open(&datastore).expect("storage");
    let end = RunStore::task_key("BigField", &first, "end", "0").expect("key");
    let index = store.read_index(&end).expect("index").expect("complete");
    let path_of = |name: &str| {
        let entry = index.artifact(name).expect("artifact");
        (entry.clone(), storage.path_of(&entry.hash.key()))
    };

    // The large field emptied, the checksum cut short, the parameters damaged in place.
    let (_, data) = path_of("data");
    std::fs::write(&data, b"").expect("empty");
    let (_, checksum) = path_of("checksum");
    let bytes = std::fs::read(&checksum).expect("read");
    std::fs::write(&checksum, &bytes[..bytes.len() / 2]).expect("cut");
    let (size_entry, size) = path_of("size");
    let mut bytes = std::fs::read(&size).expect("read");
    bytes[0] ^= 0x01;
    std::fs::write(&size, &bytes).expect("flip");
    assert!(every_task_loads(&store, &first).is_err());
    // Damage that keeps the size is found by reading, which names the blob.
    let err = BlobStore::new(&storage)
        .get(&size_entry.hash, Some(size_entry.size))
        .expect_err("a damaged blob");
    assert!(
        err.to_string()
            .contains(&format!("blob {} is corrupted", size_entry.hash)),
        "{err}"
    );

    let second = run(&datastore);
    assert_ne!(first, second);
    assert_eq!(every_task_loads(&store, &second), Ok(3));
    assert_eq!(every_task_loads(&store, &first), Ok(3));
}
