//! Cards in HTML: a task's [`Card`] as its page shows it, alone at `…/tasks/{task}/card`, and
//! exported as one self-contained HTML file ([`export_card_html`], `blooming card`).
//!
//! Everything a card holds was written by a step and is shown as text, never run:
//!
//! - markdown goes through pulldown-cmark with every piece of raw HTML in it turned into text
//!   (so `<script>` in a markdown string is shown, not run), and every link or image URL that is
//!   not `http:`, `https:`, `mailto:` or relative is replaced by `#` (no `javascript:`, no
//!   `data:`); the HTML pulldown-cmark writes escapes all text, and it is the only HTML of a card
//!   the templates insert unescaped;
//! - tables, captions, chart titles and series names are escaped by the templates;
//! - images are the card's own PNG bytes (their signature checked again), as `data:image/png`
//!   URLs;
//! - charts become a [`ChartSpec`] in a `data-chart` attribute, drawn by `static/charts.js`.
//!
//! The exported file inlines the stylesheets, uPlot and `charts.js`, references nothing outside
//! itself (it works from `file://` without a network), and carries a Content-Security-Policy that
//! lets only its own inline scripts run (by a nonce drawn for each export).

use std::hash::{BuildHasher, Hasher};

use askama::Template;
use base64::Engine;
use flow_runtime::card::{Card, Cell, Chart, ChartKind, Component, PNG_SIGNATURE};
use flow_runtime::client::{Client, ClientError};
use pulldown_cmark::{CowStr, Event, Options, Parser, Tag};

use crate::assets;
use crate::chart::{self, ChartSpec, SeriesSpec};
use crate::error::UiError;
use crate::links;

/// A card ready for a template.
pub(crate) struct CardView {
    pub components: Vec<ComponentView>,
    /// How many components the step's card dropped for want of room.
    pub dropped: u64,
    /// Whether any component is a chart (the page then loads the chart scripts).
    pub has_charts: bool,
}

/// One component ready for a template.
pub(crate) enum ComponentView {
    /// HTML written by pulldown-cmark from sanitised events.
    Markdown {
        html: String,
    },
    Table {
        columns: Vec<String>,
        rows: Vec<Vec<CellView>>,
    },
    Image {
        src: String,
        caption: String,
    },
    Chart {
        json: String,
        title: String,
    },
    /// A component this version cannot show (an image that is not a PNG).
    Unshown {
        note: String,
    },
}

/// One table cell: its text, and whether it is a number (aligned right).
pub(crate) struct CellView {
    pub text: String,
    pub numeric: bool,
}

impl CardView {
    /// The view of `card`.
    pub(crate) fn of(card: &Card) -> CardView {
        let components: Vec<ComponentView> = card.components.iter().map(component).collect();
        CardView {
            has_charts: components
                .iter()
                .any(|c| matches!(c, ComponentView::Chart { .. })),
            components,
            dropped: card.dropped,
        }
    }
}

fn component(component: &Component) -> ComponentView {
    match component {
        Component::Markdown(text) => ComponentView::Markdown {
            html: markdown_html(text),
        },
        Component::Table(table) => ComponentView::Table {
            columns: table.columns.clone(),
            rows: table
                .rows
                .iter()
                .map(|row| row.iter().map(cell).collect())
                .collect(),
        },
        Component::Image(image) if image.png.starts_with(&PNG_SIGNATURE) => ComponentView::Image {
            src: format!(
                "data:image/png;base64,{}",
                base64::engine::general_purpose::STANDARD.encode(&image.png)
            ),
            caption: image.caption.clone(),
        },
        Component::Image(_) => ComponentView::Unshown {
            note: "an image that is not a PNG is not shown".into(),
        },
        Component::Chart(chart) => ComponentView::Chart {
            json: chart_spec(chart).to_json(),
            title: chart.title.clone(),
        },
        _ => ComponentView::Unshown {
            note: "a component this version cannot show".into(),
        },
    }
}

fn cell(cell: &Cell) -> CellView {
    CellView {
        text: cell.to_string(),
        numeric: matches!(cell, Cell::Int(_) | Cell::Float(_)),
    }
}

