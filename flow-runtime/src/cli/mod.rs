//! The command-line interface every flow binary gets from a one-line `main`:
//!
//! ```text
//! fn main() -> std::process::ExitCode { blooming_flowers::main::<MyFlow>() }
//! ```
//!
//! Every subcommand takes `--datastore PATH` (or the `BLOOMING_DATASTORE` environment variable;
//! default `.blooming` under the working directory). With the cargo feature `s3`, the datastore
//! can also be a bucket on S3-compatible storage, `--datastore s3://BUCKET/PREFIX`, reached
//! through the standard `AWS_*` environment variables (see [`S3Location`](crate::datastore::S3Location)):
//!
//! | command | what it does |
//! |---|---|
//! | `run [--max-workers N] [--tag T]… [--process] [--PARAM VALUE]…` | starts a run; prints where its results are, or the failing task and how to resume |
//! | `resume [--origin-run-id ID] [STEP]` | a new run reusing every task of the origin run (default: the latest) that succeeded; with `STEP`, that step and everything after it rerun |
//! | `show` | the graph as text |
//! | `graph [--format dot\|mermaid\|text]` | the graph as DOT (default), Mermaid or text |
//! | `runs [--tag T]… [--json]` | this flow's runs, newest first |
//! | `dump RUN[/STEP[/TASK]] [--artifact NAME] [--json\|--raw]` | a run, a step's tasks, a task's artifacts, or one artifact's value (`RUN` may be `latest`) |
//! | `logs RUN/STEP[/TASK] [--attempt N]` | a task's logs, and its stdout and stderr in process mode, streamed |
//! | `tag RUN add\|remove TAG…` | changes a run's tags |
//! | `step STEP --run-id ID --task-id TASK` | runs exactly one task from what the datastore holds: the unit process mode and cluster schedulers run |
//!
//! Where a step has a single task (every step outside a foreach, whose task id is `0`), `RUN/STEP`
//! also means that task: `dump RUN/end` shows the results of a run, `dump RUN/end --json` prints
//! them as one JSON object, `dump RUN/end --artifact total` one of them.
//!
//! Artifacts are shown without their Rust types, converted from MessagePack to JSON (see
//! [`msgpack_to_json`] for the few choices this needs: binary data becomes an array of byte
//! values). Without `--json`, `dump --artifact` prints a preview: the first elements of arrays and
//! maps, the first characters of strings and bytes of binary data, each cut saying how much it
//! left, read from the blob as a stream, so a 1 GiB artifact costs what its first elements cost.
//! `--json` and `--raw` (the stored MessagePack bytes) print the whole value, streamed too. Every
//! blob is checked against its recorded size and hash before what it holds is printed.
//!
//! Nothing read from the datastore drives the terminal: `dump` shows control characters as
//! escapes (`\x1b`; in JSON strings, JSON's `\u001b`), error messages too, and `logs` does when
//! stdout is a terminal; into a pipe or a file, `logs` writes the logs as stored.
//!
//! Exit codes: [`EXIT_OK`] (0), [`EXIT_FAILURE`] (1) for a failed run or task or a damaged
//! datastore, [`EXIT_USAGE`] (2) for bad input, after which nothing was written to the datastore.
//!
//! Where things are: each subcommand is one file of `commands/`, its clap definition and a thin
//! `exec` that calls the executor, the client (the reading commands read only through it) or
//! the run store. What several commands share is beside `commands/`: `context.rs` (output
//! streams, the datastore opened), `args.rs`, `lookup.rs` (runs, steps and tasks found with
//! the client and explained), `run_options.rs` and `run_report.rs` (`run` and `resume`),
//! `artifact_output.rs` and `value.rs` (values from MessagePack), `terminal.rs` (escapes),
//! `table.rs`, `argo_outputs.rs` and `parameter_clashes.rs`. The `step` command's arguments
//! are a [`StepInvocation`](crate::executor::StepInvocation).

mod argo_outputs;
mod args;
mod artifact_output;
mod commands;
mod context;
mod error;
mod extension;
mod lookup;
mod parameter_clashes;
mod run_options;
mod run_report;
mod table;
mod terminal;

use std::ffi::OsString;
use std::io::{IsTerminal, Write};
use std::path::Path;
use std::process::ExitCode;

