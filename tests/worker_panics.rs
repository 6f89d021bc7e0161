//! A panic in the runtime's calls to the user's trait impls (outside a step body: `Default`,
//! `Clone`, `Serialize`, `Deserialize`) fails that task with the message and ends the run
//! `failed`; it never hangs the run nor leaves it `running`.

use std::sync::mpsc;
use std::time::Duration;

use blooming_flowers::executor::{RunOptions, RunSummary, run_flow};
use blooming_flowers::prelude::*;
use blooming_flowers::run::{RunStatus, RunStore, TaskStatus};
use serde::{Deserializer, Serializer};

/// Which of the user's impls panics.
const DEFAULT: u8 = 0;
const CLONE: u8 = 1;
const SERIALIZE: u8 = 2;
const DESERIALIZE: u8 = 3;

/// A field whose impl of trait `K` panics once a step has armed it (for `Default`: always).
#[derive(Debug, PartialEq)]
struct Bomb<const K: u8> {
    armed: bool,
}

impl<const K: u8> Default for Bomb<K> {
    fn default() -> Self {
        if K == DEFAULT {
            panic!("Default of the bomb went off");
        }
        Bomb { armed: false }
    }
}

impl<const K: u8> Clone for Bomb<K> {
    fn clone(&self) -> Self {
        if K == CLONE && self.armed {
            panic!("Clone of the bomb went off");
        }
        Bomb { armed: self.armed }
    }
}

impl<const K: u8> Serialize for Bomb<K> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if K == SERIALIZE && self.armed {
            panic!("Serialize of the bomb went off");
        }
        self.armed.serialize(serializer)
    }
}

impl<'de, const K: u8> Deserialize<'de> for Bomb<K> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let armed = bool::deserialize(deserializer)?;
        if K == DESERIALIZE && armed {
            panic!("Deserialize of the bomb went off");
        }
        Ok(Bomb { armed })
    }
}

/// One flow per impl; the same shape for all: the bomb is armed by `start`, then a split (whose
/// second branch gets a clone of the state), a join (which loads the split's state from the
/// datastore), and enough tasks that another worker is waiting when the bomb goes off.
macro_rules! bomb_flow {
    ($name:ident, $kind:expr) => {
        #[derive(Clone, Default, Serialize, Deserialize)]
        pub struct $name {
            bomb: Bomb<{ $kind }>,
            xs: Vec<u32>,
            seen: u32,
        }

        #[flow]
        impl $name {
            #[step(next = arm)]
            fn start(&mut self) {
                self.xs = (0..8).collect();
            }
            #[step(next = [left, right])]
            fn arm(&mut self) {
                self.bomb.armed = true;
            }
            #[step(next = both)]
            fn left(&mut self) {
                self.seen += 1;
            }
            #[step(next = both)]
            fn right(&mut self) {
                self.seen += 2;
            }
            #[step(join, next = end)]
            fn both(&mut self, inputs: Inputs<Self>) {
                self.seen = inputs.iter().map(|i| i.seen).sum();
            }
            #[step]
            fn end(&mut self) {}
        }
    };
}

bomb_flow!(DefaultPanics, DEFAULT);
bomb_flow!(ClonePanics, CLONE);
bomb_flow!(SerializePanics, SERIALIZE);
bomb_flow!(DeserializePanics, DESERIALIZE);

/// Runs `F` with two workers on a fresh datastore; fails the test instead of hanging.
fn run_with_two_workers<F: Flow>() -> (tempfile::TempDir, RunStore, RunSummary) {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = RunStore::open_local(dir.path()).expect("datastore");
    let (tx, rx) = mpsc::channel();
    let runner = store.clone();
    std::thread::spawn(move || {
        let options = RunOptions {
            max_workers: 2,
            ..RunOptions::default()
        };
        let _ = tx.send(run_flow::<F>(&runner, serde_json::json!({}), &options));
    });
    let summary = match rx.recv_timeout(Duration::from_secs(120)) {
        Ok(result) => result.expect("the run is recorded"),
        Err(mpsc::RecvTimeoutError::Timeout) => panic!("the run hung for two minutes"),
        Err(mpsc::RecvTimeoutError::Disconnected) => {
            panic!("the run panicked instead of failing its task")
        }
    };
    (dir, store, summary)
}

