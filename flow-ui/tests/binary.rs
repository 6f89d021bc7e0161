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
