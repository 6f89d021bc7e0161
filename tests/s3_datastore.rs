//! The datastore on S3-compatible storage, against a real server (SeaweedFS in development and
//! CI): `ObjectStorage` keeps the storage contract (the conformance suite every backend runs),
//! runs in-process and in process mode give the results of a local run, the inspection
//! commands work on it, a 200 MiB field goes through the multipart path, runs of several processes
//! share one prefix without losing or mixing anything, a damaged blob is reported as such and
//! repaired by the next run that stores its value, and wrong credentials are a clear error.
//!
//! Needs the server: run it as `scripts/services exec -- cargo test --features s3 --test
//! s3_datastore`, which exports `BLOOMING_TEST_S3` (e.g. `s3://blooming-test`) and the `AWS_*`
//! variables. Without `BLOOMING_TEST_S3` the test fails: it never skips silently. Each check
//! works under a prefix of its own, so runs of this test never see each other's data.
//!
//! With `BLOOMING_S3_MEASURE=1` it also prints how long storing and loading a 1 GiB blob and
//! runs of a 100-task foreach take (a release build gives the meaningful figures);
//! `BLOOMING_S3_MEASURE=blob` measures the blob only.
//!
//! The test binary is its own flow binary (this target has `harness = false`): process mode
//! starts each task as `this-binary --datastore s3://… step …`, and the concurrency check starts
//! whole runs as `this-binary run`, with `S3_TEST_FLOW` naming the flow.

use std::ffi::OsString;
use std::process::ExitCode;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use blooming_flowers::clap;
use blooming_flowers::cli::{EXIT_FAILURE, EXIT_OK, run_cli_with};
use blooming_flowers::client::{Client, ClientError};
use blooming_flowers::datastore::conformance::{self, Backend as _};
use blooming_flowers::datastore::{
    BlobStore, DatastoreLocation, MIN_PART_SIZE, ObjectStorage, S3Location,
};
use blooming_flowers::executor::{RunOptions, run_flow};
use blooming_flowers::prelude::*;
use blooming_flowers::run::RunStore;

/// Set (to a flow's name), this binary is that flow's binary whatever its arguments.
const FLOW_ENV: &str = "S3_TEST_FLOW";
/// The bucket (and prefix) the tests may use, e.g. `s3://blooming-test`.
const LOCATION_ENV: &str = "BLOOMING_TEST_S3";
/// Set to 1, the throughput figures are measured and printed too.
const MEASURE_ENV: &str = "BLOOMING_S3_MEASURE";

// ------------------------------------------------------------------------------------- flows

/// `examples/squares.rs` itself: a branch, a foreach, a switch and their joins.
#[allow(dead_code)]
#[path = "../examples/squares.rs"]
mod squares;
use squares::Squares;

/// A field of [`BIG_MIB`] MiB: larger than a part, so it goes up as a multipart upload.
const BIG_MIB: usize = 200;

#[derive(Clone, Default, Serialize, Deserialize)]
struct Big {
    #[serde(with = "serde_bytes")]
    data: Vec<u8>,
    checksum: u64,
}

#[flow]
impl Big {
    #[step(next = end)]
    fn start(&mut self) {
        self.data = pattern(BIG_MIB << 20, 7);
    }

    /// Reads the field back from the datastore (its parent's state) and checks it.
    #[step]
    fn end(&mut self) {
        self.checksum = sampled_sum(&self.data);
    }
}

/// Bytes that differ from one MiB to the next (each MiB is one block rotated by its number), so
/// that a misplaced part would show; built with copies, quick even in a debug build.
fn pattern(len: usize, seed: u8) -> Vec<u8> {
    const MIB: usize = 1 << 20;
    let block: Vec<u8> = (0..MIB).map(|i| (i % 251) as u8 ^ seed).collect();
    let mut out = Vec::with_capacity(len);
    let mut n = 0;
    while out.len() < len {
        let turn = (n * 4099) % MIB;
        let piece = [&block[turn..], &block[..turn]].concat();
        let take = (len - out.len()).min(MIB);
        out.extend_from_slice(&piece[..take]);
        n += 1;
    }
    out
}

/// A checksum of every 4099th byte and the length: what `end` computes to show it read the field.
fn sampled_sum(data: &[u8]) -> u64 {
    data.iter()
        .step_by(4099)
        .map(|&b| u64::from(b))
        .sum::<u64>()
        + data.len() as u64
}

