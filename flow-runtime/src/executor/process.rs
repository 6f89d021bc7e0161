//! Process-per-task mode: each task is the flow binary's `step` command in a child process,
//! which finds everything it needs in the datastore. This is the unit a cluster scheduler runs.
//!
//! Each child leads a process group of its own, so that a cancelled run stops it with whatever
//! it started, and a Ctrl-C in the terminal reaches the coordinator alone, which decides. What a
//! child prints is kept up to [`crate::logs::KEEP_AT_EACH_END`] bytes at each end.

use std::io::{Read, Write};
use std::os::unix::process::CommandExt as _;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Arc;

use super::from_spec::pending_from_spec;
use super::slurm::{Element, SlurmQueue};
use super::step_invocation::StepInvocation;
use super::task::{TaskFailed, execute as execute_here, load_items, runtime_failure, spec_of};
use super::{Finished, PendingInput, PendingTask, RunContext, RunError};
use crate::flow::{Flow, StepOutcome};
use crate::graph::Transition;
use crate::logs::{HeadAndTail, last_lines};
use crate::run::{RunStore, TaskStatus};

/// How a task's `step` command is started.
pub(crate) enum Launch<'a> {
    /// As a child process of this one, whose stdout and stderr this process records.
    Child { exe: &'a Path, args: &'a [String] },
    /// As a Slurm job, which records its own stdout and stderr (`step --capture-output`).
    Slurm {
        queue: &'a SlurmQueue,
        exe: &'a Path,
        args: &'a [String],
        /// The BLAKE3 hash of the binary the run started with, which the job checks its own
        /// against.
        binary: &'a str,
    },
}

/// How the `step` command ended, to explain a task it did not complete.
struct Ended {
    /// "exit status: 1", "Slurm job 12 ended CANCELLED".
    how: String,
    /// Its last lines of output.
    tail: String,
}

/// Runs `pending` as `exe [args…] step STEP --run-id RUN --task-id TASK`, in a child process or
/// a Slurm job, and reads back what it recorded.
pub(crate) fn execute<F: Flow>(
    ctx: &RunContext,
    pending: PendingTask<F>,
    launch: &Launch<'_>,
) -> Result<Finished<F>, TaskFailed> {
    let graph = F::GRAPH;
    let step = &graph.steps[pending.step];
    let path = pending.path();
    let fail = |message: String| TaskFailed::new(path.clone(), runtime_failure(message));
    let key = ctx
        .task_key(step.name, &pending.task_id)
        .map_err(|e| fail(e.to_string()))?;
    ctx.store
        .write_spec(&key, &spec_of(&pending))
        .map_err(|e| fail(e.to_string()))?;
    let invocation = StepInvocation::new(step.name, ctx.run_id.as_str(), pending.task_id.as_str());
    let ended = match launch {
        Launch::Child { exe, args } => run_child(ctx, &key, exe, args, &invocation.to_args())
            .map_err(|e| fail(e.to_string()))?,
        Launch::Slurm {
            queue,
            exe,
            args,
            binary,
        } => {
            let job = StepInvocation {
                capture_output: true,
                expect_binary: Some((*binary).to_owned()),
                ..invocation
            };
            let mut command = vec![exe.to_string_lossy().into_owned()];
            command.extend(args.iter().cloned());
            command.extend(job.to_args());
            let name = format!("{}.{}.{}", graph.name, step.name, pending.task_id);
            let sbatch_args = queue.options().args_for(step);
            // The tasks of a foreach split go together, as one job array.
            let submitted = match &pending.input {
                PendingInput::Item {
                    path: split,
                    items,
                    position,
                    ..
                } => queue.submit_element(
                    &Element {
                        group: format!("{}/{split}", step.name),
                        count: items.len(),
                        position: *position,
                        array_name: format!("{}.{}", graph.name, step.name),
                        task_name: name,
                        sbatch_args,
                    },
                    &command,
                ),
                _ => queue.submit(&name, &sbatch_args, &command),
            };
            let job =
                submitted.map_err(|e| fail(format!("cannot submit the task to Slurm: {e}")))?;
            tracing::debug!(task = %path, job = %job, "submitted to Slurm");
            let end = queue.wait(&job).map_err(|e| {
                queue.cancel(&job);
                fail(e.to_string())
            })?;
            Ended {
                how: format!("Slurm job {job} ended {}", end.state),
                tail: queue.output_tail(&job, 5),
            }
        }
    };

    // One read for a completed task: its done marker holds both the index and the metadata.
    let (meta, index) = match ctx.store.read_done(&key).map_err(|e| fail(e.to_string()))? {
        Some((index, Some(meta))) => (Some(meta), Some(index)),
        done => (
            ctx.store.read_meta(&key).map_err(|e| fail(e.to_string()))?,
            done.map(|(index, _)| index),
        ),
    };
    match (meta, index) {
        (Some(meta), Some(index)) if meta.status != TaskStatus::Failed => {
            let outcome = match (&meta.chose, step.transition) {
                (Some(chosen), Transition::Switch(arms)) => arms
                    .iter()
                    .position(|a| graph.steps[a.target].name == chosen)
                    .map(StepOutcome::Arm)
                    .ok_or_else(|| {
                        fail(format!(
                            "the task chose `{chosen}`, which is not an arm of the switch"
                        ))
                    })?,
                _ => StepOutcome::Continue,
            };
            let items = match &meta.foreach {
                Some(f) => {
                    let items = load_items(ctx, &f.items)
                        .map_err(|failure| TaskFailed::new(path.clone(), failure))?;
                    if items.len() != f.count {
                        return Err(fail(format!(
                            "the task records {} foreach elements but its list of elements \
                             holds {}: its metadata is damaged",
                            f.count,
                            items.len()
                        )));
                    }
                    Some(Arc::new(items))
                }
                None => None,
            };
            Ok(Finished {
                path,
                step: pending.step,
                frames: pending.frames,
                index: Arc::new(index),
                state: None,
                outcome,
                items,
                reused: false,
            })
        }
        (Some(meta), _) if meta.failure().is_some() => {
            let failure = meta
                .failure()
                .cloned()
                .unwrap_or_else(|| runtime_failure("the task failed"));
            Err(TaskFailed::new(path, failure))
        }
        _ => {
            let tail = ended.tail;
            Err(fail(format!(
                "{} without completing the task{}",
                ended.how,
                if tail.is_empty() {
                    String::new()
                } else {
                    format!(":\n{tail}")
                }
            )))
        }
    }
}

