#![allow(unused)]

use blooming_flowers::prelude::*;

#[flow]
#[derive(Clone, Default, Serialize, Deserialize)]
struct F {
    n: u64,
}

fn main() {}
