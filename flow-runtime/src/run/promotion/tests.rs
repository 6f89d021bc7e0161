use super::*;
use crate::run::now_rfc3339;
use crate::run::{GraphRecord, RunRecord};

const FLOW: &str = "Train";

/// A run of [`FLOW`] recorded with `status`.
fn add_run(store: &RunStore, run_id: &str, status: RunStatus) {
    let record = RunRecord {
        format: 1,
        flow: FLOW.into(),
        run_id: RunId::from(run_id),
        params: serde_json::Value::Null,
        status,
        started: now_rfc3339(),
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
    };
    store.create_run(&record).expect("create");
}

fn local() -> (tempfile::TempDir, RunStore) {
    let dir = tempfile::tempdir().expect("dir");
    let store = RunStore::open_local(dir.path()).expect("store");
    (dir, store)
}

#[test]
fn a_promotion_is_read_back_with_who_and_when() {
    let (_dir, store) = local();
    add_run(&store, "r1", RunStatus::Succeeded);
    assert_eq!(store.promotion(FLOW, "production").expect("read"), None);
    let made = store.promote(FLOW, "production", "r1").expect("promote");
    assert_eq!(made.action, PromotionAction::Promote);
    assert_eq!(made.run_id.as_deref(), Some("r1"));
    assert!(!made.user.is_empty() && !made.host.is_empty());
    assert!(humantime::parse_rfc3339(&made.at).is_ok(), "{}", made.at);
    let current = store.promotion(FLOW, "production").expect("read");
    assert_eq!(current.as_ref(), Some(&made));
    assert_eq!(
        store
            .promotion_history(FLOW, Some("production"))
            .expect("history"),
        [made]
    );
}

#[test]
fn only_a_run_that_succeeded_is_promoted_and_nothing_is_written_otherwise() {
    let (_dir, store) = local();
    add_run(&store, "failed", RunStatus::Failed);
    add_run(&store, "running", RunStatus::Running);
    for run in ["failed", "running"] {
        let error = store.promote(FLOW, "production", run).expect_err("refused");
        assert!(
            matches!(error, RunStoreError::NotPromotable { .. }),
            "{error}"
        );
        assert!(
            error.to_string().contains("only a run that succeeded"),
            "{error}"
        );
    }
    let error = store
        .promote(FLOW, "production", "nope")
        .expect_err("refused");
    assert!(matches!(error, RunStoreError::NoSuchRun { .. }), "{error}");
    let error = store
        .promote(FLOW, "pro/duction", "failed")
        .expect_err("refused");
    assert!(matches!(error, RunStoreError::Key(_)), "{error}");
    assert!(error.to_string().contains("promotion label"), "{error}");
    assert!(store.promotion_labels(FLOW).expect("labels").is_empty());
}

#[test]
fn a_demotion_clears_the_label_and_stays_in_the_history() {
    let (_dir, store) = local();
    add_run(&store, "r1", RunStatus::Succeeded);
    add_run(&store, "r2", RunStatus::Succeeded);
    let error = store
        .demote(FLOW, "production")
        .expect_err("nothing to demote");
    assert!(
        matches!(error, RunStoreError::NothingPromoted { .. }),
        "{error}"
    );
    store.promote(FLOW, "production", "r1").expect("promote");
    store.promote(FLOW, "staging", "r2").expect("promote");
    store.promote(FLOW, "production", "r2").expect("promote");
    let demoted = store.demote(FLOW, "production").expect("demote");
    assert_eq!(demoted.run_id, None);
    let current = store
        .promotion(FLOW, "production")
        .expect("read")
        .expect("an entry");
    assert_eq!(current.action, PromotionAction::Demote);
    assert_eq!(current.run_id, None);
    let error = store.demote(FLOW, "production").expect_err("twice");
    assert!(
        matches!(error, RunStoreError::NothingPromoted { .. }),
        "{error}"
    );
    let history = store
        .promotion_history(FLOW, Some("production"))
        .expect("history");
    let seen: Vec<(PromotionAction, Option<&str>)> = history
        .iter()
        .map(|e| (e.action, e.run_id.as_deref()))
        .collect();
    assert_eq!(
        seen,
        [
            (PromotionAction::Demote, None),
            (PromotionAction::Promote, Some("r2")),
            (PromotionAction::Promote, Some("r1")),
        ]
    );
    assert_eq!(store.promotion_history(FLOW, None).expect("all").len(), 4);
    assert_eq!(
        store.promotion_labels(FLOW).expect("labels"),
        ["production", "staging"]
    );
    assert_eq!(
        store
            .promotion(FLOW, "staging")
            .expect("read")
            .and_then(|e| e.run_id)
            .as_deref(),
        Some("r2")
    );
}

