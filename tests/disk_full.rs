//! A run on a file system that fills up: it fails saying "no space left" and naming the
//! datastore, every task it completed stays readable, nothing half-written is left, and after
//! space is freed `resume` completes with the results of an uninterrupted run.
//!
//! The file system is a 128 MiB ext4 image mounted through a loop device (so the large fields go
//! through the direct-I/O writer, as on a real disk), mostly taken by a filler file. Mounting
//! needs root: run as root (CI does), `cargo test -p blooming-flowers --test disk_full`. Without
//! root the test fails saying so; it never skips. It is not part of a plain `cargo test` for
//! that reason (`test = false` in Cargo.toml); `scripts/test-all` runs it.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;

use blooming_flowers::StateOwned;
use blooming_flowers::cli::run_cli_with;
use blooming_flowers::prelude::*;
use blooming_flowers::run::{Latest, RunStore};

/// Size of each item's field: past the 8 MiB spill threshold, so it is streamed to disk.
const FIELD_BYTES: usize = 9 << 20;
/// How many items the foreach has: about twice what the free space holds.
const ITEMS: u64 = 6;
/// Free space left beside the filler: room for some items, not all.
const FREE_BYTES: u64 = 30 << 20;

/// Each item writes a large field of its own: the disk fills in the middle of the foreach.
#[derive(Clone, Default, Serialize, Deserialize)]
struct Filling {
    xs: Vec<u64>,
    #[serde(with = "serde_bytes")]
    data: Vec<u8>,
    sum: u64,
    total: u64,
}

#[flow]
impl Filling {
    #[step(foreach = xs, next = fill)]
    fn start(&mut self) {
        self.xs = (0..ITEMS).collect();
    }

    #[step(next = gather)]
    fn fill(&mut self, x: u64) {
        self.data = (0..FIELD_BYTES)
            .map(|i| (i as u64).wrapping_mul(x + 3).to_le_bytes()[0])
            .collect();
        self.sum = self.data.iter().map(|&b| u64::from(b)).sum::<u64>() + x;
    }

    #[step(join, next = end)]
    fn gather(&mut self, inputs: Inputs<Self>) {
        self.total = inputs.iter().map(|i| i.sum).sum();
        self.data.clear();
    }

    #[step]
    fn end(&mut self) {}
}

/// Many small tasks: the disk fills during the small writes of a task's bookkeeping (its done
/// marker, its metadata, the run record), not during a large field.
#[derive(Clone, Default, Serialize, Deserialize)]
struct Trickle {
    xs: Vec<u64>,
    note: String,
    total: u64,
}

/// How many tasks the small-write run has: far more than the free space holds.
const TRICKLE_ITEMS: u64 = 400;
/// Free space for the small-write run: room for some tasks, not all.
const TRICKLE_FREE_BYTES: u64 = 60 << 10;

#[flow]
impl Trickle {
    #[step(foreach = xs, next = note)]
    fn start(&mut self) {
        self.xs = (0..TRICKLE_ITEMS).collect();
    }

    #[step(next = gather)]
    fn note(&mut self, x: u64) {
        self.note = format!("{x:0100}");
        self.total = x;
    }

    #[step(join, next = end)]
    fn gather(&mut self, inputs: Inputs<Self>) {
        self.total = inputs.iter().map(|i| i.total).sum();
        self.note.clear();
    }

    #[step]
    fn end(&mut self) {}
}

struct Output {
    code: u8,
    out: String,
    err: String,
}

impl std::fmt::Debug for Output {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit {}\n--- stdout\n{}--- stderr\n{}",
            self.code, self.out, self.err
        )
    }
}

fn cli(datastore: &Path, args: &[&str]) -> Output {
    cli_of::<Filling>(datastore, args)
}

fn cli_of<F: Flow>(datastore: &Path, args: &[&str]) -> Output {
    let mut argv: Vec<OsString> = vec!["flow".into(), "--datastore".into(), datastore.into()];
    argv.extend(args.iter().map(OsString::from));
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let code = run_cli_with::<F, _, _>(argv, &mut out, &mut err);
    Output {
        code,
        out: String::from_utf8_lossy(&out).into_owned(),
        err: String::from_utf8_lossy(&err).into_owned(),
    }
}

/// The effective user id, from `/proc/self/status`.
fn effective_uid() -> Option<u32> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("Uid:"))?;
    line.split_whitespace().nth(2)?.parse().ok()
}

