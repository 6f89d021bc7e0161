//! Unit tests of the burn integration: exact roundtrips, canonical bytes, and clear errors.

use super::*;
use crate::burn_model::burn::nn::{Linear, LinearConfig, Relu};
use crate::burn_model::burn::optim::{AdamConfig, GradientsParams};
use crate::state::{decode_field, encode_field};

#[derive(burn::config::Config, Debug)]
pub struct NetConfig {
    #[config(default = 3)]
    pub inputs: usize,
    #[config(default = 5)]
    pub hidden: usize,
}

#[derive(burn::module::Module, Debug)]
pub struct Net {
    first: Linear,
    act: Relu,
    second: Linear,
}

impl Net {
    fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        self.second.forward(self.act.forward(self.first.forward(x)))
    }
}

impl ConfiguredModule for Net {
    type Config = NetConfig;
    fn from_config(config: &NetConfig, device: &Device) -> Self {
        Net {
            first: LinearConfig::new(config.inputs, config.hidden).init(device),
            act: Relu::new(),
            second: LinearConfig::new(config.hidden, 1).init(device),
        }
    }
}

fn device() -> Device {
    Device::default()
}

fn model(seed: u64) -> Model<Net> {
    Model::init_seeded(NetConfig::new(), &device(), seed)
}

fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    let mut bytes = Vec::new();
    encode_field(&mut bytes, value).expect("encode");
    bytes
}

/// Every parameter's values, in order, as raw bits.
fn bits(model: &Model<Net>) -> Vec<u32> {
    let net = model.module().expect("set");
    let mut out = Vec::new();
    for tensor in [
        net.first.weight.val().flatten::<1>(0, 1),
        net.first.bias.as_ref().expect("bias").val(),
        net.second.weight.val().flatten::<1>(0, 1),
        net.second.bias.as_ref().expect("bias").val(),
    ] {
        let values: Vec<f32> = tensor.into_data().try_to_vec().expect("f32");
        out.extend(values.into_iter().map(f32::to_bits));
    }
    out
}

fn probe() -> Tensor<2> {
    Tensor::from_data(
        TensorData::new(vec![0.5f32, -1.25, 2.0, 1e-3, 7.5, -0.0], [2, 3]),
        &device(),
    )
}

fn outputs(model: &Model<Net>) -> Vec<u32> {
    let values: Vec<f32> = model
        .module()
        .expect("set")
        .forward(probe())
        .into_data()
        .try_to_vec()
        .expect("f32");
    values.into_iter().map(f32::to_bits).collect()
}

#[test]
fn the_pinned_burn_version_is_the_one_stored() {
    let manifest = include_str!("../../Cargo.toml");
    assert!(
        manifest.contains(&format!("burn = {{ version = \"={BURN_VERSION}\"")),
        "flow-runtime/Cargo.toml must pin burn to ={BURN_VERSION}"
    );
}

#[test]
fn a_model_roundtrips_bit_for_bit() {
    let original = model(11);
    let bytes = encode(&original);
    let back: Model<Net> = decode_field(&bytes).expect("decode");
    assert_eq!(bits(&back), bits(&original));
    assert_eq!(outputs(&back), outputs(&original));
    assert_eq!(
        back.weights_checksum().expect("set"),
        original.weights_checksum().expect("set")
    );
    assert_eq!(back.config().expect("set").hidden, 5);
    // Stored again unchanged, it is the same bytes: the same blob.
    assert_eq!(encode(&back), bytes);
    // Re-encoding the loaded tensors (not the cached bytes) gives them too.
    let fresh = Model::new(NetConfig::new(), back.module().expect("set").clone());
    assert_eq!(encode(&fresh), bytes);
}

#[test]
fn equal_weights_give_equal_bytes() {
    let a = model(3);
    let b = model(3);
    let c = model(4);
    assert_eq!(bits(&a), bits(&b));
    assert_ne!(bits(&a), bits(&c));
    // burn would give every parameter of `b` a new random id; the canonical ids make the
    // records equal.
    assert_eq!(a.record_bytes().expect("a"), b.record_bytes().expect("b"));
    assert_eq!(encode(&a), encode(&b));
    assert_ne!(encode(&a), encode(&c));
    // A module built without `Model` has random ids; once in a `Model`, it encodes the same.
    let raw = {
        let _guard = SEED_LOCK.lock().unwrap_or_else(PoisonError::into_inner);
        device().seed(3);
        initialize_all(Net::from_config(&NetConfig::new(), &device()))
    };
    let raw_bytes = raw
        .clone()
        .into_record()
        .into_bytes()
        .expect("bytes")
        .to_vec();
    assert_ne!(
        &raw_bytes[..],
        &a.record_bytes().expect("a")[..],
        "burn's own ids are random"
    );
    assert_eq!(encode(&Model::new(NetConfig::new(), raw)), encode(&a));
}

