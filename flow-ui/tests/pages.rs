//! Every page of the UI, requested through the router (no socket), over a datastore made by
//! running real flows.

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use blooming_flowers::client::Client;
use common::{
    BROKEN, CARD_HEADING, CARD_SERIES, LEARNING_RATES, NIGHTLY, SCRIPT, SECRET, TINY_RUNS, fixture,
};
use http_body_util::BodyExt;
use tower::ServiceExt;

struct Reply {
    status: StatusCode,
    content_type: String,
    headers: axum::http::HeaderMap,
    body: Vec<u8>,
}

impl Reply {
    fn text(&self) -> String {
        String::from_utf8(self.body.clone()).expect("utf-8 page")
    }
}

fn client() -> Client {
    Client::open(&fixture().datastore).expect("client")
}

async fn get(uri: &str) -> Reply {
    get_from(client(), uri).await
}

async fn get_from(client: Client, uri: &str) -> Reply {
    let router = flow_ui::router(client);
    let request = Request::get(uri).body(Body::empty()).expect("request");
    let response = router.oneshot(request).await.expect("response");
    let status = response.status();
    let headers = response.headers().clone();
    let content_type = headers
        .get("content-type")
        .map(|v| v.to_str().expect("ascii").to_owned())
        .unwrap_or_default();
    let body = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes()
        .to_vec();
    Reply {
        status,
        content_type,
        headers,
        body,
    }
}

async fn page(uri: &str) -> String {
    let reply = get(uri).await;
    assert_eq!(reply.status, StatusCode::OK, "{uri}: {}", reply.text());
    assert!(reply.content_type.starts_with("text/html"), "{uri}");
    reply.text()
}

/// Whether `body` holds `raw` HTML-escaped, with named (`&lt;`) or numeric (`&#60;`) references.
fn holds_escaped(body: &str, raw: &str) -> bool {
    let named = raw.replace('<', "&lt;").replace('>', "&gt;");
    let numeric = raw.replace('<', "&#60;").replace('>', "&#62;");
    body.contains(&named) || body.contains(&numeric)
}

/// The part of `text` from `start` to the next `end`, inclusive.
fn between<'a>(text: &'a str, start: &str, end: &str) -> &'a str {
    let from = text
        .find(start)
        .unwrap_or_else(|| panic!("no {start} in {text}"));
    let to = text[from..].find(end).expect("end") + from + end.len();
    &text[from..to]
}

#[tokio::test]
async fn the_home_page_lists_every_flow() {
    let body = page("/").await;
    for flow in ["Shapes", "Broken", "Tiny"] {
        assert!(
            body.contains(&format!("<a href=\"/flows/{flow}\">{flow}</a>")),
            "{body}"
        );
    }
    assert!(body.contains(&format!("<td class=\"num\">{TINY_RUNS}</td>")));
    let css = get("/static/style.css").await;
    assert_eq!(css.status, StatusCode::OK);
    assert!(css.content_type.starts_with("text/css"));
    assert!(css.text().contains("svg.dag"));
}

#[tokio::test]
async fn the_chart_library_is_served_from_the_binary_and_nothing_else_is() {
    for (file, kind, holds) in [
        ("uPlot.iife.min.js", "text/javascript", "uPlot"),
        ("uPlot.min.css", "text/css", ".uplot"),
        ("charts.js", "text/javascript", "figure.chart[data-chart]"),
    ] {
        let reply = get(&format!("/static/{file}")).await;
        assert_eq!(reply.status, StatusCode::OK, "{file}");
        assert!(
            reply.content_type.starts_with(kind),
            "{file}: {}",
            reply.content_type
        );
        assert!(reply.text().contains(holds), "{file}");
    }
    for missing in [
        "/static/nothing.js",
        "/static/",
        "/static/vendor/uPlot.LICENSE",
    ] {
        assert_eq!(
            get(missing).await.status,
            StatusCode::NOT_FOUND,
            "{missing}"
        );
    }
}

#[tokio::test]
async fn the_runs_list_shows_each_run_and_its_status() {
    let f = fixture();
    let body = page("/flows/Shapes").await;
    assert!(
        body.contains(&format!("/flows/Shapes/runs/{}", f.shapes)),
        "{body}"
    );
    assert!(body.contains("<span class=\"status succeeded\">succeeded</span>"));
    assert!(body.contains("<span class=\"tag\">demo</span>"));
    let body = page("/flows/Broken").await;
    assert!(body.contains(&format!("/flows/Broken/runs/{}", f.broken)));
    assert!(body.contains("<span class=\"status failed\">failed</span>"));
    assert!(!body.contains("status succeeded"));
}

