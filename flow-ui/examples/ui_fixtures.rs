//! Datastores for the browser tests (`scripts/browser-tests`), made by running real flows.
//!
//! `ui_fixtures DIR` runs, in the datastore `DIR`: two runs of `Garden` that succeed and one that
//! fails in one of its foreach tasks (with logs), one run of `Hostile`, whose artifacts and
//! log hold markup a browser must never run, and one run of `Trainer`, whose `train` task writes
//! a card (markdown, a chart, a table, a PNG), and two runs of `Tuned` with other learning rates,
//! to compare; it prints their ids as JSON.
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

/// The learning rates `Trainer` tries, and the heading of its card.
const LEARNING_RATES: [f64; 3] = [0.3, 0.1, 0.03];
const CARD_HEADING: &str = "Training report";

/// A model trained with three learning rates: its `train` step writes a card with a heading, a
/// paragraph with markup a browser must never run, a table of the learning rates, a picture and
/// the loss per epoch of each as a line chart.
#[derive(Clone, Default, Serialize, Deserialize)]
struct Trainer {
    final_losses: Vec<f64>,
}

#[flow]
impl Trainer {
    #[step(next = train)]
    fn start(&mut self) {}

    #[step(next = end)]
    fn train(&mut self) {
        use blooming_flowers::card::{Cell, Chart, Image, Table};
        let epochs = 30;
        let curve = |lr: f64| -> Vec<f64> {
            (0..epochs)
                .map(|e| {
                    let e = f64::from(e);
                    let floor = 0.08 + (lr - 0.1).abs() * 1.5;
                    floor + 2.2 * (-lr * 0.9 * e).exp() + 0.02 * (e * 1.7).sin() * (-0.05 * e).exp()
                })
                .collect()
        };
        let curves: Vec<Vec<f64>> = LEARNING_RATES.iter().map(|&lr| curve(lr)).collect();
        self.final_losses = curves.iter().filter_map(|c| c.last().copied()).collect();
        let best = self
            .final_losses
            .iter()
            .enumerate()
            .min_by(|a, b| a.1.total_cmp(b.1))
            .map_or(0, |(i, _)| i);
        let mut table = Table::new(["learning rate", "final loss", "picked"]);
        for (i, lr) in LEARNING_RATES.iter().enumerate() {
            table = table.row([
                Cell::from(*lr),
                Cell::from((self.final_losses[i] * 1000.0).round() / 1000.0),
                Cell::from(i == best),
            ]);
        }
        let chart = LEARNING_RATES.iter().zip(&curves).fold(
            Chart::line("training loss per epoch")
                .x_label("epoch")
                .y_label("loss"),
            |chart, (lr, curve)| chart.series(format!("lr={lr}"), curve.iter().copied()),
        );
        // A 160×64 picture: a gradient from blue to orange, as a confusion matrix might be drawn.
        let (w, h) = (160_u32, 64_u32);
        let mut rgb = Vec::with_capacity((w * h * 3) as usize);
        for y in 0..h {
            for x in 0..w {
                let t = f64::from(x) / f64::from(w - 1);
                let shade = 1.0 - 0.35 * f64::from(y) / f64::from(h - 1);
                rgb.push(((47.0 + t * (217.0 - 47.0)) * shade) as u8);
                rgb.push(((111.0 + t * (130.0 - 111.0)) * shade) as u8);
                rgb.push(((223.0 + t * (43.0 - 223.0)) * shade) as u8);
            }
        }
        blooming_flowers::card()
            .markdown(format!(
                "# {CARD_HEADING}\n\n{epochs} epochs of SGD with {} learning rates; \
                 **lr={}** reached the lowest loss. Stored markup stays text: {SCRIPT}",
                LEARNING_RATES.len(),
                LEARNING_RATES[best]
            ))
            .chart(chart)
            .table(table)
            .image(Image::from_rgb(w, h, &rgb).caption("a picture the step drew"));
    }

    #[step]
    fn end(&mut self) {}
}

/// The file `Slow` waits on.
#[derive(Clone, Default, Serialize, Deserialize, clap::Args)]
struct Tuning {
    /// The learning rate.
    #[arg(long, default_value_t = 0.1)]
    lr: f64,
}

/// Runs to compare: the same flow with two learning rates.
#[derive(Clone, Default, Serialize, Deserialize)]
struct Tuned {
    tuning: Tuning,
    epochs: u32,
    loss_curve: Vec<f64>,
    loss: f64,
}

#[flow(params = tuning)]
impl Tuned {
    #[step(next = end)]
    fn start(&mut self) {
        self.epochs = 20;
        let lr = self.tuning.lr;
        self.loss_curve = (0..self.epochs)
            .map(|e| 0.1 + (lr - 0.1).abs() + 2.0 * (-lr * 0.8 * f64::from(e)).exp())
            .collect();
        self.loss = self.loss_curve.last().copied().unwrap_or_default();
    }

    #[step]
    fn end(&mut self) {}
}

/// The learning rates of the two runs of `Tuned`.
const TUNED_RATES: [f64; 2] = [0.3, 0.05];

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
    let trainer = run_as::<Trainer>(&store, json!(null), RunStatus::Succeeded);
    let tuned: Vec<String> = TUNED_RATES
        .iter()
        .map(|lr| run_as::<Tuned>(&store, json!({ "lr": lr }), RunStatus::Succeeded))
        .collect();
    let fixtures = json!({
        "tuned": { "runs": tuned, "rates": TUNED_RATES },
        "trainer": trainer,
        "card": {
            "heading": CARD_HEADING,
            "series": LEARNING_RATES.iter().map(|lr| format!("lr={lr}")).collect::<Vec<_>>(),
        },
        "garden": { "succeeded": succeeded, "failed": failed },
        "failure": FAILURE,
        "hostile": hostile,
        "script": SCRIPT,
        "onerror": ONERROR,
    });
    println!("{}", serde_json::to_string_pretty(&fixtures).expect("json"));
}
