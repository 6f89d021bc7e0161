//! Byte-identity of the serializer with `rmp_serde::encode::write_named`.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::fmt;
use std::marker::PhantomData;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::num::{NonZeroU32, Wrapping};
use std::ops::Bound;
use std::path::PathBuf;
use std::time::Duration;

use serde::Serialize;
use serde::ser::{
    Error as _, SerializeMap, SerializeSeq, SerializeStruct, SerializeStructVariant,
    SerializeTuple, SerializeTupleStruct, SerializeTupleVariant,
};
use serde_bytes::{ByteBuf, Bytes};

use super::*;

/// What rmp-serde writes: the bytes ours must match.
pub(super) fn reference<T: Serialize + ?Sized>(value: &T) -> Vec<u8> {
    let mut out = Vec::new();
    rmp_serde::encode::write_named(&mut out, value).expect("rmp_serde encodes");
    out
}

/// What rmp-serde writes for a hash collection once its entries are sorted by their encoded
/// bytes: the bytes ours must match for a `HashMap` or `HashSet`. `value` must be a flat
/// collection (its entries' encodings are rmp-serde's).
pub(super) fn sorted_reference<T: Serialize + ?Sized>(value: &T) -> Vec<u8> {
    let mut value = rmpv::decode::read_value(&mut &reference(value)[..]).expect("rmpv reads");
    let encoded = |v: &rmpv::Value| {
        let mut out = Vec::new();
        rmpv::encode::write_value(&mut out, v).expect("rmpv writes");
        out
    };
    match &mut value {
        rmpv::Value::Array(items) => items.sort_by_key(encoded),
        rmpv::Value::Map(entries) => entries.sort_by_key(|(k, v)| (encoded(k), encoded(v))),
        other => panic!("not a collection: {other}"),
    }
    // rmpv writes what rmp-serde writes for the values our tests use (no floats narrowed,
    // integers in their smallest form).
    encoded(&value)
}

/// Chunk sizes `(first, max)` besides the default: tiny ones send nearly every value through
/// the flushing slow path and direct payload writes.
const CHUNKS: [(usize, usize); 4] = [(1, 1), (1, 7), (3, 64), (16, 1024)];

#[track_caller]
fn assert_same(ours: &[u8], expected: &[u8], how: &str) {
    if ours != expected {
        let at = ours
            .iter()
            .zip(expected)
            .position(|(a, b)| a != b)
            .unwrap_or(ours.len().min(expected.len()));
        let window = |b: &[u8]| b[at.saturating_sub(8)..(at + 8).min(b.len())].to_vec();
        panic!(
            "{how}: {} bytes vs rmp_serde's {}; first difference at {at}: ours {:02x?} rmp {:02x?}",
            ours.len(),
            expected.len(),
            window(ours),
            window(expected),
        );
    }
}

/// Encodes `value` every way this module can and compares each with rmp-serde.
#[track_caller]
fn check<T: Serialize + ?Sized>(value: &T) {
    check_against(value, &reference(value));
}

/// Encodes `value` every way this module can and compares each with `expected`.
#[track_caller]
pub(super) fn check_against<T: Serialize + ?Sized>(value: &T, expected: &[u8]) {
    let expected = expected.to_vec();
    let mut ours = Vec::new();
    write_named(&mut ours, value).expect("encodes");
    assert_same(&ours, &expected, "write_named");
    assert_same(
        &to_vec_named(value).expect("encodes"),
        &expected,
        "to_vec_named",
    );
    for (first, max) in CHUNKS {
        let mut out = Vec::new();
        let mut serializer = Serializer::with_chunks(&mut out, first, max);
        // What `write_named` does first.
        serializer.next_type = std::any::type_name::<T>();
        value.serialize(&mut serializer).expect("encodes");
        serializer.finish().expect("flushes");
        assert_same(&out, &expected, &format!("chunks {first}..{max}"));
    }
}

/// Both encoders fail, with the same error.
#[track_caller]
fn check_error<T: Serialize + ?Sized>(value: &T) {
    let expected = rmp_serde::to_vec_named(value).expect_err("rmp_serde fails");
    let ours = to_vec_named(value).expect_err("fails");
    assert_eq!(format!("{ours:?}"), format!("{expected:?}"));
    let ours = write_named(&mut Vec::new(), value).expect_err("fails");
    assert_eq!(format!("{ours:?}"), format!("{expected:?}"));
}

const UNSIGNED: [u64; 14] = [
    0,
    1,
    31,
    32,
    127,
    128,
    255,
    256,
    65535,
    65536,
    u32::MAX as u64 - 1,
    u32::MAX as u64,
    u32::MAX as u64 + 1,
    u64::MAX,
];