#[test]
fn the_pointer_never_moves_back_to_an_older_entry() {
    let (_dir, store) = local();
    add_run(&store, "r1", RunStatus::Succeeded);
    add_run(&store, "r2", RunStatus::Succeeded);
    let newer = store.promote(FLOW, "production", "r2").expect("promote");
    // A change that reaches the pointer after a newer one: as a slow writer would.
    let mut older = newer.clone();
    older.at = "2000-01-01T00:00:00.000Z".into();
    older.entry = "20000101T000000.000Z-0.json".into();
    older.run_id = Some(RunId::from("r1"));
    let key = RunStore::label_key(FLOW, "production")
        .and_then(|k| Ok(k.join(CURRENT)?))
        .expect("key");
    let bytes = encode(&key, &older).expect("encode");
    store
        .storage()
        .update(
            &key,
            &mut |stored| match stored.and_then(|b| decode(b).ok()) {
                Some(stored) if stored.order() >= older.order() => None,
                _ => Some(bytes.clone()),
            },
        )
        .expect("update");
    assert_eq!(
        store.promotion(FLOW, "production").expect("read"),
        Some(newer)
    );
}

#[test]
fn a_damaged_pointer_is_an_error_to_read_and_replaced_by_the_next_promotion() {
    let (_dir, store) = local();
    add_run(&store, "r1", RunStatus::Succeeded);
    let key = RunStore::label_key(FLOW, "production")
        .and_then(|k| Ok(k.join(CURRENT)?))
        .expect("key");
    store.storage().put(&key, b"\x1b[2J not json").expect("put");
    let error = store.promotion(FLOW, "production").expect_err("damaged");
    assert!(error.is_damaged_record(), "{error}");
    assert!(!error.to_string().contains("\x1b"), "{error}");
    store.promote(FLOW, "production", "r1").expect("promote");
    assert!(store.promotion(FLOW, "production").expect("read").is_some());
}

/// N threads promote N different runs as one label at once: the pointer ends on the newest
/// entry of the history, which has all N.
fn concurrent_promotions_last_wins(store: &RunStore) {
    const N: usize = 8;
    for i in 0..N {
        add_run(store, &format!("r{i}"), RunStatus::Succeeded);
    }
    let barrier = std::sync::Barrier::new(N);
    std::thread::scope(|scope| {
        for i in 0..N {
            let (store, barrier) = (store.clone(), &barrier);
            scope.spawn(move || {
                barrier.wait();
                store
                    .promote(FLOW, "production", &format!("r{i}"))
                    .expect("promote");
            });
        }
    });
    let history = store
        .promotion_history(FLOW, Some("production"))
        .expect("history");
    assert_eq!(history.len(), N);
    let mut runs: Vec<_> = history.iter().filter_map(|e| e.run_id.clone()).collect();
    runs.sort();
    runs.dedup();
    assert_eq!(runs.len(), N, "every promotion is in the history");
    let current = store.promotion(FLOW, "production").expect("read");
    assert_eq!(current.as_ref(), history.first(), "the newest entry wins");
}

#[test]
fn concurrent_promotions_on_the_local_backend() {
    let (_dir, store) = local();
    concurrent_promotions_last_wins(&store);
}

/// On the S3 backend, over `object_store`'s in-memory store (conditional writes included).
#[cfg(feature = "s3")]
#[test]
fn concurrent_promotions_on_the_s3_backend() {
    use std::sync::Arc;
    let memory = Arc::new(::object_store::memory::InMemory::new());
    let storage: Arc<dyn crate::datastore::Storage> =
        Arc::new(crate::datastore::ObjectStorage::new(memory, None).expect("an S3 storage"));
    concurrent_promotions_last_wins(&RunStore::new(storage));
}
