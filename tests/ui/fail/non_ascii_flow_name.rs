#![allow(unused)]

use blooming_flowers::prelude::*;

#[derive(Clone, Default, Serialize, Deserialize)]
struct Blümchen { n: u64 }

#[flow]
impl Blümchen {
    #[step(next = end)]
    fn start(&mut self) {}
    #[step]
    fn end(&mut self) {}
}

fn main() {}
