//! Slurm: every task is a batch job running the flow binary's `step` command.
//!
//! The driving process stays the coordinator, as in process mode: it decides which tasks are
//! ready (so a foreach fans out over as many jobs as its split produced, known only at run
//! time), writes each task's spec to the datastore, submits the job with `sbatch`, and waits for
//! it. The job runs `FLOW_BIN --datastore LOC step STEP --run-id RUN --task-id TASK
//! --capture-output` on whatever node Slurm picks: it reads its inputs from the datastore and
//! records its artifacts, its logs, its stdout and stderr and its job id there. The datastore
//! must therefore be one every node reaches: S3-compatible storage (`s3://…`), or a directory
//! on a shared file system.
//!
//! The tasks of one foreach split, which become ready together, go as one job array
//! (`sbatch --array`) rather than one job each: Slurm schedules an array as one job, so a split
//! over a hundred elements costs one submission and one scheduling pass instead of a hundred.
//! Each element runs one task (its batch script picks the task by `$SLURM_ARRAY_TASK_ID`, which
//! is the task's position in the foreach, modulo `ARRAY_CHUNK`: 1000) and is followed on its own
//! (`JOBID_INDEX`): an element that fails fails its task alone, and `resume` reruns only that
//! task (as a job of its own). The tasks of a split are gathered as the run's workers reach them;
//! once all have arrived, or none has for `GATHER_QUIET` (100 ms: some were reused by `resume`, or
//! fewer workers than tasks are free), those gathered go. Every other task (linear steps,
//! branches, joins) and a gathering of one is a job of its own.
//!
//! Waiting costs one `squeue` call per poll interval for all the jobs in flight together, not
//! one per job, so a foreach of thousands of tasks does not flood the controller. A job that
//! ends without completing its task (killed by `scancel`, out of memory, past its time limit,
//! lost with its node) fails the task with Slurm's final state and the last lines of the job's
//! own output; `resume` then reruns it, as locally.
//!
//! Jobs are submitted with `--requeue`: a task can run again from the start (it writes its done
//! marker last, and once), so Slurm may requeue a job after a preemption or a node failure. A
//! job Slurm may still requeue (`PREEMPTED` or `NODE_FAIL` with its `Requeue` flag set, and the
//! `REQUEUED`, `REQUEUE_HOLD`, `REQUEUE_FED` and `RESIZING` states) is waited for like a pending
//! one; whatever state the job finally ends in, the task's done marker decides whether the task
//! completed.

use std::collections::HashMap;
use std::fmt;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use super::cancel::Cancel;
use super::shell::shell_quote;
use crate::graph::StepSpec;

/// The environment variable Slurm sets in a job to its id; `step` records it in the task's
/// metadata, so `dump` and `logs` say which job ran a task.
pub const SLURM_JOB_ID_ENV: &str = "SLURM_JOB_ID";

/// The environment variables Slurm sets in an element of a job array to the array's job id and
/// the element's index: such a task records `ARRAYID_INDEX`, as `squeue` and `scancel` name the
/// element (its `SLURM_JOB_ID` is a number of its own, which no command shows).
const SLURM_ARRAY_JOB_ID_ENV: &str = "SLURM_ARRAY_JOB_ID";
const SLURM_ARRAY_TASK_ID_ENV: &str = "SLURM_ARRAY_TASK_ID";

/// The most elements one job array holds: Slurm refuses array indices from `MaxArraySize`
/// (1001 unless a site raises it) on, so a larger foreach goes as several arrays, and the
/// element index of the task at position `p` is `p % ARRAY_CHUNK`.
pub(crate) const ARRAY_CHUNK: usize = 1000;

/// How long the tasks of a split are gathered after the last one arrived, when fewer than all
/// have: the ones missing may never come (reused by `resume`, or no worker is free for them).
/// The workers reach the tasks of a split within milliseconds of each other.
pub(crate) const GATHER_QUIET: Duration = Duration::from_millis(100);

/// How to submit tasks to Slurm.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlurmOptions {
    /// Extra arguments for every `sbatch` call, before the script: `--partition=gpu`,
    /// `--account=…`, `--time=…`, `--mem=…`. They come after the arguments a step's
    /// `resources(...)` makes, so they can override them.
    pub sbatch_args: Vec<String>,
    /// Extra arguments for the `sbatch` calls of one step's tasks, `(step, argument)` in the
    /// order given (`--sbatch-arg-for train=--partition=gpu`). They come after
    /// [`sbatch_args`](Self::sbatch_args), so they can override them for that step.
    pub step_sbatch_args: Vec<(String, String)>,
    /// Where Slurm writes each job's own stdout and stderr (`<dir>/<job id>.out`): what the
    /// job printed before `step` took over, e.g. that the binary is missing on the node. Read
    /// back to explain a job that ended without completing its task, so on a cluster it should
    /// be on a shared file system. It is created if missing; the CLI's default is a directory
    /// of the run's own, readable by its user alone.
    pub log_dir: PathBuf,
    /// How often the jobs in flight are looked up.
    pub poll_interval: Duration,
}

impl SlurmOptions {
    /// Default options: no extra `sbatch` arguments, job output in `log_dir`, polled every
    /// 200 ms.
    pub fn new(log_dir: impl Into<PathBuf>) -> Self {
        SlurmOptions {
            sbatch_args: Vec::new(),
            step_sbatch_args: Vec::new(),
            log_dir: log_dir.into(),
            poll_interval: Duration::from_millis(200),
        }
    }

    /// Every extra `sbatch` argument of a task of `step`: what its `resources(...)` asks for
    /// (`--cpus-per-task=N`, `--mem=<MiB>M` rounded up, `--gres=gpu:N`), then
    /// [`sbatch_args`](Self::sbatch_args), then the step's own
    /// [`step_sbatch_args`](Self::step_sbatch_args); `sbatch` takes the last of a repeated
    /// option, so the user's arguments win over the step's declaration.
    pub fn args_for(&self, step: &StepSpec) -> Vec<String> {
        let resources = &step.options.resources;
        let mut args = Vec::new();
        if let Some(cpus) = resources.cpus {
            args.push(format!("--cpus-per-task={cpus}"));
        }
        if let Some(mib) = resources.memory_mib() {
            args.push(format!("--mem={mib}M"));
        }
        // `gpus = 0` asks for none: no `--gres`, which would still need the gres plugin.
        if let Some(gpus) = resources.gpus.filter(|&n| n > 0) {
            args.push(format!("--gres=gpu:{gpus}"));
        }
        args.extend(self.sbatch_args.iter().cloned());
        args.extend(
            self.step_sbatch_args
                .iter()
                .filter(|(name, _)| name == step.name)
                .map(|(_, arg)| arg.clone()),
        );
        args
    }
}

/// A Slurm job id (`sbatch --parsable` prints it, possibly followed by `;cluster`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct JobId(pub String);

impl fmt::Display for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// How a job ended, as `squeue` last reported it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct JobEnd {
    /// `COMPLETED`, `FAILED`, `CANCELLED`, `TIMEOUT`, … or `GONE` when the controller no longer
    /// knows the job (it ended longer ago than its `MinJobAge`).
    pub state: String,
}

