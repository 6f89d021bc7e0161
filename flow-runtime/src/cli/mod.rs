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

mod argo;
mod blob_stream;
mod error;
mod inspect;
mod runner;
mod table;
mod terminal;
mod value;

use std::ffi::OsString;
use std::io::{IsTerminal, Write};
use std::path::Path;
use std::process::ExitCode;

use clap::{Arg, ArgAction, ArgMatches, Command, value_parser};

pub use error::{EXIT_FAILURE, EXIT_OK, EXIT_USAGE};
pub use value::{MsgpackError, msgpack_to_json};

use crate::datastore::{DatastoreLocation, StorageError};
use crate::flow::Flow;
use crate::run::{RunStore, RunStoreError};
use error::CliError;

/// The environment variable that chooses the datastore when `--datastore` is not given.
pub const DATASTORE_ENV: &str = "BLOOMING_DATASTORE";

/// The datastore directory used when neither `--datastore` nor [`DATASTORE_ENV`] is given,
/// relative to the working directory.
pub const DEFAULT_DATASTORE: &str = ".blooming";

/// The `main` of a flow binary: parses the process's arguments and runs the command.
///
/// ```no_run
/// # use flow_runtime as blooming_flowers;
/// # fn _doc<MyFlow: blooming_flowers::Flow>() -> std::process::ExitCode {
/// blooming_flowers::main::<MyFlow>()
/// # }
/// ```
pub fn main<F: Flow>() -> ExitCode {
    run_cli::<F, _, _>(std::env::args_os())
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
    );
    let _ = out.flush();
    let _ = err.flush();
    code
}

/// The `clap` command of `F`'s binary, with `F`'s parameters on its `run` subcommand; for
/// generating shell completions or manual pages.
pub fn command<F: Flow>() -> Command {
    command_with_run::<F>(runner::run_command::<F>())
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
            Arg::new("datastore")
                .long("datastore")
                .value_name("PATH")
                // Not a `PathBuf`: the value may be an `s3://` URL, which a path would not keep
                // apart from a directory of that name.
                .value_parser(value_parser!(OsString))
                .global(true)
                // The variable is read by hand: clap refuses an empty one even when the flag is
                // given, and an empty variable should mean "not set".
                .help("Where runs are kept: a directory, or s3://BUCKET/PREFIX [env: BLOOMING_DATASTORE] [default: ./.blooming]"),
        )
        .subcommand(run)
        .subcommand(runner::resume_command())
        .subcommand(Command::new("show").about("Shows the flow's steps and transitions as text"))
        .subcommand(
            Command::new("graph").about("Prints the flow's graph for a graph tool").arg(
                Arg::new("format")
                    .long("format")
                    .value_parser(["dot", "mermaid", "text"])
                    .default_value("dot")
                    .help("Graphviz DOT, a Mermaid flowchart, or the text of `show`"),
            ),
        )
        .subcommand(inspect::runs_command())
        .subcommand(inspect::dump_command())
        .subcommand(inspect::logs_command())
        .subcommand(inspect::tag_command())
        .subcommand(runner::step_command())
        .subcommands(argo::commands())
}

/// Which of the output streams are terminals.
#[derive(Debug, Clone, Copy, Default)]
struct Terminals {
    out: bool,
    err: bool,
}

/// Where output goes, and how the binary is called in the commands suggested to the user.
pub(crate) struct Ctx<'a> {
    pub out: &'a mut dyn Write,
    pub err: &'a mut dyn Write,
    /// Whether stderr is a terminal (progress display).
    pub terminal: bool,
    /// Whether stdout is a terminal: logs are then shown with their control characters escaped,
    /// and binary output is refused.
    pub out_terminal: bool,
    /// The binary's name, as suggested commands spell it.
    pub bin: String,
    /// The datastore: an absolute path, or a bucket on S3-compatible storage.
    pub datastore: DatastoreLocation,
    /// Whether `--datastore` was on the command line, so suggested commands must repeat it.
    pub datastore_flag: bool,
}

