//! Randomized tests of every decoder of stored data: done markers (task indexes), run records,
//! task metadata and specs, MessagePack artifacts of nested types, a foreach's list of elements,
//! cards, and (feature `burn`) burn model and optimizer records (also as `export-model` reads them).
//!
//! The property is the same for each: arbitrary bytes, and valid encodings with random damage,
//! decode to a value or to an error, never a panic, and never ask for an allocation larger than
//! [`ALLOCATION_LIMIT`]. This binary's allocator refuses those (the process then aborts with
//! "memory allocation of N bytes failed"), so that a length header a decoder trusts is caught
//! even where the machine could have granted the memory.

use std::alloc::{GlobalAlloc, Layout, System};
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::marker::PhantomData;

use flow_runtime::datastore::{
    ArtifactEntry, BlobHash, DONE_MARKER, Encoding, LocalStorage, TaskIndex, read_task,
};
use flow_runtime::run::{
    AttemptRecord, ForeachRecord, FrameRecord, GraphRecord, InputSpec, RunRecord, RunStatus,
    RunStore, StepRecord, TaskFailure, TaskMeta, TaskPath, TaskSpec, TaskStatus,
};
use flow_runtime::state::{bounded, canonical, decode_field, decode_state, encode_field};
use proptest::prelude::*;
use serde::de::{SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};
use serde_bytes::ByteBuf;

/// The largest single allocation a decoder may ask for here. Far above what any input of these
/// tests holds (a few KiB), far below what a crafted length header claims.
const ALLOCATION_LIMIT: usize = 256 << 20;

/// The system allocator, refusing single allocations above [`ALLOCATION_LIMIT`].
struct Bounded;

// SAFETY: forwards to `System`, or returns null, which `GlobalAlloc` allows for a failed
// allocation.
unsafe impl GlobalAlloc for Bounded {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if layout.size() > ALLOCATION_LIMIT {
            return std::ptr::null_mut();
        }
        // SAFETY: same contract as ours.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if layout.size() > ALLOCATION_LIMIT {
            return std::ptr::null_mut();
        }
        // SAFETY: same contract as ours.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as ours; `ptr` came from `System`.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if new_size > ALLOCATION_LIMIT {
            return std::ptr::null_mut();
        }
        // SAFETY: same contract as ours; `ptr` came from `System`.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Bounded = Bounded;

// ---------------------------------------------------------------------------------------------
// Damage.

/// One change to a valid encoding.
#[derive(Debug, Clone)]
enum Mutation {
    /// Sets the byte at (position modulo length) to a value.
    Set(usize, u8),
    /// Flips one bit.
    Flip(usize, u8),
    /// Inserts bytes.
    Insert(usize, Vec<u8>),
    /// Removes up to this many bytes.
    Remove(usize, usize),
    /// Cuts the encoding short.
    Truncate(usize),
    /// Puts a length header claiming about four billion elements or bytes.
    HugeLength(usize, u8),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), any::<u8>()).prop_map(|(at, v)| Mutation::Set(at, v)),
        (any::<usize>(), 0u8..8).prop_map(|(at, bit)| Mutation::Flip(at, bit)),
        (any::<usize>(), proptest::collection::vec(any::<u8>(), 1..6))
            .prop_map(|(at, bytes)| Mutation::Insert(at, bytes)),
        (any::<usize>(), 1usize..16).prop_map(|(at, n)| Mutation::Remove(at, n)),
        any::<usize>().prop_map(Mutation::Truncate),
        (
            any::<usize>(),
            prop::sample::select(vec![0xdc, 0xdd, 0xde, 0xdf, 0xc5, 0xc6, 0xda, 0xdb, 0xc9])
        )
            .prop_map(|(at, marker)| Mutation::HugeLength(at, marker)),
    ]
}

fn mutations() -> impl Strategy<Value = Vec<Mutation>> {
    proptest::collection::vec(mutation(), 1..6)
}

