//! How fast the web UI answers on large datastores: a flow with 10,000 runs, a foreach of 10,000
//! tasks, a task holding a 1 GiB artifact. Each request goes through the whole router (routing,
//! datastore reads, template rendering, the body collected), in process, on a local datastore
//! in a temporary directory (`TMPDIR`). Release build.
//!
//! Run: `cargo bench -p flow-ui --bench pages`. Setting the datastores up takes about a minute
//! (10,000 real runs and a 1 GiB field written); they are made once per invocation.

use std::hint::black_box;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use blooming_flowers::client::Client;
use blooming_flowers::executor::{RunOptions, run_flow};
use blooming_flowers::prelude::*;
use blooming_flowers::run::RunStore;
use criterion::Criterion;
use http_body_util::BodyExt;
use tower::ServiceExt;

/// The smallest flow: its runs fill the runs list.
#[derive(Clone, Default, Serialize, Deserialize)]
struct Tiny {
    n: u32,
}

#[flow]
impl Tiny {
    #[step(next = end)]
    fn start(&mut self) {
        self.n = 7;
    }
    #[step]
    fn end(&mut self) {}
}

/// A foreach of 10,000 tasks.
#[derive(Clone, Default, Serialize, Deserialize)]
struct Wide {
    xs: Vec<u32>,
    y: u32,
    total: u64,
}

#[flow]
impl Wide {
    #[step(foreach = xs, next = work)]
    fn start(&mut self) {
        self.xs = (0..10_000).collect();
    }
    #[step(next = join)]
    fn work(&mut self, x: u32) {
        self.y = x * 2;
    }
    #[step(join, next = end)]
    fn join(&mut self, inputs: Inputs<Self>) {
        self.total = inputs.iter().map(|i| u64::from(i.y)).sum();
    }
    #[step]
    fn end(&mut self) {}
}

/// A task whose state holds a 1 GiB field.
#[derive(Clone, Default, Serialize, Deserialize)]
struct Big {
    #[serde(with = "serde_bytes")]
    bytes: Vec<u8>,
    label: String,
}

#[flow]
impl Big {
    #[step(next = end)]
    fn start(&mut self) {
        self.bytes = vec![7; 1 << 30];
        self.label = "one gibibyte".into();
    }
    #[step]
    fn end(&mut self) {}
}

fn run<F: Flow>(store: &RunStore) -> String {
    let options = RunOptions {
        max_workers: 2,
        ..RunOptions::default()
    };
    run_flow::<F>(store, serde_json::Value::Null, &options)
        .unwrap_or_else(|e| panic!("a run of {}: {e}", F::GRAPH.name))
        .run_id
        .to_string()
}

/// The body of `GET uri`, which must answer 200.
async fn get(router: &axum::Router, uri: &str) -> usize {
    let request = Request::get(uri).body(Body::empty()).expect("a request");
    let response = router.clone().oneshot(request).await.expect("a response");
    assert_eq!(response.status(), StatusCode::OK, "GET {uri}");
    let body = response.into_body().collect().await.expect("the body");
    body.to_bytes().len()
}

fn pages(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let store = RunStore::open_local(dir.path()).expect("a datastore");
    let tiny: Vec<String> = (0..10_000).map(|_| run::<Tiny>(&store)).collect();
    let wide = run::<Wide>(&store);
    let big = run::<Big>(&store);
    let client = Client::open(dir.path()).expect("the client");
    let router = flow_ui::router(client);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");

    let mut group = c.benchmark_group("ui");
    group.sample_size(30);
    group.measurement_time(Duration::from_secs(5));
    for (name, uri) in [
        ("runs_page_of_10000_runs", "/flows/Tiny".to_owned()),
        (
            "last_runs_page_of_10000_runs",
            "/flows/Tiny?page=200".to_owned(),
        ),
        (
            "runs_of_10000_filtered_by_status",
            "/flows/Tiny?status=succeeded&page=3".to_owned(),
        ),
        (
            "compare_two_of_10000_runs",
            format!("/flows/Tiny/compare?run={}&run={}", tiny[0], tiny[9_999]),
        ),
        (
            "task_list_of_a_10000_task_foreach",
            format!("/flows/Wide/runs/{wide}/steps/work"),
        ),
        (
            "run_page_with_a_10000_task_step",
            format!("/flows/Wide/runs/{wide}"),
        ),
        (
            "task_page_previewing_a_1GiB_artifact",
            format!("/flows/Big/runs/{big}/steps/start/tasks/0"),
        ),
    ] {
        group.bench_function(name, |b| {
            b.iter(|| black_box(runtime.block_on(get(&router, &uri))));
        });
    }
    group.finish();
}

fn main() {
    let mut criterion = Criterion::default().configure_from_args();
    pages(&mut criterion);
    criterion.final_summary();
}
