#![allow(unused)]

use blooming_flowers::prelude::*;

#[derive(Clone, Default, Serialize, Deserialize)]
struct F { xs: Vec<u32>, n: u64 }

#[flow]
impl F {
    #[step(switch(true => a, false => end), max_iterations = 3)]
    fn start(&mut self) -> bool { true }
    #[step(next = end)]
    fn a(&mut self) {}
    #[step]
    fn end(&mut self) {}
}

fn main() {}
