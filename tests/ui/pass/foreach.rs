//! A foreach over a field: one body task per element, each taking the element typed.

use blooming_flowers::prelude::*;
use blooming_flowers::{StepInput, StepOutcome, Transition};

#[derive(Clone, Default, Serialize, Deserialize)]
struct Squares {
    xs: Vec<u64>,
    square: u64,
    total: u64,
}

#[flow]
impl Squares {
    #[step(foreach = xs, next = square)]
    fn start(&mut self) {
        self.xs = vec![1, 2, 3];
    }

    #[step(next = gather)]
    fn square(&mut self, x: u64) {
        self.square = x * x;
    }

    #[step(join, next = end)]
    fn gather(&mut self, inputs: Inputs<Self>) {
        self.total = inputs.iter().map(|i| i.square).sum();
    }

    #[step]
    fn end(&mut self) {}
}

fn main() {
    let g = Squares::GRAPH;
    assert_eq!(g.steps[0].transition, Transition::Foreach { field: "xs", body: 1 });
    assert_eq!(g.steps[2].join, Some(0));
    assert!(g.is_foreach_body(1));
    assert!(!g.is_foreach_body(2));

    let mut state = Squares::default();
    state.__run_step(0, StepInput::Plain).unwrap();
    let items = state.__foreach_items(0).unwrap();
    assert_eq!(items.len(), 3);
    // Only the foreach step has items.
    assert!(state.__foreach_items(1).is_err());

    // Each body task decodes its own element.
    let squares: Vec<u64> = items
        .iter()
        .map(|item| {
            let mut task = state.clone();
            assert_eq!(task.__run_step(1, StepInput::Item(item)), Ok(StepOutcome::Continue));
            task.square
        })
        .collect();
    assert_eq!(squares, [1, 4, 9]);
    // An item of the wrong type, or none, is an error, not a panic.
    assert!(state.__run_step(1, StepInput::Item(b"\xc0")).is_err());
    assert!(state.__run_step(1, StepInput::Plain).is_err());
}
