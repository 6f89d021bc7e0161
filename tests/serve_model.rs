//! From training to a served prediction, end to end: two runs of `examples/train_burn.rs` with
//! different settings, the first promoted to `production`, `examples/serve_model.rs` serving it,
//! then the second promoted while a client keeps sending requests. Every request is answered,
//! by one model or the other, never a mix, and each answer is what the model of the run it names
//! computes when loaded here directly, bit for bit.

#![cfg(feature = "burn")]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use blooming_flowers::burn::tensor::Device;
use blooming_flowers::burn_model::Model;
use blooming_flowers::client::Client;
use blooming_flowers::state::decode_field;

mod support {
    pub mod example;
}

#[allow(dead_code)]
#[path = "../examples/shared/mlp.rs"]
mod mlp;

use mlp::Mlp;
use support::example::cargo_example;

/// The inputs every request asks about.
const INPUTS: [f32; 6] = [-1.9, -0.7, 0.0, 0.3, 1.1, 1.95];

/// Kills the service when the test ends, passed or not.
struct Service(Child);

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn train_burn(datastore: &Path, args: &[&str]) {
    let output = cargo_example("train_burn", &["burn"])
        .arg("--datastore")
        .arg(datastore)
        .args(args)
        .output()
        .expect("cargo runs");
    assert!(
        output.status.success(),
        "train_burn {args:?} failed ({}):\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
}

/// One HTTP/1.1 request on a new connection: the status code and the body.
fn request(port: u16, method: &str, path: &str, body: &str) -> Result<(u16, String), String> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .map_err(|e| e.to_string())?;
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .map_err(|e| e.to_string())?;
    let mut response = String::new();
    stream
        .read_to_string(&mut response)
        .map_err(|e| e.to_string())?;
    let (head, body) = response
        .split_once("\r\n\r\n")
        .ok_or_else(|| format!("no end of headers in {response:?}"))?;
    let code = head
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| format!("no status in {head:?}"))?;
    Ok((code, body.to_owned()))
}

fn json(body: &str) -> serde_json::Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}"))
}

fn predict_body() -> String {
    serde_json::json!({ "inputs": INPUTS }).to_string()
}

/// The run `/model` says it serves.
fn served_run(port: u16) -> Option<String> {
    match request(port, "GET", "/model", "") {
        Ok((200, body)) => json(&body)["run_id"].as_str().map(str::to_owned),
        _ => None,
    }
}

