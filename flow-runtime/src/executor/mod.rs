//! Running a flow: the scheduler that turns the static graph into tasks, the worker threads that
//! run them, `resume`, and the `step` command that runs exactly one task.
//!
//! A run is driven by one process. Each task either runs on one of its worker threads
//! ([`Mode::InProcess`], the default) or in a child process running the flow binary's `step`
//! command ([`Mode::Process`]), which reads its inputs from the datastore and writes its outputs
//! there: the same unit a cluster scheduler runs.

mod attempt;
mod binary;
mod cancel;
mod cpu_budget;
mod derive_spec;
mod from_spec;
mod process;
mod scheduler;
pub(crate) mod shell;
pub mod slurm;
mod spin;
pub(crate) mod step_invocation;
mod store_inputs;
mod task;

use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use crate::datastore::{KnownBlobs, TaskIndex};
use crate::flow::{Flow, StepOutcome};
use crate::progress::Progress;
use crate::run::{
    KeepCheckpoints, Latest, Provenance, RunId, RunRecord, RunStatus, RunStore, RunStoreError,
    StepName, TaskFailure, TaskId, TaskPath, new_run_id, now_rfc3339,
};

pub(crate) use binary::verify_running_binary;
pub(crate) use cancel::interrupted_by;
pub(crate) use derive_spec::checked_foreach_count;
pub use derive_spec::{DeriveSpecError, derive_spec};
// Where the CLI found it before it moved to `graph`.
pub(crate) use crate::graph::task_id_of;
pub use process::{run_task_capturing_output, run_task_command};
use scheduler::Scheduler;
pub use slurm::SlurmOptions;
pub use spin::{ArtifactChange, SpinSummary, spin_task};
pub use step_invocation::StepInvocation;
use task::TaskFailed;

/// Where tasks run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    /// On the driving process's worker threads.
    InProcess,
    /// Each task in a child process: `exe [args…] step …`.
    Process {
        /// The flow binary.
        exe: PathBuf,
        /// Arguments before the `step` subcommand (e.g. `--datastore PATH`).
        args: Vec<String>,
    },
    /// Each task a Slurm batch job running `exe [args…] step … --capture-output`; the
    /// datastore must be reachable from every node (see [`slurm`]).
    Slurm {
        /// The flow binary, at a path valid on the nodes.
        exe: PathBuf,
        /// Arguments before the `step` subcommand (e.g. `--datastore s3://bucket/prefix`).
        args: Vec<String>,
        /// How jobs are submitted and followed.
        options: SlurmOptions,
    },
}

/// The most tasks a run keeps going at once, whatever [`RunOptions::max_workers`] asks: each
/// is a thread of the driving process (also in process and Slurm modes, where it waits for its
/// child or job), and a few thousand threads is where a process starts to fail to create more.
pub const MAX_WORKERS: usize = 4096;

/// How to run.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// How many tasks run at once, at most [`MAX_WORKERS`]; locally, also the cpus the tasks
    /// share, each taking its step's `resources(cpus = N)` (1 when it declares none).
    pub max_workers: usize,
    /// Tags recorded with the run.
    pub tags: Vec<String>,
    /// Where tasks run.
    pub mode: Mode,
    /// Whether to draw a progress display (on a terminal).
    pub progress: bool,
    /// Whether to say on stderr which run started, as soon as it has an id.
    pub announce: bool,
    /// Whether SIGINT and SIGTERM stop the run (its Slurm jobs and child processes cancelled,
    /// the run recorded failed, [`RunError::Interrupted`] returned) instead of killing the
    /// process under it. The handlers stay installed for the life of the process, so this is
    /// for programs that end with their run, like the CLI (which sets it); after a signal,
    /// every later run of the process is interrupted at once.
    pub stop_on_signals: bool,
    /// For [`resume_flow`] only: resume even when the origin run was made by another flow
    /// binary (see [`BinaryMatch`]), recording in the new run's provenance which binary's tasks
    /// it reused.
    pub allow_other_binary: bool,
    /// Stop after this step's tasks: no task after them starts, and the run is recorded
    /// [`RunStatus::Stopped`] (`run --until`, `resume --until`).
    pub until: Option<String>,
    /// What each task keeps of its checkpoints once it completes (`--keep-checkpoints`).
    pub keep_checkpoints: KeepCheckpoints,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            max_workers: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1),
            tags: Vec::new(),
            mode: Mode::InProcess,
            progress: false,
            announce: false,
            stop_on_signals: false,
            allow_other_binary: false,
            until: None,
            keep_checkpoints: KeepCheckpoints::Last,
        }
    }
}

