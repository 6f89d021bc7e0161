//! The flow binary's command line, run in-process on temporary datastores: what each command
//! prints, its exit code, and that bad input writes nothing.

use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

use blooming_flowers::clap;
use blooming_flowers::cli::{EXIT_FAILURE, EXIT_OK, EXIT_USAGE, run_cli_with};
use blooming_flowers::datastore::LocalStorage;
use blooming_flowers::prelude::*;
use blooming_flowers::run::RunStore;
use serde_json::{Value, json};

/// The flow the tests run: a foreach, a join and a linear tail.
#[derive(Clone, Default, Serialize, Deserialize)]
struct Squares {
    xs: Vec<u64>,
    square: u64,
    total: u64,
    label: String,
    raw: Vec<u8>,
}

/// Squares some numbers and adds them up.
#[flow]
impl Squares {
    /// Picks the numbers.
    #[step(foreach = xs, next = sq)]
    fn start(&mut self) {
        self.xs = (1..=10).collect();
        self.raw = vec![1, 2, 255];
    }

    /// Squares one number.
    #[step(next = gather)]
    fn sq(&mut self, x: u64) {
        tracing::info!(x, "squaring");
        self.square = x * x;
    }

    /// Adds the squares.
    #[step(join, next = end)]
    fn gather(&mut self, inputs: Inputs<Self>) {
        self.total = inputs.iter().map(|i| i.square).sum();
        self.xs = inputs.iter().map(|i| i.square).collect();
    }

    #[step]
    fn end(&mut self) {
        self.label = format!("total {}", self.total);
    }
}

/// Fails in `sq` for x = 3 while `FLAKY_FAILS` is set: a run fails, a resume succeeds.
static FLAKY_FAILS: AtomicBool = AtomicBool::new(true);

/// Held by each test that sets [`FLAKY_FAILS`], which tests running at once would otherwise
/// change under each other.
static FLAKY: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn flaky_lock() -> std::sync::MutexGuard<'static, ()> {
    FLAKY
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[derive(Clone, Default, Serialize, Deserialize)]
struct Flaky {
    xs: Vec<u64>,
    square: u64,
    total: u64,
}

#[flow]
impl Flaky {
    #[step(foreach = xs, next = sq)]
    fn start(&mut self) {
        self.xs = vec![1, 2, 3, 4];
    }

    #[step(next = gather)]
    fn sq(&mut self, x: u64) -> Result<(), String> {
        if x == 3 && FLAKY_FAILS.load(Ordering::SeqCst) {
            return Err(format!("cannot square {x} today"));
        }
        self.square = x * x;
        Ok(())
    }

    #[step(join, next = end)]
    fn gather(&mut self, inputs: Inputs<Self>) {
        self.total = inputs.iter().map(|i| i.square).sum();
    }

    #[step]
    fn end(&mut self) {}
}

/// Panics in `start`.
#[derive(Clone, Default, Serialize, Deserialize)]
struct Panicky {
    n: u32,
}

#[flow]
impl Panicky {
    #[step(next = end)]
    fn start(&mut self) {
        let v: Vec<u32> = Vec::new();
        self.n = v[7];
    }

    #[step]
    fn end(&mut self) {}
}

/// The parameters of [`Counted`]: `run --count N --label TEXT`.
#[derive(Clone, Default, Serialize, Deserialize, clap::Args)]
struct Settings {
    /// How many numbers to square.
    #[arg(long, default_value_t = 3)]
    count: u64,
    /// A label for the run.
    #[arg(long, default_value = "plain")]
    label: String,
}

#[derive(Clone, Default, Serialize, Deserialize)]
struct Counted {
    settings: Settings,
    total: u64,
}

#[flow(params = settings)]
impl Counted {
    #[step(next = end)]
    fn start(&mut self) {
        self.total = (1..=self.settings.count).map(|x| x * x).sum();
    }

    #[step]
    fn end(&mut self) {}
}

/// Parameters named like `run`'s own Slurm options: `--slurm` by its field's name, and
/// `--slurm-log-dir` by an explicit long name on a field called otherwise.
#[derive(Clone, Default, Serialize, Deserialize, clap::Args)]
struct ClashingSettings {
    /// Meant as "use the cluster's Slurm", shadowing `run --slurm`.
    #[arg(long)]
    slurm: bool,
    /// Where to keep logs, spelt like `run --slurm-log-dir`.
    #[arg(long = "slurm-log-dir")]
    logs: Option<String>,
    /// A parameter that clashes with nothing.
    #[arg(long, default_value_t = 1)]
    nodes: u32,
}

#[derive(Clone, Default, Serialize, Deserialize)]
struct Clashing {
    settings: ClashingSettings,
}

#[flow(params = settings)]
impl Clashing {
    #[step(next = end)]
    fn start(&mut self) {}

    #[step]
    fn end(&mut self) {}
}

/// Sizes of [`Big`]'s fields: large enough that holding one whole shows in the peak heap.
const BIG: usize = 256 << 20;
const MEDIUM: usize = 12 << 20;

/// A 256 MiB field, a 12 MiB one, and a small one after them.
#[derive(Clone, Default, Serialize, Deserialize)]
struct Big {
    #[serde(with = "serde_bytes")]
    data: Vec<u8>,
    #[serde(with = "serde_bytes")]
    medium: Vec<u8>,
    after: String,
}

#[flow]
impl Big {
    #[step(next = end)]
    fn start(&mut self) {
        self.data = vec![0xab; BIG];
        self.data[..4].copy_from_slice(&[1, 2, 3, 4]);
        self.medium = vec![7; MEDIUM];
        self.after = "after the big fields".into();
    }

    #[step]
    fn end(&mut self) {}
}

/// Text that would act on a terminal: an OSC 52 clipboard write ended by BEL, a CSI screen
/// clear, a C1 CSI (U+009B) in UTF-8, a backspace and a carriage return.
const HOSTILE: &str = "a\x1b]52;c;aGVsbG8=\x07b\x1b[2Jc\u{9b}31md\x08e\rf";

/// Stores [`HOSTILE`] as an artifact, and as the caught failure of `shout`.
#[derive(Clone, Default, Serialize, Deserialize)]
struct Hostile {
    text: String,
    caught: Option<String>,
}

#[flow]
impl Hostile {
    #[step(next = shout)]
    fn start(&mut self) {
        self.text = HOSTILE.to_owned();
    }

    #[step(catch = caught, next = end)]
    fn shout(&mut self) -> Result<(), String> {
        Err(HOSTILE.to_owned())
    }

    #[step]
    fn end(&mut self) {}
}

/// What one command did.
struct Output {
    code: u8,
    out: String,
    err: String,
}

impl Output {
    fn json(&self) -> Value {
        serde_json::from_str(&self.out)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}\n{}", self.out, self.err))
    }
}

impl std::fmt::Debug for Output {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit {}\n--- stdout\n{}--- stderr\n{}",
            self.code, self.out, self.err
        )
    }
}

fn cli<F: Flow>(datastore: &Path, args: &[&str]) -> Output {
    let mut argv = vec![
        "flow".to_owned(),
        "--datastore".to_owned(),
        datastore.display().to_string(),
    ];
    argv.extend(args.iter().map(|a| (*a).to_owned()));
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let code = run_cli_with::<F, _, _>(argv, &mut out, &mut err);
    Output {
        code,
        out: String::from_utf8_lossy(&out).into_owned(),
        err: String::from_utf8_lossy(&err).into_owned(),
    }
}

