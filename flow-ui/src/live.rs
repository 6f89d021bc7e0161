//! A running run's page keeps itself up to date: how a run stands ([`standing`], computed once
//! for both its page and `status.json`), the `status.json` handler, and the script the page of a
//! running run loads, `static/live.js`, which asks for `status.json` every second.

use axum::extract::{Path, State};
use axum::http::header;
use axum::response::{IntoResponse, Json, Response};
use flow_runtime::client::{Client, RunHandle, TaskProgress};
use flow_runtime::run::RunStatus;
use serde::Serialize;

use crate::UiError;
use crate::dag::{self, StepState};
use crate::pages::{blocking, duration, existing_run};
use crate::timeline::{Span, spans_of};

/// How a run stands now: what its page shows of it, and what `status.json` answers.
#[derive(Debug, Serialize)]
pub(crate) struct Standing {
    /// `running`, `succeeded` or `failed`.
    pub status: RunStatus,
    /// When it ended, if it did.
    pub finished: Option<String>,
    /// How long it took, or has been running.
    pub duration: String,
    /// Why it failed.
    pub failure: Option<String>,
    /// Each step of its graph, in the graph's order.
    pub steps: Vec<StepStanding>,
}

impl Standing {
    /// Whether the run is still going: its page polls `status.json` only while it is.
    pub fn running(&self) -> bool {
        self.status == RunStatus::Running
    }
}

/// How one step of a run stands.
#[derive(Debug, Serialize)]
pub(crate) struct StepStanding {
    pub name: String,
    /// The CSS class of its box: `done`, `failed`, `running` or `not-started`.
    pub state: StepState,
    pub tasks: usize,
    /// What its box says: `3 tasks · done`.
    pub label: String,
    /// Its tasks' attempts that have ended, for the run page's timeline; empty when not
    /// asked for (`status.json`, polled every second, does not draw one).
    #[serde(skip)]
    pub spans: Vec<Span>,
}

/// Whether [`standing`] also collects each step's attempts for a timeline.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Spans {
    Wanted,
    NotWanted,
}

/// How the run `handle` reads stands: its record and the tasks of each of its steps.
pub(crate) fn standing(handle: &RunHandle, wanted: Spans) -> Result<Standing, UiError> {
    let record = handle.record();
    let present = handle.step_names()?;
    let mut steps = Vec::with_capacity(record.graph.steps.len());
    for step in &record.graph.steps {
        let (state, tasks, spans) = if present.contains(&step.name) {
            let entries = handle.step(&step.name)?.task_entries()?;
            (
                step_state(entries.iter().map(|e| e.progress())),
                entries.len(),
                if wanted == Spans::Wanted {
                    spans_of(&entries)
                } else {
                    Vec::new()
                },
            )
        } else {
            (StepState::NotStarted, 0, Vec::new())
        };
        steps.push(StepStanding {
            name: step.name.clone(),
            state,
            tasks,
            label: dag::label(state, tasks),
            spans,
        });
    }
    Ok(Standing {
        status: record.status,
        finished: record.finished.clone(),
        duration: duration(record),
        failure: record.failure.clone(),
        steps,
    })
}

/// How a step stands from its tasks.
fn step_state(tasks: impl Iterator<Item = TaskProgress>) -> StepState {
    let mut any = false;
    let mut all_done = true;
    for progress in tasks {
        any = true;
        match progress {
            TaskProgress::Failed => return StepState::Failed,
            TaskProgress::Incomplete => all_done = false,
            TaskProgress::Succeeded | TaskProgress::Caught => {}
        }
    }
    match (any, all_done) {
        (false, _) => StepState::NotStarted,
        (true, true) => StepState::Done,
        (true, false) => StepState::Running,
    }
}

/// `/flows/{flow}/runs/{run}/status.json`: how the run stands, never cached.
pub(crate) async fn status(
    State(client): State<Client>,
    Path((flow, run)): Path<(String, String)>,
) -> Result<Response, UiError> {
    let standing =
        blocking(move || standing(&existing_run(&client, &flow, &run)?, Spans::NotWanted)).await?;
    Ok(([(header::CACHE_CONTROL, "no-store")], Json(standing)).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_step_is_failed_if_any_task_failed() {
        use TaskProgress::*;
        assert_eq!(
            step_state([Succeeded, Failed].into_iter()),
            StepState::Failed
        );
        assert_eq!(step_state([Succeeded, Caught].into_iter()), StepState::Done);
        assert_eq!(
            step_state([Succeeded, Incomplete].into_iter()),
            StepState::Running
        );
        assert_eq!(step_state([].into_iter()), StepState::NotStarted);
    }

    #[test]
    fn a_state_is_sent_as_its_css_class() {
        for state in [
            StepState::Done,
            StepState::Failed,
            StepState::Running,
            StepState::NotStarted,
        ] {
            assert_eq!(
                serde_json::to_value(state).expect("json"),
                serde_json::json!(state.as_str())
            );
        }
    }
}
