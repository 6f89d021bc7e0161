//! `merge_artifacts` on fields whose iteration order is not part of their value (`HashMap`,
//! `HashSet`), in threads and in child processes (`--process`, where every task reloads its
//! state from the datastore as on Slurm and Argo).
//!
//! A decoded `HashMap` gets a new random hasher and so iterates in another order: unless such
//! fields are stored in a canonical encoding, the join's own state (decoded from the base) looks
//! changed by the join and a branch's change is silently dropped.
//!
//! This target has `harness = false`: started by the executor with `--datastore`, the binary is
//! the flow's binary for one task; started by `cargo test`, it runs the checks below.

use std::collections::{HashMap, HashSet};
use std::ffi::OsString;
use std::path::Path;
use std::process::ExitCode;

use blooming_flowers::executor::{Mode, RunOptions, run_flow};
use blooming_flowers::prelude::*;
use blooming_flowers::run::{RunStatus, RunStore};

/// Entries of each collection: enough that two random hashers practically never iterate alike.
const ENTRIES: u64 = 64;

#[derive(Clone, Default, Serialize, Deserialize)]
struct Merge {
    /// Changed by branch `a` only.
    counts: HashMap<String, u64>,
    /// Changed by branch `b` only.
    tags: HashSet<String>,
    /// Changed by no step after `start`.
    untouched: HashMap<u64, String>,
    /// Nested: changed by branch `a` only.
    nested: Option<Vec<HashMap<String, HashSet<u64>>>>,
    note: String,
}

fn counts() -> HashMap<String, u64> {
    (0..ENTRIES).map(|i| (format!("k{i}"), 0)).collect()
}

fn tags() -> HashSet<String> {
    (0..ENTRIES).map(|i| format!("t{i}")).collect()
}

fn untouched() -> HashMap<u64, String> {
    (0..ENTRIES).map(|i| (i, format!("v{i}"))).collect()
}

fn nested() -> Vec<HashMap<String, HashSet<u64>>> {
    (0..3)
        .map(|j| {
            (0..ENTRIES)
                .map(|i| (format!("n{i}"), (0..j + 8).collect()))
                .collect()
        })
        .collect()
}

#[flow]
impl Merge {
    #[step(next = prep)]
    fn start(&mut self) {
        self.counts = counts();
        self.tags = tags();
        self.untouched = untouched();
        self.nested = Some(nested());
    }

    /// Leaves every collection alone.
    #[step(next = [a, b])]
    fn prep(&mut self) {
        self.note = "prep".into();
    }

    #[step(next = join)]
    fn a(&mut self) {
        self.counts.insert("k0".into(), 1000);
        if let Some(first) = self.nested.as_mut().and_then(|n| n.first_mut()) {
            first.entry("n0".into()).or_default().insert(999);
        }
    }

    #[step(next = join)]
    fn b(&mut self) {
        self.tags.insert("from-b".into());
    }

    #[step(join, next = end)]
    fn join(&mut self, inputs: Inputs<Self>) -> Result<(), String> {
        inputs.merge_artifacts(self).map_err(|e| e.to_string())
    }

    #[step]
    fn end(&mut self) {}
}

/// A map under a name the encoder does not take for a hash collection: its encoding follows its
/// hasher's order, and only the merge's comparison of maps regardless of order sees that two of
/// them are equal.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
struct Bag(HashMap<String, u64>);

impl Serialize for Bag {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(self.0.iter())
    }
}

/// A new [`Bag`] of [`ENTRIES`] entries: each `HashMap::new()` has a hasher of its own.
fn bag() -> Bag {
    Bag((0..ENTRIES).map(|i| (format!("b{i}"), i)).collect())
}

#[derive(Clone, Default, Serialize, Deserialize)]
struct Custom {
    bag: Bag,
    other: u64,
}

#[flow]
impl Custom {
    #[step(next = end)]
    fn start(&mut self) {}

    #[step]
    fn end(&mut self) {}
}

fn custom(bag: Bag) -> Custom {
    Custom { bag, other: 1 }
}