#[derive(Clone, Default, Serialize, Deserialize, clap::Args)]
struct Seed {
    /// What makes this run's results its own.
    #[arg(long, default_value_t = 0)]
    seed: u64,
}

/// Runs of several processes at once, each with its own seed: every result names its seed.
#[derive(Clone, Default, Serialize, Deserialize)]
struct Seeded {
    seed: Seed,
    xs: Vec<u64>,
    /// The same in every run: one blob that all the concurrent runs store at once.
    shared: Vec<u64>,
    value: u64,
    values: Vec<u64>,
}

#[flow(params = seed)]
impl Seeded {
    #[step(foreach = xs, next = work)]
    fn start(&mut self) {
        self.xs = (0..8).map(|i| self.seed.seed * 1000 + i).collect();
        self.shared = (0..1000).collect();
    }

    #[step(next = gather)]
    fn work(&mut self, x: u64) {
        self.value = x * x;
    }

    #[step(join, next = end)]
    fn gather(&mut self, inputs: Inputs<Self>) {
        self.values = inputs.iter().map(|i| i.value).collect();
    }

    #[step]
    fn end(&mut self) {}
}

/// A foreach of 100 tasks, for the throughput figures.
#[derive(Clone, Default, Serialize, Deserialize)]
struct Hundred {
    xs: Vec<u64>,
    y: u64,
    total: u64,
}

#[flow]
impl Hundred {
    #[step(foreach = xs, next = work)]
    fn start(&mut self) {
        self.xs = (0..100).collect();
    }

    #[step(next = gather)]
    fn work(&mut self, x: u64) {
        self.y = x + 1;
    }

    #[step(join, next = end)]
    fn gather(&mut self, inputs: Inputs<Self>) {
        self.total = inputs.iter().map(|i| i.y).sum();
    }

    #[step]
    fn end(&mut self) {}
}

// ----------------------------------------------------------------------------------- helpers

type Check = Result<(), String>;

/// One check of `main`'s list.
type Test = (&'static str, fn(&S3Location) -> Check);

/// What `?` turns an error into.
fn err(e: impl std::fmt::Display) -> String {
    e.to_string()
}

fn ensure(ok: bool, what: impl FnOnce() -> String) -> Check {
    if ok { Ok(()) } else { Err(what()) }
}

/// The test's bucket and prefix, from [`LOCATION_ENV`].
fn base_location() -> Result<S3Location, String> {
    let value = std::env::var(LOCATION_ENV).map_err(|_| {
        format!(
            "{LOCATION_ENV} is not set: this test needs an S3-compatible server. Run it as \
             `scripts/services exec -- cargo test --features s3 --test s3_datastore`, which \
             starts SeaweedFS and exports {LOCATION_ENV} and the AWS_* variables"
        )
    })?;
    match DatastoreLocation::parse(&value).map_err(err)? {
        DatastoreLocation::S3(s3) => Ok(s3),
        other => Err(format!("{LOCATION_ENV} must be an s3:// URL, not {other}")),
    }
}

/// A prefix no other check, and no other run of this test, uses.
fn fresh(base: &S3Location, check: &str) -> Result<DatastoreLocation, String> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let name = format!(
        "s3-test-{}-{}-{}-{check}",
        now.as_secs(),
        now.subsec_nanos(),
        std::process::id()
    );
    Ok(base.join(&name).map_err(err)?.into())
}

struct Output {
    code: u8,
    out: String,
    err: String,
}

impl Output {
    fn show(&self) -> String {
        format!(
            "exit {}\n--- stdout\n{}--- stderr\n{}",
            self.code, self.out, self.err
        )
    }
}

/// The CLI of flow `F` in this process.
fn cli<F: Flow>(location: &DatastoreLocation, args: &[&str]) -> Output {
    let url = location.to_string();
    let mut argv: Vec<OsString> = vec!["flow".into(), "--datastore".into(), url.into()];
    argv.extend(args.iter().map(OsString::from));
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let code = run_cli_with::<F, _, _>(argv, &mut out, &mut err);
    Output {
        code,
        out: String::from_utf8_lossy(&out).into_owned(),
        err: String::from_utf8_lossy(&err).into_owned(),
    }
}

