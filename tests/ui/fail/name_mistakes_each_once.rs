#![allow(unused, non_snake_case)]

use blooming_flowers::prelude::*;

#[derive(Clone, Default, Serialize, Deserialize)]
struct F { n: u64 }

// Two independent name mistakes, two errors; the graph is otherwise valid and reports nothing.
#[flow]
impl F {
    #[step(next = [prepare, Prepare, prüfen])]
    fn start(&mut self) {}
    #[step(next = join)]
    fn prepare(&mut self) {}
    #[step(next = join)]
    fn Prepare(&mut self) {}
    #[step(next = join)]
    fn prüfen(&mut self) {}
    #[step(join, next = end)]
    fn join(&mut self, inputs: Inputs<Self>) {}
    #[step]
    fn end(&mut self) {}
}

fn main() {}
