//! `export-model`: a model trained by `examples/train_burn.rs` exported to a `.safetensors` file,
//! then loaded back with burn (burn-store's `SafetensorsStore`, into the example's `Mlp`) and
//! with the `safetensors` crate, and checked bit for bit against the run's `Model` artifact
//! loaded through the client; and every way the command can be asked for something it cannot
//! do, each refused with its exit code and nothing left at the output path.

#![cfg(feature = "burn")]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::OnceLock;

use blooming_flowers::burn::module::{Module, ModuleVisitor, Param};
use blooming_flowers::burn::store::{ModuleSnapshot, SafetensorsStore};
use blooming_flowers::burn::tensor::{Bool, Device, Int, Tensor, TensorData};
use blooming_flowers::burn_model::export::safetensors::{Dtype, SafeTensors};
use blooming_flowers::burn_model::export::{ExportError, StoredWeights};
use blooming_flowers::burn_model::{ConfiguredModule, Model, weights_checksum};
use blooming_flowers::client::Client;

mod support {
    pub mod example;
}

#[allow(dead_code)]
#[path = "../examples/shared/mlp.rs"]
mod mlp;

use mlp::{Mlp, MlpConfig};
use support::example::cargo_example;

/// One trained run shared by every test: training is the slow part.
fn datastore() -> &'static Path {
    static DATASTORE: OnceLock<PathBuf> = OnceLock::new();
    DATASTORE.get_or_init(|| {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("export_model");
        if dir.exists() {
            std::fs::remove_dir_all(&dir).expect("remove the last run's datastore");
        }
        std::fs::create_dir_all(&dir).expect("create the datastore's directory");
        let datastore = dir.join("datastore");
        let output = train_burn(&datastore, &["run", "--epochs", "3"]);
        assert!(
            output.status.success(),
            "train_burn run failed ({}):\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
        datastore
    })
}

fn train_burn(datastore: &Path, args: &[&str]) -> Output {
    cargo_example("train_burn", &["burn"])
        .arg("--datastore")
        .arg(datastore)
        .args(args)
        .output()
        .expect("cargo runs")
}

/// `train_burn export-model ARGS…` on the shared datastore.
fn export(args: &[&str]) -> Output {
    let mut all = vec!["export-model"];
    all.extend_from_slice(args);
    train_burn(datastore(), &all)
}

/// A fresh, empty directory for one test's output.
fn out_dir(name: &str) -> PathBuf {
    let dir = datastore()
        .parent()
        .expect("the datastore has a parent")
        .join(name);
    if dir.exists() {
        std::fs::remove_dir_all(&dir).expect("remove old output");
    }
    std::fs::create_dir_all(&dir).expect("create the output directory");
    dir
}

/// The names in `dir`, sorted.
fn listing(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .expect("list the output directory")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// The run's `best` model, as the client loads it from the `pick` task.
fn best_model(client: &Client) -> (String, Model<Mlp>) {
    let run = client.flow("TrainBurn").latest_run().expect("the run");
    let step = run.step("pick").expect("step pick");
    let id = step.only_task().expect("pick's task").id().to_string();
    let model = step
        .task(&id)
        .expect("pick's task")
        .artifact::<Model<Mlp>>("best")
        .expect("the best model");
    (run.id().to_string(), model)
}

/// Every parameter of `module`: its record path → (dtype, shape, raw bytes).
fn parameters<M: Module>(module: &M) -> BTreeMap<String, (String, Vec<usize>, Vec<u8>)> {
    struct Collect {
        path: Vec<String>,
        found: BTreeMap<String, (String, Vec<usize>, Vec<u8>)>,
    }
    impl Collect {
        fn add(&mut self, data: TensorData) {
            self.found.insert(
                self.path.join("."),
                (
                    format!("{:?}", data.dtype()),
                    data.shape().to_vec(),
                    data.as_bytes().to_vec(),
                ),
            );
        }
    }
    impl ModuleVisitor for Collect {
        fn enter_module(&mut self, name: &str, _container_type: &str) {
            self.path.push(name.to_owned());
        }
        fn exit_module(&mut self, _name: &str, _container_type: &str) {
            self.path.pop();
        }
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            self.add(param.val().into_data());
        }
        fn visit_int<const D: usize>(&mut self, param: &Param<Tensor<D, Int>>) {
            self.add(param.val().into_data());
        }
        fn visit_bool<const D: usize>(&mut self, param: &Param<Tensor<D, Bool>>) {
            self.add(param.val().into_data());
        }
    }
    let mut collect = Collect {
        path: Vec::new(),
        found: BTreeMap::new(),
    };
    module.visit(&mut collect);
    collect.found
}