/// How a run ended.
#[derive(Debug, Clone)]
pub struct RunSummary {
    /// The flow's name, as in its graph and under `flows/` in the datastore.
    pub flow: String,
    /// The run's id: with the flow's name, what the client and the CLI open it by.
    pub run_id: RunId,
    /// How the run ended, as its record says (unless [`RunSummary::record_error`] is set).
    pub status: RunStatus,
    /// The task that failed the run, and why.
    pub failure: Option<(TaskPath, TaskFailure)>,
    /// Tasks run by this run.
    pub tasks_run: usize,
    /// Tasks reused from the origin run (resume).
    pub tasks_reused: usize,
    /// Why the run's record could not be updated with how it ended (its datastore became
    /// unreachable), if it could not: the record still says `running`.
    pub record_error: Option<String>,
}

/// Errors that stop a run before or outside its tasks.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RunError {
    /// The datastore could not be read or written: the run's record, a pointer, or a task's
    /// metadata.
    #[error(transparent)]
    Store(#[from] RunStoreError),
    /// Run `run_id` cannot be resumed as asked (the step to resume from is not in the flow,
    /// for one).
    #[error("cannot resume run `{run_id}`: {reason}")]
    Resume {
        /// The origin run that was asked for.
        run_id: String,
        /// Why it cannot be resumed, in a sentence for the user.
        reason: String,
    },
    /// A task of run `run_id` cannot be spun.
    #[error("cannot spin a task of run `{run_id}`: {reason}")]
    Spin {
        /// The run whose task was asked for.
        run_id: String,
        /// Why the task cannot be spun, in a sentence for the user.
        reason: String,
    },
    /// The origin of a resume was made by another flow binary, and
    /// [`RunOptions::allow_other_binary`] was not set: its tasks' results came from other code.
    #[error(
        "cannot resume run `{run_id}`: it was made by another flow binary (BLAKE3 {origin}) than \
         this one ({this}), and reusing its tasks would mix the results of two versions of the \
         code; resume with the binary that made it, or pass --allow-other-binary to resume anyway"
    )]
    OtherBinary {
        /// The origin run.
        run_id: String,
        /// The hash recorded with the origin run.
        origin: String,
        /// This binary's hash.
        this: String,
    },
    /// A task could not be set up or run outside the step's own code: its inputs are missing,
    /// its process or thread could not be started, or (for the `step` command, which runs one
    /// task) the task failed. The message names the task and the cause.
    #[error("{0}")]
    Task(String),
    /// The run was stopped by a signal (with [`RunOptions::stop_on_signals`]); it is recorded
    /// failed, and `resume` goes on with it.
    #[error("run {run_id} of {flow} {}", cancel::interrupted_by(*.signal))]
    Interrupted {
        /// The flow's name.
        flow: String,
        /// The run that was stopped.
        run_id: String,
        /// The signal's number (`SIGINT` is 2, `SIGTERM` 15).
        signal: i32,
    },
}

/// What every task of a run shares.
#[derive(Debug, Clone)]
pub(crate) struct RunContext {
    pub store: RunStore,
    pub flow: &'static str,
    pub run_id: RunId,
    pub params: serde_json::Value,
    /// For a resume: the run whose successful tasks are reused, and the steps that must rerun.
    pub origin: Option<Origin>,
    /// Set when the run is interrupted: no task starts after it.
    pub cancel: Arc<cancel::Cancel>,
    /// The blobs this run stored or found whole, not looked up again by its later tasks.
    pub known_blobs: Arc<KnownBlobs>,
    /// What a completed task keeps of its checkpoints, as the run record says.
    pub keep_checkpoints: KeepCheckpoints,
}

