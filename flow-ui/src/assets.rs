//! The UI's own files, compiled into the binary and served under `/static/`: its stylesheet, its
//! scripts and the vendored chart library (`static/vendor/`, see its README). Nothing is fetched
//! from elsewhere, so the UI and exported cards work without a network.

use axum::extract::Path;
use axum::http::header;
use axum::response::{IntoResponse, Response};

use crate::error::UiError;

/// One file served under `/static/`.
struct Asset {
    name: &'static str,
    content_type: &'static str,
    text: &'static str,
}

/// The stylesheet of every page.
pub const STYLE_CSS: &str = include_str!("../static/style.css");
/// The script of a running run's page.
pub const LIVE_JS: &str = include_str!("../static/live.js");
/// uPlot, the chart library (MIT), minified as published.
pub const UPLOT_JS: &str = include_str!("../static/vendor/uPlot.iife.min.js");
/// uPlot's stylesheet.
pub const UPLOT_CSS: &str = include_str!("../static/vendor/uPlot.min.css");
/// Draws every `figure.chart[data-chart]` of a page with uPlot (see [`crate::chart`]).
pub const CHARTS_JS: &str = include_str!("../static/charts.js");

const CSS: &str = "text/css; charset=utf-8";
const JS: &str = "text/javascript; charset=utf-8";

const ASSETS: &[Asset] = &[
    Asset {
        name: "style.css",
        content_type: CSS,
        text: STYLE_CSS,
    },
    Asset {
        name: "live.js",
        content_type: JS,
        text: LIVE_JS,
    },
    Asset {
        name: "charts.js",
        content_type: JS,
        text: CHARTS_JS,
    },
    Asset {
        name: "uPlot.iife.min.js",
        content_type: JS,
        text: UPLOT_JS,
    },
    Asset {
        name: "uPlot.min.css",
        content_type: CSS,
        text: UPLOT_CSS,
    },
];

/// `/static/{name}`: one of the files above, cached for an hour; anything else is not found.
pub(crate) async fn serve(Path(name): Path<String>) -> Result<Response, UiError> {
    let asset = ASSETS
        .iter()
        .find(|asset| asset.name == name)
        .ok_or_else(|| UiError::NotFound(format!("no file {name} here")))?;
    Ok((
        [
            (header::CONTENT_TYPE, asset.content_type),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        asset.text,
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_files_are_not_empty() {
        for (i, asset) in ASSETS.iter().enumerate() {
            assert!(!asset.text.is_empty(), "{} is empty", asset.name);
            assert!(
                ASSETS[i + 1..].iter().all(|other| other.name != asset.name),
                "{} twice",
                asset.name
            );
        }
    }

    #[test]
    fn the_vendored_chart_library_is_uplot() {
        assert!(UPLOT_JS.starts_with("/*! https://github.com/leeoniya/uPlot"));
        assert!(UPLOT_JS.contains("uPlot"));
    }
}