#[tokio::test]
async fn runs_are_filtered_by_status_and_tag() {
    let f = fixture();
    let failed = page("/flows/Broken?status=failed").await;
    assert!(
        failed.contains(&f.broken) && failed.contains("1 run <"),
        "{failed}"
    );
    let succeeded = page("/flows/Broken?status=succeeded").await;
    assert!(!succeeded.contains(&f.broken) && succeeded.contains("0 runs"));

    let ids = client().flow("Tiny").run_ids().expect("ids");
    let nightly = page("/flows/Tiny?tag=nightly").await;
    assert!(nightly.contains(&format!("{NIGHTLY} runs")), "{nightly}");
    let oldest = &ids[ids.len() - NIGHTLY..];
    for id in &ids {
        let link = format!("/flows/Tiny/runs/{id}\"");
        assert_eq!(nightly.contains(&link), oldest.contains(id), "{id}");
    }
    assert_eq!(
        get("/flows/Tiny?status=bogus").await.status,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        get("/flows/Tiny?page=x").await.status,
        StatusCode::BAD_REQUEST
    );
}

#[tokio::test]
async fn runs_are_paginated_newest_first() {
    let ids = client().flow("Tiny").run_ids().expect("ids");
    assert_eq!(ids.len(), TINY_RUNS);
    let first = page("/flows/Tiny").await;
    let second = page("/flows/Tiny?page=2").await;
    for (i, id) in ids.iter().enumerate() {
        let link = format!("<a href=\"/flows/Tiny/runs/{id}\">");
        assert_eq!(first.contains(&link), i < 50, "page 1, run {i}");
        assert_eq!(second.contains(&link), i >= 50, "page 2, run {i}");
    }
    assert!(first.contains("page 1 of 2") && first.contains("href=\"/flows/Tiny?page=2\""));
    assert!(second.contains("page 2 of 2") && second.contains("href=\"/flows/Tiny?page=1\""));
    // Newest first: the newest run's row comes before the next one's.
    let at = |id: &str| {
        first
            .find(&format!("/flows/Tiny/runs/{id}\""))
            .expect("row")
    };
    assert!(at(&ids[0]) < at(&ids[1]));
}

#[tokio::test]
async fn the_run_page_draws_every_step_with_its_state() {
    let f = fixture();
    let body = page(&format!("/flows/Shapes/runs/{}", f.shapes)).await;
    let svg = between(&body, "<svg class=\"dag\"", "</svg>");
    for step in ["start", "measure", "collect", "end"] {
        assert!(
            svg.contains(&format!("<g class=\"step done\" data-step=\"{step}\">")),
            "{step}: {svg}"
        );
    }
    assert!(svg.contains("3 tasks · done"), "{svg}");
    assert_eq!(svg.matches("<line class=\"edge\"").count(), 3);
    // Layers by longest path: each step is drawn below the one before it.
    let y = |step: &str| -> usize {
        let node = between(svg, &format!("data-step=\"{step}\""), "/>");
        let y = between(node, "y=\"", "\" ");
        y[3..y.len() - 2].parse().expect("y")
    };
    assert!(y("start") < y("measure") && y("measure") < y("collect") && y("collect") < y("end"));
}

#[tokio::test]
async fn the_run_page_shows_each_step_s_resources() {
    let f = fixture();
    let body = page(&format!("/flows/Shapes/runs/{}", f.shapes)).await;
    let row =
        |step: &str| between(&body, &format!("<tr data-step=\"{step}\">"), "</tr>").to_owned();
    let cell = |row: &str| between(row, "<td class=\"resources\">", "</td>").to_owned();
    assert_eq!(
        cell(&row("measure")),
        "<td class=\"resources\">1 cpu, 100 MiB</td>"
    );
    assert_eq!(
        cell(&row("start")),
        "<td class=\"resources\"></td>",
        "a step asking nothing shows nothing"
    );
}

#[tokio::test]
async fn a_failed_run_shows_its_failure_escaped() {
    let f = fixture();
    let body = page(&format!("/flows/Broken/runs/{}", f.broken)).await;
    assert!(holds_escaped(&body, BROKEN), "{body}");
    assert!(!body.contains(BROKEN));
    let svg = between(&body, "<svg class=\"dag\"", "</svg>");
    assert!(svg.contains("<g class=\"step done\" data-step=\"start\">"));
    assert!(svg.contains("<g class=\"step failed\" data-step=\"explode\">"));
    assert!(svg.contains("<g class=\"step not-started\" data-step=\"end\">"));
    let step = page(&format!("/flows/Broken/runs/{}/steps/explode", f.broken)).await;
    assert!(
        step.contains("<span class=\"status failed\">failed</span>"),
        "{step}"
    );
}