impl Ctx<'_> {
    /// Runs `f` with `out` showing every control character it is given as an escape (see
    /// [`terminal`]): for output that is all text for people, made of what the datastore holds.
    pub fn with_escaped_out<T>(
        &mut self,
        f: impl FnOnce(&mut Ctx<'_>) -> Result<T, CliError>,
    ) -> Result<T, CliError> {
        let mut escaper = terminal::ControlEscaper::new(&mut *self.out);
        let result = f(&mut Ctx {
            out: &mut escaper,
            err: &mut *self.err,
            terminal: self.terminal,
            out_terminal: self.out_terminal,
            bin: self.bin.clone(),
            datastore: self.datastore.clone(),
            datastore_flag: self.datastore_flag,
        });
        escaper.finish()?;
        result
    }

    /// A command line to suggest: the binary, `--datastore` if it was given, then `rest`.
    pub fn suggest(&self, rest: &str) -> String {
        if self.datastore_flag {
            format!(
                "{} --datastore {} {rest}",
                self.bin,
                shell_quote(&self.datastore.to_string())
            )
        } else {
            format!("{} {rest}", self.bin)
        }
    }

    /// Whether there may be a datastore to read: a local directory must exist; a bucket is
    /// always worth asking (opening it says whether it is there).
    pub fn has_datastore(&self) -> bool {
        match &self.datastore {
            DatastoreLocation::Local(path) => path.is_dir(),
            _ => true,
        }
    }

    /// The datastore, which must exist: reading commands never create one. On S3, existing
    /// means that the bucket is there and accepts the credentials; a prefix with nothing under
    /// it is an empty datastore, as an empty directory is.
    pub fn open_existing(&self) -> Result<RunStore, CliError> {
        if !self.has_datastore() {
            return Err(CliError::usage(format!(
                "there is no datastore at {} (run the flow first, or pass --datastore PATH or set {DATASTORE_ENV})",
                self.datastore
            )));
        }
        self.open()
    }

    /// The datastore, created if missing (for `run`); a bucket is never created.
    pub fn open_or_create(&self) -> Result<RunStore, CliError> {
        self.open()
    }

    fn open(&self) -> Result<RunStore, CliError> {
        RunStore::open(&self.datastore).map_err(|e| match e {
            // A missing bucket is a wrong `--datastore`, as a missing directory is.
            RunStoreError::Storage(StorageError::Io { source, .. })
                if source.kind() == std::io::ErrorKind::NotFound =>
            {
                CliError::usage(format!(
                    "there is no datastore at {}: {source}",
                    self.datastore
                ))
            }
            // An `s3://` location in a build without S3: a wrong program or flag.
            RunStoreError::Location(_) => CliError::usage(e.to_string()),
            other => other.into(),
        })
    }
}

