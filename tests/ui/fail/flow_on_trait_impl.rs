#![allow(unused)]

use blooming_flowers::prelude::*;

#[derive(Clone, Serialize, Deserialize)]
struct F {
    n: u64,
}

#[flow]
impl Default for F {
    fn default() -> Self {
        F { n: 0 }
    }
}

fn main() {}