#[tokio::test]
async fn a_task_page_shows_artifacts_previews_links_and_logs() {
    let f = fixture();
    let step = page(&format!("/flows/Shapes/runs/{}/steps/measure", f.shapes)).await;
    assert!(step.contains("3 tasks"));
    for task in ["0", "1", "2"] {
        let link = format!(
            "/flows/Shapes/runs/{}/steps/measure/tasks/{task}\"",
            f.shapes
        );
        assert!(step.contains(&link), "{step}");
    }
    let body = page(&format!(
        "/flows/Shapes/runs/{}/steps/measure/tasks/1",
        f.shapes
    ))
    .await;
    for (name, type_name) in [("word", "String"), ("length", "usize"), ("note", "String")] {
        assert!(
            body.contains(&format!("{name} <span class=\"type\">{type_name}</span>")),
            "{name}: {body}"
        );
    }
    let word = between(&body, "id=\"artifact-word\"", "</section>");
    assert!(word.contains("blooming"), "{word}");
    let length = between(&body, "id=\"artifact-length\"", "</section>");
    assert!(length.contains("<pre class=\"value\">8</pre>"), "{length}");
    assert!(body.contains("<dt>foreach index</dt><dd>1</dd>"));
    assert!(body.contains(&format!(
        "/flows/Shapes/runs/{}/steps/start/tasks/0\">start/0</a>",
        f.shapes
    )));
    assert!(body.contains(&format!(
        "/flows/Shapes/runs/{}/steps/collect/tasks/0\">collect/0</a>",
        f.shapes
    )));
    assert!(body.contains("measuring the word"), "{body}");
}

#[tokio::test]
async fn markup_in_an_artifact_is_shown_as_text() {
    let f = fixture();
    let reply = get(&format!(
        "/flows/Shapes/runs/{}/steps/measure/tasks/1",
        f.shapes
    ))
    .await;
    let body = reply.text();
    assert!(holds_escaped(&body, SCRIPT), "{body}");
    assert!(!body.contains(SCRIPT));
    assert!(!body.to_lowercase().contains("<script"));
    assert_eq!(
        reply.headers.get("content-security-policy").expect("csp"),
        "default-src 'self'; script-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'"
    );
    assert_eq!(
        reply
            .headers
            .get("x-content-type-options")
            .expect("nosniff"),
        "nosniff"
    );
}

#[tokio::test]
async fn the_raw_download_is_the_blobs_bytes() {
    let f = fixture();
    let client = client();
    let entry = client
        .flow("Shapes")
        .run(&f.shapes)
        .expect("run")
        .step("measure")
        .expect("step")
        .task_entry("1")
        .expect("task");
    let note = entry
        .artifacts()
        .expect("complete")
        .iter()
        .find(|a| a.name == "note")
        .expect("note")
        .clone();
    let stored = client
        .store()
        .storage()
        .get(&note.hash.key())
        .expect("blob");
    let reply = get(&format!("/raw/Shapes/{}/measure/1/note", f.shapes)).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.content_type, "application/msgpack");
    let disposition = reply
        .headers
        .get("content-disposition")
        .expect("disposition");
    assert_eq!(disposition, "attachment; filename=\"note.msgpack\"");
    assert_eq!(reply.body, stored);
    assert!(
        reply
            .body
            .windows(SCRIPT.len())
            .any(|w| w == SCRIPT.as_bytes())
    );
    let missing = get(&format!("/raw/Shapes/{}/measure/1/nothing", f.shapes)).await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
}

/// Every file below `dir` with its size and modification time.
fn snapshot(dir: &Path) -> BTreeMap<String, (u64, std::time::SystemTime)> {
    let mut files = BTreeMap::new();
    let mut dirs = vec![dir.to_path_buf()];
    while let Some(d) = dirs.pop() {
        for entry in std::fs::read_dir(&d).expect("list") {
            let path = entry.expect("entry").path();
            let meta = std::fs::symlink_metadata(&path).expect("meta");
            if meta.is_dir() {
                dirs.push(path.clone());
            }
            files.insert(
                path.display().to_string(),
                (meta.len(), meta.modified().expect("mtime")),
            );
        }
    }
    files
}

