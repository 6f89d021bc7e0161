#![allow(unused)]

use blooming_flowers::prelude::*;

#[derive(Clone, Default, Serialize, Deserialize)]
struct F { n: u64 }

#[flow]
impl F {
    #[step(next = [a, b])]
    fn start(&mut self) {}
    #[step(next = j)]
    fn a(&mut self) {}
    #[step(next = j)]
    fn b(&mut self) {}
    #[step(join, next = end)]
    fn j(&mut self) {}
    #[step]
    fn end(&mut self) {}
}

fn main() {}
