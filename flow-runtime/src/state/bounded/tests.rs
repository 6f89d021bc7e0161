use serde::{Deserialize, Serialize};

use super::*;
use crate::state::{decode_field, decode_state, encode_field};

/// A recursive enum: each level is a one-entry map from the variant's name, which rmp-serde does
/// not count towards its depth limit.
#[derive(Debug, PartialEq, Serialize, Deserialize)]
enum Tree {
    Leaf,
    Node(Box<Tree>),
}

impl Tree {
    fn deep(levels: usize) -> Tree {
        (0..levels).fold(Tree::Leaf, |t, _| Tree::Node(Box::new(t)))
    }
}

impl Drop for Tree {
    /// Iterative, so that dropping a deep tree cannot overflow the stack either.
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

/// The encoding of [`Tree::deep`]`(levels)`, written by hand: encoding it through serde would
/// recurse as deep.
fn deep_tree_bytes(levels: usize) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(levels * 6 + 5);
    for _ in 0..levels {
        bytes.extend_from_slice(&[0x81, 0xa4, b'N', b'o', b'd', b'e']);
    }
    bytes.extend_from_slice(&[0xa4, b'L', b'e', b'a', b'f']);
    bytes
}

#[test]
fn a_recursive_enum_a_million_levels_deep_is_an_error_not_a_stack_overflow() {
    let bytes = deep_tree_bytes(1_000_000);
    let message = decode_field::<Tree>(&bytes).unwrap_err().to_string();
    assert!(
        message.contains(&format!("nested more than {MAX_DEPTH}")),
        "{message}"
    );
    // The same through the state decoder, which names the field.
    #[derive(Debug, Deserialize)]
    struct State {
        #[allow(dead_code)]
        tree: Tree,
    }
    let message = decode_state::<State>(&[("tree", &bytes)])
        .unwrap_err()
        .to_string();
    assert!(
        message.contains("field `tree`") && message.contains("nested more than"),
        "{message}"
    );
}

#[test]
fn values_up_to_the_depth_limit_round_trip_and_deeper_ones_are_refused_when_stored() {
    // The tree's leaf is a string, so `MAX_DEPTH` nodes nest `MAX_DEPTH` maps.
    let at_limit = Tree::deep(MAX_DEPTH);
    let mut bytes = Vec::new();
    encode_field(&mut bytes, &at_limit).expect("a value at the limit is stored");
    assert_eq!(bytes, deep_tree_bytes(MAX_DEPTH));
    assert_eq!(
        decode_field::<Tree>(&bytes).expect("and read back"),
        at_limit
    );

    let too_deep = Tree::deep(MAX_DEPTH + 1);
    let message = encode_field(&mut Vec::new(), &too_deep)
        .unwrap_err()
        .to_string();
    assert!(message.contains("nests more than"), "{message}");
    assert!(decode_field::<Tree>(&deep_tree_bytes(MAX_DEPTH + 1)).is_err());

    // Nested sequences and structs count alike.
    let mut nested = serde_json::json!(1);
    for _ in 0..MAX_DEPTH {
        nested = serde_json::json!([nested]);
    }
    let mut bytes = Vec::new();
    encode_field(&mut bytes, &nested).expect("at the limit");
    check(&bytes).expect("at the limit");
    assert!(encode_field(&mut Vec::new(), &serde_json::json!([nested])).is_err());
}

#[test]
fn lengths_are_checked_against_the_bytes_that_follow() {
    let cases: [(&str, &[u8]); 9] = [
        (
            "array32 of 4 billion",
            &[0xdd, 0xff, 0xff, 0xff, 0xff, 0x01],
        ),
        (
            "map16 of 2 entries, 3 bytes",
            &[0xde, 0x00, 0x02, 0x01, 0x02, 0x03],
        ),
        ("bin32 of 4 GiB", &[0xc6, 0xff, 0xff, 0xff, 0xff, 0x00]),
        ("str8 of 5, 2 given", &[0xd9, 0x05, b'a', b'b']),
        ("ext16 without its type", &[0xc8, 0x00, 0x01]),
        ("f64 cut short", &[0xcb, 0x00, 0x00]),
        ("fixarray of 2, 1 given", &[0x92, 0x01]),
        ("nothing", &[]),
        ("reserved marker", &[0xc1]),
    ];
    for (what, bytes) in cases {
        assert!(check(bytes).is_err(), "{what}");
        assert!(decode_field::<rmpv::Value>(bytes).is_err(), "{what}");
    }
    let message = check(&[0xdd, 0xff, 0xff, 0xff, 0xff, 0x01])
        .unwrap_err()
        .to_string();
    assert!(
        message.contains("declares 4294967295 elements") && message.contains("only 1 bytes"),
        "{message}"
    );
    let message = check(&[0x01, 0x02]).unwrap_err().to_string();
    assert!(message.contains("1 bytes follow the value"), "{message}");
}

