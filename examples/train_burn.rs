//! Trains a small burn model and keeps the best of a few learning rates.
//!
//! `start` generates a synthetic regression data set (seeded, so every run sees the same one) and
//! the initial weights of a two-layer MLP; `train` runs once per learning rate, in parallel, each
//! from the same initial weights; `pick` keeps the model with the lowest loss; `end` records, from
//! inside the run, what a later process needs to check that it got the very same model back: the
//! forward outputs on a fixed probe input and a checksum of the weights.
//!
//! ```text
//! cargo run --features burn --example train_burn -- run --datastore /tmp/flows
//! ```
//!
//! Each `train` task's card draws its loss per epoch; `pick`'s card has the curves of every
//! learning rate together and a table of their final losses, marking the one picked
//! (`blooming card TrainBurn/latest/pick --output report.html`, or the task's page in
//! `blooming ui`).
//!
//! Every field is stored after every step. The initial model is the same in every task, and the
//! best model is one of the trained ones, so both are stored once however many tasks hold them.
//!
//! Each `train` task checkpoints its [`TrainingProgress`] (the epochs done, the model, Adam's
//! state, the loss curve so far) after every epoch, or every `--checkpoint-every N` epochs. When
//! it runs again (a retry, or `resume` after the process was killed) it continues from its last
//! checkpoint, logs `continuing from the checkpoint of epoch K`, and ends with the very model and
//! optimizer state, bit for bit, of a run never interrupted: training draws no random numbers, and
//! the model and Adam's state (its moments and step count) reload exactly.
//! `tests/burn_checkpoint_kill.rs` SIGKILLs a run in the middle and checks that.

use blooming_flowers::burn;
use blooming_flowers::burn_model::{Model, ModelError, OptimizerState};
use blooming_flowers::card::{Cell, Chart, Table};
use blooming_flowers::clap;
use blooming_flowers::current::current;
use blooming_flowers::prelude::*;
use burn::module::Module;
use burn::optim::{AdamConfig, GradientsParams};
use burn::tensor::{Device, Tensor};

#[path = "shared/mlp.rs"]
mod mlp;
use mlp::column;
pub use mlp::{Mlp, MlpConfig};

/// How many points the data set has.
const SAMPLES: usize = 64;
/// How many full-batch Adam steps each learning rate gets, unless `--epochs` says otherwise.
pub const EPOCHS: usize = 300;

/// The run's parameters: `train_burn run --epochs 60 --checkpoint-every 10`.
///
/// A field missing from a stored run (one recorded before the field existed) takes its default.
#[derive(Clone, Debug, Serialize, Deserialize, clap::Args)]
#[serde(default)]
pub struct Settings {
    /// How many full-batch Adam steps each learning rate gets.
    #[arg(long, default_value_t = EPOCHS as u32, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub epochs: u32,
    /// Every how many epochs a `train` task checkpoints its progress (and after its last epoch).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub checkpoint_every: u32,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            epochs: EPOCHS as u32,
            checkpoint_every: 1,
        }
    }
}

/// What a `train` task checkpoints: everything it needs to continue exactly where it was.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct TrainingProgress {
    /// How many epochs are done.
    pub epoch: u32,
    /// The model after those epochs.
    pub model: Model<Mlp>,
    /// Adam's state after those epochs.
    pub optimizer: OptimizerState,
    /// The training loss at each of those epochs.
    pub loss_curve: Vec<f32>,
}

/// Why a `train` task cannot go on.
type TrainError = Box<dyn std::error::Error + Send + Sync>;

/// The inputs on which `end` records the best model's outputs.
pub const PROBE: [f32; 5] = [-1.5, -0.5, 0.0, 0.75, 1.9];