/// Branch `a` changed the bag; branch `b` and the join's own state hold equal bags that iterate
/// in other orders (as they would after being decoded).
fn a_map_type_the_encoder_does_not_know_is_merged_regardless_of_order() -> Result<(), String> {
    let mut changed = bag();
    changed.0.insert("b0".into(), 1000);
    let inputs = Inputs::from_states(
        custom(bag()),
        vec![
            ("a".into(), custom(changed.clone())),
            ("b".into(), custom(bag())),
        ],
    );
    let mut target = custom(bag());
    inputs
        .merge_artifacts(&mut target)
        .map_err(|e| e.to_string())?;
    if target.bag != changed {
        return Err(format!(
            "b0 = {:?} after the merge, branch `a` set 1000",
            target.bag.0.get("b0")
        ));
    }
    Ok(())
}

/// Neither branch changed the bag, but each iterates in its own order.
fn a_map_type_the_encoder_does_not_know_left_alone_is_no_conflict() -> Result<(), String> {
    let base = custom(bag());
    let inputs = Inputs::from_states(
        base.clone(),
        vec![("a".into(), custom(bag())), ("b".into(), custom(bag()))],
    );
    let mut target = base;
    inputs
        .merge_artifacts(&mut target)
        .map_err(|e| e.to_string())?;
    if target.bag != bag() {
        return Err("the bag changed".into());
    }
    // Two branches that did change it differently are still a conflict.
    let (mut one, mut two) = (bag(), bag());
    one.0.insert("b1".into(), 100);
    two.0.insert("b1".into(), 200);
    let inputs = Inputs::from_states(
        custom(bag()),
        vec![("a".into(), custom(one)), ("b".into(), custom(two))],
    );
    match inputs.merge_artifacts(&mut custom(bag())) {
        Err(MergeError::Conflict(c)) if c.fields.len() == 1 && c.fields[0].0 == "bag" => Ok(()),
        other => Err(format!("expected a conflict on `bag`, got {other:?}")),
    }
}

/// The end state and the store of one run of [`Merge`].
struct Ran {
    store: RunStore,
    run_id: String,
}

impl Ran {
    fn key(&self, step: &str) -> Result<blooming_flowers::datastore::Key, String> {
        RunStore::task_key("Merge", &self.run_id, step, "0").map_err(|e| e.to_string())
    }

    fn end(&self) -> Result<Merge, String> {
        let index = self
            .store
            .read_index(&self.key("end")?)
            .map_err(|e| e.to_string())?
            .ok_or("no end task")?;
        self.store
            .blobs()
            .load_state::<blooming_flowers::StateOwned<Merge>>(&index.artifacts)
            .map(|s| s.0)
            .map_err(|e| e.to_string())
    }

    /// The blob hash of artifact `field` in task `step/0`.
    fn hash(&self, step: &str, field: &str) -> Result<String, String> {
        let index = self
            .store
            .read_index(&self.key(step)?)
            .map_err(|e| e.to_string())?
            .ok_or_else(|| format!("no task {step}/0"))?;
        index
            .artifact(field)
            .map(|a| a.hash.to_string())
            .ok_or_else(|| format!("no artifact `{field}` in {step}/0"))
    }
}

fn run(dir: &Path, mode: Mode) -> Result<Ran, String> {
    let store = RunStore::open_local(dir).map_err(|e| e.to_string())?;
    let options = RunOptions {
        max_workers: 2,
        mode,
        ..RunOptions::default()
    };
    let summary =
        run_flow::<Merge>(&store, serde_json::Value::Null, &options).map_err(|e| e.to_string())?;
    if summary.status != RunStatus::Succeeded {
        return Err(format!("the run failed: {:?}", summary.failure));
    }
    Ok(Ran {
        store,
        run_id: summary.run_id.into(),
    })
}

fn a_hashmap_changed_by_one_branch_is_merged(ran: &Ran) -> Result<(), String> {
    let end = ran.end()?;
    let mut expected = counts();
    expected.insert("k0".into(), 1000);
    if end.counts != expected {
        return Err(format!(
            "`counts` after the join: k0 = {:?}, expected 1000 (set by branch `a`)",
            end.counts.get("k0")
        ));
    }
    let mut nested = nested();
    nested[0].entry("n0".into()).or_default().insert(999);
    if end.nested != Some(nested) {
        return Err("`nested` lost branch `a`'s change".into());
    }
    Ok(())
}

