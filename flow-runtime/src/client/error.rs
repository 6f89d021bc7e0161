//! What can go wrong reading a run.

use crate::datastore::LoadError;
use crate::run::RunStoreError;

/// Errors of the client API: each says what was asked for and what is there instead.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    #[error("no datastore at `{path}`")]
    NoDatastore { path: String },
    #[error("flow `{flow}` has no runs in this datastore")]
    NoRuns { flow: String },
    #[error("flow `{flow}` has no successful run in this datastore")]
    NoSuccessfulRun { flow: String },
    #[error("flow `{flow}` has no run `{run_id}`")]
    NoSuchRun { flow: String, run_id: String },
    #[error("flow `{flow}` has no run tagged `{tag}`")]
    NoRunTagged { flow: String, tag: String },
    #[error("run `{run_id}` of flow `{flow}` has no step `{step}`; its steps are {available}")]
    NoSuchStep {
        flow: String,
        run_id: String,
        step: String,
        available: String,
    },
    #[error("step `{step}` of run `{run_id}` has no task `{task_id}`; its tasks are {available}")]
    NoSuchTask {
        run_id: String,
        step: String,
        task_id: String,
        available: String,
    },
    #[error("task {pathspec} did not complete (status: {status})")]
    Incomplete { pathspec: String, status: String },
    #[error("task {pathspec} has no artifact `{name}`; its artifacts are {available}")]
    NoSuchArtifact {
        pathspec: String,
        name: String,
        available: String,
    },
    #[error("artifact `{name}` of task {pathspec} cannot be read as `{type_name}`: {source}")]
    Decode {
        pathspec: String,
        name: String,
        type_name: &'static str,
        #[source]
        source: Box<LoadError>,
    },
    #[error("the state of task {pathspec} cannot be read as `{type_name}`: {source}")]
    State {
        pathspec: String,
        type_name: &'static str,
        #[source]
        source: Box<LoadError>,
    },
    #[error("task {pathspec} is not of a foreach")]
    NotForeach { pathspec: String },
    #[error(transparent)]
    Store(#[from] RunStoreError),
}
