//! The client API: every lookup, and every error it can give.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use blooming_flowers::client::{Client, ClientError};
use blooming_flowers::datastore::{
    Children, Key, LocalStorage, ObjectChange, ObjectStat, PendingObject, Storage, StorageError,
};
use blooming_flowers::executor::{RunOptions, run_flow};
use blooming_flowers::prelude::*;
use blooming_flowers::run::{RunStatus, RunStore, TaskStatus};

#[derive(Clone, Default, Serialize, Deserialize)]
struct Letters {
    words: Vec<String>,
    word: String,
    length: usize,
    lengths: Vec<usize>,
}

#[flow]
impl Letters {
    #[step(foreach = words, next = measure)]
    fn start(&mut self) {
        self.words = vec!["flow".into(), "blooming".into(), "rust".into()];
    }
    #[step(next = collect)]
    fn measure(&mut self, word: String) {
        tracing::info!(word = %word, "measuring");
        self.length = word.len();
        self.word = word;
    }
    #[step(join, next = end)]
    fn collect(&mut self, inputs: Inputs<Self>) {
        self.lengths = inputs.iter().map(|i| i.length).collect();
    }
    #[step]
    fn end(&mut self) {}
}

/// Like `Letters`, but the last element always fails.
#[derive(Clone, Default, Serialize, Deserialize)]
struct Fragile {
    words: Vec<String>,
    length: usize,
    lengths: Vec<usize>,
}

#[flow]
impl Fragile {
    #[step(foreach = words, next = measure)]
    fn start(&mut self) {
        self.words = vec!["flow".into(), "blooming".into(), "rust".into()];
    }
    #[step(next = collect)]
    fn measure(&mut self, word: String) -> Result<(), String> {
        if word == "rust" {
            return Err("rust is too short".into());
        }
        self.length = word.len();
        Ok(())
    }
    #[step(join, next = end)]
    fn collect(&mut self, inputs: Inputs<Self>) {
        self.lengths = inputs.iter().map(|i| i.length).collect();
    }
    #[step]
    fn end(&mut self) {}
}

fn run_of<F: Flow>(store: &RunStore, tags: &[&str]) -> String {
    blooming_flowers::logs::install();
    let options = RunOptions {
        tags: tags.iter().map(|t| t.to_string()).collect(),
        ..RunOptions::default()
    };
    run_flow::<F>(store, serde_json::Value::Null, &options)
        .expect("run")
        .run_id
        .into()
}

fn run(store: &RunStore, tags: &[&str]) -> String {
    run_of::<Letters>(store, tags)
}

#[test]
fn runs_steps_tasks_and_artifacts_are_found_and_typed() {
    let dir = tempfile::tempdir().expect("dir");
    let store = RunStore::open_local(dir.path()).expect("store");
    let first = run(&store, &["nightly"]);
    let second = run(&store, &[]);
    let client = Client::open(dir.path()).expect("client");
    assert_eq!(client.flows().expect("flows"), vec!["Letters"]);
    let flow = client.flow("Letters");
    assert_eq!(flow.latest_run().expect("latest").id(), second);
    assert_eq!(
        flow.latest_successful_run().expect("latest ok").id(),
        second
    );
    assert_eq!(
        flow.run_ids().expect("ids"),
        vec![second.clone(), first.clone()]
    );
    assert_eq!(flow.latest_tagged("nightly").expect("tagged").id(), first);
    assert_eq!(flow.runs_tagged("nightly").expect("tagged").len(), 1);

    let run = flow.run(&first).expect("run");
    assert_eq!(run.status(), RunStatus::Succeeded);
    assert_eq!(
        run.step_names().expect("steps"),
        vec!["start", "measure", "collect", "end"]
    );
    let lengths: Vec<usize> = run.artifact("lengths").expect("lengths");
    assert_eq!(lengths, vec![4, 8, 4]);
    assert_eq!(
        run.state::<Letters>().expect("state").lengths,
        vec![4, 8, 4]
    );

    let measure = run.step("measure").expect("step");
    let tasks = measure.tasks().expect("tasks");
    assert_eq!(tasks.len(), 3);
    let second_word = measure.task("1").expect("task");
    assert_eq!(second_word.foreach_index(), Some(1));
    assert_eq!(second_word.item::<String>().expect("item"), "blooming");
    assert_eq!(
        second_word.artifact::<String>("word").expect("word"),
        "blooming"
    );
    assert_eq!(second_word.status(), TaskStatus::Succeeded);
    assert_eq!(
        second_word
            .parents()
            .iter()
            .map(|p| p.to_string())
            .collect::<Vec<_>>(),
        vec!["start/0"]
    );
    assert_eq!(
        second_word
            .children()
            .expect("children")
            .iter()
            .map(|p| p.to_string())
            .collect::<Vec<_>>(),
        vec!["collect/0"]
    );
    let logs = second_word.logs().expect("logs");
    assert!(
        logs.iter()
            .any(|(_, text)| text.contains("measuring") && text.contains("blooming")),
        "{logs:?}"
    );
    let names: Vec<&str> = second_word
        .artifacts()
        .expect("artifacts")
        .iter()
        .map(|a| a.name.as_str())
        .collect();
    assert_eq!(names, vec!["words", "word", "length", "lengths"]);
}

