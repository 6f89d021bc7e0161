//! Promotions: a label (`production`, `staging`…) of a flow names one of its runs, moved by
//! `promote` and cleared by `demote`, with every change kept.
//!
//! ```text
//! flows/<Flow>/promotions/<label>/history/<time>-<unique>.json   one entry per change, immutable
//! flows/<Flow>/promotions/<label>/current                        the newest entry, whole
//! ```
//!
//! Each change is first written as a history entry of its own, with put-if-absent under a name
//! no other writer picks (its time, then [`unique_name`]); then the `current` pointer, which
//! holds a copy of the newest entry (so that finding the promoted run is one read), is moved to
//! it with one atomic [`Storage::update`](crate::datastore::Storage::update) that only ever moves
//! it to a newer entry, by (time, entry name). Among concurrent promotions the last one wins
//! whatever order their writes land in, and the history shows them all.

use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

use super::ids::RunId;
use super::record::RunStatus;
use super::store::{RunStore, RunStoreError};
use super::who::current_user;
use crate::datastore::unique_name::unique_name;
use crate::datastore::{Key, MAX_RECORD_SIZE};

/// The format of promotion entries this version writes.
const FORMAT: u32 = 1;

/// What a promotion entry did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PromotionAction {
    /// The label was set to a run.
    Promote,
    /// The label was cleared: it names no run after it.
    Demote,
}

impl std::fmt::Display for PromotionAction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            PromotionAction::Promote => "promote",
            PromotionAction::Demote => "demote",
        })
    }
}

/// One change of a label: an entry of its history, and, when it is the newest, what its
/// `current` pointer holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Promotion {
    /// Format version of this entry.
    pub format: u32,
    /// The flow.
    pub flow: String,
    /// The label (`production`).
    pub label: String,
    /// Whether the label was set or cleared.
    pub action: PromotionAction,
    /// The run the label names after this change; `None` for a demotion.
    pub run_id: Option<RunId>,
    /// Who made the change (see [`current_user`]).
    pub user: String,
    /// The machine it was made on.
    pub host: String,
    /// When (RFC 3339 with milliseconds, UTC).
    pub at: String,
    /// The name of the history entry (`<time>-<unique>.json`): with `at`, what orders changes.
    pub entry: String,
}

impl Promotion {
    /// The order of changes: by time, then by entry name (unique). A time that cannot be read
    /// sorts first.
    fn order(&self) -> (SystemTime, &str) {
        (
            humantime::parse_rfc3339_weak(&self.at).unwrap_or(SystemTime::UNIX_EPOCH),
            self.entry.as_str(),
        )
    }
}

const PROMOTIONS: &str = "promotions";
const HISTORY: &str = "history";
const CURRENT: &str = "current";

impl RunStore {
    fn promotions_key(flow: &str) -> Result<Key, RunStoreError> {
        Ok(Key::segment("flows")?
            .join(flow)
            .map_err(|e| e.describing("flow name"))?
            .join(PROMOTIONS)?)
    }

    fn label_key(flow: &str, label: &str) -> Result<Key, RunStoreError> {
        Ok(Self::promotions_key(flow)?
            .join(label)
            .map_err(|e| e.describing("promotion label"))?)
    }

    /// Promotes run `run_id` of `flow` as `label`: records the change in the label's history
    /// and points the label at it, unless a newer change got there first.
    ///
    /// # Errors
    ///
    /// A label that is not a key segment ([`RunStoreError::Key`]); [`RunStoreError::NoSuchRun`];
    /// [`RunStoreError::NotPromotable`] for a run that did not succeed (nothing is written for
    /// any of these); storage failures.
    pub fn promote(
        &self,
        flow: &str,
        label: &str,
        run_id: &str,
    ) -> Result<Promotion, RunStoreError> {
        let label_key = Self::label_key(flow, label)?;
        let record = self.read_run(flow, run_id)?;
        if record.status != RunStatus::Succeeded {
            return Err(RunStoreError::NotPromotable {
                flow: flow.to_string(),
                run_id: run_id.to_string(),
                status: record.status,
            });
        }
        self.record_promotion(
            &label_key,
            flow,
            label,
            PromotionAction::Promote,
            Some(record.run_id),
        )
    }

    /// Clears `label` of `flow`: records a demotion in its history and points the label at it,
    /// so that it names no run.
    ///
    /// # Errors
    ///
    /// A label that is not a key segment; [`RunStoreError::NothingPromoted`] if the label names
    /// no run now (nothing is written); storage failures.
    pub fn demote(&self, flow: &str, label: &str) -> Result<Promotion, RunStoreError> {
        let label_key = Self::label_key(flow, label)?;
        if self
            .promotion(flow, label)?
            .is_none_or(|current| current.run_id.is_none())
        {
            return Err(RunStoreError::NothingPromoted {
                flow: flow.to_string(),
                label: label.to_string(),
            });
        }
        self.record_promotion(&label_key, flow, label, PromotionAction::Demote, None)
    }

