//! What can go wrong reading a run.

use crate::datastore::{BlobHash, LoadError};
use crate::run::RunStoreError;

/// Errors of the client API: each says what was asked for and what is there instead.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The location given to [`Client::open`](super::Client::open) names no datastore: a
    /// directory or a bucket that does not exist (the client never creates one).
    #[error("no datastore at `{path}`")]
    NoDatastore {
        /// The location as given.
        path: String,
    },
    /// A latest run was asked for, and the flow has none.
    #[error("flow `{flow}` has no runs in this datastore")]
    NoRuns {
        /// The flow's name.
        flow: String,
    },
    /// The latest successful run was asked for, and none of the flow's runs succeeded.
    #[error("flow `{flow}` has no successful run in this datastore")]
    NoSuccessfulRun {
        /// The flow's name.
        flow: String,
    },
    /// A run id that the flow does not have.
    #[error("flow `{flow}` has no run `{run_id}`")]
    NoSuchRun {
        /// The flow's name.
        flow: String,
        /// The run id asked for.
        run_id: String,
    },
    /// A run a garbage collection began deleting: gone for readers.
    #[error(
        "run `{run_id}` of flow `{flow}` is being deleted: a garbage collection began deleting it at {since} (`gc` again finishes the job)"
    )]
    BeingDeleted {
        /// The flow's name.
        flow: String,
        /// The run being deleted.
        run_id: String,
        /// When the collection marked it, RFC 3339.
        since: String,
    },
    /// The latest run with a tag was asked for, and no run has it.
    #[error("flow `{flow}` has no run tagged `{tag}`")]
    NoRunTagged {
        /// The flow's name.
        flow: String,
        /// The tag asked for.
        tag: String,
    },
    /// No run is promoted as `label`: it never was, or it was demoted since.
    #[error("flow `{flow}` has no run promoted as `{label}`")]
    NotPromoted {
        /// The flow's name.
        flow: String,
        /// The promotion label asked for.
        label: String,
    },
    /// A step the run does not have (misspelt, or not reached).
    #[error("run `{run_id}` of flow `{flow}` has no step `{step}`; its steps are {available}")]
    NoSuchStep {
        /// The flow's name.
        flow: String,
        /// The run asked.
        run_id: String,
        /// The step asked for.
        step: String,
        /// The steps the run has, for the message.
        available: String,
    },
    /// A task id the step does not have.
    #[error("step `{step}` of run `{run_id}` has no task `{task_id}`; its tasks are {available}")]
    NoSuchTask {
        /// The run asked.
        run_id: String,
        /// The step asked.
        step: String,
        /// The task id asked for.
        task_id: String,
        /// The step's task ids, for the message.
        available: String,
    },
    /// A step asked for its only task that has none: the run did not reach it.
    #[error("step `{step}` of run `{run_id}` has no tasks: the run did not reach it")]
    NoTasks {
        /// The run asked.
        run_id: String,
        /// The step without tasks.
        step: String,
    },
    /// A step asked for its only task that has several (a step inside a foreach).
    #[error("step `{step}` of run `{run_id}` has {count} tasks, not one; name one")]
    SeveralTasks {
        /// The run asked.
        run_id: String,
        /// The step with several tasks.
        step: String,
        /// How many tasks it has.
        count: usize,
    },
    /// A task's artifacts or state were asked for, and the task did not complete: it has none
    /// to give.
    #[error("task {pathspec} did not complete (status: {status})")]
    Incomplete {
        /// The task, `flow/run/step/task`.
        pathspec: String,
        /// How it ended instead (`failed`, or `caught`).
        status: String,
    },
    /// An artifact name the task did not store.
    #[error("task {pathspec} has no artifact `{name}`; its artifacts are {available}")]
    NoSuchArtifact {
        /// The task, `flow/run/step/task`.
        pathspec: String,
        /// The artifact asked for.
        name: String,
        /// The task's artifacts, for the message.
        available: String,
    },
    /// An artifact that is not a value of the type it was read as (a field whose type changed,
    /// or a wrong type parameter), or whose stored bytes are damaged.
    #[error("artifact `{name}` of task {pathspec} cannot be read as `{type_name}`: {source}")]
    Decode {
        /// The task, `flow/run/step/task`.
        pathspec: String,
        /// The artifact.
        name: String,
        /// The Rust type it was read as.
        type_name: &'static str,
        /// What the decoder found.
        #[source]
        source: Box<LoadError>,
    },
    /// A task's whole state that cannot be read as the flow struct asked for
    /// ([`TaskHandle::state`](super::TaskHandle::state)).
    #[error("the state of task {pathspec} cannot be read as `{type_name}`: {source}")]
    State {
        /// The task, `flow/run/step/task`.
        pathspec: String,
        /// The flow struct it was read as.
        type_name: &'static str,
        /// What the decoder found.
        #[source]
        source: Box<LoadError>,
    },
    /// An artifact's blob read as a stream that is missing, unreadable, or not the bytes its
    /// task recorded (truncated, longer, corrupted); `context` names the run, step, task and
    /// artifact.
    #[error("{context}: blob {hash} {problem}")]
    Blob {
        /// The run, step, task and artifact the blob belongs to.
        context: String,
        /// The blob's content hash, its name in the datastore.
        hash: BlobHash,
        /// What is wrong with it.
        problem: String,
    },
    /// An artifact stored in an encoding this version cannot read.
    #[error("{context}: encoding `{encoding}` cannot be read by this version")]
    UnsupportedEncoding {
        /// The run, step, task and artifact.
        context: String,
        /// The encoding its task recorded.
        encoding: String,
    },
    /// A stored object (a log) that was listed but could not be read.
    #[error("cannot read {location}: {source}")]
    Unreadable {
        /// The object, for the message.
        location: String,
        /// Why it could not be read.
        #[source]
        source: Box<RunStoreError>,
    },
    /// A stored card that is not the encoding of a card (damaged or written by something else).
    #[error("the card of attempt {attempt} of task {pathspec} is damaged: {problem}")]
    DamagedCard {
        /// The task, `flow/run/step/task`.
        pathspec: String,
        /// The attempt whose card it is.
        attempt: u32,
        /// What is wrong with it.
        problem: String,
    },
    /// A foreach element ([`TaskHandle::item`](super::TaskHandle::item)) was asked of a task
    /// outside any foreach.
    #[error("task {pathspec} is not of a foreach")]
    NotForeach {
        /// The task, `flow/run/step/task`.
        pathspec: String,
    },
    /// The datastore could not be read: listing, reading or decoding a record failed.
    #[error(transparent)]
    Store(#[from] RunStoreError),
}
