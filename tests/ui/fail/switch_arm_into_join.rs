#![allow(unused)]

use blooming_flowers::prelude::*;

#[derive(Clone, Default, Serialize, Deserialize)]
struct F { n: u64 }

#[derive(Clone, Copy)]
enum Route {
    A,
    B,
}

#[flow]
impl F {
    #[step(next = [x, y])]
    fn start(&mut self) {}
    #[step(switch(Route::A => a, Route::B => j))]
    fn x(&mut self) -> Route {
        Route::A
    }
    #[step(next = j)]
    fn a(&mut self) {}
    #[step(next = j)]
    fn y(&mut self) {}
    #[step(join, next = end)]
    fn j(&mut self, inputs: Inputs<Self>) {}
    #[step]
    fn end(&mut self) {}
}

fn main() {}
