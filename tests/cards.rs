//! Cards end to end: a step writes its card (from its own thread and from a thread it spawns),
//! the executor stores it with the task, in threads mode and in `--process` mode, and the client
//! reads it back; a failed attempt's card is kept. The test binary is its own flow binary (as in
//! `cli_process.rs`): started with `--datastore` it is the flow's command line; started by
//! `cargo test`, it runs the checks below (this target has `harness = false`).

use std::ffi::OsString;
use std::path::Path;
use std::process::ExitCode;

use blooming_flowers::card::{Card, Chart, ChartKind, Component, Table};
use blooming_flowers::cli::{EXIT_FAILURE, EXIT_OK, run_cli_with};
use blooming_flowers::client::Client;
use blooming_flowers::current::current;
use blooming_flowers::prelude::*;

/// Set, `train` fails for x = 3 on every attempt (the run fails).
const FAIL_ENV: &str = "CARDS_FAIL_ALWAYS";

#[derive(Clone, Default, Serialize, Deserialize)]
struct Cards {
    xs: Vec<u32>,
    curve: Vec<f32>,
    pid: u32,
}

#[flow]
impl Cards {
    #[step(foreach = xs, next = train)]
    fn start(&mut self) {
        self.xs = vec![1, 2, 3];
        blooming_flowers::card().markdown("# Start <script>window.x = 1</script>");
    }

    /// Writes `x + 2` points of a loss curve. Attempt 0 of x = 2 fails after writing its card.
    #[step(next = gather, retries = 1)]
    fn train(&mut self, x: u32) -> Result<(), String> {
        let Some(task) = current() else {
            return Err("no current task".into());
        };
        self.curve = (0..x + 2).map(|e| 1.0 / (e as f32 + 1.0)).collect();
        self.pid = std::process::id();
        let curve = self.curve.clone();
        // A clone moved to another thread appends to the same card.
        let other = task.clone();
        std::thread::spawn(move || {
            other.card().chart(
                Chart::line("loss")
                    .x_label("epoch")
                    .series(format!("x={x}"), curve),
            );
        })
        .join()
        .map_err(|_| "the thread panicked".to_string())?;
        blooming_flowers::card()
            .markdown(format!("## attempt {}", task.attempt))
            .table(Table::new(["x", "points"]).row([x, x + 2]));
        let fail_always = std::env::var_os(FAIL_ENV).is_some();
        if (x == 2 && task.attempt == 0) || (x == 3 && fail_always) {
            return Err(format!("attempt {} of x={x} fails", task.attempt));
        }
        Ok(())
    }

    #[step(join, next = end)]
    fn gather(&mut self, _inputs: Inputs<Self>) {}

    #[step]
    fn end(&mut self) {}
}

fn cli(datastore: &Path, args: &[&str]) -> (u8, String) {
    let mut argv: Vec<OsString> = vec!["cards".into(), "--datastore".into(), datastore.into()];
    argv.extend(args.iter().map(OsString::from));
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let code = run_cli_with::<Cards, _, _>(argv, &mut out, &mut err);
    let text = format!(
        "--- stdout\n{}--- stderr\n{}",
        String::from_utf8_lossy(&out),
        String::from_utf8_lossy(&err)
    );
    (code, text)
}

fn ensure(ok: bool, what: impl std::fmt::Display) -> Result<(), String> {
    if ok { Ok(()) } else { Err(what.to_string()) }
}

fn chart_points(card: &Card) -> Option<(ChartKind, usize, String)> {
    card.components.iter().find_map(|c| match c {
        Component::Chart(chart) => chart
            .series
            .first()
            .map(|s| (chart.kind, s.y.len(), s.name.clone())),
        _ => None,
    })
}

/// Runs the flow with `extra` arguments and checks every task's card through the client.
fn run_and_read(dir: &Path, extra: &[&str]) -> Result<u32, String> {
    let mut args = vec!["run"];
    args.extend_from_slice(extra);
    let (code, out) = cli(dir, &args);
    ensure(code == EXIT_OK, format!("the run failed\n{out}"))?;
    let client = Client::open(dir).map_err(|e| e.to_string())?;
    let run = client
        .flow("Cards")
        .latest_run()
        .map_err(|e| e.to_string())?;

    let start = run.step("start").and_then(|s| s.task("0"));
    let start = start.map_err(|e| e.to_string())?;
    let card = start.card().map_err(|e| e.to_string())?;
    let card = card.ok_or("start has no card")?;
    ensure(
        card.components
            == vec![Component::Markdown(
                "# Start <script>window.x = 1</script>".into(),
            )],
        format!("start's card: {card:?}"),
    )?;

    let mut pid = 0;
    for (id, x) in [("0", 1_usize), ("1", 2), ("2", 3)] {
        let task = run.step("train").and_then(|s| s.task(id));
        let task = task.map_err(|e| e.to_string())?;
        pid = task.artifact::<u32>("pid").map_err(|e| e.to_string())?;
        let card = task.card().map_err(|e| e.to_string())?;
        let card = card.ok_or(format!("train/{id} has no card"))?;
        ensure(card.components.len() == 3, format!("train/{id}: {card:?}"))?;
        let points = chart_points(&card);
        ensure(
            points == Some((ChartKind::Line, x + 2, format!("x={x}"))),
            format!("train/{id}'s chart: {points:?}"),
        )?;
        let last = task.attempts().len() - 1;
        ensure(
            card.components
                .contains(&Component::Markdown(format!("## attempt {last}"))),
            format!("train/{id}'s card is its last attempt's: {card:?}"),
        )?;
    }
    // x = 2 failed once: its first attempt's card is kept, beside the second's.
    let task = run.step("train").and_then(|s| s.task("1"));
    let task = task.map_err(|e| e.to_string())?;
    let first = task.attempt_card(0).map_err(|e| e.to_string())?;
    let first = first.ok_or("the failed attempt's card is missing")?;
    ensure(
        first
            .components
            .contains(&Component::Markdown("## attempt 0".into())),
        format!("the failed attempt's card: {first:?}"),
    )?;
    // A step that wrote nothing has no card.
    let end = run.step("end").and_then(|s| s.task("0"));
    let card = end.map_err(|e| e.to_string())?.card();
    ensure(matches!(card, Ok(None)), format!("end's card: {card:?}"))?;
    Ok(pid)
}

