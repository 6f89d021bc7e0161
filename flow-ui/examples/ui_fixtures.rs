//! Datastores for the browser tests (`scripts/browser-tests`), made by running real flows.
//!
//! `ui_fixtures DIR` runs, in the datastore `DIR`: two runs of `Garden` that succeed and one that
//! fails in one of its foreach tasks (with logs), and one run of `Hostile`, whose artifacts and
//! log hold markup a browser must never run; it prints their ids as JSON.
//!
//! `ui_fixtures DIR --hold FILE` runs `Slow`, whose `wait` step creates `FILE.waiting` and then
//! waits until `FILE` is gone (at most two minutes): the run stays `running` until then.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use blooming_flowers::clap;
use blooming_flowers::executor::{RunOptions, run_flow};
use blooming_flowers::prelude::*;
use blooming_flowers::run::{RunStatus, RunStore};
use serde_json::json;

/// The error of the failing `plant` task.
const FAILURE: &str = "the roses wilted: no water in bed 2";
/// What `Hostile` stores: each would run a script if a page inserted it as markup.
const SCRIPT: &str = "<script>window.__pwned = 1</script>";
const ONERROR: &str = "<img src=x onerror=\"window.__pwned=2\">";

#[derive(Clone, Default, Serialize, Deserialize, clap::Args)]
struct Settings {
    /// Make the `roses` bed fail.
    #[arg(long)]
    fail: bool,
}

#[derive(Clone, Default, Serialize, Deserialize)]
struct Garden {
    settings: Settings,
    beds: Vec<String>,
    bed: String,
    blooms: usize,
    total: usize,
}

#[flow(params = settings)]
impl Garden {
    #[step(foreach = beds, next = plant)]
    fn start(&mut self) {
        self.beds = vec!["tulips".into(), "daisies".into(), "roses".into()];
    }

    #[step(next = gather)]
    fn plant(&mut self, bed: String) -> Result<(), String> {
        tracing::info!(bed = %bed, "planting the bed");
        self.blooms = bed.len();
        self.bed = bed;
        if self.settings.fail && self.bed == "roses" {
            tracing::warn!("the soil is dry");
            return Err(FAILURE.to_owned());
        }
        Ok(())
    }

    #[step(join, next = end)]
    fn gather(&mut self, inputs: Inputs<Self>) {
        self.total = inputs.iter().map(|i| i.blooms).sum();
    }

    #[step]
    fn end(&mut self) {}
}

#[derive(Clone, Default, Serialize, Deserialize)]
struct Hostile {
    script: String,
    onerror: String,
}

#[flow]
impl Hostile {
    #[step(next = end)]
    fn start(&mut self) {
        self.script = SCRIPT.to_owned();
        self.onerror = ONERROR.to_owned();
        tracing::info!("{SCRIPT} {ONERROR}");
    }

    #[step]
    fn end(&mut self) {}
}

/// The file `Slow` waits on.
static HOLD: OnceLock<PathBuf> = OnceLock::new();

#[derive(Clone, Default, Serialize, Deserialize)]
struct Slow {
    waited_ms: u64,
}

#[flow]
impl Slow {
    #[step(next = wait)]
    fn start(&mut self) {}

    #[step(next = end)]
    fn wait(&mut self) -> Result<(), String> {
        let hold = HOLD.get().ok_or("no file to wait on")?;
        let begun = Instant::now();
        std::fs::write(waiting_marker(hold), b"").map_err(|e| e.to_string())?;
        tracing::info!(file = %hold.display(), "waiting for the file to go");
        while hold.exists() {
            if begun.elapsed() > Duration::from_secs(120) {
                return Err(format!("{} was never removed", hold.display()));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        self.waited_ms = u64::try_from(begun.elapsed().as_millis()).unwrap_or(u64::MAX);
        Ok(())
    }

    #[step]
    fn end(&mut self) {}
}

/// The file `Slow`'s `wait` step creates once it waits.
fn waiting_marker(hold: &Path) -> PathBuf {
    let mut name = hold.as_os_str().to_owned();
    name.push(".waiting");
    PathBuf::from(name)
}

/// Runs `F` to its end and returns the run's id and how it ended.
fn run<F: Flow>(store: &RunStore, params: serde_json::Value) -> (String, RunStatus) {
    let options = RunOptions {
        max_workers: 2,
        ..RunOptions::default()
    };
    let summary = run_flow::<F>(store, params, &options).expect("run");
    (summary.run_id.to_string(), summary.status)
}

/// Runs `F` and checks that it ended as `expected`.
fn run_as<F: Flow>(store: &RunStore, params: serde_json::Value, expected: RunStatus) -> String {
    let (id, status) = run::<F>(store, params);
    assert_eq!(status, expected, "run {id} of {}", F::GRAPH.name);
    id
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (dir, hold) = match args.as_slice() {
        [dir] => (PathBuf::from(dir), None),
        [dir, flag, hold] if flag == "--hold" => (PathBuf::from(dir), Some(PathBuf::from(hold))),
        _ => {
            eprintln!("usage: ui_fixtures DIR [--hold FILE]");
            std::process::exit(2);
        }
    };
    blooming_flowers::logs::install();
    let store = RunStore::open_local(&dir).expect("datastore");
    if let Some(hold) = hold {
        HOLD.set(hold).expect("once");
        run_as::<Slow>(&store, json!(null), RunStatus::Succeeded);
        return;
    }
    let succeeded = [
        run_as::<Garden>(&store, json!({ "fail": false }), RunStatus::Succeeded),
        run_as::<Garden>(&store, json!({ "fail": false }), RunStatus::Succeeded),
    ];
    let failed = run_as::<Garden>(&store, json!({ "fail": true }), RunStatus::Failed);
    let hostile = run_as::<Hostile>(&store, json!(null), RunStatus::Succeeded);
    let fixtures = json!({
        "garden": { "succeeded": succeeded, "failed": failed },
        "failure": FAILURE,
        "hostile": hostile,
        "script": SCRIPT,
        "onerror": ONERROR,
    });
    println!("{}", serde_json::to_string_pretty(&fixtures).expect("json"));
}
