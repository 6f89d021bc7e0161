//! The pages' templates, checked at compile time by askama. Every value shown is HTML-escaped
//! (the templates are `.html`); the one `|safe` is a card's markdown, HTML written by
//! pulldown-cmark from sanitised events (see [`crate::card`]).

use askama::Template;

use crate::card::{CardView, ComponentView};
use crate::dag::Dag;
use crate::timeline::Timeline;

/// One line of a run's provenance on its page: what, and its value.
pub(crate) struct Fact {
    pub name: &'static str,
    pub value: String,
}

/// A link to another page of a list.
pub(crate) struct PageLink {
    pub label: String,
    pub href: String,
}

/// `/`.
#[derive(Template)]
#[template(path = "flows.html")]
pub(crate) struct FlowsPage {
    pub flows: Vec<FlowRow>,
}

/// One flow of `/`.
pub(crate) struct FlowRow {
    pub name: String,
    pub href: String,
    pub runs: usize,
}

/// `/flows/{flow}`.
#[derive(Template)]
#[template(path = "runs.html")]
pub(crate) struct RunsPage {
    pub flow: String,
    /// Where the ticked runs are compared.
    pub compare_href: String,
    pub status: String,
    pub tag: String,
    pub total: usize,
    pub page: usize,
    pub pages: usize,
    pub runs: Vec<RunRow>,
    pub previous: Option<PageLink>,
    pub next: Option<PageLink>,
}

/// One run of `/flows/{flow}`.
pub(crate) struct RunRow {
    pub id: String,
    pub href: String,
    pub status: String,
    pub started: String,
    pub duration: String,
    pub tags: Vec<String>,
    pub user: String,
    pub params: String,
    /// The labels (`production`) that name this run now.
    pub labels: Vec<String>,
}

/// `/flows/{flow}/runs/{run}`.
#[derive(Template)]
#[template(path = "run.html")]
pub(crate) struct RunPage {
    pub flow: String,
    pub flow_href: String,
    /// Where `live.js` asks how the run stands.
    pub status_href: String,
    pub id: String,
    pub status: String,
    /// Whether the run is going: the page then loads `live.js`.
    pub live: bool,
    pub started: String,
    pub finished: String,
    pub duration: String,
    pub user: String,
    pub host: String,
    pub pid: u32,
    pub tags: Vec<String>,
    pub params: String,
    pub origin: Option<PageLink>,
    /// For a scratch run of `spin`, the task it ran again, linked in its origin run.
    pub spin_of: Option<PageLink>,
    /// What code the run ran (empty for runs recorded before provenance).
    pub provenance: Vec<Fact>,
    /// The labels that name this run now: `production (by ana at …)`.
    pub promotions: Vec<String>,
    pub failure: Option<String>,
    pub dag: Dag,
    /// Every ended attempt on a time axis; `None` before any has ended.
    pub timeline: Option<Timeline>,
    pub steps: Vec<StepRow>,
}

/// One step of a run page.
pub(crate) struct StepRow {
    pub name: String,
    pub href: String,
    pub kind: String,
    pub state: &'static str,
    pub tasks: usize,
    pub doc: String,
    /// What one task of the step asks of its machine (`2 cpus, 100 MiB`); empty for nothing.
    pub resources: String,
}

/// `/flows/{flow}/runs/{run}/steps/{step}`.
#[derive(Template)]
#[template(path = "step.html")]
pub(crate) struct StepPage {
    pub flow: String,
    pub flow_href: String,
    pub run: String,
    pub run_href: String,
    pub step: String,
    pub total: usize,
    pub page: usize,
    pub pages: usize,
    pub tasks: Vec<TaskRow>,
    pub previous: Option<PageLink>,
    pub next: Option<PageLink>,
}

/// One task of a step page.
pub(crate) struct TaskRow {
    pub id: String,
    pub href: String,
    pub status: String,
    pub attempts: usize,
    pub failure: String,
}

/// `/flows/{flow}/runs/{run}/steps/{step}/tasks/{task}`.
#[derive(Template)]
#[template(path = "task.html")]
pub(crate) struct TaskPage {
    pub flow: String,
    pub flow_href: String,
    pub run: String,
    pub run_href: String,
    pub step: String,
    pub step_href: String,
    pub task: String,
    pub status: String,
    pub foreach_index: String,
    pub origin: Option<PageLink>,
    pub attempts: Vec<AttemptRow>,
    pub failure: Option<String>,
    pub parents: Vec<PageLink>,
    pub children: Vec<PageLink>,
    pub artifacts: Vec<ArtifactView>,
    pub logs: Vec<LogView>,
    pub logs_problem: Option<String>,
    /// The card of the last attempt, if it wrote one.
    pub card: Option<CardView>,
    pub card_href: String,
    /// Why the card cannot be shown (damaged, unreadable).
    pub card_problem: Option<String>,
    /// The checkpoints the task kept (all while it runs or when it did not complete, the last
    /// once it completed).
    pub checkpoints: Vec<CheckpointRow>,
    /// Why they cannot be listed.
    pub checkpoints_problem: Option<String>,
}

/// One checkpoint of a task.
pub(crate) struct CheckpointRow {
    pub seq: u64,
    pub attempt: u32,
    pub type_name: String,
    pub size: String,
    pub written: String,
}

/// One attempt of a task.
pub(crate) struct AttemptRow {
    pub attempt: u32,
    pub started: String,
    pub finished: String,
    pub failure: String,
}

/// One artifact of a task, with a preview of its value.
pub(crate) struct ArtifactView {
    pub name: String,
    pub type_name: String,
    pub size: String,
    pub raw_href: String,
    pub preview: String,
    pub note: String,
}

/// One log of a task: its start and its end if it is long.
pub(crate) struct LogView {
    pub title: String,
    pub head: String,
    pub omitted: u64,
    pub tail: String,
}
