//! The handlers of the HTML pages. Each reads the datastore in `spawn_blocking` (the client does
//! blocking I/O) and renders one template.

use std::time::{Duration, SystemTime};

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::response::Html;
use flow_runtime::client::{Client, FlowHandle, RunHandle, StepHandle, TaskEntry};
use flow_runtime::run::{Provenance, RunRecord, RunStatus};
use serde::Deserialize;

use crate::card::{CardPage, CardView};
use crate::dag::{self, StepDrawn};
use crate::timeline::{self, StepSpans};
use crate::views::{
    AttemptRow, CheckpointRow, Fact, FlowRow, FlowsPage, PageLink, RunPage, RunRow, RunsPage,
    StepPage, StepRow, TaskPage, TaskRow,
};
use crate::{PER_PAGE, UiError, links, live, logs, preview};

/// Runs `read` on a thread where blocking is allowed.
pub(crate) async fn blocking<T: Send + 'static>(
    read: impl FnOnce() -> Result<T, UiError> + Send + 'static,
) -> Result<T, UiError> {
    tokio::task::spawn_blocking(read)
        .await
        .map_err(|e| UiError::Internal(format!("the request's reader stopped: {e}")))?
}

fn render(page: &impl Template) -> Result<Html<String>, UiError> {
    Ok(Html(page.render()?))
}

/// Anything no route matches.
pub(crate) async fn not_found() -> UiError {
    UiError::NotFound("no such page".to_owned())
}

/// The flow named `name`, if the datastore has runs of it.
pub(crate) fn existing_flow<'c>(client: &'c Client, name: &str) -> Result<FlowHandle<'c>, UiError> {
    let name = links::segment("flow", name)?;
    if !client.flows()?.iter().any(|f| f == name) {
        return Err(UiError::NotFound(format!(
            "flow `{name}` has no runs in this datastore"
        )));
    }
    Ok(client.flow(name))
}

/// Run `run` of flow `flow`, both checked.
pub(crate) fn existing_run(client: &Client, flow: &str, run: &str) -> Result<RunHandle, UiError> {
    let flow = existing_flow(client, flow)?;
    let run = links::segment("run", run)?;
    Ok(flow.run(run)?)
}

/// Task `task` of step `step` of a run, every name checked: its step and its entry.
pub(crate) fn existing_task(
    client: &Client,
    flow: &str,
    run: &str,
    step: &str,
    task: &str,
) -> Result<(StepHandle, TaskEntry), UiError> {
    let step = existing_run(client, flow, run)?.step(links::segment("step", step)?)?;
    let entry = step.task_entry(links::segment("task", task)?)?;
    Ok((step, entry))
}

/// `/`: the flows.
pub(crate) async fn flows(State(client): State<Client>) -> Result<Html<String>, UiError> {
    let page = blocking(move || {
        let mut flows = Vec::new();
        for name in client.flows()? {
            let runs = client.flow(&name).run_ids()?.len();
            flows.push(FlowRow {
                href: links::flow(&name),
                name,
                runs,
            });
        }
        Ok(FlowsPage { flows })
    })
    .await?;
    render(&page)
}

/// The query of a list: which page, and for runs, which status and tag.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct ListQuery {
    page: Option<usize>,
    status: Option<String>,
    tag: Option<String>,
}

/// Pages of `total` items: how many, and the range of page `page` (1-based, clamped).
fn paginate(total: usize, page: Option<usize>) -> (usize, usize, std::ops::Range<usize>) {
    let pages = total.div_ceil(PER_PAGE).max(1);
    let page = page.unwrap_or(1).clamp(1, pages);
    let start = (page - 1) * PER_PAGE;
    (page, pages, start..(start + PER_PAGE).min(total))
}