fn dispatch<F: Flow>(
    args: Vec<OsString>,
    out: &mut dyn Write,
    err: &mut dyn Write,
    terminals: Terminals,
) -> u8 {
    let terminal = terminals.err;
    crate::logs::install();
    let clashes = parameter_clashes::<F>();
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
    let mut cmd = command::<F>();
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
        datastore_flag: matches.get_one::<OsString>("datastore").is_some(),
    };
    let result = match matches.subcommand() {
        Some(("run", sub)) => runner::run::<F>(&mut ctx, &mut cmd, sub),
        Some(("resume", sub)) => runner::resume::<F>(&mut ctx, sub),
        Some(("step", sub)) => runner::step::<F>(&mut ctx, sub),
        Some(("show", _)) => write!(ctx.out, "{}", F::GRAPH.to_text()).map_err(CliError::from),
        Some(("graph", sub)) => graph::<F>(&mut ctx, sub),
        Some(("runs", sub)) => inspect::runs(&mut ctx, F::GRAPH.name, sub),
        Some(("dump", sub)) => inspect::dump(&mut ctx, F::GRAPH.name, sub),
        Some(("logs", sub)) => inspect::logs(&mut ctx, F::GRAPH.name, sub),
        Some(("tag", sub)) => inspect::tag(&mut ctx, F::GRAPH.name, sub),
        Some((name, sub)) if argo::COMMANDS.contains(&name) => argo::run::<F>(&mut ctx, name, sub),
        _ => Err(CliError::usage("no command given; see --help")),
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

fn graph<F: Flow>(ctx: &mut Ctx<'_>, matches: &ArgMatches) -> Result<(), CliError> {
    let graph = F::GRAPH;
    let text = match matches.get_one::<String>("format").map(String::as_str) {
        Some("mermaid") => graph.to_mermaid(),
        Some("text") => graph.to_text(),
        _ => graph.to_dot(),
    };
    ctx.out.write_all(text.as_bytes())?;
    Ok(())
}

/// The datastore: the flag, the environment variable, or the default; a local path is made
/// absolute, an `s3://` URL is checked (see [`DatastoreLocation::parse`]).
fn datastore_location(matches: &ArgMatches) -> Result<DatastoreLocation, CliError> {
    let location = match matches.get_one::<OsString>("datastore") {
        Some(location) if location.is_empty() => {
            return Err(CliError::usage(
                "the datastore path given with --datastore is empty",
            ));
        }
        Some(location) => location.clone(),
        None => std::env::var_os(DATASTORE_ENV)
            .filter(|v| !v.is_empty())
            .unwrap_or_else(|| OsString::from(DEFAULT_DATASTORE)),
    };
    DatastoreLocation::from_os_str(&location).map_err(|e| match e {
        crate::datastore::LocationError::Unresolvable { .. } => CliError::usage(e.to_string()),
        e => CliError::usage(format!("bad datastore location: {e}")),
    })
}

/// Every flow parameter that `run` already has an option of that name for, as one message each;
/// clap would otherwise panic on the duplicate when it builds the command.
///
/// The built-in options are read from `run` itself, as clap completes it (the global
/// `--datastore`, the generated `--help`), so an option added to `run` later is covered too.
fn parameter_clashes<F: Flow>() -> Vec<String> {
    let params = F::__params_command(Command::new("run"));
    if params.get_arguments().next().is_none() {
        return Vec::new();
    }
    let mut built = command_with_run::<F>(runner::run_command_without_params());
    built.build();
    let Some(run) = built.find_subcommand("run") else {
        return Vec::new();
    };
    params
        .get_arguments()
        .filter_map(|param| {
            run.get_arguments()
                .find_map(|builtin| clash(param, builtin))
        })
        .collect()
}

/// How `param` and `builtin` collide, if they do, said with the spelling clap would refuse.
fn clash(param: &Arg, builtin: &Arg) -> Option<String> {
    let longs = |arg: &Arg| -> Vec<String> {
        arg.get_long()
            .into_iter()
            .chain(arg.get_all_aliases().unwrap_or_default())
            .map(|long| format!("--{long}"))
            .collect()
    };
    let shorts = |arg: &Arg| -> Vec<String> {
        arg.get_short()
            .into_iter()
            .chain(arg.get_all_short_aliases().unwrap_or_default())
            .map(|short| format!("-{short}"))
            .collect()
    };
    let builtin_names = [longs(builtin), shorts(builtin)].concat();
    if let Some(name) = [longs(param), shorts(param)]
        .concat()
        .into_iter()
        .find(|name| builtin_names.contains(name))
    {
        return Some(format!(
            "flow parameter `{name}` clashes with the built-in option `{name}` of `run`; rename it"
        ));
    }
    // Two arguments with one id are refused as well, whatever they are spelt like.
    (param.get_id() == builtin.get_id()).then(|| {
        format!(
            "flow parameter `{}` has the id `{}` of the built-in option `{}` of `run`; rename it",
            display_name(param),
            param.get_id(),
            display_name(builtin)
        )
    })
}

/// How an argument is written on the command line: `--long`, `-s`, or `<ID>` when positional.
fn display_name(arg: &Arg) -> String {
    match (arg.get_long(), arg.get_short()) {
        (Some(long), _) => format!("--{long}"),
        (None, Some(short)) => format!("-{short}"),
        (None, None) => format!("<{}>", arg.get_id().as_str().to_uppercase()),
    }
}

pub(crate) use crate::executor::shell::shell_quote;

/// Checks a tag: not empty, at most 256 bytes, no whitespace or control characters.
pub(crate) fn parse_tag(tag: &str) -> Result<String, String> {
    if tag.is_empty() {
        return Err("a tag cannot be empty".to_owned());
    }
    if tag.len() > 256 {
        return Err(format!(
            "a tag has at most 256 bytes, this one {}",
            tag.len()
        ));
    }
    if let Some(c) = tag.chars().find(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!(
            "a tag cannot contain whitespace or control characters (found {c:?})"
        ));
    }
    Ok(tag.to_owned())
}

/// The `--tag` option of `run`, `resume` and `runs`.
pub(crate) fn tag_arg(help: &'static str) -> Arg {
    Arg::new("tag")
        .long("tag")
        .value_name("TAG")
        .action(ArgAction::Append)
        .value_parser(parse_tag)
        .help(help)
}

#[cfg(test)]
mod tests;