#[test]
fn every_well_formed_value_passes() {
    #[derive(Serialize)]
    struct Everything {
        ints: Vec<i64>,
        floats: Vec<f32>,
        doubles: Vec<f64>,
        text: String,
        long_text: String,
        #[serde(with = "serde_bytes")]
        bytes: Vec<u8>,
        nested: Vec<Vec<Option<(u8, String)>>>,
        empty: (Vec<u8>, std::collections::BTreeMap<u8, u8>, ()),
        big: std::collections::BTreeMap<u32, Vec<u32>>,
    }
    let value = Everything {
        ints: (-70_000..70_000).step_by(7).collect(),
        floats: (0..1000).map(|i| i as f32 / 3.0).collect(),
        doubles: vec![f64::NAN, 1.5, -0.0],
        text: "é".repeat(10),
        long_text: "x".repeat(70_000),
        bytes: vec![7; 300],
        nested: vec![vec![Some((1, "a".into())), None]; 20],
        empty: (Vec::new(), Default::default(), ()),
        big: (0..70_000).map(|i| (i, vec![i; 2])).collect(),
    };
    let mut bytes = Vec::new();
    encode_field(&mut bytes, &value).expect("encodes");
    check(&bytes).expect("well-formed");
    // Every ext size, and the markers the encoder never writes but MessagePack has.
    for len in [1usize, 2, 4, 8, 16, 0, 3, 255, 256, 70_000] {
        let mut ext = Vec::new();
        rmpv::encode::write_value(&mut ext, &rmpv::Value::Ext(3, vec![9; len])).expect("ext");
        check(&ext).expect("ext");
    }
    for bytes in [
        &[0xc0][..],
        &[0xc2],
        &[0xc3],
        &[0xe0],
        &[0xd0, 0x80],
        &[0xcc, 0xff],
        &[0xd1, 0, 0],
        &[0xcd, 0, 0],
        &[0xd2, 0, 0, 0, 0],
        &[0xd3, 0, 0, 0, 0, 0, 0, 0, 0],
        &[0xdc, 0, 1, 0x01],
        &[0xdf, 0, 0, 0, 1, 0x01, 0x02],
        &[0xdb, 0, 0, 0, 1, b'a'],
        &[0xc5, 0, 1, 0],
        &[0xc9, 0, 0, 0, 1, 5, 0],
    ] {
        check(bytes).unwrap_or_else(|e| panic!("{bytes:02x?}: {e}"));
    }
}

/// A node of a binary tree as a struct, the deepest-recursing shape in an unoptimized build.
#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct Split {
    feature: u32,
    threshold: f32,
    left: Option<Box<Split>>,
    right: Option<Box<Split>>,
}

#[test]
fn a_value_at_the_depth_limit_decodes_within_a_default_thread_stack() {
    let decoded = std::thread::Builder::new()
        .stack_size(2 << 20)
        .spawn(|| {
            let mut tree = None;
            for feature in 0..MAX_DEPTH as u32 {
                tree = Some(Box::new(Split {
                    feature,
                    threshold: 0.5,
                    left: tree,
                    right: None,
                }));
            }
            let mut bytes = Vec::new();
            encode_field(&mut bytes, &tree).expect("at the limit");
            let back: Option<Box<Split>> = decode_field(&bytes).expect("decodes");
            let depth = std::iter::successors(back.as_deref(), |s| s.left.as_deref()).count();
            // Drop both iteratively, so that only decoding is measured against the stack.
            for mut node in [tree, back].into_iter().flatten() {
                while let Some(next) = node.left.take() {
                    node = next;
                }
            }
            depth
        })
        .expect("thread")
        .join()
        .expect("no stack overflow");
    assert_eq!(decoded, MAX_DEPTH);
}