#[test]
fn an_exported_model_loads_bit_for_bit_with_burn_and_with_safetensors() {
    let dir = out_dir("exported");
    let file = dir.join("best.safetensors");
    let output = export(&[
        "latest/pick",
        "best",
        "--output",
        file.to_str().expect("utf-8"),
    ]);
    assert!(
        output.status.success(),
        "export-model failed ({}):\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains("best.safetensors") && stdout.contains("best.config.json"),
        "it says where it wrote: {stdout}"
    );
    assert_eq!(listing(&dir), ["best.config.json", "best.safetensors"]);

    let client = Client::open(datastore()).expect("client");
    let (run_id, model) = best_model(&client);
    let expected = parameters(model.module().expect("the model is set"));
    assert_eq!(
        expected.keys().collect::<Vec<_>>(),
        ["input.bias", "input.weight", "output.bias", "output.weight"],
        "the example's Mlp has two Linear layers"
    );

    // The safetensors crate: every tensor, its type, shape and bytes.
    let bytes = std::fs::read(&file).expect("read the exported file");
    let tensors = SafeTensors::deserialize(&bytes).expect("a valid safetensors file");
    let mut names = tensors.names();
    names.sort();
    assert_eq!(names, expected.keys().collect::<Vec<_>>());
    for (name, (dtype, shape, data)) in &expected {
        let view = tensors.tensor(name).expect("tensor present");
        assert_eq!(dtype, "F32", "{name}: the example trains in f32");
        assert_eq!(view.dtype(), Dtype::F32, "{name}");
        assert_eq!(view.shape(), shape.as_slice(), "{name}");
        assert!(view.data() == data.as_slice(), "{name}: the bytes differ");
    }

    // Its metadata and the config beside it: the run's config, from which burn rebuilds the Mlp.
    let (_, metadata) = SafeTensors::read_metadata(&bytes).expect("metadata");
    let info = metadata.metadata().clone().expect("the file has metadata");
    let stored_config = serde_json::to_value(model.config().expect("config")).expect("json");
    let config_in_file: serde_json::Value =
        serde_json::from_str(&info["config"]).expect("the metadata's config is JSON");
    assert_eq!(config_in_file, stored_config);
    assert_eq!(
        info["burn_version"],
        blooming_flowers::burn_model::BURN_VERSION
    );
    assert!(info["module"].ends_with("Mlp"), "{:?}", info["module"]);
    assert_eq!(info["source"], format!("TrainBurn/{run_id}/pick/0/best"));
    let beside = std::fs::read_to_string(dir.join("best.config.json")).expect("the config file");
    let config_beside: serde_json::Value = serde_json::from_str(&beside).expect("JSON");
    assert_eq!(config_beside, stored_config);

    // burn: the Mlp its config builds, loaded from the file by burn's own safetensors store.
    let config: MlpConfig = serde_json::from_str(&beside).expect("an MlpConfig");
    let mut loaded = Mlp::from_config(&config, &Device::flex());
    let mut store = SafetensorsStore::from_file(&file);
    let applied = loaded.load_from(&mut store).expect("burn loads the file");
    assert!(
        applied.errors.is_empty() && applied.missing.is_empty() && applied.unused.is_empty(),
        "every tensor fits: {applied:?}"
    );
    assert_eq!(parameters(&loaded), expected, "burn loaded other weights");
    // The checksum the run computed from inside, when it picked the model.
    let in_run: String = client
        .flow("TrainBurn")
        .run(&run_id)
        .expect("run")
        .artifact("weights_checksum")
        .expect("the run's checksum");
    assert_eq!(weights_checksum(&loaded), in_run);
    // burn's own view of the module agrees on every name.
    let snapshot: Vec<String> = loaded
        .collect(None, None, false)
        .into_iter()
        .map(|t| t.name)
        .collect();
    assert_eq!(snapshot.len(), expected.len(), "{snapshot:?}");
}

/// Runs `export-model ARGS --output DIR/model.safetensors`, expecting exit `code` with `message`
/// in its error, and nothing at all written in DIR.
fn refused(test: &str, args: &[&str], code: i32, message: &str) {
    let dir = out_dir(test);
    let file = dir.join("model.safetensors");
    let mut all = args.to_vec();
    all.extend_from_slice(&["--output", file.to_str().expect("utf-8")]);
    let output = export(&all);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(code), "{args:?}: {stderr}");
    assert!(stderr.contains(message), "{args:?}: {stderr}");
    assert!(
        listing(&dir).is_empty(),
        "{args:?} left {:?}",
        listing(&dir)
    );
}

