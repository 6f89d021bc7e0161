//! What `resume` reuses from the origin run, and what it refuses to: a reused task's done marker
//! always agrees with the state the rest of the run used, and a damaged origin task is rerun
//! instead of failing the resume forever.

use blooming_flowers::executor::{RunOptions, resume_flow, run_flow};
use blooming_flowers::prelude::*;
use blooming_flowers::run::{RunStatus, RunStore};

fn store() -> (tempfile::TempDir, RunStore) {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = RunStore::open_local(dir.path()).expect("datastore");
    (dir, store)
}

fn one_worker() -> RunOptions {
    RunOptions {
        max_workers: 1,
        ..RunOptions::default()
    }
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

/// The first version of a flow: its switch goes to `big`.
mod v1 {
    use blooming_flowers::prelude::*;

    #[derive(Debug, Clone, Copy, Serialize, Deserialize)]
    pub enum Size {
        Big,
        Small,
    }

    #[derive(Clone, Default, Serialize, Deserialize)]
    pub struct Sized {
        pub decided_by: String,
        pub verdict: String,
    }

    #[flow]
    impl Sized {
        #[step(next = decide)]
        fn start(&mut self) {}
        #[step(switch(Size::Big => big, Size::Small => small))]
        fn decide(&mut self) -> Size {
            self.decided_by = "v1".into();
            Size::Big
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
}

/// The same flow after an edit: `big` was renamed `large`, so the choice v1 recorded names no
/// arm of this version.
mod v2 {
    use blooming_flowers::prelude::*;

    #[derive(Debug, Clone, Copy, Serialize, Deserialize)]
    pub enum Size {
        Large,
        Small,
    }

    #[derive(Clone, Default, Serialize, Deserialize)]
    pub struct Sized {
        pub decided_by: String,
        pub verdict: String,
    }

    #[flow]
    impl Sized {
        #[step(next = decide)]
        fn start(&mut self) {}
        #[step(switch(Size::Large => large, Size::Small => small))]
        fn decide(&mut self) -> Size {
            self.decided_by = "v2".into();
            Size::Large
        }
        #[step(next = end)]
        fn large(&mut self) {
            self.verdict = "large".into();
        }
        #[step(next = end)]
        fn small(&mut self) {
            self.verdict = "small".into();
        }
        #[step]
        fn end(&mut self) {}
    }
}

#[test]
fn a_reused_switch_whose_choice_is_no_longer_an_arm_is_rerun_and_its_marker_says_so() {
    let (_dir, store) = store();
    let origin =
        run_flow::<v1::Sized>(&store, serde_json::Value::Null, &one_worker()).expect("run");
    assert_eq!(origin.status, RunStatus::Succeeded, "{:?}", origin.failure);

    let resumed =
        resume_flow::<v2::Sized>(&store, &origin.run_id, None, &one_worker()).expect("resume");
    assert_eq!(
        resumed.status,
        RunStatus::Succeeded,
        "{:?}",
        resumed.failure
    );
    // `start` is reused; `decide` cannot be (its recorded choice `big` is not an arm of v2).
    assert_eq!(resumed.tasks_reused, 1);

    let key = RunStore::task_key("Sized", &resumed.run_id, "decide", "0").expect("key");
    let meta = store.read_meta(&key).expect("meta").expect("written");
    assert_eq!(meta.chose.as_deref(), Some("large"));
    assert_eq!(
        meta.origin_run_id, None,
        "decide ran again; it was not reused"
    );
    // The stored state of `decide` is the one `large` started from.
    let decided: v2::Sized = state_of(&store, &resumed.run_id, "decide", "0");
    assert_eq!(decided.decided_by, "v2");
    let end: v2::Sized = state_of(&store, &resumed.run_id, "end", "0");
    assert_eq!(end.decided_by, "v2");
    assert_eq!(end.verdict, "large");
}

#[derive(Clone, Default, Serialize, Deserialize)]
pub struct Chain {
    a: u32,
    b: u32,
    c: u32,
}

#[flow]
impl Chain {
    #[step(next = one)]
    fn start(&mut self) {}
    #[step(next = two)]
    fn one(&mut self) {
        self.a = 1;
    }
    #[step(next = end)]
    fn two(&mut self) {
        self.b = self.a + 1;
    }
    #[step]
    fn end(&mut self) {
        self.c = self.b + 1;
    }
}

#[test]
fn a_damaged_done_marker_in_the_origin_run_is_rerun_by_resume() {
    let (dir, store) = store();
    let origin = run_flow::<Chain>(&store, serde_json::Value::Null, &one_worker()).expect("run");
    assert_eq!(origin.status, RunStatus::Succeeded, "{:?}", origin.failure);

    // A power loss without BLOOMING_SYNC can leave a marker cut short; a bad disk, garbage.
    let marker = dir
        .path()
        .join("flows/Chain/runs")
        .join(&origin.run_id)
        .join("steps/one/0/done.json");
    let bytes = std::fs::read(&marker).expect("marker");
    std::fs::write(&marker, &bytes[..bytes.len() / 2]).expect("cut the marker short");

    for attempt in 0..2 {
        let resumed =
            resume_flow::<Chain>(&store, &origin.run_id, None, &one_worker()).expect("resume");
        assert_eq!(
            resumed.status,
            RunStatus::Succeeded,
            "resume {attempt}: {:?}",
            resumed.failure
        );
        // `start` is reused; `one` is rerun, and so is everything after it.
        assert_eq!(resumed.tasks_reused, 1, "resume {attempt}");
        assert_eq!(resumed.tasks_run, 3, "resume {attempt}");
        let end: Chain = state_of(&store, &resumed.run_id, "end", "0");
        assert_eq!((end.a, end.b, end.c), (1, 2, 3));
    }
}

/// A task of the origin whose artifact blob is gone (deleted by a collection, or by hand) is not
/// reused: its marker would name a blob that is not there. It runs again, which stores the blob
/// anew, and the resumed run reads whole.
#[test]
fn an_origin_task_whose_blob_is_gone_is_rerun_by_resume() {
    let (_dir, store) = store();
    let origin = run_flow::<Chain>(&store, serde_json::Value::Null, &one_worker()).expect("run");
    assert_eq!(origin.status, RunStatus::Succeeded, "{:?}", origin.failure);
    let key = RunStore::task_key("Chain", &origin.run_id, "two", "0").expect("key");
    let index = store.read_index(&key).expect("index").expect("complete");
    let b = index.artifact("b").expect("b");
    assert!(store.storage().delete(&b.hash.key()).expect("delete"));

    let resumed =
        resume_flow::<Chain>(&store, &origin.run_id, None, &one_worker()).expect("resume");
    assert_eq!(
        resumed.status,
        RunStatus::Succeeded,
        "{:?}",
        resumed.failure
    );
    // `start` and `one` are reused; `two` is rerun, and so is everything after it.
    assert_eq!((resumed.tasks_reused, resumed.tasks_run), (2, 2));
    let end: Chain = state_of(&store, &resumed.run_id, "end", "0");
    assert_eq!((end.a, end.b, end.c), (1, 2, 3));
    assert!(
        store.blobs().contains(&b.hash).expect("lookup"),
        "stored anew"
    );
}

/// Gives run `run` of `Chain` the provenance `change` makes of it, as another build would have.
fn rewrite_provenance(
    dir: &std::path::Path,
    run: &str,
    change: impl FnOnce(&mut serde_json::Value),
) {
    let path = dir.join("flows/Chain/runs").join(run).join("run.json");
    let mut record: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&path).expect("read")).expect("JSON");
    change(&mut record["provenance"]);
    std::fs::write(&path, serde_json::to_vec(&record).expect("encode")).expect("write");
}

#[test]
fn a_run_of_another_binary_is_resumed_only_when_allowed_and_the_new_run_says_so() {
    use blooming_flowers::executor::{BinaryMatch, RunError, binary_match};
    let (dir, store) = store();
    let origin = run_flow::<Chain>(&store, serde_json::Value::Null, &one_worker()).expect("run");
    let record = store.read_run("Chain", &origin.run_id).expect("record");
    assert_eq!(binary_match(&record), BinaryMatch::Same);
    let other = "0f".repeat(32);
    rewrite_provenance(dir.path(), &origin.run_id, |p| {
        p["binary_hash"] = other.clone().into()
    });

    let refused = resume_flow::<Chain>(&store, &origin.run_id, None, &one_worker())
        .expect_err("another binary");
    assert!(
        matches!(&refused, RunError::OtherBinary { origin, .. } if *origin == other),
        "{refused}"
    );
    assert_eq!(
        store.list_runs("Chain").expect("runs").len(),
        1,
        "no run started"
    );

    let allowed = RunOptions {
        allow_other_binary: true,
        ..one_worker()
    };
    let resumed = resume_flow::<Chain>(&store, &origin.run_id, None, &allowed).expect("resume");
    assert_eq!(resumed.tasks_reused, 4);
    let record = store.read_run("Chain", &resumed.run_id).expect("record");
    let provenance = record.provenance.expect("provenance");
    assert_eq!(
        provenance.reused_tasks_of_binary.as_deref(),
        Some(other.as_str())
    );

    // A run older than provenance: nothing to compare, the resume goes on.
    rewrite_provenance(dir.path(), &origin.run_id, |p| *p = serde_json::Value::Null);
    let record = store
        .read_run("Chain", &origin.run_id)
        .expect("an old record reads");
    assert_eq!(record.provenance, None);
    assert_eq!(binary_match(&record), BinaryMatch::Unknown);
    resume_flow::<Chain>(&store, &origin.run_id, None, &one_worker()).expect("resume");
}

/// `--until STEP` stops a run (or a resume) after STEP: nothing after it starts, the run is
/// recorded `stopped`, no latest-successful pointer moves, and a resume goes on from there.
#[test]
fn until_stops_after_the_step_and_resume_goes_on() {
    let (dir, store) = store();
    let until = |step: &str| RunOptions {
        until: Some(step.to_string()),
        ..one_worker()
    };
    let stopped = run_flow::<Chain>(&store, serde_json::Value::Null, &until("one")).expect("run");
    assert_eq!(stopped.status, RunStatus::Stopped, "{:?}", stopped.failure);
    assert_eq!(stopped.tasks_run, 2, "start and one");
    let record = store.read_run("Chain", &stopped.run_id).expect("record");
    assert_eq!((record.status, record.failure), (RunStatus::Stopped, None));
    let client = blooming_flowers::client::Client::open(dir.path()).expect("client");
    let flow = client.flow("Chain");
    assert!(
        flow.latest_successful_run().is_err(),
        "a stopped run did not succeed"
    );
    let run = flow.run(&stopped.run_id).expect("run");
    assert!(
        run.step("two")
            .expect("step")
            .task_ids()
            .expect("ids")
            .is_empty()
    );

    // A resume stopping one step further, then one to the end.
    let further =
        resume_flow::<Chain>(&store, &stopped.run_id, None, &until("two")).expect("resume");
    assert_eq!(further.status, RunStatus::Stopped);
    assert_eq!((further.tasks_reused, further.tasks_run), (2, 1));
    let done = resume_flow::<Chain>(&store, &further.run_id, None, &until("end")).expect("resume");
    assert_eq!(done.status, RunStatus::Succeeded, "{:?}", done.failure);
    assert_eq!((done.tasks_reused, done.tasks_run), (3, 1));
    let end: Chain = state_of(&store, &done.run_id, "end", "0");
    assert_eq!((end.a, end.b, end.c), (1, 2, 3));

    // On the command line: exit 0 and how to go on; a step the flow lacks is bad input.
    let cli = |args: &[&str]| {
        let mut argv: Vec<std::ffi::OsString> =
            vec!["chain".into(), "--datastore".into(), dir.path().into()];
        argv.extend(args.iter().map(std::ffi::OsString::from));
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let code = blooming_flowers::cli::run_cli_with::<Chain, _, _>(argv, &mut out, &mut err);
        (
            code,
            String::from_utf8_lossy(&out).into_owned(),
            String::from_utf8_lossy(&err).into_owned(),
        )
    };
    let (code, out, err) = cli(&["run", "--until", "one"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("stopped where --until asked (2 tasks run)"),
        "{out}"
    );
    assert!(out.contains("Go on with: chain --datastore"), "{out}");
    let (code, _, err) = cli(&["resume", "--until", "tow"]);
    assert_eq!(code, 2);
    assert!(
        err.contains("--until tow: flow Chain has no step `tow`")
            && err.contains("did you mean `two`?"),
        "{err}"
    );
    let (code, out, _) = cli(&["runs"]);
    assert_eq!(code, 0);
    assert!(out.contains("stopped"), "{out}");
}