fn page_links(
    base: &str,
    filters: &[(&str, &str)],
    page: usize,
    pages: usize,
) -> (Option<PageLink>, Option<PageLink>) {
    let href = |n: usize| {
        let mut query: Vec<String> = filters
            .iter()
            .filter(|(_, v)| !v.is_empty())
            .map(|(k, v)| format!("{k}={}", links::encode(v)))
            .collect();
        query.push(format!("page={n}"));
        format!("{base}?{}", query.join("&"))
    };
    let previous = (page > 1).then(|| PageLink {
        label: "← newer".to_owned(),
        href: href(page - 1),
    });
    let next = (page < pages).then(|| PageLink {
        label: "older →".to_owned(),
        href: href(page + 1),
    });
    (previous, next)
}

fn status_filter(status: Option<&str>) -> Result<Option<RunStatus>, UiError> {
    match status.unwrap_or("") {
        "" => Ok(None),
        "running" => Ok(Some(RunStatus::Running)),
        "succeeded" => Ok(Some(RunStatus::Succeeded)),
        "failed" => Ok(Some(RunStatus::Failed)),
        "stopped" => Ok(Some(RunStatus::Stopped)),
        other => Err(UiError::BadRequest(format!(
            "bad status `{other}`: running, succeeded, failed or stopped"
        ))),
    }
}

/// `/flows/{flow}`: its runs, newest first, filtered and paginated.
pub(crate) async fn runs(
    State(client): State<Client>,
    Path(flow): Path<String>,
    Query(query): Query<ListQuery>,
) -> Result<Html<String>, UiError> {
    let page = blocking(move || {
        let handle = existing_flow(&client, &flow)?;
        let status = status_filter(query.status.as_deref())?;
        let tag = query.tag.clone().unwrap_or_default();
        let ids = handle.run_ids()?;
        let (total, page, pages, mut runs) = if status.is_none() && tag.is_empty() {
            // Without a filter only the runs of the page are read.
            let (page, pages, range) = paginate(ids.len(), query.page);
            let runs = ids[range]
                .iter()
                .map(|id| run_row(&handle, id))
                .collect::<Vec<_>>();
            (ids.len(), page, pages, runs)
        } else {
            // Every record is read (in parallel); one that cannot be read matches no filter.
            let mut matching: Vec<RunRow> = handle
                .list_runs()?
                .runs
                .iter()
                .filter(|run| {
                    status.is_none_or(|s| s == run.status())
                        && (tag.is_empty() || run.tags().contains(&tag))
                })
                .map(|run| row_of(&flow, run.record()))
                .collect();
            let (page, pages, range) = paginate(matching.len(), query.page);
            let total = matching.len();
            (total, page, pages, matching.drain(range).collect())
        };
        // A label that cannot be read marks no run: the list itself is still right.
        let promotions = handle.current_promotions().unwrap_or_default();
        for row in &mut runs {
            row.labels = promotions
                .iter()
                .filter(|p| p.run_id.as_deref() == Some(row.id.as_str()))
                .map(|p| p.label.clone())
                .collect();
        }
        let status_text = status.map(|s| s.to_string()).unwrap_or_default();
        let (previous, next) = page_links(
            &links::flow(&flow),
            &[("status", &status_text), ("tag", &tag)],
            page,
            pages,
        );
        Ok(RunsPage {
            compare_href: links::compare(&flow),
            flow,
            status: status_text,
            tag,
            total,
            page,
            pages,
            runs,
            previous,
            next,
        })
    })
    .await?;
    render(&page)
}

fn run_row(flow: &FlowHandle<'_>, id: &str) -> RunRow {
    match flow.run(id) {
        Ok(run) => row_of(flow.name(), run.record()),
        Err(e) => RunRow {
            id: id.to_owned(),
            href: links::run(flow.name(), id),
            status: "unreadable".to_owned(),
            started: String::new(),
            duration: String::new(),
            tags: Vec::new(),
            user: String::new(),
            params: e.to_string(),
            labels: Vec::new(),
        },
    }
}

/// Parameters shown in a list: compact JSON, at most this many characters.
const PARAMS_SHOWN: usize = 120;

