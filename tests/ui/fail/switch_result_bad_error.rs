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
    #[step(switch(Route::A => a, Route::B => b))]
    fn start(&mut self) -> Result<Route, u32> {
        Ok(Route::A)
    }
    #[step(next = end)]
    fn a(&mut self) {}
    #[step(next = end)]
    fn b(&mut self) {}
    #[step]
    fn end(&mut self) {}
}

fn main() {}