const SIGNED: [i64; 34] = [
    0,
    1,
    -1,
    -31,
    -32,
    -33,
    -127,
    -128,
    -129,
    -255,
    -256,
    -257,
    -32767,
    -32768,
    -32769,
    -65535,
    -65536,
    -65537,
    i32::MIN as i64 + 1,
    i32::MIN as i64,
    i32::MIN as i64 - 1,
    i64::MIN + 1,
    i64::MIN,
    127,
    128,
    255,
    256,
    32767,
    32768,
    65535,
    65536,
    i32::MAX as i64,
    u32::MAX as i64 + 1,
    i64::MAX,
];

#[test]
fn integers_at_every_width_boundary() {
    for v in UNSIGNED {
        check(&v);
        check(&(v as usize));
        if let Ok(v) = u8::try_from(v) {
            check(&v);
        }
        if let Ok(v) = u16::try_from(v) {
            check(&v);
        }
        if let Ok(v) = u32::try_from(v) {
            check(&v);
        }
        if let Ok(v) = i64::try_from(v) {
            check(&v);
        }
        check(&u128::from(v));
        check(&i128::from(v));
    }
    for v in SIGNED {
        check(&v);
        check(&(v as isize));
        if let Ok(v) = i8::try_from(v) {
            check(&v);
        }
        if let Ok(v) = i16::try_from(v) {
            check(&v);
        }
        if let Ok(v) = i32::try_from(v) {
            check(&v);
        }
        check(&i128::from(v));
    }
    for v in [i8::MIN, i8::MAX] {
        check(&v);
    }
    for v in [i16::MIN, i16::MAX] {
        check(&v);
    }
    for v in [i128::MIN, i128::MAX, 1 << 70, -(1 << 70)] {
        check(&v);
    }
    for v in [u128::MAX, 1 << 100] {
        check(&v);
    }
    // Both sides of every power of two, which is where the formats are chosen.
    for bits in 0..64 {
        let p = 1u64 << bits;
        for v in [p - 1, p, p + 1] {
            check(&v);
            check(&(v as i64));
            check(&(v as i64).wrapping_neg());
            check(&!(v as i64));
        }
    }
    check(&(NonZeroU32::new(300).unwrap(), Wrapping(-5i16)));
    // Every value of the small types, which covers every fixint.
    for v in u8::MIN..=u8::MAX {
        check(&v);
    }
    for v in i8::MIN..=i8::MAX {
        check(&v);
    }
    check(&(i16::MIN..=i16::MAX).collect::<Vec<_>>());
    check(&(0..=u16::MAX).collect::<Vec<_>>());
}

#[test]
fn floats_bools_chars() {
    for v in [
        0.0,
        -0.0,
        1.5,
        -2.25,
        f32::NAN,
        -f32::NAN,
        f32::from_bits(0x7fc0_0001),
        f32::from_bits(0x7f80_0001),
        f32::INFINITY,
        f32::NEG_INFINITY,
        f32::MIN_POSITIVE,
        f32::from_bits(1),
        f32::MAX,
        f32::MIN,
        f32::EPSILON,
    ] {
        check(&v);
        check(&f64::from(v));
    }
    for v in [
        f64::NAN,
        f64::from_bits(0x7ff0_0000_0000_0001),
        f64::MAX,
        f64::MIN,
        f64::from_bits(1),
        1e300,
        -0.1,
    ] {
        check(&v);
    }
    check(&true);
    check(&false);
    for c in ['\0', 'a', '\u{7f}', 'é', '€', '\u{ffff}', '😀', char::MAX] {
        check(&c);
    }
}

/// String and payload lengths around every header change.
const LENGTHS: [usize; 15] = [
    0,
    1,
    15,
    16,
    31,
    32,
    33,
    255,
    256,
    257,
    65535,
    65536,
    65537,
    300_000,
    1 << 20,
];

fn payload(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 31 + i / 7) as u8).collect()
}

#[test]
fn strings_and_bytes_of_every_header_length() {
    for len in LENGTHS {
        check(&"x".repeat(len));
        check(Bytes::new(&payload(len)));
        check(&ByteBuf::from(payload(len)));
        check(&Some(Bytes::new(&payload(len))));
    }
    check("é€😀 mixed");
    check(&"é".repeat(16));
    check(&"€".repeat(100_000));
    check(&Cow::Borrowed("cow"));
    check(&Box::<str>::from("boxed"));
    check(&PathBuf::from("/tmp/a path"));
    // `Vec<u8>` without serde_bytes is a sequence of integers (`BytesMode::Normal`).
    for len in [0, 15, 16, 17, 65535, 65536, 65537] {
        check(&payload(len));
        check(payload(len).as_slice());
    }
}

#[derive(Serialize)]
struct Unit;

#[derive(Serialize)]
struct Meters(f64);

#[derive(Serialize)]
struct Pair(u8, String);

