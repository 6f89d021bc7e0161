#![allow(unused)]

use blooming_flowers::prelude::*;

#[derive(Clone, Default, Serialize, Deserialize)]
struct F { n: u64 }

#[flow]
impl F {
    #[step(next = ned)]
    fn start(&mut self) {}
    #[step]
    fn end(&mut self) {}
}

fn main() {
    let steps: u32 = F::GRAPH.steps.len();
}