#[test]
fn a_value_that_is_not_a_model_is_refused_with_exit_2() {
    refused(
        "not_a_model",
        &["latest/pick", "best_loss"],
        2,
        "is not a burn model",
    );
    // An optimizer state is burnpack too, but has no config: not a model.
    let client = Client::open(datastore()).expect("client");
    let run = client.flow("TrainBurn").latest_run().expect("the run");
    let train = run.step("train").expect("step train");
    let ids = train.task_ids().expect("train's tasks");
    let task = format!("latest/train/{}", ids.first().expect("a train task"));
    refused("optimizer", &[&task, "optimizer"], 2, "is not a burn model");
    // `best` is not set yet in `start`.
    refused("unset", &["latest/start", "best"], 2, "an unset model");
}

#[test]
fn a_run_step_task_or_artifact_that_does_not_exist_is_refused_with_exit_2() {
    refused(
        "no_run",
        &["20990101T000000Z-0000/pick", "best"],
        2,
        "no run",
    );
    refused("no_step", &["latest/fit", "best"], 2, "has no step `fit`");
    refused("no_task", &["latest/pick/7", "best"], 2, "has no task `7`");
    refused(
        "several_tasks",
        &["latest/train", "model"],
        2,
        "has 3 tasks",
    );
    refused(
        "no_artifact",
        &["latest/pick", "bets"],
        2,
        "has no artifact `bets`",
    );
    refused("run_only", &["latest", "best"], 2, "RUN/STEP[/TASK]");
}

#[test]
fn an_output_that_cannot_be_written_fails_with_exit_1_and_leaves_nothing() {
    let dir = out_dir("unwritable");
    // The parent of the output is a regular file.
    let blocker = dir.join("not-a-directory");
    std::fs::write(&blocker, b"x").expect("write the blocker");
    let file = blocker.join("model.safetensors");
    let output = export(&[
        "latest/pick",
        "best",
        "--output",
        file.to_str().expect("utf-8"),
    ]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("cannot write"), "{stderr}");
    assert_eq!(listing(&dir), ["not-a-directory"]);

    // The output is a directory: refused before anything is written, the directory untouched.
    let taken = dir.join("taken.safetensors");
    std::fs::create_dir(&taken).expect("create the directory");
    let output = export(&[
        "latest/pick",
        "best",
        "--output",
        taken.to_str().expect("utf-8"),
    ]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("it is a directory"), "{stderr}");
    assert_eq!(listing(&dir), ["not-a-directory", "taken.safetensors"]);
    assert!(listing(&taken).is_empty());
}

#[test]
fn damaged_record_bytes_are_an_error_naming_the_record_never_a_panic() {
    let model = Model::<Mlp>::init_seeded(MlpConfig::new(), &Device::flex(), 3);
    let record = model.record_bytes().expect("record");
    let encode = stored_model;
    // Intact, the same bytes export: the test's encoding is the stored form.
    let weights = StoredWeights::from_artifact(&encode(&record, "burnpack")).expect("a model");
    assert_eq!(weights.tensors.len(), 4);
    assert_eq!(weights.parameter_count(), 16 + 16 + 16 + 1);

    for cut in [0, 9, 100, record.len() - 1] {
        match StoredWeights::from_artifact(&encode(&record[..cut], "burnpack")) {
            Err(e @ ExportError::Corrupt { len, .. }) => {
                assert_eq!(len, cut);
                let message = e.to_string();
                assert!(
                    message.contains(&format!("record ({cut} bytes) is corrupt")),
                    "{message}"
                );
            }
            other => panic!("record cut at {cut}: {other:?}"),
        }
    }
    let mut flipped = record.to_vec();
    flipped[1] ^= 0xff;
    assert!(matches!(
        StoredWeights::from_artifact(&encode(&flipped, "burnpack")),
        Err(ExportError::Corrupt { .. })
    ));
    assert!(matches!(
        StoredWeights::from_artifact(&encode(&record, "mpk")),
        Err(ExportError::Format { .. })
    ));
}

#[test]
fn exporting_a_model_twice_gives_the_same_bytes() {
    let dir = out_dir("twice");
    let mut files = Vec::new();
    for name in ["first.safetensors", "second.safetensors"] {
        let file = dir.join(name);
        let output = export(&[
            "latest/pick",
            "best",
            "--output",
            file.to_str().expect("utf-8"),
        ]);
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        files.push(std::fs::read(&file).expect("read the export"));
    }
    assert!(
        files[0] == files[1],
        "two exports differ:\n{}\n{}",
        String::from_utf8_lossy(&files[0][..files[0].len().min(600)]),
        String::from_utf8_lossy(&files[1][..files[1].len().min(600)])
    );
}