fn row_of(flow: &str, record: &RunRecord) -> RunRow {
    let mut params = match &record.params {
        serde_json::Value::Null => String::new(),
        p => p.to_string(),
    };
    if params.chars().count() > PARAMS_SHOWN {
        params = params.chars().take(PARAMS_SHOWN).collect::<String>() + "…";
    }
    RunRow {
        id: record.run_id.to_string(),
        href: links::run(flow, &record.run_id),
        status: record.status.to_string(),
        started: record.started.clone(),
        duration: duration(record),
        tags: record.tags.clone(),
        user: record.user.clone(),
        params,
        labels: Vec::new(),
    }
}

/// How long the run took, or has been running.
pub(crate) fn duration(record: &RunRecord) -> String {
    let Ok(started) = humantime::parse_rfc3339_weak(&record.started) else {
        return String::new();
    };
    let ended = match &record.finished {
        Some(finished) => match humantime::parse_rfc3339_weak(finished) {
            Ok(t) => t,
            Err(_) => return String::new(),
        },
        None if record.status == RunStatus::Running => SystemTime::now(),
        None => return String::new(),
    };
    match ended.duration_since(started) {
        // Whole seconds, or milliseconds for a run under a second (`9ms`, not `1s`).
        Ok(d) if d.as_secs() == 0 => {
            humantime::format_duration(Duration::from_millis(d.subsec_millis().into())).to_string()
        }
        Ok(d) => humantime::format_duration(Duration::from_secs(d.as_secs())).to_string(),
        Err(_) => String::new(),
    }
}

/// `/flows/{flow}/runs/{run}`: the run's record, its graph, its steps. While the run is going
/// the page loads `live.js`, which keeps what it shows of the run's [`Standing`] up to date.
///
/// [`Standing`]: crate::live::Standing
pub(crate) async fn run(
    State(client): State<Client>,
    Path((flow, run)): Path<(String, String)>,
) -> Result<Html<String>, UiError> {
    let page = blocking(move || {
        let handle = existing_run(&client, &flow, &run)?;
        let record = handle.record();
        let standing = live::standing(&handle, live::Spans::Wanted)?;
        let mut drawn = Vec::new();
        let mut steps = Vec::new();
        for (step, stands) in record.graph.steps.iter().zip(&standing.steps) {
            let href = links::step(&flow, &run, &step.name);
            drawn.push(StepDrawn {
                state: stands.state,
                tasks: stands.tasks,
                href: href.clone(),
            });
            steps.push(StepRow {
                name: step.name.clone(),
                href,
                kind: step.kind.clone(),
                state: stands.state.as_str(),
                tasks: stands.tasks,
                doc: step.doc.clone(),
                resources: step.resources.to_string(),
            });
        }
        let params = serde_json::to_string_pretty(&record.params).unwrap_or_default();
        let lanes: Vec<StepSpans<'_>> = standing
            .steps
            .iter()
            .map(|s| StepSpans {
                name: &s.name,
                href: links::step(&flow, &run, &s.name),
                spans: &s.spans,
            })
            .collect();
        let origin =
            humantime::parse_rfc3339_weak(&record.started).unwrap_or(SystemTime::UNIX_EPOCH);
        let timeline = timeline::draw(origin, &lanes, |step, task| {
            links::task(&flow, &run, step, task)
        });
        drop(lanes);
        Ok(RunPage {
            timeline,
            flow_href: links::flow(&flow),
            status_href: links::run_status(&flow, &run),
            id: record.run_id.to_string(),
            live: standing.running(),
            status: standing.status.to_string(),
            started: record.started.clone(),
            finished: standing.finished.unwrap_or_default(),
            duration: standing.duration,
            user: record.user.clone(),
            host: record.host.clone(),
            pid: record.pid,
            tags: record.tags.clone(),
            params,
            origin: record
                .origin_run_id
                .as_ref()
                .filter(|_| record.spin_of.is_none())
                .map(|origin| PageLink {
                    label: origin.to_string(),
                    href: links::run(&flow, origin),
                }),
            spin_of: record
                .origin_run_id
                .as_ref()
                .zip(record.spin_of.as_ref())
                .map(|(origin, task)| PageLink {
                    label: format!("{origin}/{task}"),
                    href: links::task(&flow, origin, &task.step, &task.task),
                }),
            provenance: provenance_facts(record.provenance.as_ref()),
            promotions: client
                .flow(&flow)
                .current_promotions()
                .unwrap_or_default()
                .into_iter()
                .filter(|p| p.run_id.as_ref() == Some(&record.run_id))
                .map(|p| format!("{} (by {} at {})", p.label, p.user, p.at))
                .collect(),
            failure: standing.failure,
            dag: dag::draw(&record.graph, &drawn),
            steps,
            flow,
        })
    })
    .await?;
    render(&page)
}

