//! The `blooming` binary itself: it serves a datastore on a real socket, and its errors exit
//! with the documented codes.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};

use common::fixture;

const BIN: &str = env!("CARGO_BIN_EXE_blooming");

/// Kills the server when the test ends, passed or not.
struct Server(std::process::Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn blooming_ui_serves_the_datastore_on_the_port_it_prints() {
    let f = fixture();
    let mut child = Command::new(BIN)
        .args(["ui", "--port", "0", "--datastore"])
        .arg(&f.datastore)
        .env_remove("BLOOMING_DATASTORE")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn");
    let stdout = child.stdout.take().expect("stdout");
    let server = Server(child);
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line).expect("line");
    let prefix = format!(
        "blooming ui: serving {} at http://127.0.0.1:",
        f.datastore.display()
    );
    assert!(line.starts_with(&prefix), "{line}");
    let port: u16 = line[prefix.len()..]
        .trim_end()
        .trim_end_matches('/')
        .parse()
        .expect("port");
    assert_ne!(port, 0);

    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    stream
        .write_all(b"GET / HTTP/1.0\r\nHost: localhost\r\n\r\n")
        .expect("request");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("response");
    assert!(response.starts_with("HTTP/1.0 200 OK"), "{response}");
    assert!(
        response.contains("<a href=\"/flows/Shapes\">Shapes</a>"),
        "{response}"
    );
    drop(server);
}

#[test]
fn a_missing_datastore_exits_1_and_bad_arguments_exit_2() {
    let root = fixture().root.join("no-such-datastore");
    let missing = Command::new(BIN)
        .args(["ui", "--port", "0", "--datastore"])
        .arg(&root)
        .output()
        .expect("run");
    assert_eq!(missing.status.code(), Some(1));
    let message = String::from_utf8_lossy(&missing.stderr);
    assert!(message.contains("no datastore at"), "{message}");
    assert!(!root.exists(), "a missing datastore is not created");

    for args in [
        &["ui", "--port", "http"][..],
        &["ui", "--bind", "nowhere"],
        &["serve"],
    ] {
        let bad = Command::new(BIN).args(args).output().expect("run");
        assert_eq!(bad.status.code(), Some(2), "{args:?}");
    }
}

/// `blooming card` with `args` after it, over the fixture's datastore, in `dir`.
fn card(dir: &std::path::Path, args: &[&str]) -> std::process::Output {
    Command::new(BIN)
        .arg("card")
        .args(args)
        .arg("--datastore")
        .arg(&fixture().datastore)
        .env_remove("BLOOMING_DATASTORE")
        .current_dir(dir)
        .output()
        .expect("run")
}

#[test]
fn blooming_card_exports_one_file_and_refuses_bad_paths() {
    let f = fixture();
    let dir = f.root.join("card-export");
    std::fs::create_dir_all(&dir).expect("dir");
    let out = dir.join("report.html");

    let ok = card(&dir, &["Reported/latest/start", "--output", "report.html"]);
    assert_eq!(ok.status.code(), Some(0), "{ok:?}");
    let html = std::fs::read_to_string(&out).expect("the file");
    assert!(html.starts_with("<!doctype html>"), "{html}");
    assert!(html.contains(common::CARD_HEADING), "{html}");
    assert!(html.contains(common::CARD_SERIES), "{html}");
    assert!(
        !html.contains("src=\"http") && !html.contains("<link"),
        "{html}"
    );

    // No --output: standard output, and the same card.
    let stdout = card(&dir, &[&format!("Reported/{}/start/0", f.reported)]);
    assert_eq!(stdout.status.code(), Some(0), "{stdout:?}");
    let printed = String::from_utf8_lossy(&stdout.stdout);
    assert!(printed.contains(common::CARD_HEADING), "{printed}");

    std::fs::remove_file(&out).expect("remove");
    for (path, code, says) in [
        ("Reported/latest", 2, "is not FLOW/RUN/STEP"),
        ("Reported/latest/start/0/x", 2, "is not FLOW/RUN/STEP"),
        ("Reported//start", 2, "is not FLOW/RUN/STEP"),
        ("Reported/latest/../0", 2, ".."),
        ("Reported/nope/start", 1, "no run"),
        ("Reported/latest/start/7", 1, "no task"),
        ("Reported/latest/end", 1, "wrote no card"),
        ("Nobody/latest/start", 1, "no runs"),
    ] {
        let failed = card(&dir, &[path, "--output", "report.html"]);
        let message = String::from_utf8_lossy(&failed.stderr);
        assert_eq!(failed.status.code(), Some(code), "{path}: {message}");
        assert!(message.contains(says), "{path}: {message}");
        assert!(!out.exists(), "{path}: nothing is written");
    }
    let listed: Vec<_> = std::fs::read_dir(&dir).expect("dir").collect();
    assert!(
        listed.is_empty(),
        "only --output is ever written: {listed:?}"
    );
}