#[test]
fn options_units_newtypes_tuples_arrays() {
    check(&Some(5u8));
    check(&None::<u8>);
    check(&Some(Some(())));
    check(&Some(None::<u8>));
    check(&());
    check(&Unit);
    check(&PhantomData::<u8>);
    check(&Meters(3.5));
    check(&Pair(7, "seven".into()));
    check(&(1u8, "a", -5i32, 2.5f32, (), Unit));
    check(&(1u8,));
    check(&[1u8, 2, 3, 4]);
    check(&[200u8, 2, 3, 4]);
    check(&[0u8; 0]);
    check(&[7u8; 15]);
    check(&[7u8; 16]);
    check(&[255u8; 32]);
    check(&[1.5f32, -0.0, f32::NAN]);
    check(&[[1u8, 2], [3, 4]]);
    check(&(
        Duration::new(5, 7),
        1..9,
        2..=3u8,
        ..4u8,
        Bound::Excluded(4u8),
    ));
}

#[test]
fn collections_at_length_boundaries() {
    for len in [0usize, 1, 15, 16, 17, 65535, 65536, 65537] {
        let v: Vec<u32> = (0..len as u32)
            .map(|i| i.wrapping_mul(2_654_435_761))
            .collect();
        check(&v);
        check(&v.iter().copied().collect::<VecDeque<_>>());
        check(
            &v.iter()
                .map(|&i| i64::from(i) * 3 - (3 << 31))
                .collect::<Vec<_>>(),
        );
        let set = v.iter().copied().collect::<HashSet<_>>();
        check_against(&set, &sorted_reference(&set));
        check(&v.iter().copied().collect::<BTreeSet<_>>());
        let map: HashMap<String, i32> = (0..len)
            .map(|i| (format!("key{i}"), i as i32 - 40_000))
            .collect();
        check_against(&map, &sorted_reference(&map));
        let tree: BTreeMap<u32, Vec<u8>> = (0..len as u32)
            .map(|i| (i, payload(i as usize % 5)))
            .collect();
        check(&tree);
    }
    check(&vec![vec![1.5f64; 3]; 17]);
    check(&vec![Some("a"), None, Some("b")]);
    check(&BTreeMap::from([
        ((1u8, 'x'), vec![Unit, Unit]),
        ((2, 'y'), vec![]),
    ]));
    // Large enough to cross many default chunks.
    check(&(0..1_000_000).map(|i| i as f32 * 0.5).collect::<Vec<_>>());
    check(&(0..300_000).map(|i| f64::from(i) / 3.0).collect::<Vec<_>>());
    check(
        &(0..300_000u64)
            .map(|i| i.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> (i % 64))
            .collect::<Vec<_>>(),
    );
}

#[derive(Serialize)]
struct Inner {
    label: String,
    weights: Vec<f32>,
    #[serde(with = "serde_bytes")]
    raw: Vec<u8>,
}

#[derive(Serialize)]
struct Outer {
    id: u64,
    inner: Inner,
    list: Vec<Inner>,
    maybe: Option<Box<Outer>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    skipped: Option<u8>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    empty: Vec<u8>,
    #[serde(skip)]
    _never: u8,
    #[serde(rename = "renamed field")]
    renamed: i8,
    a_field_name_that_is_longer_than_thirty_one_bytes: bool,
    unit: (),
    ip: IpAddr,
    socket: SocketAddr,
}

fn inner(n: usize) -> Inner {
    Inner {
        label: "l".repeat(n),
        weights: (0..n).map(|i| i as f32 - 0.5).collect(),
        raw: payload(n),
    }
}

fn outer(depth: usize) -> Outer {
    Outer {
        id: 1 << (10 * depth),
        inner: inner(depth * 10),
        list: (0..depth * 9).map(inner).collect(),
        maybe: depth.checked_sub(1).map(|d| Box::new(outer(d))),
        skipped: depth.is_multiple_of(2).then_some(200),
        empty: vec![depth as u8; depth % 3],
        _never: 0,
        renamed: -(depth as i8) * 20,
        a_field_name_that_is_longer_than_thirty_one_bytes: depth % 2 == 1,
        unit: (),
        ip: if depth.is_multiple_of(2) {
            IpAddr::V4(Ipv4Addr::new(10, 0, 0, depth as u8))
        } else {
            IpAddr::V6(Ipv6Addr::LOCALHOST)
        },
        socket: SocketAddr::from(([127, 0, 0, 1], 8080)),
    }
}

#[derive(Serialize)]
struct Flat {
    a: u8,
    b: String,
}

#[derive(Serialize)]
struct WithFlatten {
    first: u32,
    #[serde(flatten)]
    flat: Flat,
    #[serde(flatten)]
    extra: BTreeMap<String, Vec<i16>>,
    last: Option<Flat>,
}