/// The provenance lines of a run page, as `dump RUN` says them.
fn provenance_facts(provenance: Option<&Provenance>) -> Vec<Fact> {
    provenance
        .map(Provenance::describe)
        .unwrap_or_default()
        .into_iter()
        .map(|(name, value)| Fact { name, value })
        .collect()
}

/// `/flows/{flow}/runs/{run}/steps/{step}`: its tasks, paginated.
pub(crate) async fn step(
    State(client): State<Client>,
    Path((flow, run, step)): Path<(String, String, String)>,
    Query(query): Query<ListQuery>,
) -> Result<Html<String>, UiError> {
    let page = blocking(move || {
        let handle = existing_run(&client, &flow, &run)?;
        let step_handle = handle.step(links::segment("step", &step)?)?;
        let ids = step_handle.task_ids()?;
        let (page, pages, range) = paginate(ids.len(), query.page);
        let tasks = step_handle
            .task_entries_of(&ids[range])?
            .into_iter()
            .map(|entry| TaskRow {
                href: links::task(&flow, &run, &step, entry.id()),
                id: entry.id().to_string(),
                status: entry.progress().to_string(),
                attempts: entry.attempts().len(),
                failure: entry
                    .meta()
                    .and_then(|m| m.failure())
                    .map(|f| f.to_string())
                    .unwrap_or_default(),
            })
            .collect();
        let base = links::step(&flow, &run, &step);
        let (previous, next) = page_links(&base, &[], page, pages);
        Ok(StepPage {
            flow_href: links::flow(&flow),
            run_href: links::run(&flow, &run),
            flow,
            run,
            step,
            total: ids.len(),
            page,
            pages,
            tasks,
            previous: previous.map(|p| PageLink {
                label: "← previous".to_owned(),
                ..p
            }),
            next: next.map(|p| PageLink {
                label: "next →".to_owned(),
                ..p
            }),
        })
    })
    .await?;
    render(&page)
}

