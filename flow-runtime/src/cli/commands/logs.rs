//! `logs`: a task's logs, and its stdout and stderr in process mode, streamed from the
//! datastore through the client.

use std::collections::BTreeMap;
use std::io::{Read, Write};

use clap::{Arg, ArgMatches, Command, value_parser};

use super::CliResult;
use crate::cli::args::{Target, required};
use crate::cli::artifact_output::READ_BUFFER;
use crate::cli::context::Ctx;
use crate::cli::error::CliError;
use crate::cli::lookup;
use crate::cli::terminal::{ControlEscaper, escape_controls};
use crate::client::{LogStream, OutputStream};
use crate::flow::Flow;

pub(crate) fn cli() -> Command {
    Command::new("logs")
        .about("Shows a task's logs (and its stdout and stderr in process mode)")
        .arg(
            Arg::new("path")
                .value_name("RUN/STEP[/TASK]")
                .required(true)
                .help("The task; TASK may be left out for a step with a single task; RUN may be `latest`"),
        )
        .arg(
            Arg::new("attempt")
                .long("attempt")
                .value_name("N")
                .value_parser(value_parser!(u32))
                .help("Only attempt N (0 is the first)"),
        )
}

pub(crate) fn exec<F: Flow>(ctx: &mut Ctx<'_>, args: &ArgMatches) -> CliResult {
    let flow = F::GRAPH.name;
    let target = Target::parse(required(args, "path"))?;
    let Some(step_name) = target.step.as_deref() else {
        return Err(CliError::usage(
            "logs belong to a task: give RUN/STEP[/TASK]",
        ));
    };
    let only = args.get_one::<u32>("attempt").copied();
    let client = ctx.open_client()?;
    let run = lookup::run(ctx, &client, flow, &target.run)?;
    let step = lookup::step(&run, step_name)?;
    let task = lookup::task(ctx, &step, run.id(), target.task.as_deref())?;
    let (step, id) = (task.step(), task.id());

    // A task reused by `resume` ran, and logged, in its origin run.
    let logs = task.logs()?;
    let logged = logs.attempts();
    let attempts: Vec<u32> = match task.meta() {
        Some(_) => task.attempts().iter().map(|a| a.attempt).collect(),
        None => logged.clone(),
    };
    if let Some(n) = only
        && !attempts.contains(&n)
        && !logged.contains(&n)
    {
        let list: Vec<String> = attempts.iter().map(u32::to_string).collect();
        return Err(CliError::usage(format!(
            "task {step}/{id} of run {} has no attempt {n}; its attempts are {}",
            run.id(),
            if list.is_empty() {
                "none".to_owned()
            } else {
                list.join(", ")
            }
        )));
    }
    // Logs go out as stored, unless to a terminal, which would act on their control
    // characters; everything else here is text from the datastore, always escaped.
    let escape_logs = ctx.out_terminal;
    let out = &mut *ctx.out;
    if task.origin_run_id().is_some() {
        writeln!(
            out,
            "(task {step}/{id} was reused from run {}; these are the logs of that run)",
            escape_controls(logs.ran_in())
        )?;
    }
    if let Some(job) = task.meta().and_then(|m| m.job.as_ref()) {
        writeln!(
            out,
            "(task {step}/{id} ran as job {})",
            escape_controls(job)
        )?;
    }
    let failures: BTreeMap<u32, String> = task
        .attempts()
        .iter()
        .filter_map(|a| {
            a.failure
                .as_ref()
                .map(|f| (a.attempt, escape_controls(&f.to_string()).into_owned()))
        })
        .collect();
    let mut shown = 0;
    let mut numbers: Vec<u32> = attempts.iter().chain(&logged).copied().collect();
    numbers.sort_unstable();
    numbers.dedup();
    for n in numbers.into_iter().filter(|n| only.is_none_or(|o| o == *n)) {
        let outcome = failures
            .get(&n)
            .map_or_else(String::new, |f| format!(", failed: {f}"));
        writeln!(out, "── attempt {n}{outcome} ──")?;
        match logs.attempt(n)? {
            Some(log) => copy_log(log, out, escape_logs)?,
            None => writeln!(out, "(nothing logged)")?,
        }
        shown += 1;
    }
    if only.is_none() {
        for stream in OutputStream::ALL {
            if let Some(log) = logs.output(stream)? {
                writeln!(out, "── {} ──", stream.name())?;
                copy_log(log, out, escape_logs)?;
                shown += 1;
            }
        }
    }
    if shown == 0 {
        writeln!(
            out,
            "Task {step}/{id} of run {} has no logs ({}).",
            run.id(),
            task.progress()
        )?;
    }
    Ok(())
}

/// Streams `log` to `out`, a chunk at a time however large it is, with its control characters
/// escaped when `escape`; ends it with a newline if it has none.
fn copy_log(log: LogStream, out: &mut dyn Write, escape: bool) -> Result<(), CliError> {
    let LogStream {
        location,
        mut reader,
    } = log;
    let last = if escape {
        let mut escaper = ControlEscaper::new(&mut *out);
        let last = pump(&mut reader, &mut escaper, &location)?;
        escaper.finish()?;
        last
    } else {
        pump(&mut reader, out, &location)?
    };
    if last != Some(b'\n') {
        writeln!(out)?;
    }
    Ok(())
}

/// Copies `reader` (the object at `location`) to `sink`; returns the last byte copied.
fn pump(
    reader: &mut dyn Read,
    sink: &mut dyn Write,
    location: &str,
) -> Result<Option<u8>, CliError> {
    let mut chunk = vec![0; READ_BUFFER];
    let mut last = None;
    loop {
        let n = match reader.read(&mut chunk) {
            Ok(0) => return Ok(last),
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(CliError::failure(format!("cannot read {location}: {e}"))),
        };
        sink.write_all(&chunk[..n])?;
        last = chunk.get(n - 1).copied();
    }
}