#[tokio::test]
async fn requests_outside_the_datastore_are_refused_and_nothing_is_written() {
    let f = fixture();
    let before = snapshot(&f.root);
    let run = &f.shapes;
    let bad = [
        "/flows/..".to_owned(),
        "/flows/%2e%2e".to_owned(),
        "/flows/%2E%2E/runs/x".to_owned(),
        "/flows/.".to_owned(),
        "/flows/Shapes%2F..%2F..".to_owned(),
        "/flows/%2e%2e%2foutside.txt".to_owned(),
        "/flows/Shapes/runs/..".to_owned(),
        "/flows/Shapes/runs/%2e%2e".to_owned(),
        "/flows/Shapes/runs/a%2Fb".to_owned(),
        "/flows/Shapes/runs/%2e%2e/status.json".to_owned(),
        "/flows/%2e%2e/runs/x/status.json".to_owned(),
        format!("/flows/Shapes/runs/{run}/steps/%2e%2e"),
        format!("/flows/Shapes/runs/{run}/steps/..%2F..%2Foutside.txt"),
        format!("/flows/Shapes/runs/{run}/steps/start/tasks/%2e%2e"),
        format!("/flows/Shapes/runs/{run}/steps/start/tasks/0%2F..%2F1"),
        format!("/raw/Shapes/{run}/start/0/%2e%2e"),
        format!("/raw/Shapes/{run}/start/0/..%2F..%2F..%2F..%2Foutside.txt"),
        format!("/raw/%2e%2e/{run}/start/0/words"),
        "/raw/Shapes/%2e%2e/start/0/words".to_owned(),
        format!("/raw/Shapes/{run}/%2e%2e/0/words"),
        format!("/raw/Shapes/{run}/start/%2e%2e/words"),
        "/static/..%2F..%2FCargo.toml".to_owned(),
        "/../outside.txt".to_owned(),
    ];
    for uri in &bad {
        let reply = get(uri).await;
        assert!(
            matches!(
                reply.status,
                StatusCode::BAD_REQUEST | StatusCode::NOT_FOUND
            ),
            "{uri}: {}",
            reply.status
        );
        assert!(!reply.text().contains(SECRET), "{uri}");
    }
    for uri in [
        "/flows/%2e%2e",
        &format!("/raw/Shapes/{run}/start/0/%2e%2e"),
    ] {
        assert_eq!(get(uri).await.status, StatusCode::BAD_REQUEST, "{uri}");
    }
    // Valid names of things that are not there.
    for uri in [
        "/flows/Nope".to_owned(),
        "/flows/Shapes/runs/123".to_owned(),
        format!("/flows/Shapes/runs/{run}/steps/nope"),
        "/flows/Shapes/runs/123/status.json".to_owned(),
        format!("/flows/Shapes/runs/{run}/steps/start/tasks/9"),
        "/nothing/here".to_owned(),
    ] {
        assert_eq!(get(&uri).await.status, StatusCode::NOT_FOUND, "{uri}");
    }
    // Every page read, none written.
    for uri in [
        "/".to_owned(),
        "/flows/Shapes".to_owned(),
        format!("/flows/Shapes/runs/{run}"),
        format!("/flows/Shapes/runs/{run}/status.json"),
        format!("/flows/Shapes/runs/{run}/steps/measure/tasks/1"),
        format!("/raw/Shapes/{run}/measure/1/word"),
    ] {
        assert_eq!(get(&uri).await.status, StatusCode::OK, "{uri}");
    }
    assert_eq!(snapshot(&f.root), before);
}

/// `status.json` of `uri`'s run, checked to be JSON that is never cached.
async fn status_json(client: Client, uri: &str) -> serde_json::Value {
    let reply = get_from(client, uri).await;
    assert_eq!(reply.status, StatusCode::OK, "{uri}: {}", reply.text());
    assert_eq!(reply.content_type, "application/json", "{uri}");
    assert_eq!(
        reply.headers.get("cache-control").expect("cache"),
        "no-store"
    );
    serde_json::from_slice(&reply.body).expect("json")
}

/// Whether the run page `body` says what `status` does: the badge, the finished time, the
/// failure, and each step's box and row.
fn page_shows(body: &str, status: &serde_json::Value) {
    let run = status["status"].as_str().expect("status");
    assert!(
        body.contains(&format!(
            "<span class=\"status {run}\" id=\"run-status\">{run}</span>"
        )),
        "{body}"
    );
    let finished = status["finished"].as_str().unwrap_or("");
    assert!(body.contains(&format!("<dd id=\"run-finished\">{finished}</dd>")));
    if let Some(failure) = status["failure"].as_str() {
        assert!(holds_escaped(body, failure), "{failure}");
    }
    let svg = between(body, "<svg class=\"dag\"", "</svg>");
    let table = between(body, "<table class=\"steps\">", "</table>");
    let steps = status["steps"].as_array().expect("steps");
    assert_eq!(steps.len(), svg.matches("<g class=\"step ").count());
    for step in steps {
        let name = step["name"].as_str().expect("name");
        let state = step["state"].as_str().expect("state");
        let tasks = step["tasks"].as_u64().expect("tasks");
        let label = step["label"].as_str().expect("label");
        let node = between(svg, &format!("data-step=\"{name}\">"), "</g>");
        assert!(
            svg.contains(&format!("<g class=\"step {state}\" data-step=\"{name}\">")),
            "{name}: {svg}"
        );
        let shown = between(node, "<text class=\"label\"", "</text>");
        assert!(
            shown.ends_with(&format!(">{label}</text>")),
            "{name}: {node}"
        );
        let row = between(table, &format!("<tr data-step=\"{name}\">"), "</tr>");
        assert!(
            row.contains(&format!("<td class=\"num tasks\">{tasks}</td>")),
            "{row}"
        );
        assert!(
            row.contains(&format!("<span class=\"status {state}\">{state}</span>")),
            "{row}"
        );
    }
}

