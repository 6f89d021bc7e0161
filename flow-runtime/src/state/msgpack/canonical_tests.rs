//! Hash collections have one encoding per value, whatever their hasher and insertion order;
//! every other container keeps rmp-serde's bytes.

use std::cell::RefCell;
use std::collections::hash_map::RandomState;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::hash::BuildHasher;
use std::rc::Rc;
use std::sync::{Arc, Mutex};

use indexmap::IndexMap;
use serde::{Deserialize, Serialize};

use super::tests::{check_against, reference, sorted_reference};
use super::*;

/// A map of `n` entries inserted in order, or in reverse, with a hasher of its own.
fn map_of<S: BuildHasher + Default>(n: u32, reverse: bool) -> HashMap<String, u32, S> {
    let mut map = HashMap::with_hasher(S::default());
    let keys: Vec<u32> = if reverse {
        (0..n).rev().collect()
    } else {
        (0..n).collect()
    };
    for k in keys {
        map.insert(format!("key{k}"), k * 7);
    }
    map
}

fn set_of(n: u64, reverse: bool) -> HashSet<u64> {
    let mut set = HashSet::new();
    let items: Vec<u64> = if reverse {
        (0..n).rev().collect()
    } else {
        (0..n).collect()
    };
    for i in items {
        set.insert(i * 1_000_003);
    }
    set
}

/// A hash map wrapper named like ahash's `AHashMap`: caught by its name.
#[derive(Debug, PartialEq, Deserialize)]
struct AHashMap(HashMap<u32, String>);

impl Serialize for AHashMap {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(self.0.iter())
    }
}

/// A map that keeps insertion order although its name ends with `HashMap`.
#[derive(Debug, PartialEq)]
struct LinkedHashMap(Vec<(u32, u32)>);

impl Serialize for LinkedHashMap {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(self.0.iter().map(|(k, v)| (k, v)))
    }
}

/// A hash set that does not tell its length up front: written as an unknown-length sequence.
struct StreamedHashSet(HashSet<u64>);

impl Serialize for StreamedHashSet {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeSeq;
        let mut seq = s.serialize_seq(None)?;
        for item in &self.0 {
            seq.serialize_element(item)?;
        }
        seq.end()
    }
}

#[derive(Debug, PartialEq, Serialize, Deserialize)]
enum Shape {
    Empty,
    Counts(HashMap<String, u32>),
    Pair(HashSet<u64>, u8),
    Labelled {
        label: String,
        members: HashSet<u64>,
    },
}

#[derive(Debug, Serialize, Deserialize)]
struct Everywhere {
    plain: HashMap<String, u32>,
    maybe: Option<HashSet<u64>>,
    list: Vec<HashMap<String, u32>>,
    lists: Vec<Vec<HashSet<u64>>>,
    /// Ordered sequences after hash collections: must keep their order.
    after: Vec<(HashSet<u64>, Vec<u32>)>,
    shapes: Vec<Shape>,
    by_name: BTreeMap<String, HashSet<u64>>,
    nested: HashMap<String, HashMap<String, u32>>,
    /// A forwarding wrapper: the encoder sees only `Box`'s name.
    #[allow(clippy::box_collection)]
    boxed: Box<HashMap<String, u32>>,
    locked: Box<Mutex<HashSet<u64>>>,
    borrowed: RefCell<HashSet<u64>>,
    tuple: (u8, HashSet<u64>),
    wrapped: AHashMap,
}

fn everywhere(reverse: bool) -> Everywhere {
    let mut nested = HashMap::new();
    for i in 0..20 {
        nested.insert(format!("inner{i}"), map_of(10 + i, reverse));
    }
    Everywhere {
        plain: map_of(50, reverse),
        maybe: Some(set_of(40, reverse)),
        list: (0..4).map(|n| map_of(n * 10, reverse)).collect(),
        lists: (0..3)
            .map(|n| (0..3).map(|m| set_of(n * 10 + m, reverse)).collect())
            .collect(),
        after: (0..3)
            .map(|n| (set_of(n * 5, reverse), (0..20).rev().collect()))
            .collect(),
        shapes: vec![
            Shape::Empty,
            Shape::Counts(map_of(30, reverse)),
            Shape::Pair(set_of(30, reverse), 9),
            Shape::Labelled {
                label: "l".into(),
                members: set_of(25, reverse),
            },
        ],
        by_name: (0..5)
            .map(|i| (format!("s{i}"), set_of(i * 10, reverse)))
            .collect(),
        nested,
        boxed: Box::new(map_of(33, reverse)),
        locked: Box::new(Mutex::new(set_of(33, reverse))),
        borrowed: RefCell::new(set_of(34, reverse)),
        tuple: (1, set_of(35, reverse)),
        wrapped: AHashMap(
            (0..40)
                .map(|i| if reverse { 39 - i } else { i })
                .map(|i| (i, format!("v{i}")))
                .collect(),
        ),
    }
}

