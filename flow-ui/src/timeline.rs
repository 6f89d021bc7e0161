//! A run's timeline: every attempt of every task as a bar on one time axis, a lane per step (a
//! Gantt chart), failed attempts in red. Drawn as SVG on the server, like the graph.
//!
//! A lane has as many rows as the step ran tasks at once (each attempt goes to the first row
//! free at its start), so a 10,000-task foreach on 8 workers is 8 rows, not 10,000. Within a row
//! of more than [`MAX_BARS_PER_ROW`] attempts, bars closer than a pixel that look the same are
//! drawn as one, with a title saying how many attempts it stands for: the drawing has at most a
//! few thousand shapes, whatever the run's size.

use std::time::{Duration, SystemTime};

use flow_runtime::client::TaskEntry;

/// The width of the plot, right of the step names, in pixels.
const PLOT_WIDTH: f64 = 900.0;
/// The column of step names.
const LABEL_WIDTH: f64 = 150.0;
const ROW_HEIGHT: f64 = 8.0;
const ROW_GAP: f64 = 2.0;
const LANE_PADDING: f64 = 6.0;
const AXIS_HEIGHT: f64 = 22.0;
/// A step's lane has at most this many rows; beyond, bars share the row that frees first.
const MAX_ROWS: usize = 16;
/// A row with more attempts than this draws the ones that touch (closer than a pixel) as one
/// bar; a row with fewer draws each, linked to its task.
const MAX_BARS_PER_ROW: usize = 300;
/// The narrowest bar drawn.
const MIN_BAR_WIDTH: f64 = 3.0;

/// One attempt of one task, as it ran.
#[derive(Debug, Clone)]
pub(crate) struct Span {
    pub task: String,
    pub attempt: u32,
    pub start: SystemTime,
    pub end: SystemTime,
    pub failed: bool,
}

/// The attempts of `entries` that have a start and an end.
pub(crate) fn spans_of(entries: &[TaskEntry]) -> Vec<Span> {
    let mut spans = Vec::new();
    for entry in entries {
        for attempt in entry.attempts() {
            let (Ok(start), Ok(end)) = (
                humantime::parse_rfc3339_weak(&attempt.started),
                humantime::parse_rfc3339_weak(&attempt.finished),
            ) else {
                continue;
            };
            spans.push(Span {
                task: entry.id().to_string(),
                attempt: attempt.attempt,
                start,
                end: end.max(start),
                failed: attempt.failure.is_some(),
            });
        }
    }
    spans
}

/// One step's attempts, with where its name and bars link to.
pub(crate) struct StepSpans<'a> {
    pub name: &'a str,
    pub href: String,
    pub spans: &'a [Span],
}

/// The drawing.
pub(crate) struct Timeline {
    pub width: f64,
    pub height: f64,
    pub lanes: Vec<Lane>,
    pub bars: Vec<Bar>,
    pub ticks: Vec<Tick>,
    /// How many attempts are drawn.
    pub attempts: usize,
}

/// A step's band.
pub(crate) struct Lane {
    pub name: String,
    pub href: String,
    pub y: f64,
    pub height: f64,
    pub label_y: f64,
    /// Every other lane is shaded.
    pub shaded: bool,
}

/// One bar: an attempt, or several drawn as one.
pub(crate) struct Bar {
    pub x: f64,
    pub y: f64,
    pub width: f64,
    pub class: &'static str,
    pub title: String,
    /// The task's page, for a bar that is one attempt.
    pub href: Option<String>,
}

/// A mark on the time axis.
pub(crate) struct Tick {
    pub x: f64,
    pub label: String,
}

impl Timeline {
    pub(crate) fn row_height(&self) -> f64 {
        ROW_HEIGHT
    }
    pub(crate) fn axis_y(&self) -> f64 {
        self.height - AXIS_HEIGHT
    }
    pub(crate) fn tick_label_y(&self) -> f64 {
        self.height - 6.0
    }
}

/// Rounds a coordinate to a tenth of a pixel: short attributes, steady output.
fn px(value: f64) -> f64 {
    (value * 10.0).round() / 10.0
}

fn secs(from: SystemTime, to: SystemTime) -> f64 {
    to.duration_since(from).unwrap_or_default().as_secs_f64()
}

/// `d` for people, to the millisecond: `1s 500ms`, `2m 3s`.
fn shown(d: Duration) -> String {
    let d = if d.as_secs() >= 60 {
        Duration::from_secs(d.as_secs())
    } else {
        Duration::from_millis(d.as_millis().try_into().unwrap_or(u64::MAX))
    };
    if d.is_zero() {
        "0s".to_owned()
    } else {
        humantime::format_duration(d).to_string()
    }
}

