//! The S3 server stops in the middle of a run: the run fails with a clear error naming the
//! endpoint, nothing half-written is visible, and `resume` once the server is back completes
//! with results equal to an uninterrupted run.
//!
//! The shared test server cannot be stopped under the other tests, so this test starts a
//! SeaweedFS of its own (`weed mini`, the binary `scripts/services` installs, named by
//! `BLOOMING_WEED`) on other ports, with a data directory of its own, stops it mid-run and
//! starts it again on the same data. Run it as `scripts/services exec -- cargo test --features
//! s3 --test s3_outage`; without `BLOOMING_WEED` it fails, it never skips.
//!
//! The test binary is its own flow binary (`harness = false`): the run and the resume are child
//! processes, as a user would start them.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use blooming_flowers::client::Client;
use blooming_flowers::datastore::{DatastoreLocation, Key};
use blooming_flowers::prelude::*;
use blooming_flowers::run::RunStore;

/// Set, this binary is the flow's binary whatever its arguments.
const FLOW_ENV: &str = "S3_OUTAGE_FLOW";
/// A directory through which the waiting task and the test signal each other.
const SIGNAL_ENV: &str = "S3_OUTAGE_SIGNALS";
/// The SeaweedFS binary.
const WEED_ENV: &str = "BLOOMING_WEED";

/// The private server's S3 port; every other port of `weed mini` is derived from it, clear of
/// the shared server's defaults.
const S3_PORT: u16 = 28333;
const BUCKET: &str = "blooming-outage";
const ACCESS_KEY: &str = "blooming-outage-access-key";
const SECRET_KEY: &str = "blooming-outage-secret-key";

/// The element whose task waits for the server to go away.
const WAITING: u64 = 3;

#[derive(Clone, Default, Serialize, Deserialize)]
struct Outage {
    xs: Vec<u64>,
    y: u64,
    ys: Vec<u64>,
}

#[flow]
impl Outage {
    #[step(foreach = xs, next = work)]
    fn start(&mut self) {
        self.xs = (0..6).collect();
    }

