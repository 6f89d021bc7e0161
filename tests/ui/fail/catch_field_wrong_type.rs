#![allow(unused)]

use blooming_flowers::prelude::*;

#[derive(Clone, Default, Serialize, Deserialize)]
struct F { note: String }

#[flow]
impl F {
    #[step(next = end, catch = note)]
    fn start(&mut self) {}
    #[step]
    fn end(&mut self) {}
}

fn main() {}