#[test]
fn every_lookup_error_says_what_was_missing() {
    let dir = tempfile::tempdir().expect("dir");
    let store = RunStore::open_local(dir.path()).expect("store");
    assert!(matches!(
        Client::open(dir.path().join("nope")),
        Err(ClientError::NoDatastore { .. })
    ));
    let client = Client::open(dir.path()).expect("client");
    assert!(matches!(
        client.flow("Fragile").latest_run(),
        Err(ClientError::NoRuns { .. })
    ));

    let failed = run_of::<Fragile>(&store, &[]);
    let flow = client.flow("Fragile");
    assert_eq!(
        flow.latest_run().expect("latest").status(),
        RunStatus::Failed
    );
    assert!(matches!(
        flow.latest_successful_run(),
        Err(ClientError::NoSuccessfulRun { .. })
    ));
    assert!(matches!(
        flow.latest_tagged("nope"),
        Err(ClientError::NoRunTagged { .. })
    ));
    assert!(matches!(
        flow.run("20000101T000000000Z-00000000"),
        Err(ClientError::NoSuchRun { .. })
    ));
    let escape = flow.run("../../etc").expect_err("escaping ids are refused");
    assert!(escape.to_string().contains(".."), "{escape}");

    let run = flow.run(&failed).expect("run");
    let e = run.step("measur").expect_err("no such step");
    assert!(e.to_string().contains("`measure`"), "lists the steps: {e}");
    let e = run
        .step("measure")
        .expect("step")
        .task("9")
        .expect_err("no such task");
    assert!(matches!(e, ClientError::NoSuchTask { .. }));
    assert!(e.to_string().contains("`0`, `1`, `2`"), "{e}");
    let bad = run
        .step("measure")
        .expect("step")
        .task("2")
        .expect("the failed task is listed");
    assert_eq!(bad.status(), TaskStatus::Failed);
    assert!(
        bad.failure()
            .expect("failure")
            .message
            .contains("too short")
    );
    assert!(matches!(
        bad.artifact::<usize>("length"),
        Err(ClientError::Incomplete { .. })
    ));
    assert!(matches!(
        run.artifact::<Vec<usize>>("lengths"),
        Err(ClientError::NoSuchTask { .. })
    ));

    let good = run.step("measure").expect("step").task("0").expect("task");
    let e = good
        .artifact::<usize>("lenght")
        .expect_err("no such artifact");
    assert!(e.to_string().contains("`length`"), "{e}");
    let e = good.artifact::<String>("length").expect_err("wrong type");
    let text = e.to_string();
    assert!(
        text.contains("`length`") && text.contains("alloc::string::String"),
        "{text}"
    );
}

/// A storage that counts listings, to show that finding the latest run lists nothing.
#[derive(Debug)]
struct CountingStorage {
    inner: LocalStorage,
    listings: AtomicUsize,
}

impl Storage for CountingStorage {
    fn put(&self, key: &Key, bytes: &[u8]) -> Result<(), StorageError> {
        self.inner.put(key, bytes)
    }
    fn put_if_absent(&self, key: &Key, bytes: &[u8]) -> Result<bool, StorageError> {
        self.inner.put_if_absent(key, bytes)
    }
    fn start_put(&self, near: &Key) -> Result<Box<dyn PendingObject>, StorageError> {
        self.inner.start_put(near)
    }
    fn get(&self, key: &Key) -> Result<Vec<u8>, StorageError> {
        self.inner.get(key)
    }
    fn reader(&self, key: &Key) -> Result<Box<dyn std::io::Read + Send>, StorageError> {
        self.inner.reader(key)
    }
    fn size(&self, key: &Key) -> Result<Option<u64>, StorageError> {
        self.inner.size(key)
    }
    fn stat(&self, key: &Key) -> Result<Option<ObjectStat>, StorageError> {
        self.inner.stat(key)
    }
    fn refresh(&self, key: &Key) -> Result<bool, StorageError> {
        self.inner.refresh(key)
    }
    fn list(&self, prefix: Option<&Key>) -> Result<Vec<Key>, StorageError> {
        self.listings.fetch_add(1, Ordering::SeqCst);
        self.inner.list(prefix)
    }
    fn list_children(&self, prefix: Option<&Key>) -> Result<Children, StorageError> {
        self.listings.fetch_add(1, Ordering::SeqCst);
        self.inner.list_children(prefix)
    }
    fn delete(&self, key: &Key) -> Result<bool, StorageError> {
        self.inner.delete(key)
    }
    fn update(&self, key: &Key, change: &mut ObjectChange<'_>) -> Result<bool, StorageError> {
        self.inner.update(key, change)
    }
}

