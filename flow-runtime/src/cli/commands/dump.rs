//! `dump`: a run, the tasks of a step, the artifacts of a task, or one artifact's value; read
//! through the client.

use std::collections::BTreeMap;
use std::io::{BufWriter, Write};

use clap::{Arg, ArgAction, ArgMatches, Command};
use serde_json::ser::Formatter;
use serde_json::{Value as Json, json};

use super::CliResult;
use super::runs::{duration_text, run_json};
use crate::cli::args::{Target, check_segment, json_arg, required};
use crate::cli::artifact_output::{
    OUTPUT_BUFFER, copy_raw, stream_json, write_json_value, write_preview,
};
use crate::cli::context::Ctx;
use crate::cli::error::CliError;
use crate::cli::lookup;
use crate::cli::table::{human_size, table};
use crate::cli::terminal::{EscapingFormatter, write_json_line};
use crate::client::value::{short_type_name, write_json_str};
use crate::client::{RunHandle, TaskEntry};
use crate::datastore::ArtifactEntry;
use crate::flow::Flow;
use crate::run::{Provenance, RunId, RunRecord};

pub(crate) fn cli() -> Command {
    Command::new("dump")
        .about("Shows a run, the tasks of a step, the artifacts of a task, or one artifact's value")
        .long_about(
            "Shows what a run left in the datastore.\n\n\
             RUN: the run record and its steps with task counts and statuses.\n\
             RUN/STEP: the step's tasks; for a step with a single task (every step outside a \
             foreach) that task, as RUN/STEP/TASK.\n\
             RUN/STEP/TASK: every artifact of the task: name, type, size and hash.\n\n\
             RUN may be `latest`. With --artifact NAME, a preview of the artifact's value: its \
             first elements, characters and bytes, whatever its size. With --json, values are \
             JSON converted from MessagePack without the Rust types (binary data as arrays of \
             byte values), whole; a task's artifacts become one JSON object. With --raw, the \
             artifact's stored MessagePack bytes, whole, for a file or another program.\n\n\
             Control characters from the datastore are shown as escapes (`\\x1b`), and JSON \
             escapes them in strings, so nothing printed acts on the terminal.",
        )
        .arg(
            Arg::new("path")
                .value_name("RUN[/STEP[/TASK]]")
                .required(true)
                .help("What to show; RUN may be `latest`"),
        )
        .arg(
            Arg::new("artifact")
                .long("artifact")
                .value_name("NAME")
                .help("Shows the value of artifact NAME"),
        )
        .arg(json_arg("Prints JSON; artifact values in full"))
        .arg(
            Arg::new("raw")
                .long("raw")
                .action(ArgAction::SetTrue)
                .requires("artifact")
                .conflicts_with("json")
                .help("Writes the artifact's MessagePack bytes as stored, to a file or a pipe"),
        )
}

/// What `dump` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Output {
    /// Text for people.
    Text,
    /// JSON, artifact values whole.
    Json,
    /// An artifact's stored bytes.
    Raw,
}

pub(crate) fn exec<F: Flow>(ctx: &mut Ctx<'_>, args: &ArgMatches) -> CliResult {
    let target = Target::parse(required(args, "path"))?;
    let artifact = args.get_one::<String>("artifact").map(String::as_str);
    let output = if args.get_flag("raw") {
        Output::Raw
    } else if args.get_flag("json") {
        Output::Json
    } else {
        Output::Text
    };
    if let Some(name) = artifact {
        check_segment(name, "artifact name")?;
    }
    if output == Output::Raw && ctx.out_terminal {
        return Err(CliError::usage(
            "--raw writes binary MessagePack, which a terminal would take for commands; \
             redirect it to a file (> FILE) or a program (| PROGRAM)",
        ));
    }
    let flow = F::GRAPH.name;
    if output != Output::Text {
        return dump_target(ctx, flow, &target, artifact, output);
    }
    // Text for people, made of names and values from the datastore: no control character in
    // it reaches the terminal.
    ctx.with_escaped_out(|ctx| dump_target(ctx, flow, &target, artifact, output))
}

