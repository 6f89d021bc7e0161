//! The graph of `examples/train_burn.rs` without burn: the same steps, transitions and options
//! (which is all a manifest is made of; `tests/argo.rs` checks that they stay the example's),
//! with plain numbers where the example has models, so that its manifest is checked without
//! building burn. The steps only stand in for the example's.

use blooming_flowers::clap;
use blooming_flowers::prelude::*;

const EPOCHS: usize = 300;

/// The run's parameters, as the example's.
#[derive(Clone, Debug, Serialize, Deserialize, clap::Args)]
#[serde(default)]
pub(crate) struct Settings {
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

#[derive(Clone, Default, Serialize, Deserialize)]
pub(crate) struct TrainBurn {
    settings: Settings,
    learning_rates: Vec<f64>,
    learning_rate: f64,
    loss: f32,
    losses: Vec<f32>,
    best_learning_rate: f64,
}

#[flow(params = settings)]
impl TrainBurn {
    /// Generates the data set and the initial model, then tries every learning rate.
    #[step(foreach = learning_rates, next = train)]
    fn start(&mut self) {
        self.learning_rates = vec![1e-3, 1e-2, 5e-2];
    }

    /// Trains a copy of the initial model with one learning rate.
    #[step(next = pick)]
    fn train(&mut self, learning_rate: f64) -> Result<(), String> {
        self.learning_rate = learning_rate;
        self.loss = (learning_rate - 1e-2).abs() as f32;
        Ok(())
    }

    /// Keeps the model with the lowest loss (the first one on a tie).
    #[step(join, next = end)]
    fn pick(&mut self, inputs: Inputs<Self>) -> Result<(), String> {
        let mut best: Option<(f32, f64)> = None;
        for input in inputs.iter() {
            self.losses.push(input.loss);
            if best.is_none_or(|(loss, _)| input.loss < loss) {
                best = Some((input.loss, input.learning_rate));
            }
        }
        let (_, learning_rate) = best.ok_or("no learning rate was tried")?;
        self.best_learning_rate = learning_rate;
        Ok(())
    }

    /// Records the best model's outputs on the probe and its weights' checksum.
    #[step]
    fn end(&mut self) -> Result<(), String> {
        Ok(())
    }
}
