//! A foreach body that splits into branches: the branch join comes first, then the foreach join.

use blooming_flowers::prelude::*;
use blooming_flowers::Transition;

#[derive(Clone, Default, Serialize, Deserialize)]
struct Fan {
    xs: Vec<i64>,
    x: i64,
    plus: i64,
    minus: i64,
    results: Vec<i64>,
}

#[flow]
impl Fan {
    #[step(foreach = xs, next = body)]
    fn start(&mut self) {
        self.xs = vec![3, 4];
    }

    #[step(next = [plus, minus])]
    fn body(&mut self, x: i64) {
        self.x = x;
    }

    #[step(next = both)]
    fn plus(&mut self) {
        self.plus = self.x + 1;
    }

    #[step(next = both)]
    fn minus(&mut self) {
        self.minus = self.x - 1;
    }

    #[step(join, next = all)]
    fn both(&mut self, inputs: Inputs<Self>) {
        for input in inputs.iter() {
            self.plus = self.plus.max(input.plus);
            self.minus = self.minus.min(input.minus);
        }
    }

    #[step(join, next = end)]
    fn all(&mut self, inputs: Inputs<Self>) {
        self.results = inputs.iter().map(|i| i.plus * i.minus).collect();
    }

    #[step]
    fn end(&mut self) {}
}

fn main() {
    let g = Fan::GRAPH;
    let idx = |name| g.step_index(name).unwrap();
    assert_eq!(g.steps[idx("body")].transition, Transition::Branch(&[2, 3]));
    assert_eq!(g.steps[idx("both")].join, Some(idx("body")));
    assert_eq!(g.steps[idx("all")].join, Some(idx("start")));
}
