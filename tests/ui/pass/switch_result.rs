//! A fallible switch: `Result<Route, E>`; the error fails the step, the value picks the arm.

use blooming_flowers::prelude::*;
use blooming_flowers::{StepInput, StepOutcome};

#[derive(Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
enum Route {
    Left,
    Right,
}

#[derive(Clone, Default, Serialize, Deserialize)]
struct Fallible {
    input: String,
}

#[flow]
impl Fallible {
    #[step(switch(Route::Left => left, Route::Right => right))]
    fn start(&mut self) -> Result<Route, std::num::ParseIntError> {
        let n: i64 = self.input.parse()?;
        Ok(if n < 0 { Route::Left } else { Route::Right })
    }

    #[step(next = end)]
    fn left(&mut self) {}

    #[step(next = end)]
    fn right(&mut self) {}

    #[step]
    fn end(&mut self) {}
}

fn main() {
    let mut state = Fallible { input: "-3".into() };
    assert_eq!(state.__run_step(0, StepInput::Plain), Ok(StepOutcome::Arm(0)));
    state.input = "12".into();
    assert_eq!(state.__run_step(0, StepInput::Plain), Ok(StepOutcome::Arm(1)));
    state.input = "twelve".into();
    let error = state.__run_step(0, StepInput::Plain).unwrap_err();
    assert_eq!(error.message, "invalid digit found in string");
}
