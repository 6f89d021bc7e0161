#![allow(unused)]

use blooming_flowers::prelude::*;

struct F;

impl F {
    #[step(next = end)]
    fn start(&mut self) {}
}

fn main() {}
