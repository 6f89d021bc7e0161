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

use std::collections::HashMap;
use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

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
    /// be on a shared file system.
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
    "NODE_FAIL",
    "OUT_OF_MEMORY",
    "PREEMPTED",
    "BOOT_FAIL",
    "DEADLINE",
    "SPECIAL_EXIT",
    "REVOKED",
];

fn is_final(state: &str) -> bool {
    // squeue may append a reason (`CANCELLED by 0`).
    let state = state.split_whitespace().next().unwrap_or(state);
    FINAL_STATES.contains(&state)
}

/// The jobs this run has in flight, looked up together.
#[derive(Debug)]
pub(crate) struct SlurmQueue {
    options: SlurmOptions,
    state: Mutex<QueueState>,
    changed: Condvar,
}

#[derive(Debug, Default)]
struct QueueState {
    /// Jobs being waited for: when they were submitted, and their last known state.
    jobs: HashMap<JobId, (Instant, Option<String>)>,
    last_poll: Option<Instant>,
    polling: bool,
    /// Why the last `squeue` failed, if it did (reported once waiting gives up).
    poll_error: Option<(Instant, String)>,
}

/// How long `squeue` may keep failing before the jobs waited for are given up.
const POLL_FAILURE_LIMIT: Duration = Duration::from_secs(60);

/// How long a submitted job may be missing from `squeue` before it counts as gone: a job can
/// take a moment to show up after `sbatch` returns.
const SHOW_UP_GRACE: Duration = Duration::from_secs(5);

impl SlurmQueue {
    pub(crate) fn new(options: SlurmOptions) -> Self {
        SlurmQueue {
            options,
            state: Mutex::new(QueueState::default()),
            changed: Condvar::new(),
        }
    }

    /// Submits `command` (program and arguments) as a batch job named `name`.
    pub(crate) fn submit(&self, name: &str, command: &[String]) -> Result<JobId, String> {
        std::fs::create_dir_all(&self.options.log_dir).map_err(|e| {
            format!(
                "cannot create the Slurm log directory {}: {e}",
                self.options.log_dir.display()
            )
        })?;
        let output = self.options.log_dir.join("%j.out");
        let script = batch_script(command);
        let mut last_error = String::new();
        // sbatch fails transiently when the controller is busy: try a few times.
        for attempt in 0..4 {
            if attempt > 0 {
                std::thread::sleep(Duration::from_millis(250 << attempt));
            }
            match sbatch(name, &output, &self.options.sbatch_args, &script) {
                Ok(id) => {
                    let mut state = self.lock();
                    state.jobs.insert(id.clone(), (Instant::now(), None));
                    return Ok(id);
                }
                Err(e) => last_error = e,
            }
        }
        Err(last_error)
    }

    /// Waits until `job` has ended; returns its final state.
    pub(crate) fn wait(&self, job: &JobId) -> Result<JobEnd, String> {
        let mut state = self.lock();
        loop {
            match state.jobs.get(job) {
                Some((_, Some(s))) if is_final(s) => {
                    let end = JobEnd { state: s.clone() };
                    state.jobs.remove(job);
                    return Ok(end);
                }
                Some(_) => {}
                None => {
                    return Err(format!("Slurm job {job} is not one this run submitted"));
                }
            }
            if let Some((since, error)) = &state.poll_error
                && since.elapsed() > POLL_FAILURE_LIMIT
            {
                let message = format!(
                    "cannot follow Slurm job {job}: squeue has failed for {} s: {error}",
                    since.elapsed().as_secs()
                );
                state.jobs.remove(job);
                return Err(message);
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
                state.last_poll = Some(Instant::now());
                match result {
                    Ok(found) => {
                        state.poll_error = None;
                        for (id, (submitted, known)) in &mut state.jobs {
                            match found.get(id) {
                                Some(s) => *known = Some(s.clone()),
                                // Not listed: purged after it ended, or not visible yet.
                                None if known.is_some() || submitted.elapsed() > SHOW_UP_GRACE => {
                                    *known = Some("GONE".to_owned());
                                }
                                None => {}
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
    /// from here.
    pub(crate) fn output_tail(&self, job: &JobId, lines: usize) -> String {
        let path = self.options.log_dir.join(format!("{job}.out"));
        std::fs::read(&path)
            .map(|bytes| super::process::last_lines(&bytes, lines))
            .unwrap_or_default()
    }

    /// Cancels `job` (best effort: used when a run stops waiting for it).
    pub(crate) fn cancel(&self, job: &JobId) {
        let _ = Command::new("scancel")
            .arg(&job.0)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, QueueState> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// A POSIX shell script that runs `command`, for `sbatch` to read on stdin.
fn batch_script(command: &[String]) -> String {
    let quoted: Vec<String> = command.iter().map(|a| crate::cli::shell_quote(a)).collect();
    format!("#!/bin/sh\nexec {}\n", quoted.join(" "))
}

fn sbatch(name: &str, output: &Path, extra: &[String], script: &str) -> Result<JobId, String> {
    let mut child = Command::new("sbatch")
        .arg("--parsable")
        .arg(format!("--job-name={name}"))
        .arg(format!("--output={}", output.display()))
        .args(extra)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run `sbatch` (is Slurm installed and on PATH?): {e}"))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(script.as_bytes())
            .map_err(|e| format!("cannot give `sbatch` the job script: {e}"))?;
    }
    let out = child
        .wait_with_output()
        .map_err(|e| format!("cannot wait for `sbatch`: {e}"))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        return Err(format!(
            "sbatch failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    parse_job_id(&stdout).ok_or_else(|| format!("sbatch printed no job id: {:?}", stdout.trim()))
}

/// The job id in `sbatch --parsable` output: `1234` or `1234;cluster`.
fn parse_job_id(stdout: &str) -> Option<JobId> {
    let line = stdout.lines().map(str::trim).find(|l| !l.is_empty())?;
    let id = line.split(';').next()?.trim();
    (!id.is_empty() && id.chars().all(|c| c.is_ascii_digit() || c == '_'))
        .then(|| JobId(id.to_owned()))
}

/// The states of `ids` that the controller still knows, finished ones included.
fn squeue(ids: &[JobId]) -> Result<HashMap<JobId, String>, String> {
    let mut found = HashMap::new();
    // One call for many jobs; the job list is split so the command line stays short.
    for chunk in ids.chunks(500) {
        let list: Vec<&str> = chunk.iter().map(|j| j.0.as_str()).collect();
        let out = Command::new("squeue")
            .args(["--noheader", "--states=all", "--format=%i %T", "--jobs"])
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

/// `squeue --format="%i %T"` lines: job id and state.
fn parse_squeue(stdout: &str) -> HashMap<JobId, String> {
    stdout
        .lines()
        .filter_map(|line| {
            let mut parts = line.split_whitespace();
            let id = parts.next()?;
            let state = parts.next()?;
            Some((JobId(id.to_owned()), state.to_owned()))
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

    #[test]
    fn squeue_lines_give_states() {
        let found = parse_squeue("12 RUNNING\n13 COMPLETED\n\n14 CANCELLED\n");
        assert_eq!(found.len(), 3);
        assert_eq!(found[&JobId("13".into())], "COMPLETED");
        assert!(is_final("CANCELLED"));
        assert!(is_final("CANCELLED by 0"));
        assert!(!is_final("RUNNING"));
        assert!(!is_final("PENDING"));
        assert!(!is_final("COMPLETING"));
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