/// The chart as `charts.js` reads it: non-finite values become gaps, points beyond the shorter
/// of a series' `x` and `y` are left out.
pub(crate) fn chart_spec(chart: &Chart) -> ChartSpec {
    ChartSpec {
        kind: match chart.kind {
            ChartKind::Line => chart::ChartKind::Line,
            ChartKind::Scatter => chart::ChartKind::Scatter,
        },
        title: chart.title.clone(),
        x_label: chart.x_label.clone(),
        y_label: chart.y_label.clone(),
        x_labels: None,
        series: chart
            .series
            .iter()
            .map(|s| {
                SeriesSpec::from_points(
                    s.name.clone(),
                    s.x.iter().copied().zip(s.y.iter().copied()),
                )
            })
            .collect(),
    }
}

/// Markdown (CommonMark with tables and strikethrough) as HTML in which nothing runs: raw HTML
/// becomes text, unsafe URLs become `#`.
pub(crate) fn markdown_html(text: &str) -> String {
    let options = Options::ENABLE_TABLES | Options::ENABLE_STRIKETHROUGH;
    let events = Parser::new_ext(text, options).map(|event| match event {
        Event::Html(raw) | Event::InlineHtml(raw) => Event::Text(raw),
        Event::Start(Tag::Link {
            link_type,
            dest_url,
            title,
            id,
        }) => Event::Start(Tag::Link {
            link_type,
            dest_url: safe_url(dest_url),
            title,
            id,
        }),
        Event::Start(Tag::Image {
            link_type,
            dest_url,
            title,
            id,
        }) => Event::Start(Tag::Image {
            link_type,
            dest_url: safe_url(dest_url),
            title,
            id,
        }),
        other => other,
    });
    let mut html = String::new();
    pulldown_cmark::html::push_html(&mut html, events);
    html
}

/// `url` if it is relative or `http:`, `https:` or `mailto:`; else `#`.
fn safe_url(url: CowStr<'_>) -> CowStr<'_> {
    if is_safe_url(&url) {
        url
    } else {
        CowStr::Borrowed("#")
    }
}

fn is_safe_url(url: &str) -> bool {
    // Browsers drop control characters and whitespace inside a scheme (`java\tscript:`), so
    // they are dropped here too before the scheme is read.
    let cleaned: String = url
        .chars()
        .filter(|c| !c.is_control() && !c.is_whitespace())
        .collect();
    let scheme_end = cleaned.find(':');
    let path_start = cleaned.find(['/', '?', '#']);
    match (scheme_end, path_start) {
        // No scheme: relative.
        (None, _) => true,
        (Some(colon), Some(slash)) if slash < colon => true,
        (Some(colon), _) => {
            let scheme = cleaned[..colon].to_ascii_lowercase();
            matches!(scheme.as_str(), "http" | "https" | "mailto")
        }
    }
}

/// `…/tasks/{task}/card`: the card alone.
#[derive(Template)]
#[template(path = "card_page.html")]
pub(crate) struct CardPage {
    pub title: String,
    pub task_href: String,
    pub card: CardView,
}

/// The exported file.
#[derive(Template)]
#[template(path = "card_export.html")]
struct CardExport<'a> {
    title: String,
    subtitle: String,
    nonce: String,
    style: &'a str,
    scripts: [&'a str; 2],
    card: CardView,
}

/// Why a card cannot be exported.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CardExportError {
    /// A name that cannot be in a datastore (`..`, a `/`).
    #[error("{0}")]
    BadName(String),
    /// The flow, run, step or task is not there, or the task wrote no card.
    #[error("{0}")]
    NotFound(String),
    /// The datastore could not be read, or the card is damaged.
    #[error("{0}")]
    Unreadable(String),
}

impl From<ClientError> for CardExportError {
    fn from(e: ClientError) -> Self {
        match UiError::from(e) {
            UiError::BadRequest(m) => CardExportError::BadName(m),
            UiError::NotFound(m) => CardExportError::NotFound(m),
            UiError::Internal(m) => CardExportError::Unreadable(m),
        }
    }
}

impl From<UiError> for CardExportError {
    fn from(e: UiError) -> Self {
        match e {
            UiError::BadRequest(m) => CardExportError::BadName(m),
            UiError::NotFound(m) => CardExportError::NotFound(m),
            UiError::Internal(m) => CardExportError::Unreadable(m),
        }
    }
}