#[tokio::test]
async fn status_json_says_what_the_run_page_shows() {
    let f = fixture();
    let shapes = format!("/flows/Shapes/runs/{}", f.shapes);
    let status = status_json(client(), &format!("{shapes}/status.json")).await;
    assert_eq!(status["status"], "succeeded");
    assert!(status["finished"].is_string());
    assert!(status["failure"].is_null());
    let states: Vec<(&str, &str, u64)> = status["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .map(|s| {
            (
                s["name"].as_str().expect("name"),
                s["state"].as_str().expect("state"),
                s["tasks"].as_u64().expect("tasks"),
            )
        })
        .collect();
    assert_eq!(
        states,
        [
            ("start", "done", 1),
            ("measure", "done", 3),
            ("collect", "done", 1),
            ("end", "done", 1)
        ]
    );
    page_shows(&page(&shapes).await, &status);

    let broken = format!("/flows/Broken/runs/{}", f.broken);
    let status = status_json(client(), &format!("{broken}/status.json")).await;
    assert_eq!(status["status"], "failed");
    assert!(
        status["failure"]
            .as_str()
            .expect("failure")
            .contains(BROKEN)
    );
    assert_eq!(status["steps"][1]["state"], "failed");
    assert_eq!(status["steps"][2]["state"], "not-started");
    page_shows(&page(&broken).await, &status);

    for uri in [
        "/flows/%2e%2e/runs/x/status.json".to_owned(),
        "/flows/Shapes/runs/%2e%2e/status.json".to_owned(),
        "/flows/Shapes/runs/a%2Fb/status.json".to_owned(),
    ] {
        assert_eq!(get(&uri).await.status, StatusCode::BAD_REQUEST, "{uri}");
    }
    for uri in [
        "/flows/Nope/runs/x/status.json".to_owned(),
        "/flows/Shapes/runs/123/status.json".to_owned(),
    ] {
        assert_eq!(get(&uri).await.status, StatusCode::NOT_FOUND, "{uri}");
    }
}

#[tokio::test]
async fn only_a_running_runs_page_loads_the_live_script() {
    // A run whose driver has written its record and nothing else yet.
    let dir = tempfile::tempdir().expect("dir");
    let store = blooming_flowers::run::RunStore::open_local(dir.path()).expect("store");
    let record: blooming_flowers::run::RunRecord = serde_json::from_value(serde_json::json!({
        "format": 1, "flow": "Held", "run_id": "1-held", "status": "running",
        "started": "2026-12-06T14:25:08.500Z", "user": "u", "host": "h", "pid": 1,
        "graph": {"steps": [
            {"name": "start", "kind": "linear", "next": ["end"]},
            {"name": "end", "kind": "end", "next": []}
        ]}
    }))
    .expect("a record");
    store.create_run(&record).expect("run");
    let held = || Client::open(dir.path()).expect("client");

    let tag = "<script src=\"/static/live.js\" defer></script>";
    let reply = get_from(held(), "/flows/Held/runs/1-held").await;
    assert_eq!(reply.status, StatusCode::OK);
    let body = reply.text();
    assert_eq!(body.matches("live.js").count(), 1, "{body}");
    assert!(body.contains(tag), "{body}");
    assert!(body.contains("data-status-url=\"/flows/Held/runs/1-held/status.json\""));
    let status = status_json(held(), "/flows/Held/runs/1-held/status.json").await;
    assert_eq!(status["status"], "running");
    assert!(status["finished"].is_null());
    assert_eq!(status["steps"][0]["state"], "not-started");
    assert_eq!(status["steps"][0]["label"], "0 tasks · not started");
    page_shows(&body, &status);

    let f = fixture();
    for uri in [
        format!("/flows/Shapes/runs/{}", f.shapes),
        format!("/flows/Broken/runs/{}", f.broken),
        format!("/flows/Shapes/runs/{}/steps/measure/tasks/1", f.shapes),
        "/flows/Shapes".to_owned(),
        "/".to_owned(),
    ] {
        assert!(!page(&uri).await.contains("live.js"), "{uri}");
    }

    let script = get("/static/live.js").await;
    assert_eq!(script.status, StatusCode::OK);
    assert!(script.content_type.starts_with("text/javascript"));
    let source = script.text();
    assert!(source.contains("status.json") || source.contains("data-status-url"));
    // It sets text and classes, never markup.
    for markup in [
        "innerHTML",
        "outerHTML",
        "insertAdjacentHTML",
        "document.write",
    ] {
        assert!(!source.contains(markup), "{markup}");
    }
}

/// The `data-chart` JSON of the page's chart, unescaped as a browser would.
fn chart_json(body: &str) -> serde_json::Value {
    let figure = between(body, "<figure class=\"chart\"", ">");
    let (_, attribute) = figure.split_once("data-chart=\"").expect("data-chart");
    let (escaped, _) = attribute.split_once('"').expect("attribute's end");
    let json = escaped
        .replace("&quot;", "\"")
        .replace("&#34;", "\"")
        .replace("&#39;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&");
    serde_json::from_str(&json).unwrap_or_else(|e| panic!("{e}: {json}"))
}

/// The cells of the row whose heading is `name`, and whether it is marked as differing.
fn compare_row(body: &str, name: &str) -> (bool, Vec<String>) {
    let heading = format!("<th>{name}</th>");
    let at = body
        .find(&heading)
        .unwrap_or_else(|| panic!("no row {name}"));
    let row_start = body[..at].rfind("<tr").expect("row");
    let row = between(&body[row_start..], "<tr", "</tr>");
    let cells = row
        .split("<td><code>")
        .skip(1)
        .map(|cell| cell.split("</code>").next().unwrap_or_default().to_owned())
        .collect();
    (row.starts_with("<tr class=\"differs\""), cells)
}