/// This binary as flow `flow`'s binary, in a child process with `env` added.
fn child(flow: &str, args: &[&str], env: &[(&str, &str)]) -> Result<std::process::Child, String> {
    let exe = std::env::current_exe().map_err(err)?;
    let mut command = std::process::Command::new(exe);
    command
        .args(args)
        .env(FLOW_ENV, flow)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    for (name, value) in env {
        command.env(name, value);
    }
    command.spawn().map_err(err)
}

fn finish(child: std::process::Child) -> Result<Output, String> {
    let output = child.wait_with_output().map_err(err)?;
    Ok(Output {
        code: output
            .status
            .code()
            .and_then(|c| u8::try_from(c).ok())
            .unwrap_or(255),
        out: String::from_utf8_lossy(&output.stdout).into_owned(),
        err: String::from_utf8_lossy(&output.stderr).into_owned(),
    })
}

fn run_id_in(text: &str) -> String {
    text.split_whitespace()
        .skip_while(|w| *w != "Run")
        .nth(1)
        .unwrap_or_default()
        .to_owned()
}

/// Every task's artifacts (step, task, name, blob hash, size) of `run_id`, in order: equal
/// hashes are equal encodings, wherever they are stored.
fn fingerprint(client: &Client, flow: &str, run_id: &str) -> Result<Vec<String>, ClientError> {
    let run = client.flow(flow).run(run_id)?;
    let mut lines = Vec::new();
    for step in run.steps()? {
        for task in step.tasks()? {
            for a in task.artifacts()? {
                lines.push(format!(
                    "{}/{} {} {} {}",
                    step.name(),
                    task.id(),
                    a.name,
                    a.hash,
                    a.size
                ));
            }
        }
    }
    Ok(lines)
}

// ------------------------------------------------------------------------------------ checks

/// The squares flow in-process and in process mode on S3 stores exactly what a local run stores.
fn squares_on_s3_match_a_local_run(base: &S3Location) -> Check {
    blooming_flowers::logs::install();
    let dir = tempfile::tempdir().map_err(err)?;
    let local = DatastoreLocation::local(dir.path()).map_err(err)?;
    let s3 = fresh(base, "squares")?;
    let options = RunOptions {
        max_workers: 4,
        ..RunOptions::default()
    };

    let local_store = RunStore::open(&local).map_err(err)?;
    let local_run = run_flow::<Squares>(&local_store, serde_json::Value::Null, &options)
        .map_err(err)?
        .run_id;
    let store = RunStore::open(&s3).map_err(err)?;
    let threads_run = run_flow::<Squares>(&store, serde_json::Value::Null, &options)
        .map_err(err)?
        .run_id;
    let o = cli::<Squares>(&s3, &["run", "--process", "--max-workers", "4"]);
    ensure(o.code == EXIT_OK, || format!("run --process\n{}", o.show()))?;
    let process_run = run_id_in(&o.out);

    let local_client = Client::open(dir.path()).map_err(err)?;
    let s3_client = Client::open(s3.to_string()).map_err(err)?;
    let expected = fingerprint(&local_client, "Squares", &local_run).map_err(err)?;
    ensure(expected.len() > 50, || {
        format!("too few artifacts: {expected:?}")
    })?;
    for run_id in [threads_run.as_str(), process_run.as_str()] {
        let got = fingerprint(&s3_client, "Squares", run_id).map_err(err)?;
        ensure(got == expected, || {
            format!("run {run_id} on S3 differs from the local run:\n{got:#?}\n{expected:#?}")
        })?;
        let end: Squares = s3_client
            .flow("Squares")
            .run(run_id)
            .map_err(err)?
            .state()
            .map_err(err)?;
        let want: Squares = local_client
            .flow("Squares")
            .run(&local_run)
            .map_err(err)?
            .state()
            .map_err(err)?;
        let total: u64 = s3_client
            .flow("Squares")
            .run(run_id)
            .map_err(err)?
            .artifact("total")
            .map_err(err)?;
        ensure(end == want && total == 385, || {
            format!("end state {end:?}, wanted {want:?}")
        })?;
    }
    let tasks = s3_client
        .flow("Squares")
        .run(&process_run)
        .map_err(err)?
        .step("sq")
        .map_err(err)?
        .task_ids()
        .map_err(err)?;
    ensure(tasks.len() == 10, || format!("sq tasks: {tasks:?}"))
}

