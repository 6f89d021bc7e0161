//! Reading past runs from any process: flows, runs, steps, tasks and artifacts.
//!
//! ```no_run
//! use flow_runtime::client::Client;
//! # #[derive(Clone, Default, serde::Serialize, serde::Deserialize)] struct Squares { total: u64 }
//! # fn main() -> Result<(), flow_runtime::client::ClientError> {
//! let client = Client::open(".blooming")?;
//! let run = client.flow("Squares").latest_successful_run()?;
//! let total: u64 = run.artifact("total")?;        // from the `end` step, nothing else loaded
//! let task = run.step("sq")?.task("3")?;          // one foreach task
//! println!("{} ran {} attempt(s)", task.pathspec(), task.attempts().len());
//! # Ok(()) }
//! ```
//!
//! Finding the latest run reads one pointer file, never a listing of every run.
//!
//! A step's tasks are also listed whatever they recorded ([`TaskEntry`]: running, interrupted,
//! failed), and values and logs too large to hold are read as streams, each blob checked
//! against the size and hash its task recorded:
//!
//! ```no_run
//! use flow_runtime::client::{Client, OutputStream};
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let client = Client::open(".blooming")?;
//! let run = client.flow("Squares").run_or_latest("latest")?;
//! let task = run.step("end")?.only_task()?;
//! println!("{}/{} {}", task.step(), task.id(), task.progress());
//! for artifact in task.artifacts().unwrap_or_default() {
//!     let mut blob = task.open_artifact(artifact)?;
//!     std::io::copy(&mut blob, &mut std::io::sink())?;
//!     blob.finish()?; // what was read is the artifact as its task recorded it
//! }
//! if let Some(mut printed) = task.logs()?.output(OutputStream::Stdout)? {
//!     std::io::copy(&mut printed.reader, &mut std::io::stdout())?;
//! }
//! # Ok(()) }
//! ```
//!
//! A datastore on S3-compatible storage (cargo feature `s3`) opens the same way, with its URL;
//! the endpoint and credentials come from the `AWS_*` environment variables (see
//! [`S3Location`](crate::datastore::S3Location)):
//!
//! ```no_run
//! # use flow_runtime::client::Client;
//! # fn main() -> Result<(), flow_runtime::client::ClientError> {
//! let client = Client::open("s3://ml-runs/team-a")?;
//! # Ok(()) }
//! ```

mod blob_stream;
mod error;
mod handles;
mod run_list;
mod task_card;
mod task_entry;
mod task_logs;
pub mod value;

pub use blob_stream::CheckedBlob;
pub use error::ClientError;
pub use handles::{FlowHandle, LATEST, RunHandle, StepHandle, TaskHandle};
pub use run_list::{RunList, UnreadableRun};
pub use task_entry::{TaskEntry, TaskProgress};
pub use task_logs::{LogStream, OutputStream, TaskLogs};

use crate::datastore::{DatastoreLocation, StorageError};
use crate::run::{RunStore, RunStoreError};

/// The environment variable that names the datastore when no location is given: read by
/// [`Client::from_env`] and by the CLI when `--datastore` is not on its command line.
pub const DATASTORE_ENV: &str = "BLOOMING_DATASTORE";
/// The datastore used when neither a location nor [`DATASTORE_ENV`] is given, relative to the
/// working directory.
pub const DEFAULT_DATASTORE: &str = ".blooming";

/// A datastore opened for reading runs.
#[derive(Debug, Clone)]
pub struct Client {
    store: RunStore,
}

impl Client {
    /// Opens the datastore at `location`: a local directory, or a URL as
    /// [`DatastoreLocation::parse`] reads it, such as `s3://bucket/prefix` (with the cargo
    /// feature `s3`). Paths of every kind are accepted, as before URLs were.
    ///
    /// # Errors
    ///
    /// [`ClientError::NoDatastore`] for a directory or a bucket that does not exist; a malformed
    /// URL, unreachable storage or refused credentials as [`ClientError::Store`].
    pub fn open(location: impl Into<std::path::PathBuf>) -> Result<Client, ClientError> {
        let location = location.into();
        let location = DatastoreLocation::from_os_str(location.as_os_str())
            .map_err(|e| ClientError::Store(e.into()))?;
        Client::open_location(&location)
    }

    /// Opens the datastore at `location`, which must exist: a local directory is not created,
    /// a bucket must be reachable.
    ///
    /// # Errors
    ///
    /// As [`Client::open`].
    pub fn open_location(location: &DatastoreLocation) -> Result<Client, ClientError> {
        let no_datastore = || ClientError::NoDatastore {
            path: location.to_string(),
        };
        if location.as_local().is_some_and(|path| !path.is_dir()) {
            return Err(no_datastore());
        }
        match RunStore::open(location) {
            Ok(store) => Ok(Client { store }),
            // A missing bucket, as a missing directory.
            Err(RunStoreError::Storage(StorageError::Io { source, .. }))
                if source.kind() == std::io::ErrorKind::NotFound =>
            {
                Err(no_datastore())
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Opens the datastore named by `BLOOMING_DATASTORE` (a path or an `s3://` URL), or
    /// `./.blooming`.
    pub fn from_env() -> Result<Client, ClientError> {
        let path = std::env::var_os(DATASTORE_ENV)
            .map(std::path::PathBuf::from)
            .unwrap_or_else(|| DEFAULT_DATASTORE.into());
        Client::open(path)
    }

    /// A client over an already open run store (any storage backend).
    pub fn with_store(store: RunStore) -> Client {
        Client { store }
    }

    /// The run store underneath.
    pub fn store(&self) -> &RunStore {
        &self.store
    }

    /// The names of every flow with runs here.
    pub fn flows(&self) -> Result<Vec<String>, ClientError> {
        Ok(self.store.list_flows()?)
    }

    /// The flow called `name` (whether or not it has runs; lookups say so).
    pub fn flow(&self, name: &str) -> FlowHandle<'_> {
        FlowHandle::new(self, name)
    }
}
