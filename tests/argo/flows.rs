//! Flows made for the Argo tests: every kind of transition with nested splits, and one that
//! fails.

use blooming_flowers::clap;
use blooming_flowers::prelude::*;

/// How a cell's number divides.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum Parity {
    Even,
    Odd,
}

/// Which way the run ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum Way {
    Short,
    Long,
}

/// The parameters of [`Nested`].
#[derive(Clone, Default, Serialize, Deserialize, clap::Args)]
pub(crate) struct Knobs {
    /// How many rows the outer foreach goes over.
    #[arg(long, default_value_t = 3)]
    rows: u64,
    /// Ends through `detour` instead of going straight to `end`.
    #[arg(long)]
    detour: bool,
}

/// A branch, a foreach holding a branch and another foreach, a switch inside the inner foreach
/// whose arms reach the join separately, and a switch with an arm straight into `end`; retries,
/// a timeout and a caught failure.
#[derive(Clone, Default, Serialize, Deserialize)]
pub(crate) struct Nested {
    knobs: Knobs,
    rows: Vec<u64>,
    cols: Vec<u64>,
    note: String,
    row: u64,
    side: String,
    cell: u64,
    parity: String,
    sum: u64,
    sums: Vec<u64>,
    total: u64,
    caught: Option<String>,
}

#[flow(params = knobs)]
impl Nested {
    #[step(next = [left, right])]
    fn start(&mut self) {
        self.rows = (0..self.knobs.rows).collect();
    }

    #[step(next = both)]
    fn left(&mut self) {
        self.note = "left".into();
    }

    #[step(next = both)]
    fn right(&mut self) {}

    #[step(join, next = outer)]
    fn both(&mut self, inputs: Inputs<Self>) -> Result<(), MergeError> {
        inputs.merge_artifacts(self)
    }

    #[step(foreach = rows, next = row_start)]
    fn outer(&mut self) {}

    #[step(next = [row_a, row_b])]
    fn row_start(&mut self, row: u64) {
        self.row = row;
        self.cols = (0..=row).collect();
    }

    #[step(next = row_both)]
    fn row_a(&mut self) {
        self.side = format!("a{}", self.row);
    }

    #[step(next = row_both)]
    fn row_b(&mut self) {}

    #[step(join, next = inner)]
    fn row_both(&mut self, inputs: Inputs<Self>) -> Result<(), MergeError> {
        inputs.merge_artifacts(self)
    }

    #[step(foreach = cols, next = cell)]
    fn inner(&mut self) {}

    #[step(switch(Parity::Even => even, Parity::Odd => odd))]
    fn cell(&mut self, col: u64) -> Parity {
        self.cell = self.row * 10 + col;
        if self.cell.is_multiple_of(2) {
            Parity::Even
        } else {
            Parity::Odd
        }
    }

    #[step(next = cells)]
    fn even(&mut self) {
        self.parity = "even".into();
    }

    #[step(next = cells, retries = 2)]
    fn odd(&mut self) {
        self.parity = "odd".into();
    }

    #[step(join, next = row_end)]
    fn cells(&mut self, inputs: Inputs<Self>) {
        self.sum = inputs.iter().map(|i| i.cell).sum();
        self.parity = inputs
            .iter()
            .map(|i| i.parity.clone())
            .collect::<Vec<_>>()
            .join(",");
    }

    #[step(next = rows_done, timeout = "2m")]
    fn row_end(&mut self) {
        self.sum += 1000;
    }

    #[step(join, next = decide)]
    fn rows_done(&mut self, inputs: Inputs<Self>) {
        self.sums = inputs.iter().map(|i| i.sum).collect();
        self.total = self.sums.iter().sum();
    }

    #[step(switch(Way::Short => end, Way::Long => detour), retries = 1, timeout = 60)]
    fn decide(&mut self) -> Way {
        if self.knobs.detour {
            Way::Long
        } else {
            Way::Short
        }
    }

    #[step(next = end, retries = 1, catch = caught)]
    fn detour(&mut self) -> Result<(), String> {
        Err(format!("no detour past {}", self.total))
    }

    #[step]
    fn end(&mut self) {}
}

/// A foreach whose second element fails.
#[derive(Clone, Default, Serialize, Deserialize)]
pub(crate) struct Breaks {
    xs: Vec<u64>,
    y: u64,
}

#[flow]
impl Breaks {
    #[step(foreach = xs, next = work)]
    fn start(&mut self) {
        self.xs = vec![1, 2, 3];
    }

    #[step(next = gather)]
    fn work(&mut self, x: u64) -> Result<(), String> {
        if x == 2 {
            return Err(format!("cannot work on {x}"));
        }
        self.y = x;
        Ok(())
    }

    #[step(join, next = end)]
    fn gather(&mut self, inputs: Inputs<Self>) {
        self.y = inputs.iter().map(|i| i.y).sum();
    }

    #[step]
    fn end(&mut self) {}
}

/// The parameters of [`Looping`].
#[derive(Clone, Default, Serialize, Deserialize, clap::Args)]
pub(crate) struct Rounds {
    /// How many passes the outer loop makes.
    #[arg(long, default_value_t = 3)]
    rounds: u64,
}

/// Loops: an outer loop around a foreach whose elements each loop as many times as their value,
/// then a loop of one step going back to itself.
#[derive(Clone, Default, Serialize, Deserialize)]
pub(crate) struct Looping {
    rounds: Rounds,
    round: u64,
    xs: Vec<u64>,
    x: u64,
    tries: u64,
    sums: Vec<u64>,
    polish: u64,
}

#[flow(params = rounds)]
impl Looping {
    #[step(next = round)]
    fn start(&mut self) {}

    #[step(foreach = xs, next = element)]
    fn round(&mut self) {
        self.round += 1;
        self.xs = (1..=self.round).collect();
    }

    #[step(next = attempt)]
    fn element(&mut self, x: u64) {
        self.x = x;
        self.tries = 0;
    }

    #[step(next = judge)]
    fn attempt(&mut self) {
        self.tries += 1;
    }

    #[step(switch(true => attempt, false => settle))]
    fn judge(&mut self) -> bool {
        self.tries < self.x
    }

    #[step(next = gather)]
    fn settle(&mut self) {}

    #[step(join, next = again)]
    fn gather(&mut self, inputs: Inputs<Self>) {
        self.sums.push(inputs.iter().map(|i| i.tries).sum());
        self.round = inputs.iter().map(|i| i.round).max().unwrap_or(0);
    }

    #[step(switch(true => round, false => polish), max_iterations = 10)]
    fn again(&mut self) -> bool {
        self.round < self.rounds.rounds
    }

    #[step(switch(true => polish, false => end))]
    fn polish(&mut self) -> bool {
        self.polish += 1;
        self.polish < 2
    }

    #[step]
    fn end(&mut self) {}
}

/// A step asking for resources: its container's `resources`.
#[derive(Clone, Default, Serialize, Deserialize)]
pub(crate) struct Sized {
    y: u64,
}

#[flow]
impl Sized {
    #[step(next = train)]
    fn start(&mut self) {}

    #[step(next = end, resources(cpus = 8, memory = "64 GiB", gpus = 1))]
    fn train(&mut self) {
        self.y = 1;
    }

    #[step]
    fn end(&mut self) {}
}