#[tokio::test]
async fn runs_are_compared_side_by_side_with_differences_marked() {
    let f = fixture();
    let runs_page = page("/flows/Trained").await;
    for id in &f.trained {
        assert!(
            runs_page.contains(&format!(
                "<input type=\"checkbox\" form=\"compare\" name=\"run\" value=\"{id}\""
            )),
            "{runs_page}"
        );
    }
    assert!(runs_page.contains("<form id=\"compare\""));
    let uri = format!(
        "/flows/Trained/compare?run={}&run={}",
        f.trained[0], f.trained[1]
    );
    let body = page(&uri).await;
    let (differs, lr) = compare_row(&body, "lr");
    assert!(differs);
    let expected: Vec<String> = LEARNING_RATES.iter().map(|lr| lr.to_string()).collect();
    assert_eq!(lr, expected);
    let (differs, epochs) = compare_row(&body, "epochs");
    assert!(!differs, "same value, same blob");
    assert_eq!(epochs, ["4", "4"]);
    let (differs, loss) = compare_row(&body, "loss");
    assert!(differs);
    let expected: Vec<String> = LEARNING_RATES
        .iter()
        .map(|lr| (lr / 4.0).to_string())
        .collect();
    assert_eq!(loss, expected);
    let (differs, losses) = compare_row(&body, "losses");
    assert!(differs);
    assert!(
        losses[0].starts_with("Vec&lt;f32&gt;") || losses[0].starts_with("Vec&#60;f32&#62;"),
        "{losses:?}"
    );
    let (differs, _) = compare_row(&body, "status");
    assert!(!differs);
    assert!(body.contains("<script src=\"/static/charts.js\" defer></script>"));

    // With no artifact named, the first number that differs is charted, a point per run.
    let chart = chart_json(&body);
    assert_eq!(chart["kind"], "scatter");
    assert_eq!(chart["title"], "loss");
    assert_eq!(chart["x_labels"], serde_json::json!(f.trained));
    assert_eq!(chart["series"][0]["y"], serde_json::json!([0.125, 0.0625]));

    // A list of numbers is a line per run.
    let body = page(&format!("{uri}&chart=losses")).await;
    let chart = chart_json(&body);
    assert_eq!(chart["kind"], "line");
    let series = chart["series"].as_array().expect("series");
    assert_eq!(series.len(), 2);
    assert_eq!(series[1]["name"], f.trained[1].as_str());
    assert_eq!(series[1]["x"], serde_json::json!([0.0, 1.0, 2.0, 3.0]));
    assert_eq!(series[1]["y"][1], serde_json::json!(0.125));

    // What cannot be charted says why; no chart is drawn.
    let body = page(&format!("{uri}&chart=settings")).await;
    assert!(
        body.contains("neither a number nor a list of numbers"),
        "{body}"
    );
    assert!(!body.contains("<figure class=\"chart\""));
}

#[tokio::test]
async fn a_comparison_needs_two_existing_runs_of_the_flow() {
    let f = fixture();
    let one = get(&format!("/flows/Trained/compare?run={}", f.trained[0])).await;
    assert_eq!(one.status, StatusCode::BAD_REQUEST);
    assert!(one.text().contains("two runs or more"));
    let missing = get(&format!(
        "/flows/Trained/compare?run={}&run=nope",
        f.trained[0]
    ))
    .await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND, "{}", missing.text());
    let outside = get(&format!(
        "/flows/Trained/compare?run={}&run=%2e%2e",
        f.trained[0]
    ))
    .await;
    assert_eq!(outside.status, StatusCode::BAD_REQUEST);
    // A run of another flow is not a run of this one.
    let other = get(&format!(
        "/flows/Trained/compare?run={}&run={}",
        f.trained[0], f.shapes
    ))
    .await;
    assert_eq!(other.status, StatusCode::NOT_FOUND);
}

/// The task page of `Reported`'s `start`, which wrote a card.
fn reported_task() -> String {
    format!(
        "/flows/Reported/runs/{}/steps/start/tasks/0",
        fixture().reported
    )
}

/// Checks the card as a page shows it: heading, table, image, chart; nothing of what the step
/// wrote can run.
fn assert_card_shown_safely(body: &str) {
    assert!(body.contains(&format!("<h1>{CARD_HEADING}</h1>")), "{body}");
    let card = between(body, "<div class=\"card\">", "</div><!-- card -->");
    // The script in the markdown and in a table cell is text.
    assert!(!card.to_lowercase().contains("<script"), "{card}");
    assert_eq!(
        card.matches("&lt;script&gt;").count() + card.matches("&#60;script&#62;").count(),
        2,
        "{card}"
    );
    // The `javascript:` link is neutralised, the https one kept.
    assert!(!card.contains("javascript:"), "{card}");
    assert!(card.contains("href=\"#\""), "{card}");
    assert!(card.contains("href=\"https://example.org/\""), "{card}");
    assert!(
        card.contains("<th>epoch</th><th>loss</th><th>note</th>"),
        "{card}"
    );
    assert!(card.contains("<td class=\"num\">0.14</td>"), "{card}");
    assert!(
        card.contains("<img src=\"data:image/png;base64,iVBORw0KGgo"),
        "{card}"
    );
    assert!(
        card.contains("<figcaption>a grey square</figcaption>"),
        "{card}"
    );
    let chart = between(card, "<figure class=\"chart\"", ">");
    assert!(chart.contains(CARD_SERIES), "{chart}");
    assert!(chart.contains("0.55"), "{chart}");
}

