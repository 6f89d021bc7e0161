#![allow(unused)]

use blooming_flowers::prelude::*;

#[derive(Clone, Default, Serialize, Deserialize)]
struct F { n: u64 }

#[flow(crat = blooming_flowers)]
impl F {
    #[step(next = end)]
    fn start(&mut self) {}
    #[step]
    fn end(&mut self) {}
}

fn main() {}
