//! Switch arms meet again without a join: only one of them runs, so there is nothing to join.
//! Patterns may be any pattern: alternatives, literals, ranges, a wildcard.

use blooming_flowers::prelude::*;
use blooming_flowers::{StepInput, StepOutcome, Transition};

#[derive(Clone, Default, Serialize, Deserialize)]
struct Grade {
    score: u32,
    grade: String,
}

#[flow]
impl Grade {
    #[step(switch(0..=49 => fail, 50 | 51 => borderline, _ => pass))]
    fn start(&mut self) -> u32 {
        self.score
    }

    #[step(next = report)]
    fn fail(&mut self) {
        self.grade = "F".into();
    }

    #[step(next = report)]
    fn borderline(&mut self) {
        self.grade = "D".into();
    }

    #[step(next = report)]
    fn pass(&mut self) {
        self.grade = "A".into();
    }

    #[step(next = end)]
    fn report(&mut self) {}

    #[step]
    fn end(&mut self) {}
}

fn main() {
    let g = Grade::GRAPH;
    let Transition::Switch(arms) = g.steps[0].transition else { panic!("not a switch") };
    let patterns: Vec<&str> = arms.iter().map(|a| a.pattern).collect();
    assert_eq!(patterns, ["0..=49", "50 | 51", "_"]);
    assert_eq!(g.steps[g.step_index("report").unwrap()].join, None);
    assert_eq!(g.predecessors(g.step_index("report").unwrap()), [1, 2, 3]);

    let mut state = Grade { score: 51, ..Grade::default() };
    assert_eq!(state.__run_step(0, StepInput::Plain), Ok(StepOutcome::Arm(1)));
    state.score = 99;
    assert_eq!(state.__run_step(0, StepInput::Plain), Ok(StepOutcome::Arm(2)));
}