/// Runs `F` and returns the run id printed.
fn run_ok<F: Flow>(datastore: &Path, args: &[&str]) -> String {
    let mut all = vec!["run"];
    all.extend_from_slice(args);
    let o = cli::<F>(datastore, &all);
    assert_eq!(o.code, EXIT_OK, "{o:?}");
    run_id_in(&o.out)
}

fn run_id_in(text: &str) -> String {
    text.split_whitespace()
        .skip_while(|w| *w != "Run")
        .nth(1)
        .unwrap_or_else(|| panic!("no run id in {text}"))
        .to_owned()
}

fn tempdir() -> tempfile::TempDir {
    tempfile::tempdir().expect("temp dir")
}

#[test]
fn run_succeeds_and_says_where_the_results_are() {
    let dir = tempdir();
    let o = cli::<Squares>(dir.path(), &["run", "--max-workers", "3", "--tag", "first"]);
    assert_eq!(o.code, EXIT_OK, "{o:?}");
    let run = run_id_in(&o.out);
    assert!(o.out.contains("succeeded (13 tasks run)"), "{o:?}");
    assert!(o.out.contains(&dir.path().display().to_string()), "{o:?}");
    assert!(o.out.contains(&format!("dump {run}/end")), "{o:?}");

    // RUN/end: the single task's artifacts.
    let o = cli::<Squares>(dir.path(), &["dump", &format!("{run}/end")]);
    assert_eq!(o.code, EXIT_OK, "{o:?}");
    for expected in [
        "ARTIFACT",
        "total",
        "u64",
        "xs",
        "Vec<u64>",
        "label",
        "String",
        "succeeded",
        "HASH",
    ] {
        assert!(o.out.contains(expected), "{expected} missing: {o:?}");
    }

    // One artifact, human and JSON.
    let o = cli::<Squares>(
        dir.path(),
        &["dump", &format!("{run}/end"), "--artifact", "total"],
    );
    assert_eq!(o.code, EXIT_OK, "{o:?}");
    assert!(
        o.out.contains("total: u64") && o.out.contains("385"),
        "{o:?}"
    );
    let o = cli::<Squares>(
        dir.path(),
        &[
            "dump",
            &format!("{run}/end/0"),
            "--artifact",
            "xs",
            "--json",
        ],
    );
    assert_eq!(
        o.json(),
        json!([1, 4, 9, 16, 25, 36, 49, 64, 81, 100]),
        "{o:?}"
    );

    // The whole state as one object; `latest` names the run.
    let o = cli::<Squares>(dir.path(), &["dump", "latest/end", "--json"]);
    assert_eq!(
        o.json(),
        json!({
            "xs": [1, 4, 9, 16, 25, 36, 49, 64, 81, 100],
            "square": 0,
            "total": 385,
            "label": "total 385",
            "raw": [1, 2, 255],
        })
    );

    // A foreach body task's own state.
    let o = cli::<Squares>(
        dir.path(),
        &[
            "dump",
            &format!("{run}/sq/6"),
            "--artifact",
            "square",
            "--json",
        ],
    );
    assert_eq!(o.json(), json!(49), "{o:?}");
}

#[test]
fn dump_describes_runs_and_steps() {
    let dir = tempdir();
    let run = run_ok::<Squares>(dir.path(), &["--tag", "nightly"]);

    let o = cli::<Squares>(dir.path(), &["dump", &run]);
    assert_eq!(o.code, EXIT_OK, "{o:?}");
    assert!(
        o.out.contains(&format!("Run {run} of flow Squares")),
        "{o:?}"
    );
    assert!(
        o.out.contains("succeeded") && o.out.contains("nightly"),
        "{o:?}"
    );
    let sq_line = o
        .out
        .lines()
        .find(|l| l.starts_with("sq "))
        .unwrap_or_default();
    assert!(
        sq_line.contains("10") && sq_line.contains("10 succeeded"),
        "{o:?}"
    );

    let o = cli::<Squares>(dir.path(), &["dump", &run, "--json"]);
    let v = o.json();
    assert_eq!(v["run_id"], json!(run));
    assert_eq!(v["status"], json!("succeeded"));
    assert_eq!(v["tags"], json!(["nightly"]));
    let sq = v["steps"]
        .as_array()
        .and_then(|s| s.iter().find(|s| s["name"] == "sq"))
        .cloned()
        .unwrap_or_default();
    assert_eq!(sq["tasks"], json!(10));
    assert_eq!(sq["status"], json!({"succeeded": 10}));

    // A foreach step lists its tasks with their items.
    let o = cli::<Squares>(dir.path(), &["dump", &format!("{run}/sq")]);
    assert_eq!(o.code, EXIT_OK, "{o:?}");
    assert!(
        o.out.contains("10 tasks") && o.out.contains("start 9/10"),
        "{o:?}"
    );
    let o = cli::<Squares>(dir.path(), &["dump", &format!("{run}/sq"), "--json"]);
    let tasks = o.json()["tasks"].as_array().cloned().unwrap_or_default();
    assert_eq!(tasks.len(), 10);
    assert_eq!(
        tasks[2]["foreach"],
        json!([{"split": "start", "index": 2, "count": 10}])
    );
    assert_eq!(tasks[2]["attempts"], json!(1));

    // The split records how many items it fanned out over.
    let o = cli::<Squares>(dir.path(), &["dump", &format!("{run}/start")]);
    assert!(
        o.out.contains("splits into 10 tasks, one per item of xs"),
        "{o:?}"
    );
    let o = cli::<Squares>(dir.path(), &["dump", &format!("{run}/sq/4")]);
    assert!(o.out.contains("foreach item: start 4/10"), "{o:?}");

    // What a task logged with `tracing`, per attempt.
    let o = cli::<Squares>(dir.path(), &["logs", &format!("{run}/sq/4")]);
    assert_eq!(o.code, EXIT_OK, "{o:?}");
    assert!(
        o.out.contains("── attempt 0 ──") && o.out.contains("squaring x=5"),
        "{o:?}"
    );
    let o = cli::<Squares>(
        dir.path(),
        &["logs", &format!("{run}/sq/4"), "--attempt", "0"],
    );
    assert!(o.out.contains("squaring x=5"), "{o:?}");
    let o = cli::<Squares>(dir.path(), &["logs", &format!("{run}/end")]);
    assert!(o.out.contains("(nothing logged)"), "{o:?}");
    let o = cli::<Squares>(dir.path(), &["logs", &format!("{run}/sq")]);
    assert_eq!(o.code, EXIT_USAGE, "{o:?}");

    // Which task of a foreach step must be said.
    let o = cli::<Squares>(
        dir.path(),
        &["dump", &format!("{run}/sq"), "--artifact", "square"],
    );
    assert_eq!(o.code, EXIT_USAGE, "{o:?}");
    assert!(o.err.contains("has 10 tasks"), "{o:?}");
}

