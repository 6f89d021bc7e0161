use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

use super::*;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
struct Inner {
    label: String,
    weights: Vec<f32>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
enum Phase {
    Idle,
    Training { epoch: u32, lr: f64 },
    Done(String),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Rich {
    count: u64,
    inner: Inner,
    phases: Vec<Phase>,
    current: Phase,
    scores: HashMap<String, i32>,
    maybe: Option<Inner>,
    none: Option<u8>,
    #[serde(with = "serde_bytes")]
    model: Vec<u8>,
    tuple: (i8, char),
}

fn rich() -> Rich {
    Rich {
        count: 42,
        inner: Inner {
            label: "x".into(),
            weights: vec![0.5, -1.25, f32::MAX],
        },
        phases: vec![
            Phase::Idle,
            Phase::Training { epoch: 3, lr: 0.1 },
            Phase::Done("ok".into()),
        ],
        current: Phase::Training { epoch: 7, lr: 1e-3 },
        scores: HashMap::from([("a".to_owned(), 1), ("b".to_owned(), -2)]),
        maybe: Some(Inner::default()),
        none: None,
        model: (0..=255).collect(),
        tuple: (-3, 'é'),
    }
}

/// Borrows encoded fields as the `(name, bytes)` pairs `decode_state` takes.
fn pairs(fields: &[EncodedField]) -> Vec<(&str, &[u8])> {
    fields
        .iter()
        .map(|f| (f.name.as_str(), f.bytes.as_slice()))
        .collect()
}

#[test]
fn roundtrip_rich_struct() {
    let state = rich();
    let fields = encode_state(&state).unwrap();
    let names: Vec<_> = fields.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "count", "inner", "phases", "current", "scores", "maybe", "none", "model", "tuple"
        ]
    );
    assert_eq!(fields[0].type_name, "u64");
    assert!(
        fields[1].type_name.ends_with("Inner"),
        "{}",
        fields[1].type_name
    );
    // `#[serde(with)]` fields show serde's adapter: type names are informative only.
    assert!(fields[7].type_name.contains("SerializeWith"));
    let back: Rich = decode_state(&pairs(&fields)).unwrap();
    assert_eq!(back, state);
}

#[test]
fn each_field_decodes_alone() {
    let state = rich();
    let fields = encode_state(&state).unwrap();
    let inner: Inner = decode_field(&fields[1].bytes).unwrap();
    assert_eq!(inner, state.inner);
    let model: serde_bytes::ByteBuf = decode_field(&fields[7].bytes).unwrap();
    assert_eq!(model.into_vec(), state.model);
}

#[test]
fn nested_structs_are_encoded_with_field_names() {
    let fields = encode_state(&rich()).unwrap();
    let inner = &fields[1].bytes;
    // A map (fixmap of 2 entries), not an array, whose first key is "label".
    assert_eq!(inner[0], 0x82);
    assert_eq!(&inner[1..7], b"\xa5label");
}

#[test]
fn bytes_fields_are_stored_as_one_binary_value() {
    let fields = encode_state(&rich()).unwrap();
    let model = &fields[7].bytes;
    // bin 16: marker, two length bytes, then the raw bytes.
    assert_eq!(model.len(), 3 + 256);
    assert_eq!(model[0], 0xc5);
    assert_eq!(&model[3..], (0..=255).collect::<Vec<u8>>());
}

#[test]
fn fields_come_back_in_any_order() {
    let state = rich();
    let mut fields = encode_state(&state).unwrap();
    fields.reverse();
    let back: Rich = decode_state(&pairs(&fields)).unwrap();
    assert_eq!(back, state);
}

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct V1 {
    xs: Vec<u64>,
    inner: InnerV1,
}

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct InnerV1 {
    a: u8,
}

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct V2 {
    xs: Vec<u64>,
    inner: InnerV2,
    #[serde(default)]
    added: String,
    #[serde(default = "seven")]
    also_added: u32,
}

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct InnerV2 {
    a: u8,
    #[serde(default)]
    b: Option<bool>,
}

fn seven() -> u32 {
    7
}