fn sh(program: &str, args: &[&str]) {
    let output = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot start {program}: {e}"));
    assert!(
        output.status.success(),
        "{program} {args:?}: {}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
}

/// A small ext4 file system mounted through a loop device, unmounted when dropped (also when the
/// test fails).
struct SmallFileSystem {
    mount_point: PathBuf,
    _dir: tempfile::TempDir,
}

impl SmallFileSystem {
    fn mount(size_mib: u64) -> Self {
        assert_eq!(
            effective_uid(),
            Some(0),
            "the disk-full test needs root: it mounts a small file system (a loop-mounted ext4 \
             image). Run it as root, as CI does: sudo -E cargo test -p blooming-flowers --test \
             disk_full"
        );
        let dir = tempfile::tempdir().expect("temporary directory");
        let image = dir.path().join("fs.img");
        std::fs::File::create(&image)
            .and_then(|f| f.set_len(size_mib << 20))
            .expect("image file");
        let image = image.to_str().expect("a UTF-8 path");
        // No blocks reserved for root: the test runs as root and must see the disk full.
        sh("mkfs.ext4", &["-q", "-F", "-m", "0", image]);
        let mount_point = dir.path().join("mnt");
        std::fs::create_dir(&mount_point).expect("mount point");
        let target = mount_point.to_str().expect("a UTF-8 path");
        sh("mount", &["-o", "loop", image, target]);
        SmallFileSystem {
            mount_point,
            _dir: dir,
        }
    }

    fn free_bytes(&self) -> u64 {
        available_bytes(&self.mount_point)
            .unwrap_or_else(|e| panic!("free space of {}: {e}", self.mount_point.display()))
    }
}

/// Bytes available on the file system of `path`, from `df`.
fn available_bytes(path: &Path) -> Result<u64, String> {
    let output = Command::new("df")
        .args(["--output=avail", "-B1"])
        .arg(path)
        .output()
        .map_err(|e| e.to_string())?;
    let text = String::from_utf8_lossy(&output.stdout);
    text.lines()
        .nth(1)
        .and_then(|l| l.trim().parse().ok())
        .ok_or_else(|| format!("unexpected df output: {text}"))
}

impl Drop for SmallFileSystem {
    fn drop(&mut self) {
        // Lazy: a file still open somewhere must not keep the mount (and the loop device) alive.
        let _ = Command::new("umount")
            .arg("-l")
            .arg(&self.mount_point)
            .status();
    }
}

/// Every task of every run that has a done marker loads whole; returns how many did.
fn every_done_task_loads(store: &RunStore) -> Result<usize, String> {
    let mut complete = 0;
    for run in store.list_runs("Filling").map_err(|e| e.to_string())? {
        for step in store
            .list_steps("Filling", &run)
            .map_err(|e| e.to_string())?
        {
            for task in store
                .list_tasks("Filling", &run, &step)
                .map_err(|e| e.to_string())?
            {
                let key =
                    RunStore::task_key("Filling", &run, &step, &task).map_err(|e| e.to_string())?;
                let Some(index) = store
                    .read_index(&key)
                    .map_err(|e| format!("{run}/{step}/{task}: {e}"))?
                else {
                    continue;
                };
                store
                    .blobs()
                    .load_state::<StateOwned<Filling>>(&index.artifacts)
                    .map_err(|e| format!("{run}/{step}/{task}: {e}"))?;
                complete += 1;
            }
        }
    }
    Ok(complete)
}

/// Temporary files anywhere under `dir`.
fn temporary_files(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut dirs = vec![dir.to_path_buf()];
    while let Some(d) = dirs.pop() {
        for entry in std::fs::read_dir(&d).expect("list") {
            let entry = entry.expect("entry");
            if entry.file_type().expect("type").is_dir() {
                dirs.push(entry.path());
            } else if entry.file_name().to_string_lossy().starts_with(".tmp") {
                found.push(entry.path());
            }
        }
    }
    found
}

/// Takes `bytes` of the file system with the file `filler`: written, not sparse, so that the
/// space is really taken.
fn fill(filler: &Path, bytes: u64) {
    std::fs::File::create(filler)
        .and_then(|mut f| {
            let chunk = vec![0u8; 1 << 20];
            let mut left = bytes;
            while left > 0 {
                let n = left.min(chunk.len() as u64) as usize;
                std::io::Write::write_all(&mut f, &chunk[..n])?;
                left -= n as u64;
            }
            f.sync_all()
        })
        .expect("filler");
}

fn end_total(store: &RunStore, run: &str) -> u64 {
    let key = RunStore::task_key("Filling", run, "end", "0").expect("key");
    let index = store
        .read_index(&key)
        .expect("index")
        .expect("end completed");
    let state: StateOwned<Filling> = store
        .blobs()
        .load_state(&index.artifacts)
        .expect("end's state");
    state.0.total
}

#[test]
fn a_run_that_fills_the_disk_fails_clearly_keeps_its_tasks_and_resumes() {
    let fs = SmallFileSystem::mount(128);
    let datastore = fs.mount_point.join("datastore");
    // A filler that leaves room for some items' fields, not for all of them.
    let filler = fs.mount_point.join("filler");
    let free = fs.free_bytes();
    assert!(
        free > FREE_BYTES,
        "only {free} bytes free on the new file system"
    );
    fill(&filler, free - FREE_BYTES);

    let o = cli(&datastore, &["run", "--max-workers", "1"]);
    assert_ne!(o.code, 0, "the run must fail on a full disk\n{o:?}");
    assert!(
        o.err.to_lowercase().contains("no space left"),
        "the failure must say the disk is full\n{o:?}"
    );
    assert!(
        o.err.contains(&datastore.display().to_string()),
        "the failure must name the datastore\n{o:?}"
    );

    // Every completed task loads; some completed before the disk filled, not all.
    let store = RunStore::open_local(&datastore).expect("store");
    let complete = every_done_task_loads(&store).expect("completed tasks load");
    assert!(
        (2..(ITEMS as usize + 3)).contains(&complete),
        "{complete} tasks complete\n{o:?}"
    );
    let runs = cli(&datastore, &["runs"]);
    assert_eq!(runs.code, 0, "{runs:?}");
    let run_id = store
        .list_runs("Filling")
        .expect("runs")
        .pop()
        .expect("the failed run");
    assert!(
        runs.out
            .lines()
            .any(|l| l.starts_with(run_id.as_str()) && l.contains("failed")),
        "the run must be recorded as failed\n{runs:?}"
    );
    let dump = cli(
        &datastore,
        &[
            "dump",
            &format!("{run_id}/fill/0"),
            "--artifact",
            "sum",
            "--json",
        ],
    );
    assert_eq!(
        dump.code, 0,
        "a completed task's artifact must dump\n{dump:?}"
    );
    // Nothing half-written is left behind, visible or not.
    assert_eq!(temporary_files(&datastore), Vec::<PathBuf>::new());

    // Space freed: resume completes, with the results of an uninterrupted run.
    std::fs::remove_file(&filler).expect("remove the filler");
    let resumed = cli(&datastore, &["resume", "--max-workers", "1"]);
    assert_eq!(resumed.code, 0, "resume after space was freed\n{resumed:?}");
    let resumed_run = store
        .latest("Filling", Latest::Succeeded)
        .expect("latest")
        .expect("a successful run");
    every_done_task_loads(&store).expect("every task loads after the resume");

    let elsewhere = tempfile::tempdir().expect("temporary directory");
    let clean = cli(elsewhere.path(), &["run"]);
    assert_eq!(clean.code, 0, "{clean:?}");
    let clean_store = RunStore::open_local(elsewhere.path()).expect("store");
    let clean_run = clean_store
        .latest("Filling", Latest::Succeeded)
        .expect("latest")
        .expect("a successful run");
    assert_eq!(
        end_total(&store, &resumed_run),
        end_total(&clean_store, &clean_run)
    );
}

#[test]
fn a_disk_that_fills_during_small_writes_still_names_the_failed_task_and_resumes() {
    let fs = SmallFileSystem::mount(64);
    let datastore = fs.mount_point.join("datastore");
    let filler = fs.mount_point.join("filler");
    let free = fs.free_bytes();
    assert!(free > TRICKLE_FREE_BYTES, "only {free} bytes free");
    fill(&filler, free - TRICKLE_FREE_BYTES);

    let o = cli_of::<Trickle>(&datastore, &["run", "--max-workers", "1"]);
    assert_ne!(o.code, 0, "the run must fail on a full disk\n{o:?}");
    assert!(
        o.err.to_lowercase().contains("no space left"),
        "the failure must say the disk is full\n{o:?}"
    );
    assert!(
        o.err.contains(&datastore.display().to_string()),
        "the failure must name the datastore\n{o:?}"
    );
    // Which task failed is said first, even when the run's record cannot be updated either.
    assert!(
        o.err.contains("Task ") && o.err.contains(" failed:"),
        "the failure must name the task that failed\n{o:?}"
    );
    assert!(
        o.err.contains("Resume it with"),
        "the failure must say how to go on\n{o:?}"
    );
    let store = RunStore::open_local(&datastore).expect("store");
    for run in store.list_runs("Trickle").expect("runs") {
        for step in store.list_steps("Trickle", &run).expect("steps") {
            for task in store.list_tasks("Trickle", &run, &step).expect("tasks") {
                let key = RunStore::task_key("Trickle", &run, &step, &task).expect("key");
                if let Some(index) = store.read_index(&key).expect("a readable marker") {
                    store
                        .blobs()
                        .load_state::<StateOwned<Trickle>>(&index.artifacts)
                        .unwrap_or_else(|e| panic!("{run}/{step}/{task}: {e}"));
                }
            }
        }
    }
    assert_eq!(temporary_files(&datastore), Vec::<PathBuf>::new());

    std::fs::remove_file(&filler).expect("remove the filler");
    let resumed = cli_of::<Trickle>(&datastore, &["resume", "--max-workers", "1"]);
    assert_eq!(resumed.code, 0, "resume after space was freed\n{resumed:?}");
    let run = store
        .latest("Trickle", Latest::Succeeded)
        .expect("latest")
        .expect("a successful run");
    let key = RunStore::task_key("Trickle", &run, "end", "0").expect("key");
    let index = store
        .read_index(&key)
        .expect("index")
        .expect("end completed");
    let end: StateOwned<Trickle> = store.blobs().load_state(&index.artifacts).expect("end");
    assert_eq!(end.0.total, (0..TRICKLE_ITEMS).sum::<u64>());
}
