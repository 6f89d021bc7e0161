//! Charts as the pages carry them: a [`ChartSpec`] serialised to JSON into a
//! `<figure class="chart" data-chart="…">` (the template escapes it as any attribute; the browser
//! hands `static/charts.js` the JSON back), which `charts.js` draws with the vendored uPlot.
//!
//! The server never draws: it only says what to draw, so a chart costs the page its numbers and
//! nothing else, and the same spec serves the UI's pages and exported cards.

use serde::Serialize;

/// How the points of a chart's series are drawn.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ChartKind {
    /// Points joined by lines, in the order of their x values: a loss per epoch.
    Line,
    /// Points alone.
    Scatter,
}

/// One named series of points: `x[i]` with `y[i]`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SeriesSpec {
    /// Shown in the legend.
    pub name: String,
    /// The x values, as many as `y`.
    pub x: Vec<f64>,
    /// The y values; `None` (JSON `null`) is a gap, which is what a non-finite value becomes.
    pub y: Vec<Option<f64>>,
}

impl SeriesSpec {
    /// A series from `(x, y)` pairs; a pair whose x is not finite is left out (it has no place
    /// on the axis), a y that is not finite becomes a gap.
    pub fn from_points(
        name: impl Into<String>,
        points: impl IntoIterator<Item = (f64, f64)>,
    ) -> Self {
        let mut x = Vec::new();
        let mut y = Vec::new();
        for (px, py) in points {
            if px.is_finite() {
                x.push(px);
                y.push(py.is_finite().then_some(py));
            }
        }
        SeriesSpec {
            name: name.into(),
            x,
            y,
        }
    }
}

/// Everything `charts.js` needs to draw one chart.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ChartSpec {
    /// Line or scatter.
    pub kind: ChartKind,
    /// Above the chart; empty for none.
    pub title: String,
    /// Under the x axis.
    pub x_label: String,
    /// Beside the y axis.
    pub y_label: String,
    /// Names for the x values `0, 1, 2, …` when the x axis is a list of things (runs, say)
    /// rather than numbers.
    pub x_labels: Option<Vec<String>>,
    /// The series, each with its own x values (they need not be the same).
    pub series: Vec<SeriesSpec>,
}

impl ChartSpec {
    /// The spec as the `data-chart` attribute holds it (before the template escapes it).
    pub fn to_json(&self) -> String {
        // Serialising plain strings and finite numbers cannot fail; "{}" would only draw an
        // empty chart with a message.
        serde_json::to_string(self).unwrap_or_else(|_| "{}".to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn non_finite_values_become_gaps_or_are_left_out() {
        let series = SeriesSpec::from_points(
            "loss",
            [
                (0.0, 1.0),
                (1.0, f64::NAN),
                (f64::INFINITY, 2.0),
                (2.0, 0.5),
            ],
        );
        assert_eq!(series.x, vec![0.0, 1.0, 2.0]);
        assert_eq!(series.y, vec![Some(1.0), None, Some(0.5)]);
    }

    #[test]
    fn the_json_is_what_charts_js_reads() {
        let spec = ChartSpec {
            kind: ChartKind::Scatter,
            title: "t".into(),
            x_label: "run".into(),
            y_label: "</figure><script>".into(),
            x_labels: Some(vec!["a".into(), "b".into()]),
            series: vec![SeriesSpec::from_points("s", [(0.0, 1.5), (1.0, f64::NAN)])],
        };
        let json: serde_json::Value = serde_json::from_str(&spec.to_json()).unwrap();
        assert_eq!(json["kind"], "scatter");
        assert_eq!(json["x_labels"][1], "b");
        assert_eq!(json["series"][0]["y"], serde_json::json!([1.5, null]));
        assert_eq!(json["y_label"], "</figure><script>");
    }
}
