//! `Inputs::values`: a join that reads one field of every branch reads that field's artifact
//! alone, and answers as decoding whole states would, also where it cannot tell the field.

use std::sync::atomic::{AtomicBool, Ordering};

use blooming_flowers::client::Client;
use blooming_flowers::executor::{RunOptions, resume_flow, run_flow};
use blooming_flowers::prelude::*;
use blooming_flowers::run::{RunStatus, RunStore};

static FAIL_JOIN: AtomicBool = AtomicBool::new(false);

#[derive(Clone, Default, Serialize, Deserialize)]
struct Scores {
    items: Vec<u64>,
    score: u64,
    /// Large and different in every branch: a blob of each body task's own, never read by the
    /// join.
    junk: Vec<u64>,
    total: u64,
    /// Whether the join could also decode its inputs' whole states.
    whole_states_readable: bool,
}

#[flow]
impl Scores {
    #[step(foreach = items, next = body)]
    fn start(&mut self) {
        self.items = (0..20).collect();
    }

    #[step(next = join)]
    fn body(&mut self, item: u64) {
        self.score = item * 2;
        self.junk = vec![item; 1000];
    }

    #[step(join, next = end)]
    fn join(&mut self, inputs: Inputs<Self>) -> Result<(), String> {
        if FAIL_JOIN.load(Ordering::SeqCst) {
            return Err("the join fails this time".into());
        }
        self.total = inputs.values(|s| &s.score).sum();
        self.whole_states_readable = inputs.try_iter().all(|input| input.is_ok());
        Ok(())
    }

    #[step]
    fn end(&mut self) {}
}

#[test]
fn a_join_reading_one_field_never_reads_the_others() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = RunStore::open_local(dir.path()).expect("datastore");
    FAIL_JOIN.store(true, Ordering::SeqCst);
    let failed =
        run_flow::<Scores>(&store, serde_json::Value::Null, &RunOptions::default()).expect("ran");
    assert_eq!(failed.status, RunStatus::Failed);

    // Every body task's `junk` is damaged in the datastore (of its size, so that `resume` still
    // reuses the body tasks; a missing blob would make it run them again).
    let client = Client::open(dir.path()).expect("client");
    let run = client.flow("Scores").run(&failed.run_id).expect("run");
    let mut deleted = 0;
    for task in run
        .step("body")
        .expect("body")
        .task_entries()
        .expect("tasks")
    {
        let junk = task
            .artifacts()
            .and_then(|a| a.iter().find(|a| a.name == "junk"))
            .expect("junk")
            .clone();
        let garbage = vec![0xc1_u8; usize::try_from(junk.size).expect("size")];
        store
            .storage()
            .put(&junk.hash.key(), &garbage)
            .expect("damaged");
        deleted += 1;
    }
    assert_eq!(deleted, 20);

    FAIL_JOIN.store(false, Ordering::SeqCst);
    let resumed =
        resume_flow::<Scores>(&store, &failed.run_id, None, &RunOptions::default()).expect("ran");
    assert_eq!(resumed.status, RunStatus::Succeeded);
    let end = client
        .flow("Scores")
        .run(&resumed.run_id)
        .expect("run")
        .end_task()
        .expect("end");
    assert_eq!(
        end.artifact::<u64>("total").expect("total"),
        (0..20).map(|i| i * 2).sum::<u64>()
    );
    // What the join would have hit had it decoded whole states.
    assert!(!end.artifact::<bool>("whole_states_readable").expect("flag"));
}

#[derive(Clone, Default, Serialize, Deserialize)]
struct Shapes {
    #[serde(rename = "learning_rate")]
    lr: f64,
    #[serde(with = "serde_bytes")]
    raw: Vec<u8>,
    inner: Inner,
}

#[derive(Clone, Default, Serialize, Deserialize, PartialEq, Debug)]
struct Inner {
    depth: u32,
}

#[flow]
impl Shapes {
    #[step(next = [a, b])]
    fn start(&mut self) {}
    #[step(next = join)]
    fn a(&mut self) {}
    #[step(next = join)]
    fn b(&mut self) {}
    #[step(join, next = end)]
    fn join(&mut self, _inputs: Inputs<Self>) {}
    #[step]
    fn end(&mut self) {}
}

#[test]
fn renamed_adapted_and_nested_fields_read_as_whole_states_do() {
    let branch = |lr: f64, raw: &[u8], depth: u32| Shapes {
        lr,
        raw: raw.to_vec(),
        inner: Inner { depth },
    };
    let inputs = Inputs::from_states(
        Shapes::default(),
        vec![
            ("a".to_owned(), branch(0.1, b"one", 1)),
            ("b".to_owned(), branch(0.2, b"two", 2)),
        ],
    );
    assert_eq!(inputs.values(|s| &s.lr).collect::<Vec<_>>(), [0.1, 0.2]);
    assert_eq!(
        inputs.values(|s| &s.raw).collect::<Vec<_>>(),
        [b"one".to_vec(), b"two".to_vec()]
    );
    assert_eq!(
        inputs.values(|s| &s.inner.depth).collect::<Vec<_>>(),
        [1, 2]
    );
    assert_eq!(
        inputs.values(|s| &s.inner).collect::<Vec<_>>(),
        [Inner { depth: 1 }, Inner { depth: 2 }]
    );
    assert_eq!(inputs.values(|s| &s.lr).len(), 2);
    // Panics on the default state (an empty vector), not on the branches: read from whole states.
    let with_runs = |runs: Vec<u32>| Shapes {
        raw: runs.iter().map(|&r| r as u8).collect(),
        ..Shapes::default()
    };
    let inputs = Inputs::from_states(
        Shapes::default(),
        vec![
            ("a".to_owned(), with_runs(vec![3, 4])),
            ("b".to_owned(), with_runs(vec![5])),
        ],
    );
    assert_eq!(inputs.values(|s| &s.raw[0]).collect::<Vec<_>>(), [3, 5]);
}
