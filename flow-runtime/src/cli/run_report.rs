//! What `run` and `resume` say when a run ends: where the results are, or what failed and how
//! to go on.

use super::context::Ctx;
use super::error::CliError;
use crate::executor::{self, RunError, RunSummary};
use crate::run::{RunStatus, RunStore};

/// Reports how a run ended, whatever happened to it; `log_dir` is the private Slurm log
/// directory made for it, if any, and `origin` the run it resumed.
pub(crate) fn conclude(
    ctx: &mut Ctx<'_>,
    result: Result<RunSummary, RunError>,
    log_dir: Option<tempfile::TempDir>,
    origin: Option<&str>,
) -> Result<(), CliError> {
    let succeeded =
        matches!(&result, Ok(s) if matches!(s.status, RunStatus::Succeeded | RunStatus::Stopped));
    settle_log_dir(ctx, log_dir, succeeded)?;
    match result {
        Ok(summary) => report(ctx, &summary, origin),
        Err(RunError::Interrupted {
            flow,
            run_id,
            signal,
        }) => {
            report_interrupted(ctx, &flow, &run_id, signal)?;
            Err(CliError::silent_failure())
        }
        Err(error) => Err(error.into()),
    }
}

/// After a run: removes the private Slurm log directory when the run succeeded, else keeps it
/// and says where it is.
fn settle_log_dir(
    ctx: &mut Ctx<'_>,
    log_dir: Option<tempfile::TempDir>,
    succeeded: bool,
) -> Result<(), CliError> {
    match log_dir {
        Some(dir) if !succeeded => {
            let kept = dir.keep();
            writeln!(
                ctx.err,
                "Slurm's own output of each job is in {}",
                kept.display()
            )?;
        }
        // Dropped: removed.
        _ => {}
    }
    Ok(())
}

/// Says that a signal stopped the run, and how to go on.
fn report_interrupted(
    ctx: &mut Ctx<'_>,
    flow: &str,
    run_id: &str,
    signal: i32,
) -> Result<(), CliError> {
    writeln!(
        ctx.err,
        "Run {run_id} of {flow} {}; it is recorded failed.",
        executor::interrupted_by(signal)
    )?;
    suggest_resume(ctx, run_id)
}

/// Says how to resume run `run_id`.
fn suggest_resume(ctx: &mut Ctx<'_>, run_id: &str) -> Result<(), CliError> {
    writeln!(
        ctx.err,
        "Resume it with: {}",
        ctx.suggest(&format!("resume --origin-run-id {run_id}"))
    )?;
    Ok(())
}

/// Says how a run ended: where the results are, or what failed and how to go on.
fn report(ctx: &mut Ctx<'_>, summary: &RunSummary, origin: Option<&str>) -> Result<(), CliError> {
    let run_id = &summary.run_id;
    if ctx.terminal && std::env::var_os("CI").is_none() {
        // The progress display leaves its cursor at the end of its last line.
        writeln!(ctx.err)?;
    }
    let reused = match origin {
        Some(origin) => format!(", {} reused from run {origin}", summary.tasks_reused),
        None => String::new(),
    };
    if summary.status == RunStatus::Succeeded {
        writeln!(
            ctx.out,
            "Run {run_id} of {} succeeded ({} tasks run{reused}).",
            summary.flow, summary.tasks_run
        )?;
        writeln!(ctx.out, "Results are in the datastore {}", ctx.datastore)?;
        writeln!(
            ctx.out,
            "Inspect them with: {}",
            ctx.suggest(&format!("dump {run_id}/end"))
        )?;
        return Ok(());
    }
    if summary.status == RunStatus::Stopped {
        writeln!(
            ctx.out,
            "Run {run_id} of {} stopped where --until asked ({} tasks run{reused}).",
            summary.flow, summary.tasks_run
        )?;
        writeln!(
            ctx.out,
            "Go on with: {}",
            ctx.suggest(&format!("resume --origin-run-id {run_id}"))
        )?;
        return Ok(());
    }
    writeln!(
        ctx.err,
        "Run {run_id} of {} failed ({} tasks run{reused}).",
        summary.flow, summary.tasks_run
    )?;
    match &summary.failure {
        Some((path, failure)) => {
            writeln!(ctx.err, "Task {path} failed:")?;
            if failure.kind == "panic" && failure.message.starts_with("panicked") {
                writeln!(ctx.err, "  {}", failure.message)?;
            } else {
                writeln!(ctx.err, "  {}: {}", failure.kind, failure.message)?;
            }
            for cause in &failure.causes {
                writeln!(ctx.err, "  caused by: {cause}")?;
            }
            if let Some(location) = &failure.location {
                writeln!(ctx.err, "  at {location}")?;
            }
            writeln!(
                ctx.err,
                "Its logs: {}",
                ctx.suggest(&format!("logs {run_id}/{}/{}", path.step, path.task))
            )?;
        }
        None => {
            let store = RunStore::open(&ctx.datastore)?;
            let why = store
                .read_run(&summary.flow, run_id)
                .ok()
                .and_then(|r| r.failure)
                .unwrap_or_else(|| "the run stopped before reaching `end`".to_owned());
            writeln!(ctx.err, "  {why}")?;
        }
    }
    if let Some(e) = &summary.record_error {
        writeln!(
            ctx.err,
            "Its record could not be updated (it still says `running`): {e}"
        )?;
    }
    suggest_resume(ctx, run_id)?;
    Err(CliError::silent_failure())
}