fn dump_target(
    ctx: &mut Ctx<'_>,
    flow: &str,
    target: &Target,
    artifact: Option<&str>,
    output: Output,
) -> Result<(), CliError> {
    let client = ctx.open_client()?;
    let run = lookup::run(ctx, &client, flow, &target.run)?;
    let Some(step_name) = target.step.as_deref() else {
        if artifact.is_some() {
            return Err(CliError::usage("--artifact needs a step: RUN/STEP[/TASK]"));
        }
        return dump_run(ctx, &run, output);
    };
    let step = lookup::step(&run, step_name)?;
    if target.task.is_none() && artifact.is_none() {
        let tasks = step.task_entries()?;
        if tasks.len() != 1 {
            return dump_step(ctx, run.record(), step_name, &tasks, output);
        }
    }
    let task = lookup::task(ctx, &step, run.id(), target.task.as_deref())?;
    match artifact {
        Some(name) => dump_artifact(ctx, &task, name, output),
        None => dump_task(ctx, &task, output),
    }
}

fn dump_run(ctx: &mut Ctx<'_>, run: &RunHandle, output: Output) -> Result<(), CliError> {
    let record = run.record();
    let mut steps = Vec::new();
    for step in &record.graph.steps {
        let tasks = lookup::step(run, &step.name)?.task_entries()?;
        let mut counts: BTreeMap<&'static str, usize> = BTreeMap::new();
        let mut reused = 0;
        for task in &tasks {
            *counts.entry(task.progress().as_str()).or_default() += 1;
            reused += usize::from(task.origin_run_id().is_some());
        }
        steps.push((step, tasks.len(), counts, reused));
    }
    if output == Output::Json {
        let steps: Vec<Json> = steps
            .iter()
            .map(|(s, n, counts, reused)| json!({"name": s.name, "kind": s.kind, "tasks": n, "status": counts, "reused": reused}))
            .collect();
        let mut run = run_json(record);
        if let Some(map) = run.as_object_mut() {
            map.insert("steps".to_owned(), Json::Array(steps));
            map.insert("provenance".to_owned(), json!(record.provenance));
        }
        write_json_line(ctx.out, &run)?;
        return Ok(());
    }
    let out = &mut *ctx.out;
    writeln!(out, "Run {} of flow {}", record.run_id, record.flow)?;
    writeln!(out, "  status:    {}", record.status)?;
    writeln!(
        out,
        "  started:   {} by {} on {} (pid {})",
        record.started, record.user, record.host, record.pid
    )?;
    if let Some(finished) = &record.finished {
        writeln!(out, "  finished:  {finished} ({})", duration_text(record))?;
    }
    if !record.tags.is_empty() {
        writeln!(out, "  tags:      {}", record.tags.join(", "))?;
    }
    match (&record.origin_run_id, &record.spin_of) {
        (Some(origin), Some(task)) => {
            writeln!(out, "  spin of task {task} of run {origin} (a scratch run)")?;
        }
        (Some(origin), None) => writeln!(out, "  resumed from run {origin}")?,
        (None, _) => {}
    }
    if !record.params.is_null() {
        writeln!(out, "  params:    {}", record.params)?;
    }
    if let Some(failure) = &record.failure {
        writeln!(out, "  failure:   {failure}")?;
    }
    write_provenance(out, record.provenance.as_ref())?;
    writeln!(out)?;
    let rows: Vec<Vec<String>> = steps
        .iter()
        .map(|(s, n, counts, reused)| {
            let mut status: Vec<String> = counts.iter().map(|(k, v)| format!("{v} {k}")).collect();
            if *n == 0 {
                status.push("not run".to_owned());
            }
            if *reused > 0 {
                status.push(format!("{reused} reused"));
            }
            vec![
                s.name.clone(),
                s.kind.clone(),
                n.to_string(),
                status.join(", "),
            ]
        })
        .collect();
    out.write_all(table(&["STEP", "KIND", "TASKS", "STATUS"], &rows).as_bytes())?;
    Ok(())
}

