//! A task's process killed with SIGKILL in the middle of its work, then `resume`: the resumed run
//! ends with the results of an uninterrupted run, and no reader ever sees half a task.
//!
//! The test binary is its own flow binary (this target has `harness = false`): the executor
//! starts each task as `this-binary --datastore … step …`.

use std::ffi::OsString;
use std::path::Path;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use blooming_flowers::StateOwned;
use blooming_flowers::cli::run_cli_with;
use blooming_flowers::prelude::*;
use blooming_flowers::run::{Latest, RunStore};

/// Names a file whose existence makes `work` kill its own process for element 4.
const KILL_FILE_ENV: &str = "CRASH_SAFETY_KILL_FILE";

#[derive(Clone, Default, Serialize, Deserialize)]
struct Crashy {
    xs: Vec<u64>,
    /// Large enough that storing it takes a while: the kill may land while it is written.
    payload: Vec<u8>,
    value: u64,
    total: u64,
}

#[flow]
impl Crashy {
    #[step(foreach = xs, next = work)]
    fn start(&mut self) {
        self.xs = (0..6).collect();
    }

    #[step(next = gather)]
    fn work(&mut self, x: u64) {
        self.payload = (0..4_000_000u32)
            .map(|i| (i as u64 * (x + 1)) as u8)
            .collect();
        self.value = x * 10 + 1;
        let kill = std::env::var_os(KILL_FILE_ENV).is_some_and(|f| Path::new(&f).exists());
        if x == 4 && kill {
            // SIGKILL from another thread a moment later: the task is somewhere between its
            // computation and its last write when the process disappears.
            let pid = std::process::id().to_string();
            std::thread::spawn(move || {
                std::thread::sleep(std::time::Duration::from_millis(3));
                let _ = std::process::Command::new("kill")
                    .args(["-9", &pid])
                    .status();
            });
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
    }

    #[step(join, next = end)]
    fn gather(&mut self, inputs: Inputs<Self>) {
        self.total = inputs
            .iter()
            .map(|i| i.value + i.payload.iter().map(|&b| b as u64).sum::<u64>())
            .sum();
        self.payload.clear();
    }

    #[step]
    fn end(&mut self) {}
}

fn cli(datastore: &Path, args: &[&str]) -> (u8, String, String) {
    let mut argv: Vec<OsString> = vec!["crashy".into(), "--datastore".into(), datastore.into()];
    argv.extend(args.iter().map(OsString::from));
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let code = run_cli_with::<Crashy, _, _>(argv, &mut out, &mut err);
    (
        code,
        String::from_utf8_lossy(&out).into_owned(),
        String::from_utf8_lossy(&err).into_owned(),
    )
}

/// Every task of every run that has a done marker loads whole; returns how many did.
fn every_done_task_loads(store: &RunStore) -> Result<usize, String> {
    let mut complete = 0;
    for run in store.list_runs("Crashy").map_err(|e| e.to_string())? {
        for step in store
            .list_steps("Crashy", &run)
            .map_err(|e| e.to_string())?
        {
            for task in store
                .list_tasks("Crashy", &run, &step)
                .map_err(|e| e.to_string())?
            {
                let key =
                    RunStore::task_key("Crashy", &run, &step, &task).map_err(|e| e.to_string())?;
                let Some(index) = store
                    .read_index(&key)
                    .map_err(|e| format!("{run}/{step}/{task}: {e}"))?
                else {
                    continue;
                };
                store
                    .blobs()
                    .load_state::<StateOwned<Crashy>>(&index.artifacts)
                    .map_err(|e| {
                        format!("a reader saw a half-written task {run}/{step}/{task}: {e}")
                    })?;
                complete += 1;
            }
        }
    }
    Ok(complete)
}

fn end_total(store: &RunStore, run: &str) -> Result<u64, String> {
    let key = RunStore::task_key("Crashy", run, "end", "0").map_err(|e| e.to_string())?;
    let index = store
        .read_index(&key)
        .map_err(|e| e.to_string())?
        .ok_or("end did not complete")?;
    let state = store
        .blobs()
        .load_state::<StateOwned<Crashy>>(&index.artifacts)
        .map_err(|e| e.to_string())?;
    Ok(state.0.total)
}

fn killed_task_then_resume(dir: &Path) -> Result<(), String> {
    let kill_file = dir.join("kill");
    std::fs::write(&kill_file, b"").map_err(|e| e.to_string())?;
    unsafe { std::env::set_var(KILL_FILE_ENV, &kill_file) };
    let datastore = dir.join("store");
    let store = RunStore::open_local(&datastore).map_err(|e| e.to_string())?;

    // A reader polls the datastore the whole time the run is being killed.
    let stop = AtomicBool::new(false);
    let reads = AtomicUsize::new(0);
    let (code, out, err, reader) = std::thread::scope(|s| {
        let reader = s.spawn(|| -> Result<(), String> {
            while !stop.load(Ordering::SeqCst) {
                every_done_task_loads(&store)?;
                reads.fetch_add(1, Ordering::SeqCst);
            }
            Ok(())
        });
        let (code, out, err) = cli(&datastore, &["run", "--process", "--max-workers", "2"]);
        stop.store(true, Ordering::SeqCst);
        (code, out, err, reader.join())
    });
    reader.map_err(|_| "the reader thread panicked".to_string())??;
    if code != 1 || !err.contains("work/4") {
        return Err(format!(
            "the killed task must fail the run\nexit {code}\n{out}\n{err}"
        ));
    }
    if !err.contains("without completing the task") {
        return Err(format!("the failure must say the process died: {err}"));
    }
    let failed_run = store
        .latest("Crashy", Latest::Any)
        .map_err(|e| e.to_string())?
        .ok_or("no run")?;
    let killed =
        RunStore::task_key("Crashy", &failed_run, "work", "4").map_err(|e| e.to_string())?;
    if store
        .read_index(&killed)
        .map_err(|e| e.to_string())?
        .is_some()
    {
        return Err("the killed task must not be complete".into());
    }
    every_done_task_loads(&store)?;

    std::fs::remove_file(&kill_file).map_err(|e| e.to_string())?;
    let (code, out, err) = cli(&datastore, &["resume", "--process"]);
    if code != 0 {
        return Err(format!("resume must succeed\nexit {code}\n{out}\n{err}"));
    }
    let resumed = store
        .latest("Crashy", Latest::Succeeded)
        .map_err(|e| e.to_string())?
        .ok_or("no successful run")?;
    let (code, out, err) = cli(&datastore, &["run"]);
    if code != 0 {
        return Err(format!("an uninterrupted run must succeed\n{out}\n{err}"));
    }
    let clean = store
        .latest("Crashy", Latest::Succeeded)
        .map_err(|e| e.to_string())?
        .ok_or("no successful run")?;
    let (a, b) = (end_total(&store, &resumed)?, end_total(&store, &clean)?);
    if a != b {
        return Err(format!(
            "resumed total {a} differs from the uninterrupted {b}"
        ));
    }
    let complete = every_done_task_loads(&store)?;
    println!(
        "  {} reader passes, {complete} complete tasks, all whole",
        reads.load(Ordering::SeqCst)
    );
    Ok(())
}

fn main() -> ExitCode {
    let args: Vec<OsString> = std::env::args_os().collect();
    if args.get(1).is_some_and(|a| a == "--datastore") {
        return blooming_flowers::main::<Crashy>();
    }
    let dir = match tempfile::tempdir() {
        Ok(d) => d,
        Err(e) => {
            eprintln!("cannot make a temporary directory: {e}");
            return ExitCode::FAILURE;
        }
    };
    let (passed, failed) = match killed_task_then_resume(dir.path()) {
        Ok(()) => {
            println!("test killed_task_then_resume ... ok");
            (1, 0)
        }
        Err(e) => {
            println!("test killed_task_then_resume ... FAILED\n{e}");
            (0, 1)
        }
    };
    println!("{passed} passed, {failed} failed");
    if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
