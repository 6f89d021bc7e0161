//! The `blooming` command: `blooming ui [--datastore LOC] [--bind ADDR] [--port N]` and
//! `blooming card FLOW/RUN/STEP[/TASK] [--output FILE] [--datastore LOC]`.

use std::ffi::OsString;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use flow_runtime::client::{Client, DATASTORE_ENV, DEFAULT_DATASTORE};

use crate::router;

/// The port `blooming ui` listens on unless told otherwise.
pub const DEFAULT_PORT: u16 = 7878;

/// Tools over a blooming-flowers datastore that need no flow's code.
#[derive(Debug, Parser)]
#[command(name = "blooming", version, about)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serves a read-only web UI over a datastore's runs.
    Ui(UiArgs),
    /// Exports a task's card as one self-contained HTML file.
    Card(CardArgs),
}

/// The arguments of `blooming card`.
#[derive(Debug, Args)]
pub struct CardArgs {
    /// The task: `FLOW/RUN/STEP/TASK`, or `FLOW/RUN/STEP` for a step's only task; RUN may be
    /// `latest`.
    #[arg(value_name = "FLOW/RUN/STEP[/TASK]")]
    pub task: String,
    /// Where to write the HTML file; `-` (the default) is standard output.
    #[arg(long, short, value_name = "FILE", default_value = "-")]
    pub output: OsString,
    /// The datastore: a directory or `s3://bucket/prefix` (default: $BLOOMING_DATASTORE, else
    /// `./.blooming`).
    #[arg(long, value_name = "LOC", env = DATASTORE_ENV, default_value = DEFAULT_DATASTORE)]
    pub datastore: OsString,
}

/// The arguments of `blooming ui`.
#[derive(Debug, Args)]
pub struct UiArgs {
    /// The datastore: a directory or `s3://bucket/prefix` (default: $BLOOMING_DATASTORE, else
    /// `./.blooming`).
    #[arg(long, value_name = "LOC", env = DATASTORE_ENV, default_value = DEFAULT_DATASTORE)]
    pub datastore: OsString,
    /// Where to listen.
    #[command(flatten)]
    pub listen: ListenArgs,
}

/// Where the UI listens: the arguments `blooming ui` and `MYFLOW ui` share.
#[derive(Debug, Clone, Copy, Args)]
pub struct ListenArgs {
    /// The address to listen on; 127.0.0.1 keeps the UI to this machine.
    #[arg(long, value_name = "ADDR", default_value_t = IpAddr::V4(Ipv4Addr::LOCALHOST))]
    pub bind: IpAddr,
    /// The port to listen on; 0 picks a free one (the one picked is printed).
    #[arg(long, value_name = "N", default_value_t = DEFAULT_PORT)]
    pub port: u16,
}

impl ListenArgs {
    /// The socket address to listen on.
    pub fn address(&self) -> SocketAddr {
        SocketAddr::new(self.bind, self.port)
    }
}

/// The `blooming` binary: parses its arguments (a usage error exits with 2) and runs the
/// command (a datastore that cannot be opened or a port that cannot be bound exits with 1).
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Ui(args) => match ui(&args) {
            Ok(()) => ExitCode::SUCCESS,
            Err(message) => {
                eprintln!("blooming ui: {message}");
                ExitCode::FAILURE
            }
        },
        Command::Card(args) => match card(&args) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("blooming card: {}", e.message);
                ExitCode::from(e.code)
            }
        },
    }
}

/// Why `blooming card` failed: a message for people and the exit code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CardCommandError {
    /// What went wrong.
    pub message: String,
    /// 2 for a path that is not `FLOW/RUN/STEP[/TASK]` or names what cannot be in a datastore;
    /// 1 for a missing run, step, task or card, a damaged card, or a file that cannot be written.
    pub code: u8,
}

impl CardCommandError {
    fn usage(message: impl Into<String>) -> Self {
        CardCommandError {
            message: message.into(),
            code: 2,
        }
    }

    fn failure(message: impl Into<String>) -> Self {
        CardCommandError {
            message: message.into(),
            code: 1,
        }
    }
}

