#![allow(unused)]

use blooming_flowers::prelude::*;

#[derive(Clone, Default, Serialize, Deserialize)]
struct F { n: u64 }

#[flow]
impl F {
    #[step(next = [a, b])]
    fn start(&mut self) {}
    #[step(next = [a1, a2])]
    fn a(&mut self) {}
    #[step(next = join)]
    fn a1(&mut self) {}
    #[step(next = join)]
    fn a2(&mut self) {}
    #[step(next = join)]
    fn b(&mut self) {}
    #[step(join, next = end)]
    fn join(&mut self, inputs: Inputs<Self>) {}
    #[step]
    fn end(&mut self) {}
}

fn main() {}