/// The stored form of a model around `record` in container `format`, as `Model`'s `Serialize`
/// writes it.
fn stored_model(record: &[u8], format: &str) -> Vec<u8> {
    #[derive(serde::Serialize)]
    struct Stored<'a> {
        burn_version: &'a str,
        format: &'a str,
        module: &'a str,
        config: &'a str,
        #[serde(with = "serde_bytes")]
        record: &'a [u8],
    }
    let mut bytes = Vec::new();
    blooming_flowers::state::encode_field(
        &mut bytes,
        &Some(Stored {
            burn_version: "0.22.1",
            format,
            module: "Probe",
            config: "{}",
            record,
        }),
    )
    .expect("encode");
    bytes
}

#[test]
fn every_element_type_burn_stores_exports_under_its_safetensors_type() {
    use blooming_flowers::burn::store::burn_pack::{Bytes, DType, Tensor as PackTensor, Writer};
    use blooming_flowers::burn::tensor::BoolStore;

    // (burn type, bytes per element, the safetensors type it must become)
    let cases = [
        (DType::F64, 8, Dtype::F64),
        (DType::F32, 4, Dtype::F32),
        (DType::Flex32, 4, Dtype::F32),
        (DType::F16, 2, Dtype::F16),
        (DType::BF16, 2, Dtype::BF16),
        (DType::I64, 8, Dtype::I64),
        (DType::I32, 4, Dtype::I32),
        (DType::I16, 2, Dtype::I16),
        (DType::I8, 1, Dtype::I8),
        (DType::U64, 8, Dtype::U64),
        (DType::U32, 4, Dtype::U32),
        (DType::U16, 2, Dtype::U16),
        (DType::U8, 1, Dtype::U8),
        (DType::Bool(BoolStore::Native), 1, Dtype::BOOL),
        (DType::Bool(BoolStore::U8), 1, Dtype::BOOL),
    ];
    let tensors: Vec<PackTensor> = cases
        .iter()
        .enumerate()
        .map(|(i, (dtype, size, _))| {
            // Distinct bytes in every tensor; booleans hold 0 and 1 only.
            let bytes: Vec<u8> = (0..2 * 3 * size)
                .map(|b| match dtype {
                    DType::Bool(_) => (b % 2) as u8,
                    _ => (i * 31 + b * 7) as u8,
                })
                .collect();
            PackTensor::new(
                format!("t{i:02}"),
                *dtype,
                vec![2, 3],
                None,
                Bytes::from_bytes_vec(bytes),
            )
        })
        .collect();
    let expected: Vec<Vec<u8>> = tensors
        .iter()
        .map(|t| t.to_bytes().expect("resident").to_vec())
        .collect();
    let record = Writer::new(tensors).into_bytes().expect("a burnpack");
    let weights =
        StoredWeights::from_artifact(&stored_model(&record, "burnpack")).expect("a model");

    let dir = out_dir("dtypes");
    let file = dir.join("all.safetensors");
    weights.write(&file, &[]).expect("written");
    let bytes = std::fs::read(&file).expect("read");
    let loaded = SafeTensors::deserialize(&bytes).expect("a valid safetensors file");
    assert_eq!(loaded.len(), cases.len());
    for (i, (dtype, _, st_dtype)) in cases.iter().enumerate() {
        let view = loaded.tensor(&format!("t{i:02}")).expect("present");
        assert_eq!(view.dtype(), *st_dtype, "{dtype:?}");
        assert_eq!(view.shape(), [2, 3], "{dtype:?}");
        assert!(
            view.data() == expected[i].as_slice(),
            "{dtype:?}: the bytes differ"
        );
    }

    // Booleans held in 4 bytes have no safetensors type: refused, naming the tensor.
    let u32_bools = PackTensor::new(
        "mask".to_owned(),
        DType::Bool(BoolStore::U32),
        vec![2],
        None,
        Bytes::from_bytes_vec(vec![0; 8]),
    );
    let record = Writer::new(vec![u32_bools])
        .into_bytes()
        .expect("a burnpack");
    match StoredWeights::from_artifact(&stored_model(&record, "burnpack")) {
        Err(e @ ExportError::UnsupportedDtype { .. }) => {
            assert!(e.to_string().contains("`mask`"), "{e}");
        }
        other => panic!("{other:?}"),
    }
}
