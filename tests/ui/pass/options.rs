//! Step options beside the transition, recorded in the graph.

use std::time::Duration;

use blooming_flowers::prelude::*;
use blooming_flowers::{CatchSpec, StepOptions};

#[derive(Clone, Default, Serialize, Deserialize)]
struct Careful {
    error_field: Option<String>,
}

#[flow]
impl Careful {
    #[step(next = flaky, retries = 3, timeout = "1h 30m", catch)]
    fn start(&mut self) {}

    #[step(catch = error_field, next = quick, retries = 0)]
    fn flaky(&mut self) -> Result<(), String> {
        Err("flaked".into())
    }

    #[step(timeout = 45, next = end)]
    fn quick(&mut self) {}

    #[step(timeout = "250ms")]
    fn end(&mut self) {}
}

fn main() {
    let steps = Careful::GRAPH.steps;
    assert_eq!(
        steps[0].options,
        StepOptions {
            retries: 3,
            timeout: Some(Duration::from_secs(90 * 60)),
            catch: Some(CatchSpec { field: None }),
            max_iterations: None,
        }
    );
    assert_eq!(
        steps[1].options,
        StepOptions {
            retries: 0,
            timeout: None,
            catch: Some(CatchSpec { field: Some("error_field") }),
            max_iterations: None,
        }
    );
    assert_eq!(steps[2].options.timeout, Some(Duration::from_secs(45)));
    assert_eq!(steps[3].options.timeout, Some(Duration::from_millis(250)));
    assert_eq!(steps[3].options.retries, 0);

    // `catch = error_field` stores the message there; other steps ignore it.
    let mut state = Careful::default();
    state.__record_caught(0, "ignored".into());
    assert_eq!(state.error_field, None);
    state.__record_caught(1, "flaked".into());
    assert_eq!(state.error_field.as_deref(), Some("flaked"));
}