#[test]
fn bad_input_is_exit_2_and_writes_nothing() {
    let dir = tempdir();
    let store = dir.path().join("store");

    let o = cli::<Squares>(&store, &["run", "--no-such-parameter", "3"]);
    assert_eq!(o.code, EXIT_USAGE, "{o:?}");
    assert!(o.err.contains("--no-such-parameter"), "{o:?}");
    let o = cli::<Squares>(&store, &["run", "--max-workers", "zero"]);
    assert_eq!(o.code, EXIT_USAGE, "{o:?}");
    let o = cli::<Squares>(&store, &["run", "--max-workers", "0"]);
    assert_eq!(o.code, EXIT_USAGE, "{o:?}");
    // More workers than a process can have threads: refused, not a panic partway through.
    let o = cli::<Squares>(&store, &["run", "--max-workers", "4000000000"]);
    assert_eq!(o.code, EXIT_USAGE, "{o:?}");
    assert!(o.err.contains("4096"), "{o:?}");
    let o = cli::<Squares>(&store, &["run", "--tag", "has space"]);
    assert_eq!(o.code, EXIT_USAGE, "{o:?}");
    let o = cli::<Squares>(&store, &["frobnicate"]);
    assert_eq!(o.code, EXIT_USAGE, "{o:?}");
    // Executors are exclusive, and Slurm's options need Slurm.
    let o = cli::<Squares>(&store, &["run", "--process", "--slurm"]);
    assert_eq!(o.code, EXIT_USAGE, "{o:?}");
    assert!(o.err.contains("--slurm"), "{o:?}");
    let o = cli::<Squares>(&store, &["run", "--sbatch-arg=--partition=gpu"]);
    assert_eq!(o.code, EXIT_USAGE, "{o:?}");
    assert!(o.err.contains("--slurm"), "{o:?}");
    let o = cli::<Squares>(&store, &["run", "--slurm-log-dir", "logs"]);
    assert_eq!(o.code, EXIT_USAGE, "{o:?}");
    assert!(!store.exists(), "bad input created the datastore");

    // Reading commands do not create a datastore either.
    let o = cli::<Squares>(&store, &["dump", "latest"]);
    assert_eq!(o.code, EXIT_USAGE, "{o:?}");
    assert!(o.err.contains("no datastore"), "{o:?}");
    let o = cli::<Squares>(&store, &["runs"]);
    assert_eq!(o.code, EXIT_OK, "{o:?}");
    assert!(o.out.contains("No runs"), "{o:?}");
    assert!(!store.exists(), "a reading command created the datastore");

    let run = run_ok::<Squares>(&store, &[]);
    let unknown = "20260101T000000000Z-00000000";
    for args in [
        vec!["dump", unknown],
        vec!["dump", "20260101T000000000Z-00000000/end"],
        vec!["logs", "20260101T000000000Z-00000000/end"],
        vec!["tag", unknown, "add", "x"],
        vec!["resume", "--origin-run-id", unknown],
    ] {
        let o = cli::<Squares>(&store, &args);
        assert_eq!(o.code, EXIT_USAGE, "{args:?}: {o:?}");
        assert!(
            o.err.contains(unknown) && o.err.contains("no run"),
            "{args:?}: {o:?}"
        );
    }

    let end = format!("{run}/end");
    let not_found = [
        (
            vec!["dump".to_owned(), format!("{run}/nope")],
            "no step `nope`",
        ),
        (
            vec!["dump".to_owned(), format!("{run}/end/7")],
            "no task `7`",
        ),
        (
            vec![
                "dump".to_owned(),
                end.clone(),
                "--artifact".to_owned(),
                "nope".to_owned(),
            ],
            "no artifact `nope`",
        ),
        (
            vec![
                "logs".to_owned(),
                end.clone(),
                "--attempt".to_owned(),
                "5".to_owned(),
            ],
            "no attempt 5",
        ),
        (
            vec!["resume".to_owned(), "nope".to_owned()],
            "no step `nope`",
        ),
    ];
    for (args, message) in not_found {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let o = cli::<Squares>(&store, &args);
        assert_eq!(o.code, EXIT_USAGE, "{args:?}: {o:?}");
        assert!(o.err.contains(message), "{args:?}: {o:?}");
    }

    // Paths that try to leave the datastore.
    for path in [
        "../x",
        "../../etc/passwd",
        "/etc/passwd",
        &format!("{run}/../x"),
        &format!("{run}/end/../../x"),
    ] {
        let o = cli::<Squares>(&store, &["dump", path]);
        assert_eq!(o.code, EXIT_USAGE, "{path}: {o:?}");
        assert!(o.err.contains("not RUN[/STEP[/TASK]]"), "{path}: {o:?}");
        let o = cli::<Squares>(&store, &["logs", path]);
        assert_eq!(o.code, EXIT_USAGE, "{path}: {o:?}");
    }
    let o = cli::<Squares>(&store, &["dump", &end, "--artifact", "../x"]);
    assert_eq!(o.code, EXIT_USAGE, "{o:?}");
    let o = cli::<Squares>(
        &store,
        &["step", "../x", "--run-id", &run, "--task-id", "0"],
    );
    assert_eq!(o.code, EXIT_USAGE, "{o:?}");

    // Nothing above added a run.
    let o = cli::<Squares>(&store, &["runs", "--json"]);
    assert_eq!(o.json().as_array().map(Vec::len), Some(1), "{o:?}");
}

#[test]
fn runs_are_listed_newest_first_and_filtered_by_tag() {
    let dir = tempdir();
    let first = run_ok::<Squares>(dir.path(), &["--tag", "a"]);
    let second = run_ok::<Squares>(dir.path(), &["--tag", "b"]);
    let third = run_ok::<Squares>(dir.path(), &["--tag", "a", "--tag", "c"]);

    let o = cli::<Squares>(dir.path(), &["runs"]);
    assert_eq!(o.code, EXIT_OK, "{o:?}");
    let ids: Vec<&str> = o
        .out
        .lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert_eq!(
        ids,
        [third.as_str(), second.as_str(), first.as_str()],
        "{o:?}"
    );
    assert!(
        o.out
            .lines()
            .next()
            .is_some_and(|h| h.starts_with("RUN ID") && h.contains("DURATION")),
        "{o:?}"
    );

    let o = cli::<Squares>(dir.path(), &["runs", "--tag", "a", "--json"]);
    let listed: Vec<Value> = o.json().as_array().cloned().unwrap_or_default();
    let ids: Vec<&str> = listed.iter().filter_map(|r| r["run_id"].as_str()).collect();
    assert_eq!(ids, [third.as_str(), first.as_str()]);
    assert_eq!(listed[0]["tags"], json!(["a", "c"]));
    assert_eq!(listed[0]["status"], json!("succeeded"));

    // Another flow's runs are not this flow's.
    let o = cli::<Panicky>(dir.path(), &["runs"]);
    assert!(o.out.contains("No runs of flow Panicky"), "{o:?}");
}

#[test]
fn tags_are_added_and_removed() {
    let dir = tempdir();
    let run = run_ok::<Squares>(dir.path(), &["--tag", "keep"]);
    let o = cli::<Squares>(dir.path(), &["tag", &run, "add", "best", "v2", "best"]);
    assert_eq!(o.code, EXIT_OK, "{o:?}");
    assert!(o.out.contains("keep, best, v2"), "{o:?}");
    let o = cli::<Squares>(dir.path(), &["runs", "--tag", "v2", "--json"]);
    assert_eq!(o.json()[0]["tags"], json!(["keep", "best", "v2"]));

    let o = cli::<Squares>(dir.path(), &["tag", "latest", "remove", "keep", "v2"]);
    assert_eq!(o.code, EXIT_OK, "{o:?}");
    let o = cli::<Squares>(dir.path(), &["dump", &run, "--json"]);
    assert_eq!(o.json()["tags"], json!(["best"]));

    for bad in ["", "two words", "tab\there", "bell\u{7}"] {
        let o = cli::<Squares>(dir.path(), &["tag", &run, "add", bad]);
        assert_eq!(o.code, EXIT_USAGE, "{bad:?}: {o:?}");
    }
    let o = cli::<Squares>(dir.path(), &["tag", &run, "rename", "x"]);
    assert_eq!(o.code, EXIT_USAGE, "{o:?}");
    let o = cli::<Squares>(dir.path(), &["dump", &run, "--json"]);
    assert_eq!(o.json()["tags"], json!(["best"]));
}