/// The step between ticks: the smallest of the usual ones that gives at most eight.
fn tick_step(total: f64) -> f64 {
    const STEPS: [f64; 25] = [
        0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 15.0, 30.0,
        60.0, 120.0, 300.0, 600.0, 900.0, 1800.0, 3600.0, 7200.0, 21600.0, 86400.0,
    ];
    STEPS
        .into_iter()
        .find(|step| total / step <= 8.0)
        .unwrap_or(86400.0 * (total / 86400.0 / 8.0).ceil())
}

/// Draws `steps` (in the graph's order) from `origin` (the run's start) to the last end.
/// `task_href` names a task's page.
pub(crate) fn draw(
    origin: SystemTime,
    steps: &[StepSpans<'_>],
    task_href: impl Fn(&str, &str) -> String,
) -> Option<Timeline> {
    let attempts: usize = steps.iter().map(|s| s.spans.len()).sum();
    if attempts == 0 {
        return None;
    }
    let origin = steps
        .iter()
        .flat_map(|s| s.spans.iter().map(|span| span.start))
        .min()
        .map_or(origin, |first| first.min(origin));
    let last = steps
        .iter()
        .flat_map(|s| s.spans.iter().map(|span| span.end))
        .max()
        .unwrap_or(origin);
    // A run of a few microseconds still gets an axis.
    let total = secs(origin, last).max(0.001);
    let scale = PLOT_WIDTH / total;
    let x_of = |t: SystemTime| LABEL_WIDTH + secs(origin, t) * scale;

    let mut lanes = Vec::new();
    let mut bars = Vec::new();
    let mut y = 0.0;
    for (index, step) in steps.iter().enumerate() {
        let mut spans: Vec<&Span> = step.spans.iter().collect();
        spans.sort_by(|a, b| a.start.cmp(&b.start).then(a.end.cmp(&b.end)));
        // The first row free at each attempt's start.
        let mut row_ends: Vec<SystemTime> = Vec::new();
        let mut rows: Vec<Vec<&Span>> = Vec::new();
        for span in spans {
            let row = match row_ends.iter().position(|end| *end <= span.start) {
                Some(row) => row,
                None if row_ends.len() < MAX_ROWS => {
                    row_ends.push(span.start);
                    rows.push(Vec::new());
                    row_ends.len() - 1
                }
                None => (0..row_ends.len())
                    .min_by_key(|&r| row_ends[r])
                    .unwrap_or(0),
            };
            row_ends[row] = row_ends[row].max(span.end);
            rows[row].push(span);
        }
        let row_count = rows.len().max(1) as f64;
        let height = LANE_PADDING * 2.0 + row_count * ROW_HEIGHT + (row_count - 1.0) * ROW_GAP;
        for (r, row) in rows.iter().enumerate() {
            let row_y = y + LANE_PADDING + r as f64 * (ROW_HEIGHT + ROW_GAP);
            let crowded = row.len() > MAX_BARS_PER_ROW;
            let mut group: Vec<&Span> = Vec::new();
            for span in row {
                let joins = crowded
                    && group.last().is_some_and(|previous| {
                        previous.failed == span.failed
                            && x_of(span.start) - x_of(previous.end) < 1.0
                    });
                if !joins && !group.is_empty() {
                    bars.push(bar(step, &group, row_y, &x_of, &task_href));
                    group.clear();
                }
                group.push(span);
            }
            if !group.is_empty() {
                bars.push(bar(step, &group, row_y, &x_of, &task_href));
            }
        }
        lanes.push(Lane {
            name: step.name.to_owned(),
            href: step.href.clone(),
            y: px(y),
            height: px(height),
            label_y: px(y + height / 2.0 + 4.0),
            shaded: index % 2 == 1,
        });
        y += height;
    }
    let step = tick_step(total);
    let ticks = (0..)
        .map(|i| f64::from(i) * step)
        .take_while(|t| *t <= total + step * 1e-9)
        .map(|t| Tick {
            x: px(LABEL_WIDTH + t * scale),
            label: shown(Duration::from_secs_f64(t)),
        })
        .collect();
    Some(Timeline {
        width: LABEL_WIDTH + PLOT_WIDTH + 40.0,
        height: px(y + AXIS_HEIGHT),
        lanes,
        bars,
        ticks,
        attempts,
    })
}

fn bar(
    step: &StepSpans<'_>,
    group: &[&Span],
    y: f64,
    x_of: &impl Fn(SystemTime) -> f64,
    task_href: &impl Fn(&str, &str) -> String,
) -> Bar {
    let (Some(first), Some(last)) = (group.first(), group.last()) else {
        unreachable!("a bar is drawn for a group of one attempt or more")
    };
    let end = group.iter().map(|s| s.end).max().unwrap_or(last.end);
    let x = x_of(first.start);
    let failed = first.failed;
    let (title, href) = if group.len() == 1 {
        let retry = if first.attempt > 0 {
            format!(" (attempt {})", first.attempt)
        } else {
            String::new()
        };
        (
            format!(
                "{}/{}{retry}: {}{}",
                step.name,
                first.task,
                shown(first.end.duration_since(first.start).unwrap_or_default()),
                if failed { ", failed" } else { "" }
            ),
            Some(task_href(step.name, &first.task)),
        )
    } else {
        (
            format!(
                "{}: {} attempts{} from task {} to task {}",
                step.name,
                group.len(),
                if failed { " that failed" } else { "" },
                first.task,
                last.task
            ),
            None,
        )
    };
    Bar {
        x: px(x),
        y: px(y),
        // An attempt of a millisecond is still a mark one can see and point at.
        width: px((x_of(end) - x).max(MIN_BAR_WIDTH)),
        class: if failed { "failed" } else { "done" },
        title,
        href,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn span(task: &str, from_ms: u64, to_ms: u64, failed: bool) -> Span {
        let at = |ms| SystemTime::UNIX_EPOCH + Duration::from_millis(ms);
        Span {
            task: task.to_owned(),
            attempt: 0,
            start: at(from_ms),
            end: at(to_ms),
            failed,
        }
    }

    fn drawn(spans: &[Span]) -> Timeline {
        let steps = [StepSpans {
            name: "s",
            href: "/s".to_owned(),
            spans,
        }];
        draw(SystemTime::UNIX_EPOCH, &steps, |s, t| format!("/{s}/{t}")).expect("a drawing")
    }

    #[test]
    fn attempts_at_the_same_time_get_their_own_rows() {
        let t = drawn(&[
            span("0", 0, 100, false),
            span("1", 50, 150, false),
            span("2", 120, 200, false),
        ]);
        let rows: std::collections::BTreeSet<u64> = t.bars.iter().map(|b| b.y as u64).collect();
        assert_eq!(rows.len(), 2, "two at once at most");
        assert_eq!(t.bars.len(), 3);
        assert_eq!(t.bars[0].href.as_deref(), Some("/s/0"));
        assert!((t.bars[0].x - LABEL_WIDTH).abs() < 0.01);
        let last = t
            .bars
            .iter()
            .find(|b| b.href.as_deref() == Some("/s/2"))
            .expect("task 2");
        assert!(
            (last.x + last.width - (LABEL_WIDTH + PLOT_WIDTH)).abs() < 0.11
                || last.width == MIN_BAR_WIDTH
        );
        assert_eq!(
            last.y, t.bars[0].y,
            "task 2 starts after task 0 ended: same row"
        );
    }

    #[test]
    fn ten_thousand_short_tasks_are_a_few_bars() {
        let spans: Vec<Span> = (0..10_000u64)
            .map(|i| span(&i.to_string(), i * 10, i * 10 + 9, i == 5_000))
            .collect();
        let t = drawn(&spans);
        assert_eq!(t.attempts, 10_000);
        assert!(t.bars.len() <= 5, "{} bars", t.bars.len());
        let failed: Vec<&Bar> = t.bars.iter().filter(|b| b.class == "failed").collect();
        assert_eq!(failed.len(), 1, "the failure stays visible");
        assert!(t.bars.iter().any(|b| b.title.contains("attempts")));
    }

    #[test]
    fn ticks_are_round_and_cover_the_run() {
        assert_eq!(tick_step(0.9), 0.2);
        assert_eq!(tick_step(7.0), 1.0);
        assert_eq!(tick_step(3600.0), 600.0);
        let t = drawn(&[span("0", 0, 2500, false)]);
        let labels: Vec<&str> = t.ticks.iter().map(|t| t.label.as_str()).collect();
        assert_eq!(labels, ["0s", "500ms", "1s", "1s 500ms", "2s", "2s 500ms"]);
    }

    #[test]
    fn nothing_finished_draws_nothing() {
        assert!(draw(SystemTime::UNIX_EPOCH, &[], |_, _| String::new()).is_none());
    }
}
