#![allow(unused, non_snake_case)]

use blooming_flowers::prelude::*;

#[derive(Clone, Default, Serialize, Deserialize)]
struct F { n: u64 }

#[flow]
impl F {
    #[step(next = [train, Train])]
    fn start(&mut self) {}
    #[step(next = join)]
    fn train(&mut self) {}
    #[step(next = join)]
    fn Train(&mut self) {}
    #[step(join, next = end)]
    fn join(&mut self, inputs: Inputs<Self>) {}
    #[step]
    fn end(&mut self) {}
}

fn main() {}