#[test]
fn show_and_graph_render_the_flow() {
    let dir = tempdir();
    let o = cli::<Squares>(dir.path(), &["show"]);
    assert_eq!(o.code, EXIT_OK, "{o:?}");
    assert_eq!(o.out, Squares::GRAPH.to_text());
    let o = cli::<Squares>(dir.path(), &["graph"]);
    assert_eq!(o.out, Squares::GRAPH.to_dot());
    assert!(o.out.starts_with("digraph"), "{o:?}");
    let o = cli::<Squares>(dir.path(), &["graph", "--format", "mermaid"]);
    assert_eq!(o.out, Squares::GRAPH.to_mermaid());
    assert!(o.out.starts_with("flowchart"), "{o:?}");
    let o = cli::<Squares>(dir.path(), &["graph", "--format", "svg"]);
    assert_eq!(o.code, EXIT_USAGE, "{o:?}");
    assert!(!dir.path().join(".blooming").exists());

    let o = cli::<Squares>(dir.path(), &["--help"]);
    assert_eq!(o.code, EXIT_OK, "{o:?}");
    assert!(
        o.out.contains("Squares some numbers and adds them up."),
        "{o:?}"
    );
    for command in [
        "run", "resume", "show", "graph", "runs", "dump", "logs", "tag", "step",
    ] {
        assert!(o.out.contains(command), "{command}: {o:?}");
    }
}

#[test]
fn a_failing_step_fails_the_run_and_resume_finishes_it() {
    let dir = tempdir();
    let _flaky = flaky_lock();
    FLAKY_FAILS.store(true, Ordering::SeqCst);
    let o = cli::<Flaky>(dir.path(), &["run"]);
    assert_eq!(o.code, EXIT_FAILURE, "{o:?}");
    let failed = run_id_in(&o.err);
    assert!(o.err.contains("Task sq/2 failed"), "{o:?}");
    assert!(o.err.contains("cannot square 3 today"), "{o:?}");
    assert!(
        o.err.contains(&format!("resume --origin-run-id {failed}")),
        "{o:?}"
    );
    assert!(o.err.contains(&format!("logs {failed}/sq/2")), "{o:?}");

    let o = cli::<Flaky>(dir.path(), &["dump", &failed]);
    assert!(
        o.out.contains("failed") && o.out.contains("cannot square 3 today"),
        "{o:?}"
    );
    let o = cli::<Flaky>(dir.path(), &["dump", &format!("{failed}/sq/2")]);
    assert_eq!(o.code, EXIT_OK, "{o:?}");
    assert!(
        o.out.contains("failed") && o.out.contains("no artifacts"),
        "{o:?}"
    );
    let o = cli::<Flaky>(
        dir.path(),
        &["dump", &format!("{failed}/sq/2"), "--artifact", "square"],
    );
    assert_eq!(o.code, EXIT_USAGE, "{o:?}");
    let o = cli::<Flaky>(dir.path(), &["logs", &format!("{failed}/sq/2")]);
    assert_eq!(o.code, EXIT_OK, "{o:?}");
    assert!(
        o.out.contains("attempt 0, failed: cannot square 3 today"),
        "{o:?}"
    );

    // `resume` without an id resumes the latest run.
    FLAKY_FAILS.store(false, Ordering::SeqCst);
    let o = cli::<Flaky>(dir.path(), &["resume"]);
    assert_eq!(o.code, EXIT_OK, "{o:?}");
    let resumed = run_id_in(&o.out);
    assert_ne!(resumed, failed);
    assert!(
        o.out.contains(&format!("reused from run {failed}")),
        "{o:?}"
    );
    let o = cli::<Flaky>(
        dir.path(),
        &[
            "dump",
            &format!("{resumed}/end"),
            "--artifact",
            "total",
            "--json",
        ],
    );
    assert_eq!(o.json(), json!(30));
    let o = cli::<Flaky>(dir.path(), &["dump", &format!("{resumed}/start")]);
    assert!(
        o.out.contains(&format!("reused from run {failed}")),
        "{o:?}"
    );
    let o = cli::<Flaky>(dir.path(), &["runs", "--json"]);
    assert_eq!(o.json()[0]["origin_run_id"], json!(failed));
    assert_eq!(o.json()[1]["status"], json!("failed"));

    // Resuming from a step reruns it and what follows.
    let o = cli::<Flaky>(
        dir.path(),
        &["resume", "--origin-run-id", &resumed, "gather"],
    );
    assert_eq!(o.code, EXIT_OK, "{o:?}");
    assert!(o.out.contains("(2 tasks run, 5 reused"), "{o:?}");
}

#[test]
fn a_panic_is_reported_with_its_location() {
    let dir = tempdir();
    let o = cli::<Panicky>(dir.path(), &["run"]);
    assert_eq!(o.code, EXIT_FAILURE, "{o:?}");
    assert!(o.err.contains("Task start/0 failed"), "{o:?}");
    assert!(o.err.contains("  panicked: index out of bounds"), "{o:?}");
    assert!(o.err.contains("at tests/cli.rs:"), "{o:?}");
}

#[test]
fn a_damaged_artifact_is_named_and_exit_1() {
    let dir = tempdir();
    let run = run_ok::<Squares>(dir.path(), &[]);
    let store = RunStore::open_local(dir.path()).expect("store");
    let key = RunStore::task_key("Squares", &run, "end", "0").expect("key");
    let index = store.read_index(&key).expect("index").expect("complete");
    let entry = index.artifact("label").expect("label");
    let path = LocalStorage::open(dir.path())
        .expect("storage")
        .path_of(&entry.hash.key());
    let mut bytes = std::fs::read(&path).expect("blob");
    let last = bytes.len() - 1;
    bytes[last] ^= 0x20;
    std::fs::write(&path, &bytes).expect("damage");

    for args in [
        vec!["--artifact", "label"],
        vec!["--artifact", "label", "--json"],
        vec!["--json"],
    ] {
        let mut all = vec!["dump".to_owned(), format!("{run}/end")];
        all.extend(args.iter().map(|a| (*a).to_owned()));
        let all: Vec<&str> = all.iter().map(String::as_str).collect();
        let o = cli::<Squares>(dir.path(), &all);
        assert_eq!(o.code, EXIT_FAILURE, "{o:?}");
        assert!(
            o.err
                .contains(&format!("run {run}, step end, task 0, artifact `label`")),
            "{o:?}"
        );
        assert!(o.err.contains("corrupted"), "{o:?}");
    }
    // The other artifacts still read.
    let o = cli::<Squares>(
        dir.path(),
        &[
            "dump",
            &format!("{run}/end"),
            "--artifact",
            "total",
            "--json",
        ],
    );
    assert_eq!(o.json(), json!(385));

    std::fs::write(&path, &bytes[..3]).expect("truncate");
    let o = cli::<Squares>(
        dir.path(),
        &["dump", &format!("{run}/end"), "--artifact", "label"],
    );
    assert_eq!(o.code, EXIT_FAILURE, "{o:?}");
    assert!(
        o.err.contains("artifact `label`") && o.err.contains("truncated"),
        "{o:?}"
    );
}

