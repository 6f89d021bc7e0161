//! The `blooming` command: `blooming ui [--datastore LOC] [--bind ADDR] [--port N]`.

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
