//! A static split into three branches, closed by one join.

use blooming_flowers::prelude::*;
use blooming_flowers::{StepInput, StepOutcome, Transition};

#[derive(Clone, Default, Serialize, Deserialize)]
struct Three {
    a: u64,
    b: u64,
    c: u64,
    sum: u64,
}

#[flow]
impl Three {
    #[step(next = [a, b, c])]
    fn start(&mut self) {}

    #[step(next = join)]
    fn a(&mut self) {
        self.a = 1;
    }

    #[step(next = join)]
    fn b(&mut self) {
        self.b = 10;
    }

    #[step(next = join)]
    fn c(&mut self) {
        self.c = 100;
    }

    #[step(join, next = end)]
    fn join(&mut self, inputs: Inputs<Self>) {
        self.sum = inputs.iter().map(|i| i.a + i.b + i.c).sum();
    }

    #[step]
    fn end(&mut self) {}
}

fn main() {
    let g = Three::GRAPH;
    let idx = |name| g.step_index(name).unwrap();
    assert_eq!(g.steps[idx("start")].transition, Transition::Branch(&[1, 2, 3]));
    assert_eq!(g.steps[idx("join")].join, Some(idx("start")));
    assert_eq!(g.steps[idx("join")].transition, Transition::Linear(idx("end")));
    assert_eq!(g.predecessors(idx("join")), [1, 2, 3]);

    // Each branch runs its own step.
    let mut state = Three::default();
    for name in ["a", "b", "c"] {
        assert_eq!(state.__run_step(idx(name), StepInput::Plain), Ok(StepOutcome::Continue));
    }
    assert_eq!((state.a, state.b, state.c), (1, 10, 100));
    // A join given no inputs is an executor bug, reported as an error rather than a panic.
    assert!(state.__run_step(idx("join"), StepInput::Plain).is_err());
}