#[test]
fn the_unset_model_says_so() {
    let unset = Model::<Net>::default();
    assert!(!unset.is_set());
    let error = unset.module().expect_err("unset");
    assert!(matches!(error, ModelError::Unset { .. }));
    let message = error.to_string();
    assert!(
        message.contains("model `") && message.contains("Net`") && message.contains("not set"),
        "{message}"
    );
    assert!(format!("{unset:?}").contains("(unset)"));
    // It is stored as nil and read back unset.
    let bytes = encode(&unset);
    assert_eq!(bytes, [0xc0]);
    assert!(!decode_field::<Model<Net>>(&bytes).expect("decode").is_set());
}

/// The stored form with one field changed, as another version would have written it.
fn tampered(model: &Model<Net>, field: &str, value: rmpv::Value) -> Vec<u8> {
    let mut stored: rmpv::Value = rmpv::decode::read_value(&mut &encode(model)[..]).expect("value");
    let rmpv::Value::Map(entries) = &mut stored else {
        panic!("a model is stored as a map")
    };
    let entry = entries
        .iter_mut()
        .find(|(key, _)| key.as_str() == Some(field))
        .expect("field");
    entry.1 = value;
    let mut bytes = Vec::new();
    rmpv::encode::write_value(&mut bytes, &stored).expect("encode");
    bytes
}

#[test]
fn a_record_of_another_burn_version_is_refused_clearly() {
    let bytes = tampered(&model(1), "burn_version", "0.21.0".into());
    let message = decode_field::<Model<Net>>(&bytes)
        .expect_err("refused")
        .to_string();
    assert!(
        message.contains("stored by burn 0.21.0")
            && message.contains(&format!("uses burn {BURN_VERSION}")),
        "{message}"
    );
    let bytes = tampered(&model(1), "format", "safetensors".into());
    let message = decode_field::<Model<Net>>(&bytes)
        .expect_err("refused")
        .to_string();
    assert!(
        message.contains("`safetensors`") && message.contains("`burnpack`"),
        "{message}"
    );
}

#[test]
fn corrupt_records_are_refused_clearly() {
    let original = model(2);
    let record = original.record_bytes().expect("set").to_vec();
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("empty", Vec::new()),
        ("garbage", b"definitely not a burnpack record".to_vec()),
        ("truncated header", record[..12].to_vec()),
        ("truncated data", record[..record.len() - 7].to_vec()),
        ("half", record[..record.len() / 2].to_vec()),
    ];
    for (case, bytes) in cases {
        let len = bytes.len();
        let stored = tampered(&original, "record", rmpv::Value::Binary(bytes));
        let error = decode_field::<Model<Net>>(&stored).expect_err(case);
        let message = error.to_string();
        assert!(
            message.contains("record of model `")
                && message.contains(&format!("({len} bytes) is corrupt")),
            "{case}: {message}"
        );
    }
    // A config that is not the module's config.
    let stored = tampered(&original, "config", "{\"width\": 3}".into());
    let message = decode_field::<Model<Net>>(&stored)
        .expect_err("config")
        .to_string();
    assert!(
        message.contains("config of model") && message.contains("NetConfig"),
        "{message}"
    );
    // A record that reads but belongs to a module of another shape.
    let wider = Model::<Net>::init_seeded(NetConfig::new().with_hidden(6), &device(), 2);
    let stored = tampered(
        &original,
        "record",
        rmpv::Value::Binary(wider.record_bytes().expect("set").to_vec()),
    );
    let message = decode_field::<Model<Net>>(&stored)
        .expect_err("shape")
        .to_string();
    assert!(
        message.contains("does not fit") && message.contains("shape mismatch"),
        "{message}"
    );
}