    /// Element [`WAITING`] says it runs, then waits until the test has stopped the server.
    #[step(next = gather)]
    fn work(&mut self, x: u64) -> Result<(), String> {
        if x == WAITING
            && let Ok(dir) = std::env::var(SIGNAL_ENV)
        {
            let dir = PathBuf::from(dir);
            std::fs::write(dir.join("running"), b"").map_err(|e| e.to_string())?;
            let deadline = Instant::now() + Duration::from_secs(120);
            while !dir.join("proceed").exists() {
                if Instant::now() > deadline {
                    return Err("the test never said to proceed".into());
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        self.y = x * x;
        Ok(())
    }

    #[step(join, next = end)]
    fn gather(&mut self, inputs: Inputs<Self>) {
        self.ys = inputs.iter().map(|i| i.y).collect();
    }

    #[step]
    fn end(&mut self) {}
}

type Check = Result<(), String>;

fn err(e: impl std::fmt::Display) -> String {
    e.to_string()
}

fn ensure(ok: bool, what: impl FnOnce() -> String) -> Check {
    if ok { Ok(()) } else { Err(what()) }
}

/// A private SeaweedFS: started on creation, stopped (gracefully, as an operator would) on
/// [`Server::stop`] or drop.
struct Server {
    weed: PathBuf,
    dir: PathBuf,
    child: Option<Child>,
}

impl Server {
    fn start(weed: &Path, dir: &Path) -> Result<Server, String> {
        let mut server = Server {
            weed: weed.to_path_buf(),
            dir: dir.to_path_buf(),
            child: None,
        };
        server.restart()?;
        Ok(server)
    }

    fn restart(&mut self) -> Check {
        let data = self.dir.join("data");
        std::fs::create_dir_all(&data).map_err(err)?;
        let config = self.dir.join("s3.json");
        let identities = serde_json::json!({ "identities": [{
            "name": "outage",
            "credentials": [{ "accessKey": ACCESS_KEY, "secretKey": SECRET_KEY }],
            "actions": ["Admin", "Read", "List", "Tagging", "Write"],
        }]});
        std::fs::write(&config, identities.to_string()).map_err(err)?;
        let log = std::fs::File::create(self.dir.join("weed.log")).map_err(err)?;
        let port = |offset: u16| (S3_PORT + offset).to_string();
        let child = Command::new(&self.weed)
            .arg("mini")
            .arg(format!("-dir={}", data.display()))
            .args(["-ip=127.0.0.1", "-ip.bind=127.0.0.1"])
            .arg(format!("-s3.port={}", S3_PORT))
            .arg(format!("-s3.port.grpc={}", port(1)))
            .arg(format!("-master.port={}", port(2)))
            .arg(format!("-master.port.grpc={}", port(3)))
            .arg(format!("-volume.port={}", port(4)))
            .arg(format!("-volume.port.grpc={}", port(5)))
            .arg(format!("-filer.port={}", port(6)))
            .arg(format!("-filer.port.grpc={}", port(7)))
            .arg(format!("-admin.port={}", port(8)))
            .arg(format!("-admin.port.grpc={}", port(9)))
            .arg(format!("-debug.port={}", port(10)))
            .arg(format!("-s3.debug.port={}", port(11)))
            .arg(format!("-s3.config={}", config.display()))
            .arg(format!("-bucket={BUCKET}"))
            .args([
                "-admin.ui=false",
                "-webdav=false",
                "-master.telemetry=false",
            ])
            .args(["-s3.port.iceberg=0", "-s3.port.lance=0"])
            .arg(format!(
                "-filer.localSocket={}",
                self.dir.join("filer.sock").display()
            ))
            .arg(format!(
                "-s3.localSocket={}",
                self.dir.join("s3.sock").display()
            ))
            .stdin(Stdio::null())
            .stdout(log.try_clone().map_err(err)?)
            .stderr(log)
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", self.weed.display()))?;
        self.child = Some(child);
        self.wait_ready()
    }

    /// Waits until the bucket answers: a datastore opens on it.
    fn wait_ready(&mut self) -> Check {
        let deadline = Instant::now() + Duration::from_secs(90);
        let location = location("ready")?;
        loop {
            if let Some(child) = &mut self.child
                && let Ok(Some(status)) = child.try_wait()
            {
                let log = std::fs::read_to_string(self.dir.join("weed.log")).unwrap_or_default();
                let tail: Vec<&str> = log.lines().rev().take(20).collect();
                let tail: Vec<&str> = tail.into_iter().rev().collect();
                return Err(format!(
                    "weed exited with {status}; the end of its log:\n{}",
                    tail.join("\n")
                ));
            }
            // The bucket answers before its volumes do: wait until an object goes in and out.
            let probe = RunStore::open(&location).map_err(err).and_then(|store| {
                let key = Key::segment("probe").map_err(err)?;
                store.storage().put(&key, b"probe").map_err(err)?;
                store.storage().get(&key).map_err(err)
            });
            match probe {
                Ok(_) => return Ok(()),
                Err(e) if Instant::now() > deadline => {
                    return Err(format!("the private S3 server never became ready: {e}"));
                }
                Err(_) => std::thread::sleep(Duration::from_millis(200)),
            }
        }
    }

    /// Stops the server with SIGTERM and waits for it to exit.
    fn stop(&mut self) -> Check {
        let Some(mut child) = self.child.take() else {
            return Ok(());
        };
        let pid = libc_pid(&child);
        let status = Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .map_err(err)?;
        if !status.success() {
            child.kill().map_err(err)?;
        }
        child.wait().map_err(err)?;
        Ok(())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn libc_pid(child: &Child) -> String {
    child.id().to_string()
}

fn endpoint() -> String {
    format!("http://127.0.0.1:{S3_PORT}")
}

fn location(prefix: &str) -> Result<DatastoreLocation, String> {
    DatastoreLocation::parse(&format!("s3://{BUCKET}/{prefix}")).map_err(err)
}

struct Output {
    code: i32,
    out: String,
    err: String,
}

impl Output {
    fn show(&self) -> String {
        format!(
            "exit {}\n--- stdout\n{}--- stderr\n{}",
            self.code, self.out, self.err
        )
    }
}

/// This binary as the flow's binary, in a child process.
fn flow_binary(args: &[&str], signals: Option<&Path>) -> Result<Child, String> {
    let exe = std::env::current_exe().map_err(err)?;
    let mut command = Command::new(exe);
    command
        .args(args)
        .env(FLOW_ENV, "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(dir) = signals {
        command.env(SIGNAL_ENV, dir);
    }
    command.spawn().map_err(err)
}

fn finish(child: Child) -> Result<Output, String> {
    let output = child.wait_with_output().map_err(err)?;
    Ok(Output {
        code: output.status.code().unwrap_or(-1),
        out: String::from_utf8_lossy(&output.stdout).into_owned(),
        err: String::from_utf8_lossy(&output.stderr).into_owned(),
    })
}

/// Every task's artifacts (step, task, name, blob hash, size) of `run_id`, in order.
fn fingerprint(client: &Client, run_id: &str) -> Result<Vec<String>, String> {
    let run = client.flow("Outage").run(run_id).map_err(err)?;
    let mut lines = Vec::new();
    for step in run.steps().map_err(err)? {
        for task in step.tasks().map_err(err)? {
            for a in task.artifacts().map_err(err)? {
                lines.push(format!(
                    "{}/{} {} {} {}",
                    step.name(),
                    task.id(),
                    a.name,
                    a.hash,
                    a.size
                ));
            }
        }
    }
    Ok(lines)
}

fn the_server_stopping_mid_run_fails_it_clearly_and_resume_completes_it(weed: &Path) -> Check {
    let scratch = tempfile::tempdir().map_err(err)?;
    let mut server = Server::start(weed, &scratch.path().join("server"))?;

    // The reference: an uninterrupted run on the same server.
    let reference = location("reference")?.to_string();
    let plain = finish(flow_binary(&["--datastore", &reference, "run"], None)?)?;
    ensure(plain.code == 0, || plain.show())?;

    let outage = location("outage")?.to_string();
    let signals = scratch.path().join("signals");
    std::fs::create_dir_all(&signals).map_err(err)?;
    let run = flow_binary(
        &["--datastore", &outage, "run", "--max-workers", "1"],
        Some(&signals),
    )?;
    let deadline = Instant::now() + Duration::from_secs(120);
    while !signals.join("running").exists() {
        if Instant::now() > deadline {
            return Err("the waiting task never started".into());
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    server.stop()?;
    std::fs::write(signals.join("proceed"), b"").map_err(err)?;
    let started = Instant::now();
    let failed = finish(run)?;
    let took = started.elapsed();
    ensure(failed.code != 0, || {
        format!("the run succeeded without its server\n{}", failed.show())
    })?;
    ensure(failed.err.contains(&format!("127.0.0.1:{S3_PORT}")), || {
        format!("the error does not name the endpoint\n{}", failed.show())
    })?;
    println!("  the run failed {took:.1?} after the server stopped");

    server.restart()?;
    let client = Client::open_location(&location("outage")?).map_err(err)?;
    let run_id = client
        .flow("Outage")
        .latest_run()
        .map_err(err)?
        .id()
        .to_string();
    ensure(failed.err.contains(&run_id), || {
        format!("the error does not name run {run_id}\n{}", failed.show())
    })?;
    // Nothing half-written: every task that has a done marker loads whole; the waiting task
    // has none.
    let run = client.flow("Outage").run(&run_id).map_err(err)?;
    let mut complete = 0;
    for step in run.steps().map_err(err)? {
        for task in step.tasks().map_err(err)? {
            if !task.is_done() {
                continue;
            }
            complete += 1;
            task.state::<Outage>()
                .map_err(|e| format!("{}/{}: {e}", step.name(), task.id()))?;
        }
    }
    ensure(complete == 1 + WAITING as usize, || {
        format!("{complete} complete tasks; expected start and the elements before the waiting one")
    })?;
    // The interrupted task left no done marker: it may have left nothing at all (its failure
    // could not be recorded either), or a record of its failure.
    if let Ok(waiting) = run.step("work").and_then(|s| s.task(&WAITING.to_string())) {
        ensure(!waiting.is_done(), || {
            "the interrupted task is complete".into()
        })?;
    }
    println!("  {}", failed.err.trim().replace('\n', "\n  "));

    let resumed = finish(flow_binary(
        &["--datastore", &outage, "resume", "--origin-run-id", &run_id],
        None,
    )?)?;
    ensure(resumed.code == 0, || resumed.show())?;
    let resumed_id = client
        .flow("Outage")
        .latest_run()
        .map_err(err)?
        .id()
        .to_string();
    ensure(resumed_id != run_id, || "resume made no new run".into())?;
    let reference_client = Client::open_location(&location("reference")?).map_err(err)?;
    let reference_id = reference_client
        .flow("Outage")
        .latest_run()
        .map_err(err)?
        .id()
        .to_string();
    let expected = fingerprint(&reference_client, &reference_id)?;
    let got = fingerprint(&client, &resumed_id)?;
    ensure(expected == got, || {
        format!(
            "the resumed run differs from an uninterrupted one\nexpected:\n{}\ngot:\n{}\n{}",
            expected.join("\n"),
            got.join("\n"),
            resumed.show()
        )
    })?;
    server.stop()
}

fn main() -> ExitCode {
    if std::env::var_os(FLOW_ENV).is_some() {
        return blooming_flowers::main::<Outage>();
    }
    // Single-threaded here: nothing else reads the environment yet, and the children inherit it.
    unsafe {
        std::env::set_var("AWS_ENDPOINT_URL", endpoint());
        std::env::set_var("AWS_ACCESS_KEY_ID", ACCESS_KEY);
        std::env::set_var("AWS_SECRET_ACCESS_KEY", SECRET_KEY);
        std::env::set_var("AWS_REGION", "us-east-1");
        std::env::set_var("AWS_ALLOW_HTTP", "true");
    }
    let args: Vec<OsString> = std::env::args_os().skip(1).collect();
    let name = "the_server_stopping_mid_run_fails_it_clearly_and_resume_completes_it";
    if args.iter().any(|a| a == "--list") {
        println!("{name}: test");
        return ExitCode::SUCCESS;
    }
    let result = match std::env::var_os(WEED_ENV) {
        None => Err(format!(
            "{WEED_ENV} is not set: this test needs SeaweedFS. Run it as `scripts/services exec \
             -- cargo test --features s3 --test s3_outage`"
        )),
        Some(weed) => {
            the_server_stopping_mid_run_fails_it_clearly_and_resume_completes_it(Path::new(&weed))
        }
    };
    match result {
        Ok(()) => {
            println!("test {name} ... ok\n1 passed, 0 failed");
            ExitCode::SUCCESS
        }
        Err(e) => {
            println!("test {name} ... FAILED\n{e}\n0 passed, 1 failed");
            ExitCode::FAILURE
        }
    }
}
