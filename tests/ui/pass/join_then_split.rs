//! A join that splits again straight away, and a second join closing the new split.

use blooming_flowers::prelude::*;
use blooming_flowers::Transition;

#[derive(Clone, Default, Serialize, Deserialize)]
struct Twice {
    xs: Vec<u8>,
    n: u8,
}

#[flow]
impl Twice {
    #[step(next = [a, b])]
    fn start(&mut self) {}

    #[step(next = j1)]
    fn a(&mut self) {}

    #[step(next = j1)]
    fn b(&mut self) {}

    #[step(join, foreach = xs, next = each)]
    fn j1(&mut self, inputs: Inputs<Self>) {
        self.xs = vec![inputs.len() as u8];
    }

    #[step(next = j2)]
    fn each(&mut self, x: u8) {
        self.n = x;
    }

    #[step(join, next = [c, d])]
    fn j2(&mut self, inputs: Inputs<Self>) {
        self.n = inputs.iter().map(|i| i.n).sum();
    }

    #[step(next = j3)]
    fn c(&mut self) {}

    #[step(next = j3)]
    fn d(&mut self) {}

    #[step(join, next = end)]
    fn j3(&mut self, _inputs: Inputs<Self>) {}

    #[step]
    fn end(&mut self) {}
}

fn main() {
    let g = Twice::GRAPH;
    let idx = |name| g.step_index(name).unwrap();
    assert_eq!(g.steps[idx("j1")].join, Some(idx("start")));
    assert_eq!(g.steps[idx("j1")].transition, Transition::Foreach { field: "xs", body: idx("each") });
    assert_eq!(g.steps[idx("j2")].join, Some(idx("j1")));
    assert_eq!(g.steps[idx("j2")].transition, Transition::Branch(&[6, 7]));
    assert_eq!(g.steps[idx("j3")].join, Some(idx("j2")));
    assert_eq!(g.steps[idx("j2")].kind(), blooming_flowers::StepKind::Join);
}
