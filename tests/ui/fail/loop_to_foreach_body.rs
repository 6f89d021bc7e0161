#![allow(unused)]

use blooming_flowers::prelude::*;

#[derive(Clone, Default, Serialize, Deserialize)]
struct F { xs: Vec<u32>, n: u64 }

#[flow]
impl F {
    #[step(foreach = xs, next = body)]
    fn start(&mut self) {}
    #[step(switch(true => body, false => done))]
    fn body(&mut self, x: u32) -> bool { x > 3 }
    #[step(next = collect)]
    fn done(&mut self) {}
    #[step(join, next = end)]
    fn collect(&mut self, inputs: Inputs<Self>) {}
    #[step]
    fn end(&mut self) {}
}

fn main() {}
