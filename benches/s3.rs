//! A 1 GiB `serde_bytes` field stored and reloaded through the datastore (`RunStore::blobs()`:
//! `store_state`, `load_state`) on S3 (the SeaweedFS of `scripts/services`, on loopback) and on a
//! local directory: the rate of each and the peak memory of the process doing it.
//!
//! `scripts/services exec -- cargo bench --features s3 --bench s3`
//!
//! Each measurement runs in a child process of its own (this binary again), so that each peak
//! (`VmHWM` of `/proc/self/status`) is that measurement's alone. The state is made before the
//! clock starts: a store's peak includes the 1 GiB value it stores, a reload's the 1 GiB value it
//! returns. Prints the median and range of a few rounds, the locations alternating.

use std::path::Path;
use std::process::{Command, ExitCode, Stdio};
use std::time::Instant;

use blooming_flowers::datastore::{ArtifactEntry, DatastoreLocation};
use blooming_flowers::prelude::{Deserialize, Serialize};
use blooming_flowers::run::RunStore;

/// Set in a child: `store` or `load`.
const CHILD_ENV: &str = "S3_BENCH_CHILD";
/// The datastore of a child.
const LOCATION_ENV: &str = "S3_BENCH_LOCATION";
/// Where a store child writes the artifacts and a load child reads them.
const ENTRIES_ENV: &str = "S3_BENCH_ENTRIES";
/// Tells the rounds' contents apart, so that every store writes a new blob.
const SEED_ENV: &str = "S3_BENCH_SEED";

const GIB: usize = 1 << 30;
const ROUNDS: usize = 3;

#[derive(Serialize, Deserialize)]
struct Big {
    #[serde(with = "serde_bytes")]
    bytes: Vec<u8>,
}

/// 1 GiB that no server compresses or deduplicates (xorshift), different for every seed.
fn content(seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut bytes = vec![0u8; GIB];
    for chunk in bytes.chunks_exact_mut(8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        chunk.copy_from_slice(&x.to_le_bytes());
    }
    bytes
}

/// This process's peak resident memory in bytes (`VmHWM`).
fn peak_memory() -> Result<u64, String> {
    let status = std::fs::read_to_string("/proc/self/status").map_err(|e| e.to_string())?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().strip_suffix("kB"))
        .and_then(|kb| kb.trim().parse::<u64>().ok())
        .map(|kb| kb * 1024)
        .ok_or_else(|| "no VmHWM in /proc/self/status".to_owned())
}

fn env(name: &str) -> Result<String, String> {
    std::env::var(name).map_err(|_| format!("{name} is not set"))
}

/// One measurement, in a child: prints `SECONDS PEAK_BYTES`.
fn child(what: &str) -> Result<(), String> {
    // `RUST_LOG=flow_runtime::datastore=debug` says where a store's time went.
    blooming_flowers::logs::install();
    let location = DatastoreLocation::parse(&env(LOCATION_ENV)?).map_err(|e| e.to_string())?;
    let store = RunStore::open(&location).map_err(|e| e.to_string())?;
    let entries_file = env(ENTRIES_ENV)?;
    let seconds = match what {
        "store" => {
            let seed: u64 = env(SEED_ENV)?.parse().map_err(|_| "bad seed")?;
            let big = Big {
                bytes: content(seed),
            };
            let started = Instant::now();
            let entries = store.blobs().store_state(&big).map_err(|e| e.to_string())?;
            let seconds = started.elapsed().as_secs_f64();
            let json = serde_json::to_vec(&entries).map_err(|e| e.to_string())?;
            std::fs::write(&entries_file, json).map_err(|e| e.to_string())?;
            seconds
        }
        "load" => {
            let json = std::fs::read(&entries_file).map_err(|e| e.to_string())?;
            let entries: Vec<ArtifactEntry> =
                serde_json::from_slice(&json).map_err(|e| e.to_string())?;
            let started = Instant::now();
            let big: Big = store
                .blobs()
                .load_state(&entries)
                .map_err(|e| e.to_string())?;
            let seconds = started.elapsed().as_secs_f64();
            if big.bytes.len() != GIB {
                return Err(format!("reloaded {} bytes", big.bytes.len()));
            }
            // The blob is not kept: the next round stores a new one.
            for entry in &entries {
                store
                    .storage()
                    .delete(&entry.hash.key())
                    .map_err(|e| e.to_string())?;
            }
            seconds
        }
        other => return Err(format!("no measurement `{other}`")),
    };
    println!("{seconds} {}", peak_memory()?);
    Ok(())
}