/// The `step` command with `--capture-output`, as a Slurm job runs it: runs the same command
/// line without that flag as a child process, records the child's stdout and stderr in the
/// datastore as process mode does (and passes them on, so the job's own output has them too),
/// and ends as the child did.
///
/// `args` is the child's command line after the program name: the datastore's arguments, then
/// [`StepInvocation::captured_child`]'s.
pub fn run_task_capturing_output<F: Flow>(
    store: &RunStore,
    run_id: &str,
    step: &str,
    task_id: &str,
    args: &[std::ffi::OsString],
) -> Result<(), RunError> {
    let graph = F::GRAPH;
    let key = RunStore::task_key(graph.name, run_id, step, task_id)?;
    let exe = std::env::current_exe()
        .map_err(|e| RunError::Task(format!("cannot find this program's path: {e}")))?;
    let mut child = Command::new(&exe)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| RunError::Task(format!("cannot start `{}`: {e}", exe.display())))?;
    let (status, out, err) = collect_output(&mut child, true)
        .map_err(|e| RunError::Task(format!("cannot wait for the task's process: {e}")))?;
    record_output(store, &key, &out, &err)?;
    if status.success() {
        Ok(())
    } else {
        Err(RunError::Task(format!(
            "task {step}/{task_id} of run {run_id} failed ({status}){}",
            match last_lines(&err, 5) {
                tail if tail.is_empty() => String::new(),
                tail => format!(":\n{tail}"),
            }
        )))
    }
}

