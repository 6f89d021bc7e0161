#![allow(unused)]

use blooming_flowers::prelude::*;

#[derive(Clone, Default, Serialize, Deserialize)]
struct F { xs: Vec<u32>, n: u64 }

#[flow]
impl F {
    #[step(switch(true => a, false => b))]
    fn start(&mut self) -> bool { true }
    #[step(next = b)]
    fn a(&mut self) {}
    #[step(switch(true => a, false => end))]
    fn b(&mut self) -> bool { true }
    #[step]
    fn end(&mut self) {}
}

fn main() {}
