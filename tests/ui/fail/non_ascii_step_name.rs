#![allow(unused)]

use blooming_flowers::prelude::*;

#[derive(Clone, Default, Serialize, Deserialize)]
struct F { n: u64 }

#[flow]
impl F {
    #[step(next = entraîner)]
    fn start(&mut self) {}
    #[step(next = end)]
    fn entraîner(&mut self) {}
    #[step]
    fn end(&mut self) {}
}

fn main() {}
