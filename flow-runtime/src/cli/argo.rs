//! Running a flow on a scheduler that starts every task itself (Argo Workflows):
//!
//! - `argo-workflow --image IMAGE …` prints the flow's manifest (JSON, which is also YAML);
//! - `init [--run-id ID] [--tag T]… [-- --PARAM=VALUE…]` creates a run record without running
//!   anything, its parameters parsed by the flow's own parser;
//! - `step … --argo-outputs DIR` (on `step`) writes what Argo reads as output parameters: the
//!   task ids a foreach fans out to, the step a switch chose;
//! - `finish --run-id ID` records how the run ended, from what its tasks left.
//!
//! `init` and `finish` know nothing of Argo: any scheduler that runs each task with `step` can
//! bracket a run with them.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use clap::{Arg, ArgAction, ArgMatches, Command, value_parser};

use super::error::CliError;
use super::{Ctx, DATASTORE_ENV, EXIT_USAGE, tag_arg};
use crate::argo::{self, ArgoOptions};
use crate::datastore::validate_segment;
use crate::executor::task_id_of;
use crate::flow::{Flow, initial};
use crate::graph::Transition;
use crate::run::{
    GraphRecord, RunRecord, RunStatus, RunStore, RunStoreError, TaskStatus, new_run_id, now_rfc3339,
};

/// The subcommands this module adds, for the dispatcher.
pub(crate) const COMMANDS: [&str; 3] = ["argo-workflow", "init", "finish"];

/// `argo-workflow`, `init` and `finish`.
pub(crate) fn commands() -> [Command; 3] {
    [argo_workflow_command(), init_command(), finish_command()]
}

/// Runs one of [`COMMANDS`].
pub(crate) fn run<F: Flow>(
    ctx: &mut Ctx<'_>,
    name: &str,
    matches: &ArgMatches,
) -> Result<(), CliError> {
    match name {
        "argo-workflow" => argo_workflow::<F>(ctx, matches),
        "init" => init::<F>(ctx, matches),
        "finish" => finish::<F>(ctx, matches),
        other => Err(CliError::usage(format!("unknown command `{other}`"))),
    }
}

fn argo_workflow_command() -> Command {
    let text = |id: &'static str, value: &'static str, help: &'static str| {
        Arg::new(id).long(id).value_name(value).help(help)
    };
    Command::new("argo-workflow")
        .about("Prints an Argo Workflows manifest that runs the flow, one container per task")
        .long_about(
            "Prints an Argo Workflows manifest (JSON, which kubectl and argo read as YAML) that \
             runs the flow on Kubernetes: a task `init` creates the run with the workflow's \
             parameters, every task of the flow is a container running this binary's `step` \
             command, foreach steps fan out with `withParam`, switches choose with `when`, and an \
             exit handler records how the run ended. Every container uses the datastore given \
             with --datastore (or BLOOMING_DATASTORE), which must be the same for all of them: \
             an absolute path on a volume mounted in every pod (see --volume-claim), or object \
             storage.",
        )
        .arg(text("image", "IMAGE", "The container image with the flow binary").required(true))
        .arg(text(
            "binary",
            "PATH",
            "The flow binary's path in the image [default: the image's entrypoint]",
        ))
        .arg(text(
            "name",
            "NAME",
            "The resource's name [default: generateName FLOW- for a Workflow, FLOW for a template]",
        ))
        .arg(text("namespace", "NS", "The namespace to create it in"))
        .arg(text(
            "service-account",
            "SA",
            "The service account the pods run as",
        ))
        .arg(text(
            "volume-claim",
            "CLAIM",
            "A persistent volume claim to mount at the datastore's path in every pod",
        ))
        .arg(
            text(
                "env-secret",
                "SECRET",
                "A secret whose keys become environment variables of every container, such as \
                 an object store's credentials (repeatable)",
            )
            .action(ArgAction::Append),
        )
        .arg(
            Arg::new("template")
                .long("template")
                .action(ArgAction::SetTrue)
                .help("A WorkflowTemplate (stored, submitted later) instead of a Workflow"),
        )
        .arg(tag_arg(
            "Records TAG with every run of the manifest (repeatable)",
        ))
}

fn init_command() -> Command {
    Command::new("init")
        .about("Creates a run without running it, for a scheduler that runs each task with `step`")
        .long_about(
            "Creates a run record with the flow's parameters and prints its id; nothing runs. \
             A scheduler that starts every task itself (Argo Workflows) then runs each task \
             with `step` and ends with `finish`. Parameters come after `--`, as `--NAME=VALUE`; \
             flags take `true` or `false`.",
        )
        .arg(
            Arg::new("run-id")
                .long("run-id")
                .value_name("ID")
                .help("The new run's id [default: a new one, sorted by time]"),
        )
        .arg(tag_arg("Records TAG with the run (repeatable)"))
        .arg(outputs_arg().help("Also writes the run id to DIR/run-id (for Argo)"))
        .arg(
            Arg::new("params")
                .value_name("PARAM")
                .num_args(0..)
                .last(true)
                .allow_hyphen_values(true)
                .help("The flow's parameters, as `run` takes them"),
        )
}

