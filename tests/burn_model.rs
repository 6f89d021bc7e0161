//! A burn model trained by one process is reloaded by another, bit for bit.
//!
//! The training flow (`examples/train_burn.rs`) runs as a separate process on a temporary
//! datastore; this process then loads the best model through the client API and checks it
//! against what the run recorded about it from the inside: the weights' checksum and the forward
//! outputs on a probe input.

#![cfg(feature = "burn")]

use std::path::Path;
use std::time::Instant;

use blooming_flowers::burn::module::Module;
use blooming_flowers::burn::tensor::Device;
use blooming_flowers::burn_model::{Model, OptimizerState};
use blooming_flowers::client::Client;
use blooming_flowers::prelude::*;

mod support {
    pub mod example;
}

/// The example's code, for its types (`Mlp`, `TrainBurn`); its `main` is not used here.
#[allow(dead_code)]
#[path = "../examples/train_burn.rs"]
mod train_burn;

use blooming_flowers::card::{Cell, Chart, Component};
use train_burn::{Mlp, PROBE, TrainBurn};

/// Runs `train_burn run --datastore DIR` as a child process (see [`support::example`]).
fn run_training(datastore: &Path) {
    run_training_with(datastore.as_os_str(), &[], &[]);
}

/// Runs `train_burn --datastore DATASTORE run [run_args…]` built with the extra cargo
/// `features` (beside `burn`), as [`run_training`] does.
fn run_training_with(datastore: &std::ffi::OsStr, features: &[&str], run_args: &[&str]) {
    let features: Vec<&str> = std::iter::once("burn")
        .chain(features.iter().copied())
        .collect();
    let mut cargo = support::example::cargo_example("train_burn", &features);
    cargo
        .arg("--datastore")
        .arg(datastore)
        .arg("run")
        .args(run_args);
    let started = Instant::now();
    let output = cargo.output().expect("cargo runs");
    assert!(
        output.status.success(),
        "the training run failed ({}):\n--- stdout\n{}\n--- stderr\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr),
    );
    eprintln!("training run (cargo run included): {:?}", started.elapsed());
}