#[test]
fn the_load_device_can_be_chosen() {
    let bytes = encode(&model(5));
    let flex = Device::flex();
    let back: Model<Net> = with_load_device(&flex, || decode_field(&bytes)).expect("decode");
    assert_eq!(back.module().expect("set").first.weight.device(), flex);
    assert_eq!(load_device(), Device::default());
}

/// A few Adam steps on `model`, continuing from `optimizer`.
fn train(
    model: &Model<Net>,
    optimizer: &OptimizerState,
    steps: usize,
) -> (Model<Net>, OptimizerState) {
    let autodiff = device().autodiff();
    let mut net = model.module().expect("set").clone().fork(&autodiff).train();
    let mut optim = optimizer
        .restore_or(AdamConfig::new().init())
        .expect("restore");
    let x = probe().to_device(&autodiff);
    for _ in 0..steps {
        let loss = net.forward(x.clone()).powi_scalar(2).mean();
        let grads = GradientsParams::from_grads(loss.backward(), &net);
        net = optim.step(1e-2, net, grads);
    }
    (
        Model::new(model.config().expect("set").clone(), net.valid()),
        OptimizerState::capture(&optim).expect("capture"),
    )
}

#[test]
fn optimizer_state_roundtrips_and_training_continues_exactly() {
    let start = model(9);
    let (after_two, state) = train(&start, &OptimizerState::default(), 2);
    assert!(state.is_set());
    let bytes = encode(&state);
    let back: OptimizerState = decode_field(&bytes).expect("decode");
    assert_eq!(back.record_bytes(), state.record_bytes());
    assert_eq!(encode(&back), bytes);

    // Two steps, stored, loaded (model and optimizer), two more steps ==
    // four steps in one go, bit for bit.
    let reloaded: Model<Net> = decode_field(&encode(&after_two)).expect("model");
    let (continued, _) = train(&reloaded, &back, 2);
    let (straight, _) = train(&start, &OptimizerState::default(), 4);
    assert_eq!(bits(&continued), bits(&straight));
    // Without the optimizer state, Adam starts over and ends elsewhere.
    let (restarted, _) = train(&reloaded, &OptimizerState::default(), 2);
    assert_ne!(bits(&restarted), bits(&straight));

    // The same training gives the same bytes.
    let (_, again) = train(&start, &OptimizerState::default(), 2);
    assert_eq!(encode(&again), bytes);
}

#[test]
fn optimizer_state_errors_are_clear() {
    let unset = OptimizerState::default();
    assert_eq!(encode(&unset), [0xc0]);
    let Err(error) = unset.restore(AdamConfig::new().init()) else {
        panic!("restoring an unset state must fail")
    };
    let message = error.to_string();
    assert!(message.contains("optimizer state is not set"), "{message}");

    let (_, state) = train(&model(1), &OptimizerState::default(), 1);
    let mut stored: rmpv::Value =
        rmpv::decode::read_value(&mut &encode(&state)[..]).expect("value");
    let rmpv::Value::Map(entries) = &mut stored else {
        panic!("map")
    };
    for (key, value) in entries.iter_mut() {
        if key.as_str() == Some("burn_version") {
            *value = "0.23.0".into();
        }
    }
    let mut bytes = Vec::new();
    rmpv::encode::write_value(&mut bytes, &stored).expect("encode");
    let message = decode_field::<OptimizerState>(&bytes)
        .expect_err("version")
        .to_string();
    assert!(
        message.contains("optimizer state was stored by burn 0.23.0"),
        "{message}"
    );

    let record = state.record_bytes().expect("set");
    let garbage = rmp_serde::to_vec_named(&StoredOptimizerRef {
        burn_version: BURN_VERSION,
        format: RECORD_FORMAT,
        record: &record[..record.len() / 3],
    })
    .expect("encode");
    let message = decode_field::<OptimizerState>(&garbage)
        .expect_err("corrupt")
        .to_string();
    assert!(
        message.contains("the record of optimizer state") && message.contains("is corrupt"),
        "{message}"
    );
}

#[test]
fn canonical_ids_depend_on_the_path_only() {
    let net = model(1);
    let ids: Vec<u64> = {
        let net = net.module().expect("set");
        vec![net.first.weight.id.val(), net.second.weight.id.val()]
    };
    assert_eq!(ids[0], canonical_param_id("first.weight").val());
    assert_eq!(ids[1], canonical_param_id("second.weight").val());
    assert_ne!(ids[0], ids[1]);
}
