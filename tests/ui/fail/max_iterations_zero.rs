#![allow(unused)]

use blooming_flowers::prelude::*;

#[derive(Clone, Default, Serialize, Deserialize)]
struct F { xs: Vec<u32>, n: u64 }

#[flow]
impl F {
    #[step(next = train)]
    fn start(&mut self) {}
    #[step(switch(true => train, false => end), max_iterations = 0)]
    fn train(&mut self) -> bool { true }
    #[step]
    fn end(&mut self) {}
}

fn main() {}