/// `runs`, `dump --json`, `logs`, `tag`, `resume` and `step` on an S3 datastore; an empty prefix
/// reads as an empty datastore.
fn inspection_commands_work(base: &S3Location) -> Check {
    let s3 = fresh(base, "inspect")?;
    let o = cli::<Squares>(&s3, &["runs"]);
    ensure(
        o.code == EXIT_OK && o.out.contains("No runs of flow Squares in s3://"),
        || format!("runs of an empty prefix\n{}", o.show()),
    )?;
    let o = cli::<Squares>(&s3, &["dump", "latest"]);
    ensure(
        o.code == 2 && o.err.contains("has no runs in s3://"),
        || format!("dump of an empty prefix\n{}", o.show()),
    )?;

    // A bucket that does not exist is no datastore, as a missing directory is.
    let missing = format!("s3://no-such-bucket-{}/x", std::process::id());
    let missing = DatastoreLocation::parse(&missing).map_err(err)?;
    let o = cli::<Squares>(&missing, &["runs"]);
    ensure(
        o.code == 2
            && o.err
                .contains("there is no datastore at s3://no-such-bucket-"),
        || format!("runs in a missing bucket\n{}", o.show()),
    )?;
    match Client::open_location(&missing) {
        Err(ClientError::NoDatastore { .. }) => {}
        other => return Err(format!("the client on a missing bucket: {other:?}")),
    }

    let o = cli::<Squares>(&s3, &["run", "--tag", "s3"]);
    ensure(o.code == EXIT_OK, || format!("run\n{}", o.show()))?;
    ensure(o.out.contains(&format!("--datastore {s3} dump ")), || {
        format!("the suggestion repeats the URL\n{}", o.show())
    })?;
    let run = run_id_in(&o.out);

    let o = cli::<Squares>(&s3, &["runs", "--json"]);
    let runs: serde_json::Value =
        serde_json::from_str(&o.out).map_err(|e| format!("{e}: {}", o.show()))?;
    ensure(runs[0]["run_id"] == run.as_str(), || {
        format!("runs --json\n{}", o.show())
    })?;

    let o = cli::<Squares>(&s3, &["dump", &format!("{run}/end"), "--json"]);
    let end: serde_json::Value =
        serde_json::from_str(&o.out).map_err(|e| format!("{e}: {}", o.show()))?;
    ensure(
        end["total"] == 385 && end["verdict"] == "385 is big",
        || format!("dump --json\n{}", o.show()),
    )?;
    let o = cli::<Squares>(&s3, &["dump", &format!("{run}/sq")]);
    ensure(o.code == EXIT_OK && o.out.contains("10 tasks"), || {
        format!("dump of a step\n{}", o.show())
    })?;

    let o = cli::<Squares>(&s3, &["logs", &format!("{run}/gather")]);
    ensure(
        o.code == EXIT_OK && o.out.contains("gathered 10 squares"),
        || format!("logs\n{}", o.show()),
    )?;

    let o = cli::<Squares>(&s3, &["tag", &run, "add", "checked"]);
    ensure(o.code == EXIT_OK, || format!("tag\n{}", o.show()))?;
    let o = cli::<Squares>(&s3, &["runs", "--tag", "checked", "--json"]);
    ensure(o.out.contains(&run), || format!("runs --tag\n{}", o.show()))?;

    let o = cli::<Squares>(&s3, &["resume", "--origin-run-id", &run, "sq"]);
    ensure(
        o.code == EXIT_OK && o.out.contains("reused from run"),
        || format!("resume\n{}", o.show()),
    )?;

    // `step` with a task that was never planned: the datastore is read, the task refused.
    let o = cli::<Squares>(&s3, &["step", "sq", "--run-id", &run, "--task-id", "77"]);
    ensure(
        o.code == EXIT_FAILURE && o.err.contains("no task sq/77"),
        || format!("step\n{}", o.show()),
    )
}