/// `/flows/{flow}/runs/{run}/steps/{step}/tasks/{task}`: everything about one task.
pub(crate) async fn task(
    State(client): State<Client>,
    Path((flow, run, step, task)): Path<(String, String, String, String)>,
) -> Result<Html<String>, UiError> {
    let page = blocking(move || {
        let (step_handle, entry) = existing_task(&client, &flow, &run, &step, &task)?;
        let task_link = |path: &flow_runtime::run::TaskPath| PageLink {
            label: path.to_string(),
            href: links::task(&flow, &run, &path.step, &path.task),
        };
        let (parents, children, foreach_index) = match entry.meta() {
            Some(meta) => {
                let full = step_handle.task(&task)?;
                (
                    meta.spec.parents().iter().map(task_link).collect(),
                    full.children()?.iter().map(task_link).collect(),
                    full.foreach_index()
                        .map(|i| i.to_string())
                        .unwrap_or_default(),
                )
            }
            None => (Vec::new(), Vec::new(), String::new()),
        };
        let attempts = entry
            .attempts()
            .iter()
            .map(|a| AttemptRow {
                attempt: a.attempt,
                started: a.started.clone(),
                finished: a.finished.clone(),
                failure: a
                    .failure
                    .as_ref()
                    .map(|f| f.to_string())
                    .unwrap_or_default(),
            })
            .collect();
        let artifacts = entry
            .artifacts()
            .unwrap_or_default()
            .iter()
            .map(|a| {
                let raw = links::raw(&flow, &run, &step, &task, &a.name);
                preview::artifact_view(&entry, a, raw)
            })
            .collect();
        let (logs, logs_problem) = match logs::task_logs(&entry) {
            Ok(logs) => (logs, None),
            Err(e) => (Vec::new(), Some(e.to_string())),
        };
        let (card, card_problem) = match entry.card() {
            Ok(card) => (card.as_ref().map(CardView::of), None),
            Err(e) => (None, Some(e.to_string())),
        };
        let (checkpoints, checkpoints_problem) = match entry.checkpoints() {
            Ok(records) => (
                records
                    .iter()
                    .map(|c| CheckpointRow {
                        seq: c.seq,
                        attempt: c.attempt,
                        type_name: flow_runtime::client::value::short_type_name(&c.type_name),
                        size: preview::human_size(c.size),
                        written: c.written.clone(),
                    })
                    .collect(),
                None,
            ),
            Err(e) => (Vec::new(), Some(e.to_string())),
        };
        Ok(TaskPage {
            checkpoints,
            checkpoints_problem,
            card,
            card_problem,
            card_href: links::card(&flow, &run, &step, &task),
            flow_href: links::flow(&flow),
            run_href: links::run(&flow, &run),
            step_href: links::step(&flow, &run, &step),
            status: entry.progress().to_string(),
            foreach_index,
            origin: entry.origin_run_id().map(|origin| PageLink {
                label: origin.to_string(),
                href: links::run(&flow, origin),
            }),
            attempts,
            failure: entry
                .meta()
                .and_then(|m| m.failure())
                .map(|f| format!("{} ({})", f, f.kind)),
            parents,
            children,
            artifacts,
            logs,
            logs_problem,
            flow,
            run,
            step,
            task,
        })
    })
    .await?;
    render(&page)
}

/// `/flows/{flow}/runs/{run}/steps/{step}/tasks/{task}/card`: the task's card alone.
pub(crate) async fn card(
    State(client): State<Client>,
    Path((flow, run, step, task)): Path<(String, String, String, String)>,
) -> Result<Html<String>, UiError> {
    let page = blocking(move || {
        let (_, entry) = existing_task(&client, &flow, &run, &step, &task)?;
        let title = format!("{flow}/{run}/{step}/{task}");
        let card = entry
            .card()?
            .ok_or_else(|| UiError::NotFound(format!("task {title} wrote no card")))?;
        Ok(CardPage {
            task_href: links::task(&flow, &run, &step, &task),
            title,
            card: CardView::of(&card),
        })
    })
    .await?;
    render(&page)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_are_clamped_to_what_there_is() {
        assert_eq!(paginate(0, None), (1, 1, 0..0));
        assert_eq!(paginate(120, Some(3)), (3, 3, 100..120));
        assert_eq!(paginate(120, Some(9)), (3, 3, 100..120));
        assert_eq!(paginate(120, Some(0)), (1, 3, 0..50));
    }

    fn ended(started: &str, finished: &str) -> RunRecord {
        serde_json::from_value(serde_json::json!({
            "format": 1, "flow": "F", "run_id": "r", "status": "succeeded",
            "started": started, "finished": finished,
            "user": "u", "host": "h", "pid": 1, "graph": {"steps": []}
        }))
        .expect("a record")
    }

    #[test]
    fn durations_under_a_second_are_in_milliseconds() {
        let short = ended("2026-12-06T14:25:08.500Z", "2026-12-06T14:25:08.509Z");
        assert_eq!(duration(&short), "9ms");
        let long = ended("2026-12-06T14:25:08.500Z", "2026-12-06T15:26:10.900Z");
        assert_eq!(duration(&long), "1h 1m 2s");
    }
}
