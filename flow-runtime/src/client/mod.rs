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

mod error;
mod handles;

pub use error::ClientError;
pub use handles::{FlowHandle, RunHandle, StepHandle, TaskHandle};

use crate::run::RunStore;

/// The environment variable that names the datastore, as for the CLI.
pub const DATASTORE_ENV: &str = "BLOOMING_DATASTORE";
/// The datastore used when neither a path nor [`DATASTORE_ENV`] is given.
pub const DEFAULT_DATASTORE: &str = ".blooming";

/// A datastore opened for reading runs.
#[derive(Debug, Clone)]
pub struct Client {
    store: RunStore,
}

impl Client {
    /// Opens the local datastore at `path`.
    pub fn open(path: impl Into<std::path::PathBuf>) -> Result<Client, ClientError> {
        let path = path.into();
        if !path.is_dir() {
            return Err(ClientError::NoDatastore {
                path: path.display().to_string(),
            });
        }
        Ok(Client {
            store: RunStore::open_local(path)?,
        })
    }

    /// Opens the datastore named by `BLOOMING_DATASTORE`, or `./.blooming`.
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