/// The flow's state: every field is an artifact of every step.
#[derive(Clone, Default, Serialize, Deserialize)]
pub struct TrainBurn {
    /// The run's parameters.
    pub settings: Settings,
    /// Inputs of the data set.
    pub xs: Vec<f32>,
    /// Targets of the data set: `sin(2x) + x/2`, plus a little noise.
    pub ys: Vec<f32>,
    /// The untrained model every learning rate starts from.
    pub initial: Model<Mlp>,
    /// The learning rates to try, one `train` task each.
    pub learning_rates: Vec<f64>,
    /// In a `train` task: its learning rate.
    pub learning_rate: f64,
    /// In a `train` task: the trained model.
    pub model: Model<Mlp>,
    /// In a `train` task: Adam's state after training, to continue training later.
    pub optimizer: OptimizerState,
    /// In a `train` task: the final mean squared error on the data set.
    pub loss: f32,
    /// In a `train` task: the training loss at each epoch (before that epoch's step).
    pub loss_curve: Vec<f32>,
    /// Every learning rate's final loss, in the order of `learning_rates`.
    pub losses: Vec<f32>,
    /// The model with the lowest loss.
    pub best: Model<Mlp>,
    /// The learning rate that trained `best`.
    pub best_learning_rate: f64,
    /// `best`'s loss.
    pub best_loss: f32,
    /// The probe inputs ([`PROBE`]).
    pub probe: Vec<f32>,
    /// `best`'s outputs on `probe`, computed in the run.
    pub probe_outputs: Vec<f32>,
    /// `best`'s weights checksum, computed in the run.
    pub weights_checksum: String,
}

#[flow(params = settings)]
impl TrainBurn {
    /// Generates the data set and the initial model, then tries every learning rate.
    #[step(foreach = learning_rates, next = train)]
    fn start(&mut self) {
        let mut rng = SplitMix64(42);
        self.xs = (0..SAMPLES)
            .map(|i| -2.0 + 4.0 * i as f32 / (SAMPLES - 1) as f32)
            .collect();
        self.ys = self
            .xs
            .iter()
            .map(|&x| (2.0 * x).sin() + 0.5 * x + 0.05 * rng.unit())
            .collect();
        self.initial = Model::init_seeded(MlpConfig::new(), &Device::flex(), 7);
        self.learning_rates = vec![1e-3, 1e-2, 5e-2];
    }

    /// Trains a copy of the initial model with one learning rate, or continues the task's last
    /// checkpoint.
    #[step(next = pick)]
    fn train(&mut self, learning_rate: f64) -> Result<(), TrainError> {
        let autodiff = Device::flex().autodiff();
        let (x, y) = self.data(&autodiff);
        let config = self.initial.config()?.clone();
        let epochs = self.settings.epochs;
        // `max(1)`: a stored setting is not checked by clap's range, and 0 would divide by zero.
        let checkpoint_every = self.settings.checkpoint_every.max(1);
        let task = current();
        let checkpoint = match &task {
            Some(task) => task.last_checkpoint::<TrainingProgress>()?,
            None => None,
        };
        let (mut epoch, mut net, mut optimizer) = match checkpoint {
            Some(progress) => {
                if progress.epoch > epochs || progress.loss_curve.len() != progress.epoch as usize {
                    return Err(format!(
                        "the checkpoint of epoch {} (with {} losses) does not fit a training of \
                         {epochs} epochs",
                        progress.epoch,
                        progress.loss_curve.len()
                    )
                    .into());
                }
                tracing::info!(
                    learning_rate,
                    "continuing from the checkpoint of epoch {}",
                    progress.epoch
                );
                self.loss_curve = progress.loss_curve;
                let net = progress.model.into_module()?.fork(&autodiff).train();
                let optimizer = progress.optimizer.restore(AdamConfig::new().init())?;
                (progress.epoch, net, optimizer)
            }
            None => {
                tracing::info!(learning_rate, "no checkpoint: training from the start");
                self.loss_curve = Vec::with_capacity(epochs as usize);
                let net = self.initial.module()?.clone().fork(&autodiff).train();
                (0, net, AdamConfig::new().init())
            }
        };
        let continued_from = epoch;
        while epoch < epochs {
            let loss = mse(net.forward(x.clone()), y.clone());
            self.loss_curve.push(loss.clone().into_scalar::<f32>());
            let grads = GradientsParams::from_grads(loss.backward(), &net);
            net = optimizer.step(learning_rate, net, grads);
            epoch += 1;
            if let Some(task) = &task
                && (epoch % checkpoint_every == 0 || epoch == epochs)
            {
                task.checkpoint(&TrainingProgress {
                    epoch,
                    model: Model::new(config.clone(), net.clone().valid()),
                    optimizer: OptimizerState::capture(&optimizer)?,
                    loss_curve: self.loss_curve.clone(),
                })?;
            }
        }
        let net = net.valid();
        let (x, y) = self.data(&Device::flex());
        self.loss = mse(net.forward(x), y).into_scalar::<f32>();
        self.learning_rate = learning_rate;
        self.model = Model::new(config, net);
        self.optimizer = OptimizerState::capture(&optimizer)?;
        tracing::info!(learning_rate, loss = self.loss, "trained");
        let continued = if continued_from > 0 {
            format!(" (continued from the checkpoint of epoch {continued_from})")
        } else {
            String::new()
        };
        blooming_flowers::card()
            .markdown(format!(
                "## Learning rate {learning_rate}\n\n{epochs} epochs of Adam, full batch{continued}; \
                 final loss **{}**.",
                self.loss
            ))
            .chart(
                Chart::line("training loss per epoch")
                    .x_label("epoch")
                    .y_label("mean squared error")
                    .series(format!("lr={learning_rate}"), self.loss_curve.iter().copied()),
            );
        Ok(())
    }