fn damage(bytes: &[u8], mutations: &[Mutation]) -> Vec<u8> {
    let mut out = bytes.to_vec();
    for m in mutations {
        let at = |i: usize, len: usize| if len == 0 { 0 } else { i % len };
        let len = out.len();
        match m {
            Mutation::Set(i, v) if len > 0 => out[at(*i, len)] = *v,
            Mutation::Flip(i, bit) if len > 0 => out[at(*i, len)] ^= 1 << bit,
            Mutation::Insert(i, bytes) => {
                let i = at(*i, len + 1);
                out.splice(i..i, bytes.iter().copied());
            }
            Mutation::Remove(i, n) if len > 0 => {
                let i = at(*i, len);
                out.drain(i..(i + n).min(len));
            }
            Mutation::Truncate(i) => out.truncate(at(*i, len + 1)),
            Mutation::HugeLength(i, marker) => {
                let i = at(*i, len + 1);
                let header = match marker {
                    0xdc | 0xde | 0xc5 | 0xda => vec![*marker, 0xff, 0xff],
                    _ => vec![*marker, 0x7f, 0xff, 0xff, 0xff],
                };
                out.splice(i..i, header);
            }
            _ => {}
        }
    }
    out
}

fn arbitrary_bytes() -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(any::<u8>(), 0..600)
}

/// 256 cases per property, or `PROPTEST_CASES` for a longer search.
fn config() -> ProptestConfig {
    let default = ProptestConfig::default();
    ProptestConfig {
        cases: if std::env::var_os("PROPTEST_CASES").is_some() {
            default.cases
        } else {
            256
        },
        failure_persistence: None,
        ..default
    }
}

// ---------------------------------------------------------------------------------------------
// MessagePack artifacts.

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
enum Tree {
    Leaf,
    Node(Box<Tree>),
}

impl Drop for Tree {
    /// Iterative, so that dropping whatever depth was decoded cannot overflow the stack.
    fn drop(&mut self) {
        let mut next = match self {
            Tree::Node(child) => std::mem::replace(&mut **child, Tree::Leaf),
            Tree::Leaf => return,
        };
        while let Tree::Node(child) = &mut next {
            next = std::mem::replace(&mut **child, Tree::Leaf);
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
enum Shape {
    Unit,
    Circle(f64),
    Pair(u8, String),
    Named { x: i64, tags: Vec<String> },
    Nested(Box<Shape>),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Artifact {
    id: u64,
    name: String,
    weights: Vec<f32>,
    #[serde(with = "serde_bytes")]
    raw: Vec<u8>,
    maybe: Option<Box<Artifact>>,
    shapes: Vec<Shape>,
    by_name: BTreeMap<String, Vec<u32>>,
    counts: HashMap<u32, i16>,
    tree: Tree,
    pair: (bool, char),
    #[serde(default)]
    greedy: Greedy,
}

/// A sequence that reserves what the encoding announces before reading it, as some
/// `Deserialize` impls do: a crafted length header must not reach it unchecked.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
struct Greedy(Vec<u64>);

impl<'de> Deserialize<'de> for Greedy {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Reserving(PhantomData<Greedy>);
        impl<'de> Visitor<'de> for Reserving {
            type Value = Greedy;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a sequence")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Greedy, A::Error> {
                let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0));
                while let Some(item) = seq.next_element()? {
                    items.push(item);
                }
                Ok(Greedy(items))
            }
        }
        deserializer.deserialize_seq(Reserving(PhantomData))
    }
}

fn tree(depth: usize) -> Tree {
    (0..depth).fold(Tree::Leaf, |t, _| Tree::Node(Box::new(t)))
}

fn shape() -> impl Strategy<Value = Shape> {
    let leaf = prop_oneof![
        Just(Shape::Unit),
        any::<f64>().prop_map(Shape::Circle),
        (any::<u8>(), ".{0,40}").prop_map(|(a, b)| Shape::Pair(a, b)),
        (any::<i64>(), proptest::collection::vec(".{0,8}", 0..4))
            .prop_map(|(x, tags)| Shape::Named { x, tags }),
    ];
    leaf.prop_recursive(4, 16, 1, |inner| {
        inner.prop_map(|s| Shape::Nested(Box::new(s)))
    })
}

