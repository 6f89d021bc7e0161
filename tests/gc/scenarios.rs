//! `gc` scenarios, run on a local datastore by `tests/gc.rs` and on SeaweedFS by
//! `tests/s3_gc.rs`. Each test binary is also the flow's binary (`harness = false`): started
//! with `--datastore`, it is the command line of the flow below, so that a scenario can start
//! runs and collections in processes of their own, run them side by side, and kill them.
//!
//! What every scenario checks in the end, reading the datastore directly: every run left reads
//! whole (each artifact, foreach element list and checkpoint its records name is there and
//! hashes to its name), and, after a collection without grace and with nothing going on, the
//! blobs are exactly those the runs left reference.

use std::collections::{BTreeSet, HashSet};
use std::ffi::OsString;
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use blooming_flowers::clap;
use blooming_flowers::cli::run_cli_with;
use blooming_flowers::current::current;
use blooming_flowers::datastore::{BLOB_PREFIX, BlobHash, DatastoreLocation, Key};
use blooming_flowers::prelude::*;
use blooming_flowers::run::{RunStatus, RunStore, RunStoreError};

/// The run's parameters.
#[derive(Clone, Debug, Default, Serialize, Deserialize, clap::Args)]
pub struct Settings {
    /// What makes this run's values its own; empty: the run's own id, so that nothing but the
    /// shared data is shared with other runs.
    #[arg(long, default_value = "")]
    pub label: String,
    /// How long each part takes, in milliseconds: runs that last while collections go on.
    #[arg(long, default_value_t = 0)]
    pub pause_ms: u64,
}

/// Data every run shares (`data`), values of its own (`own`, the parts, a checkpoint per part)
/// and a foreach, so that every kind of record that names a blob is there.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Shared {
    settings: Settings,
    data: Vec<u64>,
    own: String,
    xs: Vec<u64>,
    part: u64,
    total: u64,
}

#[flow(params = settings)]
impl Shared {
    #[step(foreach = xs, next = part)]
    fn start(&mut self) -> Result<(), String> {
        self.data = (0..5000).collect();
        self.own = if self.settings.label.is_empty() {
            current().ok_or("not in a task")?.pathspec()
        } else {
            self.settings.label.clone()
        };
        self.xs = vec![1, 2, 3];
        Ok(())
    }

    #[step(next = join)]
    fn part(&mut self, x: u64) -> Result<(), String> {
        let task = current().ok_or("not in a task")?;
        task.checkpoint(&format!("{}: half of part {x}", self.own))
            .map_err(|e| e.to_string())?;
        std::thread::sleep(std::time::Duration::from_millis(self.settings.pause_ms));
        self.part = x * self.data.len() as u64;
        self.own = format!("{} part {x}", self.own);
        Ok(())
    }

    #[step(join, next = end)]
    fn join(&mut self, inputs: Inputs<Self>) {
        self.total = inputs.values(|s| &s.part).sum();
    }

    #[step]
    fn end(&mut self) {}
}

/// The flow's name in the datastore.
pub const FLOW: &str = "Shared";

/// What a command printed, and its exit code.
pub struct Output {
    pub code: u8,
    pub out: String,
    pub err: String,
}

/// Runs the flow's command line in this process on `datastore`.
pub fn cli(datastore: &str, args: &[&str]) -> Output {
    let mut argv: Vec<OsString> = vec!["shared".into(), "--datastore".into(), datastore.into()];
    argv.extend(args.iter().map(OsString::from));
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let code = run_cli_with::<Shared, _, _>(argv, &mut out, &mut err);
    Output {
        code,
        out: String::from_utf8_lossy(&out).into_owned(),
        err: String::from_utf8_lossy(&err).into_owned(),
    }
}

/// Starts the flow's command line in a process of its own, with `env` set.
pub fn spawn(datastore: &str, args: &[&str], env: &[(&str, &str)]) -> Result<Child, String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let mut command = Command::new(exe);
    command
        .arg("--datastore")
        .arg(datastore)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (name, value) in env {
        command.env(name, value);
    }
    command.spawn().map_err(|e| e.to_string())
}