use clap::{Arg, Command, value_parser};

pub use crate::client::value::{MsgpackError, msgpack_to_json};
pub use crate::client::{DATASTORE_ENV, DEFAULT_DATASTORE};
pub use error::{EXIT_FAILURE, EXIT_OK, EXIT_USAGE};
pub use extension::{CommandExtension, ExtensionContext, ExtensionError};

use crate::executor::step_invocation::DATASTORE_FLAG;
use crate::flow::Flow;
use context::{Ctx, Terminals, datastore_location};
use error::CliError;

/// The `main` of a flow binary: parses the process's arguments and runs the command.
///
/// ```no_run
/// # use flow_runtime as blooming_flowers;
/// # fn _doc<MyFlow: blooming_flowers::Flow>() -> std::process::ExitCode {
/// blooming_flowers::main::<MyFlow>()
/// # }
/// ```
pub fn main<F: Flow>() -> ExitCode {
    main_with::<F>(&[])
}

/// [`main`] with more subcommands than the runtime's own: what the facade's `main` calls with
/// the web UI's `ui` and `card` when its cargo feature `ui` is on.
pub fn main_with<F: Flow>(extensions: &[CommandExtension]) -> ExitCode {
    run_cli_extended::<F, _, _>(std::env::args_os(), extensions)
}

/// Runs the command line `args` (the binary's name first, as in [`std::env::args_os`]) on the
/// process's stdout and stderr.
///
/// A progress display is drawn on stderr during `run` and `resume` when stderr is a terminal.
pub fn run_cli<F: Flow, I, T>(args: I) -> ExitCode
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    run_cli_extended::<F, _, _>(args, &[])
}

/// [`run_cli`] with the subcommands `extensions` besides the runtime's own.
pub fn run_cli_extended<F: Flow, I, T>(args: I, extensions: &[CommandExtension]) -> ExitCode
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    // Not locked for the whole command: steps running on worker threads print too.
    let mut out = std::io::stdout();
    let mut err = std::io::stderr();
    let terminal = err.is_terminal();
    let out_terminal = out.is_terminal();
    let code = dispatch::<F>(
        args.into_iter().map(Into::into).collect(),
        &mut out,
        &mut err,
        Terminals {
            err: terminal,
            out: out_terminal,
        },
        extensions,
    );
    let _ = out.flush();
    let _ = err.flush();
    ExitCode::from(code)
}

/// Runs the command line `args` (the binary's name first) writing to `out` and `err` instead of
/// the process's streams, and returns the exit code: what tests use.
///
/// No progress display is drawn. Messages of `clap` (usage errors, `--help`) go to `err` or `out`
/// as they would on a terminal, without colors.
pub fn run_cli_with<F: Flow, I, T>(args: I, out: &mut dyn Write, err: &mut dyn Write) -> u8
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let code = dispatch::<F>(
        args.into_iter().map(Into::into).collect(),
        out,
        err,
        Terminals::default(),
        &[],
    );
    let _ = out.flush();
    let _ = err.flush();
    code
}

/// The `clap` command of `F`'s binary, with `F`'s parameters on its `run` subcommand; for
/// generating shell completions or manual pages.
pub fn command<F: Flow>() -> Command {
    command_with_run::<F>(commands::run::cli::<F>())
}

/// [`command`] with the subcommands `extensions` added.
pub fn command_extended<F: Flow>(extensions: &[CommandExtension]) -> Command {
    command::<F>().subcommands(extensions.iter().map(|e| (e.command)()))
}

/// The binary's command with `run` as given: with or without the flow's parameters.
fn command_with_run<F: Flow>(run: Command) -> Command {
    let graph = F::GRAPH;
    let doc = graph.doc.trim();
    let about = doc
        .split("\n\n")
        .next()
        .unwrap_or_default()
        .trim()
        .to_owned();
    let about = if about.is_empty() {
        format!("Runs and inspects the flow {}", graph.name)
    } else {
        about
    };
    let mut command = Command::new(graph.name).about(about);
    if !doc.is_empty() {
        command = command.long_about(doc.to_owned());
    }
    command
        .subcommand_required(true)
        .arg_required_else_help(true)
        .after_help("Exit codes: 0 success, 1 a run or task failed or the datastore is damaged, 2 bad usage.")
        .arg(
            Arg::new(DATASTORE_FLAG)
                .long(DATASTORE_FLAG)
                .value_name("PATH")
                // Not a `PathBuf`: the value may be an `s3://` URL, which a path would not keep
                // apart from a directory of that name.
                .value_parser(value_parser!(OsString))
                .global(true)
                // The variable is read by hand: clap refuses an empty one even when the flag is
                // given, and an empty variable should mean "not set".
                .help("Where runs are kept: a directory, or s3://BUCKET/PREFIX [env: BLOOMING_DATASTORE] [default: ./.blooming]"),
        )
        .subcommands(commands::builtin(run))
}

