//! `runs`, `dump`, `logs` and `tag`: the commands that read (and, for tags, annotate) past runs.

use std::collections::BTreeMap;
use std::io::{BufReader, BufWriter, Read, Write};

use clap::{Arg, ArgAction, ArgMatches, Command, value_parser};
use serde_json::ser::Formatter;
use serde_json::{Value as Json, json};

use super::blob_stream::CheckedBlob;
use super::error::{CliError, chain};
use super::table::{between, human_duration, human_size, short_time, since, table};
use super::terminal::{ControlEscaper, EscapingFormatter, escape_controls, write_json_line};
use super::value::{
    Limits, MsgStream, RenderError, preview, short_type_name, write_json, write_json_str,
};
use super::{Ctx, parse_tag, tag_arg};
use crate::datastore::{ArtifactEntry, Encoding, Key, TaskIndex, is_task_done, validate_segment};
use crate::run::{RunRecord, RunStatus, RunStore, RunStoreError, TaskMeta, TaskStatus};

/// `runs`.
pub(crate) fn runs_command() -> Command {
    Command::new("runs")
        .about("Lists this flow's runs, newest first")
        .arg(tag_arg(
            "Only runs with TAG (repeatable: runs with every TAG)",
        ))
        .arg(json_arg("Prints the runs as a JSON array"))
}

