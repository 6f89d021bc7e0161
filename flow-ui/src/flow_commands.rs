//! The UI's commands on every flow binary: `MYFLOW ui` (the same server as `blooming ui`, its
//! URL the flow's page), added by the facade's `main` when its cargo feature `ui` is on.

use clap::{ArgMatches, Args, Command, FromArgMatches};
use flow_runtime::cli::{CommandExtension, ExtensionContext, ExtensionError};

use crate::cli::{ListenArgs, serve};
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
    &[CommandExtension {
        command: ui_command,
        exec: ui_exec,
    }]
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
