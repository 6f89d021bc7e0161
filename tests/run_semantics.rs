//! Runs flows in-process on a temporary datastore and checks what each kind of transition
//! leaves behind.

use std::sync::atomic::{AtomicUsize, Ordering};

use blooming_flowers::executor::{RunOptions, resume_flow, run_flow};
use blooming_flowers::prelude::*;
use blooming_flowers::run::{Latest, RunStatus, RunStore, TaskStatus};

fn store() -> (tempfile::TempDir, RunStore) {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = RunStore::open_local(dir.path()).expect("datastore");
    (dir, store)
}

/// The end state of a run's task `step/task`.
fn state_of<F: Flow>(store: &RunStore, run: &str, step: &str, task: &str) -> F {
    let key = RunStore::task_key(F::GRAPH.name, run, step, task).expect("key");
    let index = store
        .read_index(&key)
        .expect("index")
        .expect("task complete");
    store
        .blobs()
        .load_state::<blooming_flowers::StateOwned<F>>(&index.artifacts)
        .expect("state loads")
        .0
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
enum Size {
    Big,
    Small,
}

#[derive(Clone, Default, Serialize, Deserialize)]
struct Everything {
    xs: Vec<u64>,
    square: u64,
    total: u64,
    note: String,
    untouched: Vec<u8>,
    verdict: String,
}

#[flow]
impl Everything {
    #[step(next = [left, right])]
    fn start(&mut self) {
        self.xs = (1..=10).collect();
        self.untouched = vec![7; 1000];
    }
    #[step(next = both)]
    fn left(&mut self) {
        self.note = "left".into();
    }
    #[step(next = both)]
    fn right(&mut self) {}
    #[step(join, next = fan)]
    fn both(&mut self, inputs: Inputs<Self>) {
        inputs
            .merge_artifacts(self)
            .expect("only `left` changed `note`");
    }
    #[step(foreach = xs, next = sq)]
    fn fan(&mut self) {}
    #[step(next = gather)]
    fn sq(&mut self, x: u64) {
        self.square = x * x;
    }
    #[step(join, next = decide)]
    fn gather(&mut self, inputs: Inputs<Self>) {
        self.total = inputs.iter().map(|i| i.square).sum();
    }
    #[step(switch(Size::Big => big, Size::Small => small))]
    fn decide(&mut self) -> Size {
        if self.total > 100 {
            Size::Big
        } else {
            Size::Small
        }
    }
    #[step(next = end)]
    fn big(&mut self) {
        self.verdict = "big".into();
    }
    #[step(next = end)]
    fn small(&mut self) {
        self.verdict = "small".into();
    }
    #[step]
    fn end(&mut self) {}
}

#[test]
fn every_transition_kind_runs_and_leaves_its_artifacts() {
    let (_dir, store) = store();
    let summary = run_flow::<Everything>(&store, serde_json::Value::Null, &RunOptions::default())
        .expect("run");
    assert_eq!(
        summary.status,
        RunStatus::Succeeded,
        "{:?}",
        summary.failure
    );
    let end: Everything = state_of(&store, &summary.run_id, "end", "0");
    assert_eq!(end.total, 385);
    assert_eq!(end.note, "left");
    assert_eq!(end.verdict, "big");
    // The switch ran one arm only.
    assert!(
        store
            .list_tasks("Everything", &summary.run_id, "small")
            .expect("list")
            .is_empty()
    );
    // One task per element, each with its own item.
    let tasks = store
        .list_tasks("Everything", &summary.run_id, "sq")
        .expect("list");
    assert_eq!(tasks, (0..10).map(|i| i.to_string()).collect::<Vec<_>>());
    let fourth: Everything = state_of(&store, &summary.run_id, "sq", "3");
    assert_eq!(fourth.square, 16);
    // `untouched` never changed after start: one blob, the same hash in every task.
    let hash_in = |step: &str, task: &str| {
        let key = RunStore::task_key("Everything", &summary.run_id, step, task).expect("key");
        let index = store.read_index(&key).expect("index").expect("done");
        index.artifact("untouched").expect("artifact").hash
    };
    assert_eq!(hash_in("start", "0"), hash_in("end", "0"));
    assert_eq!(hash_in("start", "0"), hash_in("sq", "7"));
    assert_eq!(summary.tasks_run, 1 + 2 + 1 + 1 + 10 + 1 + 1 + 1 + 1);
    let record = store
        .read_run("Everything", &summary.run_id)
        .expect("record");
    assert_eq!(record.status, RunStatus::Succeeded);
    assert_eq!(
        store
            .latest("Everything", Latest::Succeeded)
            .expect("latest"),
        Some(summary.run_id)
    );
}

#[derive(Clone, Default, Serialize, Deserialize)]
struct Nested {
    rows: Vec<u32>,
    cols: Vec<u32>,
    row: u32,
    cell: u32,
    row_sum: u32,
    sums: Vec<u32>,
}

#[flow]
impl Nested {
    #[step(foreach = rows, next = row)]
    fn start(&mut self) {
        self.rows = vec![1, 2, 3];
    }
    #[step(foreach = cols, next = cell)]
    fn row(&mut self, r: u32) {
        self.row = r;
        self.cols = (1..=r).collect();
    }
    #[step(next = [double, keep])]
    fn cell(&mut self, c: u32) {
        self.cell = self.row * 10 + c;
    }
    #[step(next = pair)]
    fn double(&mut self) {
        self.cell *= 2;
    }
    #[step(next = pair)]
    fn keep(&mut self) {}
    #[step(join, next = row_done)]
    fn pair(&mut self, inputs: Inputs<Self>) {
        self.cell = inputs.iter().map(|i| i.cell).sum();
    }
    #[step(join, next = all)]
    fn row_done(&mut self, inputs: Inputs<Self>) {
        self.row_sum = inputs.iter().map(|i| i.cell).sum();
    }
    #[step(join, next = end)]
    fn all(&mut self, inputs: Inputs<Self>) {
        self.sums = inputs.iter().map(|i| i.row_sum).collect();
    }
    #[step]
    fn end(&mut self) {}
}

#[test]
fn nested_foreach_with_a_branch_inside_gives_the_right_values() {
    let (_dir, store) = store();
    let summary =
        run_flow::<Nested>(&store, serde_json::Value::Null, &RunOptions::default()).expect("run");
    assert_eq!(
        summary.status,
        RunStatus::Succeeded,
        "{:?}",
        summary.failure
    );
    let end: Nested = state_of(&store, &summary.run_id, "end", "0");
    // cell = 3 * (10 r + c); row r sums c = 1..=r.
    let expected: Vec<u32> = (1..=3u32)
        .map(|r| (1..=r).map(|c| 3 * (10 * r + c)).sum())
        .collect();
    assert_eq!(end.sums, expected);
    let cells = store
        .list_tasks("Nested", &summary.run_id, "cell")
        .expect("list");
    assert_eq!(cells, vec!["0-0", "1-0", "1-1", "2-0", "2-1", "2-2"]);
}

static FLAKY_CALLS: AtomicUsize = AtomicUsize::new(0);

#[derive(Clone, Default, Serialize, Deserialize)]
struct Failing {
    error: Option<String>,
    attempts_seen: usize,
}

#[flow]
impl Failing {
    #[step(next = flaky)]
    fn start(&mut self) {}
    /// Fails twice, then succeeds.
    #[step(next = caught, retries = 2)]
    fn flaky(&mut self) -> Result<(), String> {
        let n = FLAKY_CALLS.fetch_add(1, Ordering::SeqCst);
        if n < 2 {
            Err(format!("attempt {n} failed"))
        } else {
            Ok(())
        }
    }
    #[step(next = end, catch = error)]
    fn caught(&mut self) {
        panic!("this step always panics");
    }
    #[step]
    fn end(&mut self) {}
}

#[test]
fn retries_then_catch_let_the_run_succeed_and_record_why() {
    let (_dir, store) = store();
    let summary =
        run_flow::<Failing>(&store, serde_json::Value::Null, &RunOptions::default()).expect("run");
    assert_eq!(
        summary.status,
        RunStatus::Succeeded,
        "{:?}",
        summary.failure
    );
    let end: Failing = state_of(&store, &summary.run_id, "end", "0");
    let error = end
        .error
        .expect("the caught panic is recorded in the field");
    assert!(error.contains("this step always panics"), "{error}");
    let key = RunStore::task_key("Failing", &summary.run_id, "flaky", "0").expect("key");
    let meta = store.read_meta(&key).expect("meta").expect("written");
    assert_eq!(meta.attempts.len(), 3);
    assert!(
        meta.attempts[0]
            .failure
            .as_ref()
            .expect("failed")
            .message
            .contains("attempt 0 failed")
    );
    let key = RunStore::task_key("Failing", &summary.run_id, "caught", "0").expect("key");
    let meta = store.read_meta(&key).expect("meta").expect("written");
    assert_eq!(meta.status, TaskStatus::Caught);
    let failure = meta.failure().expect("recorded");
    assert!(
        failure
            .location
            .as_deref()
            .is_some_and(|l| l.contains("run_semantics.rs")),
        "{failure:?}"
    );
}

#[derive(Clone, Default, Serialize, Deserialize)]
struct Slow {
    done: bool,
}

#[flow]
impl Slow {
    #[step(next = end, timeout = "200ms")]
    fn start(&mut self) {
        std::thread::sleep(std::time::Duration::from_secs(3));
        self.done = true;
    }
    #[step]
    fn end(&mut self) {}
}

#[test]
fn a_step_past_its_timeout_fails_the_run() {
    let (_dir, store) = store();
    let started = std::time::Instant::now();
    let summary =
        run_flow::<Slow>(&store, serde_json::Value::Null, &RunOptions::default()).expect("run");
    assert_eq!(summary.status, RunStatus::Failed);
    let (path, failure) = summary.failure.expect("a failure");
    assert_eq!(path.step, "start");
    assert_eq!(failure.kind, "timeout");
    assert!(started.elapsed() < std::time::Duration::from_secs(2));
}

static FAIL_ELEMENT: AtomicUsize = AtomicUsize::new(7);

#[derive(Clone, Default, Serialize, Deserialize)]
struct Resumable {
    xs: Vec<usize>,
    y: usize,
    total: usize,
}

#[flow]
impl Resumable {
    #[step(foreach = xs, next = body)]
    fn start(&mut self) {
        self.xs = (0..20).collect();
    }
    #[step(next = join)]
    fn body(&mut self, x: usize) -> Result<(), String> {
        if x == FAIL_ELEMENT.load(Ordering::SeqCst) {
            return Err(format!("element {x} is bad"));
        }
        self.y = x * 2;
        Ok(())
    }
    #[step(join, next = end)]
    fn join(&mut self, inputs: Inputs<Self>) {
        self.total = inputs.iter().map(|i| i.y).sum();
    }
    #[step]
    fn end(&mut self) {}
}

#[test]
fn resume_reuses_successful_tasks_and_reruns_the_failed_one() {
    let (_dir, store) = store();
    let options = RunOptions {
        max_workers: 1,
        ..RunOptions::default()
    };
    let failed = run_flow::<Resumable>(&store, serde_json::Value::Null, &options).expect("run");
    assert_eq!(failed.status, RunStatus::Failed);
    let (path, failure) = failed.failure.clone().expect("failure");
    assert_eq!(path.to_string(), "body/7");
    assert!(failure.message.contains("element 7 is bad"));
    // What succeeded is kept.
    let kept: Resumable = state_of(&store, &failed.run_id, "body", "3");
    assert_eq!(kept.y, 6);

    FAIL_ELEMENT.store(usize::MAX, Ordering::SeqCst);
    let resumed = resume_flow::<Resumable>(&store, &failed.run_id, None, &options).expect("resume");
    assert_eq!(
        resumed.status,
        RunStatus::Succeeded,
        "{:?}",
        resumed.failure
    );
    // start and the 7 elements that ran before the failure are reused (one worker: in order).
    assert_eq!(resumed.tasks_reused, 1 + 7);
    let end: Resumable = state_of(&store, &resumed.run_id, "end", "0");
    assert_eq!(end.total, (0..20).map(|x| x * 2).sum::<usize>());
    let record = store
        .read_run("Resumable", &resumed.run_id)
        .expect("record");
    assert_eq!(
        record.origin_run_id.as_deref(),
        Some(failed.run_id.as_str())
    );
    let key = RunStore::task_key("Resumable", &resumed.run_id, "body", "3").expect("key");
    let meta = store.read_meta(&key).expect("meta").expect("written");
    assert_eq!(meta.origin_run_id.as_deref(), Some(failed.run_id.as_str()));
}

#[test]
fn two_runs_started_together_get_distinct_ids() {
    let (_dir, store) = store();
    let (a, b) = std::thread::scope(|s| {
        let a = s.spawn(|| {
            run_flow::<Everything>(&store, serde_json::Value::Null, &RunOptions::default())
        });
        let b = s.spawn(|| {
            run_flow::<Everything>(&store, serde_json::Value::Null, &RunOptions::default())
        });
        (a.join().expect("thread"), b.join().expect("thread"))
    });
    let (a, b) = (a.expect("run a"), b.expect("run b"));
    assert_ne!(a.run_id, b.run_id);
    assert_eq!(a.status, RunStatus::Succeeded);
    assert_eq!(b.status, RunStatus::Succeeded);
}

#[derive(Clone, Default, Serialize, Deserialize)]
struct Empty {
    xs: Vec<u32>,
    seen: usize,
    joined: bool,
}

#[flow]
impl Empty {
    #[step(foreach = xs, next = body)]
    fn start(&mut self) {}
    #[step(next = join)]
    fn body(&mut self, _x: u32) {
        self.seen += 1;
    }
    #[step(join, next = end)]
    fn join(&mut self, inputs: Inputs<Self>) {
        self.seen = inputs.len();
        self.joined = true;
    }
    #[step]
    fn end(&mut self) {}
}

#[test]
fn a_foreach_over_nothing_goes_straight_to_its_join() {
    let (_dir, store) = store();
    let summary =
        run_flow::<Empty>(&store, serde_json::Value::Null, &RunOptions::default()).expect("run");
    assert_eq!(
        summary.status,
        RunStatus::Succeeded,
        "{:?}",
        summary.failure
    );
    let end: Empty = state_of(&store, &summary.run_id, "end", "0");
    assert!(end.joined);
    assert_eq!(end.seen, 0);
    assert!(
        store
            .list_tasks("Empty", &summary.run_id, "body")
            .expect("list")
            .is_empty()
    );
}