#[test]
fn a_new_default_field_reads_old_artifacts() {
    let old = V1 {
        xs: vec![1, 2],
        inner: InnerV1 { a: 9 },
    };
    let fields = encode_state(&old).unwrap();
    let new: V2 = decode_state(&pairs(&fields)).unwrap();
    assert_eq!(
        new,
        V2 {
            xs: vec![1, 2],
            inner: InnerV2 { a: 9, b: None },
            added: String::new(),
            also_added: 7,
        }
    );
}

#[test]
fn removed_fields_are_ignored() {
    let fields = encode_state(&V2 {
        xs: vec![3],
        inner: InnerV2 {
            a: 1,
            b: Some(true),
        },
        added: "gone".into(),
        also_added: 1,
    })
    .unwrap();
    let old: V1 = decode_state(&pairs(&fields)).unwrap();
    assert_eq!(
        old,
        V1 {
            xs: vec![3],
            inner: InnerV1 { a: 1 }
        }
    );
}

#[derive(Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Strict {
    xs: Vec<u64>,
}

#[test]
fn unknown_fields_are_rejected_when_the_user_denies_them() {
    let fields = encode_state(&V1 {
        xs: vec![],
        inner: InnerV1 { a: 0 },
    })
    .unwrap();
    let err = decode_state::<Strict>(&pairs(&fields)).unwrap_err();
    assert!(matches!(err, DecodeError::State(_)));
    assert!(err.to_string().contains("unknown field `inner`"), "{err}");
}

#[test]
fn a_missing_field_without_default_is_named() {
    let fields = encode_state(&Strict { xs: vec![1] }).unwrap();
    let err = decode_state::<V1>(&pairs(&fields)).unwrap_err();
    assert!(err.to_string().contains("missing field `inner`"), "{err}");
}

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct Flat {
    top: u32,
    #[serde(flatten)]
    common: Common,
    #[serde(flatten)]
    extra: BTreeMap<String, String>,
}

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct Common {
    run_name: String,
    seed: u64,
}

#[test]
fn flatten_becomes_top_level_fields() {
    let state = Flat {
        top: 1,
        common: Common {
            run_name: "r".into(),
            seed: 5,
        },
        extra: BTreeMap::from([("note".to_owned(), "hi".to_owned())]),
    };
    let fields = encode_state(&state).unwrap();
    let names: Vec<_> = fields.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(names, ["top", "run_name", "seed", "note"]);
    assert_eq!(fields[2].type_name, "u64");
    assert_eq!(fields[3].type_name, "alloc::string::String");
    let back: Flat = decode_state(&pairs(&fields)).unwrap();
    assert_eq!(back, state);
}

#[derive(Debug, PartialEq, Serialize, Deserialize, Default)]
struct WithSkip {
    kept: u8,
    #[serde(skip)]
    cache: Vec<u8>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    sometimes: Option<u8>,
    #[serde(rename = "renamed")]
    original: bool,
}

#[test]
fn skipped_fields_do_not_appear() {
    let state = WithSkip {
        kept: 1,
        cache: vec![1, 2, 3],
        sometimes: None,
        original: true,
    };
    let fields = encode_state(&state).unwrap();
    let names: Vec<_> = fields.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(names, ["kept", "renamed"]);
    let back: WithSkip = decode_state(&pairs(&fields)).unwrap();
    assert_eq!(
        back,
        WithSkip {
            cache: vec![],
            ..state
        }
    );
}

#[derive(Debug, PartialEq, Serialize, Deserialize, Default)]
struct Empty;

#[derive(Debug, PartialEq, Serialize, Deserialize, Default)]
struct NoFields {}

#[test]
fn stateless_flows_have_no_fields() {
    assert!(encode_state(&Empty).unwrap().is_empty());
    assert!(encode_state(&NoFields {}).unwrap().is_empty());
    assert_eq!(decode_state::<Empty>(&[]).unwrap(), Empty);
    assert_eq!(decode_state::<NoFields>(&[]).unwrap(), NoFields {});
}

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct Wrapper(Strict);

