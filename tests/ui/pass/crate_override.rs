//! `#[flow(crate = path)]` for crates that re-export blooming-flowers under another name.

extern crate blooming_flowers as bf;

mod reexport {
    pub use bf::*;
}

use bf::prelude::*;

#[derive(Clone, Default, Serialize, Deserialize)]
struct Elsewhere {
    xs: Vec<u8>,
    x: u8,
}

#[flow(crate = crate::reexport)]
impl Elsewhere {
    #[step(foreach = xs, next = each)]
    fn start(&mut self) {}

    #[step(next = join)]
    fn each(&mut self, x: u8) {
        self.x = x;
    }

    #[step(join, next = end)]
    fn join(&mut self, _inputs: Inputs<Self>) {}

    #[step]
    fn end(&mut self) {}
}

fn main() {
    assert_eq!(Elsewhere::GRAPH.name, "Elsewhere");
    assert_eq!(Elsewhere::GRAPH.steps[2].join, Some(0));
}