#[derive(Serialize)]
enum Plain {
    Idle,
    Named(String),
    Point(i32, i32),
    Training { epoch: u32, lr: f64 },
    Nested(Box<Plain>),
    Empty {},
    EmptyTuple(),
}

#[derive(Serialize)]
#[serde(tag = "t")]
enum Tagged {
    Unit,
    Newtype(Flat),
    Map(BTreeMap<String, u8>),
    Struct { x: f32, y: Vec<u8> },
}

#[derive(Serialize)]
#[serde(tag = "t", content = "c")]
enum Adjacent {
    Unit,
    Newtype(u64),
    Tuple(u8, u8),
    Struct { x: i64 },
}

#[derive(Serialize)]
#[serde(untagged)]
enum Untagged {
    Int(i64),
    Text(String),
    Rec { a: Vec<Untagged> },
    Nothing,
}

#[test]
fn structs_and_every_enum_kind() {
    for depth in 0..4 {
        check(&outer(depth));
    }
    check(&WithFlatten {
        first: 1,
        flat: Flat {
            a: 2,
            b: "b".into(),
        },
        extra: BTreeMap::from([("k".into(), vec![-1, 300]), ("z".repeat(40), vec![])]),
        last: None,
    });
    let many = WithFlatten {
        first: 70_000,
        flat: Flat {
            a: 255,
            b: "b".repeat(300),
        },
        extra: (0..70_000)
            .map(|i| (format!("k{i}"), vec![i as i16]))
            .collect(),
        last: Some(Flat {
            a: 0,
            b: String::new(),
        }),
    };
    check(&many);
    check(&vec![many]);
    check(&vec![
        Plain::Idle,
        Plain::Named("n".into()),
        Plain::Point(-1, 1 << 20),
        Plain::Training { epoch: 3, lr: 0.1 },
        Plain::Nested(Box::new(Plain::Nested(Box::new(Plain::Idle)))),
        Plain::Empty {},
        Plain::EmptyTuple(),
    ]);
    check(&vec![
        Tagged::Unit,
        Tagged::Newtype(Flat {
            a: 1,
            b: "x".into(),
        }),
        Tagged::Map(BTreeMap::from([("m".into(), 9)])),
        Tagged::Struct {
            x: 0.5,
            y: vec![1, 2],
        },
    ]);
    check(&vec![
        Adjacent::Unit,
        Adjacent::Newtype(u64::MAX),
        Adjacent::Tuple(1, 2),
        Adjacent::Struct { x: -40 },
    ]);
    check(&Untagged::Rec {
        a: vec![
            Untagged::Int(-3),
            Untagged::Text("t".into()),
            Untagged::Nothing,
            Untagged::Rec { a: vec![] },
        ],
    });
    check(&Ok::<u8, String>(3));
    check(&Err::<u8, String>("e".into()));
}

/// rmp-serde's marker type for an ext, as a user would declare it.
#[derive(Serialize)]
#[serde(rename = "_ExtStruct")]
struct Ext((i8, ByteBuf));

#[derive(Serialize)]
struct HasExt {
    before: u8,
    ext: Ext,
    exts: Vec<Ext>,
}

#[test]
fn exts() {
    assert_eq!(rmp_serde::MSGPACK_EXT_STRUCT_NAME, "_ExtStruct");
    for len in [
        0, 1, 2, 3, 4, 5, 8, 9, 16, 17, 255, 256, 65535, 65536, 300_000,
    ] {
        for tag in [0, 1, -1, 127, -128] {
            check(&Ext((tag, ByteBuf::from(payload(len)))));
        }
    }
    check(&HasExt {
        before: 1,
        ext: Ext((5, ByteBuf::from(vec![1, 2, 3]))),
        exts: (0..20)
            .map(|i| Ext((i, ByteBuf::from(payload(i as usize)))))
            .collect(),
    });
    let value = rmpv::Value::Map(vec![
        (rmpv::Value::from("ext"), rmpv::Value::Ext(-5, vec![9; 16])),
        (
            rmpv::Value::from(-40),
            rmpv::Value::Array(vec![
                rmpv::Value::Ext(3, vec![]),
                rmpv::Value::Ext(4, payload(70_000)),
                rmpv::Value::Binary(payload(3)),
                rmpv::Value::F32(1.0),
                rmpv::Value::Nil,
            ]),
        ),
    ]);
    check(&value);
    // Two `(i8, bytes)` pairs in one tuple: rmp-serde writes two exts, and so must we.
    check(&TwoExts);
    // rmp's ext serializers keep serde's default `is_human_readable` (true).
    assert_eq!(reference(&ExtIfHumanReadable), [0xd5, 7, b'h', b'r']);
    check(&ExtIfHumanReadable);
}

struct TwoExts;