/// Splits `FLOW/RUN/STEP[/TASK]` into its parts.
///
/// # Errors
///
/// Any other number of parts, or an empty one: a usage error (exit 2).
pub fn parse_task_path(path: &str) -> Result<(&str, &str, &str, Option<&str>), CardCommandError> {
    let bad = || {
        CardCommandError::usage(format!(
            "`{path}` is not FLOW/RUN/STEP or FLOW/RUN/STEP/TASK (RUN may be `latest`)"
        ))
    };
    let (flow, rest) = path.split_once('/').ok_or_else(bad)?;
    if flow.is_empty() {
        return Err(bad());
    }
    let (run, step, task) = parse_run_path(rest).map_err(|_| bad())?;
    Ok((flow, run, step, task))
}

/// Splits `RUN/STEP[/TASK]` (what a flow binary's `card` takes: it knows its flow) into its
/// parts.
///
/// # Errors
///
/// Any other number of parts, or an empty one: a usage error (exit 2).
pub fn parse_run_path(path: &str) -> Result<(&str, &str, Option<&str>), CardCommandError> {
    let parts: Vec<&str> = path.split('/').collect();
    let bad = || {
        CardCommandError::usage(format!(
            "`{path}` is not RUN/STEP or RUN/STEP/TASK (RUN may be `latest`)"
        ))
    };
    if parts.iter().any(|p| p.is_empty()) {
        return Err(bad());
    }
    match parts.as_slice() {
        [run, step] => Ok((run, step, None)),
        [run, step, task] => Ok((run, step, Some(task))),
        _ => Err(bad()),
    }
}

/// `blooming card`: writes the card of `args.task` to `args.output` (`-`: standard output), and
/// nowhere else; nothing is written when the card cannot be exported.
///
/// # Errors
///
/// See [`CardCommandError::code`].
pub fn card(args: &CardArgs) -> Result<(), CardCommandError> {
    let (flow, run, step, task) = parse_task_path(&args.task)?;
    let client =
        Client::open(&args.datastore).map_err(|e| CardCommandError::failure(e.to_string()))?;
    export_card_to(&client, flow, run, step, task, &args.output)
}

/// Writes the card of a task (see [`crate::export_card_html`]) to `output`, a file or `-` for
/// standard output, and nowhere else; nothing is written when the card cannot be exported. What
/// `blooming card` does once it has parsed its arguments, for a flow binary's `card` command too.
///
/// # Errors
///
/// See [`CardCommandError::code`].
pub fn export_card_to(
    client: &Client,
    flow: &str,
    run: &str,
    step: &str,
    task: Option<&str>,
    output: &std::ffi::OsStr,
) -> Result<(), CardCommandError> {
    let html = crate::export_card_html(client, flow, run, step, task).map_err(|e| match e {
        crate::CardExportError::BadName(m) => CardCommandError::usage(m),
        other => CardCommandError::failure(other.to_string()),
    })?;
    if output == "-" {
        use std::io::Write as _;
        std::io::stdout()
            .lock()
            .write_all(html.as_bytes())
            .map_err(|e| CardCommandError::failure(format!("cannot write the card: {e}")))
    } else {
        std::fs::write(output, html).map_err(|e| {
            CardCommandError::failure(format!(
                "cannot write {}: {e}",
                std::path::Path::new(output).display()
            ))
        })
    }
}

/// Serves the UI over `args.datastore` until Ctrl-C.
///
/// # Errors
///
/// A datastore that cannot be opened, an address that cannot be bound, a server failure; as a
/// message for people.
pub fn ui(args: &UiArgs) -> Result<(), String> {
    let shown = args.datastore.to_string_lossy().into_owned();
    let client = Client::open(&args.datastore).map_err(|e| e.to_string())?;
    serve(client, &shown, args.listen.address(), "/")
}

/// Serves the UI over `client` (whose datastore is called `shown` in what is printed) on
/// `address` until Ctrl-C, after printing the URL of `path`.
///
/// # Errors
///
/// An address that cannot be bound, a server failure; as a message for people.
pub fn serve(client: Client, shown: &str, address: SocketAddr, path: &str) -> Result<(), String> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the server's runtime: {e}"))?;
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(address)
            .await
            .map_err(|e| format!("cannot listen on {address}: {e}"))?;
        let bound = listener
            .local_addr()
            .map_err(|e| format!("cannot tell the address listened on: {e}"))?;
        println!("blooming ui: serving {shown} at http://{bound}{path}");
        axum::serve(listener, router(client))
            .with_graceful_shutdown(async {
                // Without a Ctrl-C handler the server runs until it is killed.
                if tokio::signal::ctrl_c().await.is_err() {
                    std::future::pending::<()>().await;
                }
            })
            .await
            .map_err(|e| format!("the server stopped: {e}"))
    })
}