/// A 200 MiB field is stored (a multipart upload, copied into place) and read back intact, by the
/// next step and by the client.
fn a_large_field_round_trips(base: &S3Location) -> Check {
    let s3 = fresh(base, "big")?;
    let store = RunStore::open(&s3).map_err(err)?;
    let started = Instant::now();
    let run = run_flow::<Big>(&store, serde_json::Value::Null, &RunOptions::default())
        .map_err(err)?
        .run_id;
    let took = started.elapsed();
    let client = Client::open_location(&s3).map_err(err)?;
    let run = client.flow("Big").run(&run).map_err(err)?;
    let expected = pattern(BIG_MIB << 20, 7);
    let checksum: u64 = run.artifact("checksum").map_err(err)?;
    ensure(checksum == sampled_sum(&expected), || {
        "the end step read other bytes".to_owned()
    })?;
    let data: serde_bytes::ByteBuf = run.artifact("data").map_err(err)?;
    ensure(data.as_slice() == expected.as_slice(), || {
        "the client read other bytes".to_owned()
    })?;
    // One blob for the field, stored once although two tasks hold it; no staging object left.
    let all = store.storage().list(None).map_err(err)?;
    let big_blobs: Vec<_> = all
        .iter()
        .filter(|k| {
            k.as_str().starts_with("blobs/")
                && store.storage().size(k).ok().flatten() > Some((BIG_MIB as u64) << 20)
        })
        .collect();
    ensure(big_blobs.len() == 1, || {
        format!("large blobs: {big_blobs:?}")
    })?;
    println!("    a {BIG_MIB} MiB field: run of 2 steps in {took:.1?}");
    Ok(())
}

/// Four processes run a flow at once into one prefix: four complete runs, each with its own
/// results, and the blob they all store is there once.
fn concurrent_runs_share_a_prefix(base: &S3Location) -> Check {
    let s3 = fresh(base, "concurrent")?;
    let url = s3.to_string();
    let seeds = [1u64, 2, 3, 4];
    let children = seeds
        .iter()
        .map(|seed| {
            let seed = seed.to_string();
            child(
                "seeded",
                &[
                    "--datastore",
                    &url,
                    "run",
                    "--seed",
                    &seed,
                    "--max-workers",
                    "3",
                ],
                &[],
            )
        })
        .collect::<Result<Vec<_>, _>>()?;
    let mut run_ids = Vec::new();
    for (seed, child) in seeds.iter().zip(children) {
        let o = finish(child)?;
        ensure(o.code == EXIT_OK, || {
            format!("run with seed {seed}\n{}", o.show())
        })?;
        run_ids.push((*seed, run_id_in(&o.out)));
    }
    let client = Client::open_location(&s3).map_err(err)?;
    let listed = client.flow("Seeded").run_ids().map_err(err)?;
    ensure(listed.len() == seeds.len(), || format!("runs: {listed:?}"))?;
    for (seed, run_id) in &run_ids {
        let run = client.flow("Seeded").run(run_id).map_err(err)?;
        ensure(run.successful(), || format!("run {run_id} did not succeed"))?;
        let values: Vec<u64> = run.artifact("values").map_err(err)?;
        let expected: Vec<u64> = (0..8).map(|i| (seed * 1000 + i).pow(2)).collect();
        ensure(values == expected, || {
            format!("run {run_id} (seed {seed}) has {values:?}, wanted {expected:?}")
        })?;
        let step = run.step("work").map_err(err)?;
        for task in step.tasks().map_err(err)? {
            let x: u64 = task.item().map_err(err)?;
            let value: u64 = task.artifact("value").map_err(err)?;
            ensure(value == x * x && x / 1000 == *seed, || {
                format!(
                    "task {} of run {run_id} mixed: x = {x}, value = {value}",
                    task.pathspec()
                )
            })?;
        }
    }
    let store = RunStore::open(&s3).map_err(err)?;
    let shared = store
        .blobs()
        .put_value(&(0..1000).collect::<Vec<u64>>())
        .map_err(err)?;
    ensure(!shared.newly_stored, || {
        "the shared blob was missing".to_owned()
    })
}