#[derive(Debug, Clone)]
pub(crate) struct Origin {
    pub run_id: RunId,
    pub rerun: Vec<bool>,
}

impl RunContext {
    pub fn task_key(
        &self,
        step: &str,
        task_id: &str,
    ) -> Result<crate::datastore::Key, RunStoreError> {
        RunStore::task_key(self.flow, &self.run_id, step, task_id)
    }
}

/// One open split or loop on the way to a task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Frame {
    /// The split step; for a loop, its head.
    pub split: usize,
    /// The branch, the foreach element, or the loop's pass (from 0).
    pub index: usize,
    /// How many branches or elements the split has; 0 for a loop.
    pub count: usize,
    pub kind: FrameKind,
}

/// What a [`Frame`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FrameKind {
    Branch,
    Foreach,
    Loop,
}

impl Frame {
    /// The frame as the task's spec stores it.
    pub(crate) fn record(&self, graph: &crate::graph::FlowGraph) -> crate::run::FrameRecord {
        crate::run::FrameRecord {
            split: graph.steps[self.split].name.to_string(),
            index: self.index,
            count: self.count,
            foreach: self.kind == FrameKind::Foreach,
            is_loop: self.kind == FrameKind::Loop,
        }
    }

    /// The part of the task id the frame makes: none for a branch.
    pub(crate) fn id_part(&self) -> Option<crate::graph::IdPart> {
        match self.kind {
            FrameKind::Branch => None,
            FrameKind::Foreach => Some(crate::graph::IdPart::Element(self.index)),
            FrameKind::Loop => Some(crate::graph::IdPart::Pass(self.index)),
        }
    }
}

/// A task ready to run.
pub(crate) struct PendingTask<F> {
    pub step: usize,
    pub task_id: TaskId,
    pub frames: Vec<Frame>,
    pub input: PendingInput<F>,
    /// Whether every task this one reads from was reused from the origin run.
    pub parents_reused: bool,
}

impl<F: Flow> PendingTask<F> {
    /// Where the task is: its step's name and its id.
    pub(crate) fn path(&self) -> TaskPath {
        TaskPath {
            step: StepName::from(F::GRAPH.steps[self.step].name),
            task: self.task_id.clone(),
        }
    }
}

/// A branch arriving at a join.
pub(crate) struct JoinInput {
    pub path: TaskPath,
    pub position: usize,
    pub index: Arc<TaskIndex>,
}

pub(crate) enum PendingInput<F> {
    Start,
    Parent {
        path: TaskPath,
        index: Arc<TaskIndex>,
        state: Option<Arc<F>>,
    },
    Item {
        path: TaskPath,
        index: Arc<TaskIndex>,
        state: Option<Arc<F>>,
        items: Arc<Vec<Vec<u8>>>,
        position: usize,
    },
    Join {
        base: (TaskPath, Arc<TaskIndex>),
        inputs: Vec<JoinInput>,
    },
}

/// A task that completed.
pub(crate) struct Finished<F> {
    pub path: TaskPath,
    pub step: usize,
    pub frames: Vec<Frame>,
    pub index: Arc<TaskIndex>,
    /// The end state, when this process has it in memory.
    pub state: Option<Arc<F>>,
    pub outcome: StepOutcome,
    /// For a foreach split, the element encodings.
    pub items: Option<Arc<Vec<Vec<u8>>>>,
    pub reused: bool,
}

/// Starts a new run of `F` with parameters `params` (as the flow's `__restore_params` reads
/// them) and runs it to the end.
pub fn run_flow<F: Flow>(
    store: &RunStore,
    params: serde_json::Value,
    options: &RunOptions,
) -> Result<RunSummary, RunError> {
    let record = new_record::<F>(store, params, options, None, run_provenance::<F>())?;
    drive::<F>(store, record, None, options)
}