fn dump_step(
    ctx: &mut Ctx<'_>,
    record: &RunRecord,
    step: &str,
    tasks: &[TaskEntry],
    output: Output,
) -> Result<(), CliError> {
    if output == Output::Json {
        let tasks: Vec<Json> = tasks.iter().map(task_json).collect();
        let value = json!({"run_id": record.run_id, "step": step, "tasks": tasks});
        write_json_line(ctx.out, &value)?;
        return Ok(());
    }
    if tasks.is_empty() {
        writeln!(
            ctx.out,
            "Step {step} of run {} has no tasks: the run did not reach it.",
            record.run_id
        )?;
        return Ok(());
    }
    writeln!(
        ctx.out,
        "Step {step} of run {}: {} task{}",
        record.run_id,
        tasks.len(),
        plural(tasks.len())
    )?;
    // A step inside a loop gets a column saying which pass each task is.
    let looped = tasks.iter().any(|t| !loop_passes(t).is_empty());
    let rows: Vec<Vec<String>> = tasks
        .iter()
        .map(|t| {
            let meta = t.meta();
            let mut row = vec![
                t.id().to_string(),
                t.progress().to_string(),
                t.attempts().len().to_string(),
                foreach_items(t),
                meta.and_then(|m| m.foreach.as_ref())
                    .map(|f| format!("{} of {}", f.count, f.field))
                    .unwrap_or_default(),
                meta.and_then(|m| m.chose.clone()).unwrap_or_default(),
                t.origin_run_id().map(RunId::to_string).unwrap_or_default(),
                meta.and_then(|m| m.job.clone()).unwrap_or_default(),
            ];
            if looped {
                row.insert(4, loop_passes(t));
            }
            row
        })
        .collect();
    let mut header = vec![
        "TASK",
        "STATUS",
        "ATTEMPTS",
        "FOREACH",
        "SPLITS INTO",
        "CHOSE",
        "REUSED FROM",
        "JOB",
    ];
    if looped {
        header.insert(4, "LOOP PASS");
    }
    ctx.out.write_all(table(&header, &rows).as_bytes())?;
    Ok(())
}