/// The run failed at `step` with a message naming the panic, and its record says so.
fn assert_failed_at<F: Flow>(store: &RunStore, summary: &RunSummary, step: &str, message: &str) {
    assert_eq!(summary.status, RunStatus::Failed);
    let (path, failure) = summary.failure.as_ref().expect("a failed task");
    assert_eq!(path.step, step, "failure: {failure}");
    let text = failure.to_string();
    assert!(text.contains(message), "{text}");
    assert!(text.contains("panicked"), "{text}");
    let record = store.read_run(F::GRAPH.name, &summary.run_id).expect("run");
    assert_eq!(record.status, RunStatus::Failed);
    assert!(
        record
            .failure
            .as_deref()
            .is_some_and(|f| f.contains(message)),
        "{:?}",
        record.failure
    );
    let key = RunStore::task_key(F::GRAPH.name, &summary.run_id, step, &path.task).expect("key");
    let meta = store.read_meta(&key).expect("meta").expect("meta written");
    assert_eq!(meta.status, TaskStatus::Failed);
    assert!(store.read_index(&key).expect("read").is_none());
}

#[test]
fn a_panicking_default_fails_the_start_task_and_the_run() {
    let (_dir, store, summary) = run_with_two_workers::<DefaultPanics>();
    assert_failed_at::<DefaultPanics>(&store, &summary, "start", "Default of the bomb went off");
}

#[test]
fn a_panicking_clone_fails_the_task_that_copies_the_state_and_the_run() {
    let (_dir, store, summary) = run_with_two_workers::<ClonePanics>();
    let (path, _) = summary.failure.clone().expect("failed");
    assert!(path.step == "left" || path.step == "right", "{path}");
    assert_failed_at::<ClonePanics>(&store, &summary, &path.step, "Clone of the bomb went off");
}

#[test]
fn a_panicking_serialize_fails_the_task_whose_state_is_stored_and_the_run() {
    let (_dir, store, summary) = run_with_two_workers::<SerializePanics>();
    assert_failed_at::<SerializePanics>(&store, &summary, "arm", "Serialize of the bomb went off");
}

#[test]
fn a_panicking_deserialize_fails_the_join_that_loads_the_state_and_the_run() {
    let (_dir, store, summary) = run_with_two_workers::<DeserializePanics>();
    assert_failed_at::<DeserializePanics>(
        &store,
        &summary,
        "both",
        "Deserialize of the bomb went off",
    );
}

#[derive(Clone, Default, Serialize, Deserialize)]
pub struct Small {
    xs: Vec<u32>,
    y: u32,
    total: u32,
}

#[flow]
impl Small {
    #[step(foreach = xs, next = body)]
    fn start(&mut self) {
        self.xs = (0..16).collect();
    }
    #[step(next = gather)]
    fn body(&mut self, x: u32) {
        self.y = x + 1;
    }
    #[step(join, next = end)]
    fn gather(&mut self, inputs: Inputs<Self>) {
        self.total = inputs.iter().map(|i| i.y).sum();
    }
    #[step]
    fn end(&mut self) {}
}

#[test]
fn a_huge_max_workers_is_capped_and_the_run_succeeds() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = RunStore::open_local(dir.path()).expect("datastore");
    let options = RunOptions {
        max_workers: usize::MAX,
        ..RunOptions::default()
    };
    let summary = run_flow::<Small>(&store, serde_json::json!({}), &options).expect("run");
    assert_eq!(
        summary.status,
        RunStatus::Succeeded,
        "{:?}",
        summary.failure
    );
    assert_eq!(summary.tasks_run, 1 + 16 + 2);
}
