#![allow(unused)]

use blooming_flowers::prelude::*;

#[derive(Clone, Default, Serialize, Deserialize)]
struct F { xs: Vec<u32>, n: u64 }

#[flow]
impl F {
    #[step(next = train)]
    fn start(&mut self) {}
    #[step(next = check)]
    fn train(&mut self) {}
    #[step(switch(true => train, false => check))]
    fn check(&mut self) -> bool { self.n < 3 }
    #[step]
    fn end(&mut self) {}
}

fn main() {}