    fn record_promotion(
        &self,
        label_key: &Key,
        flow: &str,
        label: &str,
        action: PromotionAction,
        run_id: Option<RunId>,
    ) -> Result<Promotion, RunStoreError> {
        let history = label_key.join(HISTORY)?;
        let current = label_key.join(CURRENT)?;
        // A change made after the one the pointer names is ordered after it, even within the
        // same millisecond or on a machine whose clock is behind: its time is at least 1 ms
        // past the pointer's. Only changes that do not see each other are ordered by clock.
        let floor = match self.storage().get_at_most(&current, MAX_RECORD_SIZE) {
            Ok(bytes) => decode(&bytes)
                .ok()
                .map(|stored| stored.order().0 + Duration::from_millis(1)),
            Err(e) if e.is_not_found() => None,
            Err(e) => return Err(e.into()),
        };
        let mut attempts = 0;
        let entry = loop {
            let now = SystemTime::now();
            let at =
                humantime::format_rfc3339_millis(floor.map_or(now, |f| f.max(now))).to_string();
            let compact: String = at.chars().filter(|c| !matches!(c, '-' | ':')).collect();
            let name = unique_name(&format!("{compact}-")) + ".json";
            let entry = Promotion {
                format: FORMAT,
                flow: flow.to_string(),
                label: label.to_string(),
                action,
                run_id: run_id.clone(),
                user: current_user(),
                host: super::hostname(),
                at,
                entry: name,
            };
            let key = history.join(&entry.entry)?;
            if self.storage().put_if_absent(&key, &encode(&key, &entry)?)? {
                break entry;
            }
            // 96 random bits clashed: draw again rather than lose the change.
            attempts += 1;
            if attempts >= 5 {
                return Err(RunStoreError::Io(format!(
                    "cannot find a free name for a promotion entry under `{history}`"
                )));
            }
        };
        let bytes = encode(&current, &entry)?;
        self.storage().update(&current, &mut |stored| {
            match stored.and_then(|bytes| decode(bytes).ok()) {
                Some(stored) if stored.order() >= entry.order() => None,
                // No pointer, a damaged one, or one naming an older change.
                _ => Some(bytes.clone()),
            }
        })?;
        Ok(entry)
    }

    /// What `label` of `flow` names now: the newest change of the label (a demotion, whose
    /// `run_id` is `None`, included), or `None` if it never had one. One read.
    ///
    /// # Errors
    ///
    /// A label that is not a key segment; [`RunStoreError::Corrupt`] for a damaged pointer;
    /// storage failures.
    pub fn promotion(&self, flow: &str, label: &str) -> Result<Option<Promotion>, RunStoreError> {
        let key = Self::label_key(flow, label)?.join(CURRENT)?;
        self.read_entry(&key, flow, label)
    }

    /// The labels `flow` ever had (promoted now or not), sorted.
    ///
    /// # Errors
    ///
    /// Storage failures.
    pub fn promotion_labels(&self, flow: &str) -> Result<Vec<String>, RunStoreError> {
        let prefix = Self::promotions_key(flow)?;
        let mut labels: Vec<String> = self
            .storage()
            .list_children(Some(&prefix))?
            .prefixes
            .iter()
            .map(|k| k.name().to_string())
            .collect();
        labels.sort();
        Ok(labels)
    }

    /// Every change of `label` of `flow` (of every label with `None`), newest first.
    ///
    /// # Errors
    ///
    /// A label that is not a key segment; [`RunStoreError::Corrupt`] for a damaged entry;
    /// storage failures.
    pub fn promotion_history(
        &self,
        flow: &str,
        label: Option<&str>,
    ) -> Result<Vec<Promotion>, RunStoreError> {
        let labels = match label {
            Some(label) => vec![label.to_string()],
            None => self.promotion_labels(flow)?,
        };
        let mut entries = Vec::new();
        for label in &labels {
            let history = Self::label_key(flow, label)?.join(HISTORY)?;
            for key in self.storage().list_children(Some(&history))?.objects {
                if let Some(entry) = self.read_entry(&key, flow, label)? {
                    entries.push(entry);
                }
            }
        }
        entries.sort_by(|a, b| b.order().cmp(&a.order()));
        Ok(entries)
    }

    /// The entry at `key`, as one of `label` of `flow` (whatever it says), `None` if absent.
    fn read_entry(
        &self,
        key: &Key,
        flow: &str,
        label: &str,
    ) -> Result<Option<Promotion>, RunStoreError> {
        let bytes = match self.storage().get_at_most(key, MAX_RECORD_SIZE) {
            Ok(bytes) => bytes,
            Err(e) if e.is_not_found() => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let mut entry = decode(&bytes).map_err(|source| RunStoreError::Corrupt {
            what: "the promotion entry",
            key: key.to_string(),
            source,
        })?;
        flow.clone_into(&mut entry.flow);
        label.clone_into(&mut entry.label);
        Ok(Some(entry))
    }
}

fn encode(key: &Key, entry: &Promotion) -> Result<Vec<u8>, RunStoreError> {
    serde_json::to_vec_pretty(entry).map_err(|source| RunStoreError::Corrupt {
        what: "a promotion entry",
        key: key.to_string(),
        source,
    })
}

fn decode(bytes: &[u8]) -> Result<Promotion, serde_json::Error> {
    serde_json::from_slice(bytes)
}

#[cfg(test)]
mod tests;
