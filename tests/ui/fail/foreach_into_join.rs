#![allow(unused)]

use blooming_flowers::prelude::*;

#[derive(Clone, Default, Serialize, Deserialize)]
struct F { xs: Vec<u64> }

#[flow]
impl F {
    #[step(foreach = xs, next = j)]
    fn start(&mut self) {}
    #[step(join, next = end)]
    fn j(&mut self, inputs: Inputs<Self>) {}
    #[step]
    fn end(&mut self) {}
}

fn main() {}