impl Serialize for TwoExts {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_newtype_struct(
            rmp_serde::MSGPACK_EXT_STRUCT_NAME,
            &(1i8, Bytes::new(b"ab"), 2i8, Bytes::new(b"cde")),
        )
    }
}

struct ExtIfHumanReadable;

impl Serialize for ExtIfHumanReadable {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_newtype_struct(rmp_serde::MSGPACK_EXT_STRUCT_NAME, &HumanReadableProbe)
    }
}

/// A valid ext tuple only when its serializer says it is human-readable.
struct HumanReadableProbe;

impl Serialize for HumanReadableProbe {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            (7i8, Bytes::new(b"hr")).serialize(s)
        } else {
            s.serialize_u8(0)
        }
    }
}

/// A sequence (or map) that does not tell its length up front.
struct NoLen<T>(Vec<T>);

impl<T: Serialize> Serialize for NoLen<T> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(None)?;
        for item in &self.0 {
            seq.serialize_element(item)?;
        }
        seq.end()
    }
}

struct NoLenMap<K, V>(Vec<(K, V)>);

impl<K: Serialize, V: Serialize> Serialize for NoLenMap<K, V> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(None)?;
        for (k, v) in &self.0 {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

/// An iterator whose size hint is not exact goes through `collect_seq` as unknown-length.
struct Filtered(Vec<u32>);

impl Serialize for Filtered {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.0.iter().filter(|v| *v % 3 != 0))
    }
}

/// An iterator whose size hint lies about being exact: the header says what the hint says.
struct Liar(usize, usize);

impl Serialize for Liar {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        struct It(usize, usize);
        impl Iterator for It {
            type Item = u8;
            fn next(&mut self) -> Option<u8> {
                (self.0 > 0).then(|| {
                    self.0 -= 1;
                    self.0 as u8
                })
            }
            fn size_hint(&self) -> (usize, Option<usize>) {
                (self.1, Some(self.1))
            }
        }
        s.collect_seq(It(self.0, self.1))
    }
}

#[test]
fn unknown_lengths() {
    for len in [0usize, 1, 15, 16, 17, 65535, 65536, 65537] {
        check(&NoLen((0..len).map(|i| i as u16).collect()));
        check(&NoLenMap(
            (0..len).map(|i| (i as u32, i % 2 == 0)).collect(),
        ));
        check(&Filtered((0..len as u32).collect()));
    }
    check(&NoLen(vec![
        NoLen(vec![NoLen(vec![1u8, 2]), NoLen(vec![])]),
        NoLen(vec![NoLen((0..100).collect())]),
    ]));
    check(&NoLen(vec![NoLen(
        (0..300_000).map(|i| i as f32).collect(),
    )]));
    check(&NoLenMap(vec![
        ("a", NoLen(vec!["x".repeat(70_000)])),
        ("b", NoLen(vec![])),
    ]));
    check(&vec![
        NoLen(vec![Bytes::new(&[1u8; 300_000][..])]),
        NoLen(vec![Bytes::new(b"small")]),
    ]);
    check(&NoLen(vec![Ext((1, ByteBuf::from(payload(70_000))))]));
    // The header follows the size hint, not the number of elements.
    assert_eq!(reference(&Liar(1, 2)), [0x92, 0]);
    check(&(Liar(3, 5), Liar(5, 3), Liar(0, 20)));
}

#[test]
fn collect_str_and_custom_serialize() {
    #[derive(Clone)]
    struct Shown(f64);
    impl Serialize for Shown {
        fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            s.collect_str(&format_args!("{:.3}…", self.0))
        }
    }
    check(&Shown(1.0 / 3.0));
    check(&vec![Shown(1e30); 3]);
}

/// A value whose `Serialize` impl fails with a custom error, after writing part of itself.
struct Fails;

impl Serialize for Fails {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(2))?;
        seq.serialize_element(&1u8)?;
        Err(S::Error::custom("boom"))
    }
}

/// Ignores its first element's failure and goes on (a poor but legal `Serialize` impl): the
/// failed element's unknown-length sequence leaves nothing behind in rmp-serde.
struct Swallows;

impl Serialize for Swallows {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(2))?;
        let _ = seq.serialize_element(&NoLen(vec![Some(Fails)]));
        seq.serialize_element(&7u8)?;
        seq.end()
    }
}

