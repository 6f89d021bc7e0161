#![allow(unused)]

use blooming_flowers::prelude::*;

#[derive(Clone, Default, Serialize, Deserialize)]
struct F { n: u64 }

#[flow]
impl F {
    #[step(next = end)]
    fn start(&mut self) -> Result<u64, String> {
        Ok(1)
    }
    #[step]
    fn end(&mut self) {}
}

fn main() {}
