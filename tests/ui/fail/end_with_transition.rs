#![allow(unused)]

use blooming_flowers::prelude::*;

#[derive(Clone, Default, Serialize, Deserialize)]
struct F { n: u64 }

#[flow]
impl F {
    #[step(next = end)]
    fn start(&mut self) {}
    #[step(next = start)]
    fn end(&mut self) {}
}

fn main() {}