fn finish_command() -> Command {
    Command::new("finish")
        .about("Records how a run started with `init` ended, from what its tasks left")
        .long_about(
            "Marks a run started with `init` as succeeded if its `end` task completed, else as \
             failed with the first failed task's error, and moves the flow's `latest` pointers. \
             Safe to repeat. An empty run id (a run that was never created) is reported and \
             ignored.",
        )
        .arg(
            Arg::new("run-id")
                .long("run-id")
                .value_name("ID")
                .required(true)
                .help("The run"),
        )
}

/// `--argo-outputs DIR`, on `step` and `init`.
pub(crate) fn outputs_arg() -> Arg {
    Arg::new("argo-outputs")
        .long("argo-outputs")
        .value_name("DIR")
        .value_parser(value_parser!(PathBuf))
        .help(
            "Also writes what Argo reads as output parameters to DIR: a foreach's child task \
             ids (foreach.json), a switch's choice (switch)",
        )
}

/// The datastore exactly as given (flag, else environment): for the containers, not this
/// machine, so it is neither made absolute nor opened.
fn datastore_as_given(matches: &ArgMatches) -> Option<String> {
    let flag = matches
        .try_get_raw("datastore")
        .ok()
        .flatten()
        .and_then(|mut values| values.next())
        .map(|v| v.to_string_lossy().into_owned());
    flag.or_else(|| {
        std::env::var_os(DATASTORE_ENV).map(|v: OsString| v.to_string_lossy().into_owned())
    })
    .filter(|d| !d.is_empty())
}

fn argo_workflow<F: Flow>(ctx: &mut Ctx<'_>, matches: &ArgMatches) -> Result<(), CliError> {
    let get = |id: &str| matches.get_one::<String>(id).cloned();
    let datastore = datastore_as_given(matches).ok_or_else(|| {
        CliError::usage(format!(
            "argo-workflow needs the datastore every container uses: pass --datastore LOCATION \
             (an absolute path on a volume mounted in every pod, or object storage) or set \
             {DATASTORE_ENV}"
        ))
    })?;
    let options = ArgoOptions {
        image: get("image").unwrap_or_default(),
        datastore,
        binary: get("binary"),
        name: get("name"),
        namespace: get("namespace"),
        service_account: get("service-account"),
        template: matches.get_flag("template"),
        volume_claim: get("volume-claim"),
        env_secrets: matches
            .get_many::<String>("env-secret")
            .map(|t| t.cloned().collect())
            .unwrap_or_default(),
        tags: matches
            .get_many::<String>("tag")
            .map(|t| t.cloned().collect())
            .unwrap_or_default(),
    };
    let workflow = argo::workflow::<F>(&options).map_err(|e| match e {
        argo::ArgoError::Invalid(m) => CliError::usage(m),
        other => CliError::failure(other.to_string()),
    })?;
    let text = serde_json::to_string_pretty(&workflow)
        .map_err(|e| CliError::failure(format!("cannot write the manifest: {e}")))?;
    writeln!(ctx.out, "{text}")?;
    Ok(())
}

fn init<F: Flow>(ctx: &mut Ctx<'_>, matches: &ArgMatches) -> Result<(), CliError> {
    let graph = F::GRAPH;
    // Everything is checked before the datastore is touched.
    let raw: Vec<String> = matches
        .get_many::<String>("params")
        .map(|v| v.cloned().collect())
        .unwrap_or_default();
    let mut params_command = F::__params_command(Command::new("init").no_binary_name(true));
    let args =
        argo::to_flow_args(&argo::flow_params(&params_command), &raw).map_err(CliError::usage)?;
    let params = match params_command
        .try_get_matches_from_mut(&args)
        .and_then(|m| initial::<F>().__apply_params(&m))
    {
        Ok(params) => params,
        Err(e) => {
            let e = e.format(&mut params_command);
            ctx.err.write_all(e.render().to_string().as_bytes())?;
            return Err(CliError {
                code: EXIT_USAGE,
                message: String::new(),
            });
        }
    };
    let run_id = match matches.get_one::<String>("run-id") {
        Some(id) => {
            validate_segment(id)
                .map_err(|e| CliError::usage(e.describing("run id").to_string()))?;
            id.clone()
        }
        None => new_run_id(),
    };
    let record = RunRecord {
        format: 1,
        flow: graph.name.to_string(),
        run_id: run_id.clone(),
        params,
        status: RunStatus::Running,
        started: now_rfc3339(),
        finished: None,
        user: std::env::var("USER")
            .or_else(|_| std::env::var("USERNAME"))
            .unwrap_or_else(|_| "unknown".into()),
        host: crate::run::hostname(),
        pid: std::process::id(),
        tags: matches
            .get_many::<String>("tag")
            .map(|t| t.cloned().collect())
            .unwrap_or_default(),
        graph: GraphRecord::of(graph),
        origin_run_id: None,
        failure: None,
    };
    let store = ctx.open_or_create()?;
    store.create_run(&record).map_err(|e| match e {
        RunStoreError::RunExists { .. } => CliError::usage(e.to_string()),
        other => other.into(),
    })?;
    store.advance_latest(graph.name, "any", &run_id)?;
    if let Some(dir) = matches.get_one::<PathBuf>("argo-outputs") {
        write_output(dir, argo::RUN_ID_FILE, &run_id)?;
    }
    writeln!(ctx.out, "{run_id}")?;
    Ok(())
}

