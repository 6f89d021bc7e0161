//! What can go wrong reading a run.

use crate::datastore::{BlobHash, LoadError};
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
    /// A run a garbage collection began deleting: gone for readers.
    #[error(
        "run `{run_id}` of flow `{flow}` is being deleted: a garbage collection began deleting it at {since} (`gc` again finishes the job)"
    )]
    BeingDeleted {
        flow: String,
        run_id: String,
        since: String,
    },
    #[error("flow `{flow}` has no run tagged `{tag}`")]
    NoRunTagged { flow: String, tag: String },
    /// No run is promoted as `label`: it never was, or it was demoted since.
    #[error("flow `{flow}` has no run promoted as `{label}`")]
    NotPromoted { flow: String, label: String },
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
    /// A step asked for its only task that has none: the run did not reach it.
    #[error("step `{step}` of run `{run_id}` has no tasks: the run did not reach it")]
    NoTasks { run_id: String, step: String },
    /// A step asked for its only task that has several (a step inside a foreach).
    #[error("step `{step}` of run `{run_id}` has {count} tasks, not one; name one")]
    SeveralTasks {
        run_id: String,
        step: String,
        count: usize,
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
    /// An artifact's blob read as a stream that is missing, unreadable, or not the bytes its
    /// task recorded (truncated, longer, corrupted); `context` names the run, step, task and
    /// artifact.
    #[error("{context}: blob {hash} {problem}")]
    Blob {
        context: String,
        hash: BlobHash,
        problem: String,
    },
    /// An artifact stored in an encoding this version cannot read.
    #[error("{context}: encoding `{encoding}` cannot be read by this version")]
    UnsupportedEncoding { context: String, encoding: String },
    /// A stored object (a log) that was listed but could not be read.
    #[error("cannot read {location}: {source}")]
    Unreadable {
        location: String,
        #[source]
        source: Box<RunStoreError>,
    },
    /// A stored card that is not the encoding of a card (damaged or written by something else).
    #[error("the card of attempt {attempt} of task {pathspec} is damaged: {problem}")]
    DamagedCard {
        pathspec: String,
        attempt: u32,
        problem: String,
    },
    #[error("task {pathspec} is not of a foreach")]
    NotForeach { pathspec: String },
    #[error(transparent)]
    Store(#[from] RunStoreError),
}