fn wait_for_run(port: u16, run: &str, within: Duration) -> Duration {
    let begun = Instant::now();
    while begun.elapsed() < within {
        if served_run(port).as_deref() == Some(run) {
            return begun.elapsed();
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("the service did not serve run {run} within {within:?}");
}

/// What the model of `run` answers on [`INPUTS`], loaded here.
fn expected(client: &Client, run: &str) -> Vec<u32> {
    let model: Model<Mlp> = client
        .flow("TrainBurn")
        .run(run)
        .expect("run")
        .artifact("best")
        .expect("best model");
    let outputs = model
        .module()
        .expect("module")
        .predict(&INPUTS, &Device::flex());
    outputs.iter().map(|y| y.to_bits()).collect()
}

#[test]
fn the_service_follows_promotions_without_dropping_a_request() {
    let dir = tempfile::tempdir().expect("temporary datastore");
    let datastore = dir.path();
    train_burn(datastore, &["run", "--epochs", "40"]);
    train_burn(datastore, &["run", "--epochs", "160"]);
    let client = Client::open(datastore).expect("client");
    let runs = client.flow("TrainBurn").run_ids().expect("runs");
    let (first, second) = (runs[1].to_string(), runs[0].to_string());
    let answers = [
        (first.clone(), expected(&client, &first)),
        (second.clone(), expected(&client, &second)),
    ];
    assert_ne!(answers[0].1, answers[1].1, "the two runs' models differ");

    // Nothing promoted yet: the service starts, and says it has no model.
    let mut child = cargo_example("serve_model", &["burn"])
        .arg("--datastore")
        .arg(datastore)
        .args(["--port", "0", "--poll", "100ms"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("serve_model starts");
    let stdout = child.stdout.take().expect("stdout");
    let service = Service(child);
    let mut lines = BufReader::new(stdout).lines();
    let line = lines.next().expect("a line").expect("text");
    let port: u16 = line
        .strip_prefix("serve_model: listening on http://127.0.0.1:")
        .and_then(|rest| rest.trim_end_matches('/').parse().ok())
        .unwrap_or_else(|| panic!("{line}"));
    let (code, body) = request(port, "POST", "/predict", &predict_body()).expect("predict");
    assert_eq!(code, 503, "{body}");
    assert!(
        json(&body)["error"]
            .as_str()
            .unwrap_or("")
            .contains("promoted")
    );

    train_burn(datastore, &["promote", &first, "--as", "production"]);
    wait_for_run(port, &first, Duration::from_secs(30));
    let model = json(&request(port, "GET", "/model", "").expect("model").1);
    assert_eq!(model["label"], "production");
    assert_eq!(model["flow"], "TrainBurn");

    // A client keeps asking while the second run is promoted.
    let stop = Arc::new(AtomicBool::new(false));
    let asking = {
        let stop = Arc::clone(&stop);
        std::thread::spawn(move || {
            let mut seen = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                seen.push(request(port, "POST", "/predict", &predict_body()));
            }
            seen
        })
    };
    std::thread::sleep(Duration::from_millis(300));
    train_burn(datastore, &["promote", &second, "--as", "production"]);
    let switched = wait_for_run(port, &second, Duration::from_secs(30));
    eprintln!("the service served the new promotion {switched:?} after `promote` returned");
    std::thread::sleep(Duration::from_millis(300));
    stop.store(true, Ordering::Relaxed);
    let seen = asking.join().expect("the client thread");

    let mut order = Vec::new();
    for answer in &seen {
        let (code, body) = answer.as_ref().expect("every request is answered");
        assert_eq!(*code, 200, "{body}");
        let body = json(body);
        let run = body["run_id"].as_str().expect("run_id");
        let outputs: Vec<u32> = body["outputs"]
            .as_array()
            .expect("outputs")
            .iter()
            .map(|y| (y.as_f64().expect("a number") as f32).to_bits())
            .collect();
        let (_, want) = answers
            .iter()
            .find(|(id, _)| id == run)
            .unwrap_or_else(|| panic!("an answer from run {run}, neither promoted"));
        assert_eq!(&outputs, want, "run {run}'s model computes these outputs");
        if order.last() != Some(&run.to_owned()) {
            order.push(run.to_owned());
        }
    }
    assert_eq!(
        order,
        [first.clone(), second.clone()],
        "one switch, never back"
    );
    eprintln!("{} requests answered during the switch", seen.len());

    // Bad requests are told what is wrong.
    let (code, body) = request(port, "POST", "/predict", r#"{"inputs": "many"}"#).expect("bad");
    assert_eq!(code, 400, "{body}");
    assert!(
        json(&body)["error"]
            .as_str()
            .unwrap_or("")
            .contains("inputs")
    );
    let (code, _) = request(port, "POST", "/predict", "not json").expect("bad");
    assert_eq!(code, 400);

    // The model outlives the datastore: its stored bytes, written to a file, read back alone.
    let raw = cargo_example("train_burn", &["burn"])
        .arg("--datastore")
        .arg(datastore)
        .args([
            "dump",
            &format!("{second}/end"),
            "--artifact",
            "best",
            "--raw",
        ])
        .output()
        .expect("dump");
    assert!(
        raw.status.success(),
        "{}",
        String::from_utf8_lossy(&raw.stderr)
    );
    let file = dir.path().join("best.msgpack");
    std::fs::write(&file, &raw.stdout).expect("the model file");
    let model: Model<Mlp> =
        decode_field(&std::fs::read(&file).expect("read back")).expect("a model");
    let outputs = model
        .module()
        .expect("module")
        .predict(&INPUTS, &Device::flex());
    let bits: Vec<u32> = outputs.iter().map(|y| y.to_bits()).collect();
    assert_eq!(
        bits, answers[1].1,
        "the file's model is the promoted one, bit for bit"
    );

    // A demotion leaves the last model in service, and /model says the label names no run.
    train_burn(datastore, &["demote", "--as", "production"]);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(served_run(port).as_deref(), Some(second.as_str()));
    drop(service);
}
