//! How a command fails: a message and the exit code it maps to.

use std::fmt;
use std::io;

use crate::client::ClientError;
use crate::executor::RunError;
use crate::run::RunStoreError;

/// Exit code of a command that did what was asked.
pub const EXIT_OK: u8 = 0;
/// Exit code of a failed run or task, or of a datastore that could not be read (damaged,
/// unreadable, I/O errors).
pub const EXIT_FAILURE: u8 = 1;
/// Exit code of bad input: unknown options or parameters, values of the wrong type, run ids,
/// steps, tasks or artifacts that do not exist, paths that try to leave the datastore. Nothing is
/// written to the datastore for bad input.
pub const EXIT_USAGE: u8 = 2;

/// A command that did not succeed: what to tell the user, and the exit code.
#[derive(Debug)]
pub(crate) struct CliError {
    pub code: u8,
    /// Printed after `error: `; empty when everything was said already.
    pub message: String,
}

impl CliError {
    /// Bad input (exit 2).
    pub fn usage(message: impl Into<String>) -> Self {
        CliError {
            code: EXIT_USAGE,
            message: message.into(),
        }
    }

    /// A failure of a run, a task or the datastore (exit 1).
    pub fn failure(message: impl Into<String>) -> Self {
        CliError {
            code: EXIT_FAILURE,
            message: message.into(),
        }
    }

    /// Exit 1 with everything said already.
    pub fn silent_failure() -> Self {
        CliError {
            code: EXIT_FAILURE,
            message: String::new(),
        }
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl From<io::Error> for CliError {
    fn from(e: io::Error) -> Self {
        if e.kind() == io::ErrorKind::BrokenPipe {
            // `flow dump … | head`: the reader has what it wanted.
            return CliError {
                code: EXIT_OK,
                message: String::new(),
            };
        }
        CliError::failure(format!("cannot write the output: {e}"))
    }
}

impl From<RunStoreError> for CliError {
    fn from(e: RunStoreError) -> Self {
        match e {
            RunStoreError::NoSuchRun { .. }
            | RunStoreError::Key(_)
            | RunStoreError::NotPromotable { .. }
            | RunStoreError::NothingPromoted { .. } => CliError::usage(e.to_string()),
            other => CliError::failure(other.to_string()),
        }
    }
}

impl From<ClientError> for CliError {
    fn from(e: ClientError) -> Self {
        match e {
            ClientError::Store(e) => e.into(),
            // What was asked for is not there.
            ClientError::NoDatastore { .. }
            | ClientError::NoRuns { .. }
            | ClientError::NoSuccessfulRun { .. }
            | ClientError::NoSuchRun { .. }
            | ClientError::BeingDeleted { .. }
            | ClientError::NoRunTagged { .. }
            | ClientError::NotPromoted { .. }
            | ClientError::NoSuchStep { .. }
            | ClientError::NoSuchTask { .. }
            | ClientError::NoTasks { .. }
            | ClientError::SeveralTasks { .. }
            | ClientError::Incomplete { .. }
            | ClientError::NoSuchArtifact { .. }
            | ClientError::NotForeach { .. } => CliError::usage(e.to_string()),
            // What is there cannot be read.
            ClientError::Decode { .. }
            | ClientError::State { .. }
            | ClientError::Blob { .. }
            | ClientError::UnsupportedEncoding { .. }
            | ClientError::Unreadable { .. }
            | ClientError::DamagedCard { .. } => CliError::failure(e.to_string()),
        }
    }
}

impl From<RunError> for CliError {
    fn from(e: RunError) -> Self {
        match e {
            RunError::Store(e) => e.into(),
            RunError::Resume { .. } | RunError::OtherBinary { .. } | RunError::Spin { .. } => {
                CliError::usage(e.to_string())
            }
            other => CliError::failure(other.to_string()),
        }
    }
}

/// The full chain of an error's messages, `a: b: c`.
pub(crate) fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let next = s.to_string();
        if !text.contains(&next) {
            text.push_str(": ");
            text.push_str(&next);
        }
        source = s.source();
    }
    text
}