/// The test binary's `main`: the flow's command line when started with `--datastore`, else the
/// scenarios, each given a fresh datastore by `fresh`.
pub fn main(scenarios: &[(&str, Scenario)], fresh: &dyn Fn(&str) -> String) -> ExitCode {
    let args: Vec<OsString> = std::env::args_os().collect();
    if args.get(1).is_some_and(|a| a == "--datastore") {
        return blooming_flowers::main::<Shared>();
    }
    let filter = args.get(1).and_then(|a| a.to_str()).unwrap_or("");
    let mut failed = 0;
    for (name, scenario) in scenarios.iter().filter(|(n, _)| n.contains(filter)) {
        let started = Instant::now();
        match scenario(&fresh(name)) {
            Ok(()) => println!("test {name} ... ok ({:.1?})", started.elapsed()),
            Err(e) => {
                failed += 1;
                println!("test {name} ... FAILED\n{e}");
            }
        }
    }
    if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// A scenario, given the location of a datastore of its own.
pub type Scenario = fn(&str) -> Result<(), String>;

fn store(datastore: &str) -> Result<RunStore, String> {
    let location = DatastoreLocation::parse(datastore).map_err(|e| e.to_string())?;
    RunStore::open(&location).map_err(|e| e.to_string())
}

/// The run id in `Run <id> of …`.
fn run_id_in(text: &str) -> String {
    text.split("Run ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_default()
        .to_string()
}

/// A run of the flow, in this process; its id.
fn run(datastore: &str, label: &str) -> Result<String, String> {
    let o = cli(datastore, &["run", "--label", label]);
    if o.code != 0 {
        return Err(format!("the run failed:\n{}\n{}", o.out, o.err));
    }
    Ok(run_id_in(&o.out))
}

/// Changes run `id`'s stored record with `change` (its start time, its status), as a run of
/// long ago or one whose process died would have left it.
fn edit_record(
    datastore: &str,
    id: &str,
    change: impl FnOnce(&mut serde_json::Value),
) -> Result<(), String> {
    let store = store(datastore)?;
    let key = RunStore::run_key(FLOW, id)
        .and_then(|k| Ok(k.join("run.json")?))
        .map_err(|e| e.to_string())?;
    let bytes = store.storage().get(&key).map_err(|e| e.to_string())?;
    let mut record: serde_json::Value =
        serde_json::from_slice(&bytes).map_err(|e| e.to_string())?;
    change(&mut record);
    let bytes = serde_json::to_vec(&record).map_err(|e| e.to_string())?;
    store.storage().put(&key, &bytes).map_err(|e| e.to_string())
}

/// Makes run `id` look as if it started in 2020.
fn backdate(datastore: &str, id: &str) -> Result<(), String> {
    edit_record(datastore, id, |r| {
        r["started"] = "2020-01-01T00:00:00.000Z".into();
    })
}

/// The runs of the flow, as the datastore lists them (folders included).
fn listed_runs(datastore: &str) -> Result<BTreeSet<String>, String> {
    Ok(store(datastore)?
        .list_runs(FLOW)
        .map_err(|e| e.to_string())?
        .into_iter()
        .map(|id| id.to_string())
        .collect())
}

/// The runs a reader sees: a readable record, not being deleted.
fn readable_runs(datastore: &str) -> Result<BTreeSet<String>, String> {
    let client = blooming_flowers::client::Client::open(datastore).map_err(|e| e.to_string())?;
    let list = client.flow(FLOW).list_runs().map_err(|e| e.to_string())?;
    Ok(list.runs.iter().map(|r| r.id().to_string()).collect())
}

/// Every blob of the datastore.
fn stored_blobs(datastore: &str) -> Result<HashSet<BlobHash>, String> {
    let store = store(datastore)?;
    let prefix = Key::segment(BLOB_PREFIX).map_err(|e| e.to_string())?;
    Ok(store
        .storage()
        .list(Some(&prefix))
        .map_err(|e| e.to_string())?
        .iter()
        .filter_map(|key| key.name().parse::<BlobHash>().ok())
        .collect())
}

/// Reads every run left whole: every blob each names (artifacts, foreach elements, checkpoints)
/// is there and hashes to its name, and the client lists every run with a readable record.
/// Returns the blobs they reference. Runs a collection began deleting are left out.
fn verify_runs(datastore: &str) -> Result<HashSet<BlobHash>, String> {
    let store = store(datastore)?;
    let blobs = store.blobs();
    let mut referenced = HashSet::new();
    for id in store.list_runs(FLOW).map_err(|e| e.to_string())? {
        let record = match store.read_run(FLOW, &id) {
            Ok(record) => record,
            // A folder whose record a killed collection deleted: gone for readers.
            Err(RunStoreError::NoSuchRun { .. }) => continue,
            Err(e) => return Err(format!("run {id} has no readable record: {e}")),
        };
        if record.deleting.is_some() {
            continue;
        }
        let run = RunStore::run_key(FLOW, &id).map_err(|e| e.to_string())?;
        for key in store
            .storage()
            .list(Some(&run))
            .map_err(|e| e.to_string())?
        {
            let Some(task) = key.parent() else { continue };
            let mut named: Vec<(BlobHash, Option<u64>, String)> = Vec::new();
            if key.name() == "done.json" {
                let (index, meta) = store
                    .read_done(&task)
                    .map_err(|e| format!("{key}: {e}"))?
                    .ok_or_else(|| format!("{key} vanished"))?;
                for a in index.artifacts {
                    named.push((a.hash, Some(a.size), format!("{task} artifact {}", a.name)));
                }
                if let Some(foreach) = meta.and_then(|m| m.foreach) {
                    named.push((foreach.items, None, format!("{task} foreach elements")));
                }
            } else if task.name() == "checkpoints" && key.name().ends_with(".json") {
                let task = task.parent().ok_or("a checkpoint outside a task")?;
                for c in store.checkpoints(&task).map_err(|e| e.to_string())? {
                    named.push((c.hash, Some(c.size), format!("{task} checkpoint {}", c.seq)));
                }
            }
            for (hash, size, what) in named {
                blobs
                    .get(&hash, size)
                    .map_err(|e| format!("run {id}: {what} does not read whole: {e}"))?;
                referenced.insert(hash);
            }
        }
    }
    let client = blooming_flowers::client::Client::open(datastore).map_err(|e| e.to_string())?;
    let list = client.flow(FLOW).list_runs().map_err(|e| e.to_string())?;
    if let Some(bad) = list.unreadable.first() {
        return Err(format!(
            "run {} is listed unreadable: {}",
            bad.run_id, bad.error
        ));
    }
    Ok(referenced)
}

/// After a collection without grace with nothing going on: the blobs are exactly those the
/// runs left reference, and nothing is left of the runs deleted (a folder may stay listed where
/// the backend keeps folders, as SeaweedFS's filer does, but holds no object).
fn exactly_the_referenced_blobs(datastore: &str) -> Result<(), String> {
    let readable = readable_runs(datastore)?;
    let run_store = store(datastore)?;
    for id in listed_runs(datastore)?.difference(&readable) {
        let run = RunStore::run_key(FLOW, id).map_err(|e| e.to_string())?;
        let left = run_store
            .storage()
            .list(Some(&run))
            .map_err(|e| e.to_string())?;
        if !left.is_empty() {
            return Err(format!(
                "deleted run {id} left {} objects: {:?}",
                left.len(),
                left.first()
            ));
        }
    }
    let referenced = verify_runs(datastore)?;
    let stored = stored_blobs(datastore)?;
    if stored != referenced {
        let extra = stored.difference(&referenced).count();
        let missing = referenced.difference(&stored).count();
        return Err(format!(
            "{extra} blobs left that no run references, {missing} referenced blobs missing"
        ));
    }
    Ok(())
}

fn expect(o: &Output, code: u8, what: &str) -> Result<(), String> {
    if o.code != code {
        return Err(format!(
            "{what}: exit {} (expected {code})\n{}\n{}",
            o.code, o.out, o.err
        ));
    }
    Ok(())
}

fn ids(list: &[&String]) -> BTreeSet<String> {
    list.iter().map(|s| s.to_string()).collect()
}

/// The rules one by one: none given, a dry run, `--older-than` with `--keep-tagged` and
/// `--keep-promoted`, the grace period, `--keep-last`.
pub fn rules_one_by_one(ds: &str) -> Result<(), String> {
    let runs: Vec<String> = (0..6).map(|_| run(ds, "")).collect::<Result<_, _>>()?;
    let [r1, r2, r3, r4, r5, r6] = [0, 1, 2, 3, 4, 5].map(|i| &runs[i]);
    expect(&cli(ds, &["tag", r2, "add", "keep"]), 0, "tag")?;
    expect(
        &cli(ds, &["promote", r3, "--as", "production"]),
        0,
        "promote",
    )?;
    for old in [r1, r2, r3, r4] {
        backdate(ds, old)?;
    }
    let all = stored_blobs(ds)?;

    // No rule saying which runs may go; a bad age.
    let o = cli(ds, &["gc", "--keep-tagged", "keep"]);
    expect(&o, 2, "gc without --keep-last or --older-than")?;
    if !o.err.contains("--keep-last N") || !o.err.contains("--older-than AGE") {
        return Err(format!("the refusal should name the rules: {}", o.err));
    }
    let o = cli(ds, &["gc", "--older-than", "a while"]);
    expect(&o, 2, "gc --older-than 'a while'")?;
    if !o.err.contains("is not a duration such as `30d`") {
        return Err(format!("a bad age should be named: {}", o.err));
    }

    // A dry run says what would go and deletes nothing.
    let o = cli(
        ds,
        &["gc", "--keep-last", "1", "--grace", "0s", "--dry-run"],
    );
    expect(&o, 0, "gc --dry-run")?;
    if !o.out.contains("Would delete 5 runs") || !o.out.contains("Would free") {
        return Err(format!("the dry run should say what would go:\n{}", o.out));
    }
    if readable_runs(ds)?.len() != 6 || stored_blobs(ds)? != all {
        return Err("the dry run deleted something".into());
    }

    // Old runs go unless tagged or promoted; their blobs stay for the grace period.
    let rules = [
        "gc",
        "--older-than",
        "30d",
        "--keep-tagged",
        "keep",
        "--keep-promoted",
    ];
    let o = cli(ds, &rules);
    expect(&o, 0, "gc --older-than 30d")?;
    if readable_runs(ds)? != ids(&[r2, r3, r5, r6]) {
        return Err(format!(
            "old runs r1 and r4 should go, the tagged, promoted and young ones stay:\n{}",
            o.out
        ));
    }
    for gone in [r1, r4] {
        if !o.out.contains(&format!(
            "Deleted run Shared/{gone} (succeeded, started 2020-01-01"
        )) {
            return Err(format!("the report should name run {gone}:\n{}", o.out));
        }
    }
    for reason in ["1 tagged keep", "1 promoted as production", "younger than"] {
        if !o.out.contains(reason) {
            return Err(format!("the report should say `{reason}`:\n{}", o.out));
        }
    }
    if !o
        .out
        .contains("unreferenced but written within the last 1day")
    {
        return Err(format!(
            "the blobs of the deleted runs are within the grace period:\n{}",
            o.out
        ));
    }
    if stored_blobs(ds)? != all {
        return Err("a blob went within the grace period".into());
    }
    verify_runs(ds)?;
    let mut no_grace = rules.to_vec();
    no_grace.extend(["--grace", "0s"]);
    let o = cli(ds, &no_grace);
    expect(&o, 0, "gc --grace 0s")?;
    if !o.out.contains("No run deleted.") {
        return Err(format!("no run should go the second time:\n{}", o.out));
    }
    exactly_the_referenced_blobs(ds)?;
    if stored_blobs(ds)?.len() >= all.len() {
        return Err("the deleted runs' own blobs should be gone".into());
    }

    // The last one stays (it is also the latest); the promoted run goes without --keep-promoted.
    let o = cli(ds, &["gc", "--keep-last", "1", "--grace", "0s"]);
    expect(&o, 0, "gc --keep-last 1")?;
    if readable_runs(ds)? != ids(&[r6]) {
        return Err(format!("only the newest run should stay:\n{}", o.out));
    }
    exactly_the_referenced_blobs(ds)?;
    let o = cli(
        ds,
        &[
            "dump",
            &format!("{r6}/end"),
            "--artifact",
            "total",
            "--json",
        ],
    );
    if o.out.trim() != "30000" {
        return Err(format!("the kept run reads: {}{}", o.out, o.err));
    }
    Ok(())
}

/// A run whose record says it is running stays whatever the rules; a run an interrupted
/// collection began deleting is hidden from readers, and the next collection finishes it.
pub fn running_runs_stay_and_interrupted_deletions_finish(ds: &str) -> Result<(), String> {
    let r1 = run(ds, "")?;
    let r2 = run(ds, "")?;
    let r3 = run(ds, "")?;
    edit_record(ds, &r2, |r| r["status"] = "running".into())?;
    store(ds)?
        .mark_deleting(FLOW, &r1)
        .map_err(|e| e.to_string())?;
    let client = blooming_flowers::client::Client::open(ds).map_err(|e| e.to_string())?;
    let flow = client.flow(FLOW);
    let listed: Vec<String> = flow
        .list_runs()
        .map_err(|e| e.to_string())?
        .runs
        .iter()
        .map(|r| r.id().to_string())
        .collect();
    if listed != [r3.clone(), r2.clone()] {
        return Err(format!(
            "a run being deleted should not be listed: {listed:?}"
        ));
    }
    match flow.run(&r1) {
        Err(e) if e.to_string().contains("is being deleted") => {}
        other => {
            return Err(format!(
                "reading a run being deleted: {:?}",
                other.map(|r| r.id().clone())
            ));
        }
    }
    let o = cli(ds, &["gc", "--keep-last", "0", "--grace", "0s"]);
    expect(&o, 0, "gc --keep-last 0")?;
    // r3 is the latest run: kept; r2 is running: kept.
    if readable_runs(ds)? != ids(&[&r2, &r3]) {
        return Err(format!("r1 should be gone, r2 and r3 kept:\n{}", o.out));
    }
    if !o.out.contains("being deleted") || !o.out.contains("1 running") {
        return Err(format!("the report should say why:\n{}", o.out));
    }
    exactly_the_referenced_blobs(ds)?;
    let status = store(ds)?
        .read_run(FLOW, &r2)
        .map_err(|e| e.to_string())?
        .status;
    if status != RunStatus::Running {
        return Err("the running run's record changed".into());
    }
    Ok(())
}

/// Old runs, whose blobs are old too, collected while 8 runs computing the very same values
/// go on in other processes: those runs rely on the old blobs without writing them. Every run
/// ends whole; the old runs are gone. `aged` makes the datastore's blobs old (or says how long
/// to wait for them to be, where their times cannot be set back); `env` is given to every
/// process (a short `BLOOMING_FRESH_FOR` where blobs age by waiting).
pub fn racing_runs(
    ds: &str,
    age_blobs: &dyn Fn(&str) -> Result<(), String>,
    grace: &str,
    env: &[(&str, &str)],
) -> Result<(), String> {
    let old: Vec<String> = (0..6)
        .map(|_| run(ds, "the same"))
        .collect::<Result<_, _>>()?;
    for id in &old {
        backdate(ds, id)?;
    }
    age_blobs(ds)?;
    let gc_args = ["gc", "--older-than", "1d", "--grace", grace];
    let mut runs: Vec<Child> = (0..8)
        .map(|_| {
            spawn(
                ds,
                &["run", "--label", "the same", "--pause-ms", "300"],
                env,
            )
        })
        .collect::<Result<_, _>>()?;
    let deadline = Instant::now() + Duration::from_secs(300);
    let mut collections = 0;
    let mut finished = vec![None; runs.len()];
    while finished.iter().any(Option::is_none) {
        let collection = spawn(ds, &gc_args, env)?
            .wait_with_output()
            .map_err(|e| e.to_string())?;
        collections += 1;
        if !collection.status.success() {
            return Err(format!(
                "a collection failed: {}",
                String::from_utf8_lossy(&collection.stderr)
            ));
        }
        for (child, done) in runs.iter_mut().zip(finished.iter_mut()) {
            if done.is_none() {
                *done = child.try_wait().map_err(|e| e.to_string())?;
            }
        }
        if Instant::now() > deadline {
            return Err("the runs did not end in 5 minutes".into());
        }
    }
    for (i, status) in finished.iter().enumerate() {
        if !status.is_some_and(|s| s.success()) {
            let mut err = String::new();
            if let Some(mut e) = runs[i].stderr.take() {
                let _ = std::io::Read::read_to_string(&mut e, &mut err);
            }
            return Err(format!("run {i} beside the collections failed: {err}"));
        }
    }
    let o = cli(ds, &gc_args);
    expect(&o, 0, "the last collection")?;
    let left = readable_runs(ds)?;
    if left.len() != 8 || old.iter().any(|id| left.contains(id)) {
        return Err(format!(
            "the 6 old runs should be gone and the 8 new ones stay: {left:?}"
        ));
    }
    verify_runs(ds)?;
    println!("  8 runs beside {collections} collections: every run reads whole");
    Ok(())
}

/// Collections killed (SIGKILL) at random moments: after each, every run listed reads whole;
/// then one more collection finishes the job exactly.
pub fn killed_collections_leave_kept_runs_whole(ds: &str) -> Result<(), String> {
    let runs: Vec<String> = (0..24).map(|_| run(ds, "")).collect::<Result<_, _>>()?;
    let kept: BTreeSet<String> = runs[runs.len() - 3..].iter().cloned().collect();
    let mut seed = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos() as u64)
        .unwrap_or(1)
        | 1;
    println!("  seed {seed}");
    let gc_args = ["gc", "--keep-last", "3", "--grace", "0s"];
    // How long a whole collection takes here, to kill them anywhere from its start to its end.
    let measured = Instant::now();
    let dry = spawn(
        ds,
        &["gc", "--keep-last", "3", "--grace", "0s", "--dry-run"],
        &[],
    )?
    .wait_with_output()
    .map_err(|e| e.to_string())?;
    if !dry.status.success() {
        return Err(format!(
            "the dry run failed: {}",
            String::from_utf8_lossy(&dry.stderr)
        ));
    }
    let span = (measured.elapsed().as_millis() as u64).max(20) * 3 / 2;
    let mut killed = 0;
    let mut left_after = Vec::new();
    for _ in 0..8 {
        // xorshift: a different moment each time, reproducible from the seed printed.
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let delay = Duration::from_millis(seed % span);
        let mut child = spawn(ds, &gc_args, &[])?;
        std::thread::sleep(delay);
        if child.try_wait().map_err(|e| e.to_string())?.is_none() {
            killed += 1;
        }
        let _ = child.kill();
        let _ = child.wait();
        verify_runs(ds)?;
        let left = readable_runs(ds)?;
        if !kept.is_subset(&left) {
            return Err(format!("a kept run went: {left:?}"));
        }
        left_after.push(left.len());
    }
    let o = cli(ds, &gc_args);
    expect(&o, 0, "the collection after the killed ones")?;
    if readable_runs(ds)? != kept {
        return Err(format!(
            "exactly the 3 newest runs should be left:\n{}",
            o.out
        ));
    }
    exactly_the_referenced_blobs(ds)?;
    println!(
        "  {killed} of 8 collections killed within {span} ms of their start (runs left after each: {left_after:?}); the next one finished the job"
    );
    Ok(())
}