#[test]
fn errors_match_rmp_serde() {
    check_error(&Fails);
    check_error(&vec![NoLen(vec![Fails])]);
    assert_eq!(reference(&Swallows), [0x92, 7]);
    check(&Swallows);
    check(&NoLen(vec![Swallows, Swallows]));
    // Malformed exts, failing the same way as in rmp-serde.
    struct BadExt<T>(T);
    impl<T: Serialize> Serialize for BadExt<T> {
        fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            s.serialize_newtype_struct(rmp_serde::MSGPACK_EXT_STRUCT_NAME, &self.0)
        }
    }
    check_error(&BadExt(5u8));
    check_error(&BadExt("str"));
    check_error(&BadExt(vec![1i8]));
    check_error(&BadExt((1u8, Bytes::new(b"x"))));
    check_error(&BadExt((1i8,)));
    check_error(&BadExt((1i8, 2i8)));
    check_error(&BadExt((Bytes::new(b"x"), 1i8)));
    check_error(&BadExt((1i8, 5i128)));
    check_error(&BadExt((1i8, Some(Bytes::new(b"x")))));
    check_error(&BadExt(5i128));
    check_error(&BadExt(Unit));
}

/// Panics when serialized.
struct Panics;

impl Serialize for Panics {
    fn serialize<S: serde::Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
        panic!("Panics::serialize");
    }
}

/// A panic in a `Serialize` impl unwinds through the serializer (whose cleanup must not
/// panic again, which would abort), and the thread can encode again afterwards.
#[test]
fn panics_unwind() {
    let value = NoLen(vec![(1u8, vec![Some(Panics)])]);
    let caught = std::panic::catch_unwind(|| write_named(&mut Vec::new(), &value));
    assert!(caught.is_err());
    check(&NoLen(vec![(1u8, vec![2.5f32; 3])]));
}

/// A sink that fails after accepting `limit` bytes.
struct FailingSink {
    limit: usize,
    written: usize,
}

impl Write for FailingSink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.written >= self.limit {
            return Err(io::Error::new(io::ErrorKind::StorageFull, "disk full"));
        }
        let n = buf.len().min(self.limit - self.written);
        self.written += n;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[test]
fn sink_errors_are_data_write_errors() {
    let value = (0..1_000_000).collect::<Vec<u32>>();
    for limit in [0, 10, 300_000] {
        let mut sink = FailingSink { limit, written: 0 };
        let error = write_named(&mut sink, &value).expect_err("the sink fails");
        match error {
            Error::InvalidValueWrite(ValueWriteError::InvalidDataWrite(e)) => {
                assert_eq!(e.kind(), io::ErrorKind::StorageFull);
            }
            other => panic!("unexpected error {other:?}"),
        }
    }
    // A value smaller than a chunk fails at `finish`.
    let mut sink = FailingSink {
        limit: 0,
        written: 0,
    };
    assert!(matches!(
        write_named(&mut sink, &1u8),
        Err(Error::InvalidValueWrite(ValueWriteError::InvalidDataWrite(
            _
        )))
    ));
}

/// Large payloads skip the chunk buffer, small values are batched into chunks.
#[test]
fn sink_sees_chunks_and_direct_payloads() {
    #[derive(Default)]
    struct Recorder(Vec<usize>);
    impl Write for Recorder {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.push(buf.len());
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }
    let big = payload(3 * MAX_CHUNK);
    let mut sink = Recorder::default();
    write_named(&mut sink, &(1u8, Bytes::new(&big), 2u8)).expect("encodes");
    // Header bytes, the payload in one write, the trailing byte.
    assert_eq!(sink.0, vec![1 + 1 + 5, big.len(), 1]);

    let mut sink = Recorder::default();
    write_named(&mut sink, &vec![0.5f32; 1 << 20]).expect("encodes");
    let total = 5 + 5 * (1 << 20);
    assert_eq!(sink.0.iter().sum::<usize>(), total);
    assert!(sink.0.iter().all(|&n| n <= MAX_CHUNK));
    // Full chunks, but for the few small ones the buffer starts with.
    assert!(
        sink.0.len() <= total / MAX_CHUNK + 8,
        "{} writes",
        sink.0.len()
    );
}

/// Encodes its value with this module inside its own `Serialize` impl, which takes the
/// thread's spare chunk while the outer serializer holds its own.
struct EncodesInside(Vec<f32>);

impl Serialize for EncodesInside {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut inner = Vec::new();
        write_named(&mut inner, &self.0).map_err(S::Error::custom)?;
        s.serialize_bytes(&inner)
    }
}

#[test]
fn nested_encodings_and_reused_chunks() {
    for len in [0, 3, 20_000, 100_000] {
        let values: Vec<f32> = (0..len).map(|i| i as f32).collect();
        check(&(
            1u8,
            EncodesInside(values.clone()),
            values,
            EncodesInside(vec![2.0]),
        ));
    }
    // An encoding that grew its chunk while holding an unknown-length sequence, then
    // small ones reusing whatever chunk was kept.
    check(&NoLen((0..200_000).collect::<Vec<u32>>()));
    for v in 0..1000u32 {
        check(&(v, "s"));
    }
}