    /// Keeps the model with the lowest loss (the first one on a tie).
    #[step(join, next = end)]
    fn pick(&mut self, inputs: Inputs<Self>) -> Result<(), String> {
        let mut best: Option<(f32, f64, Model<Mlp>)> = None;
        let mut tried = Vec::new();
        let mut curves = Chart::line("training loss per epoch, every learning rate")
            .x_label("epoch")
            .y_label("mean squared error");
        for input in inputs.try_iter() {
            let input = input.map_err(|e| e.to_string())?;
            self.losses.push(input.loss);
            tried.push((input.learning_rate, input.loss));
            curves = curves.series(
                format!("lr={}", input.learning_rate),
                input.loss_curve.iter().copied(),
            );
            if best.as_ref().is_none_or(|(loss, _, _)| input.loss < *loss) {
                best = Some((input.loss, input.learning_rate, input.model.clone()));
            }
        }
        let (loss, learning_rate, model) = best.ok_or("no learning rate was tried")?;
        let table = tried.iter().fold(
            Table::new(["learning rate", "final loss", "picked"]),
            |table, &(lr, final_loss)| {
                table.row([
                    Cell::from(lr),
                    Cell::from(final_loss),
                    Cell::from(lr == learning_rate),
                ])
            },
        );
        blooming_flowers::card()
            .markdown(format!(
                "# Learning rates tried\n\n{} learning rates, {} epochs each: \
                 **{learning_rate}** reached the lowest loss, {loss}.",
                tried.len(),
                self.settings.epochs
            ))
            .table(table)
            .chart(curves);
        self.best_loss = loss;
        self.best_learning_rate = learning_rate;
        self.best = model;
        Ok(())
    }

    /// Records the best model's outputs on the probe and its weights' checksum.
    #[step]
    fn end(&mut self) -> Result<(), ModelError> {
        let best = self.best.module()?;
        self.probe = PROBE.to_vec();
        self.probe_outputs = best.predict(&self.probe, &Device::flex());
        self.weights_checksum = self.best.weights_checksum()?;
        tracing::info!(
            learning_rate = self.best_learning_rate,
            loss = self.best_loss,
            "best model"
        );
        Ok(())
    }

    /// The data set as `[n, 1]` tensors on `device`.
    fn data(&self, device: &Device) -> (Tensor<2>, Tensor<2>) {
        (column(&self.xs, device), column(&self.ys, device))
    }
}

/// Mean squared error.
fn mse(predictions: Tensor<2>, targets: Tensor<2>) -> Tensor<1> {
    (predictions - targets).powi_scalar(2).mean()
}

/// A tiny seeded generator for the data set's noise: the data must not depend on burn's global
/// random state.
struct SplitMix64(u64);

impl SplitMix64 {
    /// A number in `[-1, 1)`.
    fn unit(&mut self) -> f32 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        (z >> 40) as f32 / (1u64 << 23) as f32 - 1.0
    }
}

fn main() -> std::process::ExitCode {
    blooming_flowers::main::<TrainBurn>()
}