/// Why a task's child process could not be run and its output recorded.
#[derive(Debug, thiserror::Error)]
enum ChildError {
    #[error("cannot start `{}` for the task: {source}", exe.display())]
    Start {
        exe: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("cannot wait for the task's process: {0}")]
    Wait(#[source] std::io::Error),
    #[error(transparent)]
    Record(#[from] crate::run::RunStoreError),
}

/// Runs the `step` command as a child process and records what it printed.
fn run_child(
    ctx: &RunContext,
    key: &crate::datastore::Key,
    exe: &Path,
    args: &[String],
    step_args: &[String],
) -> Result<Ended, ChildError> {
    let mut child = Command::new(exe)
        .args(args)
        .args(step_args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .map_err(|source| ChildError::Start {
            exe: exe.to_path_buf(),
            source,
        })?;
    let watched = ctx.cancel.watch(&child);
    let collected = collect_output(&mut child, false);
    drop(watched);
    let (status, out, err) = collected.map_err(ChildError::Wait)?;
    record_output(&ctx.store, key, &out, &err)?;
    Ok(Ended {
        how: format!("the task's process ended ({status})"),
        tail: last_lines(&err, 5),
    })
}

/// Waits for `child`, reading its stdout and stderr to the end (on two threads, so that neither
/// pipe fills up and blocks it), keeping the first and last [`crate::logs::KEEP_AT_EACH_END`]
/// bytes of each; with `echo`, also passes them on to this process's own stdout and stderr as
/// they come.
fn collect_output(
    child: &mut Child,
    echo: bool,
) -> std::io::Result<(ExitStatus, Vec<u8>, Vec<u8>)> {
    fn read_all(
        pipe: Option<impl Read + Send + 'static>,
        mut echo: Option<Box<dyn Write + Send>>,
    ) -> std::thread::JoinHandle<Vec<u8>> {
        std::thread::spawn(move || {
            let mut kept = HeadAndTail::default();
            let Some(mut pipe) = pipe else {
                return Vec::new();
            };
            let mut chunk = vec![0; 64 << 10];
            loop {
                match pipe.read(&mut chunk) {
                    Ok(0) => break,
                    Ok(n) => {
                        kept.push(&chunk[..n]);
                        if let Some(out) = &mut echo {
                            let _ = out.write_all(&chunk[..n]);
                        }
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(_) => break,
                }
            }
            kept.into_bytes()
        })
    }
    let echo_to = |stream: Box<dyn Write + Send>| echo.then_some(stream);
    let echo_out = echo_to(Box::new(std::io::stdout()));
    let echo_err = echo_to(Box::new(std::io::stderr()));
    let out_thread = read_all(child.stdout.take(), echo_out);
    let err_thread = read_all(child.stderr.take(), echo_err);
    let status = child.wait()?;
    let out = out_thread.join().unwrap_or_default();
    let err = err_thread.join().unwrap_or_default();
    Ok((status, out, err))
}

/// Stores a task's stdout and stderr beside its logs (nothing for an empty stream).
fn record_output(
    store: &RunStore,
    key: &crate::datastore::Key,
    out: &[u8],
    err: &[u8],
) -> Result<(), crate::run::RunStoreError> {
    if !out.is_empty() {
        store.write_output(key, "stdout", out)?;
    }
    if !err.is_empty() {
        store.write_output(key, "stderr", err)?;
    }
    Ok(())
}

/// The `step` command: runs exactly one task of run `run_id` from what the datastore holds,
/// and records it there.
pub fn run_task_command<F: Flow>(
    store: &RunStore,
    run_id: &str,
    step: &str,
    task_id: &str,
) -> Result<(), RunError> {
    let graph = F::GRAPH;
    let record = store.read_run(graph.name, run_id)?;
    if graph.step_index(step).is_none() {
        return Err(RunError::Task(format!(
            "flow `{}` has no step `{step}`",
            graph.name
        )));
    }
    let key = RunStore::task_key(graph.name, run_id, step, task_id)?;
    // Process mode's coordinator writes the spec; a scheduler without one (Argo Workflows)
    // leaves it to be derived from the graph and what the parents recorded.
    let spec = match store.read_spec(&key)? {
        Some(spec) => spec,
        None => match super::derive_spec(graph, store, run_id, step, task_id) {
            Ok(spec) => spec,
            Err(super::DeriveSpecError::Store(e)) => return Err(e.into()),
            Err(e) => return Err(RunError::Task(e.to_string())),
        },
    };
    let ctx = RunContext {
        store: store.clone(),
        flow: graph.name,
        run_id: run_id.into(),
        params: record.params,
        origin: None,
        cancel: Arc::default(),
        known_blobs: Arc::default(),
        keep_checkpoints: record.keep_checkpoints,
    };
    let pending = pending_from_spec::<F>(&ctx, run_id, &spec)?;
    execute_here(&ctx, pending).map(|_| ()).map_err(|failed| {
        RunError::Task(format!("task {} failed: {}", failed.path, failed.failure))
    })
}
