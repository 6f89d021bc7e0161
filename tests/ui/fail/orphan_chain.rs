#![allow(unused)]

use blooming_flowers::prelude::*;

#[derive(Clone, Default, Serialize, Deserialize)]
struct F { n: u64 }

#[flow]
impl F {
    #[step(next = end)]
    fn start(&mut self) {}
    #[step(next = lonely2)]
    fn lonely(&mut self) {}
    #[step(next = end)]
    fn lonely2(&mut self) {}
    #[step]
    fn end(&mut self) {}
}

fn main() {}