#[test]
fn equal_hash_collections_encode_alike_whatever_their_hasher_or_insertion_order() {
    // Each `HashMap::new` draws new random keys: the two iterate in different orders.
    let a = map_of::<RandomState>(200, false);
    let b = map_of::<RandomState>(200, true);
    assert_ne!(
        reference(&a),
        reference(&b),
        "the premise: rmp-serde encodes them differently"
    );
    assert_eq!(to_vec_named(&a).unwrap(), to_vec_named(&b).unwrap());
    let (a, b) = (set_of(200, false), set_of(200, true));
    assert_eq!(to_vec_named(&a).unwrap(), to_vec_named(&b).unwrap());

    // Nested in every kind of container, behind forwarding wrappers, and through a wrapper
    // type named like a hash map; in memory, streamed, and through tiny chunks.
    let (a, b) = (everywhere(false), everywhere(true));
    let encoded = to_vec_named(&a).unwrap();
    assert_ne!(reference(&a), reference(&b));
    check_against(&a, &encoded);
    check_against(&b, &encoded);
}

#[test]
fn hash_collections_are_sorted_by_encoded_bytes_and_decode_unchanged() {
    let set: HashSet<u32> = [200, 3, 1, 70_000].into();
    // 1, 3, then u8 200 (0xcc), then u32 70000 (0xce).
    let expected = [0x94, 0x01, 0x03, 0xcc, 0xc8, 0xce, 0x00, 0x01, 0x11, 0x70];
    check_against(&set, &expected);

    let map: HashMap<&str, i8> = [("b", -1), ("a", 1), ("ab", 2)].into();
    // fixstr "a" < fixstr "b" (length 1) < fixstr "ab" (length 2): the header byte counts.
    let expected = [
        0x83, 0xa1, b'a', 0x01, 0xa1, b'b', 0xff, 0xa2, b'a', b'b', 0x02,
    ];
    check_against(&map, &expected);

    for n in [0, 1, 15, 16, 17, 1000, 70_000] {
        let map = map_of::<RandomState>(n, false);
        check_against(&map, &sorted_reference(&map));
        let set = set_of(u64::from(n), true);
        check_against(&set, &sorted_reference(&set));
        check_against(&StreamedHashSet(set.clone()), &sorted_reference(&set));
    }

    let original = everywhere(true);
    let back: Everywhere = rmp_serde::from_slice(&to_vec_named(&original).unwrap()).unwrap();
    assert_eq!(back.plain, original.plain);
    assert_eq!(back.lists, original.lists);
    assert_eq!(back.after, original.after);
    assert_eq!(back.shapes, original.shapes);
    assert_eq!(back.nested, original.nested);
    assert_eq!(
        *back.locked.lock().unwrap(),
        *original.locked.lock().unwrap()
    );
    assert_eq!(back.borrowed, original.borrowed);
    assert_eq!(back.wrapped, original.wrapped);
}

#[test]
fn ordered_containers_keep_their_order_and_rmp_serde_bytes() {
    let reversed: IndexMap<String, u32> = (0..100).rev().map(|i| (format!("k{i}"), i)).collect();
    check_against(&reversed, &reference(&reversed));
    let back: IndexMap<String, u32> =
        rmp_serde::from_slice(&to_vec_named(&reversed).unwrap()).unwrap();
    assert!(back.keys().eq(reversed.keys()), "the order is kept");

    let linked = LinkedHashMap((0..50).rev().map(|i| (i, i * 2)).collect());
    check_against(&linked, &reference(&linked));
    let unsorted: Vec<u32> = (0..100).rev().collect();
    check_against(&unsorted, &reference(&unsorted));
    check_against(&Some(unsorted.clone()), &reference(&Some(&unsorted)));
    let tree: BTreeMap<i64, Vec<u32>> = (-50..50).map(|i| (i, unsorted.clone())).collect();
    check_against(&tree, &reference(&tree));
}

#[test]
fn which_types_are_hash_collections() {
    use std::any::type_name;
    use std::borrow::Cow;
    use std::sync::RwLock;

    let unordered = [
        type_name::<HashMap<String, u32>>(),
        type_name::<HashSet<u8>>(),
        type_name::<&HashSet<u8>>(),
        type_name::<&mut HashMap<u8, u8>>(),
        type_name::<Box<HashMap<u8, Vec<u8>>>>(),
        type_name::<Arc<Mutex<HashSet<u8>>>>(),
        type_name::<Rc<RefCell<HashSet<u8>>>>(),
        type_name::<RwLock<HashSet<u8>>>(),
        type_name::<Cow<'static, HashSet<u8>>>(),
        type_name::<AHashMap>(),
        "hashbrown::map::HashMap<u8, u8>",
        "hashbrown::set::HashSet<u8, foldhash::fast::RandomState>",
        "ahash::hash_set::AHashSet<u8>",
        "im::hash::map::HashMap<u8, u8>",
    ];
    for name in unordered {
        assert!(is_unordered_type(name), "{name} is a hash collection");
    }
    let ordered = [
        "",
        type_name::<u8>(),
        type_name::<Vec<HashMap<u8, u8>>>(),
        type_name::<Option<HashSet<u8>>>(),
        type_name::<BTreeMap<u8, HashSet<u8>>>(),
        type_name::<IndexMap<u8, u8>>(),
        type_name::<LinkedHashMap>(),
        type_name::<Box<[u8]>>(),
        type_name::<(HashSet<u8>, u8)>(),
        "hashlink::linked_hash_set::LinkedHashSet<u8>",
        "my::HashMapLike<u8>",
    ];
    for name in ordered {
        assert!(!is_unordered_type(name), "{name} is not a hash collection");
    }
}
