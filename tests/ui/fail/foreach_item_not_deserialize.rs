#![allow(unused)]

use blooming_flowers::prelude::*;

#[derive(Clone, Default, Serialize, Deserialize)]
struct F { n: u64 }

#[derive(Clone, Serialize)]
struct Item(u64);

#[derive(Clone, Default, Serialize, Deserialize)]
struct G {
    #[serde(skip)]
    xs: Vec<Item>,
}

#[flow]
impl G {
    #[step(foreach = xs, next = body)]
    fn start(&mut self) {}
    #[step(next = j)]
    fn body(&mut self, x: Item) {}
    #[step(join, next = end)]
    fn j(&mut self, inputs: Inputs<Self>) {}
    #[step]
    fn end(&mut self) {}
}

fn main() {}
