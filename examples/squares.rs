//! A flow that uses every kind of transition: a branch, a foreach, a switch, and the joins that
//! close the splits.

use blooming_flowers::prelude::*;

/// Which way `decide` sends the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
enum Route {
    Big,
    Small,
}

/// The flow's state: every field is stored after every step.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Squares {
    xs: Vec<u64>,
    square: u64,
    total: u64,
    note: String,
    verdict: String,
}

#[flow]
impl Squares {
    /// Picks the numbers to square.
    #[step(next = [left, right])]
    fn start(&mut self) {
        self.xs = (1..=10).collect();
    }

    /// One branch leaves a note.
    #[step(next = both)]
    fn left(&mut self) {
        self.note = "from the left".into();
    }

    /// The other branch leaves the state as it found it.
    #[step(next = both)]
    fn right(&mut self) {}

    /// Joins the two branches: `note` was changed by `left` only, so it merges without a
    /// conflict.
    #[step(join, next = fan)]
    fn both(&mut self, inputs: Inputs<Self>) -> Result<(), MergeError> {
        inputs.merge_artifacts(self)
    }

    /// Fans out over `xs`: one `sq` task per element.
    #[step(foreach = xs, next = sq)]
    fn fan(&mut self) {}

    /// Squares one element.
    #[step(next = gather)]
    fn sq(&mut self, x: u64) {
        self.square = x * x;
    }

    /// Adds the squares up.
    #[step(join, next = decide)]
    fn gather(&mut self, inputs: Inputs<Self>) {
        self.total = inputs.iter().map(|i| i.square).sum();
        tracing::info!(total = self.total, "gathered {} squares", inputs.len());
    }

    /// Sends big totals one way and small ones the other.
    #[step(switch(Route::Big => big, Route::Small => small))]
    fn decide(&mut self) -> Route {
        if self.total > 100 {
            Route::Big
        } else {
            Route::Small
        }
    }

    #[step(next = end)]
    fn big(&mut self) {
        self.verdict = format!("{} is big", self.total);
    }

    #[step(next = end)]
    fn small(&mut self) {
        self.verdict = format!("{} is small", self.total);
    }

    /// Nothing left to do: the results are in the state.
    #[step]
    fn end(&mut self) {}

    /// A plain method: not a step.
    #[allow(dead_code)]
    fn helper(&self) -> u64 {
        self.total
    }
}

/// The flow's command line: `run`, `resume`, `show`, `graph`, `runs`, `dump`, `logs`, `tag`, `step`.
fn main() -> std::process::ExitCode {
    blooming_flowers::main::<Squares>()
}
