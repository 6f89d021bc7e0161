//! A collection against a writer caught between relying on an old blob and writing the done
//! marker that names it: the order of events that the grace period and refreshes are there for,
//! played step by step.

use std::time::{Duration, SystemTime};

use super::*;
use crate::datastore::{BlobStore, Key, TaskIndex};
use crate::run::{GraphRecord, RunRecord};

const FLOW: &str = "Train";

/// A record of run `run_id` of [`FLOW`] as it stands, started at `started`.
fn record(run_id: &str, status: RunStatus, started: &str) -> RunRecord {
    RunRecord {
        format: 1,
        flow: FLOW.into(),
        run_id: RunId::from(run_id),
        params: serde_json::Value::Null,
        status,
        started: started.into(),
        finished: None,
        user: "u".into(),
        host: "h".into(),
        pid: 1,
        tags: Vec::new(),
        graph: GraphRecord { steps: Vec::new() },
        origin_run_id: None,
        failure: None,
        provenance: None,
        spin_of: None,
        keep_checkpoints: Default::default(),
        deleting: None,
    }
}

/// A finished run started in 2020 whose one task stores `value`; the blob is made two days old.
fn old_run(dir: &std::path::Path, store: &RunStore, run_id: &str, value: &str) -> Key {
    let record = record(run_id, RunStatus::Succeeded, "2020-01-01T00:00:00.000Z");
    store.create_run(&record).expect("create");
    let task = RunStore::task_key(FLOW, run_id, "start", "0").expect("key");
    let artifacts = store
        .blobs()
        .store_state(&Value {
            value: value.into(),
        })
        .expect("store");
    let hash = artifacts[0].hash;
    store
        .complete_task(&task, &TaskIndex::new(artifacts))
        .expect("complete");
    let two_days_ago = SystemTime::now() - Duration::from_secs(2 * 24 * 3600);
    std::fs::File::options()
        .write(true)
        .open(dir.join(hash.key().as_str()))
        .and_then(|f| f.set_modified(two_days_ago))
        .expect("age the blob");
    task
}

#[derive(serde::Serialize)]
struct Value {
    value: String,
}

fn options() -> GcOptions {
    GcOptions {
        rules: GcRules {
            older_than: Some(Duration::from_secs(24 * 3600)),
            ..GcRules::default()
        },
        flows: None,
        grace: DEFAULT_GRACE,
        dry_run: false,
    }
}

/// Run `new` (already recorded as running) stores the same value as old run `old`: the blob
/// exists, so it is not written, only relied on. A collection deletes `old` and sweeps before
/// `new` writes its done marker. The blob must still be there for the marker.
#[test]
fn a_blob_relied_on_by_a_task_about_to_complete_survives_a_collection() {
    let dir = tempfile::tempdir().expect("dir");
    let store = RunStore::open_local(dir.path()).expect("store");
    old_run(dir.path(), &store, "old", "the same weights");
    // Another old run with a value nobody relies on: that blob must go.
    old_run(dir.path(), &store, "older", "forgotten");
    let new = record("new", RunStatus::Running, &crate::run::now_rfc3339());
    store.create_run(&new).expect("create");

    // The writer's half before its marker: store the state (an existing blob: relied on).
    let blobs = BlobStore::new(store.storage());
    let artifacts = blobs
        .store_state(&Value {
            value: "the same weights".into(),
        })
        .expect("store");
    // The collection, all of it, between the two halves.
    let report = collect(&store, &options(), &mut |_| {}).expect("collect");
    assert_eq!(report.deleted_runs, 2, "both old runs go");
    assert_eq!(report.blobs.deleted.objects, 1, "the forgotten value goes");
    // The writer's other half: its marker names the blob.
    let task = RunStore::task_key(FLOW, "new", "start", "0").expect("key");
    store
        .complete_task(&task, &TaskIndex::new(artifacts.clone()))
        .expect("complete");
    blobs
        .get(&artifacts[0].hash, Some(artifacts[0].size))
        .expect("the blob the marker names is there, whole");
}

/// The same for a task `resume` reuses: its marker is copied from the origin's, naming the
/// origin's blobs, after `keep_fresh` checked them.
#[test]
fn a_blob_a_resumed_run_reuses_survives_the_deletion_of_its_origin() {
    let dir = tempfile::tempdir().expect("dir");
    let store = RunStore::open_local(dir.path()).expect("store");
    let origin_task = old_run(dir.path(), &store, "origin", "trained for a week");
    let (index, _) = store.read_done(&origin_task).expect("read").expect("done");
    let blobs = BlobStore::new(store.storage());
    for artifact in &index.artifacts {
        assert!(
            blobs
                .keep_fresh(&artifact.hash, artifact.size)
                .expect("check")
        );
    }
    collect(&store, &options(), &mut |_| {}).expect("collect");
    assert!(
        store.read_run(FLOW, "origin").is_err(),
        "the origin is gone"
    );
    for artifact in &index.artifacts {
        blobs
            .get(&artifact.hash, Some(artifact.size))
            .expect("the reused blob is there, whole");
    }
}

/// Without the rules saying which runs may go, nothing is read or deleted.
#[test]
fn a_collection_without_a_rule_is_refused() {
    let dir = tempfile::tempdir().expect("dir");
    let store = RunStore::open_local(dir.path()).expect("store");
    old_run(dir.path(), &store, "old", "x");
    let options = GcOptions {
        rules: GcRules {
            keep_tagged: vec!["t".into()],
            ..GcRules::default()
        },
        ..options()
    };
    assert!(matches!(
        collect(&store, &options, &mut |_| {}),
        Err(GcError::NoRule)
    ));
    assert!(store.read_run(FLOW, "old").is_ok());
}

/// What crashed writers left (temporary files) goes when a day old, and not before, whatever
/// the grace period: a write in progress keeps its temporary file.
#[test]
fn a_collection_removes_temporary_files_a_day_old() {
    let dir = tempfile::tempdir().expect("dir");
    let store = RunStore::open_local(dir.path()).expect("store");
    old_run(dir.path(), &store, "old", "x");
    let shard = dir.path().join("blobs/ab");
    std::fs::create_dir_all(&shard).expect("dir");
    let (stale, fresh) = (shard.join(".tmp-crashed"), shard.join(".tmp-writing"));
    std::fs::write(&stale, b"half a blob").expect("write");
    std::fs::write(&fresh, b"a blob being written").expect("write");
    let two_days_ago = SystemTime::now() - Duration::from_secs(2 * 24 * 3600);
    std::fs::File::options()
        .write(true)
        .open(&stale)
        .and_then(|f| f.set_modified(two_days_ago))
        .expect("age");
    let options = GcOptions {
        grace: Duration::ZERO,
        ..options()
    };
    let report = collect(&store, &options, &mut |_| {}).expect("collect");
    assert_eq!(report.temporaries, 1);
    assert!(!stale.exists() && fresh.exists());
}