/// The provenance of a run of `F` started by this process: how `F`'s crate was built
/// ([`Flow::BUILD`]), this binary's hash, the user and the machine.
pub fn run_provenance<F: Flow>() -> Provenance {
    Provenance::of(F::BUILD, binary::running_binary_hash().map(str::to_string))
}

/// Whether a run was made by the flow binary this process runs, by the hashes recorded in its
/// provenance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BinaryMatch {
    /// The same binary.
    Same,
    /// Another binary: the run's tasks ran other code.
    Other {
        /// The hash recorded with the run.
        origin: String,
        /// This binary's hash.
        this: String,
    },
    /// The run recorded no hash (made before provenance was recorded), or this binary cannot
    /// be read.
    Unknown,
}

/// Whether `run` was made by the flow binary this process runs.
pub fn binary_match(run: &RunRecord) -> BinaryMatch {
    let origin = run
        .provenance
        .as_ref()
        .and_then(|p| p.binary_hash.as_deref());
    match (origin, binary::running_binary_hash()) {
        (Some(origin), Some(this)) if origin.eq_ignore_ascii_case(this) => BinaryMatch::Same,
        (Some(origin), Some(this)) => BinaryMatch::Other {
            origin: origin.to_string(),
            this: this.to_string(),
        },
        _ => BinaryMatch::Unknown,
    }
}

/// Resumes run `origin_run_id`: a new run that reuses every task of the origin that succeeded
/// (by reference: no artifact is copied) and reruns the rest. With `from_step`, that step and
/// every step after it rerun even where they succeeded.
pub fn resume_flow<F: Flow>(
    store: &RunStore,
    origin_run_id: &str,
    from_step: Option<&str>,
    options: &RunOptions,
) -> Result<RunSummary, RunError> {
    let graph = F::GRAPH;
    let origin = store.read_run(graph.name, origin_run_id)?;
    let mut provenance = run_provenance::<F>();
    if let BinaryMatch::Other { origin, this } = binary_match(&origin) {
        if !options.allow_other_binary {
            return Err(RunError::OtherBinary {
                run_id: origin_run_id.to_string(),
                origin,
                this,
            });
        }
        provenance.reused_tasks_of_binary = Some(origin);
    }
    let mut rerun = vec![false; graph.steps.len()];
    if let Some(step) = from_step {
        let Some(first) = graph.step_index(step) else {
            return Err(RunError::Resume {
                run_id: origin_run_id.to_string(),
                reason: format!("flow `{}` has no step `{step}`", graph.name),
            });
        };
        let mut stack = vec![first];
        while let Some(s) = stack.pop() {
            if !rerun[s] {
                rerun[s] = true;
                stack.extend(graph.successors(s));
            }
        }
    }
    let mut options = options.clone();
    for tag in &origin.tags {
        if !options.tags.contains(tag) {
            options.tags.push(tag.clone());
        }
    }
    let record = new_record::<F>(
        store,
        origin.params.clone(),
        &options,
        Some(RunId::from(origin_run_id)),
        provenance,
    )?;
    drive::<F>(
        store,
        record,
        Some(Origin {
            run_id: RunId::from(origin_run_id),
            rerun,
        }),
        &options,
    )
}

fn new_record<F: Flow>(
    store: &RunStore,
    params: serde_json::Value,
    options: &RunOptions,
    origin_run_id: Option<RunId>,
    provenance: Provenance,
) -> Result<RunRecord, RunError> {
    let graph = F::GRAPH;
    let mut attempts = 0;
    loop {
        let mut record = RunRecord::starting(
            graph,
            new_run_id(),
            params.clone(),
            options.tags.clone(),
            origin_run_id.clone(),
        );
        record.provenance = Some(provenance.clone());
        record.keep_checkpoints = options.keep_checkpoints;
        match store.create_run(&record) {
            Ok(()) => {
                store.advance_latest(graph.name, Latest::Any, &record.run_id)?;
                return Ok(record);
            }
            Err(RunStoreError::RunExists { .. }) if attempts < 5 => attempts += 1,
            Err(e) => return Err(e.into()),
        }
    }
}

