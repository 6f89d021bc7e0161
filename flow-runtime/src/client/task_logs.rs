//! A task's logs as streams, however large: the log of each attempt, and in process mode and on
//! a cluster what the task's process printed.

use std::io::Read;

use super::{Client, ClientError};
use crate::datastore::Key;
use crate::run::RunStoreError;

/// One of a task process's output streams, kept beside its logs in process mode and on a
/// cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputStream {
    /// What the task printed on its standard output.
    Stdout,
    /// What the task printed on its standard error.
    Stderr,
}

impl OutputStream {
    /// Both, in the order they are shown.
    pub const ALL: [OutputStream; 2] = [OutputStream::Stdout, OutputStream::Stderr];

    /// `stdout` or `stderr`.
    pub fn name(self) -> &'static str {
        match self {
            OutputStream::Stdout => "stdout",
            OutputStream::Stderr => "stderr",
        }
    }
}

/// A log being read, and where it is, for messages.
pub struct LogStream {
    /// The stored object, as the datastore names it.
    pub location: String,
    /// Its bytes as stored.
    pub reader: Box<dyn Read + Send>,
}

/// The logs of one task: from [`TaskEntry::logs`](super::TaskEntry::logs).
#[derive(Debug, Clone)]
pub struct TaskLogs {
    client: Client,
    task: Key,
    ran_in: String,
    /// Each attempt's log, oldest first.
    attempts: Vec<(u32, Key)>,
}

impl TaskLogs {
    /// Lists the logs of the task at `task`, which ran in run `ran_in`.
    pub(super) fn list(client: &Client, task: Key, ran_in: &str) -> Result<TaskLogs, ClientError> {
        let children = client
            .store()
            .storage()
            .list_children(Some(&task))
            .map_err(RunStoreError::from)?;
        let mut attempts: Vec<(u32, Key)> = children
            .objects
            .into_iter()
            .filter_map(|key| {
                let n = key
                    .name()
                    .strip_prefix("attempt-")
                    .and_then(|rest| rest.strip_suffix(".log"))
                    .and_then(|n| n.parse::<u32>().ok())?;
                Some((n, key))
            })
            .collect();
        attempts.sort_by_key(|(n, _)| *n);
        Ok(TaskLogs {
            client: client.clone(),
            task,
            ran_in: ran_in.to_owned(),
            attempts,
        })
    }

    /// The run the task ran in, whose logs these are: the task's own, or for a task reused by
    /// `resume`, the run that computed it.
    pub fn ran_in(&self) -> &str {
        &self.ran_in
    }

    /// The attempts that left a log, oldest first.
    pub fn attempts(&self) -> Vec<u32> {
        self.attempts.iter().map(|(n, _)| *n).collect()
    }

    /// The log of attempt `n`, if it left one.
    ///
    /// # Errors
    ///
    /// [`ClientError::Unreadable`] for a log that is listed but cannot be opened.
    pub fn attempt(&self, n: u32) -> Result<Option<LogStream>, ClientError> {
        let Some((_, key)) = self.attempts.iter().find(|(a, _)| *a == n) else {
            return Ok(None);
        };
        let reader =
            self.client
                .store()
                .storage()
                .reader(key)
                .map_err(|e| ClientError::Unreadable {
                    location: key.to_string(),
                    source: Box::new(e.into()),
                })?;
        Ok(Some(LogStream {
            location: key.to_string(),
            reader,
        }))
    }

    /// What the task's process printed on `stream`, if it printed anything there.
    ///
    /// # Errors
    ///
    /// Storage failures other than its absence.
    pub fn output(&self, stream: OutputStream) -> Result<Option<LogStream>, ClientError> {
        let key = self
            .task
            .join(&format!("{}.log", stream.name()))
            .map_err(RunStoreError::from)?;
        match self.client.store().storage().reader(&key) {
            Ok(reader) => Ok(Some(LogStream {
                location: key.to_string(),
                reader,
            })),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(RunStoreError::from(e).into()),
        }
    }
}