/// The card of task `task` of step `step` of run `run` (a run id, or `latest` for the flow's
/// latest run) of flow `flow`, as one self-contained HTML file: its stylesheets, the chart library
/// and its images are inside it, nothing is fetched, and it opens from `file://` offline. With
/// `task` `None`, the step's only task (an error if it has several).
///
/// The card shown is the task's last attempt's (a failed task's too).
///
/// # Errors
///
/// [`CardExportError::BadName`] for a name that cannot be in a datastore,
/// [`CardExportError::NotFound`] when the run, step or task is missing or the task wrote no card,
/// [`CardExportError::Unreadable`] when the datastore cannot be read or the card is damaged.
pub fn export_card_html(
    client: &Client,
    flow: &str,
    run: &str,
    step: &str,
    task: Option<&str>,
) -> Result<String, CardExportError> {
    links::segment("flow", flow)?;
    if run != flow_runtime::client::LATEST {
        links::segment("run", run)?;
    }
    let run_handle = client.flow(flow).run_or_latest(run)?;
    let step_handle = run_handle.step(links::segment("step", step)?)?;
    let entry = match task {
        Some(task) => step_handle.task_entry(links::segment("task", task)?)?,
        None => step_handle.only_task()?,
    };
    let pathspec = format!("{flow}/{}/{step}/{}", run_handle.id(), entry.id());
    let card = entry
        .card()?
        .ok_or_else(|| CardExportError::NotFound(format!("task {pathspec} wrote no card")))?;
    let style = format!("{}\n{}", assets::STYLE_CSS, assets::UPLOT_CSS);
    let page = CardExport {
        subtitle: format!("{} · {}", entry.progress(), run_handle.record().started),
        title: pathspec,
        nonce: nonce(),
        style: &style,
        scripts: [assets::UPLOT_JS, assets::CHARTS_JS],
        card: CardView::of(&card),
    };
    page.render()
        .map_err(|e| CardExportError::Unreadable(format!("the card could not be rendered: {e}")))
}

/// 128 bits that no card can guess: the nonce of the exported file's own scripts.
fn nonce() -> String {
    // Each `RandomState` is seeded with fresh keys from the system's random source.
    let draw = || {
        let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
        hasher.write_u64(u64::from(std::process::id()));
        hasher.finish()
    };
    format!("{:016x}{:016x}", draw(), draw())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_html_in_markdown_is_text() {
        let html =
            markdown_html("# Hi\n\n<script>alert(1)</script>\n\nand <b onclick=x>inline</b>");
        assert!(html.contains("<h1>Hi</h1>"), "{html}");
        assert!(!html.contains("<script"), "{html}");
        assert!(html.contains("&lt;script&gt;"), "{html}");
        assert!(!html.contains("<b "), "{html}");
    }

    #[test]
    fn only_safe_urls() {
        for bad in [
            "javascript:alert(1)",
            "JavaScript:alert(1)",
            "java\tscript:alert(1)",
            " javascript:alert(1)",
            "data:text/html,<script>",
            "vbscript:x",
        ] {
            assert!(!is_safe_url(bad), "{bad}");
        }
        for good in [
            "https://example.org/a",
            "http://x",
            "mailto:a@b",
            "/runs",
            "a/b:c",
            "#top",
            "?q=a:b",
        ] {
            assert!(is_safe_url(good), "{good}");
        }
        let html = markdown_html("[x](javascript:alert(1)) ![i](data:image/svg+xml,<svg>)");
        assert!(!html.contains("javascript"), "{html}");
        assert!(!html.contains("data:"), "{html}");
        assert!(html.contains("href=\"#\""), "{html}");
    }

    #[test]
    fn a_stored_image_that_is_not_a_png_is_not_shown() {
        use flow_runtime::card::Image;
        let card = Card {
            components: vec![Component::Image(Image {
                png: b"<svg onload=alert(1)>".to_vec(),
                caption: "x".into(),
            })],
            dropped: 2,
        };
        let view = CardView::of(&card);
        assert!(matches!(view.components[0], ComponentView::Unshown { .. }));
        assert_eq!(view.dropped, 2);
        assert!(!view.has_charts);
    }

    #[test]
    fn charts_keep_their_points() {
        let chart = Chart::scatter("t")
            .x_label("e")
            .points("s", [(0.0, 1.0), (1.0, f64::NAN)]);
        let spec = chart_spec(&chart);
        assert_eq!(spec.kind, chart::ChartKind::Scatter);
        assert_eq!(spec.series[0].y, vec![Some(1.0), None]);
        assert_eq!(spec.x_label, "e");
    }
}