fn finish<F: Flow>(ctx: &mut Ctx<'_>, matches: &ArgMatches) -> Result<(), CliError> {
    let graph = F::GRAPH;
    let flow = graph.name;
    let run_id = matches
        .get_one::<String>("run-id")
        .map(String::as_str)
        .unwrap_or_default();
    if run_id.is_empty() {
        // Argo's exit handler runs even when `init` failed before creating a run.
        writeln!(ctx.err, "No run to finish: none was created.")?;
        return Ok(());
    }
    validate_segment(run_id).map_err(|e| CliError::usage(e.describing("run id").to_string()))?;
    let store = ctx.open_existing()?;
    let mut record = store.read_run(flow, run_id)?;
    let end = graph.steps[graph.end].name;
    let end_key = RunStore::task_key(flow, run_id, end, "0")?;
    if store.read_done(&end_key)?.is_some() {
        record.status = RunStatus::Succeeded;
        record.failure = None;
    } else {
        record.status = RunStatus::Failed;
        record.failure = Some(
            first_failure(&store, F::GRAPH, run_id)?
                .unwrap_or_else(|| "the run stopped before reaching `end`".to_string()),
        );
    }
    record.finished = Some(now_rfc3339());
    store.update_run(&record)?;
    match &record.failure {
        None => writeln!(ctx.out, "Run {run_id} of {flow} succeeded.")?,
        Some(why) => writeln!(ctx.out, "Run {run_id} of {flow} failed: {why}")?,
    }
    Ok(())
}

/// The first task of the run, in graph order, that failed for good.
fn first_failure(
    store: &RunStore,
    graph: &crate::graph::FlowGraph,
    run_id: &str,
) -> Result<Option<String>, CliError> {
    let present = store.list_steps(graph.name, run_id)?;
    for step in graph
        .steps
        .iter()
        .filter(|s| present.iter().any(|p| p == s.name))
    {
        for task in store.list_tasks(graph.name, run_id, step.name)? {
            let key = RunStore::task_key(graph.name, run_id, step.name, &task)?;
            if let Some(meta) = store.read_meta(&key)?
                && meta.status == TaskStatus::Failed
            {
                let failure = meta
                    .failure()
                    .map_or_else(|| "it failed".to_string(), ToString::to_string);
                return Ok(Some(format!("task {}/{task} failed: {failure}", step.name)));
            }
        }
    }
    Ok(None)
}

/// After `step … --argo-outputs DIR` ran its task: writes a foreach's child task ids and a
/// switch's choice where Argo reads its output parameters.
pub(crate) fn write_step_outputs<F: Flow>(
    store: &RunStore,
    run_id: &str,
    step: &str,
    task_id: &str,
    dir: &Path,
) -> Result<(), CliError> {
    let graph = F::GRAPH;
    let Some(spec) = graph.step(step) else {
        return Ok(());
    };
    let key = RunStore::task_key(graph.name, run_id, step, task_id)?;
    let Some((_, Some(meta))) = store.read_done(&key)? else {
        return Err(CliError::failure(format!(
            "task {step}/{task_id} of run {run_id} left no record to read its outputs from"
        )));
    };
    match spec.transition {
        Transition::Foreach { .. } => {
            let record = meta.foreach.ok_or_else(|| {
                CliError::failure(format!(
                    "the foreach task {step}/{task_id} recorded no elements"
                ))
            })?;
            let path = crate::run::TaskPath {
                step: step.to_string(),
                task: task_id.to_string(),
            };
            let count = crate::executor::checked_foreach_count(store, &path, &record)
                .map_err(CliError::failure)?;
            let mut indices: Vec<usize> = meta
                .spec
                .frames
                .iter()
                .filter(|f| f.foreach)
                .map(|f| f.index)
                .collect();
            indices.push(0);
            let children: Vec<String> = (0..count)
                .map(|i| {
                    if let Some(last) = indices.last_mut() {
                        *last = i;
                    }
                    task_id_of(&indices)
                })
                .collect();
            let json = serde_json::to_string(&children)
                .map_err(|e| CliError::failure(format!("cannot write the task ids: {e}")))?;
            write_output(dir, argo::FOREACH_FILE, &json)
        }
        Transition::Switch(_) => {
            let chose = meta.chose.ok_or_else(|| {
                CliError::failure(format!("the switch {step}/{task_id} recorded no choice"))
            })?;
            write_output(dir, argo::SWITCH_FILE, &chose)
        }
        _ => Ok(()),
    }
}

fn write_output(dir: &Path, file: &str, text: &str) -> Result<(), CliError> {
    std::fs::create_dir_all(dir)
        .and_then(|()| std::fs::write(dir.join(file), text))
        .map_err(|e| CliError::failure(format!("cannot write {}: {e}", dir.join(file).display())))
}
