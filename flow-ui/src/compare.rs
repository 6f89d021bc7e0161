//! `/flows/{flow}/compare?run=A&run=B…`: runs side by side. Their parameters and every artifact
//! of their final state (the `end` task), one row each, the rows whose values differ marked; and
//! a chart of one numeric artifact across the runs (`&chart=NAME`): a number as one point per
//! run, a list of numbers (a loss per epoch) as one line per run.
//!
//! Artifacts are told apart by their blob hash, so comparing two 1 GiB values reads neither;
//! only small values are read, to be shown ([`SHOWN_UP_TO`]) or charted ([`CHARTED_UP_TO`]).

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;

use askama::Template;
use axum::extract::{Path, RawQuery, State};
use axum::response::Html;
use flow_runtime::client::value::{msgpack_to_json, short_type_name};
use flow_runtime::client::{Client, RunHandle, TaskEntry};
use flow_runtime::datastore::{ArtifactEntry, Encoding};
use serde_json::Value as Json;

use crate::chart::{ChartKind, ChartSpec, SeriesSpec};
use crate::pages::{blocking, duration, existing_flow};
use crate::preview::human_size;
use crate::{UiError, links};

/// At most this many runs side by side: the page stays readable, and a request cannot make the
/// server read a whole datastore.
pub(crate) const MAX_COMPARED: usize = 20;

/// Artifacts up to this size are read and their value shown when it is a scalar.
pub(crate) const SHOWN_UP_TO: u64 = 4 << 10;

/// Artifacts up to this size may be read to be charted (a list of numbers).
pub(crate) const CHARTED_UP_TO: u64 = 8 << 20;

/// Strings longer than this are not shown whole in a cell.
const SHOWN_CHARS: usize = 120;

/// The compare page.
#[derive(Template)]
#[template(path = "compare.html")]
pub(crate) struct ComparePage {
    pub flow: String,
    pub flow_href: String,
    pub runs: Vec<RunColumn>,
    pub general: Vec<Row>,
    pub params: Vec<Row>,
    pub artifacts: Vec<Row>,
    /// The artifacts that can be charted, and the one that is.
    pub chartable: Vec<String>,
    pub charted: Option<String>,
    pub chart_json: Option<String>,
    /// Why the chosen artifact could not be charted.
    pub chart_problem: Option<String>,
    /// A note on runs without a final state.
    pub notes: Vec<String>,
}

/// One run's column heading.
pub(crate) struct RunColumn {
    pub id: String,
    pub href: String,
    pub status: String,
}

/// One row of the comparison: a name and a cell per run.
pub(crate) struct Row {
    pub name: String,
    pub differs: bool,
    pub cells: Vec<String>,
}

/// What one run holds of an artifact.
struct Held {
    entry: ArtifactEntry,
    /// Its value as shown in a cell.
    shown: String,
    /// Its whole value, when it was small enough to be read for its cell: a chart of it does
    /// not read it again.
    small: Option<Json>,
}

/// One run, read.
struct Compared {
    handle: RunHandle,
    end: Option<TaskEntry>,
    artifacts: BTreeMap<String, Held>,
}

/// The runs of the query, in the order given, each once.
fn run_ids(query: Option<&str>) -> Result<(Vec<String>, Option<String>), UiError> {
    let mut runs: Vec<String> = Vec::new();
    let mut chart = None;
    for (key, value) in form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
        match &*key {
            "run" => {
                links::segment("run", &value)?;
                if !runs.iter().any(|r| *r == value) {
                    runs.push(value.into_owned());
                }
            }
            "chart" if !value.is_empty() => chart = Some(value.into_owned()),
            _ => {}
        }
    }
    if runs.len() < 2 {
        return Err(UiError::BadRequest(
            "pick two runs or more to compare (`?run=ID&run=ID`)".to_owned(),
        ));
    }
    if runs.len() > MAX_COMPARED {
        return Err(UiError::BadRequest(format!(
            "{} runs picked: at most {MAX_COMPARED} can be compared",
            runs.len()
        )));
    }
    Ok((runs, chart))
}