/// A small deterministic PRNG (xorshift64*), so that failures reproduce.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn chance(&mut self, one_in: u64) -> bool {
        self.below(one_in) == 0
    }

    /// An integer of a random width, often near a boundary.
    fn int(&mut self) -> u64 {
        let bits = self.below(65) as u32;
        let v = self.next().checked_shr(64 - bits).unwrap_or(0);
        match self.below(4) {
            0 => v,
            1 => v.wrapping_sub(1),
            2 => (1u64.checked_shl(bits).unwrap_or(0)).wrapping_sub(self.below(3)),
            _ => self.below(300),
        }
    }

    /// A length, sometimes exactly at a header boundary.
    fn len(&mut self, max: u64) -> usize {
        if self.chance(4) {
            [0, 1, 15, 16, 17, 31, 32, 33][self.below(8) as usize]
        } else {
            self.below(max) as usize
        }
    }
}

const NAMES: [&str; 6] = [
    "a",
    "field",
    "",
    "é",
    "thirty-two bytes long field name",
    "a field name that is longer than thirty-two bytes",
];

/// A value built to call every method of serde's data model in random nestings.
enum Node {
    Unit,
    Bool(bool),
    U64(u64),
    I64(i64),
    U8(u8),
    I16(i16),
    U128(u128),
    I128(i128),
    F32(f32),
    F64(f64),
    Char(char),
    Str(String),
    Bytes(Vec<u8>),
    None,
    Some(Box<Node>),
    UnitStruct,
    Newtype(Box<Node>),
    Seq(Vec<Node>, bool),
    Iter(Vec<Node>),
    Tuple(Vec<Node>),
    TupleStruct(Vec<Node>),
    Map(Vec<(Node, Node)>, bool),
    Struct(Vec<(&'static str, Node)>),
    UnitVariant(&'static str),
    NewtypeVariant(&'static str, Box<Node>),
    TupleVariant(&'static str, Vec<Node>),
    StructVariant(&'static str, Vec<(&'static str, Node)>),
    Ext(i8, Vec<u8>),
    Shown(u64),
}

impl Node {
    fn random(rng: &mut Rng, depth: u32) -> Node {
        let kinds = if depth == 0 { 16 } else { 29 };
        let name = |rng: &mut Rng| NAMES[rng.below(NAMES.len() as u64) as usize];
        let nodes = |rng: &mut Rng| {
            let len = rng.len(12);
            (0..len).map(|_| Node::random(rng, depth - 1)).collect()
        };
        let fields = |rng: &mut Rng| {
            let len = rng.len(8);
            (0..len)
                .map(|_| (name(rng), Node::random(rng, depth - 1)))
                .collect()
        };
        match rng.below(kinds) {
            0 => Node::Unit,
            1 => Node::Bool(rng.chance(2)),
            2 => Node::U64(rng.int()),
            3 => Node::I64(if rng.chance(2) {
                rng.int() as i64
            } else {
                (rng.int() as i64).wrapping_neg()
            }),
            4 => Node::U8(rng.int() as u8),
            5 => Node::I16(rng.int() as i16),
            6 => Node::U128(u128::from(rng.next()) << rng.below(64)),
            7 => Node::I128(-(i128::from(rng.next()) << rng.below(64))),
            8 => Node::F32(f32::from_bits(rng.next() as u32)),
            9 => Node::F64(f64::from_bits(rng.next())),
            10 => Node::Char(char::from_u32(rng.below(0x11_0000) as u32).unwrap_or('?')),
            11 => {
                let len = rng.len(300);
                Node::Str((0..len).map(|i| ['a', 'é', '€', '😀'][i % 4]).collect())
            }
            12 => {
                let len = rng.len(70_000);
                Node::Bytes(payload(len))
            }
            13 => Node::None,
            14 => Node::UnitStruct,
            15 => Node::UnitVariant(name(rng)),
            16 => Node::Some(Box::new(Node::random(rng, depth - 1))),
            17 => Node::Newtype(Box::new(Node::random(rng, depth - 1))),
            18 => Node::Seq(nodes(rng), rng.chance(2)),
            19 => Node::Iter(nodes(rng)),
            20 => Node::Tuple(nodes(rng)),
            21 => Node::TupleStruct(nodes(rng)),
            22 => {
                let len = rng.len(10);
                let entries = (0..len)
                    .map(|_| (Node::random(rng, depth - 1), Node::random(rng, depth - 1)))
                    .collect();
                Node::Map(entries, rng.chance(2))
            }
            23 => Node::Struct(fields(rng)),
            24 => Node::NewtypeVariant(name(rng), Box::new(Node::random(rng, depth - 1))),
            25 => Node::TupleVariant(name(rng), nodes(rng)),
            26 => Node::StructVariant(name(rng), fields(rng)),
            27 => {
                let len = rng.len(300);
                Node::Ext(rng.next() as i8, payload(len))
            }
            _ => Node::Shown(rng.next()),
        }
    }
}

impl fmt::Display for Node {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Node::Shown(v) => write!(f, "shown {v:x}"),
            _ => f.write_str("node"),
        }
    }
}

impl Serialize for Node {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Node::Unit => s.serialize_unit(),
            Node::Bool(v) => s.serialize_bool(*v),
            Node::U64(v) => s.serialize_u64(*v),
            Node::I64(v) => s.serialize_i64(*v),
            Node::U8(v) => s.serialize_u8(*v),
            Node::I16(v) => s.serialize_i16(*v),
            Node::U128(v) => s.serialize_u128(*v),
            Node::I128(v) => s.serialize_i128(*v),
            Node::F32(v) => s.serialize_f32(*v),
            Node::F64(v) => s.serialize_f64(*v),
            Node::Char(v) => s.serialize_char(*v),
            Node::Str(v) => s.serialize_str(v),
            Node::Bytes(v) => s.serialize_bytes(v),
            Node::None => s.serialize_none(),
            Node::Some(v) => s.serialize_some(v),
            Node::UnitStruct => s.serialize_unit_struct("U"),
            Node::Newtype(v) => s.serialize_newtype_struct("N", v),
            Node::Seq(items, known) => {
                let mut seq = s.serialize_seq(known.then_some(items.len()))?;
                for item in items {
                    seq.serialize_element(item)?;
                }
                seq.end()
            }
            Node::Iter(items) => s.collect_seq(items.iter().filter(|_| true)),
            Node::Tuple(items) => {
                let mut tuple = s.serialize_tuple(items.len())?;
                for item in items {
                    tuple.serialize_element(item)?;
                }
                tuple.end()
            }
            Node::TupleStruct(items) => {
                let mut tuple = s.serialize_tuple_struct("T", items.len())?;
                for item in items {
                    tuple.serialize_field(item)?;
                }
                tuple.end()
            }
            Node::Map(entries, known) => {
                let mut map = s.serialize_map(known.then_some(entries.len()))?;
                for (k, v) in entries {
                    map.serialize_entry(k, v)?;
                }
                map.end()
            }
            Node::Struct(fields) => {
                let mut st = s.serialize_struct("S", fields.len())?;
                for (name, v) in fields {
                    st.serialize_field(name, v)?;
                }
                st.end()
            }
            Node::UnitVariant(name) => s.serialize_unit_variant("E", 0, name),
            Node::NewtypeVariant(name, v) => s.serialize_newtype_variant("E", 1, name, v),
            Node::TupleVariant(name, items) => {
                let mut tv = s.serialize_tuple_variant("E", 2, name, items.len())?;
                for item in items {
                    tv.serialize_field(item)?;
                }
                tv.end()
            }
            Node::StructVariant(name, fields) => {
                let mut sv = s.serialize_struct_variant("E", 3, name, fields.len())?;
                for (field, v) in fields {
                    sv.serialize_field(field, v)?;
                }
                sv.end()
            }
            Node::Ext(tag, data) => s.serialize_newtype_struct(
                rmp_serde::MSGPACK_EXT_STRUCT_NAME,
                &(*tag, Bytes::new(data)),
            ),
            Node::Shown(_) => s.collect_str(self),
        }
    }
}