fn dispatch<F: Flow>(
    args: Vec<OsString>,
    out: &mut dyn Write,
    err: &mut dyn Write,
    terminals: Terminals,
    extensions: &[CommandExtension],
) -> u8 {
    let terminal = terminals.err;
    crate::logs::install();
    let clashes = parameter_clashes::parameter_clashes::<F>();
    if !clashes.is_empty() {
        for clash in clashes {
            let _ = writeln!(err, "error: {clash}");
        }
        return EXIT_USAGE;
    }
    let bin = args
        .first()
        .and_then(|a| Path::new(a).file_name())
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| F::GRAPH.name.to_owned());
    let mut cmd = command_extended::<F>(extensions);
    let matches = match cmd.try_get_matches_from_mut(args) {
        Ok(m) => m,
        Err(e) => return print_clap_error(&e, out, err, terminal),
    };
    let datastore = match datastore_location(&matches) {
        Ok(p) => p,
        Err(e) => {
            let _ = writeln!(err, "error: {e}");
            return e.code;
        }
    };
    let mut ctx = Ctx {
        out,
        err,
        terminal,
        out_terminal: terminals.out,
        bin,
        datastore,
        datastore_flag: matches.get_one::<OsString>(DATASTORE_FLAG).is_some(),
        root: &cmd,
    };
    let extension = matches.subcommand().and_then(|(name, sub)| {
        let found = extensions
            .iter()
            .find(|e| (e.command)().get_name() == name)?;
        Some((found, sub))
    });
    let result = match matches
        .subcommand()
        .and_then(|(name, sub)| Some((commands::builtin_exec::<F>(name)?, sub)))
    {
        Some((exec, sub)) => exec(&mut ctx, sub),
        None => match extension {
            Some((extension, sub)) => run_extension::<F>(extension, &mut ctx, sub),
            None => Err(CliError::usage("no command given; see --help")),
        },
    };
    match result {
        Ok(()) => EXIT_OK,
        Err(e) => {
            if !e.message.is_empty() {
                // Messages name runs, steps and artifacts and quote what the datastore holds.
                let _ = writeln!(ctx.err, "error: {}", terminal::escape_controls(&e.message));
            }
            e.code
        }
    }
}

/// Runs an added command with what it may use of the binary's context.
fn run_extension<F: Flow>(
    extension: &CommandExtension,
    ctx: &mut Ctx<'_>,
    matches: &clap::ArgMatches,
) -> Result<(), CliError> {
    let datastore = ctx.datastore.to_string();
    // Opened before the command runs, with the messages the reading commands give.
    let client = ctx.open_client().map_err(|e| ExtensionError {
        message: e.message,
        usage: e.code == EXIT_USAGE,
    });
    let mut context = ExtensionContext::new(
        F::GRAPH.name,
        datastore,
        &mut *ctx.out,
        &mut *ctx.err,
        client,
    );
    (extension.exec)(&mut context, matches).map_err(|e| {
        if e.usage {
            CliError::usage(e.message)
        } else {
            CliError::failure(e.message)
        }
    })
}

fn print_clap_error(
    e: &clap::Error,
    out: &mut dyn Write,
    err: &mut dyn Write,
    terminal: bool,
) -> u8 {
    let text = if terminal {
        e.render().ansi().to_string()
    } else {
        e.render().to_string()
    };
    let stream: &mut dyn Write = if e.use_stderr() { err } else { out };
    let _ = stream.write_all(text.as_bytes());
    u8::try_from(e.exit_code()).unwrap_or(EXIT_USAGE)
}

pub(crate) use crate::executor::shell::shell_quote;

#[cfg(test)]
mod tests;
