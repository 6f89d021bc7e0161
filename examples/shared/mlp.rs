//! The model `train_burn` trains and `serve_model` serves: a two-layer perceptron from one input
//! to one output. In a real project this is the small crate both the training flow and the
//! service depend on; the service needs this type and the datastore, not the flow.

use blooming_flowers::burn;
use blooming_flowers::burn_model::ConfiguredModule;
use burn::config::Config;
use burn::module::Module;
use burn::nn::{Linear, LinearConfig, Relu};
use burn::tensor::{Device, Tensor, TensorData};

/// The shape of the model: what is stored beside its weights to rebuild it.
#[derive(Config, Debug)]
pub struct MlpConfig {
    /// Width of the hidden layer.
    #[config(default = 16)]
    pub hidden: usize,
}

/// A two-layer perceptron from one input to one output.
#[derive(Module, Debug)]
pub struct Mlp {
    input: Linear,
    act: Relu,
    output: Linear,
}

impl Mlp {
    /// Maps a batch `[n, 1]` of inputs to a batch `[n, 1]` of predictions.
    pub fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        self.output.forward(self.act.forward(self.input.forward(x)))
    }

    /// [`Mlp::forward`] on plain numbers.
    pub fn predict(&self, xs: &[f32], device: &Device) -> Vec<f32> {
        let outputs = self.forward(column(xs, device)).into_data();
        outputs
            .try_to_vec()
            .unwrap_or_else(|e| unreachable!("the model outputs f32: {e:?}"))
    }
}

impl ConfiguredModule for Mlp {
    type Config = MlpConfig;

    fn from_config(config: &MlpConfig, device: &Device) -> Self {
        Mlp {
            input: LinearConfig::new(1, config.hidden).init(device),
            act: Relu::new(),
            output: LinearConfig::new(config.hidden, 1).init(device),
        }
    }
}

/// `values` as a `[n, 1]` tensor.
pub fn column(values: &[f32], device: &Device) -> Tensor<2> {
    Tensor::from_data(TensorData::new(values.to_vec(), [values.len(), 1]), device)
}