/// The storage contract on the server: the conformance suite every backend runs, each check on
/// a fresh prefix, with the smallest part size so that its large objects are multipart uploads.
/// It needs a server that honours conditional writes (one winner among claimers, updates that
/// lose nothing); the server's answers to the probes are printed first, and the probes must
/// leave nothing behind.
fn storage_contract_holds_on_the_server(base: &S3Location) -> Check {
    let connect = |check: &str| -> Result<ObjectStorage, String> {
        let location = fresh(base, check)?;
        let s3 = location
            .as_s3()
            .ok_or_else(|| format!("{location} is not on S3"))?;
        ObjectStorage::connect(s3)
            .map(|storage| storage.with_part_size(MIN_PART_SIZE))
            .map_err(err)
    };
    let storage = connect("probes")?;
    let writes = storage.conditional_writes_honoured().map_err(err)?;
    let updates = storage.conditional_updates_honoured().map_err(err)?;
    println!(
        "    conditional writes honoured by the server: {writes}; conditional updates: {updates}"
    );
    let left = storage.raw_names();
    ensure(left.is_empty(), || format!("the probes left {left:?}"))?;

    let checks = std::sync::atomic::AtomicUsize::new(0);
    let fresh_backend = || -> Box<dyn conformance::Backend> {
        let n = checks.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        match connect(&format!("contract-{n}")) {
            Ok(storage) => Box::new(storage),
            Err(e) => panic!("could not open a fresh prefix: {e}"),
        }
    };
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        conformance::run_all(&fresh_backend);
    }))
    .map_err(|panic| {
        panic
            .downcast_ref::<String>()
            .cloned()
            .unwrap_or_else(|| "a check panicked".to_owned())
    })?;
    println!(
        "    {} checks of the contract",
        checks.load(std::sync::atomic::Ordering::Relaxed)
    );
    Ok(())
}

/// A blob damaged on the server is reported as corrupt, by the client and by `dump`.
fn a_damaged_blob_is_detected(base: &S3Location) -> Check {
    let s3 = fresh(base, "damaged")?;
    let o = cli::<Squares>(&s3, &["run"]);
    ensure(o.code == EXIT_OK, || format!("run\n{}", o.show()))?;
    let run_id = run_id_in(&o.out);
    let client = Client::open_location(&s3).map_err(err)?;
    let run = client.flow("Squares").run(&run_id).map_err(err)?;
    let end = run.end_task().map_err(err)?;
    let entry = end
        .artifacts()
        .map_err(err)?
        .iter()
        .find(|a| a.name == "verdict")
        .cloned()
        .ok_or("no artifact `verdict`")?;
    let store = client.store();
    let mut bytes = store.storage().get(&entry.hash.key()).map_err(err)?;
    let last = bytes.len() - 1;
    bytes[last] ^= 0x20;
    store
        .storage()
        .put(&entry.hash.key(), &bytes)
        .map_err(err)?;

    match run.artifact::<String>("verdict") {
        Err(e) => {
            let chain = format!("{e} {:?}", e);
            ensure(chain.contains("corrupt"), || {
                format!("not reported as corrupt: {chain}")
            })?;
        }
        Ok(value) => return Err(format!("a damaged blob was loaded: {value:?}")),
    }
    let o = cli::<Squares>(
        &s3,
        &["dump", &format!("{run_id}/end"), "--artifact", "verdict"],
    );
    ensure(o.code == EXIT_FAILURE && o.err.contains("corrupt"), || {
        format!("dump of a damaged artifact\n{}", o.show())
    })
}

/// Loads every task of `run_id` of the squares flow; returns how many, or the first failure.
fn every_squares_task_loads(store: &RunStore, run_id: &str) -> Result<usize, String> {
    let mut loaded = 0;
    for step in store.list_steps("Squares", run_id).map_err(err)? {
        for task in store.list_tasks("Squares", run_id, &step).map_err(err)? {
            let key = RunStore::task_key("Squares", run_id, &step, &task).map_err(err)?;
            let index = store
                .read_index(&key)
                .map_err(err)?
                .ok_or_else(|| format!("{step}/{task} is not complete"))?;
            store
                .blobs()
                .load_state::<blooming_flowers::StateOwned<Squares>>(&index.artifacts)
                .map_err(|e| format!("{run_id}/{step}/{task}: {e}"))?;
            loaded += 1;
        }
    }
    Ok(loaded)
}

