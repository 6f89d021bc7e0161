//! The model service of `examples/serve_model.rs` on this machine (release, `--features burn`):
//! the latency of `POST /predict` (one client, one kept-alive connection), its throughput with
//! several clients at once, and the time from a promotion to the service answering with the
//! promoted run's model.
//!
//! `cargo bench --features burn --bench serve_model`
//!
//! Two runs of `examples/train_burn.rs` (40 epochs, in process) make the datastore, in
//! `$TMPDIR`; the service runs in this process on a port of its own, as `serve_model` would.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

use blooming_flowers::client::Client;
use blooming_flowers::executor::{RunOptions, run_flow};
use blooming_flowers::run::RunStore;
use std::hint::black_box;

use criterion::Criterion;

#[allow(dead_code)]
#[path = "../examples/train_burn.rs"]
mod train_burn;
// The model type the service names (`super::mlp::Mlp`): the one `train_burn` includes.
mod mlp {
    pub use super::train_burn::Mlp;
}
#[allow(dead_code)]
#[path = "../examples/shared/model_service.rs"]
mod model_service;

/// A kept-alive HTTP/1.1 connection: one request at a time.
struct Connection {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl Connection {
    fn open(port: u16) -> Connection {
        let stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        stream.set_nodelay(true).expect("nodelay");
        Connection {
            reader: BufReader::new(stream.try_clone().expect("clone")),
            writer: stream,
        }
    }

    /// Sends a request and reads its answer: the status code and the body.
    fn request(&mut self, method: &str, path: &str, body: &str) -> (u16, String) {
        write!(
            self.writer,
            "{method} {path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .expect("request");
        let mut status = String::new();
        self.reader.read_line(&mut status).expect("status");
        let code = status
            .split(' ')
            .nth(1)
            .and_then(|c| c.parse().ok())
            .expect("a status code");
        let mut length = 0;
        loop {
            let mut line = String::new();
            self.reader.read_line(&mut line).expect("header");
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            if let Some((name, value)) = line.split_once(':')
                && name.eq_ignore_ascii_case("content-length")
            {
                length = value.trim().parse().expect("a length");
            }
        }
        let mut body = vec![0; length];
        self.reader.read_exact(&mut body).expect("body");
        (code, String::from_utf8(body).expect("utf-8"))
    }
}

fn served_run(port: u16) -> Option<String> {
    let (code, body) = Connection::open(port).request("GET", "/model", "");
    (code == 200)
        .then(|| serde_json::from_str::<serde_json::Value>(&body).ok())
        .flatten()
        .and_then(|v| v["run_id"].as_str().map(str::to_owned))
}

fn main() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let store = RunStore::open_local(dir.path()).expect("a datastore");
    let options = RunOptions::default();
    let runs: Vec<String> = [40, 41]
        .iter()
        .map(|epochs| {
            run_flow::<train_burn::TrainBurn>(
                &store,
                serde_json::json!({ "epochs": epochs }),
                &options,
            )
            .expect("a training run")
            .run_id
            .to_string()
        })
        .collect();
    store
        .promote("TrainBurn", "production", &runs[0])
        .expect("promote");

    let poll = Duration::from_millis(100);
    // A service following `production`, as `examples/serve_model.rs` starts one.
    let new_service = || {
        model_service::Service::new(
            Client::open(dir.path()).expect("the client"),
            model_service::Settings {
                flow: "TrainBurn".into(),
                label: "production".into(),
                artifact: "best".into(),
                poll,
            },
        )
    };
    let service = new_service();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .expect("a port");
    let port = listener.local_addr().expect("the port").port();
    runtime.spawn(model_service::serve_on(Arc::clone(&service), listener));
    let begun = Instant::now();
    while served_run(port).as_deref() != Some(runs[0].as_str()) {
        assert!(
            begun.elapsed() < Duration::from_secs(30),
            "the service never served"
        );
        std::thread::sleep(Duration::from_millis(10));
    }

    let mut criterion = Criterion::default()
        .configure_from_args()
        .sample_size(50)
        .measurement_time(Duration::from_secs(5));
    let one = serde_json::json!({ "inputs": [0.5] }).to_string();
    let thousand = serde_json::json!({
        "inputs": (0..1000).map(|i| -2.0 + 4.0 * i as f32 / 999.0).collect::<Vec<_>>()
    })
    .to_string();
    {
        let mut group = criterion.benchmark_group("serve_model");
        for (name, body) in [
            ("predict_1_input", &one),
            ("predict_1000_inputs", &thousand),
        ] {
            let mut connection = Connection::open(port);
            group.bench_function(name, |b| {
                b.iter(|| {
                    let (code, answer) = connection.request("POST", "/predict", body);
                    assert_eq!(code, 200, "{answer}");
                    black_box(answer)
                });
            });
        }
        group.finish();
    }

    // Throughput: clients on their own connections, each asking as fast as it is answered.
    for clients in [1, 4, 16] {
        let window = Duration::from_secs(5);
        let started = Instant::now();
        let counts: Vec<usize> = std::thread::scope(|scope| {
            let workers: Vec<_> = (0..clients)
                .map(|_| {
                    let one = &one;
                    scope.spawn(move || {
                        let mut connection = Connection::open(port);
                        let mut answered = 0;
                        while started.elapsed() < window {
                            let (code, _) = connection.request("POST", "/predict", one);
                            assert_eq!(code, 200);
                            answered += 1;
                        }
                        answered
                    })
                })
                .collect();
            workers
                .into_iter()
                .map(|w| w.join().expect("a client"))
                .collect()
        });
        let total: usize = counts.iter().sum();
        println!(
            "serve_model/throughput_{clients}_clients: {:.0} requests/s ({total} in {:.1} s, 1 input each)",
            total as f64 / started.elapsed().as_secs_f64(),
            started.elapsed().as_secs_f64()
        );
    }

    // From a promotion to the service answering with the new model: the label is read every
    // `poll`, then the model loaded and swapped in.
    let mut switches = Vec::new();
    let mut loads = Vec::new();
    for round in 0..10 {
        let next = &runs[(round + 1) % 2];
        store
            .promote("TrainBurn", "production", next)
            .expect("promote");
        let promoted = Instant::now();
        while served_run(port).as_deref() != Some(next.as_str()) {
            assert!(promoted.elapsed() < Duration::from_secs(30), "no switch");
            std::thread::sleep(Duration::from_millis(2));
        }
        switches.push(promoted.elapsed());
        // The load alone: a model the service does not hold, read and built.
        let other = new_service();
        let load = Instant::now();
        other.refresh().expect("a load");
        loads.push(load.elapsed());
    }
    switches.sort();
    loads.sort();
    println!(
        "serve_model/promotion_to_serving (poll every {poll:?}): median {:?}, min {:?}, max {:?} over {} promotions",
        switches[switches.len() / 2],
        switches[0],
        switches[switches.len() - 1],
        switches.len()
    );
    println!(
        "serve_model/load_of_a_promoted_model (label read + model read and built): median {:?}, max {:?}",
        loads[loads.len() / 2],
        loads[loads.len() - 1]
    );
    criterion.final_summary();
}
