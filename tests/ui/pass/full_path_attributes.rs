//! The attributes by their full paths, without the prelude's imports.

#[derive(Clone, Default, serde::Serialize, serde::Deserialize)]
struct Qualified {
    n: u64,
}

#[blooming_flowers::flow]
impl Qualified {
    #[blooming_flowers::step(next = end)]
    fn start(&mut self) {}

    #[::blooming_flowers::step]
    fn end(&mut self) {}
}

fn main() {
    use blooming_flowers::Flow;
    assert_eq!(Qualified::GRAPH.steps.len(), 2);
    assert_eq!(Qualified::GRAPH.steps[0].transition, blooming_flowers::Transition::Linear(1));
}
