#![allow(unused)]

use blooming_flowers::prelude::*;

#[derive(Clone, Default, Serialize, Deserialize)]
struct F { n: u64 }

#[flow]
impl F {
    #[step(next = [a, b])]
    fn start(&mut self) {}
    #[step(next = end)]
    fn a(&mut self) {}
    #[step(next = end)]
    fn b(&mut self) {}
    #[step(join)]
    fn end(&mut self, inputs: Inputs<Self>) {}
}

fn main() {}