/// Job states after which a job does nothing more.
const FINAL_STATES: &[&str] = &[
    "COMPLETED",
    "FAILED",
    "CANCELLED",
    "TIMEOUT",
    "OUT_OF_MEMORY",
    "BOOT_FAIL",
    "DEADLINE",
    "SPECIAL_EXIT",
    "REVOKED",
    GONE,
];

/// Job states that are final unless Slurm requeues the job, which it does for a job whose
/// `Requeue` flag is set (and that has not reached the cluster's `MaxBatchRequeue`).
const REQUEUED_UNLESS_FINAL: &[&str] = &["PREEMPTED", "NODE_FAIL"];

/// How many times `sbatch` is tried before a submission fails.
const SBATCH_TRIES: u32 = 4;

/// How long a job may stay `PREEMPTED` or `NODE_FAIL` before it counts as ended although its
/// `Requeue` flag is set: Slurm requeues at once, unless the job was requeued too often already.
const REQUEUE_WAIT: Duration = Duration::from_secs(300);

/// The state of a job the controller no longer knows.
const GONE: &str = "GONE";

/// A job as `squeue` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Listed {
    /// Its state, as `RUNNING` (without what squeue may append, as in `CANCELLED by 0`).
    state: String,
    /// Whether Slurm may requeue it.
    requeue: bool,
    /// How many times it was requeued.
    restarts: u32,
}

impl Listed {
    fn gone() -> Self {
        Listed {
            state: GONE.to_owned(),
            requeue: false,
            restarts: 0,
        }
    }
}

/// Whether a job is still to be waited for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Pending, running, being requeued or able to be requeued.
    Waiting,
    /// Done: what it did is in the datastore, or not at all.
    Ended,
}

/// The phase of a job listed as `listed` for `in_state_for` (since a poll first saw that state).
fn phase(listed: &Listed, in_state_for: Duration) -> Phase {
    let state = listed.state.as_str();
    if REQUEUED_UNLESS_FINAL.contains(&state) {
        if listed.requeue && in_state_for < REQUEUE_WAIT {
            Phase::Waiting
        } else {
            Phase::Ended
        }
    } else if FINAL_STATES.contains(&state) {
        Phase::Ended
    } else {
        // PENDING, RUNNING, COMPLETING, REQUEUED, REQUEUE_HOLD, REQUEUE_FED, RESIZING,
        // SUSPENDED, … and states of later Slurm versions.
        Phase::Waiting
    }
}

/// Why a task could not be submitted as a Slurm job.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SubmitError {
    #[error("the run was interrupted")]
    Interrupted,
    #[error("cannot create the Slurm log directory {}: {source}", dir.display())]
    LogDir { dir: PathBuf, source: io::Error },
    #[error("cannot run `sbatch` (is Slurm installed and on PATH?): {0}")]
    Spawn(#[source] io::Error),
    #[error("cannot give `sbatch` the job script: {0}")]
    Script(#[source] io::Error),
    #[error("cannot wait for `sbatch`: {0}")]
    Wait(#[source] io::Error),
    #[error("sbatch failed ({status}): {stderr}")]
    Refused { status: ExitStatus, stderr: String },
    #[error("sbatch printed no job id: {0:?}")]
    NoJobId(String),
    /// The submission of the job array a task was gathered into failed.
    #[error("{0}")]
    Array(Arc<SubmitError>),
}

/// A task of a foreach, to go to Slurm with the tasks of the same split as one job array.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Element {
    /// What the tasks submitted together share: the step and the task that split.
    pub group: String,
    /// How many tasks the split made.
    pub count: usize,
    /// This task's position among them.
    pub position: usize,
    /// The job name of the array (`Flow.step`).
    pub array_name: String,
    /// The job name if the task goes alone (`Flow.step.task`).
    pub task_name: String,
    /// The extra `sbatch` arguments of the step ([`SlurmOptions::args_for`]), the same for
    /// every task of the split.
    pub sbatch_args: Vec<String>,
}

/// Tasks being gathered into one job array.
#[derive(Debug)]
struct Gathering {
    /// Tells this gathering from a later one of the same split.
    number: u64,
    /// How many tasks may come.
    expected: usize,
    array_name: String,
    /// The task's name if it goes alone; the first member's.
    task_name: String,
    /// The step's extra `sbatch` arguments.
    sbatch_args: Vec<String>,
    /// Each task's element index and command.
    members: Vec<(usize, Vec<String>)>,
    last_arrival: Instant,
}

/// How a gathering was submitted.
#[derive(Debug, Clone)]
enum Submission {
    /// As a job of its own (a gathering of one).
    Single(JobId),
    /// As a job array with this job id.
    Array(JobId),
}

/// A gathering submitted, until each of its tasks has taken its job id.
#[derive(Debug)]
struct Submitted {
    result: Result<Submission, Arc<SubmitError>>,
    left: usize,
}

/// Why a job could not be followed to its end.
#[derive(Debug, thiserror::Error)]
pub(crate) enum WaitError {
    #[error("Slurm job {0} is not one this run submitted")]
    NotSubmitted(JobId),
    #[error(
        "Slurm job {0} was cancelled with the run but has not ended after {seconds} s",
        seconds = CANCEL_WAIT.as_secs()
    )]
    OutlivedCancel(JobId),
    #[error("cannot follow Slurm job {job}: squeue has failed for {seconds} s: {error}")]
    SqueueFailing {
        job: JobId,
        seconds: u64,
        error: String,
    },
}

/// The jobs this run has in flight, looked up together.
#[derive(Debug)]
pub(crate) struct SlurmQueue {
    options: SlurmOptions,
    /// The `sbatch` program: found on `PATH`, or a stand-in in unit tests.
    sbatch_program: PathBuf,
    /// The run's cancellation: every job is cancelled with it.
    cancel: Arc<Cancel>,
    state: Mutex<QueueState>,
    changed: Condvar,
}

#[derive(Debug, Default)]
struct QueueState {
    /// Jobs being waited for.
    jobs: HashMap<JobId, Watched>,
    last_poll: Option<Instant>,
    polling: bool,
    /// Why the last `squeue` failed, if it did (reported once waiting gives up).
    poll_error: Option<(Instant, String)>,
    /// When the jobs were cancelled with the run, if they were.
    cancelled: Option<Instant>,
    /// Tasks being gathered into job arrays, by split and chunk of [`ARRAY_CHUNK`].
    gathering: HashMap<(String, usize), Gathering>,
    /// Gatherings submitted, by number.
    submitted: HashMap<u64, Submitted>,
    gatherings_started: u64,
}

/// A job being waited for.
#[derive(Debug)]
struct Watched {
    submitted: Instant,
    /// How squeue last listed it, and since when in that state.
    seen: Option<(Listed, Instant)>,
}

/// How long the jobs of a cancelled run may take to end before they are no longer waited for.
const CANCEL_WAIT: Duration = Duration::from_secs(80);

