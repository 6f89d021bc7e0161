//! The simplest flow: `start → middle → end`.

use blooming_flowers::prelude::*;
use blooming_flowers::{StepInput, StepOutcome, Transition};

#[derive(Clone, Default, Serialize, Deserialize)]
struct Linear {
    n: u64,
}

#[flow]
impl Linear {
    #[step(next = middle)]
    fn start(&mut self) {
        self.n = 1;
    }

    #[step(next = end)]
    fn middle(&mut self) {
        self.n += 1;
    }

    #[step]
    fn end(&mut self) {}
}

fn main() {
    let g = Linear::GRAPH;
    assert_eq!(g.name, "Linear");
    let names: Vec<&str> = g.steps.iter().map(|s| s.name).collect();
    assert_eq!(names, ["start", "middle", "end"]);
    assert_eq!((g.start, g.end), (0, 2));
    assert_eq!(g.steps[0].transition, Transition::Linear(1));
    assert_eq!(g.steps[1].transition, Transition::Linear(2));
    assert_eq!(g.steps[2].transition, Transition::End);
    assert!(g.steps.iter().all(|s| s.join.is_none() && s.doc.is_empty()));

    // The dispatch runs the user's methods.
    let mut state = Linear::default();
    assert_eq!(state.__run_step(0, StepInput::Plain), Ok(StepOutcome::Continue));
    assert_eq!(state.__run_step(1, StepInput::Plain), Ok(StepOutcome::Continue));
    assert_eq!(state.n, 2);
    assert!(state.__run_step(3, StepInput::Plain).is_err());
}
