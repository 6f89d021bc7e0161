//! Loops compile and describe themselves: a switch arm back to an earlier step, also inside a
//! foreach, with `max_iterations`.

use blooming_flowers::Transition;
use blooming_flowers::prelude::*;

#[derive(Clone, Default, Serialize, Deserialize)]
struct Train {
    xs: Vec<u32>,
    loss: f64,
}

#[flow]
impl Train {
    #[step(next = fit)]
    fn start(&mut self) {
        self.loss = 1.0;
    }
    #[step(next = check)]
    fn fit(&mut self) {
        self.loss /= 2.0;
    }
    #[step(switch(true => fit, false => fan), max_iterations = 10)]
    fn check(&mut self) -> bool {
        self.loss > 0.1
    }
    #[step(foreach = xs, next = body)]
    fn fan(&mut self) {}
    #[step(next = again)]
    fn body(&mut self, x: u32) {
        self.loss = f64::from(x);
    }
    #[step(switch(true => again, false => done))]
    fn again(&mut self) -> bool {
        false
    }
    #[step(next = join)]
    fn done(&mut self) {}
    #[step(join, next = end)]
    fn join(&mut self, inputs: Inputs<Self>) {}
    #[step]
    fn end(&mut self) {}
}

fn main() {
    let graph = Train::GRAPH;
    let check = graph.step("check").expect("check");
    assert_eq!(check.options.max_iterations, Some(10));
    let Transition::Switch(arms) = check.transition else {
        panic!("check is a switch");
    };
    assert_eq!(graph.steps[arms[0].target].name, "fit");
}
