#![allow(unused)]

use blooming_flowers::prelude::*;

#[derive(Clone, Default, Serialize, Deserialize)]
struct F { n: u64 }

#[flow]
impl F {
    #[step(switch(true => a, false => b))]
    fn start(&mut self) {}
    #[step(next = end)]
    fn a(&mut self) {}
    #[step(next = end)]
    fn b(&mut self) {}
    #[step]
    fn end(&mut self) {}
}

fn main() {}
