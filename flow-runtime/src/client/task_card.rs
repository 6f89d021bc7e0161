//! A task's card, as its attempt stored it: read bounded, checked, then decoded.

use super::{Client, ClientError};
use crate::card::{self, Card};
use crate::run::{RunStore, TaskMeta};

/// The card attempt `attempt` of the task `meta` describes stored, if it stored one. For a task
/// reused by `resume`, the card is the run's that computed it.
pub(super) fn read(
    client: &Client,
    meta: &TaskMeta,
    attempt: u32,
) -> Result<Option<Card>, ClientError> {
    let run = meta.origin_run_id.as_ref().unwrap_or(&meta.run_id);
    let key = RunStore::task_key(&meta.flow, run, &meta.spec.step, &meta.spec.task_id)?;
    let Some(bytes) = client.store().read_card(&key, attempt)? else {
        return Ok(None);
    };
    card::decode(&bytes)
        .map(Some)
        .map_err(|e| ClientError::DamagedCard {
            pathspec: format!(
                "{}/{}/{}/{}",
                meta.flow, meta.run_id, meta.spec.step, meta.spec.task_id
            ),
            attempt,
            problem: e.to_string(),
        })
}

/// The card of the task's last attempt, if it stored one.
pub(super) fn last(client: &Client, meta: &TaskMeta) -> Result<Option<Card>, ClientError> {
    match meta.attempts.last() {
        Some(attempt) => read(client, meta, attempt.attempt),
        None => Ok(None),
    }
}
