//! `MYFLOW ui` (cargo feature `ui`): every flow binary serves the web UI over its datastore,
//! opened at its flow's runs. This test binary is its own flow binary: run with
//! `UI_COMMAND_AS_FLOW=1`, its `main` is the flow's.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, ExitCode, Stdio};

use blooming_flowers::card::Chart;
use blooming_flowers::prelude::*;

#[derive(Clone, Default, Serialize, Deserialize)]
struct Watered {
    litres: u32,
}

#[flow]
impl Watered {
    #[step(next = end)]
    fn start(&mut self) {
        self.litres = 12;
        blooming_flowers::card()
            .markdown("# Watering")
            .chart(Chart::line("litres").series("bed 1", [3.0, 7.5, 12.0]));
    }
    #[step]
    fn end(&mut self) {}
}

const AS_FLOW: &str = "UI_COMMAND_AS_FLOW";

fn flow_binary() -> Command {
    let mut command = Command::new(std::env::current_exe().expect("this test binary"));
    command.env(AS_FLOW, "1").env_remove("BLOOMING_DATASTORE");
    command
}

/// Kills the server when the test ends, passed or not.
struct Server(std::process::Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn get(port: u16, path: &str) -> String {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    write!(stream, "GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").expect("request");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("response");
    response
}

/// One run of the flow in `root/datastore`, which it returns.
fn run_once(root: &Path) -> std::path::PathBuf {
    let datastore = root.join("datastore");
    let run = flow_binary()
        .arg("run")
        .arg("--datastore")
        .arg(&datastore)
        .output()
        .expect("run");
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    datastore
}

fn serves_the_ui_opened_at_the_flow(root: &Path) {
    let datastore = run_once(root);
    let help = flow_binary().arg("--help").output().expect("help");
    let help = String::from_utf8_lossy(&help.stdout);
    assert!(help.contains("ui ") && help.contains("web UI"), "{help}");

    let mut child = flow_binary()
        .args(["ui", "--port", "0", "--datastore"])
        .arg(&datastore)
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn");
    let stdout = child.stdout.take().expect("stdout");
    let server = Server(child);
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line).expect("line");
    let prefix = format!(
        "blooming ui: serving {} at http://127.0.0.1:",
        datastore.display()
    );
    assert!(line.starts_with(&prefix), "{line}");
    let (port, path) = line[prefix.len()..]
        .trim_end()
        .split_once('/')
        .expect("a path");
    assert_eq!(path, "flows/Watered");
    let port: u16 = port.parse().expect("port");
    let page = get(port, "/flows/Watered");
    assert!(page.starts_with("HTTP/1.0 200 OK"), "{page}");
    let runs = blooming_flowers::client::Client::open(&datastore)
        .expect("client")
        .flow("Watered")
        .run_ids()
        .expect("runs");
    assert_eq!(runs.len(), 1);
    assert!(
        page.contains(&format!("/flows/Watered/runs/{}", runs[0])),
        "{page}"
    );
    drop(server);
}

fn errors_exit_with_the_binarys_codes(root: &Path) {
    let missing = root.join("no-such-datastore");
    let out = flow_binary()
        .args(["ui", "--port", "0", "--datastore"])
        .arg(&missing)
        .output()
        .expect("ui");
    // As for the binary's other reading commands (`runs`, `dump`): a datastore that is not
    // there is bad input.
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let message = String::from_utf8_lossy(&out.stderr);
    assert!(message.contains("no-such-datastore"), "{message}");
    assert!(!missing.exists(), "a missing datastore is not created");
    for args in [&["ui", "--port", "http"][..], &["ui", "--bind", "nowhere"]] {
        let out = flow_binary().args(args).output().expect("ui");
        assert_eq!(out.status.code(), Some(2), "{args:?}: {out:?}");
    }
}

fn exports_a_card_to_a_file(root: &Path) {
    let datastore = run_once(root);
    let report = root.join("report.html");
    let out = flow_binary()
        .args(["card", "latest/start", "--output"])
        .arg(&report)
        .arg("--datastore")
        .arg(&datastore)
        .output()
        .expect("card");
    assert!(out.status.success(), "{out:?}");
    let html = std::fs::read_to_string(&report).expect("the report");
    assert!(html.contains("<h1>Watering</h1>"));
    assert!(
        html.contains("bed 1") && html.contains("7.5"),
        "the chart's data"
    );
    assert!(!html.contains("src=\"http") && !html.contains("href=\"http"));

    // To standard output, with the task named.
    let out = flow_binary()
        .args(["card", "latest/start/0", "--datastore"])
        .arg(&datastore)
        .output()
        .expect("card");
    assert!(out.status.success(), "{:?}", out.status);
    // The same page, but for the nonce of its scripts, fresh at each export.
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.starts_with("<!doctype html>"));
    assert_eq!(stdout.len(), html.len());
    assert!(stdout.contains("<h1>Watering</h1>"));

    for (path, code) in [
        ("latest", 2),
        ("latest/start/0/x", 2),
        ("latest/nope", 1),
        ("latest/end", 1),
    ] {
        let elsewhere = root.join(format!("{}.html", path.replace('/', "_")));
        let out = flow_binary()
            .args(["card", path, "--output"])
            .arg(&elsewhere)
            .arg("--datastore")
            .arg(&datastore)
            .output()
            .expect("card");
        assert_eq!(out.status.code(), Some(code), "{path}: {out:?}");
        assert!(!elsewhere.exists(), "{path}: nothing written");
    }
}

/// A test: its name and its body, given a directory of its own.
type Test = (&'static str, fn(&Path));

fn main() -> ExitCode {
    if std::env::var_os(AS_FLOW).is_some() {
        return blooming_flowers::main::<Watered>();
    }
    let root = Path::new(env!("CARGO_TARGET_TMPDIR")).join("ui-command");
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(&root).expect("root");
    let tests: [Test; 3] = [
        ("exports_a_card_to_a_file", exports_a_card_to_a_file),
        (
            "serves_the_ui_opened_at_the_flow",
            serves_the_ui_opened_at_the_flow,
        ),
        (
            "errors_exit_with_the_binarys_codes",
            errors_exit_with_the_binarys_codes,
        ),
    ];
    for (name, test) in tests {
        let dir = root.join(name);
        std::fs::create_dir_all(&dir).expect("dir");
        test(&dir);
        println!("test {name} ... ok");
    }
    ExitCode::SUCCESS
}
