//! Every subcommand of a flow binary, one file each in the manner of cargo's
//! `src/bin/cargo/commands`: `cli()` is its clap definition, `exec()` reads its arguments and
//! calls the library (the executor to run, the client to read, the run store to write).
//!
//! | command | file | goes through |
//! |---|---|---|
//! | `run`, `resume` | `run.rs`, `resume.rs` | the executor |
//! | `show`, `graph` | `show.rs`, `graph.rs` | the flow's graph |
//! | `runs`, `dump`, `logs` | `runs.rs`, `dump.rs`, `logs.rs` | the client alone |
//! | `tag` | `tag.rs` | the client to find the run, the run store to change it |
//! | `promote`, `demote` | `promote.rs`, `demote.rs` | the client to find the run, the run store to change the label |
//! | `promotions` | `promotions.rs` | the client alone |
//! | `step` | `step.rs` | the executor ([`StepInvocation`](crate::executor::StepInvocation)) |
//! | `spin` | `spin.rs` | the client to find the task, the executor to run it again |
//! | `gc` | `gc.rs` | the run store's collection (`run::gc`) |
//! | `export-model` (feature `burn`) | `export_model.rs` | the client, then `burn_model::export` |
//! | `argo-workflow`, `init`, `finish` | `argo_workflow.rs`, `init.rs`, `finish.rs` | Argo's manifest, the run store |

pub(crate) mod argo_workflow;
pub(crate) mod demote;
pub(crate) mod dump;
#[cfg(feature = "burn")]
pub(crate) mod export_model;
pub(crate) mod finish;
pub(crate) mod gc;
pub(crate) mod graph;
pub(crate) mod init;
pub(crate) mod logs;
pub(crate) mod promote;
pub(crate) mod promotions;
pub(crate) mod resume;
pub(crate) mod run;
pub(crate) mod runs;
pub(crate) mod show;
pub(crate) mod spin;
pub(crate) mod step;
pub(crate) mod tag;

use clap::{ArgMatches, Command};

use super::context::Ctx;
use super::error::CliError;
use crate::flow::Flow;

/// What a command's `exec` returns.
pub(crate) type CliResult = Result<(), CliError>;

/// A command's `exec`.
pub(crate) type Exec = fn(&mut Ctx<'_>, &ArgMatches) -> CliResult;

/// Every subcommand, in the order `--help` lists them, with `run` as given (with or without the
/// flow's parameters).
pub(crate) fn builtin(run: Command) -> Vec<Command> {
    vec![
        run,
        resume::cli(),
        show::cli(),
        graph::cli(),
        runs::cli(),
        dump::cli(),
        logs::cli(),
        tag::cli(),
        promote::cli(),
        demote::cli(),
        promotions::cli(),
        step::cli(),
        spin::cli(),
        gc::cli(),
        #[cfg(feature = "burn")]
        export_model::cli(),
        argo_workflow::cli(),
        init::cli(),
        finish::cli(),
    ]
}

/// The `exec` of subcommand `name` for flow `F`.
pub(crate) fn builtin_exec<F: Flow>(name: &str) -> Option<Exec> {
    let exec: Exec = match name {
        "run" => run::exec::<F>,
        "resume" => resume::exec::<F>,
        "show" => show::exec::<F>,
        "graph" => graph::exec::<F>,
        "runs" => runs::exec::<F>,
        "dump" => dump::exec::<F>,
        "logs" => logs::exec::<F>,
        "tag" => tag::exec::<F>,
        "promote" => promote::exec::<F>,
        "demote" => demote::exec::<F>,
        "promotions" => promotions::exec::<F>,
        "step" => step::exec::<F>,
        "spin" => spin::exec::<F>,
        "gc" => gc::exec::<F>,
        #[cfg(feature = "burn")]
        "export-model" => export_model::exec::<F>,
        "argo-workflow" => argo_workflow::exec::<F>,
        "init" => init::exec::<F>,
        "finish" => finish::exec::<F>,
        _ => return None,
    };
    Some(exec)
}