#[tokio::test]
async fn a_task_page_shows_its_card_as_text_and_draws_its_chart() {
    let body = page(&reported_task()).await;
    assert!(body.contains("<h2>Card"), "{body}");
    assert_card_shown_safely(&body);
    assert!(body.contains("src=\"/static/charts.js\""), "{body}");
    assert!(
        body.contains(&format!("href=\"{}/card\"", reported_task())),
        "{body}"
    );
    // A task that wrote no card has no card section.
    let plain = page(&format!(
        "/flows/Shapes/runs/{}/steps/end/tasks/0",
        fixture().shapes
    ))
    .await;
    assert!(!plain.contains("<h2>Card"), "{plain}");
    assert!(!plain.contains("charts.js"), "{plain}");
}

#[tokio::test]
async fn the_card_page_shows_the_card_alone() {
    let body = page(&format!("{}/card", reported_task())).await;
    assert_card_shown_safely(&body);
    assert!(!body.contains("<h2>Artifacts</h2>"), "{body}");
    let missing = get(&format!(
        "/flows/Shapes/runs/{}/steps/end/tasks/0/card",
        fixture().shapes
    ))
    .await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert!(missing.text().contains("wrote no card"));
}

#[tokio::test]
async fn an_exported_card_is_one_self_contained_file() {
    let f = fixture();
    let html =
        flow_ui::export_card_html(&client(), "Reported", "latest", "start", None).expect("export");
    assert_card_shown_safely(&html);
    assert!(
        html.contains(&format!("Reported/{}/start/0", f.reported)),
        "{html}"
    );
    // Nothing outside the file: no external script, stylesheet or image.
    for outside in [
        "src=\"http",
        "href=\"http://",
        "src=\"/",
        "href=\"/",
        "<link",
    ] {
        assert!(!html.contains(outside), "{outside} in the export");
    }
    // The chart library and the script that draws are inside, with the chart's numbers.
    assert!(html.contains("uPlot"), "no uPlot");
    assert!(html.contains("figure.chart[data-chart]"), "no charts.js");
    assert!(html.contains("svg.dag"), "no stylesheet");
    // Only the file's own scripts may run: each carries the nonce of its policy.
    let marker = "script-src 'nonce-";
    let at = html.find(marker).expect("a policy with a nonce") + marker.len();
    let nonce = &html[at..at + html[at..].find('\'').expect("end of the nonce")];
    assert_eq!(nonce.len(), 32, "{nonce}");
    assert_eq!(html.matches("<script").count(), 2);
    assert_eq!(html.matches("</script>").count(), 2);
    assert_eq!(
        html.matches(&format!("<script nonce=\"{nonce}\">")).count(),
        2
    );
    // Each export draws its own nonce.
    let again = flow_ui::export_card_html(&client(), "Reported", &f.reported, "start", Some("0"))
        .expect("export");
    assert!(!again.contains(nonce));

    let missing = flow_ui::export_card_html(&client(), "Reported", "latest", "end", None);
    assert!(
        matches!(missing, Err(flow_ui::CardExportError::NotFound(_))),
        "{missing:?}"
    );
    let bad = flow_ui::export_card_html(&client(), "Reported", "latest", "..", None);
    assert!(
        matches!(bad, Err(flow_ui::CardExportError::BadName(_))),
        "{bad:?}"
    );
    let no_run = flow_ui::export_card_html(&client(), "Reported", "nope", "start", None);
    assert!(
        matches!(no_run, Err(flow_ui::CardExportError::NotFound(_))),
        "{no_run:?}"
    );
}

#[tokio::test]
async fn the_run_page_has_a_timeline_of_every_attempt() {
    let f = fixture();
    let body = page(&format!("/flows/Shapes/runs/{}", f.shapes)).await;
    let timeline = between(&body, "<svg class=\"timeline\"", "</svg>");
    for step in ["start", "measure", "collect", "end"] {
        assert!(
            timeline.contains(&format!("data-step=\"{step}\"><rect class=\"band\"")),
            "{step}: {timeline}"
        );
    }
    // Each of the three foreach tasks is its own bar, linked to its page, as are the others.
    let bars = timeline.matches("<rect class=\"bar done\"").count();
    assert_eq!(bars, 6, "{timeline}");
    for task in client()
        .flow("Shapes")
        .run(&f.shapes)
        .unwrap()
        .step("measure")
        .unwrap()
        .task_ids()
        .unwrap()
    {
        let href = format!("/flows/Shapes/runs/{}/steps/measure/tasks/{task}", f.shapes);
        assert!(
            timeline.contains(&format!("<a href=\"{href}\">")),
            "{href} in {timeline}"
        );
    }
    assert!(body.contains("6 attempts that ended"));

    let broken = page(&format!("/flows/Broken/runs/{}", f.broken)).await;
    let timeline = between(&broken, "<svg class=\"timeline\"", "</svg>");
    assert_eq!(
        timeline.matches("<rect class=\"bar failed\"").count(),
        1,
        "{timeline}"
    );
    assert!(timeline.contains("explode/0: "), "{timeline}");
}