/// Runs a recorded run to its end and records how it ended; with
/// [`RunOptions::stop_on_signals`], on a thread of its own, stopped by SIGINT or SIGTERM.
fn drive<F: Flow>(
    store: &RunStore,
    record: RunRecord,
    origin: Option<Origin>,
    options: &RunOptions,
) -> Result<RunSummary, RunError> {
    let cancel = Arc::new(cancel::Cancel::default());
    if !options.stop_on_signals || !cancel::listen() {
        return drive_to_end::<F>(store, record, origin, options, cancel);
    }
    // Tasks on worker threads cannot be stopped: those are abandoned at once.
    let grace = match options.mode {
        Mode::InProcess => Duration::ZERO,
        Mode::Process { .. } => cancel::PROCESS_GRACE,
        Mode::Slurm { .. } => cancel::SLURM_GRACE,
    };
    let (run_store, run_record, run_options) = (store.clone(), record.clone(), options.clone());
    let run_cancel = Arc::clone(&cancel);
    cancel::run_interruptible(
        &cancel,
        grace,
        move || drive_to_end::<F>(&run_store, run_record, origin, &run_options, run_cancel),
        |signal| record_interrupted(store, record, signal),
    )
    .map_err(|e| RunError::Task(format!("cannot start the run's thread: {e}")))?
}

/// Records the run failed because `signal` stopped it.
fn record_interrupted(
    store: &RunStore,
    mut record: RunRecord,
    signal: i32,
) -> Result<RunSummary, RunError> {
    let failure = cancel::interrupted_by(signal);
    record_failed(store, &mut record, failure)?;
    Err(RunError::Interrupted {
        flow: record.flow,
        run_id: record.run_id.into_string(),
        signal,
    })
}

/// Records the run failed with `failure`, keeping the tags added while it ran.
fn record_failed(
    store: &RunStore,
    record: &mut RunRecord,
    failure: String,
) -> Result<(), RunError> {
    record.status = RunStatus::Failed;
    record.finished = Some(now_rfc3339());
    record.failure = Some(failure);
    if let Ok(stored) = store.read_run(&record.flow, &record.run_id) {
        for tag in stored.tags {
            if !record.tags.contains(&tag) {
                record.tags.push(tag);
            }
        }
    }
    store.update_run(record)?;
    Ok(())
}