#[test]
fn the_datastore_comes_from_the_environment_or_the_working_directory() {
    // The flag is used everywhere else; here the suggested commands must not repeat a flag the
    // user did not give. (The environment and working directory are process-wide, so only the
    // flag's effect on the suggestion is checked in-process.)
    let dir = tempdir();
    let o = cli::<Squares>(dir.path(), &["run"]);
    assert!(
        o.out
            .contains(&format!("flow --datastore {} dump", dir.path().display())),
        "{o:?}"
    );
}

#[test]
fn parameters_are_flags_of_run_and_bad_ones_write_nothing() {
    let dir = tempdir();
    let store = dir.path().join("store");
    for (args, message) in [
        (
            &["run", "--count", "many"][..],
            "invalid value 'many' for '--count <COUNT>'",
        ),
        (&["run", "--cout", "3"][..], "unexpected argument '--cout'"),
        (
            &["run", "--count"][..],
            "a value is required for '--count <COUNT>'",
        ),
        (
            &["run", "--count", "1", "--count", "2"][..],
            "cannot be used multiple times",
        ),
    ] {
        let o = cli::<Counted>(&store, args);
        assert_eq!(o.code, EXIT_USAGE, "{args:?}: {o:?}");
        assert!(o.err.contains(message), "{args:?}: {o:?}");
    }
    assert!(!store.exists(), "bad parameters created the datastore");

    let o = cli::<Counted>(&store, &["run", "--help"]);
    assert_eq!(o.code, EXIT_OK, "{o:?}");
    assert!(
        o.out.contains("--count <COUNT>") && o.out.contains("How many numbers to square"),
        "{o:?}"
    );

    let run = run_ok::<Counted>(&store, &["--count", "4", "--label", "big"]);
    let o = cli::<Counted>(&store, &["dump", &format!("{run}/end"), "--json"]);
    assert_eq!(
        o.json(),
        json!({"settings": {"count": 4, "label": "big"}, "total": 30})
    );
    let o = cli::<Counted>(&store, &["runs", "--json"]);
    assert_eq!(o.json()[0]["params"], json!({"count": 4, "label": "big"}));

    // Defaults; a resume that reruns `start` keeps the origin's parameters.
    run_ok::<Counted>(&store, &[]);
    let o = cli::<Counted>(
        &store,
        &["dump", "latest/end", "--artifact", "total", "--json"],
    );
    assert_eq!(o.json(), json!(14));
    let o = cli::<Counted>(&store, &["resume", "--origin-run-id", &run, "start"]);
    assert_eq!(o.code, EXIT_OK, "{o:?}");
    let o = cli::<Counted>(&store, &["dump", "latest/end", "--json"]);
    assert_eq!(
        o.json(),
        json!({"settings": {"count": 4, "label": "big"}, "total": 30})
    );
}

#[test]
fn parameters_named_like_a_built_in_option_of_run_are_exit_2_not_a_panic() {
    let dir = tempdir();
    let store = dir.path().join("store");
    for args in [&["run", "--slurm"][..], &["run"][..], &["show"][..]] {
        let o = cli::<Clashing>(&store, args);
        assert_eq!(o.code, EXIT_USAGE, "{args:?}: {o:?}");
        assert_eq!(
            o.err,
            "error: flow parameter `--slurm` clashes with the built-in option `--slurm` of `run`; rename it\n\
             error: flow parameter `--slurm-log-dir` clashes with the built-in option `--slurm-log-dir` of `run`; rename it\n",
            "{args:?}: {o:?}"
        );
        assert!(o.out.is_empty(), "{args:?}: {o:?}");
    }
    assert!(
        !store.exists(),
        "a flow that cannot parse its options created the datastore"
    );
}

// ------------------------------------------------------------------------------------------------
// Large artifacts and logs: read as streams, never held whole.

/// Counts the heap bytes each thread holds, so that a test can bound what one command needed
/// on its own thread whatever the other tests do meanwhile.
mod heap {
    use std::alloc::{GlobalAlloc, Layout, System};
    use std::cell::Cell;

    pub struct Counting;

    thread_local! {
        static HELD: Cell<isize> = const { Cell::new(0) };
        static PEAK: Cell<isize> = const { Cell::new(0) };
    }

    fn track(delta: isize) {
        let _ = HELD.try_with(|held| {
            let now = held.get() + delta;
            held.set(now);
            let _ = PEAK.try_with(|peak| peak.set(peak.get().max(now)));
        });
    }

    fn size(bytes: usize) -> isize {
        isize::try_from(bytes).unwrap_or(isize::MAX)
    }

    // SAFETY: every call is forwarded to the system allocator unchanged; only counters move.
    unsafe impl GlobalAlloc for Counting {
        unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
            // SAFETY: forwarded with the caller's layout.
            let p = unsafe { System.alloc(layout) };
            if !p.is_null() {
                track(size(layout.size()));
            }
            p
        }

        unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
            // SAFETY: forwarded with the caller's layout.
            let p = unsafe { System.alloc_zeroed(layout) };
            if !p.is_null() {
                track(size(layout.size()));
            }
            p
        }

        unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
            // SAFETY: forwarded with the caller's pointer and layout.
            unsafe { System.dealloc(ptr, layout) };
            track(-size(layout.size()));
        }

        unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
            // SAFETY: forwarded with the caller's pointer, layout and size.
            let p = unsafe { System.realloc(ptr, layout, new_size) };
            if !p.is_null() {
                track(size(new_size) - size(layout.size()));
            }
            p
        }
    }

    /// Runs `f` on this thread; returns its result and the most heap it held above what the
    /// thread held before.
    pub fn peak_during<R>(f: impl FnOnce() -> R) -> (R, usize) {
        let base = HELD.with(Cell::get);
        PEAK.with(|peak| peak.set(base));
        let result = f();
        let peak = PEAK.with(Cell::get);
        (result, usize::try_from(peak - base).unwrap_or(0))
    }
}

#[global_allocator]
static HEAP: heap::Counting = heap::Counting;

/// Keeps the first bytes written and counts the rest: an output too large to hold.
#[derive(Default)]
struct Tally {
    head: Vec<u8>,
    len: u64,
}

