//! Datastores made by running real flows, shared by the tests of a binary.

#![allow(dead_code)] // each test binary uses part of it

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use blooming_flowers::executor::{RunOptions, run_flow};
use blooming_flowers::prelude::*;
use blooming_flowers::run::RunStore;

/// The text a step stores that a browser must never run.
pub const SCRIPT: &str = "<script>alert(1)</script>";
/// The failure message of `Broken`, with markup in it.
pub const BROKEN: &str = "the model exploded <b>boom</b>";
/// What a file beside the datastore holds: no response may ever contain it.
pub const SECRET: &str = "TOP-SECRET-NEXT-TO-THE-DATASTORE";
/// How many runs of `Tiny` there are, and how many of the oldest are tagged `nightly`.
pub const TINY_RUNS: usize = 52;
pub const NIGHTLY: usize = 3;

#[derive(Clone, Default, Serialize, Deserialize)]
pub struct Shapes {
    pub words: Vec<String>,
    pub word: String,
    pub length: usize,
    pub note: String,
    pub lengths: Vec<usize>,
}

#[flow]
impl Shapes {
    #[step(foreach = words, next = measure)]
    fn start(&mut self) {
        self.words = vec!["flow".into(), "blooming".into(), "rust".into()];
    }
    #[step(next = collect, resources(cpus = 1, memory = "100 MiB"))]
    fn measure(&mut self, word: String) {
        tracing::info!(word = %word, "measuring the word");
        self.length = word.len();
        if word == "blooming" {
            self.note = SCRIPT.to_owned();
        }
        self.word = word;
    }
    #[step(join, next = end)]
    fn collect(&mut self, inputs: Inputs<Self>) {
        self.lengths = inputs.iter().map(|i| i.length).collect();
    }
    #[step]
    fn end(&mut self) {}
}

#[derive(Clone, Default, Serialize, Deserialize)]
pub struct Broken {
    pub x: u32,
}

#[flow]
impl Broken {
    #[step(next = explode)]
    fn start(&mut self) {
        self.x = 1;
    }
    #[step(next = end)]
    fn explode(&mut self) -> Result<(), String> {
        Err(BROKEN.to_owned())
    }
    #[step]
    fn end(&mut self) {}
}

#[derive(Clone, Default, Serialize, Deserialize)]
pub struct Tiny {
    pub n: u32,
}

#[flow]
impl Tiny {
    #[step(next = end)]
    fn start(&mut self) {
        self.n = 7;
    }
    #[step]
    fn end(&mut self) {}
}

#[derive(Clone, Default, Serialize, Deserialize, blooming_flowers::clap::Args)]
pub struct Settings {
    #[arg(long, default_value_t = 0.1)]
    pub lr: f64,
}

/// Runs to compare: the same flow with another learning rate.
#[derive(Clone, Default, Serialize, Deserialize)]
pub struct Trained {
    pub settings: Settings,
    pub epochs: u32,
    pub losses: Vec<f32>,
    pub loss: f64,
}

#[flow(params = settings)]
impl Trained {
    #[step(next = end)]
    fn start(&mut self) {
        self.epochs = 4;
        self.losses = (1..=self.epochs)
            .map(|e| (self.settings.lr / f64::from(e)) as f32)
            .collect();
        self.loss = self.settings.lr / 4.0;
    }
    #[step]
    fn end(&mut self) {}
}

/// A flow whose `start` writes a card: markdown with a script and a `javascript:` link in it, a
/// table with a script in a cell, a PNG and a line chart of a loss per epoch.
#[derive(Clone, Default, Serialize, Deserialize)]
pub struct Reported {
    pub losses: Vec<f32>,
}

/// The heading of `Reported`'s card.
pub const CARD_HEADING: &str = "Training report";
/// The name of the series of `Reported`'s chart.
pub const CARD_SERIES: &str = "lr=0.05";

#[flow]
impl Reported {
    #[step(next = end)]
    fn start(&mut self) {
        use blooming_flowers::card::{Cell, Chart, Image, Table};
        self.losses = vec![0.9, 0.55, 0.31, 0.2, 0.14];
        blooming_flowers::card()
            .markdown(format!(
                "# {CARD_HEADING}\n\nFive epochs. {SCRIPT} [bad](javascript:alert(2)) [good](https://example.org/)"
            ))
            .table(
                Table::new(["epoch", "loss", "note"])
                    .row([Cell::from(0), 0.9.into(), SCRIPT.into()])
                    .row([Cell::from(4), 0.14.into(), "done".into()]),
            )
            .image(Image::from_rgb(4, 4, &[200; 48]).caption("a grey square"))
            .chart(
                Chart::line("loss per epoch")
                    .x_label("epoch")
                    .y_label("loss")
                    .series(CARD_SERIES, self.losses.clone()),
            );
    }
    #[step]
    fn end(&mut self) {}
}

/// The learning rates of the two runs of `Trained`, oldest first.
pub const LEARNING_RATES: [f64; 2] = [0.5, 0.25];

/// The shared datastore and what was run in it.
pub struct Fixture {
    pub root: PathBuf,
    pub datastore: PathBuf,
    pub shapes: String,
    pub broken: String,
    /// The runs of `Trained`, in the order of [`LEARNING_RATES`]; the second is promoted as
    /// `production`.
    pub trained: Vec<String>,
    /// The run of `Reported`.
    pub reported: String,
}

fn run<F: Flow>(store: &RunStore, tags: &[&str]) -> String {
    run_with::<F>(store, tags, serde_json::Value::Null)
}

fn run_with<F: Flow>(store: &RunStore, tags: &[&str], params: serde_json::Value) -> String {
    let options = RunOptions {
        tags: tags.iter().map(|t| (*t).to_owned()).collect(),
        max_workers: 2,
        ..RunOptions::default()
    };
    run_flow::<F>(store, params, &options)
        .expect("run")
        .run_id
        .to_string()
}

/// A datastore with one run of `Shapes`, one failed run of `Broken` and [`TINY_RUNS`] runs of
/// `Tiny`, and a secret file beside it; made once per test binary.
pub fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        blooming_flowers::logs::install();
        // One directory per test binary (`pages::common`, `binary::common`), made anew each run.
        let root = Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("flow-ui-{}", module_path!().replace("::", "-")));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(&root).expect("root");
        std::fs::write(root.join("outside.txt"), SECRET).expect("secret");
        let datastore = root.join("datastore");
        let store = RunStore::open_local(&datastore).expect("store");
        let shapes = run::<Shapes>(&store, &["demo"]);
        let broken = run::<Broken>(&store, &[]);
        for i in 0..TINY_RUNS {
            let tags: &[&str] = if i < NIGHTLY { &["nightly"] } else { &[] };
            run::<Tiny>(&store, tags);
        }
        let trained = LEARNING_RATES
            .iter()
            .map(|lr| run_with::<Trained>(&store, &[], serde_json::json!({ "lr": lr })))
            .collect::<Vec<String>>();
        store
            .promote("Trained", "production", &trained[1])
            .expect("promote");
        let reported = run::<Reported>(&store, &[]);
        Fixture {
            reported,
            trained,
            root,
            datastore,
            shapes,
            broken,
        }
    })
}
