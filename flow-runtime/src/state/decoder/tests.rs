//! The decoder reads what rmp-serde reads, the same way: every case decodes a value's bytes with
//! both and compares the outcomes (the value, or that both fail).

use std::collections::{BTreeMap, HashMap};
use std::fmt::Debug;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;

use super::from_slice;
use crate::state::bounded;

/// What rmp-serde makes of `bytes` as a `T`, with the check every stored value passes first and
/// the rule that the bytes hold exactly one value.
fn reference<T: DeserializeOwned>(bytes: &[u8]) -> Option<T> {
    bounded::check(bytes).ok()?;
    rmp_serde::from_slice(bytes).ok()
}

/// Decodes `bytes` as a `T` with both decoders and asserts that they agree.
fn agree<T: DeserializeOwned + PartialEq + Debug>(bytes: &[u8]) {
    let expected = reference::<T>(bytes);
    let ours = bounded::check(bytes)
        .ok()
        .and_then(|()| from_slice::<T>(bytes).ok());
    assert_eq!(
        ours,
        expected,
        "{} from {bytes:02x?}",
        std::any::type_name::<T>()
    );
}

fn roundtrip<T: Serialize + DeserializeOwned + PartialEq + Debug>(value: &T) {
    let bytes = rmp_serde::to_vec_named(value).expect("encodes");
    let back: T = from_slice(&bytes).expect("decodes");
    assert_eq!(&back, value);
    agree::<T>(&bytes);
}

#[derive(Debug, PartialEq, Serialize, Deserialize, Default)]
struct Unit;

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct Meters(f64);

#[derive(Debug, PartialEq, Serialize, Deserialize, Clone)]
enum Shape {
    Empty,
    Circle(f32),
    Rect(u32, u32),
    Named { name: String, sides: Option<u8> },
}

#[derive(Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind")]
enum Tagged {
    A { x: i64 },
    B { y: String },
}

#[derive(Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
enum Untagged {
    Number(i64),
    Text(String),
    List(Vec<u8>),
}

#[derive(Debug, PartialEq, Serialize, Deserialize, Default)]
struct Nested {
    id: u64,
    #[serde(default)]
    tags: Vec<String>,
    scores: BTreeMap<String, f64>,
    shape: Option<Vec<Shape>>,
    #[serde(with = "serde_bytes")]
    raw: Vec<u8>,
    wide: i128,
    unsigned: u128,
    unit: Unit,
    #[serde(flatten)]
    extra: HashMap<String, u32>,
}

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct Ext((i8, ByteBuf));

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct HasExt {
    #[serde(rename = "_ExtStruct")]
    ext: Ext,
}

#[test]
fn every_kind_of_value_roundtrips_as_rmp_serde_reads_it() {
    for n in [
        0u64,
        1,
        127,
        128,
        255,
        256,
        65_535,
        65_536,
        u32::MAX as u64,
        u64::MAX,
    ] {
        roundtrip(&n);
    }
    for n in [
        0i64,
        -1,
        -32,
        -33,
        -128,
        -129,
        -32_768,
        -32_769,
        i64::MIN,
        i64::MAX,
    ] {
        roundtrip(&n);
    }
    roundtrip(&(
        1.5f32,
        -0.0f64,
        f32::INFINITY,
        true,
        false,
        'x',
        '\u{1F600}',
    ));
    roundtrip(&f32::NAN.to_bits());
    for len in [0usize, 31, 32, 255, 256, 65_535, 65_536] {
        roundtrip(&"é".repeat(len / 2));
        roundtrip(&ByteBuf::from(vec![7u8; len]));
        roundtrip(&vec![3u16; len.min(20_000)]);
    }
    roundtrip(&(0..1000).map(|i| i as f32 * 0.25).collect::<Vec<f32>>());
    roundtrip(&(0..1000).map(|i| -(i as f64)).collect::<Vec<f64>>());
    roundtrip(&vec![Some(1u8), None, Some(3)]);
    roundtrip(&Unit);
    roundtrip(&Meters(3.5));
    roundtrip(&(Unit, (), [1u8, 2, 3]));
    for shape in [
        Shape::Empty,
        Shape::Circle(1.0),
        Shape::Rect(2, 3),
        Shape::Named {
            name: "tri".into(),
            sides: Some(3),
        },
    ] {
        roundtrip(&shape);
        roundtrip(&vec![shape.clone(), shape]);
    }
    roundtrip(&Tagged::A { x: -5 });
    roundtrip(&Tagged::B { y: "b".into() });
    roundtrip(&Untagged::Number(-7));
    roundtrip(&Untagged::Text("t".into()));
    roundtrip(&Untagged::List(vec![1, 2]));
    roundtrip(&Nested {
        id: 9,
        tags: vec!["a".into(), String::new()],
        scores: [("x".to_string(), 0.5), ("y".to_string(), -1.0)].into(),
        shape: Some(vec![Shape::Rect(1, 2), Shape::Empty]),
        raw: vec![0, 255, 3],
        wide: i128::MIN,
        unsigned: u128::MAX,
        unit: Unit,
        extra: [("z".to_string(), 4)].into(),
    });
    roundtrip(&HasExt {
        ext: Ext((-3, ByteBuf::from(vec![1, 2, 3, 4]))),
    });
    roundtrip(&serde_json::json!({"a": [1, -2, 3.5, null, true, "s", {"b": []}]}));
}

