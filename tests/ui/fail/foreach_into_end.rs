#![allow(unused)]

use blooming_flowers::prelude::*;

#[derive(Clone, Default, Serialize, Deserialize)]
struct F { xs: Vec<u64> }

#[flow]
impl F {
    #[step(foreach = xs, next = end)]
    fn start(&mut self) {}
    #[step]
    fn end(&mut self) {}
}

fn main() {}
