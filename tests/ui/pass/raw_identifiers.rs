//! Steps named with raw identifiers: the graph uses the plain names.

use blooming_flowers::prelude::*;
use blooming_flowers::Transition;

#[derive(Clone, Default, Serialize, Deserialize)]
struct Raw {
    n: u64,
}

#[flow]
impl Raw {
    #[step(next = r#match)]
    fn start(&mut self) {}

    #[step(next = [r#type, plain])]
    fn r#match(&mut self) {}

    #[step(next = r#async)]
    fn r#type(&mut self) {}

    #[step(next = r#async)]
    fn plain(&mut self) {}

    #[step(join, next = r#end)]
    fn r#async(&mut self, _inputs: Inputs<Self>) {}

    #[step]
    fn end(&mut self) {}
}

fn main() {
    let g = Raw::GRAPH;
    let names: Vec<&str> = g.steps.iter().map(|s| s.name).collect();
    assert_eq!(names, ["start", "match", "type", "plain", "async", "end"]);
    assert_eq!(g.steps[0].transition, Transition::Linear(1));
    assert_eq!(g.steps[4].join, Some(1));
    assert_eq!(g.steps[4].transition, Transition::Linear(5));
}