/// Runs a recorded run to its end, or until `cancel` stops it, and records how it ended.
fn drive_to_end<F: Flow>(
    store: &RunStore,
    mut record: RunRecord,
    origin: Option<Origin>,
    options: &RunOptions,
    cancel: Arc<cancel::Cancel>,
) -> Result<RunSummary, RunError> {
    let graph = F::GRAPH;
    // Tasks run the binary as it was when the run started, not one rebuilt since.
    let (private_exe, binary_hash) = match &options.mode {
        Mode::InProcess => (None, None),
        Mode::Process { exe, .. } => match binary::PrivateCopy::of(exe) {
            Ok(copy) => (Some(copy), None),
            Err(e) => {
                let failure = format!(
                    "cannot copy the flow binary {} for the run's tasks: {e}",
                    exe.display()
                );
                record_failed(store, &mut record, failure.clone())?;
                return Err(RunError::Task(failure));
            }
        },
        Mode::Slurm { .. } => match binary::hash_of_running_binary() {
            Ok(hash) => (None, Some(hash)),
            Err(e) => {
                let failure = format!("cannot read the flow binary to hash it: {e}");
                record_failed(store, &mut record, failure.clone())?;
                return Err(RunError::Task(failure));
            }
        },
    };
    let ctx = RunContext {
        store: store.clone(),
        flow: graph.name,
        run_id: record.run_id.clone(),
        params: record.params.clone(),
        origin,
        cancel: Arc::clone(&cancel),
        known_blobs: Arc::default(),
        keep_checkpoints: record.keep_checkpoints,
    };
    let progress = if options.progress {
        Progress::for_terminal(graph.name)
    } else {
        Progress::new(graph.name, false)
    };
    progress.task_queued(graph.steps[graph.start].name, 1);
    if options.announce {
        progress.suspend(|| eprintln!("Started run {} of {}", record.run_id, graph.name));
    }
    let mut scheduler = Scheduler::<F>::new();
    if let Some(step) = &options.until {
        let Some(until) = graph.step_index(step) else {
            let failure = format!("flow `{}` has no step `{step}` to stop after", graph.name);
            record_failed(store, &mut record, failure.clone())?;
            return Err(RunError::Task(failure));
        };
        scheduler.until = Some(until);
    }
    let wake = Condvar::new();
    let workers = options.max_workers.clamp(1, MAX_WORKERS);
    if options.max_workers > MAX_WORKERS {
        tracing::warn!(
            "{} workers asked for; running with {MAX_WORKERS}",
            options.max_workers
        );
    }
    // Locally, the workers are the run's cpus, shared by what the steps declare; on Slurm the
    // cluster gives each job its own.
    if !matches!(options.mode, Mode::Slurm { .. }) {
        scheduler.cpus = cpu_budget::CpuBudget::new(workers);
        for warning in scheduler.cpus.warnings(graph) {
            tracing::warn!("{warning}");
        }
    }
    let scheduler = Mutex::new(scheduler);
    let slurm_queue = match &options.mode {
        Mode::Slurm { options, .. } => {
            Some(slurm::SlurmQueue::new(options.clone(), Arc::clone(&cancel)))
        }
        _ => None,
    };
    let launch = match &options.mode {
        Mode::InProcess => None,
        Mode::Process { args, .. } => private_exe.as_ref().map(|copy| process::Launch::Child {
            exe: copy.path(),
            args,
        }),
        Mode::Slurm { exe, args, .. } => {
            slurm_queue
                .as_ref()
                .zip(binary_hash.as_deref())
                .map(|(queue, binary)| process::Launch::Slurm {
                    queue,
                    exe,
                    args,
                    binary,
                })
        }
    };
    let spawned = std::thread::scope(|scope| {
        let mut spawned = 0;
        for n in 0..workers {
            let started = std::thread::Builder::new()
                .name(format!("worker-{n}"))
                .spawn_scoped(scope, || {
                    worker::<F>(&ctx, &scheduler, &wake, &progress, launch.as_ref())
                });
            match started {
                Ok(_) => spawned += 1,
                // Fewer workers only make the run slower; none at all is reported below.
                Err(e) => {
                    tracing::warn!("started {spawned} of {workers} workers: {e}");
                    break;
                }
            }
        }
        spawned
    });
    if spawned == 0 {
        let mut guard = scheduler
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        guard.failure = Some((
            TaskPath {
                step: StepName::from(graph.steps[graph.start].name),
                task: TaskId::from("0"),
            },
            task::runtime_failure("cannot start a single worker thread"),
        ));
    }
    let scheduler = scheduler
        .into_inner()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    // Interrupted, whoever records the run says so; it may have been recorded already by the
    // thread that stopped waiting for this one.
    if !cancel.claim_record() {
        return Err(RunError::Interrupted {
            flow: record.flow,
            run_id: record.run_id.into_string(),
            signal: cancel.signal().unwrap_or_default(),
        });
    }
    if let Some(signal) = cancel.signal() {
        progress.finish("interrupted");
        return record_interrupted(store, record, signal);
    }
    let failure = scheduler.failure.clone();
    record.status = match (&failure, scheduler.reached_end, scheduler.stopped_until) {
        (None, true, _) => RunStatus::Succeeded,
        (None, false, true) => RunStatus::Stopped,
        _ => RunStatus::Failed,
    };
    record.finished = Some(now_rfc3339());
    record.failure = match &failure {
        Some((path, f)) => Some(format!("task {path} failed: {f}")),
        None if record.status == RunStatus::Failed => {
            Some("the run stopped before reaching `end`".to_string())
        }
        None => None,
    };
    // Only the status and the end are written: tags added with `tag` meanwhile stay. A run
    // whose datastore went away (the S3 server stopped) cannot record how it ended; its
    // failure is still what the user must hear about first.
    let record_error = match store.update_run(&record) {
        Ok(()) => None,
        Err(e) if failure.is_some() => Some(e.to_string()),
        Err(e) => return Err(e.into()),
    };
    progress.finish(match record.status {
        RunStatus::Succeeded => "done",
        RunStatus::Stopped => "stopped",
        _ => "failed",
    });
    Ok(RunSummary {
        flow: graph.name.to_string(),
        run_id: record.run_id,
        status: record.status,
        failure,
        tasks_run: scheduler.tasks_run,
        tasks_reused: scheduler.tasks_reused,
        record_error,
    })
}

