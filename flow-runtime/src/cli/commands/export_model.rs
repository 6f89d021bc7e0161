//! `export-model` (feature `burn`): a model artifact of a task, written as a `.safetensors` file
//! with its config beside it, for PyTorch, numpy or burn without this project. Read through the
//! client; decoded without the flow's Rust types ([`StoredWeights`]), so one command serves every
//! `Model<M>` of every flow.

use std::io::Read;
use std::path::Path;

use clap::{Arg, ArgMatches, Command};

use super::CliResult;
use crate::burn_model::export::{ExportError, StoredWeights};
use crate::cli::args::{Target, check_segment, required};
use crate::cli::context::Ctx;
use crate::cli::error::CliError;
use crate::cli::lookup;
use crate::cli::terminal::escape_controls;
use crate::client::TaskEntry;
use crate::datastore::ArtifactEntry;
use crate::flow::Flow;

pub(crate) fn cli() -> Command {
    Command::new("export-model")
        .about("Writes a model artifact as a .safetensors file, with its config beside it")
        .long_about(
            "Writes the weights of a model artifact (a `Model<…>` field) to a .safetensors file \
             that PyTorch, numpy and burn load without this project: every tensor under its \
             record path (`l1.weight`), with its type and shape, bit for bit. The module's \
             config goes beside it as JSON (model.safetensors -> model.config.json) and into \
             the file's metadata (`config`), with `module` and `burn_version`.\n\n\
             Tensors keep burn's layout: a Linear weight is [in, out] (PyTorch's nn.Linear holds \
             [out, in]).\n\n\
             RUN may be `latest`; TASK may be left out for a step with a single task. Both files \
             are written whole and then renamed into place, so nothing half-written is ever at \
             either path.",
        )
        .arg(
            Arg::new("path")
                .value_name("RUN/STEP[/TASK]")
                .required(true)
                .help("The task holding the model; RUN may be `latest`"),
        )
        .arg(
            Arg::new("artifact")
                .value_name("ARTIFACT")
                .required(true)
                .help("The model artifact's name (the field's name)"),
        )
        .arg(
            Arg::new("output")
                .long("output")
                .short('o')
                .value_name("FILE")
                .value_parser(clap::value_parser!(std::path::PathBuf))
                .required(true)
                .help(
                    "The .safetensors file to write; the config goes to FILE's stem + .config.json",
                ),
        )
}

pub(crate) fn exec<F: Flow>(ctx: &mut Ctx<'_>, args: &ArgMatches) -> CliResult {
    let target = Target::parse(required(args, "path"))?;
    let artifact = required(args, "artifact");
    check_segment(artifact, "artifact name")?;
    let Some(output) = args.get_one::<std::path::PathBuf>("output") else {
        return Err(CliError::usage("--output FILE is required"));
    };
    let Some(step_name) = target.step.as_deref() else {
        return Err(CliError::usage(format!(
            "`{}` names a run; name the task holding the model as RUN/STEP[/TASK]",
            target.run
        )));
    };
    let flow = F::GRAPH.name;
    let client = ctx.open_client()?;
    let run = lookup::run(ctx, &client, flow, &target.run)?;
    let step = lookup::step(&run, step_name)?;
    let task = lookup::task(ctx, &step, run.id(), target.task.as_deref())?;
    let entry = find_artifact(&task, artifact)?;
    let bytes = read_artifact(&task, entry)?;
    let what = format!(
        "artifact `{artifact}` of task {}/{} of run {} ({})",
        task.step(),
        task.id(),
        task.run_id(),
        entry.type_name
    );
    let weights = StoredWeights::from_artifact(&bytes).map_err(|e| match e {
        // What was named is not a model: bad input.
        ExportError::NotAModel { .. }
        | ExportError::Unset
        | ExportError::UnsupportedDtype { .. } => {
            CliError::usage(format!("cannot export {what}: {e}"))
        }
        // A model that cannot be read: the datastore's failure.
        other => CliError::failure(format!("cannot export {what}: {other}")),
    })?;
    drop(bytes);
    let source = format!(
        "{flow}/{}/{}/{}/{artifact}",
        task.run_id(),
        task.step(),
        task.id()
    );
    let files = weights
        .write(output, &[("source", source)])
        .map_err(|e| CliError::failure(format!("cannot export {what}: {e}")))?;
    let count = weights.tensors.len();
    writeln!(
        ctx.out,
        "Exported model `{}` of task {}/{} of run {} ({count} tensor{}, {} values) to {}, its \
         config to {}",
        escape_controls(artifact),
        task.step(),
        task.id(),
        task.run_id(),
        if count == 1 { "" } else { "s" },
        weights.parameter_count(),
        display(&files.tensors),
        display(&files.config)
    )?;
    Ok(())
}

/// The task's artifact `name`, or an error listing the ones it has (exit 2).
fn find_artifact<'t>(task: &'t TaskEntry, name: &str) -> Result<&'t ArtifactEntry, CliError> {
    let Some(artifacts) = task.artifacts() else {
        return Err(CliError::usage(format!(
            "task {}/{} of run {} has no artifacts: it did not complete ({})",
            task.step(),
            task.id(),
            task.run_id(),
            task.progress()
        )));
    };
    artifacts.iter().find(|a| a.name == name).ok_or_else(|| {
        let names: Vec<&str> = artifacts.iter().map(|a| a.name.as_str()).collect();
        CliError::usage(format!(
            "task {}/{} of run {} has no artifact `{name}`; its artifacts are {}",
            task.step(),
            task.id(),
            task.run_id(),
            names.join(", ")
        ))
    })
}

/// The artifact's stored bytes, whole, checked against their hash.
fn read_artifact(task: &TaskEntry, entry: &ArtifactEntry) -> Result<Vec<u8>, CliError> {
    let mut blob = task.open_artifact(entry)?;
    let mut bytes = Vec::with_capacity(usize::try_from(entry.size).unwrap_or(0));
    if let Err(e) = blob.read_to_end(&mut bytes) {
        // The check names the blob and what failed.
        blob.finish()?;
        return Err(CliError::failure(format!("cannot read the artifact: {e}")));
    }
    blob.finish()?;
    Ok(bytes)
}

fn display(path: &Path) -> String {
    escape_controls(&path.display().to_string()).into_owned()
}