/// The foreach items a task handles: `fan 3/10` (index 3 of 10), outermost first.
fn foreach_items(task: &TaskEntry) -> String {
    let Some(meta) = task.meta() else {
        return String::new();
    };
    meta.spec
        .frames
        .iter()
        .filter(|f| f.foreach)
        .map(|f| format!("{} {}/{}", f.split, f.index, f.count))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The loop passes a task is: `fit 2` (the third pass of the loop that starts at `fit`),
/// outermost first.
fn loop_passes(task: &TaskEntry) -> String {
    let Some(meta) = task.meta() else {
        return String::new();
    };
    meta.spec
        .frames
        .iter()
        .filter(|f| f.is_loop)
        .map(|f| format!("{} {}", f.split, f.index))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A task as `dump RUN/STEP --json` lists it.
fn task_json(task: &TaskEntry) -> Json {
    let meta = task.meta();
    json!({
        "id": task.id(),
        "status": task.progress().as_str(),
        "attempts": task.attempts().len(),
        "foreach": meta.map(|m| m.spec.frames.iter().filter(|f| f.foreach).map(|f| json!({
            "split": f.split, "index": f.index, "count": f.count,
        })).collect::<Vec<_>>()).unwrap_or_default(),
        "loop_passes": meta.map(|m| m.spec.frames.iter().filter(|f| f.is_loop).map(|f| json!({
            "head": f.split, "pass": f.index,
        })).collect::<Vec<_>>()).unwrap_or_default(),
        "items": meta.and_then(|m| m.foreach.as_ref()).map(|f| f.count),
        "chose": meta.and_then(|m| m.chose.clone()),
        "origin_run_id": task.origin_run_id(),
        "job": meta.and_then(|m| m.job.clone()),
        "failure": meta.and_then(|m| m.failure()).map(|f| f.to_string()),
    })
}

/// A complete task's artifacts, or why there are none (exit 2: there is nothing to show).
fn artifacts_of(task: &TaskEntry) -> Result<&[ArtifactEntry], CliError> {
    task.artifacts().ok_or_else(|| {
        CliError::usage(format!(
            "task {}/{} of run {} has no artifacts: it did not complete ({})",
            task.step(),
            task.id(),
            task.run_id(),
            task.progress()
        ))
    })
}

fn dump_task(ctx: &mut Ctx<'_>, task: &TaskEntry, output: Output) -> Result<(), CliError> {
    if output == Output::Json {
        let artifacts = artifacts_of(task)?;
        // Every blob is checked before anything is printed, then streamed: none is held whole.
        for entry in artifacts {
            task.verify_artifact(entry)?;
        }
        let mut out = BufWriter::with_capacity(OUTPUT_BUFFER, &mut *ctx.out);
        let mut fmt = EscapingFormatter::default();
        fmt.begin_object(&mut out)?;
        for (i, entry) in artifacts.iter().enumerate() {
            fmt.begin_object_key(&mut out, i == 0)?;
            write_json_str(&mut out, &mut fmt, &entry.name)?;
            fmt.end_object_key(&mut out)?;
            fmt.begin_object_value(&mut out)?;
            stream_json(task, entry, &mut out, &mut fmt)?;
            fmt.end_object_value(&mut out)?;
        }
        fmt.end_object(&mut out)?;
        out.write_all(b"\n")?;
        out.flush()?;
        return Ok(());
    }
    let (step, id, run_id) = (task.step(), task.id(), task.run_id());
    let meta = task.meta();
    let mut line = format!("Task {step}/{id} of run {run_id}: {}", task.progress());
    let attempts = task.attempts().len();
    if attempts > 0 {
        line.push_str(&format!(", {attempts} attempt{}", plural(attempts)));
    }
    if let Some(origin) = task.origin_run_id() {
        line.push_str(&format!(", reused from run {origin}"));
    }
    if let Some(job) = meta.and_then(|m| m.job.as_ref()) {
        line.push_str(&format!(", ran as job {job}"));
    }
    writeln!(ctx.out, "{line}")?;
    let foreach = foreach_items(task);
    if !foreach.is_empty() {
        writeln!(ctx.out, "  foreach item: {foreach}")?;
    }
    let passes = loop_passes(task);
    if !passes.is_empty() {
        writeln!(ctx.out, "  loop pass: {passes}")?;
    }
    let checkpoints = task.checkpoints()?;
    if let Some(last) = checkpoints.last() {
        writeln!(
            ctx.out,
            "  checkpoints: {} kept, the last #{} ({}, {}) by attempt {} at {}",
            checkpoints.len(),
            last.seq,
            short_type_name(&last.type_name),
            human_size(last.size),
            last.attempt,
            last.written
        )?;
    }
    if let Some(split) = meta.and_then(|m| m.foreach.as_ref()) {
        writeln!(
            ctx.out,
            "  splits into {} tasks, one per item of {}",
            split.count, split.field
        )?;
    }
    if let Some(chose) = meta.and_then(|m| m.chose.as_ref()) {
        writeln!(ctx.out, "  chose {chose}")?;
    }
    if let Some(failure) = meta.and_then(|m| m.failure()) {
        writeln!(ctx.out, "  {}: {failure}", failure.kind)?;
    }
    let Some(artifacts) = task.artifacts() else {
        writeln!(ctx.out, "It has no artifacts: it did not complete.")?;
        return Ok(());
    };
    let rows: Vec<Vec<String>> = artifacts
        .iter()
        .map(|a| {
            let hash = a.hash.to_string();
            vec![
                a.name.clone(),
                short_type_name(&a.type_name),
                human_size(a.size),
                hash.get(..12).unwrap_or(&hash).to_owned(),
            ]
        })
        .collect();
    ctx.out
        .write_all(table(&["ARTIFACT", "TYPE", "SIZE", "HASH"], &rows).as_bytes())?;
    writeln!(
        ctx.out,
        "Show a value with: {}",
        ctx.suggest(&format!("dump {run_id}/{step}/{id} --artifact NAME"))
    )?;
    Ok(())
}

fn dump_artifact(
    ctx: &mut Ctx<'_>,
    task: &TaskEntry,
    name: &str,
    output: Output,
) -> Result<(), CliError> {
    let artifacts = artifacts_of(task)?;
    let Some(entry) = artifacts.iter().find(|a| a.name == name) else {
        let names: Vec<&str> = artifacts.iter().map(|a| a.name.as_str()).collect();
        return Err(CliError::usage(format!(
            "task {}/{} of run {} has no artifact `{name}`; its artifacts are {}",
            task.step(),
            task.id(),
            task.run_id(),
            names.join(", ")
        )));
    };
    match output {
        Output::Raw => copy_raw(task, entry, ctx.out),
        Output::Json => write_json_value(ctx, task, entry),
        Output::Text => write_preview(ctx, task, entry),
    }
}

/// The provenance lines of `dump RUN`.
fn write_provenance(out: &mut dyn Write, provenance: Option<&Provenance>) -> std::io::Result<()> {
    let Some(provenance) = provenance else {
        return writeln!(out, "  provenance: not recorded (an older run)");
    };
    for (name, value) in provenance.describe() {
        let name = if name == "warning" {
            "WARNING:".to_owned()
        } else {
            format!("{name}:")
        };
        writeln!(out, "  {name:<11}{value}")?;
    }
    Ok(())
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}
