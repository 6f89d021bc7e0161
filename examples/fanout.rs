//! A foreach over many elements with a trivial body, then a join: the executor's overhead per
//! task. `cargo run --release --example fanout -- run --items 10000`.

use blooming_flowers::clap;
use blooming_flowers::prelude::*;

#[derive(Clone, Default, Serialize, Deserialize, clap::Args)]
struct Size {
    /// How many elements to fan out over.
    #[arg(long, default_value_t = 10_000)]
    items: u64,
}

#[derive(Clone, Default, Serialize, Deserialize)]
pub struct Fanout {
    size: Size,
    xs: Vec<u64>,
    y: u64,
    total: u64,
}

#[flow(params = size)]
impl Fanout {
    #[step(foreach = xs, next = body)]
    fn start(&mut self) {
        self.xs = (0..self.size.items).collect();
    }

    #[step(next = join)]
    fn body(&mut self, x: u64) {
        self.y = x + 1;
    }

    #[step(join, next = end)]
    fn join(&mut self, inputs: Inputs<Self>) {
        // Reads each branch's `y` alone, not its whole state (`inputs.iter()` would decode every
        // branch's copy of the 10,000-element `xs` too).
        self.total = inputs.values(|s| &s.y).sum();
        self.xs.clear();
    }

    #[step]
    fn end(&mut self) {}
}

fn main() -> std::process::ExitCode {
    blooming_flowers::main::<Fanout>()
}