/// How long `squeue` may keep failing before the jobs waited for are given up.
const POLL_FAILURE_LIMIT: Duration = Duration::from_secs(60);

/// How long a submitted job may be missing from `squeue` before it counts as gone: a job can
/// take a moment to show up after `sbatch` returns.
const SHOW_UP_GRACE: Duration = Duration::from_secs(5);

impl SlurmQueue {
    pub(crate) fn new(options: SlurmOptions, cancel: Arc<Cancel>) -> Self {
        SlurmQueue {
            options,
            sbatch_program: PathBuf::from("sbatch"),
            cancel,
            state: Mutex::new(QueueState::default()),
            changed: Condvar::new(),
        }
    }

    /// How jobs are submitted.
    pub(crate) fn options(&self) -> &SlurmOptions {
        &self.options
    }

    /// Submits `command` (program and arguments) as a batch job named `name`, with the extra
    /// `sbatch` arguments `sbatch_args` ([`SlurmOptions::args_for`] its step).
    pub(crate) fn submit(
        &self,
        name: &str,
        sbatch_args: &[String],
        command: &[String],
    ) -> Result<JobId, SubmitError> {
        if self.cancel.is_set() {
            return Err(SubmitError::Interrupted);
        }
        let id = self.sbatch(name, None, sbatch_args, &batch_script(command))?;
        self.watch(std::slice::from_ref(&id));
        Ok(id)
    }

    /// Submits `command`, the task `element`, in one job array with the other tasks of its
    /// split that arrive while they are gathered (see [`GATHER_QUIET`]); returns the job id of
    /// its element (`ARRAYID_INDEX`), or its own job's when it went alone.
    pub(crate) fn submit_element(
        &self,
        element: &Element,
        command: &[String],
    ) -> Result<JobId, SubmitError> {
        if self.cancel.is_set() {
            return Err(SubmitError::Interrupted);
        }
        let chunk = element.position / ARRAY_CHUNK;
        let index = element.position % ARRAY_CHUNK;
        let key = (element.group.clone(), chunk);
        let mut state = self.lock();
        let next = state.gatherings_started;
        let gathering = state
            .gathering
            .entry(key.clone())
            .or_insert_with(|| Gathering {
                number: next,
                expected: element
                    .count
                    .saturating_sub(chunk * ARRAY_CHUNK)
                    .clamp(1, ARRAY_CHUNK),
                array_name: element.array_name.clone(),
                task_name: element.task_name.clone(),
                sbatch_args: element.sbatch_args.clone(),
                members: Vec::new(),
                last_arrival: Instant::now(),
            });
        gathering.members.push((index, command.to_vec()));
        gathering.last_arrival = Instant::now();
        let number = gathering.number;
        if number == next {
            state.gatherings_started += 1;
        }
        self.changed.notify_all();
        loop {
            if let Some(submitted) = state.submitted.get_mut(&number) {
                submitted.left = submitted.left.saturating_sub(1);
                let result = submitted.result.clone();
                if submitted.left == 0 {
                    state.submitted.remove(&number);
                }
                return match result {
                    Ok(Submission::Single(id)) => Ok(id),
                    Ok(Submission::Array(id)) => Ok(element_id(&id, index)),
                    Err(e) => Err(SubmitError::Array(e)),
                };
            }
            // Still gathering (not yet taken by the task that submits it): due when complete,
            // quiet for long enough, or the run was cancelled.
            let wait = match state.gathering.get(&key) {
                Some(g) if g.number == number => {
                    let quiet = g.last_arrival.elapsed();
                    if g.members.len() >= g.expected
                        || quiet >= GATHER_QUIET
                        || self.cancel.is_set()
                    {
                        None
                    } else {
                        Some(GATHER_QUIET - quiet)
                    }
                }
                // Being submitted by another task of the gathering.
                _ => Some(self.options.poll_interval),
            };
            let Some(wait) = wait else {
                let Some(gathering) = state.gathering.remove(&key) else {
                    continue;
                };
                drop(state);
                let result = self.submit_gathering(&gathering);
                state = self.lock();
                state.submitted.insert(
                    number,
                    Submitted {
                        result: result.map_err(Arc::new),
                        left: gathering.members.len(),
                    },
                );
                self.changed.notify_all();
                continue;
            };
            state = self
                .changed
                .wait_timeout(state, wait)
                .map(|(guard, _)| guard)
                .unwrap_or_else(|poisoned| poisoned.into_inner().0);
        }
    }

    /// Submits the tasks gathered: a job of its own for one, else a job array whose elements
    /// are the tasks' indices; every job is then waited for.
    fn submit_gathering(&self, gathering: &Gathering) -> Result<Submission, SubmitError> {
        if self.cancel.is_set() {
            return Err(SubmitError::Interrupted);
        }
        match gathering.members.as_slice() {
            [(_, command)] => {
                let id = self.sbatch(
                    &gathering.task_name,
                    None,
                    &gathering.sbatch_args,
                    &batch_script(command),
                )?;
                self.watch(std::slice::from_ref(&id));
                Ok(Submission::Single(id))
            }
            members => {
                let mut members = members.to_vec();
                members.sort_by_key(|(index, _)| *index);
                let indices: Vec<usize> = members.iter().map(|(index, _)| *index).collect();
                let id = self.sbatch(
                    &gathering.array_name,
                    Some(&array_spec(&indices)),
                    &gathering.sbatch_args,
                    &array_script(&members),
                )?;
                let elements: Vec<JobId> = indices.iter().map(|&i| element_id(&id, i)).collect();
                self.watch(&elements);
                Ok(Submission::Array(id))
            }
        }
    }

    /// Runs `sbatch` for a job (or, with `array`, a job array) named `name` running `script`,
    /// with the extra arguments `args`, trying again when the controller is busy.
    fn sbatch(
        &self,
        name: &str,
        array: Option<&str>,
        args: &[String],
        script: &str,
    ) -> Result<JobId, SubmitError> {
        std::fs::create_dir_all(&self.options.log_dir).map_err(|source| SubmitError::LogDir {
            dir: self.options.log_dir.clone(),
            source,
        })?;
        // An element's own job id is a number no command shows: its output is named as
        // `squeue` and `scancel` name the element.
        let output = self.options.log_dir.join(match array {
            Some(_) => "%A_%a.out",
            None => "%j.out",
        });
        let mut attempt = 0;
        loop {
            let submitted = sbatch(&self.sbatch_program, name, &output, array, args, script);
            match submitted {
                Ok(id) => return Ok(id),
                Err(e) if attempt + 1 == SBATCH_TRIES => return Err(e),
                Err(_) => attempt += 1,
            }
            std::thread::sleep(Duration::from_millis(250 << attempt));
        }
    }

    /// Starts waiting for `jobs`, just submitted; cancels them if the run was cancelled while
    /// `sbatch` ran, so that no job outlives the run.
    fn watch(&self, jobs: &[JobId]) {
        let mut state = self.lock();
        for id in jobs {
            state.jobs.insert(
                id.clone(),
                Watched {
                    submitted: Instant::now(),
                    seen: None,
                },
            );
        }
        if state.cancelled.is_some() {
            drop(state);
            scancel(jobs);
        }
    }