/// `/flows/{flow}/compare`.
pub(crate) async fn compare(
    State(client): State<Client>,
    Path(flow): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<Html<String>, UiError> {
    let page = blocking(move || {
        let handle = existing_flow(&client, &flow)?;
        let (ids, chart) = run_ids(query.as_deref())?;
        let mut notes = Vec::new();
        let mut compared = Vec::with_capacity(ids.len());
        for id in &ids {
            let run = handle.run(id)?;
            let end = match run
                .end_task()
                .and_then(|t| run.step(t.step())?.task_entry(t.id()))
            {
                Ok(end) => Some(end),
                Err(_) => {
                    notes.push(format!(
                        "run {id} has no final state ({}): only its parameters are compared",
                        run.status()
                    ));
                    None
                }
            };
            let artifacts = end.as_ref().map(read_artifacts).unwrap_or_default();
            compared.push(Compared {
                handle: run,
                end,
                artifacts,
            });
        }
        Ok(page_of(&flow, &compared, chart, notes))
    })
    .await?;
    Ok(Html(page.render()?))
}

fn read_artifacts(end: &TaskEntry) -> BTreeMap<String, Held> {
    end.artifacts()
        .unwrap_or_default()
        .iter()
        .map(|entry| {
            let small = (entry.size <= SHOWN_UP_TO && entry.encoding == Encoding::MsgPack)
                .then(|| value(end, entry));
            let shown = shown(entry, small.as_ref());
            (
                entry.name.clone(),
                Held {
                    entry: entry.clone(),
                    shown,
                    small: small.and_then(Result::ok),
                },
            )
        })
        .collect()
}

/// A cell: a scalar's value (from `small`, the value read when the artifact is small), or what
/// the artifact is.
fn shown(entry: &ArtifactEntry, small: Option<&Result<Json, String>>) -> String {
    let summary = || {
        format!(
            "{} · {}",
            short_type_name(&entry.type_name),
            human_size(entry.size)
        )
    };
    let Some(small) = small else {
        return summary();
    };
    match small {
        Ok(Json::String(s)) if s.chars().count() > SHOWN_CHARS => {
            format!("{:?}…", s.chars().take(SHOWN_CHARS).collect::<String>())
        }
        Ok(v @ (Json::Null | Json::Bool(_) | Json::Number(_) | Json::String(_))) => v.to_string(),
        Ok(_) => summary(),
        Err(problem) => format!("unreadable: {problem}"),
    }
}

/// An artifact's whole value as JSON, checked against its hash; for small artifacts only.
fn value(end: &TaskEntry, entry: &ArtifactEntry) -> Result<Json, String> {
    let mut blob = end.open_artifact(entry).map_err(|e| e.to_string())?;
    let mut bytes = Vec::with_capacity(usize::try_from(entry.size).unwrap_or(0));
    (&mut blob)
        .take(entry.size.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(|e| e.to_string())?;
    blob.finish().map_err(|e| e.to_string())?;
    msgpack_to_json(&bytes).map_err(|e| e.to_string())
}

fn page_of(
    flow: &str,
    compared: &[Compared],
    chart: Option<String>,
    notes: Vec<String>,
) -> ComparePage {
    let runs = compared
        .iter()
        .map(|c| RunColumn {
            id: c.handle.id().to_string(),
            href: links::run(flow, c.handle.id()),
            status: c.handle.status().to_string(),
        })
        .collect();
    let general = vec![
        row("status", compared, |c| Some(c.handle.status().to_string())),
        row("started", compared, |c| {
            Some(c.handle.record().started.clone())
        }),
        row("duration", compared, |c| Some(duration(c.handle.record()))),
        row("tags", compared, |c| Some(c.handle.tags().join(", "))),
        row("user", compared, |c| Some(c.handle.record().user.clone())),
    ];
    let param_names: BTreeSet<String> = compared
        .iter()
        .filter_map(|c| c.handle.params().as_object())
        .flat_map(|params| params.keys().cloned())
        .collect();
    let params = param_names
        .iter()
        .map(|name| {
            row(name, compared, |c| {
                c.handle.params().get(name).map(|v| v.to_string())
            })
        })
        .collect();
    let names: BTreeSet<&String> = compared.iter().flat_map(|c| c.artifacts.keys()).collect();
    let artifacts = names
        .iter()
        .map(|name| {
            let held: Vec<Option<&Held>> =
                compared.iter().map(|c| c.artifacts.get(*name)).collect();
            // Content-addressed: equal hashes are equal values, whatever their size.
            let first = held.first().copied().flatten().map(|h| &h.entry.hash);
            let differs = held.iter().any(|h| h.map(|h| &h.entry.hash) != first);
            Row {
                name: (*name).clone(),
                differs,
                cells: held
                    .iter()
                    .map(|h| h.map_or_else(|| "—".to_owned(), |h| h.shown.clone()))
                    .collect(),
            }
        })
        .collect();
    let chartable: Vec<String> = names
        .iter()
        .filter(|name| {
            compared
                .iter()
                .any(|c| c.artifacts.get(**name).is_some_and(|h| may_chart(&h.entry)))
        })
        .map(|name| (*name).clone())
        .collect();
    let charted = chart.or_else(|| first_numeric(compared, &chartable));
    let (chart_json, chart_problem) = match &charted {
        Some(name) => match chart_of(name, compared) {
            Ok(spec) => (Some(spec.to_json()), None),
            Err(problem) => (None, Some(problem)),
        },
        None => (None, None),
    };
    ComparePage {
        flow: flow.to_owned(),
        flow_href: links::flow(flow),
        runs,
        general,
        params,
        artifacts,
        chartable,
        charted,
        chart_json,
        chart_problem,
        notes,
    }
}

fn row(name: &str, compared: &[Compared], cell: impl Fn(&Compared) -> Option<String>) -> Row {
    let cells: Vec<Option<String>> = compared.iter().map(cell).collect();
    let differs = cells.iter().any(|c| c != &cells[0]);
    Row {
        name: name.to_owned(),
        differs,
        cells: cells
            .into_iter()
            .map(|c| c.unwrap_or_else(|| "—".to_owned()))
            .collect(),
    }
}

/// Whether an artifact is small enough and in a format to be read for a chart.
fn may_chart(entry: &ArtifactEntry) -> bool {
    entry.size <= CHARTED_UP_TO && entry.encoding == Encoding::MsgPack
}

/// The artifact charted when the query names none: the first that is a number or a list of
/// numbers in some run, preferring one that differs.
fn first_numeric(compared: &[Compared], chartable: &[String]) -> Option<String> {
    let numeric = |name: &String| {
        compared.iter().any(|c| {
            c.artifacts
                .get(name)
                .is_some_and(|h| numeric_type(&short_type_name(&h.entry.type_name)))
        })
    };
    let differs = |name: &String| {
        let hashes: BTreeSet<_> = compared
            .iter()
            .map(|c| c.artifacts.get(name).map(|h| h.entry.hash.to_string()))
            .collect();
        hashes.len() > 1
    };
    chartable
        .iter()
        .find(|n| numeric(n) && differs(n))
        .or_else(|| chartable.iter().find(|n| numeric(n)))
        .cloned()
}

/// Whether a Rust type (as [`short_type_name`] writes it) is a number or a list of numbers.
fn numeric_type(type_name: &str) -> bool {
    const NUMBERS: [&str; 14] = [
        "f32", "f64", "i8", "i16", "i32", "i64", "i128", "isize", "u8", "u16", "u32", "u64",
        "u128", "usize",
    ];
    let inner = type_name
        .strip_prefix("Vec<")
        .and_then(|t| t.strip_suffix('>'))
        .unwrap_or(type_name);
    NUMBERS.contains(&inner)
}

/// The chart of artifact `name` across the runs: points for numbers, lines for lists of them.
fn chart_of(name: &str, compared: &[Compared]) -> Result<ChartSpec, String> {
    let mut scalars = Vec::new();
    let mut lists = Vec::new();
    for (position, c) in compared.iter().enumerate() {
        let (Some(end), Some(held)) = (&c.end, c.artifacts.get(name)) else {
            continue;
        };
        if !may_chart(&held.entry) {
            return Err(format!(
                "`{name}` of run {} is too large to chart ({})",
                c.handle.id(),
                human_size(held.entry.size)
            ));
        }
        let whole = match &held.small {
            Some(whole) => whole.clone(),
            None => value(end, &held.entry)?,
        };
        match whole {
            Json::Number(n) => scalars.push((position as f64, n.as_f64().unwrap_or(f64::NAN))),
            Json::Bool(b) => scalars.push((position as f64, f64::from(u8::from(b)))),
            Json::Array(items) if items.iter().all(Json::is_number) => lists.push((
                c.handle.id().to_string(),
                items.iter().filter_map(Json::as_f64).collect::<Vec<_>>(),
            )),
            _ => {
                return Err(format!(
                    "`{name}` of run {} is neither a number nor a list of numbers",
                    c.handle.id()
                ));
            }
        }
    }
    match (scalars.is_empty(), lists.is_empty()) {
        (false, true) => Ok(ChartSpec {
            kind: ChartKind::Scatter,
            title: name.to_owned(),
            x_label: "run".to_owned(),
            y_label: name.to_owned(),
            x_labels: Some(compared.iter().map(|c| c.handle.id().to_string()).collect()),
            series: vec![SeriesSpec::from_points(name, scalars)],
        }),
        (true, false) => Ok(ChartSpec {
            kind: ChartKind::Line,
            title: name.to_owned(),
            x_label: "index".to_owned(),
            y_label: name.to_owned(),
            x_labels: None,
            series: lists
                .into_iter()
                .map(|(run, ys)| {
                    SeriesSpec::from_points(
                        run,
                        ys.into_iter().enumerate().map(|(i, y)| (i as f64, y)),
                    )
                })
                .collect(),
        }),
        (true, true) => Err(format!("no run holds `{name}`")),
        (false, false) => Err(format!(
            "`{name}` is a number in some runs and a list in others"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_query_names_two_runs_or_more_each_checked() {
        let (runs, chart) = run_ids(Some("run=a&run=b&run=a&chart=loss&x=1")).unwrap();
        assert_eq!(runs, ["a", "b"]);
        assert_eq!(chart.as_deref(), Some("loss"));
        assert!(matches!(
            run_ids(Some("run=a")),
            Err(UiError::BadRequest(_))
        ));
        assert!(matches!(run_ids(None), Err(UiError::BadRequest(_))));
        assert!(matches!(
            run_ids(Some("run=a&run=%2e%2e")),
            Err(UiError::BadRequest(_))
        ));
        assert!(numeric_type("f32") && numeric_type("Vec<u64>"));
        assert!(
            !numeric_type("String")
                && !numeric_type("Vec<String>")
                && !numeric_type("Vec<Vec<f32>>")
        );
        let many: Vec<String> = (0..=MAX_COMPARED).map(|i| format!("run=r{i}")).collect();
        assert!(matches!(
            run_ids(Some(&many.join("&"))),
            Err(UiError::BadRequest(_))
        ));
    }
}
