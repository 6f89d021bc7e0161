#![allow(unused)]

use blooming_flowers::prelude::*;

#[derive(Clone, Default, Serialize, Deserialize)]
struct G<T> { t: T }

#[flow]
impl<T> G<T> {
    #[step(next = end)]
    fn start(&mut self) {}
    #[step]
    fn end(&mut self) {}
}

fn main() {}