fn artifact() -> impl Strategy<Value = Artifact> {
    let flat = (
        any::<u64>(),
        ".{0,40}",
        proptest::collection::vec(any::<f32>(), 0..40),
        proptest::collection::vec(any::<u8>(), 0..300),
        proptest::collection::vec(shape(), 0..5),
        proptest::collection::btree_map(
            ".{0,6}",
            proptest::collection::vec(any::<u32>(), 0..5),
            0..5,
        ),
        proptest::collection::hash_map(any::<u32>(), any::<i16>(), 0..20),
        0usize..20,
        (any::<bool>(), any::<char>()),
        proptest::collection::vec(any::<u64>(), 0..10),
    )
        .prop_map(
            |(id, name, weights, raw, shapes, by_name, counts, depth, pair, greedy)| Artifact {
                id,
                name,
                weights,
                raw,
                maybe: None,
                shapes,
                by_name,
                counts,
                tree: tree(depth),
                pair,
                greedy: Greedy(greedy),
            },
        );
    flat.prop_recursive(3, 6, 1, |inner| {
        (inner.clone(), inner).prop_map(|(mut outer, nested)| {
            outer.maybe = Some(Box::new(nested));
            outer
        })
    })
}

fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    let mut bytes = Vec::new();
    encode_field(&mut bytes, value).expect("encodes");
    bytes
}