/// Blobs damaged on the server (emptied, cut short, a byte changed and found by a read) are
/// not reused by the next run that stores their values: it writes them again, and then both
/// runs' artifacts load.
fn damaged_blobs_are_repaired_by_the_next_run(base: &S3Location) -> Check {
    let s3 = fresh(base, "repaired")?;
    let o = cli::<Squares>(&s3, &["run"]);
    ensure(o.code == EXIT_OK, || format!("run\n{}", o.show()))?;
    let first = run_id_in(&o.out);
    let store = RunStore::open(&s3).map_err(err)?;
    let end = RunStore::task_key("Squares", &first, "end", "0").map_err(err)?;
    let index = store
        .read_index(&end)
        .map_err(err)?
        .ok_or("end did not complete")?;
    let blob = |name: &str| {
        index
            .artifact(name)
            .cloned()
            .ok_or_else(|| format!("no artifact `{name}`"))
    };
    let storage = store.storage();
    let (total, note, verdict) = (blob("total")?, blob("note")?, blob("verdict")?);
    storage.put(&total.hash.key(), b"").map_err(err)?;
    let bytes = storage.get(&note.hash.key()).map_err(err)?;
    storage
        .put(&note.hash.key(), &bytes[..bytes.len() / 2])
        .map_err(err)?;
    let mut bytes = storage.get(&verdict.hash.key()).map_err(err)?;
    bytes[1] ^= 0x20;
    storage.put(&verdict.hash.key(), &bytes).map_err(err)?;
    ensure(every_squares_task_loads(&store, &first).is_err(), || {
        "the damaged run loaded".to_owned()
    })?;
    match store.blobs().get(&verdict.hash, Some(verdict.size)) {
        Err(e) => ensure(
            e.to_string()
                .contains(&format!("blob {} is corrupted", verdict.hash)),
            || format!("the damaged blob is not named: {e}"),
        )?,
        Ok(_) => return Err("a damaged blob was read".into()),
    }

    let o = cli::<Squares>(&s3, &["run"]);
    ensure(o.code == EXIT_OK, || format!("second run\n{}", o.show()))?;
    let second = run_id_in(&o.out);
    for run_id in [&second, &first] {
        let loaded = every_squares_task_loads(&store, run_id)?;
        ensure(loaded > 10, || format!("{run_id}: only {loaded} tasks"))?;
    }
    Ok(())
}

/// Wrong credentials: a clear error naming the endpoint and the bucket, and a non-zero exit,
/// for reading and for running.
fn wrong_credentials_are_refused_clearly(base: &S3Location) -> Check {
    let s3 = fresh(base, "credentials")?;
    let url = s3.to_string();
    let endpoint = std::env::var("AWS_ENDPOINT_URL").unwrap_or_default();
    for args in [vec!["runs"], vec!["run"]] {
        let mut argv = vec!["--datastore", url.as_str()];
        argv.extend(&args);
        let o = finish(child(
            "squares",
            &argv,
            &[("AWS_SECRET_ACCESS_KEY", "not-the-secret")],
        )?)?;
        ensure(o.code != EXIT_OK, || {
            format!("{args:?} succeeded\n{}", o.show())
        })?;
        ensure(
            o.err.contains("refused access")
                && o.err.contains(&endpoint)
                && o.err.contains(&format!("bucket `{}`", base.bucket()))
                && o.err.contains("AWS_SECRET_ACCESS_KEY"),
            || format!("{args:?}: unclear error\n{}", o.show()),
        )?;
    }
    // The same location with the right credentials: an empty datastore, opened fine.
    Client::open(&url)
        .map(drop)
        .map_err(|e| format!("the client with good credentials: {e}"))
}

// ------------------------------------------------------------------------------ measurements