#[test]
fn the_best_model_reloads_bit_for_bit_in_another_process() {
    let dir = tempfile::tempdir().expect("temporary datastore");
    run_training(dir.path());

    let client = Client::open(dir.path()).expect("the run created the datastore");
    let run = client
        .flow("TrainBurn")
        .latest_successful_run()
        .expect("a successful run");
    let best: Model<Mlp> = run.artifact("best").expect("the best model loads");

    // The weights: the checksum over every tensor's raw values, recomputed here from the loaded
    // tensors, equals the one the run computed from its own.
    let recorded: String = run.artifact("weights_checksum").expect("checksum");
    assert_eq!(best.weights_checksum().expect("set"), recorded);

    // The forward pass on the same backend gives the same bits.
    let probe: Vec<f32> = run.artifact("probe").expect("probe");
    assert_eq!(probe, PROBE);
    let expected: Vec<f32> = run.artifact("probe_outputs").expect("outputs");
    let device = Device::flex();
    assert_eq!(
        best.module().expect("set").devices(),
        std::slice::from_ref(&device),
        "loaded on the default device, flex"
    );
    let outputs = best.module().expect("set").predict(&probe, &device);
    assert_eq!(
        bits(&outputs),
        bits(&expected),
        "{outputs:?} vs {expected:?}"
    );

    // It is the model of the task with the lowest loss, and storing it again gives the very blob
    // that task stored.
    let losses: Vec<f32> = run.artifact("losses").expect("losses");
    let best_index = losses
        .iter()
        .enumerate()
        .min_by(|a, b| a.1.total_cmp(b.1))
        .map(|(i, _)| i)
        .expect("losses");
    let task = run
        .step("train")
        .expect("train")
        .task(&best_index.to_string())
        .expect("the best task");
    let trained: Model<Mlp> = task.artifact("model").expect("its model");
    assert_eq!(trained.weights_checksum().expect("set"), recorded);
    let hash_of = |task: &blooming_flowers::client::TaskHandle, name: &str| {
        task.artifacts()
            .expect("artifacts")
            .iter()
            .find(|a| a.name == name)
            .map(|a| a.hash)
            .expect("artifact")
    };
    let end = run.end_task().expect("end");
    assert_eq!(
        hash_of(&end, "best"),
        hash_of(&task, "model"),
        "stored once"
    );

    // The optimizer state of that task loads too, ready to continue training.
    let optimizer: OptimizerState = task.artifact("optimizer").expect("optimizer state");
    assert!(optimizer.is_set());

    // And the whole state reads back as the flow type.
    let state: TrainBurn = run.state().expect("state");
    assert_eq!(state.best.weights_checksum().expect("set"), recorded);

    // Each training task's card draws its loss per epoch, the same numbers as its artifact.
    for (i, lr) in state.learning_rates.iter().enumerate() {
        let task = run.step("train").and_then(|s| s.task(&i.to_string()));
        let task = task.expect("a train task");
        let curve: Vec<f32> = task.artifact("loss_curve").expect("loss_curve");
        assert_eq!(curve.len(), train_burn::EPOCHS);
        let card = task.card().expect("readable").expect("a card");
        let charts: Vec<&Chart> = card
            .components
            .iter()
            .filter_map(|c| match c {
                Component::Chart(chart) => Some(chart),
                _ => None,
            })
            .collect();
        assert_eq!(charts.len(), 1, "{card:?}");
        let series = &charts[0].series[0];
        assert_eq!(series.name, format!("lr={lr}"));
        assert_eq!(series.y.len(), train_burn::EPOCHS);
        assert_eq!(
            series.x.last().copied(),
            Some((train_burn::EPOCHS - 1) as f64)
        );
        let expected: Vec<f64> = curve.iter().map(|&l| f64::from(l)).collect();
        assert_eq!(series.y, expected);
        assert!(
            series.y[0] > series.y[train_burn::EPOCHS - 1],
            "the loss fell"
        );
    }
    // `pick`'s card: a heading, a table of every learning rate with one picked, every curve.
    let pick = run.step("pick").and_then(|s| s.task("0")).expect("pick");
    let card = pick.card().expect("readable").expect("a card");
    let table = card
        .components
        .iter()
        .find_map(|c| match c {
            Component::Table(table) => Some(table),
            _ => None,
        })
        .expect("a table");
    assert_eq!(table.rows.len(), state.learning_rates.len());
    let picked: Vec<_> = table
        .rows
        .iter()
        .filter(|row| row.get(2) == Some(&Cell::Bool(true)))
        .collect();
    assert_eq!(picked.len(), 1);
    assert_eq!(picked[0][0], Cell::Float(state.best_learning_rate));
    assert!(
        matches!(&card.components[0], Component::Markdown(m) if m.starts_with("# Learning rates tried")),
        "{:?}",
        card.components[0]
    );
    let all_curves = card.components.iter().any(|c| {
        matches!(c, Component::Chart(chart) if chart.series.len() == state.learning_rates.len()
            && chart.series.iter().all(|s| s.y.len() == train_burn::EPOCHS))
    });
    assert!(all_curves, "{card:?}");
}

