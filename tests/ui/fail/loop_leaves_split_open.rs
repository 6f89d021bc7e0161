#![allow(unused)]

use blooming_flowers::prelude::*;

#[derive(Clone, Default, Serialize, Deserialize)]
struct F { xs: Vec<u32>, n: u64 }

#[flow]
impl F {
    #[step(next = head)]
    fn start(&mut self) {}
    #[step(next = [a, b])]
    fn head(&mut self) {}
    #[step(switch(true => head, false => c))]
    fn a(&mut self) -> bool { true }
    #[step(next = j)]
    fn c(&mut self) {}
    #[step(next = j)]
    fn b(&mut self) {}
    #[step(join, next = end)]
    fn j(&mut self, inputs: Inputs<Self>) {}
    #[step]
    fn end(&mut self) {}
}

fn main() {}
