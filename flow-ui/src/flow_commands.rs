//! The UI's commands on every flow binary, added by the facade's `main` when its cargo feature
//! `ui` is on: `MYFLOW ui` (the same server as `blooming ui`, its URL the flow's page) and
//! `MYFLOW card RUN/STEP[/TASK] --output FILE` (`blooming card` without the flow's name).

use std::ffi::OsString;

use clap::{Arg, ArgMatches, Args, Command, FromArgMatches, value_parser};
use flow_runtime::cli::{CommandExtension, ExtensionContext, ExtensionError};

use crate::cli::{CardCommandError, ListenArgs, export_card_to, parse_run_path, serve};
use crate::links;

/// The commands the UI adds to a flow binary.
///
/// ```no_run
/// # use flow_runtime as blooming_flowers;
/// # fn _doc<MyFlow: blooming_flowers::Flow>() -> std::process::ExitCode {
/// // What `blooming_flowers::main` is with the feature `ui`:
/// blooming_flowers::cli::main_with::<MyFlow>(flow_ui::flow_commands())
/// # }
/// ```
pub fn flow_commands() -> &'static [CommandExtension] {
    &[
        CommandExtension {
            command: ui_command,
            exec: ui_exec,
        },
        CommandExtension {
            command: card_command,
            exec: card_exec,
        },
    ]
}

fn ui_command() -> Command {
    // `about` after the arguments: `augment_args` sets the struct's doc as the about.
    ListenArgs::augment_args(Command::new("ui"))
        .about("Serves a read-only web UI over the datastore's runs, opened at this flow's runs")
}

fn ui_exec(ctx: &mut ExtensionContext<'_>, matches: &ArgMatches) -> Result<(), ExtensionError> {
    let listen =
        ListenArgs::from_arg_matches(matches).map_err(|e| ExtensionError::usage(e.to_string()))?;
    let client = ctx.client()?;
    serve(
        client,
        &ctx.datastore,
        listen.address(),
        &links::flow(ctx.flow),
    )
    .map_err(ExtensionError::failure)
}

fn card_command() -> Command {
    Command::new("card")
        .about("Exports a task's card as one self-contained HTML file")
        .arg(
            Arg::new("task")
                .value_name("RUN/STEP[/TASK]")
                .required(true)
                .help("The task: RUN/STEP/TASK, or RUN/STEP for a step's only task; RUN may be `latest`"),
        )
        .arg(
            Arg::new("output")
                .long("output")
                .short('o')
                .value_name("FILE")
                .value_parser(value_parser!(OsString))
                .default_value("-")
                .help("Where to write the HTML file; `-` (the default) is standard output"),
        )
}

fn card_exec(ctx: &mut ExtensionContext<'_>, matches: &ArgMatches) -> Result<(), ExtensionError> {
    let task = matches
        .get_one::<String>("task")
        .map(String::as_str)
        .unwrap_or_default();
    let output = matches
        .get_one::<OsString>("output")
        .cloned()
        .unwrap_or_else(|| OsString::from("-"));
    let (run, step, task_id) = parse_run_path(task).map_err(usage_or_failure)?;
    let client = ctx.client()?;
    export_card_to(&client, ctx.flow, run, step, task_id, &output).map_err(usage_or_failure)
}

/// A `card` failure with the exit code it has in `blooming card`.
fn usage_or_failure(CardCommandError { message, code }: CardCommandError) -> ExtensionError {
    if code == 2 {
        ExtensionError::usage(message)
    } else {
        ExtensionError::failure(message)
    }
}
