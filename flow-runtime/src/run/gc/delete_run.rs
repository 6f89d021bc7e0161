//! Deleting one run, in an order that a crash at any point leaves harmless.
//!
//! 1. The run record says the run is being deleted (`deleting`): listings leave it out from
//!    then on, and the next collection deletes it whatever its rules.
//! 2. Everything under the run but its record goes: done markers, metadata, logs, cards,
//!    checkpoint records. Its blobs are not touched: other runs may share them; the sweep
//!    deletes those that no kept run references.
//! 3. The record goes last, then what the backend kept of the run's folders.
//!
//! Killed between any two steps, the run is still listed with its record (saying `deleting`) or
//! is gone; a second collection finishes it. Kept runs are never written to.

use super::Freed;
use crate::run::{RunStore, RunStoreError};

/// The run record's name under a run's prefix.
const RUN_RECORD: &str = "run.json";

/// What deleting run `run_id` of `flow` would free: its objects (its record included) and their
/// bytes. Nothing is changed.
///
/// # Errors
///
/// Storage failures.
pub(super) fn measure_run(
    store: &RunStore,
    flow: &str,
    run_id: &str,
) -> Result<Freed, RunStoreError> {
    let run = RunStore::run_key(flow, run_id)?;
    let mut freed = Freed::default();
    for (_, stat) in store.storage().list_stats(&run)? {
        freed.add(stat.size);
    }
    Ok(freed)
}

/// Deletes run `run_id` of `flow` (see the module's documentation for the order); returns what
/// went.
///
/// # Errors
///
/// Storage failures; a record that cannot be read (it is not marked, and nothing is deleted).
pub(super) fn delete_run(
    store: &RunStore,
    flow: &str,
    run_id: &str,
) -> Result<Freed, RunStoreError> {
    store.mark_deleting(flow, run_id)?;
    let run = RunStore::run_key(flow, run_id)?;
    let record = run.join(RUN_RECORD)?;
    let storage = store.storage();
    let mut freed = Freed::default();
    let objects = storage.list_stats(&run)?;
    for (key, stat) in objects.iter().filter(|(key, _)| *key != record) {
        if storage.delete(key)? {
            freed.add(stat.size);
        }
    }
    if let Some(stat) = storage.stat(&record)?
        && storage.delete(&record)?
    {
        freed.add(stat.size);
    }
    storage.prune(&run)?;
    Ok(freed)
}
