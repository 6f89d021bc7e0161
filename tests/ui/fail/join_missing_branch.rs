#![allow(unused)]

use blooming_flowers::prelude::*;

#[derive(Clone, Default, Serialize, Deserialize)]
struct F { n: u64 }

#[flow]
impl F {
    #[step(next = [a, b, c])]
    fn start(&mut self) {}
    #[step(next = j)]
    fn a(&mut self) {}
    #[step(next = j)]
    fn b(&mut self) {}
    #[step(next = end)]
    fn c(&mut self) {}
    #[step(join, next = end)]
    fn j(&mut self, inputs: Inputs<Self>) {}
    #[step]
    fn end(&mut self) {}
}

fn main() {}
