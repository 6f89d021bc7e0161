//! Loops: a switch arm back to an earlier step runs the steps between again, each pass a task of
//! its own (`i0`, `i1`, …) with its own artifacts; also inside a foreach; `max_iterations` fails
//! the run cleanly; `resume` reuses the passes that succeeded.

use std::sync::atomic::{AtomicBool, Ordering};

use blooming_flowers::client::Client;
use blooming_flowers::current::current;
use blooming_flowers::executor::{RunOptions, resume_flow, run_flow};
use blooming_flowers::prelude::*;
use blooming_flowers::run::{InputSpec, RunStatus, RunStore, TaskPath};

fn store() -> (tempfile::TempDir, RunStore) {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = RunStore::open_local(dir.path()).expect("datastore");
    (dir, store)
}

fn options() -> RunOptions {
    RunOptions {
        max_workers: 2,
        ..RunOptions::default()
    }
}

fn path(step: &str, task: &str) -> TaskPath {
    TaskPath {
        step: step.into(),
        task: task.into(),
    }
}

/// Trains until three passes were made; `check` may go back at most `max_iterations` times.
#[derive(Clone, Default, Serialize, Deserialize)]
struct Converge {
    passes: u32,
    /// The pass each `train` task saw, as `Current` tells it.
    seen: Vec<usize>,
    wanted: u32,
}

#[flow]
impl Converge {
    #[step(next = train)]
    fn start(&mut self) {
        self.wanted = 3;
    }
    #[step(next = check)]
    fn train(&mut self) {
        self.passes += 1;
        let pass = current().and_then(|c| c.loop_pass()).unwrap_or(usize::MAX);
        self.seen.push(pass);
    }
    #[step(switch(true => train, false => end), max_iterations = 5)]
    fn check(&mut self) -> bool {
        self.passes < self.wanted
    }
    #[step]
    fn end(&mut self) {}
}

#[test]
fn a_loop_runs_three_passes_then_leaves() {
    let (dir, store) = store();
    let run = run_flow::<Converge>(&store, serde_json::Value::Null, &options()).expect("run");
    assert_eq!(run.status, RunStatus::Succeeded, "{:?}", run.failure);
    // start, 3 × (train, check), end.
    assert_eq!(run.tasks_run, 8);

    let client = Client::open(dir.path()).expect("client");
    let handle = client.flow("Converge").run(&run.run_id).expect("run");
    let train = handle.step("train").expect("train");
    assert_eq!(train.task_ids().expect("ids"), ["i0", "i1", "i2"]);
    let passes: Vec<u32> = train
        .tasks()
        .expect("tasks")
        .iter()
        .map(|t| t.artifact::<u32>("passes").expect("passes"))
        .collect();
    assert_eq!(passes, [1, 2, 3], "each pass keeps its own artifacts");
    let second = train.task("i1").expect("task");
    assert_eq!(second.loop_pass(), Some(1));
    // Each pass starts from the switch of the pass before; the first from `start`.
    assert_eq!(second.parents(), [path("check", "i0")]);
    assert_eq!(
        train.task("i0").expect("task").parents(),
        [path("start", "0")]
    );
    let end = handle.end_task().expect("end");
    assert_eq!(end.parents(), [path("check", "i2")]);
    assert_eq!(end.artifact::<Vec<usize>>("seen").expect("seen"), [0, 1, 2]);
    assert_eq!(
        handle
            .step("check")
            .expect("check")
            .task("i1")
            .expect("task")
            .children()
            .expect("children"),
        [path("train", "i2")]
    );
}

/// Wants more passes than its `max_iterations` allow.
#[derive(Clone, Default, Serialize, Deserialize)]
struct Endless {
    passes: u32,
}

#[flow]
impl Endless {
    #[step(next = again)]
    fn start(&mut self) {}
    #[step(switch(true => again, false => end), max_iterations = 4)]
    fn again(&mut self) -> bool {
        self.passes += 1;
        self.passes < 100
    }
    #[step]
    fn end(&mut self) {}
}

#[test]
fn a_loop_past_max_iterations_fails_the_run() {
    let (dir, store) = store();
    let run = run_flow::<Endless>(&store, serde_json::Value::Null, &options()).expect("run");
    assert_eq!(run.status, RunStatus::Failed);
    let (at, failure) = run.failure.expect("a failure");
    assert_eq!(at, path("again", "i3"));
    assert!(
        failure
            .message
            .contains("`again` chose to go back to `again` after 4 passes, the most its `max_iterations = 4` allows"),
        "{}",
        failure.message
    );
    let client = Client::open(dir.path()).expect("client");
    let handle = client.flow("Endless").run(&run.run_id).expect("run");
    assert_eq!(
        handle.step("again").expect("step").task_ids().expect("ids"),
        ["i0", "i1", "i2", "i3"]
    );
    assert!(
        handle
            .step("end")
            .expect("end")
            .task_ids()
            .expect("ids")
            .is_empty()
    );
}

