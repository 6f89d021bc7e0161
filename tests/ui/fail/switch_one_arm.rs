#![allow(unused)]

use blooming_flowers::prelude::*;

#[derive(Clone, Default, Serialize, Deserialize)]
struct F { n: u64 }

#[derive(Clone, Copy)]
enum Route {
    Only,
}

#[flow]
impl F {
    #[step(switch(Route::Only => a))]
    fn start(&mut self) -> Route {
        Route::Only
    }
    #[step(next = end)]
    fn a(&mut self) {}
    #[step]
    fn end(&mut self) {}
}

fn main() {}
