//! A foreach over 100 tasks on the local executor (in-process and process-per-task) and on
//! Slurm: what a cluster's job scheduling costs per task next to running here.
//!
//! Needs Slurm (and, with the `s3` feature, the S3 server for the Slurm runs' datastore), as
//! `scripts/services` provides them:
//! `scripts/services exec -- cargo bench --features s3 --bench cluster`.
//! Prints the median and range of three whole runs (`run` of this binary, start to exit) of each.

use std::path::Path;
use std::process::{Command, ExitCode, Stdio};
use std::time::Instant;

#[allow(dead_code)]
#[path = "../examples/fanout.rs"]
mod fanout;

const AS_FLOW_ENV: &str = "CLUSTER_BENCH_AS_FLOW";
const ITEMS: &str = "100";
const ROUNDS: usize = 3;

fn datastore(dir: &Path, name: &str, round: usize) -> String {
    let unique = format!("{name}-{round}-{}", std::process::id());
    match std::env::var("BLOOMING_TEST_S3") {
        Ok(base) if cfg!(feature = "s3") && !base.is_empty() && name == "slurm" => {
            format!("{}/bench/{unique}", base.trim_end_matches('/'))
        }
        _ => dir.join(unique).to_string_lossy().into_owned(),
    }
}

fn time_run(datastore: &str, mode: &[&str]) -> Result<f64, String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let started = Instant::now();
    let output = Command::new(exe)
        .env(AS_FLOW_ENV, "1")
        .args(["--datastore", datastore, "run", "--items", ITEMS])
        .args(mode)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| e.to_string())?;
    let seconds = started.elapsed().as_secs_f64();
    if !output.status.success() {
        return Err(format!(
            "the run failed: {}",
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    Ok(seconds)
}

fn main() -> ExitCode {
    if std::env::var_os(AS_FLOW_ENV).is_some() {
        return blooming_flowers::main::<fanout::Fanout>();
    }
    if std::env::args().any(|a| a == "--list") {
        // `cargo test --benches` asks for the list of benchmarks: there is nothing to test here.
        return ExitCode::SUCCESS;
    }
    if std::env::var_os("BLOOMING_SLURM").is_none() {
        eprintln!(
            "this benchmark needs Slurm: scripts/services exec -- cargo bench --features s3 --bench cluster"
        );
        return ExitCode::FAILURE;
    }
    let Ok(dir) = tempfile::tempdir() else {
        eprintln!("cannot make a temporary directory");
        return ExitCode::FAILURE;
    };
    let modes: [(&str, &[&str]); 3] = [
        ("in-process", &[]),
        ("process", &["--process"]),
        ("slurm", &["--slurm"]),
    ];
    for (name, mode) in modes {
        let mut times = Vec::new();
        for round in 0..ROUNDS {
            match time_run(&datastore(dir.path(), name, round), mode) {
                Ok(t) => times.push(t),
                Err(e) => {
                    eprintln!("{name}: {e}");
                    return ExitCode::FAILURE;
                }
            }
        }
        times.sort_by(f64::total_cmp);
        println!(
            "foreach over {ITEMS} tasks, {name:<10}: median {:.2} s [{:.2}, {:.2}] over {ROUNDS} runs",
            times[ROUNDS / 2],
            times[0],
            times[ROUNDS - 1]
        );
    }
    ExitCode::SUCCESS
}