fn measure(base: &S3Location) -> Check {
    let s3 = fresh(base, "measure")?;
    let store = RunStore::open(&s3).map_err(err)?;
    let blobs = BlobStore::new(store.storage());
    let gib = serde_bytes::ByteBuf::from(pattern(1 << 30, 3));

    let started = Instant::now();
    let stored = blobs.put_value(&gib).map_err(err)?;
    let store_new = started.elapsed();
    let started = Instant::now();
    let again = blobs.put_value(&gib).map_err(err)?;
    let store_again = started.elapsed();
    ensure(stored.newly_stored && !again.newly_stored, || {
        "dedup".to_owned()
    })?;
    drop(gib);
    let started = Instant::now();
    let bytes = blobs.get(&stored.hash, Some(stored.size)).map_err(err)?;
    let load = started.elapsed();
    drop(bytes);
    let started = Instant::now();
    let mut reader = store.storage().reader(&stored.hash.key()).map_err(err)?;
    let streamed = std::io::copy(&mut reader, &mut std::io::sink()).map_err(err)?;
    let stream = started.elapsed();
    let rate = |d: Duration| format!("{:.0} MiB/s", 1024.0 / d.as_secs_f64());
    println!(
        "    1 GiB blob: store {store_new:.2?} ({}), store again (exists) {store_again:.2?}, \
         load + verify {load:.2?} ({}), stream {streamed} bytes {stream:.2?} ({})",
        rate(store_new),
        rate(load),
        rate(stream)
    );

    if std::env::var(MEASURE_ENV).is_ok_and(|v| v == "blob") {
        return Ok(());
    }
    let dir = tempfile::tempdir().map_err(err)?;
    let local = RunStore::open_local(dir.path()).map_err(err)?;
    for (name, store) in [("local", &local), ("S3", &store)] {
        let started = Instant::now();
        let summary = run_flow::<Hundred>(store, serde_json::Value::Null, &RunOptions::default())
            .map_err(err)?;
        println!(
            "    foreach of 100 tasks ({name}, threads): {} tasks in {:.2?}",
            summary.tasks_run,
            started.elapsed()
        );
    }
    // Process mode from a child that is the `Hundred` binary, whose own children inherit that.
    let local_url = dir.path().display().to_string();
    let s3_url = s3.to_string();
    for (name, url) in [("local", local_url.as_str()), ("S3", s3_url.as_str())] {
        let started = Instant::now();
        let o = finish(child(
            "hundred",
            &["--datastore", url, "run", "--process"],
            &[],
        )?)?;
        ensure(o.code == EXIT_OK, || format!("run --process\n{}", o.show()))?;
        println!(
            "    foreach of 100 tasks ({name}, processes): {:.2?} including the binary's start",
            started.elapsed()
        );
    }
    Ok(())
}

// -------------------------------------------------------------------------------------- main

fn main() -> ExitCode {
    if let Ok(flow) = std::env::var(FLOW_ENV) {
        return match flow.as_str() {
            "seeded" => blooming_flowers::main::<Seeded>(),
            "hundred" => blooming_flowers::main::<Hundred>(),
            _ => blooming_flowers::main::<Squares>(),
        };
    }
    let args: Vec<OsString> = std::env::args_os().collect();
    if args.get(1).is_some_and(|a| a == "--datastore") {
        // A task of `run --process` of the squares flow, started by the executor.
        return blooming_flowers::main::<Squares>();
    }
    let base = match base_location() {
        Ok(base) => base,
        Err(e) => {
            println!("test s3_datastore ... FAILED\n{e}");
            println!("0 passed, 1 failed");
            return ExitCode::FAILURE;
        }
    };
    let mut tests: Vec<Test> = vec![
        (
            "squares_on_s3_match_a_local_run",
            squares_on_s3_match_a_local_run,
        ),
        ("inspection_commands_work", inspection_commands_work),
        ("a_large_field_round_trips", a_large_field_round_trips),
        (
            "concurrent_runs_share_a_prefix",
            concurrent_runs_share_a_prefix,
        ),
        (
            "storage_contract_holds_on_the_server",
            storage_contract_holds_on_the_server,
        ),
        ("a_damaged_blob_is_detected", a_damaged_blob_is_detected),
        (
            "damaged_blobs_are_repaired_by_the_next_run",
            damaged_blobs_are_repaired_by_the_next_run,
        ),
        (
            "wrong_credentials_are_refused_clearly",
            wrong_credentials_are_refused_clearly,
        ),
    ];
    if std::env::var(MEASURE_ENV).is_ok_and(|v| v == "1" || v == "blob") {
        tests.push(("measure", measure));
    }
    let mut failed = 0;
    for (name, test) in &tests {
        let started = Instant::now();
        match test(&base) {
            Ok(()) => println!("test {name} ... ok ({:.1?})", started.elapsed()),
            Err(e) => {
                failed += 1;
                println!("test {name} ... FAILED\n{e}");
            }
        }
    }
    println!("{} passed, {failed} failed", tests.len() - failed);
    if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