/// Everything the artifact decoders do with `bytes`; only panics and refused allocations fail.
fn decode_every_way(bytes: &[u8]) {
    let _ = bounded::check(bytes);
    let _ = canonical::unordered_maps(bytes);
    let _ = decode_field::<Artifact>(bytes);
    let _ = decode_field::<Shape>(bytes);
    let _ = decode_field::<Tree>(bytes);
    let _ = decode_field::<Greedy>(bytes);
    let _ = decode_field::<rmpv::Value>(bytes);
    let _ = decode_field::<HashMap<String, Vec<f32>>>(bytes);
    let _ = decode_field::<(u8, String, Option<Vec<i64>>)>(bytes);
    let _ = decode_state::<Artifact>(&[("id", bytes), ("name", bytes), ("tree", bytes)]);
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn artifacts_from_arbitrary_bytes_are_an_error_or_a_value(bytes in arbitrary_bytes()) {
        decode_every_way(&bytes);
    }

    #[test]
    fn damaged_artifacts_are_an_error_or_a_value(value in artifact(), damage_done in mutations()) {
        let bytes = encode(&value);
        decode_every_way(&damage(&bytes, &damage_done));
    }

    #[test]
    fn valid_artifacts_pass_the_checks_and_roundtrip(value in artifact()) {
        let bytes = encode(&value);
        prop_assert!(bounded::check(&bytes).is_ok());
        let back: Artifact = decode_field(&bytes).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(back, value);
    }

    #[test]
    fn length_headers_past_the_end_are_an_error_not_an_allocation(
        marker in prop::sample::select(vec![0xdc_u8, 0xdd, 0xde, 0xdf, 0xc5, 0xc6, 0xda, 0xdb, 0xc9]),
        len in any::<u32>(),
        tail in proptest::collection::vec(any::<u8>(), 0..64),
    ) {
        let mut bytes = vec![marker];
        match marker {
            0xdc | 0xde | 0xc5 | 0xda => bytes.extend_from_slice(&(len as u16).to_be_bytes()),
            _ => bytes.extend_from_slice(&len.to_be_bytes()),
        }
        bytes.extend_from_slice(&tail);
        decode_every_way(&bytes);
        let claimed = match marker {
            0xdc | 0xde | 0xc5 | 0xda => u64::from(len as u16),
            _ => u64::from(len),
        };
        if claimed > tail.len() as u64 {
            prop_assert!(decode_field::<Greedy>(&bytes).is_err());
            prop_assert!(decode_field::<rmpv::Value>(&bytes).is_err());
        }
    }

    #[test]
    fn nesting_past_the_limit_is_an_error_at_any_depth(depth in 0usize..5000) {
        let mut bytes = Vec::new();
        for _ in 0..depth {
            bytes.extend_from_slice(&[0x81, 0xa4, b'N', b'o', b'd', b'e']);
        }
        bytes.extend_from_slice(&[0xa4, b'L', b'e', b'a', b'f']);
        let decoded = decode_field::<Tree>(&bytes);
        prop_assert_eq!(decoded.is_ok(), depth <= bounded::MAX_DEPTH, "depth {}", depth);
    }

    #[test]
    fn cards_are_an_error_or_a_card(
        texts in proptest::collection::vec(".{0,40}", 0..4),
        ys in proptest::collection::vec(any::<f64>(), 0..40),
        damage_done in mutations(),
        arbitrary in arbitrary_bytes(),
    ) {
        use flow_runtime::card::{self, Chart, Table, CardWriter};
        let writer = CardWriter::detached();
        for text in &texts {
            writer.markdown(text.clone()).table(Table::new([text.as_str()]).row([text.as_str()]));
        }
        writer.chart(Chart::line("loss").series("s", ys.iter().copied()));
        let written = writer.take();
        let stored = card::encode(&written).expect("encodes");
        let back = card::decode(&stored).map_err(|e| TestCaseError::fail(e.to_string()))?;
        // NaN != NaN: compare the encodings.
        prop_assert_eq!(card::encode(&back).expect("encodes"), stored.clone());
        for bytes in [damage(&stored, &damage_done), arbitrary] {
            let _ = card::decode(&bytes);
        }
    }

    #[test]
    fn foreach_element_lists_are_an_error_or_a_list(
        items in proptest::collection::vec(artifact(), 0..4),
        damage_done in mutations(),
        arbitrary in arbitrary_bytes(),
    ) {
        let list: Vec<ByteBuf> = items.iter().map(|i| ByteBuf::from(encode(i))).collect();
        let stored = rmp_serde::to_vec(&list).expect("encodes");
        let back: Vec<ByteBuf> = decode_field(&stored).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(&back, &list);
        for bytes in [damage(&stored, &damage_done), arbitrary] {
            if let Ok(list) = decode_field::<Vec<ByteBuf>>(&bytes) {
                for item in &list {
                    let _ = decode_field::<Artifact>(item);
                    let _ = flow_runtime::__private::decode_item::<Artifact>(item, "fan");
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// JSON records.

fn task_path(step: &str) -> TaskPath {
    TaskPath {
        step: step.into(),
        task: "3".into(),
    }
}

fn task_meta() -> TaskMeta {
    TaskMeta {
        format: 1,
        flow: "Flow".into(),
        run_id: "run".into(),
        spec: TaskSpec {
            step: "gather".into(),
            task_id: "0".into(),
            frames: vec![FrameRecord {
                split: "fan".into(),
                index: 2,
                count: 5,
                foreach: true,
                is_loop: false,
            }],
            input: InputSpec::Join {
                base: task_path("fan"),
                inputs: vec![task_path("sq"), task_path("sq")],
            },
        },
        status: TaskStatus::Failed,
        attempts: vec![AttemptRecord {
            attempt: 0,
            started: "2025-01-01T00:00:00.000Z".into(),
            finished: "2025-01-01T00:00:01.000Z".into(),
            failure: Some(TaskFailure {
                kind: "panic".into(),
                message: "boom".into(),
                causes: vec!["why".into()],
                location: Some("src/main.rs:1:2".into()),
            }),
        }],
        foreach: Some(ForeachRecord {
            field: "xs".into(),
            count: 5,
            items: BlobHash::of(b"items"),
        }),
        chose: Some("big".into()),
        origin_run_id: None,
        job: Some("slurm:12".into()),
    }
}

fn task_index() -> TaskIndex {
    let mut index = TaskIndex::new(vec![ArtifactEntry {
        name: "xs".into(),
        hash: BlobHash::of(b"xs"),
        size: 2,
        type_name: "alloc::vec::Vec<u64>".into(),
        encoding: Encoding::MsgPack,
    }]);
    index.metadata = Some(serde_json::to_value(task_meta()).expect("json"));
    index
}

fn run_record() -> RunRecord {
    RunRecord {
        format: 1,
        flow: "Flow".into(),
        run_id: "run".into(),
        params: serde_json::json!({"n": 3, "name": "x"}),
        status: RunStatus::Running,
        started: "2025-01-01T00:00:00.000Z".into(),
        finished: None,
        user: "me".into(),
        host: "here".into(),
        pid: 7,
        tags: vec!["a".into()],
        graph: GraphRecord {
            steps: vec![StepRecord {
                name: "start".into(),
                kind: "linear".into(),
                doc: String::new(),
                next: vec!["end".into()],
                foreach: None,
                join_of: None,
                resources: Default::default(),
            }],
        },
        origin_run_id: None,
        failure: None,
        provenance: None,
        spin_of: None,
        keep_checkpoints: Default::default(),
        deleting: None,
    }
}

/// A JSON document nested `depth` arrays deep.
fn deep_json(depth: usize) -> Vec<u8> {
    let mut bytes = vec![b'['; depth];
    bytes.extend(std::iter::repeat_n(b']', depth));
    bytes
}

/// Writes `bytes` as a task's done marker and reads the task every way the run layer does.
fn read_marker(store: &RunStore, bytes: &[u8]) {
    let task = RunStore::task_key("Flow", "run", "step", "0").expect("key");
    let marker = task.join(DONE_MARKER).expect("key");
    store.storage().put(&marker, bytes).expect("writes");
    let _ = read_task(store.storage(), &task);
    let _ = store.read_done(&task);
    let _ = store.read_meta(&task);
    let _ = store.read_index(&task);
}

fn decode_records(bytes: &[u8]) {
    let _ = serde_json::from_slice::<RunRecord>(bytes);
    let _ = serde_json::from_slice::<TaskMeta>(bytes);
    let _ = serde_json::from_slice::<TaskSpec>(bytes);
    let _ = serde_json::from_slice::<TaskIndex>(bytes);
}

fn store() -> (tempfile::TempDir, RunStore) {
    let dir = tempfile::tempdir().expect("temp dir");
    let storage = LocalStorage::open(dir.path())
        .expect("datastore")
        .with_sync(false);
    (dir, RunStore::new(std::sync::Arc::new(storage)))
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn done_markers_from_arbitrary_or_damaged_bytes_are_an_error_or_an_index(
        arbitrary in arbitrary_bytes(),
        damage_done in mutations(),
        depth in 0usize..3000,
    ) {
        let (_dir, store) = store();
        let valid = serde_json::to_vec_pretty(&task_index()).expect("json");
        read_marker(&store, &valid);
        let task = RunStore::task_key("Flow", "run", "step", "0").expect("key");
        prop_assert_eq!(store.read_done(&task).expect("valid").map(|d| d.1), Some(Some(task_meta())));
        for bytes in [arbitrary, damage(&valid, &damage_done), deep_json(depth)] {
            read_marker(&store, &bytes);
        }
    }

    #[test]
    fn run_records_metadata_and_specs_from_damaged_bytes_are_an_error_or_a_record(
        arbitrary in arbitrary_bytes(),
        damage_done in mutations(),
        depth in 0usize..3000,
    ) {
        decode_records(&arbitrary);
        decode_records(&deep_json(depth));
        for valid in [
            serde_json::to_vec_pretty(&run_record()).expect("json"),
            serde_json::to_vec_pretty(&task_meta()).expect("json"),
            serde_json::to_vec_pretty(&task_meta().spec).expect("json"),
        ] {
            decode_records(&damage(&valid, &damage_done));
        }
    }
}

/// The run layer's own readers on a damaged record: through the datastore, naming the file.
#[test]
fn a_damaged_run_record_or_task_metadata_is_an_error_naming_the_file() {
    let (_dir, store) = store();
    let run = RunStore::run_key("Flow", "run").expect("key");
    store
        .storage()
        .put(
            &run.join("run.json").expect("key"),
            b"{\"format\": 1, \"flow\": [[[",
        )
        .expect("writes");
    let message = store
        .read_run("Flow", "run")
        .expect_err("damaged")
        .to_string();
    assert!(message.contains("run.json"), "{message}");
    let task = RunStore::task_key("Flow", "run", "step", "0").expect("key");
    store
        .storage()
        .put(&task.join("meta.json").expect("key"), &deep_json(100_000))
        .expect("writes");
    let message = store.read_meta(&task).expect_err("damaged").to_string();
    assert!(message.contains("meta.json"), "{message}");
}

// ---------------------------------------------------------------------------------------------
// burn records.

#[cfg(feature = "burn")]
mod burn_records {
    use std::sync::OnceLock;

    use flow_runtime::burn_model::burn;
    use flow_runtime::burn_model::burn::module::Module;
    use flow_runtime::burn_model::burn::nn::{Linear, LinearConfig};
    use flow_runtime::burn_model::burn::optim::{AdamConfig, GradientsParams};
    use flow_runtime::burn_model::burn::tensor::{Device, Tensor};
    use flow_runtime::burn_model::export::StoredWeights;
    use flow_runtime::burn_model::{
        BURN_VERSION, ConfiguredModule, Model, OptimizerState, RECORD_FORMAT,
    };

    use super::*;

    #[derive(burn::config::Config, Debug)]
    pub struct NetConfig {
        #[config(default = 3)]
        pub inputs: usize,
    }

    #[derive(burn::module::Module, Debug)]
    pub struct Net {
        layer: Linear,
    }

    impl ConfiguredModule for Net {
        type Config = NetConfig;
        fn from_config(config: &NetConfig, device: &Device) -> Self {
            Net {
                layer: LinearConfig::new(config.inputs, 2).init(device),
            }
        }
    }

    #[derive(Serialize)]
    struct StoredModel<'a> {
        burn_version: &'a str,
        format: &'a str,
        module: &'a str,
        config: &'a str,
        #[serde(with = "serde_bytes")]
        record: &'a [u8],
    }

    #[derive(Serialize)]
    struct StoredOptimizer<'a> {
        burn_version: &'a str,
        format: &'a str,
        #[serde(with = "serde_bytes")]
        record: &'a [u8],
    }

    fn model() -> Model<Net> {
        Model::init_seeded(NetConfig::new(), &Device::default(), 5)
    }

    /// The record of an Adam optimizer after one step, made once.
    fn optimizer_record() -> &'static [u8] {
        static RECORD: OnceLock<Vec<u8>> = OnceLock::new();
        RECORD.get_or_init(|| {
            let autodiff = Device::default().autodiff();
            let mut net = model()
                .module()
                .expect("set")
                .clone()
                .fork(&autodiff)
                .train();
            let mut optimizer = OptimizerState::default()
                .restore_or(AdamConfig::new().init())
                .expect("restore");
            let x = Tensor::<2>::ones([2, 3], &autodiff);
            let loss = net.layer.forward(x).powi_scalar(2).mean();
            let grads = GradientsParams::from_grads(loss.backward(), &net);
            net = optimizer.step(1e-2, net, grads);
            drop(net);
            OptimizerState::capture(&optimizer)
                .expect("capture")
                .record_bytes()
                .expect("set")
                .to_vec()
        })
    }

    /// The stored form of a model whose record is `record`, everything else valid.
    fn model_with_record(record: &[u8]) -> Vec<u8> {
        encode(&Some(StoredModel {
            burn_version: BURN_VERSION,
            format: RECORD_FORMAT,
            module: "Net",
            config: r#"{"inputs":3}"#,
            record,
        }))
    }

    fn optimizer_with_record(record: &[u8]) -> Vec<u8> {
        encode(&Some(StoredOptimizer {
            burn_version: BURN_VERSION,
            format: RECORD_FORMAT,
            record,
        }))
    }

    fn decode_burn(bytes: &[u8]) {
        let _ = decode_field::<Model<Net>>(bytes);
        let _ = decode_field::<OptimizerState>(bytes);
        // `export-model`'s decoder, which reads any model without its Rust type.
        let _ = StoredWeights::from_artifact(bytes);
    }

    proptest! {
        #![proptest_config(config())]

        #[test]
        fn burn_records_from_arbitrary_or_damaged_bytes_are_an_error_or_a_model(
            arbitrary in arbitrary_bytes(),
            damage_done in mutations(),
        ) {
            let valid = model().record_bytes().expect("set").to_vec();
            prop_assert!(decode_field::<Model<Net>>(&model_with_record(&valid)).is_ok());
            prop_assert!(decode_field::<OptimizerState>(&optimizer_with_record(optimizer_record())).is_ok());
            prop_assert!(StoredWeights::from_artifact(&model_with_record(&valid)).is_ok());
            for record in [
                arbitrary.clone(),
                damage(&valid, &damage_done),
                damage(optimizer_record(), &damage_done),
            ] {
                decode_burn(&model_with_record(&record));
                decode_burn(&optimizer_with_record(&record));
            }
            decode_burn(&arbitrary);
            decode_burn(&damage(&encode(&model()), &damage_done));
        }
    }
}
