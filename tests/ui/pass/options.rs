//! Step options beside the transition, recorded in the graph.

use std::time::Duration;

use blooming_flowers::prelude::*;
use blooming_flowers::{CatchSpec, Resources, StepOptions};

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

    #[step(timeout = 45, next = end, resources(cpus = 8, memory = "64 GiB", gpus = 1))]
    fn quick(&mut self) {}

    #[step(timeout = "250ms", resources(memory = "1.5 GB"))]
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
            resources: Resources::NONE,
        }
    );
    assert_eq!(
        steps[1].options,
        StepOptions {
            retries: 0,
            timeout: None,
            catch: Some(CatchSpec { field: Some("error_field") }),
            max_iterations: None,
            resources: Resources::default(),
        }
    );
    assert_eq!(steps[2].options.timeout, Some(Duration::from_secs(45)));
    assert_eq!(steps[3].options.timeout, Some(Duration::from_millis(250)));
    assert_eq!(steps[3].options.retries, 0);
    assert_eq!(
        steps[2].options.resources,
        Resources { cpus: Some(8), memory_bytes: Some(64 << 30), gpus: Some(1) }
    );
    assert_eq!(
        steps[3].options.resources,
        Resources { cpus: None, memory_bytes: Some(1_500_000_000), gpus: None }
    );
    assert!(Careful::GRAPH.to_text().contains("    resources: 8 cpus, 64 GiB, 1 gpu\n"));

    // `catch = error_field` stores the message there; other steps ignore it.
    let mut state = Careful::default();
    state.__record_caught(0, "ignored".into());
    assert_eq!(state.error_field, None);
    state.__record_caught(1, "flaked".into());
    assert_eq!(state.error_field.as_deref(), Some("flaked"));
}