/// A loop in each element of a foreach: element `x` makes `x` passes.
#[derive(Clone, Default, Serialize, Deserialize)]
struct FanLoop {
    xs: Vec<u32>,
    x: u32,
    passes: u32,
    totals: Vec<u32>,
}

#[flow]
impl FanLoop {
    #[step(foreach = xs, next = body)]
    fn start(&mut self) {
        self.xs = vec![1, 2, 3];
    }
    #[step(next = train)]
    fn body(&mut self, x: u32) {
        self.x = x;
    }
    #[step(next = check)]
    fn train(&mut self) {
        self.passes += 1;
    }
    #[step(switch(true => train, false => done))]
    fn check(&mut self) -> bool {
        self.passes < self.x
    }
    #[step(next = join)]
    fn done(&mut self) {}
    #[step(join, next = end)]
    fn join(&mut self, inputs: Inputs<Self>) {
        self.totals = inputs.iter().map(|s| s.passes).collect();
    }
    #[step]
    fn end(&mut self) {}
}

#[test]
fn a_loop_inside_a_foreach_runs_per_element() {
    let (dir, store) = store();
    let run = run_flow::<FanLoop>(&store, serde_json::Value::Null, &options()).expect("run");
    assert_eq!(run.status, RunStatus::Succeeded, "{:?}", run.failure);
    let client = Client::open(dir.path()).expect("client");
    let handle = client.flow("FanLoop").run(&run.run_id).expect("run");
    assert_eq!(
        handle.artifact::<Vec<u32>>("totals").expect("totals"),
        [1, 2, 3]
    );
    let train = handle.step("train").expect("train");
    assert_eq!(
        train.task_ids().expect("ids"),
        ["0-i0", "1-i0", "1-i1", "2-i0", "2-i1", "2-i2"]
    );
    let last = train.task("2-i2").expect("task");
    assert_eq!((last.foreach_index(), last.loop_pass()), (Some(2), Some(2)));
    assert_eq!(last.parents(), [path("check", "2-i1")]);
    let done = handle.step("done").expect("done");
    assert_eq!(done.task_ids().expect("ids"), ["0", "1", "2"]);
    assert_eq!(
        done.task("1").expect("task").parents(),
        [path("check", "1-i1")]
    );
    let Some(meta) = handle
        .step("join")
        .expect("join")
        .tasks()
        .expect("tasks")
        .first()
        .map(|t| t.meta().clone())
    else {
        panic!("the join ran");
    };
    let InputSpec::Join { inputs, .. } = meta.spec.input else {
        panic!("a join's input");
    };
    assert_eq!(
        inputs,
        [path("done", "0"), path("done", "1"), path("done", "2")]
    );
}

/// Fails in its second pass while `FAIL_SECOND_PASS` is set.
static FAIL_SECOND_PASS: AtomicBool = AtomicBool::new(true);

#[derive(Clone, Default, Serialize, Deserialize)]
struct Flaky {
    passes: u32,
}

#[flow]
impl Flaky {
    #[step(next = train)]
    fn start(&mut self) {}
    #[step(next = check)]
    fn train(&mut self) -> Result<(), String> {
        if self.passes == 1 && FAIL_SECOND_PASS.load(Ordering::SeqCst) {
            return Err("the second pass broke".into());
        }
        self.passes += 1;
        Ok(())
    }
    #[step(switch(true => train, false => end))]
    fn check(&mut self) -> bool {
        self.passes < 3
    }
    #[step]
    fn end(&mut self) {}
}

#[test]
fn resume_reuses_the_passes_that_succeeded() {
    let (dir, store) = store();
    let origin = run_flow::<Flaky>(&store, serde_json::Value::Null, &options()).expect("run");
    assert_eq!(origin.status, RunStatus::Failed);
    assert_eq!(
        origin.failure.as_ref().map(|(p, _)| p.clone()),
        Some(path("train", "i1"))
    );
    FAIL_SECOND_PASS.store(false, Ordering::SeqCst);
    let resumed = resume_flow::<Flaky>(&store, &origin.run_id, None, &options()).expect("resume");
    assert_eq!(
        resumed.status,
        RunStatus::Succeeded,
        "{:?}",
        resumed.failure
    );
    // start, train/i0 and check/i0 reused; train and check i1, i2, and end run.
    assert_eq!((resumed.tasks_reused, resumed.tasks_run), (3, 5));
    let client = Client::open(dir.path()).expect("client");
    let handle = client.flow("Flaky").run(&resumed.run_id).expect("run");
    let train = handle.step("train").expect("train");
    assert_eq!(train.task_ids().expect("ids"), ["i0", "i1", "i2"]);
    let reused = train.task("i0").expect("task");
    assert_eq!(reused.origin_run_id(), Some(&origin.run_id));
    assert_eq!(train.task("i1").expect("task").origin_run_id(), None);
    assert_eq!(handle.artifact::<u32>("passes").expect("passes"), 3);
}