#[test]
fn random_values_match_rmp_serde() {
    let mut rng = Rng(0x5eed_1234_abcd_0001);
    for _ in 0..1500 {
        let depth = rng.below(5) as u32;
        check(&Node::random(&mut rng, depth));
    }
}

fn random_value(rng: &mut Rng, depth: u32) -> rmpv::Value {
    use rmpv::Value;
    match rng.below(if depth == 0 { 8 } else { 10 }) {
        0 => Value::Nil,
        1 => Value::Boolean(rng.chance(2)),
        2 => Value::from(rng.int()),
        3 => Value::from((rng.int() as i64).wrapping_neg()),
        4 => Value::F32(f32::from_bits(rng.next() as u32)),
        5 => Value::F64(f64::from_bits(rng.next())),
        6 => Value::from("s".repeat(rng.len(300))),
        7 if rng.chance(2) => Value::Binary(payload(rng.len(300))),
        7 => Value::Ext(rng.next() as i8, payload(rng.len(300))),
        8 => {
            let len = rng.len(12);
            Value::Array((0..len).map(|_| random_value(rng, depth - 1)).collect())
        }
        _ => {
            let len = rng.len(12);
            Value::Map(
                (0..len)
                    .map(|_| (random_value(rng, depth - 1), random_value(rng, depth - 1)))
                    .collect(),
            )
        }
    }
}

#[test]
fn random_rmpv_values_match_rmp_serde() {
    let mut rng = Rng(0x0dd_ba11_cafe_f00d);
    for _ in 0..1500 {
        let depth = rng.below(5) as u32;
        check(&random_value(&mut rng, depth));
    }
}