/// The training flow on S3-compatible storage, in-process and on Slurm: the same models, bit
/// for bit, as on a local datastore, and the client loads them from the bucket. Needs the
/// servers `scripts/services` starts: run it as
/// `scripts/services exec -- cargo test --features burn,s3 --test burn_model`.
#[cfg(feature = "s3")]
#[test]
fn training_on_s3_and_on_slurm_gives_the_local_models_bit_for_bit() {
    let base = std::env::var("BLOOMING_TEST_S3").unwrap_or_default();
    assert!(
        !base.is_empty() && std::env::var_os("BLOOMING_SLURM").is_some(),
        "this test needs the S3 server and Slurm: run it under `scripts/services exec --`"
    );
    let unique = format!(
        "{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default()
    );
    let dir = tempfile::tempdir().expect("temporary datastore");
    let local = dir.path().join("local");
    let on_s3 = format!("{}/burn/{unique}/in-process", base.trim_end_matches('/'));
    let on_slurm = format!("{}/burn/{unique}/slurm", base.trim_end_matches('/'));
    run_training_with(local.as_os_str(), &["s3"], &[]);
    run_training_with(on_s3.as_ref(), &["s3"], &[]);
    run_training_with(
        on_slurm.as_ref(),
        &["s3"],
        &[
            "--slurm",
            "--slurm-log-dir",
            &dir.path().join("slurm-logs").to_string_lossy(),
        ],
    );

    // Every artifact of every task, as (step, task, name, hash): equal hashes, equal bytes.
    let artifacts = |location: &std::ffi::OsStr| {
        let client = Client::open(location).expect("the datastore opens");
        let run = client
            .flow("TrainBurn")
            .latest_successful_run()
            .expect("a successful run");
        let mut all = Vec::new();
        for step in run.steps().expect("steps") {
            for task in step.tasks().expect("tasks") {
                for a in task.artifacts().expect("artifacts") {
                    all.push((
                        step.name().to_owned(),
                        task.id().to_owned(),
                        a.name.clone(),
                        a.hash.to_string(),
                    ));
                }
            }
        }
        all.sort();
        (run, all)
    };
    let (_, expected) = artifacts(local.as_os_str());
    assert!(
        expected
            .iter()
            .any(|(step, _, name, _)| step == "end" && name == "best")
    );
    for location in [&on_s3, &on_slurm] {
        let (run, found) = artifacts(location.as_ref());
        assert_eq!(found, expected, "{location} differs from the local run");
        // The model itself, loaded from the bucket, computes the recorded outputs bit for bit.
        let best: Model<Mlp> = run.artifact("best").expect("the best model loads from S3");
        let recorded: String = run.artifact("weights_checksum").expect("checksum");
        assert_eq!(best.weights_checksum().expect("set"), recorded);
        let expected_outputs: Vec<f32> = run.artifact("probe_outputs").expect("outputs");
        let outputs = best.module().expect("set").predict(&PROBE, &Device::flex());
        assert_eq!(bits(&outputs), bits(&expected_outputs));
    }
}

fn bits(values: &[f32]) -> Vec<u32> {
    values.iter().map(|v| v.to_bits()).collect()
}

/// A model field as a build on another burn version would have stored it.
#[derive(Clone, Default, Serialize, Deserialize)]
struct Foreign {
    burn_version: String,
    format: String,
    module: String,
    config: String,
    record: Vec<u8>,
}

/// A flow whose `best` field holds such a foreign record.
#[derive(Clone, Default, Serialize, Deserialize)]
struct OldTraining {
    best: Foreign,
}

#[flow]
impl OldTraining {
    #[step(next = end)]
    fn start(&mut self) {
        self.best = Foreign {
            burn_version: "0.21.0".into(),
            format: "burnpack".into(),
            module: "train_burn::Mlp".into(),
            config: "{\"hidden\":16}".into(),
            record: b"BURN".to_vec(),
        };
    }

    #[step]
    fn end(&mut self) {}
}

#[test]
fn a_model_from_another_burn_version_is_refused_by_the_client_with_a_clear_error() {
    use blooming_flowers::executor::{RunOptions, run_flow};
    use blooming_flowers::run::RunStore;

    let dir = tempfile::tempdir().expect("temporary datastore");
    let store = RunStore::open_local(dir.path()).expect("store");
    run_flow::<OldTraining>(&store, serde_json::Value::Null, &RunOptions::default()).expect("run");
    let run = Client::open(dir.path())
        .expect("client")
        .flow("OldTraining")
        .latest_successful_run()
        .expect("run");
    let error = run
        .artifact::<Model<Mlp>>("best")
        .expect_err("another burn version");
    let message = error.to_string();
    eprintln!("{message}");
    for part in [
        "artifact `best`",
        "Model<",
        "Mlp>",
        "was stored by burn 0.21.0",
        "this build uses burn 0.22.1",
    ] {
        assert!(
            message.contains(part),
            "`{part}` is missing from: {message}"
        );
    }
}
