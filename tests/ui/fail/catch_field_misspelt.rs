#![allow(unused)]

use blooming_flowers::prelude::*;

#[derive(Clone, Default, Serialize, Deserialize)]
struct F { error: Option<String> }

#[flow]
impl F {
    #[step(next = end, catch = eror)]
    fn start(&mut self) {}
    #[step]
    fn end(&mut self) {}
}

fn main() {}