#[test]
fn values_read_as_other_types_succeed_or_fail_as_with_rmp_serde() {
    let encodings: Vec<Vec<u8>> = vec![
        rmp_serde::to_vec_named(&5u8).expect("encodes"),
        rmp_serde::to_vec_named(&300u16).expect("encodes"),
        rmp_serde::to_vec_named(&-3i32).expect("encodes"),
        rmp_serde::to_vec_named(&u64::MAX).expect("encodes"),
        rmp_serde::to_vec_named(&1.5f32).expect("encodes"),
        rmp_serde::to_vec_named(&2.5f64).expect("encodes"),
        rmp_serde::to_vec_named(&"Circle").expect("encodes"),
        rmp_serde::to_vec_named(&ByteBuf::from(vec![1u8, 2])).expect("encodes"),
        rmp_serde::to_vec_named(&vec![1u8, 2]).expect("encodes"),
        rmp_serde::to_vec_named(&()).expect("encodes"),
        rmp_serde::to_vec_named(&Vec::<u8>::new()).expect("encodes"),
        rmp_serde::to_vec_named(&Shape::Circle(2.0)).expect("encodes"),
        rmp_serde::to_vec_named(&Shape::Empty).expect("encodes"),
        rmp_serde::to_vec_named(&1u32).expect("encodes"),
        rmp_serde::to_vec_named(&i128::MAX).expect("encodes"),
        vec![0x90 | 16].into_iter().chain([9u8; 16]).collect(),
        vec![0x81, 0x01, 0xc0],
        vec![0x82, 0xa1, b'a', 0x01, 0xa1, b'b', 0x02],
        vec![0xa2, 0xff, 0xfe],
        vec![0xd4, 0x05, 0x01],
        vec![0xc0],
        vec![0x91, 0xc0],
    ];
    for bytes in &encodings {
        agree::<u8>(bytes);
        agree::<i8>(bytes);
        agree::<u64>(bytes);
        agree::<i64>(bytes);
        agree::<f32>(bytes);
        agree::<f64>(bytes);
        agree::<bool>(bytes);
        agree::<String>(bytes);
        agree::<ByteBuf>(bytes);
        agree::<Vec<u8>>(bytes);
        agree::<Option<u8>>(bytes);
        agree::<()>(bytes);
        agree::<Unit>(bytes);
        agree::<Shape>(bytes);
        agree::<i128>(bytes);
        agree::<u128>(bytes);
        agree::<(u8, u8)>(bytes);
        agree::<BTreeMap<String, u8>>(bytes);
        agree::<BTreeMap<u8, Option<()>>>(bytes);
        agree::<serde_json::Value>(bytes);
        agree::<Untagged>(bytes);
    }
}

/// A small deterministic generator, so that a failure names a reproducible case.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        self.0 >> 33
    }
}

#[test]
fn damaged_encodings_fail_or_decode_as_with_rmp_serde() {
    let seeds: Vec<Vec<u8>> = vec![
        rmp_serde::to_vec_named(&Nested::default()).expect("encodes"),
        rmp_serde::to_vec_named(&vec![
            Shape::Rect(1, 2),
            Shape::Named {
                name: "n".into(),
                sides: None,
            },
        ])
        .expect("encodes"),
        rmp_serde::to_vec_named(&(0..20).map(|i| i as f32).collect::<Vec<_>>()).expect("encodes"),
        rmp_serde::to_vec_named(&serde_json::json!({"a": [1, "b", {"c": null}]})).expect("encodes"),
    ];
    let mut random = Lcg(7);
    for seed in &seeds {
        for _ in 0..3000 {
            let mut bytes = seed.clone();
            for _ in 0..1 + random.next() % 3 {
                let at = (random.next() as usize) % bytes.len();
                match random.next() % 3 {
                    0 => bytes[at] = random.next() as u8,
                    1 => bytes.truncate(at),
                    _ => bytes.insert(at, random.next() as u8),
                }
                if bytes.is_empty() {
                    break;
                }
            }
            agree::<Nested>(&bytes);
            agree::<Vec<Shape>>(&bytes);
            agree::<Vec<f32>>(&bytes);
            agree::<serde_json::Value>(&bytes);
        }
    }
}

#[test]
fn bytes_after_the_value_are_an_error() {
    let error = from_slice::<u8>(&[0x01, 0x02]).expect_err("one byte too many");
    assert!(
        error
            .to_string()
            .contains("bytes left after the value, at byte 1"),
        "{error}"
    );
}

/// A type that wraps itself with nothing in between: `Some` reads no byte, so only the limit on
/// wrappers stops it.
#[derive(Debug, PartialEq, Deserialize)]
struct Endless(Option<Box<Endless>>);

#[test]
fn a_type_that_wraps_itself_hits_the_depth_limit_instead_of_the_stack() {
    let error = from_slice::<Endless>(&[0x01]).expect_err("no value ends it");
    assert!(
        matches!(error, rmp_serde::decode::Error::DepthLimitExceeded),
        "{error}"
    );
}

#[derive(Debug, PartialEq, Serialize, Deserialize)]
enum List {
    Cons(Box<List>),
    Nil,
}

#[test]
fn an_enum_nested_past_the_limit_is_an_error() {
    let mut value = List::Nil;
    for _ in 0..super::MAX_DEPTH + 1 {
        value = List::Cons(Box::new(value));
    }
    let bytes = rmp_serde::to_vec_named(&value).expect("encodes");
    assert!(from_slice::<List>(&bytes).is_err());
    let mut value = List::Nil;
    for _ in 0..super::MAX_DEPTH - 1 {
        value = List::Cons(Box::new(value));
    }
    let bytes = rmp_serde::to_vec_named(&value).expect("encodes");
    assert_eq!(from_slice::<List>(&bytes).expect("within the limit"), value);
}