/// `dump`.
pub(crate) fn dump_command() -> Command {
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

/// `logs`.
pub(crate) fn logs_command() -> Command {
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

/// `tag`.
pub(crate) fn tag_command() -> Command {
    Command::new("tag")
        .about("Adds tags to a run or removes them")
        .arg(
            Arg::new("run")
                .value_name("RUN")
                .required(true)
                .help("The run; may be `latest`"),
        )
        .arg(
            Arg::new("action")
                .value_name("ACTION")
                .required(true)
                .value_parser(["add", "remove"]),
        )
        .arg(
            Arg::new("tags")
                .value_name("TAG")
                .required(true)
                .num_args(1..)
                .value_parser(parse_tag)
                .help("Tags: not empty, no whitespace or control characters"),
        )
}

fn json_arg(help: &'static str) -> Arg {
    Arg::new("json")
        .long("json")
        .action(ArgAction::SetTrue)
        .help(help)
}

/// `RUN[/STEP[/TASK]]`, each part checked as a datastore key segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Target {
    pub run: String,
    pub step: Option<String>,
    pub task: Option<String>,
}

impl Target {
    pub fn parse(text: &str) -> Result<Target, CliError> {
        let parts: Vec<&str> = text.split('/').collect();
        if parts.len() > 3 {
            return Err(CliError::usage(format!(
                "`{text}` is not RUN[/STEP[/TASK]]: it has {} parts",
                parts.len()
            )));
        }
        for (part, what) in parts.iter().zip(["run id", "step name", "task id"]) {
            validate_segment(part).map_err(|e| {
                CliError::usage(format!(
                    "`{text}` is not RUN[/STEP[/TASK]]: {}",
                    e.describing(what)
                ))
            })?;
        }
        Ok(Target {
            run: parts[0].to_owned(),
            step: parts.get(1).map(|s| (*s).to_owned()),
            task: parts.get(2).map(|s| (*s).to_owned()),
        })
    }
}

/// The run record `run` names (`latest` for the flow's newest run).
fn resolve_run(
    ctx: &Ctx<'_>,
    store: &RunStore,
    flow: &str,
    run: &str,
) -> Result<RunRecord, CliError> {
    let run_id = if run == "latest" {
        store.latest(flow, "any")?.ok_or_else(|| {
            CliError::usage(format!("flow {flow} has no runs in {}", ctx.datastore))
        })?
    } else {
        run.to_owned()
    };
    store.read_run(flow, &run_id).map_err(|e| match e {
        RunStoreError::NoSuchRun { .. } => CliError::usage(format!(
            "flow {flow} has no run `{run_id}` in {} (list them with `{}`)",
            ctx.datastore,
            ctx.suggest("runs")
        )),
        other => other.into(),
    })
}

fn check_step(record: &RunRecord, step: &str) -> Result<(), CliError> {
    if record.graph.steps.iter().any(|s| s.name == step) {
        return Ok(());
    }
    let names: Vec<&str> = record.graph.steps.iter().map(|s| s.name.as_str()).collect();
    Err(CliError::usage(format!(
        "run {} of flow {} has no step `{step}`; its steps are {}",
        record.run_id,
        record.flow,
        names.join(", ")
    )))
}

/// What the datastore holds about one task.
struct TaskInfo {
    id: String,
    key: Key,
    meta: Option<TaskMeta>,
    done: bool,
}

impl TaskInfo {
    fn read(
        store: &RunStore,
        record: &RunRecord,
        step: &str,
        id: &str,
    ) -> Result<TaskInfo, CliError> {
        let key = RunStore::task_key(&record.flow, &record.run_id, step, id)?;
        let meta = store.read_meta(&key)?;
        let done = is_task_done(store.storage(), &key).map_err(RunStoreError::from)?;
        Ok(TaskInfo {
            id: id.to_owned(),
            key,
            meta,
            done,
        })
    }

    /// `succeeded`, `caught`, `failed`, or `incomplete` for a task that is running, was
    /// interrupted, or was never started.
    fn status(&self) -> &'static str {
        match (&self.meta, self.done) {
            (Some(m), true) if m.status == TaskStatus::Caught => "caught",
            (_, true) => "succeeded",
            (Some(m), false) if m.status == TaskStatus::Failed => "failed",
            _ => "incomplete",
        }
    }

    fn attempts(&self) -> usize {
        self.meta.as_ref().map_or(0, |m| m.attempts.len())
    }

    /// The foreach items this task handles: `fan 3/10` (index 3 of 10), outermost first.
    fn foreach(&self) -> String {
        let Some(meta) = &self.meta else {
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

    fn json(&self) -> Json {
        let meta = self.meta.as_ref();
        json!({
            "id": self.id,
            "status": self.status(),
            "attempts": self.attempts(),
            "foreach": meta.map(|m| m.spec.frames.iter().filter(|f| f.foreach).map(|f| json!({
                "split": f.split, "index": f.index, "count": f.count,
            })).collect::<Vec<_>>()).unwrap_or_default(),
            "items": meta.and_then(|m| m.foreach.as_ref()).map(|f| f.count),
            "chose": meta.and_then(|m| m.chose.clone()),
            "origin_run_id": meta.and_then(|m| m.origin_run_id.clone()),
            "job": meta.and_then(|m| m.job.clone()),
            "failure": meta.and_then(|m| m.failure()).map(|f| f.to_string()),
        })
    }
}

/// The task of `step` that `task` names, or the step's only task.
fn pick_task(
    ctx: &Ctx<'_>,
    store: &RunStore,
    record: &RunRecord,
    step: &str,
    task: Option<&str>,
) -> Result<String, CliError> {
    let tasks = store.list_tasks(&record.flow, &record.run_id, step)?;
    let shown = || {
        let mut list = tasks
            .iter()
            .take(10)
            .cloned()
            .collect::<Vec<_>>()
            .join(", ");
        if tasks.len() > 10 {
            list.push_str(&format!(", … ({} in all)", tasks.len()));
        }
        list
    };
    match task {
        Some(t) if tasks.iter().any(|id| id == t) => Ok(t.to_owned()),
        Some(t) if tasks.is_empty() => Err(CliError::usage(format!(
            "step `{step}` of run {} has no task `{t}`: the run did not reach that step",
            record.run_id
        ))),
        Some(t) => Err(CliError::usage(format!(
            "step `{step}` of run {} has no task `{t}`; its tasks are {}",
            record.run_id,
            shown()
        ))),
        None => match tasks.as_slice() {
            [only] => Ok(only.clone()),
            [] => Err(CliError::usage(format!(
                "step `{step}` of run {} has no tasks: the run did not reach it",
                record.run_id
            ))),
            _ => Err(CliError::usage(format!(
                "step `{step}` of run {} has {} tasks; name one as {}/{step}/TASK (list them with `{}`)",
                record.run_id,
                tasks.len(),
                record.run_id,
                ctx.suggest(&format!("dump {}/{step}", record.run_id))
            ))),
        },
    }
}

// ---------------------------------------------------------------------------------------- runs

pub(crate) fn runs(ctx: &mut Ctx<'_>, flow: &str, matches: &ArgMatches) -> Result<(), CliError> {
    let wanted: Vec<&String> = matches
        .get_many::<String>("tag")
        .map(|t| t.collect())
        .unwrap_or_default();
    let as_json = matches.get_flag("json");
    let mut records = Vec::new();
    let mut damaged = Vec::new();
    if ctx.has_datastore() {
        let store = ctx.open_existing()?;
        for id in store.list_runs(flow)?.into_iter().rev() {
            match store.read_run(flow, &id) {
                Ok(r) if wanted.iter().all(|t| r.tags.contains(t)) => records.push(r),
                Ok(_) | Err(RunStoreError::NoSuchRun { .. }) => {}
                Err(e) => damaged.push((id, e)),
            }
        }
    }
    if as_json {
        let list: Vec<Json> = records.iter().map(run_json).collect();
        super::terminal::write_json_line(&mut *ctx.out, &list)?;
    } else if records.is_empty() && damaged.is_empty() {
        let filter = if wanted.is_empty() {
            String::new()
        } else {
            " with these tags".to_owned()
        };
        writeln!(
            ctx.out,
            "No runs of flow {flow}{filter} in {}.",
            ctx.datastore
        )?;
    } else {
        let rows: Vec<Vec<String>> = records
            .iter()
            .map(|r| {
                vec![
                    r.run_id.clone(),
                    r.status.to_string(),
                    short_time(&r.started),
                    duration_text(r),
                    r.tags.join(","),
                    r.origin_run_id.clone().unwrap_or_default(),
                ]
            })
            .collect();
        ctx.out.write_all(
            table(
                &[
                    "RUN ID",
                    "STATUS",
                    "STARTED",
                    "DURATION",
                    "TAGS",
                    "RESUMED FROM",
                ],
                &rows,
            )
            .as_bytes(),
        )?;
    }
    if damaged.is_empty() {
        return Ok(());
    }
    for (id, e) in &damaged {
        writeln!(ctx.err, "error: run {id} cannot be read: {}", chain(e))?;
    }
    Err(CliError::silent_failure())
}

fn duration_text(r: &RunRecord) -> String {
    match (r.status, between(&r.started, r.finished.as_deref())) {
        (_, Some(d)) => human_duration(d),
        (RunStatus::Running, None) => {
            since(&r.started).map_or_else(String::new, |d| format!("{} so far", human_duration(d)))
        }
        _ => String::new(),
    }
}

fn run_json(r: &RunRecord) -> Json {
    json!({
        "run_id": r.run_id,
        "flow": r.flow,
        "status": r.status,
        "started": r.started,
        "finished": r.finished,
        "duration_secs": between(&r.started, r.finished.as_deref()).map(|d| d.as_secs_f64()),
        "tags": r.tags,
        "origin_run_id": r.origin_run_id,
        "params": r.params,
        "user": r.user,
        "host": r.host,
        "failure": r.failure,
    })
}

// ---------------------------------------------------------------------------------------- dump

pub(crate) fn dump(ctx: &mut Ctx<'_>, flow: &str, matches: &ArgMatches) -> Result<(), CliError> {
    let target = Target::parse(
        matches
            .get_one::<String>("path")
            .map(String::as_str)
            .unwrap_or_default(),
    )?;
    let artifact = matches.get_one::<String>("artifact").map(String::as_str);
    let as_json = matches.get_flag("json");
    let raw = matches.get_flag("raw");
    if let Some(name) = artifact {
        validate_segment(name)
            .map_err(|e| CliError::usage(e.describing("artifact name").to_string()))?;
    }
    if raw && ctx.out_terminal {
        return Err(CliError::usage(
            "--raw writes binary MessagePack, which a terminal would take for commands; \
             redirect it to a file (> FILE) or a program (| PROGRAM)",
        ));
    }
    if as_json || raw {
        return dump_target(ctx, flow, &target, artifact, as_json, raw);
    }
    // Text for people, made of names and values from the datastore: no control character in
    // it reaches the terminal.
    ctx.with_escaped_out(|ctx| dump_target(ctx, flow, &target, artifact, false, false))
}

fn dump_target(
    ctx: &mut Ctx<'_>,
    flow: &str,
    target: &Target,
    artifact: Option<&str>,
    as_json: bool,
    raw: bool,
) -> Result<(), CliError> {
    let store = ctx.open_existing()?;
    let record = resolve_run(ctx, &store, flow, &target.run)?;
    let Some(step) = target.step.as_deref() else {
        if artifact.is_some() {
            return Err(CliError::usage("--artifact needs a step: RUN/STEP[/TASK]"));
        }
        return dump_run(ctx, &store, &record, as_json);
    };
    check_step(&record, step)?;
    if target.task.is_none() && artifact.is_none() {
        let tasks = store.list_tasks(flow, &record.run_id, step)?;
        if tasks.len() != 1 {
            return dump_step(ctx, &store, &record, step, &tasks, as_json);
        }
    }
    let task = pick_task(ctx, &store, &record, step, target.task.as_deref())?;
    let info = TaskInfo::read(&store, &record, step, &task)?;
    match artifact {
        Some(name) => dump_artifact(ctx, &store, &record, step, &info, name, as_json, raw),
        None => dump_task(ctx, &store, &record, step, &info, as_json),
    }
}

fn dump_run(
    ctx: &mut Ctx<'_>,
    store: &RunStore,
    record: &RunRecord,
    as_json: bool,
) -> Result<(), CliError> {
    let mut steps = Vec::new();
    for step in &record.graph.steps {
        let ids = store.list_tasks(&record.flow, &record.run_id, &step.name)?;
        let mut counts: BTreeMap<&'static str, usize> = BTreeMap::new();
        let mut reused = 0;
        for id in &ids {
            let info = TaskInfo::read(store, record, &step.name, id)?;
            *counts.entry(info.status()).or_default() += 1;
            reused += usize::from(
                info.meta
                    .as_ref()
                    .is_some_and(|m| m.origin_run_id.is_some()),
            );
        }
        steps.push((step, ids.len(), counts, reused));
    }
    if as_json {
        let steps: Vec<Json> = steps
            .iter()
            .map(|(s, n, counts, reused)| json!({"name": s.name, "kind": s.kind, "tasks": n, "status": counts, "reused": reused}))
            .collect();
        let mut run = run_json(record);
        if let Some(map) = run.as_object_mut() {
            map.insert("steps".to_owned(), Json::Array(steps));
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
    if let Some(origin) = &record.origin_run_id {
        writeln!(out, "  resumed from run {origin}")?;
    }
    if !record.params.is_null() {
        writeln!(out, "  params:    {}", record.params)?;
    }
    if let Some(failure) = &record.failure {
        writeln!(out, "  failure:   {failure}")?;
    }
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
    store: &RunStore,
    record: &RunRecord,
    step: &str,
    ids: &[String],
    as_json: bool,
) -> Result<(), CliError> {
    let infos = ids
        .iter()
        .map(|id| TaskInfo::read(store, record, step, id))
        .collect::<Result<Vec<_>, _>>()?;
    if as_json {
        let tasks: Vec<Json> = infos.iter().map(TaskInfo::json).collect();
        let value = json!({"run_id": record.run_id, "step": step, "tasks": tasks});
        write_json_line(ctx.out, &value)?;
        return Ok(());
    }
    if infos.is_empty() {
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
        infos.len(),
        plural(infos.len())
    )?;
    let rows: Vec<Vec<String>> = infos
        .iter()
        .map(|t| {
            let meta = t.meta.as_ref();
            vec![
                t.id.clone(),
                t.status().to_owned(),
                t.attempts().to_string(),
                t.foreach(),
                meta.and_then(|m| m.foreach.as_ref())
                    .map(|f| format!("{} of {}", f.count, f.field))
                    .unwrap_or_default(),
                meta.and_then(|m| m.chose.clone()).unwrap_or_default(),
                meta.and_then(|m| m.origin_run_id.clone())
                    .unwrap_or_default(),
                meta.and_then(|m| m.job.clone()).unwrap_or_default(),
            ]
        })
        .collect();
    ctx.out.write_all(
        table(
            &[
                "TASK",
                "STATUS",
                "ATTEMPTS",
                "FOREACH",
                "SPLITS INTO",
                "CHOSE",
                "REUSED FROM",
                "JOB",
            ],
            &rows,
        )
        .as_bytes(),
    )?;
    Ok(())
}

/// A complete task's index, or why there is none (exit 2: there is nothing to show).
fn index_of(
    store: &RunStore,
    record: &RunRecord,
    step: &str,
    info: &TaskInfo,
) -> Result<TaskIndex, CliError> {
    store.read_index(&info.key)?.ok_or_else(|| {
        CliError::usage(format!(
            "task {step}/{} of run {} has no artifacts: it did not complete ({})",
            info.id,
            record.run_id,
            info.status()
        ))
    })
}

fn dump_task(
    ctx: &mut Ctx<'_>,
    store: &RunStore,
    record: &RunRecord,
    step: &str,
    info: &TaskInfo,
    as_json: bool,
) -> Result<(), CliError> {
    if as_json {
        let index = index_of(store, record, step, info)?;
        // Every blob is checked before anything is printed, then streamed: none is held whole.
        for entry in &index.artifacts {
            let context = artifact_context(record, step, &info.id, entry)?;
            CheckedBlob::verify(store.storage(), entry, context)?;
        }
        let mut out = BufWriter::with_capacity(OUTPUT_BUFFER, &mut *ctx.out);
        let mut fmt = EscapingFormatter::default();
        fmt.begin_object(&mut out)?;
        for (i, entry) in index.artifacts.iter().enumerate() {
            fmt.begin_object_key(&mut out, i == 0)?;
            write_json_str(&mut out, &mut fmt, &entry.name)?;
            fmt.end_object_key(&mut out)?;
            fmt.begin_object_value(&mut out)?;
            stream_json(store, record, step, &info.id, entry, &mut out, &mut fmt)?;
            fmt.end_object_value(&mut out)?;
        }
        fmt.end_object(&mut out)?;
        out.write_all(b"\n")?;
        out.flush()?;
        return Ok(());
    }
    let mut line = format!(
        "Task {step}/{} of run {}: {}",
        info.id,
        record.run_id,
        info.status()
    );
    let attempts = info.attempts();
    if attempts > 0 {
        line.push_str(&format!(", {attempts} attempt{}", plural(attempts)));
    }
    if let Some(origin) = info.meta.as_ref().and_then(|m| m.origin_run_id.as_ref()) {
        line.push_str(&format!(", reused from run {origin}"));
    }
    if let Some(job) = info.meta.as_ref().and_then(|m| m.job.as_ref()) {
        line.push_str(&format!(", ran as job {job}"));
    }
    writeln!(ctx.out, "{line}")?;
    let foreach = info.foreach();
    if !foreach.is_empty() {
        writeln!(ctx.out, "  foreach item: {foreach}")?;
    }
    if let Some(split) = info.meta.as_ref().and_then(|m| m.foreach.as_ref()) {
        writeln!(
            ctx.out,
            "  splits into {} tasks, one per item of {}",
            split.count, split.field
        )?;
    }
    if let Some(chose) = info.meta.as_ref().and_then(|m| m.chose.as_ref()) {
        writeln!(ctx.out, "  chose {chose}")?;
    }
    if let Some(failure) = info.meta.as_ref().and_then(|m| m.failure()) {
        writeln!(ctx.out, "  {}: {failure}", failure.kind)?;
    }
    let Some(index) = store.read_index(&info.key)? else {
        writeln!(ctx.out, "It has no artifacts: it did not complete.")?;
        return Ok(());
    };
    let rows: Vec<Vec<String>> = index
        .artifacts
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
        ctx.suggest(&format!(
            "dump {}/{step}/{} --artifact NAME",
            record.run_id, info.id
        ))
    )?;
    Ok(())
}

/// How much output is gathered before it is written: large values go out in pieces this size.
const OUTPUT_BUFFER: usize = 1 << 20;

/// How much of a blob is read at a time.
const READ_BUFFER: usize = 64 << 10;

#[allow(clippy::too_many_arguments)]
fn dump_artifact(
    ctx: &mut Ctx<'_>,
    store: &RunStore,
    record: &RunRecord,
    step: &str,
    info: &TaskInfo,
    name: &str,
    as_json: bool,
    raw: bool,
) -> Result<(), CliError> {
    let index = index_of(store, record, step, info)?;
    let Some(entry) = index.artifact(name) else {
        let names: Vec<&str> = index.artifacts.iter().map(|a| a.name.as_str()).collect();
        return Err(CliError::usage(format!(
            "task {step}/{} of run {} has no artifact `{name}`; its artifacts are {}",
            info.id,
            record.run_id,
            names.join(", ")
        )));
    };
    let context = artifact_context(record, step, &info.id, entry)?;
    if raw {
        CheckedBlob::verify(store.storage(), entry, context.clone())?;
        return copy_raw(store, entry, context, ctx.out);
    }
    if as_json {
        CheckedBlob::verify(store.storage(), entry, context)?;
        let mut out = BufWriter::with_capacity(OUTPUT_BUFFER, &mut *ctx.out);
        stream_json(
            store,
            record,
            step,
            &info.id,
            entry,
            &mut out,
            &mut EscapingFormatter::default(),
        )?;
        out.write_all(b"\n")?;
        out.flush()?;
        return Ok(());
    }
    // One pass: the preview reads what it shows, the check reads the rest; nothing is printed
    // before the whole blob is checked (damage also explains a value that does not decode).
    let mut blob = CheckedBlob::open(store.storage(), entry, context)?;
    let previewed = preview(
        &mut MsgStream::new(BufReader::with_capacity(READ_BUFFER, &mut blob)),
        Limits::default(),
    );
    blob.finish()?;
    let shown = previewed.map_err(|e| bad_value(record, step, &info.id, name, &e))?;
    writeln!(
        ctx.out,
        "{name}: {} ({})",
        short_type_name(&entry.type_name),
        human_size(entry.size)
    )?;
    writeln!(ctx.out, "{}", shown.text)?;
    if shown.cut {
        writeln!(
            ctx.err,
            "(a preview; --json prints the whole value, --raw its MessagePack bytes)"
        )?;
    }
    Ok(())
}

/// Where an artifact was needed, for messages; an encoding this version cannot read is exit 1.
fn artifact_context(
    record: &RunRecord,
    step: &str,
    task: &str,
    entry: &ArtifactEntry,
) -> Result<String, CliError> {
    let context = format!(
        "run {}, step {step}, task {task}, artifact `{}`",
        record.run_id, entry.name
    );
    if entry.encoding != Encoding::MsgPack {
        return Err(CliError::failure(format!(
            "{context}: encoding `{}` cannot be read by this version",
            entry.encoding
        )));
    }
    Ok(context)
}

/// Writes an artifact's value as JSON, streamed from its blob, which is checked again on the way.
fn stream_json(
    store: &RunStore,
    record: &RunRecord,
    step: &str,
    task: &str,
    entry: &ArtifactEntry,
    out: &mut dyn Write,
    fmt: &mut EscapingFormatter,
) -> Result<(), CliError> {
    let context = artifact_context(record, step, task, entry)?;
    let mut blob = CheckedBlob::open(store.storage(), entry, context)?;
    let written = write_json(
        &mut MsgStream::new(BufReader::with_capacity(READ_BUFFER, &mut blob)),
        out,
        fmt,
    );
    match written {
        Ok(()) => blob.finish(),
        Err(RenderError::Output(e)) => Err(e.into()),
        Err(RenderError::Value(e)) => {
            blob.finish()?;
            Err(bad_value(record, step, task, &entry.name, &e))
        }
    }
}

/// Copies an artifact's blob to `out` as stored, checked on the way.
fn copy_raw(
    store: &RunStore,
    entry: &ArtifactEntry,
    context: String,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    let mut blob = CheckedBlob::open(store.storage(), entry, context)?;
    let mut chunk = vec![0; OUTPUT_BUFFER];
    loop {
        match blob.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => out.write_all(&chunk[..n])?,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            // The check names the blob and what failed.
            Err(e) => {
                blob.finish()?;
                return Err(CliError::failure(format!("cannot read the artifact: {e}")));
            }
        }
    }
    blob.finish()?;
    out.flush()?;
    Ok(())
}

fn bad_value(
    record: &RunRecord,
    step: &str,
    task: &str,
    name: &str,
    e: &super::value::MsgpackError,
) -> CliError {
    CliError::failure(format!(
        "run {}, step {step}, task {task}, artifact `{name}`: {e}",
        record.run_id
    ))
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

// ---------------------------------------------------------------------------------------- logs

pub(crate) fn logs(ctx: &mut Ctx<'_>, flow: &str, matches: &ArgMatches) -> Result<(), CliError> {
    let target = Target::parse(
        matches
            .get_one::<String>("path")
            .map(String::as_str)
            .unwrap_or_default(),
    )?;
    let Some(step) = target.step.as_deref() else {
        return Err(CliError::usage(
            "logs belong to a task: give RUN/STEP[/TASK]",
        ));
    };
    let only = matches.get_one::<u32>("attempt").copied();
    let store = ctx.open_existing()?;
    let record = resolve_run(ctx, &store, flow, &target.run)?;
    check_step(&record, step)?;
    let task = pick_task(ctx, &store, &record, step, target.task.as_deref())?;
    let info = TaskInfo::read(&store, &record, step, &task)?;

    // A task reused by `resume` ran, and logged, in its origin run.
    let origin = info.meta.as_ref().and_then(|m| m.origin_run_id.clone());
    let (log_key, ran_in) = match &origin {
        Some(origin) => (
            RunStore::task_key(flow, origin, step, &task)?,
            origin.clone(),
        ),
        None => (info.key.clone(), record.run_id.clone()),
    };
    let logs = attempt_logs(&store, &log_key)?;
    let attempts: Vec<u32> = match &info.meta {
        Some(m) => m.attempts.iter().map(|a| a.attempt).collect(),
        None => logs.iter().map(|(n, _)| *n).collect(),
    };
    if let Some(n) = only
        && !attempts.contains(&n)
        && !logs.iter().any(|(a, _)| *a == n)
    {
        let list: Vec<String> = attempts.iter().map(u32::to_string).collect();
        return Err(CliError::usage(format!(
            "task {step}/{task} of run {} has no attempt {n}; its attempts are {}",
            record.run_id,
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
    if origin.is_some() {
        writeln!(
            out,
            "(task {step}/{task} was reused from run {}; these are the logs of that run)",
            escape_controls(&ran_in)
        )?;
    }
    if let Some(job) = info.meta.as_ref().and_then(|m| m.job.as_ref()) {
        writeln!(
            out,
            "(task {step}/{task} ran as job {})",
            escape_controls(job)
        )?;
    }
    let failures: BTreeMap<u32, String> = info
        .meta
        .iter()
        .flat_map(|m| &m.attempts)
        .filter_map(|a| {
            a.failure
                .as_ref()
                .map(|f| (a.attempt, escape_controls(&f.to_string()).into_owned()))
        })
        .collect();
    let mut shown = 0;
    let mut numbers: Vec<u32> = attempts
        .iter()
        .copied()
        .chain(logs.iter().map(|(n, _)| *n))
        .collect();
    numbers.sort_unstable();
    numbers.dedup();
    for n in numbers.into_iter().filter(|n| only.is_none_or(|o| o == *n)) {
        let outcome = failures
            .get(&n)
            .map_or_else(String::new, |f| format!(", failed: {f}"));
        writeln!(out, "── attempt {n}{outcome} ──")?;
        match logs.iter().find(|(a, _)| *a == n) {
            Some((_, key)) => {
                let reader = store
                    .storage()
                    .reader(key)
                    .map_err(|e| CliError::failure(format!("cannot read {key}: {e}")))?;
                copy_log(reader, key, out, escape_logs)?;
            }
            None => writeln!(out, "(nothing logged)")?,
        }
        shown += 1;
    }
    if only.is_none() {
        for stream in ["stdout", "stderr"] {
            let key = log_key
                .join(&format!("{stream}.log"))
                .map_err(RunStoreError::from)?;
            match store.storage().reader(&key) {
                Ok(reader) => {
                    writeln!(out, "── {stream} ──")?;
                    copy_log(reader, &key, out, escape_logs)?;
                    shown += 1;
                }
                Err(e) if e.is_not_found() => {}
                Err(e) => return Err(RunStoreError::from(e).into()),
            }
        }
    }
    if shown == 0 {
        writeln!(
            out,
            "Task {step}/{task} of run {} has no logs ({}).",
            record.run_id,
            info.status()
        )?;
    }
    Ok(())
}

/// The log objects of every attempt of a task, oldest first.
fn attempt_logs(store: &RunStore, task: &Key) -> Result<Vec<(u32, Key)>, CliError> {
    let children = store
        .storage()
        .list_children(Some(task))
        .map_err(RunStoreError::from)?;
    let mut logs: Vec<(u32, Key)> = children
        .objects
        .into_iter()
        .filter_map(|key| {
            let n = key
                .name()
                .strip_prefix("attempt-")
                .and_then(|rest| rest.strip_suffix(".log"))
                .and_then(|n| n.parse::<u32>().ok())?;
            Some((n, key))
        })
        .collect();
    logs.sort_by_key(|(n, _)| *n);
    Ok(logs)
}

/// Streams the log `key` from `reader` to `out`, a chunk at a time however large it is, with
/// its control characters escaped when `escape`; ends it with a newline if it has none.
fn copy_log(
    mut reader: Box<dyn Read + Send>,
    key: &Key,
    out: &mut dyn Write,
    escape: bool,
) -> Result<(), CliError> {
    let last = if escape {
        let mut escaper = ControlEscaper::new(&mut *out);
        let last = pump(&mut reader, &mut escaper, key)?;
        escaper.finish()?;
        last
    } else {
        pump(&mut reader, out, key)?
    };
    if last != Some(b'\n') {
        writeln!(out)?;
    }
    Ok(())
}

/// Copies `reader` (the object `key`) to `sink`; returns the last byte copied.
fn pump(reader: &mut dyn Read, sink: &mut dyn Write, key: &Key) -> Result<Option<u8>, CliError> {
    let mut chunk = vec![0; READ_BUFFER];
    let mut last = None;
    loop {
        let n = match reader.read(&mut chunk) {
            Ok(0) => return Ok(last),
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(CliError::failure(format!("cannot read {key}: {e}"))),
        };
        sink.write_all(&chunk[..n])?;
        last = chunk.get(n - 1).copied();
    }
}

// ----------------------------------------------------------------------------------------- tag

pub(crate) fn tag(ctx: &mut Ctx<'_>, flow: &str, matches: &ArgMatches) -> Result<(), CliError> {
    let run = matches
        .get_one::<String>("run")
        .map(String::as_str)
        .unwrap_or_default();
    if run != "latest" {
        validate_segment(run).map_err(|e| CliError::usage(e.describing("run id").to_string()))?;
    }
    let add = matches.get_one::<String>("action").map(String::as_str) == Some("add");
    let tags: Vec<&str> = matches
        .get_many::<String>("tags")
        .map(|t| t.map(String::as_str).collect())
        .unwrap_or_default();
    let store = ctx.open_existing()?;
    let resolved = resolve_run(ctx, &store, flow, run)?;
    let (add, remove): (&[&str], &[&str]) = if add { (&tags, &[]) } else { (&[], &tags) };
    // The change is applied to the record as stored when it is written, not to the one just
    // read: a run ending meanwhile keeps its status, and another `tag` its tags.
    let record = store.update_tags(flow, &resolved.run_id, add, remove)?;
    let list = if record.tags.is_empty() {
        "(none)".to_owned()
    } else {
        record.tags.join(", ")
    };
    writeln!(
        ctx.out,
        "Tags of run {}: {}",
        record.run_id,
        super::terminal::escape_controls(&list)
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_parse_and_refuse_escapes() {
        let t = Target::parse("20261127T021328123Z-3f9a1c7e/sq/3-1").expect("valid");
        assert_eq!(t.run, "20261127T021328123Z-3f9a1c7e");
        assert_eq!(t.step.as_deref(), Some("sq"));
        assert_eq!(t.task.as_deref(), Some("3-1"));
        assert_eq!(Target::parse("latest").expect("valid").step, None);
        for bad in [
            "../x",
            "/etc/passwd",
            "run/../../x",
            "run//0",
            "",
            "a/b/c/d",
            "run/.hidden",
            "a\\b",
        ] {
            let e = Target::parse(bad).expect_err(bad);
            assert_eq!(e.code, super::super::EXIT_USAGE, "{bad}");
        }
        assert!(
            Target::parse("../x")
                .expect_err("escape")
                .message
                .contains("..\"")
        );
    }
}
