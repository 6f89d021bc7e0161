#![allow(unused)]

use blooming_flowers::prelude::*;

#[derive(Clone, Default, Serialize, Deserialize)]
struct F { n: u64 }

#[flow]
impl F {
    #[step(next = finish)]
    fn start(&mut self) {}
    #[step]
    fn finish(&mut self) {}
}

fn main() {}