/// Runs measurement `what` on `location` in a child; its seconds and peak bytes.
fn measure(what: &str, location: &str, entries: &Path, seed: u64) -> Result<(f64, u64), String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let out = Command::new(exe)
        .env(CHILD_ENV, what)
        .env(LOCATION_ENV, location)
        .env(ENTRIES_ENV, entries)
        .env(SEED_ENV, seed.to_string())
        .stdin(Stdio::null())
        .output()
        .map_err(|e| e.to_string())?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        return Err(format!(
            "{what} on {location} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let mut fields = stdout.split_whitespace();
    match (
        fields.next().and_then(|s| s.parse().ok()),
        fields.next().and_then(|p| p.parse().ok()),
    ) {
        (Some(seconds), Some(peak)) => Ok((seconds, peak)),
        _ => Err(format!("{what} printed {stdout:?}")),
    }
}

/// `median [min, max]` of `values` (sorted here).
fn spread(values: &mut [f64], unit: &str) -> String {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    format!(
        "{:.0} {unit} [{:.0}, {:.0}]",
        values[n / 2],
        values[0],
        values[n - 1]
    )
}

fn main() -> ExitCode {
    if let Ok(what) = std::env::var(CHILD_ENV) {
        return match child(&what) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("{e}");
                ExitCode::FAILURE
            }
        };
    }
    if std::env::args().any(|a| a == "--list") {
        // `cargo test --benches` asks for the list of benchmarks: there is nothing to test here.
        return ExitCode::SUCCESS;
    }
    let Some(base) = std::env::var("BLOOMING_TEST_S3")
        .ok()
        .filter(|b| !b.is_empty())
    else {
        eprintln!(
            "this benchmark needs the S3 server: scripts/services exec -- cargo bench --features s3 --bench s3"
        );
        return ExitCode::FAILURE;
    };
    let Ok(dir) = tempfile::tempdir() else {
        eprintln!("cannot make a temporary directory");
        return ExitCode::FAILURE;
    };
    let unique = format!("bench-s3-{}", std::process::id());
    let locations = [
        (
            "S3 (SeaweedFS, loopback)",
            format!("{}/{unique}", base.trim_end_matches('/')),
        ),
        (
            "local directory",
            dir.path().join(&unique).to_string_lossy().into_owned(),
        ),
    ];
    let mut results: Vec<[Vec<f64>; 4]> = vec![Default::default(), Default::default()];
    let mb = GIB as f64 / 1e6;
    for round in 0..ROUNDS {
        for (i, (name, location)) in locations.iter().enumerate() {
            let entries = dir.path().join(format!("entries-{i}.json"));
            let seed = (round * locations.len() + i) as u64 + 1;
            let measured = measure("store", location, &entries, seed).and_then(|store| {
                measure("load", location, &entries, seed).map(|load| (store, load))
            });
            match measured {
                Ok(((store_s, store_peak), (load_s, load_peak))) => {
                    let r = &mut results[i];
                    r[0].push(mb / store_s);
                    r[1].push(store_peak as f64 / (1 << 20) as f64);
                    r[2].push(mb / load_s);
                    r[3].push(load_peak as f64 / (1 << 20) as f64);
                }
                Err(e) => {
                    eprintln!("{name}: {e}");
                    return ExitCode::FAILURE;
                }
            }
        }
    }
    println!(
        "1 GiB serde_bytes field, median [range] of {ROUNDS} rounds, each in a process of its own:"
    );
    for ((name, _), r) in locations.iter().zip(&mut results) {
        let [store_rate, store_peak, load_rate, load_peak] = r;
        println!(
            "{name:<25} store {} peak {} | reload {} peak {}",
            spread(store_rate, "MB/s"),
            spread(store_peak, "MiB"),
            spread(load_rate, "MB/s"),
            spread(load_peak, "MiB"),
        );
    }
    ExitCode::SUCCESS
}
