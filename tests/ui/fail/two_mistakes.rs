#![allow(unused)]

use blooming_flowers::prelude::*;

#[derive(Clone, Default, Serialize, Deserialize)]
struct F { n: u64 }

#[flow]
impl F {
    #[step(next = gahter)]
    fn start(&mut self) {}
    #[step(next = end, retry = 3)]
    fn gather(&mut self) {}
    #[step]
    fn end(&mut self) {}
}

fn main() {}