impl Write for Tally {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let room = 4096usize.saturating_sub(self.head.len());
        self.head.extend_from_slice(&buf[..room.min(buf.len())]);
        self.len += buf.len() as u64;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Flow `F`'s command line with its stdout counted, not kept; returns the exit code, the
/// counted stdout, stderr, and the peak heap the command held.
fn cli_tallied<F: Flow>(datastore: &Path, args: &[&str]) -> (u8, Tally, String, usize) {
    let mut argv = vec![
        "flow".to_owned(),
        "--datastore".to_owned(),
        datastore.display().to_string(),
    ];
    argv.extend(args.iter().map(|a| (*a).to_owned()));
    let mut out = Tally::default();
    let mut err = Vec::new();
    let (code, peak) = heap::peak_during(|| run_cli_with::<F, _, _>(argv, &mut out, &mut err));
    (code, out, String::from_utf8_lossy(&err).into_owned(), peak)
}

const MIB: usize = 1 << 20;

#[test]
fn dump_of_a_256_mib_artifact_is_a_bounded_preview_in_little_memory() {
    let dir = tempdir();
    let run = run_ok::<Big>(dir.path(), &[]);
    let end = format!("{run}/end");

    let (o, peak) =
        heap::peak_during(|| cli::<Big>(dir.path(), &["dump", &end, "--artifact", "data"]));
    assert_eq!(o.code, EXIT_OK, "{o:?}");
    assert!(o.out.contains("268435456 bytes: 01020304abababab"), "{o:?}");
    assert!(o.out.len() < 4096, "{} bytes of preview", o.out.len());
    assert!(peak < 16 * MIB, "dump held {} MiB at its peak", peak / MIB);

    // The stored MessagePack whole, only when asked, streamed: a bin32 header and the bytes.
    let (code, out, err, peak) =
        cli_tallied::<Big>(dir.path(), &["dump", &end, "--artifact", "data", "--raw"]);
    assert_eq!(code, EXIT_OK, "{err}");
    assert_eq!(out.len, 5 + BIG as u64);
    assert_eq!(out.head[..9], [0xc6, 0x10, 0, 0, 0, 1, 2, 3, 4]);
    assert!(
        peak < 16 * MIB,
        "dump --raw held {} MiB at its peak",
        peak / MIB
    );

    // The whole value as JSON is streamed too: `[`, one `\n  7` per byte with commas between,
    // `\n]` and a newline.
    let (code, out, err, peak) = cli_tallied::<Big>(
        dir.path(),
        &["dump", &end, "--artifact", "medium", "--json"],
    );
    assert_eq!(code, EXIT_OK, "{err}");
    assert_eq!(out.len, 5 * MEDIUM as u64 + 3);
    assert!(
        out.head.starts_with(b"[\n  7,\n  7,\n"),
        "{:?}",
        &out.head[..16]
    );
    assert!(
        peak < 16 * MIB,
        "dump --json held {} MiB at its peak",
        peak / MIB
    );
}

#[test]
fn logs_of_a_huge_task_log_are_streamed_in_little_memory() {
    let dir = tempdir();
    let run = run_ok::<Squares>(dir.path(), &[]);
    let log = dir.path().join(format!(
        "flows/Squares/runs/{run}/steps/end/0/attempt-0.log"
    ));
    let line = b"a line of a long log, padded to make it one hundred bytes long .............................\n";
    let size = 64 * MIB / line.len() * line.len();
    {
        let mut file = std::fs::File::create(&log).expect("log");
        for _ in 0..size / line.len() {
            file.write_all(line).expect("log line");
        }
    }
    let (code, out, err, peak) = cli_tallied::<Squares>(dir.path(), &["logs", &end_of(&run)]);
    assert_eq!(code, EXIT_OK, "{err}");
    assert!(
        out.len > size as u64 && out.len < size as u64 + 1024,
        "{} bytes for a log of {size}",
        out.len
    );
    assert!(peak < 16 * MIB, "logs held {} MiB at its peak", peak / MIB);
}

fn end_of(run: &str) -> String {
    format!("{run}/end")
}

// ------------------------------------------------------------------------------------------------
// Text from the datastore never drives the terminal.

/// The bytes of `text` that would act on a terminal: C0 controls but newline (and tab), DEL, and
/// C1 controls encoded in UTF-8.
fn terminal_controls(text: &str) -> String {
    text.chars()
        .filter(|c| c.is_control() && !matches!(c, '\n' | '\t'))
        .collect()
}

#[test]
fn dump_escapes_control_characters_of_artifacts_and_datastore_names() {
    let dir = tempdir();
    let run = run_ok::<Hostile>(dir.path(), &[]);
    let end = format!("{run}/end");

    let o = cli::<Hostile>(dir.path(), &["dump", &end, "--artifact", "text"]);
    assert_eq!(o.code, EXIT_OK, "{o:?}");
    assert_eq!(terminal_controls(&o.out), "", "{o:?}");
    assert!(o.out.contains(r"\u001b]52;c;aGVsbG8=\u0007"), "{o:?}");

    // JSON escapes them as JSON does, so the value reads back unchanged.
    let o = cli::<Hostile>(dir.path(), &["dump", &end, "--artifact", "text", "--json"]);
    assert_eq!(terminal_controls(&o.out), "", "{o:?}");
    assert_eq!(o.json(), json!(HOSTILE), "{o:?}");
    let o = cli::<Hostile>(dir.path(), &["dump", &end, "--json"]);
    assert_eq!(terminal_controls(&o.out), "", "{o:?}");
    let all = o.json();
    assert_eq!(all["text"], json!(HOSTILE), "{o:?}");
    assert!(
        all["caught"].as_str().is_some_and(|c| c.contains(HOSTILE)),
        "{o:?}"
    );

    // A task's failure, shown as text.
    let o = cli::<Hostile>(dir.path(), &["dump", &format!("{run}/shout")]);
    assert_eq!(o.code, EXIT_OK, "{o:?}");
    assert_eq!(terminal_controls(&o.out), "", "{o:?}");
    assert!(o.out.contains(r"\x1b[2J"), "{o:?}");

    // Names a hostile datastore holds, in output and in error messages.
    let record = dir
        .path()
        .join(format!("flows/Hostile/runs/{run}/run.json"));
    let text = std::fs::read_to_string(&record).expect("run record");
    let hostile_name = r#""name": "sh\u001b]52;c;aGVsbG8=\u0007out""#;
    assert!(text.contains(r#""name": "shout""#), "{text}");
    std::fs::write(&record, text.replace(r#""name": "shout""#, hostile_name)).expect("rewrite");
    for args in [
        vec!["dump".to_owned(), run.clone()],
        vec!["dump".to_owned(), format!("{run}/nope")],
        vec!["runs".to_owned()],
    ] {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let o = cli::<Hostile>(dir.path(), &args);
        assert_eq!(terminal_controls(&o.out), "", "{args:?}: {o:?}");
        assert_eq!(terminal_controls(&o.err), "", "{args:?}: {o:?}");
    }
    let o = cli::<Hostile>(dir.path(), &["dump", &format!("{run}/nope")]);
    assert!(o.err.contains(r"sh\x1b]52;c;aGVsbG8=\x07out"), "{o:?}");
}

#[test]
fn tags_with_control_characters_are_escaped_by_tag_and_runs() {
    let dir = tempdir();
    let run = run_ok::<Hostile>(dir.path(), &[]);
    // The CLI refuses such tags; a datastore written by another tool may hold them anyway.
    let record = dir
        .path()
        .join(format!("flows/Hostile/runs/{run}/run.json"));
    let mut value: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&record).expect("run record")).expect("json");
    value["tags"] = json!([HOSTILE]);
    std::fs::write(&record, value.to_string()).expect("rewrite");
    let o = cli::<Hostile>(dir.path(), &["tag", &run, "add", "plain"]);
    assert_eq!(o.code, EXIT_OK, "{o:?}");
    assert_eq!(terminal_controls(&o.out), "", "{o:?}");
    for args in [vec!["runs"], vec!["runs", "--json"]] {
        let o = cli::<Hostile>(dir.path(), &args);
        assert_eq!(o.code, EXIT_OK, "{args:?}: {o:?}");
        assert_eq!(terminal_controls(&o.out), "", "{args:?}: {o:?}");
    }
    let o = cli::<Hostile>(dir.path(), &["runs", "--json"]);
    assert_eq!(o.json()[0]["tags"], json!([HOSTILE, "plain"]), "{o:?}");
}

/// Set to a JSON array of arguments, makes [`as_a_flow_binary_in_a_child_process`] run them.
const FLOW_ARGS_ENV: &str = "BLOOMING_CLI_TEST_FLOW_ARGS";

/// Not a check of its own: this test binary as `Squares`' flow binary, for the checks that need
/// the command line in a process of its own (with a terminal as stdout). Runs the arguments in
/// [`FLOW_ARGS_ENV`] and exits; without that variable there is nothing to do.
#[test]
fn as_a_flow_binary_in_a_child_process() {
    let Some(args) = std::env::var_os(FLOW_ARGS_ENV) else {
        return;
    };
    let args: Vec<String> =
        serde_json::from_str(&args.to_string_lossy()).expect("the arguments are a JSON array");
    let code = blooming_flowers::cli::run_cli::<Squares, _, _>(args);
    std::process::exit(if code == std::process::ExitCode::SUCCESS {
        0
    } else {
        1
    });
}

/// Runs `Squares`' command line `args` on `datastore` with a pseudo-terminal (made by
/// util-linux `script`) as stdout; returns whether it succeeded and what the terminal showed.
fn on_a_terminal(datastore: &Path, args: &[&str]) -> (bool, String) {
    let mut argv = vec![
        "flow".to_owned(),
        "--datastore".to_owned(),
        datastore.display().to_string(),
    ];
    argv.extend(args.iter().map(|a| (*a).to_owned()));
    let exe = std::env::current_exe().expect("this test binary");
    let command = format!(
        "'{}' --exact as_a_flow_binary_in_a_child_process --nocapture --test-threads=1 --color never",
        exe.display()
    );
    let output = std::process::Command::new("script")
        .args(["-qec", &command, "/dev/null"])
        .env(FLOW_ARGS_ENV, serde_json::to_string(&argv).expect("JSON"))
        .stdin(std::process::Stdio::null())
        .output()
        .expect("`script` (util-linux) runs");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
    )
}

#[test]
fn dump_raw_refuses_to_write_binary_to_a_terminal() {
    let dir = tempdir();
    let run = run_ok::<Squares>(dir.path(), &[]);
    let (success, shown) = on_a_terminal(
        dir.path(),
        &["dump", &end_of(&run), "--artifact", "raw", "--raw"],
    );
    assert!(!success, "{shown}");
    assert!(shown.contains("redirect it to a file"), "{shown}");
    // Into a pipe, the stored MessagePack: an array of 1, 2 and 255.
    let (code, out, err, _) = cli_tallied::<Squares>(
        dir.path(),
        &["dump", &end_of(&run), "--artifact", "raw", "--raw"],
    );
    assert_eq!(code, EXIT_OK, "{err}");
    assert_eq!(out.head, [0x93, 1, 2, 0xcc, 255]);
}

#[test]
fn logs_escape_control_characters_on_a_terminal_and_keep_them_in_a_pipe() {
    let dir = tempdir();
    let run = run_ok::<Squares>(dir.path(), &[]);
    let log = dir.path().join(format!(
        "flows/Squares/runs/{run}/steps/end/0/attempt-0.log"
    ));
    std::fs::write(&log, format!("first line\n{HOSTILE}\nlast line\n")).expect("log");

    // Not a terminal: the log as stored.
    let o = cli::<Squares>(dir.path(), &["logs", &end_of(&run)]);
    assert_eq!(o.code, EXIT_OK, "{o:?}");
    assert!(o.out.contains(HOSTILE), "{o:?}");

    // A terminal (a pseudo-terminal from `script`): every control character but newline shown.
    let (success, shown) = on_a_terminal(dir.path(), &["logs", &end_of(&run)]);
    assert!(success, "{shown}");
    assert!(shown.contains("last line"), "{shown}");
    // The terminal turns each newline into CR LF: those are the only controls left.
    assert_eq!(
        terminal_controls(&shown.replace("\r\n", "\n")),
        "",
        "{shown:?}"
    );
    assert!(
        shown.contains(r"a\x1b]52;c;aGVsbG8=\x07b\x1b[2Jc\u{9b}31md\x08e\x0df"),
        "{shown:?}"
    );
}

#[test]
fn a_damaged_run_record_is_exit_1_and_the_other_runs_still_list() {
    let dir = tempdir();
    let good = run_ok::<Squares>(dir.path(), &[]);
    let bad = run_ok::<Squares>(dir.path(), &[]);
    let record = dir
        .path()
        .join(format!("flows/Squares/runs/{bad}/run.json"));
    std::fs::write(&record, b"{ not json").expect("damage");

    let o = cli::<Squares>(dir.path(), &["runs"]);
    assert_eq!(o.code, EXIT_FAILURE, "{o:?}");
    assert!(o.out.contains(&good), "{o:?}");
    assert!(
        o.err.contains(&bad) && o.err.contains("not readable"),
        "{o:?}"
    );
    let o = cli::<Squares>(dir.path(), &["dump", &bad]);
    assert_eq!(o.code, EXIT_FAILURE, "{o:?}");
    assert!(o.err.contains("run.json"), "{o:?}");
}

/// Rewrites the stored record of run `run` of `flow` with `change`, as an older version or
/// another binary would have written it.
fn rewrite_record(datastore: &Path, flow: &str, run: &str, change: impl FnOnce(&mut Value)) {
    let path = datastore
        .join("flows")
        .join(flow)
        .join("runs")
        .join(run)
        .join("run.json");
    let mut record: Value =
        serde_json::from_slice(&std::fs::read(&path).expect("read")).expect("JSON");
    change(&mut record);
    std::fs::write(&path, serde_json::to_vec(&record).expect("encode")).expect("write");
}

#[test]
fn runs_are_promoted_demoted_and_their_history_listed() {
    let dir = tempdir();
    let first = run_ok::<Squares>(dir.path(), &[]);
    let second = run_ok::<Squares>(dir.path(), &[]);
    let o = cli::<Squares>(dir.path(), &["promotions"]);
    assert_eq!(o.code, EXIT_OK, "{o:?}");
    assert!(o.out.contains("No promotions of flow Squares"), "{o:?}");

    let o = cli::<Squares>(dir.path(), &["promote", &first, "--as", "production"]);
    assert_eq!(o.code, EXIT_OK, "{o:?}");
    assert!(
        o.out.contains(&format!(
            "Promoted run {first} of flow Squares as production"
        )),
        "{o:?}"
    );
    let o = cli::<Squares>(dir.path(), &["promote", "latest", "--as", "production"]);
    assert_eq!(o.code, EXIT_OK, "{o:?}");
    assert!(o.out.contains(&second), "{o:?}");
    let o = cli::<Squares>(dir.path(), &["promote", &first, "--as", "staging"]);
    assert_eq!(o.code, EXIT_OK, "{o:?}");

    let o = cli::<Squares>(dir.path(), &["promotions", "--as", "production", "--json"]);
    assert_eq!(o.code, EXIT_OK, "{o:?}");
    let listed = o.json();
    let runs: Vec<&str> = listed
        .as_array()
        .expect("an array")
        .iter()
        .filter_map(|e| e["run_id"].as_str())
        .collect();
    assert_eq!(runs, [second.as_str(), first.as_str()], "newest first");
    assert_eq!(listed[0]["action"], json!("promote"));
    assert_eq!(listed[0]["label"], json!("production"));
    assert!(listed[0]["user"].as_str().is_some_and(|u| !u.is_empty()));

    let o = cli::<Squares>(dir.path(), &["demote", "--as", "production"]);
    assert_eq!(o.code, EXIT_OK, "{o:?}");
    assert!(
        o.out.contains("Demoted production of flow Squares"),
        "{o:?}"
    );
    let o = cli::<Squares>(dir.path(), &["demote", "production"]);
    assert_eq!(o.code, EXIT_USAGE, "{o:?}");
    assert!(
        o.err.contains("has no run promoted as `production`"),
        "{o:?}"
    );
    let o = cli::<Squares>(dir.path(), &["demote", "staging"]);
    assert_eq!(o.code, EXIT_OK, "{o:?}");

    let o = cli::<Squares>(dir.path(), &["promotions"]);
    assert_eq!(o.code, EXIT_OK, "{o:?}");
    let lines: Vec<&str> = o.out.lines().collect();
    assert_eq!(lines.len(), 6, "a header and five changes: {o:?}");
    assert!(
        lines[0].contains("WHEN") && lines[0].contains("ACTION"),
        "{o:?}"
    );
    assert!(
        lines[1].contains("staging") && lines[1].contains("demote"),
        "{o:?}"
    );
}

#[test]
fn promoting_what_cannot_be_is_exit_2_and_writes_nothing() {
    let dir = tempdir();
    let _flaky = flaky_lock();
    FLAKY_FAILS.store(true, Ordering::SeqCst);
    let o = cli::<Flaky>(dir.path(), &["run"]);
    assert_eq!(o.code, EXIT_FAILURE, "{o:?}");
    let failed = run_id_in(&o.err);
    let promotions = dir.path().join("flows/Flaky/promotions");
    for args in [
        vec!["promote", failed.as_str(), "--as", "production"],
        vec!["promote", "nope", "--as", "production"],
        vec!["promote", failed.as_str(), "--as", "pro/duction"],
        vec!["promote", failed.as_str(), "--as", ""],
        vec!["promote", failed.as_str()],
        vec!["demote", "--as", "production"],
        vec!["demote"],
        vec!["promotions", "--as", "../x"],
    ] {
        let o = cli::<Flaky>(dir.path(), &args);
        assert_eq!(o.code, EXIT_USAGE, "{args:?}: {o:?}");
        assert!(!promotions.exists(), "{args:?} wrote something");
    }
    let o = cli::<Flaky>(dir.path(), &["promote", &failed, "--as", "production"]);
    assert!(o.err.contains("only a run that succeeded"), "{o:?}");
    let o = cli::<Flaky>(dir.path(), &["promote", &failed, "--as", "pro/duction"]);
    assert!(o.err.contains("promotion label"), "{o:?}");
}

#[test]
fn dump_shows_the_provenance_of_a_run() {
    let dir = tempdir();
    let run = run_ok::<Squares>(dir.path(), &[]);
    let o = cli::<Squares>(dir.path(), &["dump", &run, "--json"]);
    assert_eq!(o.code, EXIT_OK, "{o:?}");
    let provenance = &o.json()["provenance"];
    let hash = provenance["binary_hash"].as_str().expect("a hash");
    assert_eq!(hash.len(), 64, "{provenance}");
    assert_eq!(provenance["package"], json!("blooming-flowers"));
    assert_eq!(
        provenance["package_version"],
        json!(env!("CARGO_PKG_VERSION"))
    );
    assert!(
        provenance["rustc"]
            .as_str()
            .is_some_and(|r| r.starts_with("rustc ")),
        "{provenance}"
    );
    assert!(provenance["user"].as_str().is_some_and(|u| !u.is_empty()));
    assert_eq!(provenance["features"], provenance["framework_features"]);

    let o = cli::<Squares>(dir.path(), &["dump", &run]);
    assert_eq!(o.code, EXIT_OK, "{o:?}");
    assert!(
        o.out.contains(&format!("binary:    BLAKE3 {hash}")),
        "{o:?}"
    );
    assert!(o.out.contains("package:   blooming-flowers"), "{o:?}");
    assert!(o.out.contains("source:    "), "{o:?}");

    // A record written before provenance was recorded still reads.
    rewrite_record(dir.path(), "Squares", &run, |r| {
        r.as_object_mut().map(|r| r.remove("provenance"));
    });
    let o = cli::<Squares>(dir.path(), &["dump", &run]);
    assert_eq!(o.code, EXIT_OK, "{o:?}");
    assert!(o.out.contains("provenance: not recorded"), "{o:?}");
}

#[test]
fn resume_refuses_a_run_of_another_binary_unless_allowed() {
    let dir = tempdir();
    let _flaky = flaky_lock();
    FLAKY_FAILS.store(true, Ordering::SeqCst);
    let o = cli::<Flaky>(dir.path(), &["run"]);
    assert_eq!(o.code, EXIT_FAILURE, "{o:?}");
    let failed = run_id_in(&o.err);
    let other = "ab".repeat(32);
    rewrite_record(dir.path(), "Flaky", &failed, |r| {
        r["provenance"]["binary_hash"] = json!(other);
    });
    FLAKY_FAILS.store(false, Ordering::SeqCst);
    let runs_before = std::fs::read_dir(dir.path().join("flows/Flaky/runs"))
        .expect("runs")
        .count();
    let o = cli::<Flaky>(dir.path(), &["resume", "--origin-run-id", &failed]);
    assert_eq!(o.code, EXIT_USAGE, "{o:?}");
    assert!(o.err.contains(&other), "{o:?}");
    assert!(o.err.contains("--allow-other-binary"), "{o:?}");
    let runs_after = std::fs::read_dir(dir.path().join("flows/Flaky/runs"))
        .expect("runs")
        .count();
    assert_eq!(runs_before, runs_after, "a refused resume starts no run");

    let o = cli::<Flaky>(
        dir.path(),
        &["resume", "--origin-run-id", &failed, "--allow-other-binary"],
    );
    assert_eq!(o.code, EXIT_OK, "{o:?}");
    assert!(o.err.contains("WARNING") && o.err.contains(&other), "{o:?}");
    let resumed = run_id_in(&o.out);
    let o = cli::<Flaky>(dir.path(), &["dump", &resumed, "--json"]);
    assert_eq!(
        o.json()["provenance"]["reused_tasks_of_binary"],
        json!(other)
    );
    let o = cli::<Flaky>(dir.path(), &["dump", &resumed]);
    assert!(
        o.out.contains("reuses tasks made by another flow binary"),
        "{o:?}"
    );
}

#[test]
fn resume_of_a_run_without_provenance_warns_and_goes_on() {
    let dir = tempdir();
    let _flaky = flaky_lock();
    FLAKY_FAILS.store(true, Ordering::SeqCst);
    let o = cli::<Flaky>(dir.path(), &["run"]);
    assert_eq!(o.code, EXIT_FAILURE, "{o:?}");
    let failed = run_id_in(&o.err);
    rewrite_record(dir.path(), "Flaky", &failed, |r| {
        r.as_object_mut().map(|r| r.remove("provenance"));
    });
    FLAKY_FAILS.store(false, Ordering::SeqCst);
    let o = cli::<Flaky>(dir.path(), &["resume", "--origin-run-id", &failed]);
    assert_eq!(o.code, EXIT_OK, "{o:?}");
    assert!(o.err.contains("recorded no flow binary hash"), "{o:?}");
}
