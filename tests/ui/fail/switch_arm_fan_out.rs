#![allow(unused)]

use blooming_flowers::prelude::*;

#[derive(Clone, Copy, Serialize, Deserialize)]
enum Hit {
    Miss,
    Found,
}

#[derive(Clone, Default, Serialize, Deserialize)]
struct F { n: u64 }

#[flow]
impl F {
    #[step(switch(Hit::Miss => [clip, face], Hit::Found => end))]
    fn start(&mut self) -> Hit {
        Hit::Miss
    }
    #[step(next = join)]
    fn clip(&mut self) {}
    #[step(next = join)]
    fn face(&mut self) {}
    #[step(join, next = end)]
    fn join(&mut self, inputs: Inputs<Self>) {}
    #[step]
    fn end(&mut self) {}
}

fn main() {}
