//! A collection against a writer caught between relying on an old blob and writing the done
//! marker that names it: the order of events that the grace period and refreshes are there for,
//! played step by step.

use std::time::{Duration, SystemTime};

use super::*;
use crate::datastore::{BlobStore, Key, TaskIndex};
use crate::graph::FlowGraph;
use crate::run::RunRecord;

const FLOW: &str = "Train";

/// A record of run `run_id` of [`FLOW`] as it stands, started at `started`.
fn record(run_id: &str, status: RunStatus, started: &str) -> RunRecord {
    const GRAPH: FlowGraph = FlowGraph {
        name: FLOW,
        doc: "",
        steps: &[],
        start: 0,
        end: 0,
    };
    let mut record = RunRecord::starting(
        &GRAPH,
        RunId::from(run_id),
        serde_json::Value::Null,
        Vec::new(),
        None,
    );
    record.status = status;
    record.started = started.into();
    record
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
                .keep_fresh(&artifact.hash, Some(artifact.size))
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

/// A kept run whose done marker cannot be read: what it references is unknown, so the
/// collection stops before deleting any blob, naming the run; the runs it deleted stay deleted.
#[test]
fn a_damaged_marker_of_a_kept_run_stops_the_sweep_and_says_which_run() {
    let dir = tempfile::tempdir().expect("dir");
    let store = RunStore::open_local(dir.path()).expect("store");
    let old_task = old_run(dir.path(), &store, "old", "goes");
    let kept_task = old_run(dir.path(), &store, "kept", "stays");
    store
        .update_tags(FLOW, "kept", &["keep"], &[])
        .expect("tag");
    let old_blob = store
        .read_done(&old_task)
        .expect("read")
        .expect("done")
        .0
        .artifacts[0]
        .hash;
    let marker = dir.path().join(kept_task.as_str()).join("done.json");
    let bytes = std::fs::read(&marker).expect("marker");
    std::fs::write(&marker, &bytes[..bytes.len() / 2]).expect("cut short");
    let options = GcOptions {
        rules: GcRules {
            older_than: Some(Duration::from_secs(24 * 3600)),
            keep_tagged: vec!["keep".into()],
            ..GcRules::default()
        },
        grace: Duration::ZERO,
        ..options()
    };
    let err = collect(&store, &options, &mut |_| {}).expect_err("the sweep must stop");
    let text = err.to_string();
    assert!(
        matches!(err, GcError::Mark { ref run_id, .. } if run_id.as_str() == "kept"),
        "{text}"
    );
    assert!(text.contains("no blob was deleted"), "{text}");
    assert!(store.read_run(FLOW, "old").is_err(), "the old run went");
    assert!(
        store.blobs().contains(&old_blob).expect("lookup"),
        "no blob deleted, not even the old run's"
    );
}

/// A run whose record cannot be read is kept, reported, and its blobs are kept.
#[test]
fn a_run_with_an_unreadable_record_is_kept_with_its_blobs() {
    let dir = tempfile::tempdir().expect("dir");
    let store = RunStore::open_local(dir.path()).expect("store");
    let task = old_run(dir.path(), &store, "odd", "still referenced");
    let blob = store
        .read_done(&task)
        .expect("read")
        .expect("done")
        .0
        .artifacts[0]
        .hash;
    let record = dir
        .path()
        .join(RunStore::run_key(FLOW, "odd").expect("key").as_str());
    std::fs::write(record.join("run.json"), b"{ not json").expect("damage");
    let options = GcOptions {
        grace: Duration::ZERO,
        ..options()
    };
    let report = collect(&store, &options, &mut |_| {}).expect("collect");
    assert_eq!(report.deleted_runs, 0);
    assert_eq!(report.unreadable.len(), 1);
    assert_eq!(report.unreadable[0].run_id.as_str(), "odd");
    assert!(store.blobs().contains(&blob).expect("lookup"));
}
