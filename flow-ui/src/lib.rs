//! A read-only web UI over a blooming-flowers datastore (a local directory or `s3://…`): every
//! flow, run, step, task, artifact and log, in a browser. `blooming ui --datastore PATH` serves it
//! (see [`cli`]); [`router`] is the same application as an [`axum::Router`], for tests and for
//! embedding.
//!
//! The UI only reads: it goes through the runtime's [`Client`], never through the code that
//! writes runs. Every path segment of a request (flow, run, step, task, artifact) is checked as a
//! datastore key segment before it is used, so a request names nothing outside the datastore;
//! every text from the datastore is HTML-escaped by the templates, so an artifact holding markup
//! is shown as text.
//!
//! Pages:
//!
//! | Path | Shows |
//! |---|---|
//! | `/` | the flows of the datastore |
//! | `/flows/{flow}` | its runs, newest first (`?status=`, `?tag=`, `?page=`) |
//! | `/flows/{flow}/compare?run=A&run=B…` | runs side by side: parameters, final artifacts, a chart (`&chart=NAME`) |
//! | `/flows/{flow}/runs/{run}` | the run's record, its graph drawn as SVG, its failure |
//! | `/flows/{flow}/runs/{run}/status.json` | how the run stands: what its page polls while it runs |
//! | `/flows/{flow}/runs/{run}/steps/{step}` | the step's tasks (`?page=`) |
//! | `/flows/{flow}/runs/{run}/steps/{step}/tasks/{task}` | a task: attempts, card, artifacts, logs |
//! | `/flows/{flow}/runs/{run}/steps/{step}/tasks/{task}/card` | the task's card alone |
//! | `/raw/{flow}/{run}/{step}/{task}/{artifact}` | an artifact's stored MessagePack bytes |
//!
//! [`export_card_html`] writes a task's card (see `flow_runtime::card`) as one self-contained
//! HTML file; `blooming card FLOW/RUN/STEP[/TASK] --output FILE` is that function on the command
//! line ([`cli::card`]).

#![warn(missing_docs)]

use axum::Router;
use axum::http::{HeaderValue, header};
use axum::response::Response;
use axum::routing::get;
use flow_runtime::client::Client;

mod assets;
pub mod card;
pub mod chart;
pub mod cli;
mod compare;
mod dag;
mod error;
mod flow_commands;
mod links;
mod live;
mod logs;
mod pages;
mod preview;
mod raw;
mod timeline;
mod views;

pub use card::{CardExportError, export_card_html};
pub use error::UiError;
pub use flow_commands::flow_commands;

/// The `Content-Security-Policy` of every response.
/// Images may also be `data:` URLs: a card's PNGs are inlined so.
const POLICY: &str = "default-src 'self'; script-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'";

/// Runs shown per page of a flow's runs, tasks per page of a step's tasks.
pub const PER_PAGE: usize = 50;

/// The web UI over the datastore `client` reads: every page, the stylesheet and raw downloads.
pub fn router(client: Client) -> Router {
    Router::new()
        .route("/", get(pages::flows))
        .route("/flows/{flow}", get(pages::runs))
        .route("/flows/{flow}/compare", get(compare::compare))
        .route("/flows/{flow}/runs/{run}", get(pages::run))
        .route("/flows/{flow}/runs/{run}/status.json", get(live::status))
        .route("/flows/{flow}/runs/{run}/steps/{step}", get(pages::step))
        .route(
            "/flows/{flow}/runs/{run}/steps/{step}/tasks/{task}",
            get(pages::task),
        )
        .route(
            "/flows/{flow}/runs/{run}/steps/{step}/tasks/{task}/card",
            get(pages::card),
        )
        .route(
            "/raw/{flow}/{run}/{step}/{task}/{artifact}",
            get(raw::artifact),
        )
        .route("/static/{name}", get(assets::serve))
        .fallback(pages::not_found)
        .layer(axum::middleware::map_response(security_headers))
        .with_state(client)
}

/// No script runs but the UI's own files (`/static/live.js`): not an inline `<script>`, not an
/// `onerror=` attribute, whatever stored text got into a page; and nothing is sniffed into another
/// type. A second guard behind the templates' escaping.
async fn security_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(POLICY),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    response
}
