//! A switch inside one branch of a split: whichever arm runs, the branch reaches the join once.

use blooming_flowers::prelude::*;
use blooming_flowers::{StepInput, StepOutcome, SwitchArm, Transition};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
enum Size {
    Small,
    Large,
}

#[derive(Clone, Default, Serialize, Deserialize)]
struct Mixed {
    n: u64,
    label: String,
}

#[flow]
impl Mixed {
    #[step(next = [decide, other])]
    fn start(&mut self) {
        self.n = 7;
    }

    #[step(switch(Size::Small => small, Size::Large => large))]
    fn decide(&mut self) -> Size {
        if self.n < 5 { Size::Small } else { Size::Large }
    }

    #[step(next = join)]
    fn small(&mut self) {
        self.label = "small".into();
    }

    #[step(next = join)]
    fn large(&mut self) {
        self.label = "large".into();
    }

    #[step(next = join)]
    fn other(&mut self) {}

    #[step(join, next = end)]
    fn join(&mut self, inputs: Inputs<Self>) {
        self.label = inputs.iter().map(|i| i.label.clone()).collect();
    }

    #[step]
    fn end(&mut self) {}
}

fn main() {
    let g = Mixed::GRAPH;
    let idx = |name| g.step_index(name).unwrap();
    assert_eq!(
        g.steps[idx("decide")].transition,
        Transition::Switch(&[
            SwitchArm { pattern: "Size::Small", target: 2 },
            SwitchArm { pattern: "Size::Large", target: 3 },
        ])
    );
    assert_eq!(g.steps[idx("join")].join, Some(idx("start")));

    let mut state = Mixed::default();
    state.__run_step(idx("start"), StepInput::Plain).unwrap();
    assert_eq!(state.__run_step(idx("decide"), StepInput::Plain), Ok(StepOutcome::Arm(1)));
    state.n = 1;
    assert_eq!(state.__run_step(idx("decide"), StepInput::Plain), Ok(StepOutcome::Arm(0)));
}