#[test]
fn newtype_wrappers_are_looked_through() {
    let state = Wrapper(Strict { xs: vec![4] });
    let fields = encode_state(&state).unwrap();
    assert_eq!(fields.len(), 1);
    assert_eq!(decode_state::<Wrapper>(&pairs(&fields)).unwrap(), state);
}

#[test]
fn non_struct_states_are_rejected_clearly() {
    let err = encode_state(&vec![1, 2]).unwrap_err();
    assert!(matches!(
        err,
        SplitError::NotAStruct {
            found: "a sequence"
        }
    ));
    assert!(
        err.to_string()
            .starts_with("flow state must be a struct with named fields, found a sequence"),
        "{err}"
    );
    for (err, found) in [
        (encode_state(&5u8).unwrap_err(), "an integer"),
        (encode_state(&(1, 2)).unwrap_err(), "a tuple"),
        (encode_state(&Phase::Idle).unwrap_err(), "an enum"),
        (encode_state(&Some(Empty)).unwrap_err(), "an `Option`"),
        (encode_state("text").unwrap_err(), "a string"),
    ] {
        assert!(err.to_string().contains(found), "{err}");
    }
}

#[test]
fn maps_need_string_keys() {
    let ok = encode_state(&HashMap::from([("k".to_owned(), 1)])).unwrap();
    assert_eq!(ok[0].name, "k");
    let err = encode_state(&HashMap::from([(1u8, 1)])).unwrap_err();
    assert!(
        matches!(
            err,
            SplitError::NonStringKey {
                found: "an integer"
            }
        ),
        "{err}"
    );
}

#[derive(Serialize)]
struct Clash {
    seed: u64,
    #[serde(flatten)]
    common: Common,
}

#[test]
fn duplicate_names_are_rejected() {
    let err = encode_state(&Clash {
        seed: 1,
        common: Common {
            run_name: String::new(),
            seed: 2,
        },
    })
    .unwrap_err();
    assert!(
        matches!(&err, SplitError::DuplicateField { name } if name == "seed"),
        "{err}"
    );
}

struct Failing;

impl Serialize for Failing {
    fn serialize<S: serde::Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
        Err(serde::ser::Error::custom("the GPU buffer is not mapped"))
    }
}

#[derive(Serialize)]
struct HasFailing {
    fine: u8,
    broken: Failing,
}

#[test]
fn a_failing_field_is_named() {
    let err = encode_state(&HasFailing {
        fine: 1,
        broken: Failing,
    })
    .unwrap_err();
    let message = err.to_string();
    assert!(message.contains("field `broken`"), "{message}");
    assert!(
        message.contains("the GPU buffer is not mapped"),
        "{message}"
    );
}

#[test]
fn a_corrupt_field_is_named() {
    let state = rich();
    let fields = encode_state(&state).unwrap();
    let mut pairs = pairs(&fields);
    // 0xc1 is the one marker MessagePack never uses.
    pairs[2].1 = &[0xc1];
    let err = decode_state::<Rich>(&pairs).unwrap_err();
    assert!(
        matches!(&err, DecodeError::Field { field, .. } if field == "phases"),
        "{err}"
    );
    assert!(
        err.to_string()
            .starts_with("field `phases` could not be decoded"),
        "{err}"
    );

    // A truncated encoding is named the same way.
    let truncated = &fields[1].bytes[..fields[1].bytes.len() - 3];
    pairs[2].1 = &fields[2].bytes;
    pairs[1].1 = truncated;
    let err = decode_state::<Rich>(&pairs).unwrap_err();
    assert!(
        matches!(&err, DecodeError::Field { field, .. } if field == "inner"),
        "{err}"
    );
}

#[test]
fn a_field_whose_type_changed_is_named() {
    #[derive(Serialize)]
    struct Before {
        count: String,
    }
    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct After {
        count: u64,
    }
    let fields = encode_state(&Before {
        count: "many".into(),
    })
    .unwrap();
    let err = decode_state::<After>(&pairs(&fields)).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("field `count` could not be decoded"),
        "{err}"
    );
}