    /// Waits until `job` has ended; returns its final state.
    pub(crate) fn wait(&self, job: &JobId) -> Result<JobEnd, WaitError> {
        let mut state = self.lock();
        loop {
            if self.cancel.is_set() && state.cancelled.is_none() {
                state.cancelled = Some(Instant::now());
                let ids: Vec<JobId> = state.jobs.keys().cloned().collect();
                drop(state);
                scancel(&ids);
                state = self.lock();
            }
            match state.jobs.get(job) {
                Some(Watched {
                    seen: Some((listed, since)),
                    ..
                }) if phase(listed, since.elapsed()) == Phase::Ended => {
                    let end = JobEnd {
                        state: listed.state.clone(),
                    };
                    state.jobs.remove(job);
                    return Ok(end);
                }
                Some(_) => {}
                None => return Err(WaitError::NotSubmitted(job.clone())),
            }
            if let Some(since) = state.cancelled
                && since.elapsed() > CANCEL_WAIT
            {
                state.jobs.remove(job);
                return Err(WaitError::OutlivedCancel(job.clone()));
            }
            if let Some((since, error)) = &state.poll_error
                && since.elapsed() > POLL_FAILURE_LIMIT
            {
                let error = WaitError::SqueueFailing {
                    job: job.clone(),
                    seconds: since.elapsed().as_secs(),
                    error: error.clone(),
                };
                state.jobs.remove(job);
                return Err(error);
            }
            let due = state
                .last_poll
                .is_none_or(|t| t.elapsed() >= self.options.poll_interval);
            if due && !state.polling {
                state.polling = true;
                let ids: Vec<JobId> = state.jobs.keys().cloned().collect();
                drop(state);
                let result = squeue(&ids);
                state = self.lock();
                state.polling = false;
                let now = Instant::now();
                state.last_poll = Some(now);
                match result {
                    Ok(mut found) => {
                        state.poll_error = None;
                        for (id, watched) in &mut state.jobs {
                            let listed = match found.remove(id) {
                                Some(listed) => listed,
                                // Not listed: purged after it ended, or not visible yet.
                                None if watched.seen.is_some()
                                    || watched.submitted.elapsed() > SHOW_UP_GRACE =>
                                {
                                    Listed::gone()
                                }
                                None => continue,
                            };
                            match &mut watched.seen {
                                Some((seen, _)) if seen.state == listed.state => *seen = listed,
                                seen => *seen = Some((listed, now)),
                            }
                        }
                    }
                    Err(e) => {
                        if state.poll_error.is_none() {
                            state.poll_error = Some((Instant::now(), e));
                        }
                    }
                }
                self.changed.notify_all();
                continue;
            }
            state = self
                .changed
                .wait_timeout(state, self.options.poll_interval)
                .map(|(guard, _)| guard)
                .unwrap_or_else(|poisoned| poisoned.into_inner().0);
        }
    }

    /// The last lines Slurm wrote for `job` (its own stdout and stderr), if they can be read
    /// from here. Only the end of the file is read: a job can print gigabytes.
    pub(crate) fn output_tail(&self, job: &JobId, lines: usize) -> String {
        use std::io::{Read as _, Seek as _, SeekFrom};
        let path = self.options.log_dir.join(format!("{job}.out"));
        let mut bytes = Vec::new();
        let read = std::fs::File::open(&path).and_then(|mut file| {
            let len = file.metadata()?.len();
            file.seek(SeekFrom::Start(len.saturating_sub(OUTPUT_TAIL_BYTES)))?;
            file.take(OUTPUT_TAIL_BYTES).read_to_end(&mut bytes)
        });
        match read {
            Ok(_) => crate::logs::last_lines(&bytes, lines),
            Err(_) => String::new(),
        }
    }