/// `dump RUN/STEP` of a step in a loop says which pass each task is; `dump RUN/STEP/TASK` too.
#[test]
fn dump_walks_the_passes() {
    let (dir, store) = store();
    let run = run_flow::<FanLoop>(&store, serde_json::Value::Null, &options()).expect("run");
    let dump = |what: &str| {
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let code = blooming_flowers::cli::run_cli_with::<FanLoop, _, _>(
            [
                "flow".into(),
                "--datastore".into(),
                dir.path().as_os_str().to_owned(),
                "dump".into(),
                std::ffi::OsString::from(format!("{}/{what}", run.run_id)),
            ],
            &mut out,
            &mut err,
        );
        assert_eq!(code, 0, "{}", String::from_utf8_lossy(&err));
        String::from_utf8_lossy(&out).into_owned()
    };
    let listing = dump("train");
    let header = listing.lines().nth(1).unwrap_or_default();
    assert!(header.contains("LOOP PASS"), "{listing}");
    let row = listing
        .lines()
        .find(|l| l.starts_with("2-i1 "))
        .unwrap_or_default();
    assert!(
        row.contains("start 2/3") && row.contains("train 1"),
        "{listing}"
    );
    let task = dump("train/2-i1");
    assert!(task.contains("  loop pass: train 1"), "{task}");
    // A step outside any loop keeps the table it had.
    assert!(!dump("done").contains("LOOP PASS"));
}

/// `resume STEP` with `STEP` inside a loop reruns the loop from its first pass: the loop leads
/// from `STEP` back to its head.
#[test]
fn resume_from_a_step_inside_a_loop_reruns_the_loop() {
    let (_dir, store) = store();
    let origin = run_flow::<Converge>(&store, serde_json::Value::Null, &options()).expect("run");
    assert_eq!(origin.status, RunStatus::Succeeded, "{:?}", origin.failure);
    let resumed =
        resume_flow::<Converge>(&store, &origin.run_id, Some("check"), &options()).expect("resume");
    assert_eq!(
        resumed.status,
        RunStatus::Succeeded,
        "{:?}",
        resumed.failure
    );
    assert_eq!((resumed.tasks_reused, resumed.tasks_run), (1, 7));
}

/// Without a coordinator (Argo), a task finds its pass's parent from its id alone, and says what
/// is wrong with an id that names no pass.
#[test]
fn derive_spec_finds_a_pass_or_says_why_not() {
    use blooming_flowers::executor::derive_spec;
    let (_dir, store) = store();
    let run = run_flow::<FanLoop>(&store, serde_json::Value::Null, &options()).expect("run");
    let graph = FanLoop::GRAPH;
    let spec = derive_spec(graph, &store, &run.run_id, "train", "2-i2").expect("a spec");
    assert_eq!(
        spec.input,
        InputSpec::Parent {
            parent: path("check", "2-i1")
        }
    );
    let spec = derive_spec(graph, &store, &run.run_id, "done", "2").expect("a spec");
    assert_eq!(
        spec.input,
        InputSpec::Parent {
            parent: path("check", "2-i2")
        }
    );
    let error = derive_spec(graph, &store, &run.run_id, "train", "2")
        .expect_err("a pass is part of the id")
        .to_string();
    assert!(
        error.contains("numbered by their foreach elements and loop passes, as in `0-i0`"),
        "{error}"
    );
    // Element 0 left its loop after one pass: no second pass starts.
    let error = derive_spec(graph, &store, &run.run_id, "train", "0-i1")
        .expect_err("no such pass")
        .to_string();
    assert!(
        error.contains("the switch check/0-i0 chose `done`"),
        "{error}"
    );

    let run = run_flow::<Endless>(&store, serde_json::Value::Null, &options()).expect("run");
    let error = derive_spec(Endless::GRAPH, &store, &run.run_id, "again", "i4")
        .expect_err("past max_iterations")
        .to_string();
    assert!(
        error.contains("the most its `max_iterations = 4` allows"),
        "{error}"
    );
}