fn a_hashset_changed_by_one_branch_is_merged(ran: &Ran) -> Result<(), String> {
    let end = ran.end()?;
    let mut expected = tags();
    expected.insert("from-b".into());
    if end.tags != expected {
        return Err(format!(
            "`tags` after the join: contains \"from-b\" = {}, {} entries, expected {}",
            end.tags.contains("from-b"),
            end.tags.len(),
            expected.len()
        ));
    }
    Ok(())
}

fn a_hashmap_no_branch_changed_merges_without_conflict(ran: &Ran) -> Result<(), String> {
    let end = ran.end()?;
    if end.untouched != untouched() {
        return Err("`untouched` changed".into());
    }
    Ok(())
}

/// Every task after `start` left `untouched` alone: its blob is the one `start` stored.
fn a_hashmap_field_left_alone_stores_no_new_blob(ran: &Ran) -> Result<(), String> {
    let first = ran.hash("start", "untouched")?;
    for step in ["prep", "a", "b", "join", "end"] {
        let hash = ran.hash(step, "untouched")?;
        if hash != first {
            return Err(format!(
                "task {step}/0 stored `untouched` again as blob {hash}, start stored {first}"
            ));
        }
    }
    Ok(())
}

/// One check of `main`'s list, on a run.
type Check = fn(&Ran) -> Result<(), String>;

/// One check of `main`'s list, of `merge_artifacts` alone.
type MergeCheck = fn() -> Result<(), String>;

const CHECKS: [(&str, Check); 4] = [
    (
        "a_hashmap_changed_by_one_branch_is_merged",
        a_hashmap_changed_by_one_branch_is_merged,
    ),
    (
        "a_hashset_changed_by_one_branch_is_merged",
        a_hashset_changed_by_one_branch_is_merged,
    ),
    (
        "a_hashmap_no_branch_changed_merges_without_conflict",
        a_hashmap_no_branch_changed_merges_without_conflict,
    ),
    (
        "a_hashmap_field_left_alone_stores_no_new_blob",
        a_hashmap_field_left_alone_stores_no_new_blob,
    ),
];

fn main() -> ExitCode {
    let args: Vec<OsString> = std::env::args_os().collect();
    if args.get(1).is_some_and(|a| a == "--datastore") {
        // Started by the executor for one task.
        return blooming_flowers::main::<Merge>();
    }
    let dir = match tempfile::tempdir() {
        Ok(d) => d,
        Err(e) => {
            eprintln!("cannot make a temporary directory: {e}");
            return ExitCode::FAILURE;
        }
    };
    let exe = match std::env::current_exe() {
        Ok(exe) => exe,
        Err(e) => {
            eprintln!("cannot find this test's binary: {e}");
            return ExitCode::FAILURE;
        }
    };
    let threads = dir.path().join("threads");
    let processes = dir.path().join("processes");
    let modes = [
        ("threads", run(&threads, Mode::InProcess)),
        (
            "processes",
            run(
                &processes,
                Mode::Process {
                    exe,
                    args: vec!["--datastore".into(), processes.display().to_string()],
                },
            ),
        ),
    ];
    let (mut passed, mut failed) = (0, 0);
    let merges: [(&str, MergeCheck); 2] = [
        (
            "a_map_type_the_encoder_does_not_know_is_merged_regardless_of_order",
            a_map_type_the_encoder_does_not_know_is_merged_regardless_of_order,
        ),
        (
            "a_map_type_the_encoder_does_not_know_left_alone_is_no_conflict",
            a_map_type_the_encoder_does_not_know_left_alone_is_no_conflict,
        ),
    ];
    for (name, check) in merges {
        match check() {
            Ok(()) => {
                passed += 1;
                println!("test {name} ... ok");
            }
            Err(e) => {
                failed += 1;
                println!("test {name} ... FAILED\n{e}");
            }
        }
    }
    for (mode, ran) in &modes {
        for (name, check) in CHECKS {
            let result = ran.as_ref().map_err(Clone::clone).and_then(check);
            match result {
                Ok(()) => {
                    passed += 1;
                    println!("test {name}_in_{mode} ... ok");
                }
                Err(e) => {
                    failed += 1;
                    println!("test {name}_in_{mode} ... FAILED\n{e}");
                }
            }
        }
    }
    println!("{passed} passed, {failed} failed");
    if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
