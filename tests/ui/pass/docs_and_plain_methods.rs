//! Doc comments become descriptions; methods without `#[step]` stay ordinary methods, callable
//! from steps; other attributes on steps are kept.

use blooming_flowers::prelude::*;

#[derive(Clone, Default, Serialize, Deserialize)]
struct Documented {
    n: u64,
}

/// A flow with documentation.
///
/// Over two paragraphs.
#[flow]
impl Documented {
    /// Starts the flow.
    ///
    /// Then goes on to `end`.
    #[step(next = end)]
    #[inline]
    #[allow(clippy::unused_self)]
    pub fn start(&mut self) {
        self.n = self.helper() + Self::associated();
    }

    /** Ends it. */
    #[doc = "Really."]
    #[step]
    #[must_use = "never mind"]
    pub(crate) fn end(&mut self) -> Result<(), String> {
        Ok(())
    }

    /// Not a step.
    fn helper(&self) -> u64 {
        20
    }

    fn associated() -> u64 {
        22
    }

    const ANSWER: u64 = 42;
}

fn main() {
    let g = Documented::GRAPH;
    assert_eq!(g.doc, "A flow with documentation.\n\nOver two paragraphs.");
    assert_eq!(g.steps.len(), 2);
    assert_eq!(g.steps[0].doc, "Starts the flow.\n\nThen goes on to `end`.");
    assert_eq!(g.steps[1].doc, "Ends it.\nReally.");
    let mut state = Documented::default();
    state.__run_step(0, blooming_flowers::StepInput::Plain).unwrap();
    assert_eq!(state.n, Documented::ANSWER);
    assert_eq!(state.helper(), 20);
}