/// Records a task that panicked outside its step as failed, so that it reads like any other
/// failed task. Best effort: the run fails with the panic's message either way.
fn record_panicked_task<F: Flow>(
    ctx: &RunContext,
    spec: crate::run::TaskSpec,
    failure: &TaskFailure,
) {
    let Ok(key) = ctx.task_key(&spec.step, &spec.task_id) else {
        return;
    };
    let now = now_rfc3339();
    let meta = crate::run::TaskMeta {
        format: 1,
        flow: F::GRAPH.name.to_string(),
        run_id: ctx.run_id.clone(),
        spec,
        status: crate::run::TaskStatus::Failed,
        attempts: vec![crate::run::AttemptRecord {
            attempt: 0,
            started: now.clone(),
            finished: now,
            failure: Some(failure.clone()),
        }],
        foreach: None,
        chose: None,
        origin_run_id: None,
        job: slurm::current_job(),
    };
    if let Err(e) = ctx.store.write_meta(&key, &meta) {
        tracing::warn!("cannot record the failure of task {}: {e}", key);
    }
}

fn worker<F: Flow>(
    ctx: &RunContext,
    scheduler: &Mutex<Scheduler<F>>,
    wake: &Condvar,
    progress: &Progress,
    launch: Option<&process::Launch<'_>>,
) {
    let lock = || {
        scheduler
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    };
    loop {
        let (pending, cpus) = {
            let mut guard = lock();
            loop {
                if guard.failure.is_some() && guard.running == 0 {
                    wake.notify_all();
                    return;
                }
                let state = &mut *guard;
                if state.failure.is_none()
                    && !ctx.cancel.is_set()
                    && let Some(taken) = state.cpus.take_next(&mut state.queue, F::GRAPH)
                {
                    guard.running += 1;
                    break taken;
                }
                if guard.running == 0 {
                    wake.notify_all();
                    return;
                }
                guard = wake
                    .wait(guard)
                    .unwrap_or_else(|poisoned| poisoned.into_inner());
            }
        };
        let step_name = F::GRAPH.steps[pending.step].name;
        progress.task_started(step_name);
        let path = pending.path();
        let spec = task::spec_of(&pending);
        let result = attempt::catch_task_panic(|| match scheduler::try_reuse(ctx, &pending) {
            Ok(Some(finished)) => Ok(finished),
            Ok(None) => match launch {
                None => task::execute(ctx, pending),
                Some(launch) => process::execute(ctx, pending, launch),
            },
            Err(failed) => Err(failed),
        })
        .unwrap_or_else(|failure| {
            // The task's own code path never got to record it: do it here, so that `dump`
            // shows the failed task like any other.
            record_panicked_task::<F>(ctx, spec, &failure);
            Err(TaskFailed::new(path, failure))
        });
        progress.task_finished(step_name, result.is_ok());
        let mut guard = lock();
        guard.running -= 1;
        guard.cpus.release(cpus);
        match result {
            Ok(finished) => {
                let queued = guard.on_finished(finished);
                for (step, n) in queued {
                    progress.task_queued(F::GRAPH.steps[step].name, n);
                }
            }
            Err(failed) => {
                let TaskFailed { path, failure } = failed;
                let failure = *failure;
                if guard.failure.is_none() {
                    guard.failure = Some((path, failure));
                }
            }
        }
        wake.notify_all();
    }
}
