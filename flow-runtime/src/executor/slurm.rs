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

/// The environment variable Slurm sets in a job to its id; `step` records it in the task's
/// metadata, so `dump` and `logs` say which job ran a task.
pub const SLURM_JOB_ID_ENV: &str = "SLURM_JOB_ID";

/// How to submit tasks to Slurm.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlurmOptions {
    /// Extra arguments for every `sbatch` call, before the script: `--partition=gpu`,
    /// `--account=…`, `--time=…`, `--mem=…`.
    pub sbatch_args: Vec<String>,
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
            log_dir: log_dir.into(),
            poll_interval: Duration::from_millis(200),
        }
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
            cancel,
            state: Mutex::new(QueueState::default()),
            changed: Condvar::new(),
        }
    }

    /// Submits `command` (program and arguments) as a batch job named `name`.
    pub(crate) fn submit(&self, name: &str, command: &[String]) -> Result<JobId, SubmitError> {
        if self.cancel.is_set() {
            return Err(SubmitError::Interrupted);
        }
        std::fs::create_dir_all(&self.options.log_dir).map_err(|source| SubmitError::LogDir {
            dir: self.options.log_dir.clone(),
            source,
        })?;
        let output = self.options.log_dir.join("%j.out");
        let script = batch_script(command);
        // sbatch fails transiently when the controller is busy: try a few times.
        let mut attempt = 0;
        let id = loop {
            match sbatch(name, &output, &self.options.sbatch_args, &script) {
                Ok(id) => break id,
                Err(e) if attempt + 1 == SBATCH_TRIES => return Err(e),
                Err(_) => attempt += 1,
            }
            std::thread::sleep(Duration::from_millis(250 << attempt));
        };
        let mut state = self.lock();
        state.jobs.insert(
            id.clone(),
            Watched {
                submitted: Instant::now(),
                seen: None,
            },
        );
        // Cancelled while sbatch ran: the job must not outlive the run.
        if state.cancelled.is_some() {
            drop(state);
            scancel(std::slice::from_ref(&id));
        }
        Ok(id)
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

/// Cancels `jobs` (best effort), in as few `scancel` calls as the command line allows.
fn scancel(jobs: &[JobId]) {
    for chunk in jobs.chunks(500) {
        let _ = Command::new("scancel")
            .args(chunk.iter().map(|j| j.0.as_str()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// A POSIX shell script that runs `command`, for `sbatch` to read on stdin.
fn batch_script(command: &[String]) -> String {
    let quoted: Vec<String> = command.iter().map(|a| shell_quote(a)).collect();
    format!("#!/bin/sh\nexec {}\n", quoted.join(" "))
}

fn sbatch(name: &str, output: &Path, extra: &[String], script: &str) -> Result<JobId, SubmitError> {
    let mut child = Command::new("sbatch")
        .arg("--parsable")
        // A task may run again from the start; the user's `--no-requeue` (later) wins.
        .arg("--requeue")
        .arg(format!("--job-name={name}"))
        .arg(format!("--output={}", output.display()))
        .args(extra)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(SubmitError::Spawn)?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(script.as_bytes())
            .map_err(SubmitError::Script)?;
    }
    let out = child.wait_with_output().map_err(SubmitError::Wait)?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        return Err(SubmitError::Refused {
            status: out.status,
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    parse_job_id(&stdout).ok_or_else(|| SubmitError::NoJobId(stdout.trim().to_string()))
}

/// The job id in `sbatch --parsable` output: `1234` or `1234;cluster`.
fn parse_job_id(stdout: &str) -> Option<JobId> {
    let line = stdout.lines().map(str::trim).find(|l| !l.is_empty())?;
    let id = line.split(';').next()?.trim();
    (!id.is_empty() && id.chars().all(|c| c.is_ascii_digit() || c == '_'))
        .then(|| JobId(id.to_owned()))
}

/// The `--Format` of squeue: each field followed by `|`.
const SQUEUE_FORMAT: &str = "--Format=JobID:|,State:|,Requeue:|,RestartCnt:|";

/// How the controller lists `ids` (those it still knows, finished ones included).
fn squeue(ids: &[JobId]) -> Result<HashMap<JobId, Listed>, String> {
    let mut found = HashMap::new();
    // One call for many jobs; the job list is split so the command line stays short.
    for chunk in ids.chunks(500) {
        let list: Vec<&str> = chunk.iter().map(|j| j.0.as_str()).collect();
        let out = Command::new("squeue")
            .args(["--noheader", "--states=all", SQUEUE_FORMAT, "--jobs"])
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
/// it did. Lines that are not of that form are skipped.
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
            Some((
                JobId(id.to_owned()),
                Listed {
                    state: state.to_owned(),
                    requeue,
                    restarts,
                },
            ))
        })
        .collect()
}

/// The id of the Slurm job this process runs in, if it does.
pub(crate) fn current_job() -> Option<String> {
    std::env::var(SLURM_JOB_ID_ENV)
        .ok()
        .filter(|id| !id.is_empty())
        .map(|id| format!("slurm:{id}"))
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
}
