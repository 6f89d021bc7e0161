//! Serves the model of the `TrainBurn` run promoted to `production` over HTTP, and follows the
//! promotion: promote another run and the service answers with its model within a poll, without
//! a restart and without dropping a request.
//!
//! ```text
//! cargo run --release --features burn --example train_burn -- run --datastore /tmp/flows
//! cargo run --release --features burn --example train_burn -- promote latest --as production --datastore /tmp/flows
//! cargo run --release --features burn --example serve_model -- --datastore /tmp/flows
//! curl -s localhost:8080/model
//! curl -s -X POST localhost:8080/predict -H 'content-type: application/json' -d '{"inputs": [0.5, 1.0]}'
//! ```
//!
//! The service needs the model's type (`examples/shared/mlp.rs`) and the datastore, local or
//! `s3://` (with the feature `s3`): not the flow. See `examples/shared/model_service.rs` for the
//! API and how a new promotion is picked up.

use std::ffi::OsString;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::process::ExitCode;
use std::time::Duration;

use blooming_flowers::clap::{self, Parser};
use blooming_flowers::client::{Client, DATASTORE_ENV, DEFAULT_DATASTORE};

#[path = "shared/mlp.rs"]
mod mlp;
#[path = "shared/model_service.rs"]
mod model_service;

/// Serves the model of the run promoted to a label, and follows the label.
#[derive(Debug, Parser)]
#[command(name = "serve_model")]
struct Args {
    /// The datastore: a directory or `s3://bucket/prefix`.
    #[arg(long, value_name = "LOC", env = DATASTORE_ENV, default_value = DEFAULT_DATASTORE)]
    datastore: OsString,
    /// The flow whose promoted run is served.
    #[arg(long, default_value = "TrainBurn")]
    flow: String,
    /// The label followed.
    #[arg(long, default_value = "production")]
    label: String,
    /// The artifact of the run's final state that holds the model.
    #[arg(long, default_value = "best")]
    artifact: String,
    /// How often the label is read, e.g. `2s`, `500ms`.
    #[arg(long, default_value = "2s", value_parser = humantime::parse_duration)]
    poll: Duration,
    /// The address to listen on.
    #[arg(long, default_value_t = IpAddr::V4(Ipv4Addr::LOCALHOST))]
    bind: IpAddr,
    /// The port to listen on; 0 picks a free one (printed).
    #[arg(long, default_value_t = 8080)]
    port: u16,
}

fn main() -> ExitCode {
    let args = Args::parse();
    blooming_flowers::logs::install();
    let client = match Client::open(&args.datastore) {
        Ok(client) => client,
        Err(e) => {
            eprintln!("serve_model: {e}");
            return ExitCode::from(2);
        }
    };
    let service = model_service::Service::new(
        client,
        model_service::Settings {
            flow: args.flow,
            label: args.label,
            artifact: args.artifact,
            poll: args.poll,
        },
    );
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("serve_model: cannot start the server's runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(model_service::serve(
        service,
        SocketAddr::new(args.bind, args.port),
    )) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("serve_model: {message}");
            ExitCode::FAILURE
        }
    }
}
