#![allow(unused)]

use blooming_flowers::prelude::*;

#[derive(Clone, Default, Serialize, Deserialize)]
struct F { xs: Vec<u32>, n: u64 }

#[flow]
impl F {
    #[step(foreach = xs, next = body)]
    fn start(&mut self) {}
    #[step(next = train)]
    fn body(&mut self, x: u32) {}
    #[step(next = collect)]
    fn train(&mut self) {}
    #[step(join, next = check)]
    fn collect(&mut self, inputs: Inputs<Self>) {}
    #[step(switch(true => train, false => end))]
    fn check(&mut self) -> bool { true }
    #[step]
    fn end(&mut self) {}
}

fn main() {}