#[test]
fn finding_the_latest_run_among_a_thousand_lists_nothing() {
    let dir = tempfile::tempdir().expect("dir");
    let counting = Arc::new(CountingStorage {
        inner: LocalStorage::open(dir.path())
            .expect("storage")
            .with_sync(false),
        listings: AtomicUsize::new(0),
    });
    let store = RunStore::new(counting.clone());
    let real = run(&store, &[]);
    // 1,000 more run records, as old runs would leave them.
    let template = store.read_run("Letters", &real).expect("record");
    for i in 0..1000 {
        let mut record = template.clone();
        record.run_id = format!("19990101T000000000Z-{i:08}").into();
        store.create_run(&record).expect("record");
    }
    assert_eq!(store.list_runs("Letters").expect("list").len(), 1001);
    let client = Client::with_store(store);
    counting.listings.store(0, Ordering::SeqCst);
    let latest = client
        .flow("Letters")
        .latest_successful_run()
        .expect("latest");
    assert_eq!(latest.id(), real);
    let _: Vec<usize> = latest.artifact("lengths").expect("artifact");
    assert_eq!(
        counting.listings.load(Ordering::SeqCst),
        0,
        "no listing to find the latest run"
    );
}

#[test]
fn the_promoted_run_is_found_in_one_lookup_and_its_history_newest_first() {
    let dir = tempfile::tempdir().expect("dir");
    let store = RunStore::open_local(dir.path()).expect("store");
    let first = run(&store, &[]);
    let second = run(&store, &[]);
    let client = Client::open(dir.path()).expect("client");
    let flow = client.flow("Letters");
    assert!(matches!(
        flow.promoted("production"),
        Err(ClientError::NotPromoted { .. })
    ));
    assert_eq!(flow.promotion("production").expect("read"), None);

    store
        .promote("Letters", "production", &first)
        .expect("promote");
    assert_eq!(flow.promoted("production").expect("promoted").id(), &first);
    store
        .promote("Letters", "production", &second)
        .expect("promote");
    let promoted = flow.promoted("production").expect("promoted");
    assert_eq!(promoted.id(), &second);
    let change = flow
        .promotion("production")
        .expect("read")
        .expect("a change");
    assert_eq!(change.run_id.as_deref(), Some(second.as_str()));
    assert!(!change.user.is_empty() && !change.host.is_empty());

    store.demote("Letters", "production").expect("demote");
    let error = flow.promoted("production").expect_err("demoted");
    assert!(matches!(error, ClientError::NotPromoted { .. }), "{error}");
    assert!(error.to_string().contains("`production`"), "{error}");
    let history: Vec<Option<String>> = flow
        .promotions(Some("production"))
        .expect("history")
        .into_iter()
        .map(|e| e.run_id.map(String::from))
        .collect();
    assert_eq!(history, [None, Some(second), Some(first)]);
    assert!(flow.promoted("no/such").is_err());
}

#[test]
fn a_run_records_its_provenance() {
    let dir = tempfile::tempdir().expect("dir");
    let store = RunStore::open_local(dir.path()).expect("store");
    let id = run(&store, &[]);
    let client = Client::open(dir.path()).expect("client");
    let run = client.flow("Letters").run(&id).expect("run");
    let provenance = run.provenance().expect("recorded");
    let hash = provenance.binary_hash.as_deref().expect("a hash");
    assert_eq!(hash.len(), 64);
    assert!(hash.chars().all(|c| c.is_ascii_hexdigit()), "{hash}");
    assert_eq!(provenance.package.as_deref(), Some("blooming-flowers"));
    assert_eq!(
        provenance.package_version.as_deref(),
        Some(env!("CARGO_PKG_VERSION"))
    );
    assert!(
        provenance
            .rustc
            .as_deref()
            .is_some_and(|r| r.starts_with("rustc 1.")),
        "{provenance:?}"
    );
    assert_eq!(provenance.user, run.record().user);
    assert_ne!(provenance.user, "unknown");
    assert_eq!(provenance.reused_tasks_of_binary, None);
    // The root crate's features and blooming-flowers' are the same here.
    assert_eq!(provenance.features, provenance.framework_features);
    assert_eq!(
        provenance.features.contains(&"s3".to_string()),
        cfg!(feature = "s3")
    );
    // Built from this checkout, if it is one.
    let in_git = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .any(|d| d.join(".git").exists());
    assert_eq!(provenance.git_commit.is_some(), in_git, "{provenance:?}");
}