fn threads_mode(dir: &Path) -> Result<(), String> {
    let pid = run_and_read(dir, &[])?;
    ensure(
        pid == std::process::id(),
        "threads mode ran in this process",
    )
}

fn process_mode(dir: &Path) -> Result<(), String> {
    let pid = run_and_read(dir, &["--process", "--max-workers", "2"])?;
    ensure(pid != std::process::id(), "process mode ran in a child")
}

/// A task that fails for good keeps its card, read through its listing entry.
fn failed_task_keeps_its_card(dir: &Path) -> Result<(), String> {
    // SAFETY: the checks run one after the other on this thread; no other thread reads the
    // environment meanwhile.
    unsafe { std::env::set_var(FAIL_ENV, "1") };
    let (code, out) = cli(dir, &["run"]);
    unsafe { std::env::remove_var(FAIL_ENV) };
    ensure(code == EXIT_FAILURE, format!("the run should fail\n{out}"))?;
    let client = Client::open(dir).map_err(|e| e.to_string())?;
    let run = client
        .flow("Cards")
        .latest_run()
        .map_err(|e| e.to_string())?;
    let entry = run.step("train").and_then(|s| s.task_entry("2"));
    let entry = entry.map_err(|e| e.to_string())?;
    let card = entry.card().map_err(|e| e.to_string())?;
    let card = card.ok_or("the failed task has no card")?;
    ensure(
        card.components
            .contains(&Component::Markdown("## attempt 1".into())),
        format!("the failed task's card is its last attempt's: {card:?}"),
    )?;
    ensure(chart_points(&card).map(|p| p.1) == Some(5), "its chart")
}

/// A card damaged in the datastore is an error naming it, not a panic or a wrong card.
fn damaged_card_is_an_error(dir: &Path) -> Result<(), String> {
    let client = Client::open(dir).map_err(|e| e.to_string())?;
    let run = client
        .flow("Cards")
        .latest_run()
        .map_err(|e| e.to_string())?;
    let path = dir
        .join("flows/Cards/runs")
        .join(run.id().as_str())
        .join("steps/start/0/attempt-0.card");
    std::fs::write(&path, b"\x93\x01").map_err(|e| format!("{}: {e}", path.display()))?;
    let task = run.step("start").and_then(|s| s.task("0"));
    let card = task.map_err(|e| e.to_string())?.card();
    match card {
        Err(e) => ensure(e.to_string().contains("damaged"), format!("message: {e}"))?,
        Ok(c) => return Err(format!("a damaged card was read: {c:?}")),
    }
    // One byte over the limit is refused before it is read whole, let alone decoded.
    let limit = usize::try_from(blooming_flowers::run::MAX_CARD_SIZE).map_err(|e| e.to_string())?;
    std::fs::write(&path, vec![0xc0; limit + 1]).map_err(|e| e.to_string())?;
    let task = run.step("start").and_then(|s| s.task("0"));
    let card = task.map_err(|e| e.to_string())?.card();
    match card {
        Err(e) => ensure(
            e.to_string().contains("more than the 16777216 expected"),
            format!("message: {e}"),
        ),
        Ok(c) => Err(format!("an oversized card was read: {c:?}")),
    }
}

type Check<'a> = Box<dyn Fn() -> Result<(), String> + 'a>;

fn main() -> ExitCode {
    let args: Vec<OsString> = std::env::args_os().collect();
    if args.get(1).is_some_and(|a| a == "--datastore") {
        // Started by the executor for one task.
        return blooming_flowers::main::<Cards>();
    }
    let dir = match tempfile::tempdir() {
        Ok(d) => d,
        Err(e) => {
            eprintln!("cannot make a temporary directory: {e}");
            return ExitCode::FAILURE;
        }
    };
    let threads = dir.path().join("threads");
    let process = dir.path().join("process");
    let tests: [(&str, Check<'_>); 4] = [
        ("threads_mode", Box::new(|| threads_mode(&threads))),
        ("process_mode", Box::new(|| process_mode(&process))),
        (
            "failed_task_keeps_its_card",
            Box::new(|| failed_task_keeps_its_card(&threads)),
        ),
        (
            "damaged_card_is_an_error",
            Box::new(|| damaged_card_is_an_error(&threads)),
        ),
    ];
    let mut failed = 0;
    for (name, test) in &tests {
        match test() {
            Ok(()) => println!("test {name} ... ok"),
            Err(e) => {
                failed += 1;
                println!("test {name} ... FAILED\n{e}");
            }
        }
    }
    println!("{} passed; {failed} failed", tests.len() - failed);
    if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