    /// Cancels `job` (best effort: used when a run stops waiting for it).
    pub(crate) fn cancel(&self, job: &JobId) {
        scancel(std::slice::from_ref(job));
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, QueueState> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// How much of the end of a job's output file is read for its last lines.
const OUTPUT_TAIL_BYTES: u64 = 64 << 10;

/// Cancels `jobs` (best effort), in as few `scancel` calls as the command line allows; the
/// elements of a job array are cancelled with the array, each named once.
fn scancel(jobs: &[JobId]) {
    let jobs = whole_jobs(jobs);
    for chunk in jobs.chunks(500) {
        let _ = Command::new("scancel")
            .args(chunk.iter().map(|j| j.0.as_str()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// The job ids of `jobs` with each job array named once by its own id instead of its
/// elements' (`12_3`, `12_4` → `12`), in first-seen order.
fn whole_jobs(jobs: &[JobId]) -> Vec<JobId> {
    let mut seen = std::collections::HashSet::new();
    jobs.iter()
        .map(|id| JobId(array_of(id).to_owned()))
        .filter(|id| seen.insert(id.clone()))
        .collect()
}

/// The job id of a job array's element, or of the job itself when it is no element.
fn array_of(job: &JobId) -> &str {
    job.0.split('_').next().unwrap_or(&job.0)
}

/// The id of element `index` of job array `array`, as Slurm spells it.
fn element_id(array: &JobId, index: usize) -> JobId {
    JobId(format!("{array}_{index}"))
}

/// `--array`'s value for the element indices `sorted`: runs of consecutive indices as ranges
/// (`0-5,7,9-10`).
fn array_spec(sorted: &[usize]) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut i = 0;
    while i < sorted.len() {
        let start = sorted[i];
        let mut end = start;
        while i + 1 < sorted.len() && sorted[i + 1] == end + 1 {
            i += 1;
            end = sorted[i];
        }
        parts.push(if end == start {
            start.to_string()
        } else {
            format!("{start}-{end}")
        });
        i += 1;
    }
    parts.join(",")
}

/// A POSIX shell script that runs `command`, for `sbatch` to read on stdin.
fn batch_script(command: &[String]) -> String {
    format!("#!/bin/sh\nexec {}\n", quoted(command))
}

/// `command` as one line of a shell script, every argument quoted.
fn quoted(command: &[String]) -> String {
    let quoted: Vec<String> = command.iter().map(|a| shell_quote(a)).collect();
    quoted.join(" ")
}

/// A POSIX shell script for a job array: element `index` runs its own `command` of `members`
/// (index, command). The commands of a split differ in the task id alone, so the script lists
/// those values and runs one command line; otherwise it lists whole commands. An index with
/// no task (none is submitted) fails, saying so.
fn array_script(members: &[(usize, Vec<String>)]) -> String {
    let mut script = String::from("#!/bin/sh\ncase \"$SLURM_ARRAY_TASK_ID\" in\n");
    let varying = members.first().and_then(|(_, first)| {
        let same_shape = members.iter().all(|(_, c)| c.len() == first.len());
        let differing: Vec<usize> = (0..first.len())
            .filter(|&i| members.iter().any(|(_, c)| c[i] != first[i]))
            .collect();
        match (same_shape, differing.as_slice()) {
            (true, [one]) => Some((*one, first)),
            _ => None,
        }
    });
    let no_task = "*) echo \"no task for element $SLURM_ARRAY_TASK_ID of this job array\" >&2; exit 1 ;;\nesac\n";
    match varying {
        Some((at, first)) => {
            for (index, command) in members {
                script.push_str(&format!("{index}) task={} ;;\n", shell_quote(&command[at])));
            }
            script.push_str(no_task);
            let mut line = first.clone();
            line[at] = String::new();
            let mut words: Vec<String> = line.iter().map(|a| shell_quote(a)).collect();
            words[at] = "\"$task\"".to_owned();
            script.push_str(&format!("exec {}\n", words.join(" ")));
        }
        None => {
            for (index, command) in members {
                script.push_str(&format!("{index}) exec {} ;;\n", quoted(command)));
            }
            script.push_str(no_task);
        }
    }
    script
}

fn sbatch(
    program: &Path,
    name: &str,
    output: &Path,
    array: Option<&str>,
    extra: &[String],
    script: &str,
) -> Result<JobId, SubmitError> {
    let mut command = Command::new(program);
    command
        .arg("--parsable")
        // A task may run again from the start; the user's `--no-requeue` (later) wins.
        .arg("--requeue")
        .arg(format!("--job-name={name}"))
        .arg(format!("--output={}", output.display()));
    if let Some(spec) = array {
        command.arg(format!("--array={spec}"));
    }
    let mut child = command
        .args(extra)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(SubmitError::Spawn)?;
    // sbatch may refuse and exit before reading its script: what it said is then the reason,
    // not the broken pipe, so it is waited for whatever the write did.
    let written = match child.stdin.take() {
        Some(mut stdin) => stdin.write_all(script.as_bytes()),
        None => Ok(()),
    };
    let out = child.wait_with_output().map_err(SubmitError::Wait)?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        return Err(SubmitError::Refused {
            status: out.status,
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    written.map_err(SubmitError::Script)?;
    parse_job_id(&stdout).ok_or_else(|| SubmitError::NoJobId(stdout.trim().to_string()))
}

/// The job id in `sbatch --parsable` output: `1234` or `1234;cluster`.
fn parse_job_id(stdout: &str) -> Option<JobId> {
    let line = stdout.lines().map(str::trim).find(|l| !l.is_empty())?;
    let id = line.split(';').next()?.trim();
    (!id.is_empty() && id.chars().all(|c| c.is_ascii_digit() || c == '_'))
        .then(|| JobId(id.to_owned()))
}

/// The `--Format` of squeue: each field followed by `|`. `JobArrayID` names an array's element
/// `ARRAYID_INDEX` (`JobID` gives the element's own number, or the array's while it is
/// pending) and any other job by its id.
const SQUEUE_FORMAT: &str = "--Format=JobArrayID:|,State:|,Requeue:|,RestartCnt:|";

/// How the controller lists `ids` (those it still knows, finished ones included).
fn squeue(ids: &[JobId]) -> Result<HashMap<JobId, Listed>, String> {
    let mut found = HashMap::new();
    // One call for many jobs, a job array named once (`--array` lists each of its elements on
    // a line of its own); the job list is split so the command line stays short.
    for chunk in whole_jobs(ids).chunks(500) {
        let list: Vec<&str> = chunk.iter().map(|j| j.0.as_str()).collect();
        let out = Command::new("squeue")
            .args([
                "--noheader",
                "--array",
                "--states=all",
                SQUEUE_FORMAT,
                "--jobs",
            ])
            .arg(list.join(","))
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("cannot run `squeue`: {e}"))?;
        let stdout = String::from_utf8_lossy(&out.stdout);
        if !out.status.success() {
            let stderr = String::from_utf8_lossy(&out.stderr);
            // Every job of the list already purged: nothing to report, not a failure.
            if stderr.contains("Invalid job id") {
                continue;
            }
            return Err(format!("squeue failed ({}): {}", out.status, stderr.trim()));
        }
        found.extend(parse_squeue(&stdout));
    }
    Ok(found)
}

/// [`SQUEUE_FORMAT`] lines: job id, state, whether Slurm may requeue the job, how many times
/// it did. Lines that are not of that form are skipped. A line for elements of a job array not
/// yet split apart (`12_[3-5,7%2]`, which `--array` should not print) stands for each of them.
fn parse_squeue(stdout: &str) -> HashMap<JobId, Listed> {
    stdout
        .lines()
        .filter_map(|line| {
            let mut fields = line.split('|').map(str::trim);
            let id = fields.next().filter(|id| !id.is_empty())?;
            // squeue may append a reason (`CANCELLED by 0`).
            let state = fields.next()?.split_whitespace().next()?;
            let requeue = matches!(fields.next(), Some("1" | "yes" | "YES" | "true"));
            let restarts = fields.next().and_then(|n| n.parse().ok()).unwrap_or(0);
            let listed = Listed {
                state: state.to_owned(),
                requeue,
                restarts,
            };
            Some(
                listed_ids(id)?
                    .into_iter()
                    .map(move |id| (id, listed.clone())),
            )
        })
        .flatten()
        .collect()
}

/// The jobs a job id field names: itself, or each element of `ARRAYID_[INDICES]` where
/// INDICES is a list of indices and ranges, possibly with a `%LIMIT`. None for a malformed one.
fn listed_ids(field: &str) -> Option<Vec<JobId>> {
    let Some((array, rest)) = field.split_once("_[") else {
        return Some(vec![JobId(field.to_owned())]);
    };
    let indices = rest.strip_suffix(']')?;
    let indices = indices.split('%').next()?;
    let mut ids = Vec::new();
    for part in indices.split(',') {
        let (start, end) = match part.split_once('-') {
            Some((a, b)) => (a.parse::<usize>().ok()?, b.parse::<usize>().ok()?),
            None => {
                let i = part.parse::<usize>().ok()?;
                (i, i)
            }
        };
        // A range is at most what one array may hold: a garbled line cannot make millions.
        if end < start || end - start > ARRAY_CHUNK * 100 {
            return None;
        }
        ids.extend((start..=end).map(|i| JobId(format!("{array}_{i}"))));
    }
    Some(ids)
}

/// The id of the Slurm job this process runs in, if it does: `slurm:ID`, or
/// `slurm:ARRAYID_INDEX` in an element of a job array.
pub(crate) fn current_job() -> Option<String> {
    let var = |name| std::env::var(name).ok().filter(|v: &String| !v.is_empty());
    job_of(
        var(SLURM_JOB_ID_ENV),
        var(SLURM_ARRAY_JOB_ID_ENV),
        var(SLURM_ARRAY_TASK_ID_ENV),
    )
}

/// [`current_job`] from the values of `SLURM_JOB_ID`, `SLURM_ARRAY_JOB_ID` and
/// `SLURM_ARRAY_TASK_ID`.
fn job_of(job: Option<String>, array: Option<String>, index: Option<String>) -> Option<String> {
    match (array, index) {
        (Some(array), Some(index)) => Some(format!("slurm:{array}_{index}")),
        _ => job.map(|id| format!("slurm:{id}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_ids_are_read_from_parsable_output() {
        assert_eq!(parse_job_id("1234\n"), Some(JobId("1234".into())));
        assert_eq!(parse_job_id("77;cluster\n"), Some(JobId("77".into())));
        assert_eq!(parse_job_id("\n 5 \n"), Some(JobId("5".into())));
        assert_eq!(parse_job_id(""), None);
        assert_eq!(parse_job_id("Submitted batch job 3"), None);
    }

    /// The phase of job `id` in `found`, `in_state_for` after a poll first saw its state.
    fn phase_of(found: &HashMap<JobId, Listed>, id: &str, in_state_for: Duration) -> Phase {
        phase(&found[&JobId(id.into())], in_state_for)
    }

    #[test]
    fn squeue_lines_give_states() {
        let found = parse_squeue(
            "12|RUNNING|1|0|\n13|COMPLETED|0|0|\n\n14|CANCELLED by 0|1|0|\nnonsense\n|x|\n",
        );
        assert_eq!(found.len(), 3, "{found:?}");
        assert_eq!(
            found[&JobId("14".into())],
            Listed {
                state: "CANCELLED".into(),
                requeue: true,
                restarts: 0
            }
        );
        assert_eq!(phase_of(&found, "12", Duration::ZERO), Phase::Waiting);
        assert_eq!(phase_of(&found, "13", Duration::ZERO), Phase::Ended);
        assert_eq!(phase_of(&found, "14", Duration::ZERO), Phase::Ended);
        // What squeue 22.05 prints, padding included.
        let found = parse_squeue("2|PENDING|1|1                   \n");
        assert_eq!(found[&JobId("2".into())].restarts, 1);
        assert_eq!(phase_of(&found, "2", Duration::ZERO), Phase::Waiting);
    }

    #[test]
    fn jobs_slurm_may_requeue_are_still_pending() {
        let found = parse_squeue(
            "20|PREEMPTED|1|0|\n21|NODE_FAIL|1|2|\n22|REQUEUED|1|1|\n23|REQUEUE_HOLD|1|1|\n\
             24|REQUEUE_FED|1|0|\n25|RESIZING|0|0|\n26|COMPLETING|1|0|\n27|PENDING|1|3|\n",
        );
        for id in ["20", "21", "22", "23", "24", "25", "26", "27"] {
            assert_eq!(
                phase_of(&found, id, Duration::from_secs(1)),
                Phase::Waiting,
                "job {id}: {:?}",
                found[&JobId(id.into())]
            );
        }
        // Requeued forever is not waited for forever.
        assert_eq!(phase_of(&found, "20", REQUEUE_WAIT), Phase::Ended);
        assert_eq!(phase_of(&found, "21", REQUEUE_WAIT), Phase::Ended);
    }

    #[test]
    fn jobs_slurm_will_not_requeue_have_ended() {
        let found = parse_squeue(
            "30|PREEMPTED|0|0|\n31|NODE_FAIL|0|0|\n32|FAILED|1|0|\n33|TIMEOUT|1|0|\n\
             34|OUT_OF_MEMORY|1|0|\n35|BOOT_FAIL|1|0|\n36|DEADLINE|1|0|\n37|SPECIAL_EXIT|1|0|\n",
        );
        for id in ["30", "31", "32", "33", "34", "35", "36", "37"] {
            assert_eq!(
                phase_of(&found, id, Duration::ZERO),
                Phase::Ended,
                "job {id}"
            );
        }
        assert_eq!(phase(&Listed::gone(), Duration::ZERO), Phase::Ended);
    }

    #[test]
    fn the_script_quotes_every_argument() {
        let script = batch_script(&[
            "/opt/my flows/bin".into(),
            "--datastore".into(),
            "s3://b/p".into(),
            "it's".into(),
        ]);
        assert_eq!(
            script,
            "#!/bin/sh\nexec '/opt/my flows/bin' --datastore s3://b/p 'it'\\''s'\n"
        );
    }

    #[test]
    fn squeue_lists_each_element_of_a_job_array() {
        // What `squeue --array` of Slurm 22.05 prints for an array, a job of its own beside it.
        let found = parse_squeue(
            "1729_0|COMPLETED|1|0|\n1729_2|FAILED|1|0|\n1729_3|RUNNING|1|1|\n1734|PENDING|1|0|\n",
        );
        assert_eq!(found.len(), 4, "{found:?}");
        assert_eq!(phase_of(&found, "1729_0", Duration::ZERO), Phase::Ended);
        assert_eq!(found[&JobId("1729_2".into())].state, "FAILED");
        assert_eq!(found[&JobId("1729_3".into())].restarts, 1);
        assert_eq!(phase_of(&found, "1729_3", Duration::ZERO), Phase::Waiting);
        assert_eq!(phase_of(&found, "1734", Duration::ZERO), Phase::Waiting);
    }

    #[test]
    fn elements_not_yet_split_apart_stand_for_each_of_them() {
        let found = parse_squeue("40_[3-5,7%2]|PENDING|1|0|\n40_1|RUNNING|1|0|\n");
        let mut ids: Vec<&str> = found.keys().map(|id| id.0.as_str()).collect();
        ids.sort();
        assert_eq!(ids, ["40_1", "40_3", "40_4", "40_5", "40_7"]);
        assert_eq!(found[&JobId("40_4".into())].state, "PENDING");
        // Malformed or absurd lists name no job.
        for bad in ["41_[3-]", "41_[a]", "41_[5-3]", "41_[0-999999999]", "41_[1"] {
            assert!(
                parse_squeue(&format!("{bad}|PENDING|1|0|\n")).is_empty(),
                "{bad}"
            );
        }
    }

    #[test]
    fn array_specs_are_ranges_of_consecutive_indices() {
        assert_eq!(array_spec(&[0, 1, 2, 3, 4, 5]), "0-5");
        assert_eq!(array_spec(&[0, 1, 2, 4, 7, 8]), "0-2,4,7-8");
        assert_eq!(array_spec(&[3]), "3");
        assert_eq!(array_spec(&[]), "");
    }

    #[test]
    fn an_array_script_picks_the_task_of_its_element() {
        let command = |task: &str| -> Vec<String> {
            [
                "/opt/my flows/bin",
                "step",
                "work",
                "--task-id",
                task,
                "--capture-output",
            ]
            .map(String::from)
            .to_vec()
        };
        let script = array_script(&[(0, command("0")), (2, command("it's"))]);
        assert_eq!(
            script,
            "#!/bin/sh\ncase \"$SLURM_ARRAY_TASK_ID\" in\n\
             0) task=0 ;;\n\
             2) task='it'\\''s' ;;\n\
             *) echo \"no task for element $SLURM_ARRAY_TASK_ID of this job array\" >&2; exit 1 ;;\n\
             esac\n\
             exec '/opt/my flows/bin' step work --task-id \"$task\" --capture-output\n"
        );
        // Commands differing in more than one argument are listed whole.
        let mut other = command("1");
        other[2] = "other".into();
        let script = array_script(&[(0, command("0")), (1, other)]);
        assert!(
            script.contains(
                "0) exec '/opt/my flows/bin' step work --task-id 0 --capture-output ;;\n"
            ) && script.contains(
                "1) exec '/opt/my flows/bin' step other --task-id 1 --capture-output ;;\n"
            ) && script.ends_with("esac\n"),
            "{script}"
        );
    }

    #[test]
    fn the_script_of_an_array_runs_each_elements_own_task() {
        let members: Vec<(usize, Vec<String>)> = ["5", "6", "9"]
            .iter()
            .enumerate()
            .map(|(i, task)| (i, vec!["echo".into(), "task".into(), (*task).into()]))
            .collect();
        let script = array_script(&members);
        for (index, expected) in [("0", "task 5\n"), ("1", "task 6\n"), ("2", "task 9\n")] {
            let out = Command::new("sh")
                .args(["-c", &script])
                .env(SLURM_ARRAY_TASK_ID_ENV, index)
                .output()
                .unwrap();
            assert!(out.status.success());
            assert_eq!(String::from_utf8_lossy(&out.stdout), expected);
        }
        let out = Command::new("sh")
            .args(["-c", &script])
            .env(SLURM_ARRAY_TASK_ID_ENV, "7")
            .output()
            .unwrap();
        assert!(!out.status.success());
        assert!(String::from_utf8_lossy(&out.stderr).contains("no task for element 7"));
    }

    #[test]
    fn an_array_is_named_once_to_squeue_and_scancel() {
        let ids = ["12_3", "12_4", "13", "12_9", "14_0"].map(|id| JobId(id.into()));
        let whole: Vec<String> = whole_jobs(&ids).into_iter().map(|id| id.0).collect();
        assert_eq!(whole, ["12", "13", "14"]);
        assert_eq!(element_id(&JobId("12".into()), 3), JobId("12_3".into()));
    }

    #[test]
    fn a_task_in_an_array_records_its_element() {
        let s = |v: &str| Some(v.to_owned());
        assert_eq!(
            job_of(s("1731"), s("1729"), s("1")),
            Some("slurm:1729_1".into())
        );
        assert_eq!(job_of(s("1734"), None, None), Some("slurm:1734".into()));
        assert_eq!(job_of(None, None, None), None);
    }

    /// A queue whose `sbatch` is a shell script of `body` in a new directory (`$0` is the
    /// script's own path there).
    fn fake_queue(body: &str) -> (tempfile::TempDir, SlurmQueue) {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let program = dir.path().join("sbatch");
        std::fs::write(&program, format!("#!/bin/sh\n{body}")).unwrap();
        std::fs::set_permissions(&program, std::fs::Permissions::from_mode(0o755)).unwrap();
        let mut queue = SlurmQueue::new(
            SlurmOptions::new(dir.path().join("logs")),
            Arc::new(Cancel::default()),
        );
        queue.sbatch_program = program;
        (dir, queue)
    }

    /// An `sbatch` that records each call's arguments (`$0.call.N`) and script (`….script`)
    /// and prints job id 77.
    const RECORDING_SBATCH: &str = "call=$(mktemp \"$0.call.XXXXXX\")\nprintf '%s\\n' \"$@\" > \"$call\"\n\
         cat > \"$call.script\"\necho 77\n";

    /// The arguments and the script of every `sbatch` call recorded in `dir`.
    fn sbatch_calls(dir: &Path) -> Vec<(Vec<String>, String)> {
        let mut calls: Vec<(Vec<String>, String)> = std::fs::read_dir(dir)
            .unwrap()
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                let name = p.file_name().unwrap().to_string_lossy().into_owned();
                name.starts_with("sbatch.call.") && !name.ends_with(".script")
            })
            .map(|p| {
                let args = std::fs::read_to_string(&p).unwrap();
                let script = std::fs::read_to_string(p.with_extension(format!(
                    "{}.script",
                    p.extension().unwrap().to_string_lossy()
                )))
                .unwrap();
                (args.lines().map(String::from).collect(), script)
            })
            .collect();
        calls.sort();
        calls
    }

    /// Task `position` of a foreach split over `count`.
    fn element(count: usize, position: usize) -> Element {
        Element {
            group: "work/start/0".into(),
            count,
            position,
            array_name: "F.work".into(),
            task_name: format!("F.work.{position}"),
            sbatch_args: vec!["--mem=100M".into(), "--partition=big".into()],
        }
    }

    /// Submits the tasks at `positions` of a split over `count`, each from a thread of its own
    /// as the run's workers do; the job id each got, in the order of `positions`.
    fn submit_together(queue: &SlurmQueue, count: usize, positions: &[usize]) -> Vec<String> {
        std::thread::scope(|scope| {
            let handles: Vec<_> = positions
                .iter()
                .map(|&p| {
                    scope.spawn(move || {
                        let command: Vec<String> = ["flow", "step", "work", "--task-id"]
                            .map(String::from)
                            .into_iter()
                            .chain([p.to_string()])
                            .collect();
                        queue
                            .submit_element(&element(count, p), &command)
                            .map(|id| id.0)
                            .unwrap_or_else(|e| format!("error: {e}"))
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        })
    }

    #[test]
    fn the_tasks_of_a_split_go_as_one_job_array() {
        let (dir, queue) = fake_queue(RECORDING_SBATCH);
        let ids = submit_together(&queue, 5, &[3, 0, 4, 1, 2]);
        assert_eq!(ids, ["77_3", "77_0", "77_4", "77_1", "77_2"]);
        let calls = sbatch_calls(dir.path());
        assert_eq!(calls.len(), 1, "{calls:?}");
        let (args, script) = &calls[0];
        assert!(args.contains(&"--array=0-4".to_owned()), "{args:?}");
        assert!(args.contains(&"--job-name=F.work".to_owned()), "{args:?}");
        let output = format!("--output={}", dir.path().join("logs/%A_%a.out").display());
        assert!(args.contains(&output), "{args:?}");
        // The step's arguments go once for the whole array, in their order, after ours.
        assert_eq!(args[args.len() - 2..], ["--mem=100M", "--partition=big"]);
        for task in 0..5 {
            assert!(
                script.contains(&format!("{task}) task={task} ;;")),
                "{script}"
            );
        }
        // Every element is waited for under its own id.
        let state = queue.lock();
        let mut watched: Vec<&str> = state.jobs.keys().map(|j| j.0.as_str()).collect();
        watched.sort();
        assert_eq!(watched, ["77_0", "77_1", "77_2", "77_3", "77_4"]);
        assert!(state.gathering.is_empty() && state.submitted.is_empty());
    }

    #[test]
    fn the_tasks_of_a_split_reached_go_once_no_other_comes() {
        // Three of five were reused by `resume`: the two others go without them.
        let (dir, queue) = fake_queue(RECORDING_SBATCH);
        let ids = submit_together(&queue, 5, &[1, 3]);
        assert_eq!(ids, ["77_1", "77_3"]);
        let calls = sbatch_calls(dir.path());
        assert_eq!(calls.len(), 1, "{calls:?}");
        assert!(calls[0].0.contains(&"--array=1,3".to_owned()), "{calls:?}");
    }

    #[test]
    fn a_task_reached_alone_is_a_job_of_its_own() {
        let (dir, queue) = fake_queue(RECORDING_SBATCH);
        assert_eq!(submit_together(&queue, 5, &[2]), ["77"]);
        let calls = sbatch_calls(dir.path());
        let [(args, script)] = calls.as_slice() else {
            panic!("one call expected: {calls:?}");
        };
        assert!(!args.iter().any(|a| a.starts_with("--array")), "{args:?}");
        assert!(args.contains(&"--job-name=F.work.2".to_owned()), "{args:?}");
        assert_eq!(args[args.len() - 2..], ["--mem=100M", "--partition=big"]);
        assert_eq!(script, "#!/bin/sh\nexec flow step work --task-id 2\n");
    }

    /// A step called `name` asking `resources`.
    fn step_asking(name: &'static str, resources: crate::graph::Resources) -> StepSpec {
        let mut step = crate::graph::test_graphs::step(name, crate::graph::Transition::End, None);
        step.options.resources = resources;
        step
    }

    #[test]
    fn a_step_s_resources_become_sbatch_limits_before_the_user_s_arguments() {
        use crate::graph::Resources;
        let mut options = SlurmOptions::new("/logs");
        options.sbatch_args = vec!["--account=lab".into(), "--mem=8G".into()];
        options.step_sbatch_args = vec![
            ("train".into(), "--partition=gpu".into()),
            ("other".into(), "--partition=cpu".into()),
            ("train".into(), "--time=10".into()),
        ];
        let train = step_asking(
            "train",
            Resources {
                cpus: Some(8),
                memory_bytes: Some((64 << 30) + 1),
                gpus: Some(2),
            },
        );
        assert_eq!(
            options.args_for(&train),
            [
                "--cpus-per-task=8",
                "--mem=65537M",
                "--gres=gpu:2",
                "--account=lab",
                "--mem=8G",
                "--partition=gpu",
                "--time=10",
            ]
        );
        let plain = step_asking("plain", Resources::NONE);
        assert_eq!(options.args_for(&plain), ["--account=lab", "--mem=8G"]);
        let no_gpu = step_asking(
            "no_gpu",
            Resources {
                gpus: Some(0),
                ..Resources::NONE
            },
        );
        assert_eq!(
            SlurmOptions::new("/logs").args_for(&no_gpu),
            Vec::<String>::new()
        );
    }

    #[test]
    fn a_single_job_carries_its_step_s_arguments() {
        let (dir, queue) = fake_queue(RECORDING_SBATCH);
        let args = ["--cpus-per-task=2".to_owned(), "--mem=100M".to_owned()];
        let id = queue
            .submit("F.train.1", &args, &["flow".to_owned(), "step".to_owned()])
            .expect("submitted");
        assert_eq!(id.0, "77");
        let calls = sbatch_calls(dir.path());
        let [(recorded, _)] = calls.as_slice() else {
            panic!("one call expected: {calls:?}");
        };
        assert_eq!(recorded[recorded.len() - 2..], args);
    }

    #[test]
    fn a_foreach_past_one_chunk_goes_as_several_arrays() {
        let (dir, queue) = fake_queue(RECORDING_SBATCH);
        let count = ARRAY_CHUNK + 2;
        let ids = submit_together(
            &queue,
            count,
            &[ARRAY_CHUNK - 1, ARRAY_CHUNK, ARRAY_CHUNK + 1],
        );
        // Position 999 is the last of the first chunk and goes alone; 1000 and 1001 are the
        // whole second chunk, elements 0 and 1 of its array.
        assert_eq!(ids, ["77", "77_0", "77_1"]);
        let calls = sbatch_calls(dir.path());
        assert_eq!(calls.len(), 2, "{calls:?}");
        let arrays: Vec<&String> = calls
            .iter()
            .flat_map(|(args, _)| args.iter().filter(|a| a.starts_with("--array")))
            .collect();
        assert_eq!(arrays, ["--array=0-1"]);
    }

    #[test]
    fn sbatch_refusing_before_it_reads_the_script_is_reported_as_sbatch_said() {
        // The script is larger than a pipe holds, so that writing it fails for sure once sbatch
        // exited without reading it (as a real sbatch does on some errors).
        let (dir, _queue) =
            fake_queue("echo 'sbatch: error: QOSMaxSubmitJobPerUserLimit' >&2\nexit 1\n");
        let script = format!("#!/bin/sh\n#{}\n", "x".repeat(1 << 20));
        let result = sbatch(
            &dir.path().join("sbatch"),
            "F.work.0",
            &dir.path().join("out"),
            None,
            &[],
            &script,
        );
        match result {
            Err(SubmitError::Refused { stderr, .. }) => {
                assert!(stderr.contains("QOSMaxSubmitJobPerUserLimit"), "{stderr}");
            }
            other => panic!("expected sbatch's refusal, got {other:?}"),
        }
    }

    #[test]
    fn a_refused_array_fails_each_of_its_tasks() {
        let (_dir, queue) =
            fake_queue("echo 'sbatch: error: QOSMaxSubmitJobPerUserLimit' >&2\nexit 1\n");
        let results = submit_together(&queue, 3, &[0, 1, 2]);
        for result in &results {
            assert!(
                result.starts_with("error: sbatch failed") && result.contains("QOSMaxSubmit"),
                "{results:?}"
            );
        }
        let state = queue.lock();
        assert!(state.jobs.is_empty() && state.gathering.is_empty() && state.submitted.is_empty());
    }

    #[test]
    fn a_run_cancelled_while_its_tasks_gather_submits_none_of_them() {
        let (dir, queue) = fake_queue(RECORDING_SBATCH);
        let results = std::thread::scope(|scope| {
            // Two of three tasks arrive; the third never does.
            let gathering = scope.spawn(|| submit_together(&queue, 3, &[0, 1]));
            let arrived = || {
                queue
                    .lock()
                    .gathering
                    .values()
                    .map(|g| g.members.len())
                    .sum::<usize>()
            };
            while arrived() < 2 && !gathering.is_finished() {
                std::thread::yield_now();
            }
            queue.cancel.trigger(15);
            gathering.join().unwrap()
        });
        let calls = sbatch_calls(dir.path());
        if results.iter().all(|r| r.contains("interrupted")) {
            assert!(calls.is_empty(), "{calls:?}");
        } else {
            // Only a machine too busy to trigger the cancellation within the gathering's quiet
            // time gets here: then both tasks went, together, and are waited for.
            assert_eq!(results, ["77_0", "77_1"]);
            assert_eq!(calls.len(), 1, "{calls:?}");
            assert_eq!(queue.lock().jobs.len(), 2);
        }
    }
}