#[tokio::test]
async fn the_run_page_shows_the_provenance_of_the_run() {
    let f = fixture();
    let body = page(&format!("/flows/Shapes/runs/{}", f.shapes)).await;
    let record = between(&body, "<dl class=\"record\">", "</dl>");
    let binary = between(record, "<dt>binary</dt>", "</dd>");
    let hash = between(binary, "BLAKE3 ", "<").trim_start_matches("BLAKE3 ");
    let hash = hash.trim_end_matches('<');
    assert_eq!(hash.len(), 64, "{binary}");
    assert!(hash.chars().all(|c| c.is_ascii_hexdigit()), "{binary}");
    assert!(record.contains("<dt>built by</dt>"), "{record}");
    assert!(record.contains("<dt>source</dt>"), "{record}");
}

#[tokio::test]
async fn a_promoted_run_is_marked_in_the_list_and_on_its_page() {
    let f = fixture();
    let body = page("/flows/Trained").await;
    let row = |id: &str| {
        let at = body
            .find(&format!("value=\"{id}\""))
            .expect("the run's row");
        between(&body[at..], "<td>", "</td>").to_owned()
    };
    let badge = "<span class=\"promoted\" title=\"promoted as production\">production</span>";
    assert!(row(&f.trained[1]).contains(badge), "{}", row(&f.trained[1]));
    assert!(
        !row(&f.trained[0]).contains("promoted"),
        "{}",
        row(&f.trained[0])
    );
    let promoted = page(&format!("/flows/Trained/runs/{}", f.trained[1])).await;
    assert!(promoted.contains("<dt>promoted as</dt><dd class=\"promoted-as\">production (by "));
    let other = page(&format!("/flows/Trained/runs/{}", f.trained[0])).await;
    assert!(!other.contains("promoted as"));
}

#[tokio::test]
async fn a_spin_run_links_the_task_it_ran_again() {
    use blooming_flowers::executor::{RunOptions, run_flow, spin_task};
    use blooming_flowers::run::RunStore;
    let dir = tempfile::tempdir().expect("temp dir");
    let store = RunStore::open_local(dir.path()).expect("datastore");
    let origin =
        run_flow::<common::Shapes>(&store, serde_json::Value::Null, &RunOptions::default())
            .expect("run")
            .run_id;
    let spin = spin_task::<common::Shapes>(&store, &origin, "measure", "1").expect("spin");
    let client = Client::open(dir.path()).expect("client");
    let reply = get_from(client, &format!("/flows/Shapes/runs/{}", spin.run_id)).await;
    assert_eq!(reply.status, StatusCode::OK);
    let body = reply.text();
    assert!(
        body.contains(&format!(
            "<dt>spin of</dt><dd><a href=\"/flows/Shapes/runs/{origin}/steps/measure/tasks/1\">{origin}/measure/1</a>"
        )),
        "{body}"
    );
    assert!(
        !body.contains("<dt>resumed from</dt>"),
        "a spin is no resume"
    );
}

/// A step that stores three checkpoints and then fails: its task keeps them all.
mod checkpointing {
    use blooming_flowers::prelude::*;

    #[derive(Clone, Default, Serialize, Deserialize)]
    pub struct Saver {
        n: u32,
    }

    #[flow]
    impl Saver {
        #[step(next = end)]
        fn start(&mut self) -> Result<(), String> {
            let task = blooming_flowers::current::current().ok_or("not in a task")?;
            for epoch in 1..=3_u32 {
                task.checkpoint(&epoch).map_err(|e| e.to_string())?;
            }
            Err("stopped after three checkpoints".into())
        }
        #[step]
        fn end(&mut self) {}
    }
}

#[tokio::test]
async fn a_task_page_lists_the_checkpoints_it_kept() {
    use blooming_flowers::executor::{RunOptions, run_flow};
    use blooming_flowers::run::RunStore;
    let dir = tempfile::tempdir().expect("temp dir");
    let store = RunStore::open_local(dir.path()).expect("datastore");
    let run =
        run_flow::<checkpointing::Saver>(&store, serde_json::Value::Null, &RunOptions::default())
            .expect("run")
            .run_id;
    let client = Client::open(dir.path()).expect("client");
    let reply = get_from(
        client,
        &format!("/flows/Saver/runs/{run}/steps/start/tasks/0"),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK);
    let body = reply.text();
    let table = between(&body, "<table class=\"checkpoints\">", "</table>");
    assert_eq!(
        table.matches("<tr><td class=\"num\">").count(),
        3,
        "{table}"
    );
    assert!(table.contains("<td>u32</td>"), "{table}");
}
