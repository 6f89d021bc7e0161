//! `gc` over a datastore of many runs that share blobs: how long a collection takes, and that its
//! memory follows the number of blobs kept runs reference, not the number of runs.
//!
//! `TMPDIR=/dev/shm cargo bench --bench gc` (tmpfs: the figures are the collector's, not the
//! disk's). For each size (1,000 and 10,000 runs; `GC_BENCH_RUNS=N` for one size of your own),
//! it makes the runs with the real executor (every run shares its data set, and has values and
//! a checkpoint of its own), then times, in a process of its own each (this binary, started as
//! the flow's command line), and reads that process's peak resident memory (`VmHWM`):
//!
//! - `gc --keep-last 1000000 --dry-run`: every run kept, so every run is marked: memory grows
//!   with the blobs they reference;
//! - `gc --keep-last 100 --dry-run`: judging every run, marking the 100 kept, sweeping every blob;
//! - `gc --keep-last 100`: the same, deleting the other runs and their own blobs;
//! - `gc --keep-last 100` again: nothing to delete (a routine nightly collection).
//!
//! Both collections run with `--grace 0s`, so that the blobs of deleted runs go at once.

use std::path::Path;
use std::process::{Command, ExitCode, Stdio};
use std::time::Instant;

use blooming_flowers::cli::run_cli_with;
use blooming_flowers::current::current;
use blooming_flowers::prelude::*;

/// Set in the processes this benchmark starts as the flow's command line.
const AS_FLOW_ENV: &str = "GC_BENCH_AS_FLOW";

/// A small training-like flow: a shared data set, a value of the run's own, a checkpoint.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Nightly {
    data: Vec<u64>,
    own: String,
    score: u64,
}

#[flow]
impl Nightly {
    #[step(next = train)]
    fn start(&mut self) -> Result<(), String> {
        self.data = (0..1000).collect();
        self.own = current().ok_or("not in a task")?.pathspec();
        Ok(())
    }

    #[step(next = end)]
    fn train(&mut self) -> Result<(), String> {
        let task = current().ok_or("not in a task")?;
        task.checkpoint(&format!("{} halfway", self.own))
            .map_err(|e| e.to_string())?;
        self.score = self.data.iter().sum::<u64>() + self.own.len() as u64;
        Ok(())
    }

    #[step]
    fn end(&mut self) {}
}

/// This process's peak resident memory, in KiB, from `/proc/self/status`.
fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Makes `runs` runs in `datastore`, in this process; returns the seconds it took.
fn make_runs(datastore: &Path, runs: usize) -> Result<f64, String> {
    let started = Instant::now();
    for i in 0..runs {
        let argv = [
            "nightly",
            "--datastore",
            &datastore.to_string_lossy(),
            "run",
        ];
        let (mut out, mut err) = (Vec::new(), Vec::new());
        if run_cli_with::<Nightly, _, _>(argv, &mut out, &mut err) != 0 {
            return Err(format!("run {i} failed: {}", String::from_utf8_lossy(&err)));
        }
    }
    Ok(started.elapsed().as_secs_f64())
}

/// Runs `gc ARGS` in a process of its own: its seconds, peak memory (KiB) and output.
fn collect(datastore: &Path, args: &[&str]) -> Result<(f64, u64, String), String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let started = Instant::now();
    let output = Command::new(exe)
        .env(AS_FLOW_ENV, "1")
        .arg("--datastore")
        .arg(datastore)
        .arg("gc")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| e.to_string())?;
    let seconds = started.elapsed().as_secs_f64();
    let out = String::from_utf8_lossy(&output.stdout).into_owned();
    let err = String::from_utf8_lossy(&output.stderr).into_owned();
    if !output.status.success() {
        return Err(format!("gc {args:?} failed:\n{out}\n{err}"));
    }
    let peak = err
        .lines()
        .find_map(|l| l.strip_prefix("peak-rss-kib "))
        .and_then(|v| v.trim().parse().ok())
        .ok_or_else(|| format!("no peak memory reported:\n{err}"))?;
    Ok((seconds, peak, out))
}

/// The line of a `gc` report starting with `prefix`.
fn line<'a>(out: &'a str, prefix: &str) -> &'a str {
    out.lines()
        .find(|l| l.starts_with(prefix))
        .unwrap_or("(no such line)")
}

fn bench(runs: usize) -> Result<(), String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let datastore = dir.path().join("datastore");
    let made = make_runs(&datastore, runs)?;
    println!(
        "gc/{runs} runs: made in {made:.1} s ({:.2} ms a run)",
        made * 1000.0 / runs as f64
    );
    let keep = ["--keep-last", "100", "--grace", "0s"];
    let dry = ["--keep-last", "100", "--grace", "0s", "--dry-run"];
    let all = ["--keep-last", "1000000", "--grace", "0s", "--dry-run"];
    for (what, args) in [
        ("dry run, every run kept", &all[..]),
        ("dry run", &dry[..]),
        ("collection", &keep[..]),
        ("again", &keep[..]),
    ] {
        let (seconds, peak, out) = collect(&datastore, args)?;
        let runs_line = out
            .lines()
            .find(|l| l.starts_with("No run") || l.ends_with("of records and logs)."))
            .unwrap_or("(no summary of runs)");
        println!(
            "gc/{runs} runs/{what}: {seconds:.3} s, peak memory {:.1} MiB\n    {runs_line}\n    {}",
            peak as f64 / 1024.0,
            line(&out, "Blobs:")
        );
    }
    Ok(())
}

fn main() -> ExitCode {
    if std::env::var_os(AS_FLOW_ENV).is_some() {
        let code = blooming_flowers::main::<Nightly>();
        if let Some(peak) = peak_rss_kib() {
            eprintln!("peak-rss-kib {peak}");
        }
        return code;
    }
    // `cargo bench` passes `--bench`; a size of one's own comes from the environment.
    let sizes: Vec<usize> = match std::env::var("GC_BENCH_RUNS") {
        Ok(n) => match n.parse() {
            Ok(n) => vec![n],
            Err(_) => {
                eprintln!("GC_BENCH_RUNS={n:?} is not a number of runs");
                return ExitCode::FAILURE;
            }
        },
        Err(_) => vec![1_000, 10_000],
    };
    for runs in sizes {
        if let Err(e) = bench(runs) {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    }
    ExitCode::SUCCESS
}
