//! Which runs a collection deletes: the rules of `gc`, applied to a flow's run records.
//!
//! A run goes only if no rule keeps it. What is always kept: a run still running (or whose
//! process died without recording an end: it cannot be told from one still going), the runs
//! the flow's `latest` pointers name (what `latest` and `latest_successful_run()` read), and a
//! run whose record cannot be read. The rules add to that: the `--keep-last N` newest runs,
//! runs younger than `--older-than`, runs tagged `--keep-tagged`, runs promoted under a label
//! (`--keep-promoted`).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::time::{Duration, SystemTime};

use crate::run::{RunId, RunRecord, RunStatus};

/// What the rules read of a run record: a few words per run, so that judging a flow of 10,000
/// runs does not hold 10,000 records (each with its graph).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunSummary {
    /// The run.
    pub run_id: RunId,
    /// When it started; `None` when its record does not say it readably (never old).
    pub started: Option<SystemTime>,
    /// How it stands.
    pub status: RunStatus,
    /// Its tags.
    pub tags: Vec<String>,
}

impl From<RunRecord> for RunSummary {
    fn from(record: RunRecord) -> Self {
        RunSummary {
            started: humantime::parse_rfc3339_weak(&record.started).ok(),
            run_id: record.run_id,
            status: record.status,
            tags: record.tags,
        }
    }
}

/// The rules of a collection: which runs it keeps besides those always kept.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GcRules {
    /// Keep the newest `N` runs of each flow (by start time), whatever their status.
    pub keep_last: Option<usize>,
    /// Keep runs that started less than this long ago.
    pub older_than: Option<Duration>,
    /// Keep runs with any of these tags.
    pub keep_tagged: Vec<String>,
    /// Keep the runs a promotion label names now.
    pub keep_promoted: bool,
}

impl GcRules {
    /// Whether the rules say which runs may go: a collection without `--keep-last` or
    /// `--older-than` would delete every run not kept otherwise, which is refused.
    pub fn selects(&self) -> bool {
        self.keep_last.is_some() || self.older_than.is_some()
    }
}

/// Why a run is kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeepReason {
    /// It is running, or its process died without recording an end.
    Running,
    /// A `latest` pointer names it (`any` or `succeeded`).
    Latest(&'static str),
    /// Among the `--keep-last` newest runs.
    Recent,
    /// Started within `--older-than`.
    Young,
    /// Tagged with this `--keep-tagged` tag.
    Tagged(String),
    /// Promoted under this label (`--keep-promoted`).
    Promoted(String),
}

impl fmt::Display for KeepReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeepReason::Running => f.write_str("running"),
            KeepReason::Latest(which) => write!(f, "latest ({which})"),
            KeepReason::Recent => f.write_str("among the last kept"),
            KeepReason::Young => f.write_str("younger than --older-than"),
            KeepReason::Tagged(tag) => write!(f, "tagged {tag}"),
            KeepReason::Promoted(label) => write!(f, "promoted as {label}"),
        }
    }
}

/// What the datastore says about a flow beside its run records: what its pointers and labels
/// name.
#[derive(Debug, Clone, Default)]
pub struct FlowPointers {
    /// `latest/any` and `latest/succeeded`, by pointer name.
    pub latest: Vec<(&'static str, RunId)>,
    /// The run each promotion label names now, by label.
    pub promoted: BTreeMap<String, RunId>,
}

/// Which of `records` (one flow's runs, readable and not being deleted) go, and why each other
/// one stays: `Err(reason)` keeps, `Ok(())` deletes. `now` is when the collection began.
pub fn judge(
    records: &[RunSummary],
    pointers: &FlowPointers,
    rules: &GcRules,
    now: SystemTime,
) -> Vec<(RunId, Result<(), KeepReason>)> {
    // Newest first: by start time, then by id, as the runs list orders them.
    let mut order: Vec<&RunSummary> = records.iter().collect();
    order.sort_by(|a, b| {
        b.started
            .cmp(&a.started)
            .then_with(|| b.run_id.cmp(&a.run_id))
    });
    let recent: BTreeSet<&RunId> = order
        .iter()
        .take(rules.keep_last.unwrap_or(0))
        .map(|r| &r.run_id)
        .collect();
    order
        .iter()
        .map(|record| {
            let verdict = keep_reason(record, &recent, pointers, rules, now).map_or(Ok(()), Err);
            (record.run_id.clone(), verdict)
        })
        .collect()
}

/// The first reason to keep `record`, if any.
fn keep_reason(
    record: &RunSummary,
    recent: &BTreeSet<&RunId>,
    pointers: &FlowPointers,
    rules: &GcRules,
    now: SystemTime,
) -> Option<KeepReason> {
    if record.status == RunStatus::Running {
        return Some(KeepReason::Running);
    }
    if let Some((which, _)) = pointers.latest.iter().find(|(_, id)| *id == record.run_id) {
        return Some(KeepReason::Latest(which));
    }
    if recent.contains(&record.run_id) {
        return Some(KeepReason::Recent);
    }
    if let Some(age) = rules.older_than {
        // A start time that cannot be read, or one in the future, is young: never deleted by age.
        let young = record
            .started
            .is_none_or(|started| now.duration_since(started).map_or(true, |a| a < age));
        if young {
            return Some(KeepReason::Young);
        }
    }
    if let Some(tag) = record
        .tags
        .iter()
        .find(|tag| rules.keep_tagged.contains(tag))
    {
        return Some(KeepReason::Tagged(tag.clone()));
    }
    if rules.keep_promoted
        && let Some((label, _)) = pointers
            .promoted
            .iter()
            .find(|(_, id)| **id == record.run_id)
    {
        return Some(KeepReason::Promoted(label.clone()));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(id: &str, started: &str, status: RunStatus, tags: &[&str]) -> RunSummary {
        RunSummary {
            run_id: RunId::from(id),
            started: humantime::parse_rfc3339_weak(started).ok(),
            status,
            tags: tags.iter().map(|t| t.to_string()).collect(),
        }
    }

    fn deleted(verdicts: &[(RunId, Result<(), KeepReason>)]) -> Vec<&str> {
        let mut ids: Vec<&str> = verdicts
            .iter()
            .filter(|(_, v)| v.is_ok())
            .map(|(id, _)| id.as_str())
            .collect();
        ids.sort();
        ids
    }

    fn now() -> SystemTime {
        humantime::parse_rfc3339("2026-12-31T00:00:00Z").expect("time")
    }

    fn runs() -> Vec<RunSummary> {
        use RunStatus::*;
        vec![
            record("a", "2026-01-01T00:00:00Z", Succeeded, &[]),
            record("b", "2026-02-01T00:00:00Z", Failed, &["keep"]),
            record("c", "2026-03-01T00:00:00Z", Running, &[]),
            record("d", "2026-12-20T00:00:00Z", Succeeded, &[]),
            record("e", "2026-12-30T00:00:00Z", Failed, &[]),
        ]
    }

    #[test]
    fn keep_last_keeps_the_newest_by_start_and_never_a_running_run() {
        let rules = GcRules {
            keep_last: Some(2),
            ..GcRules::default()
        };
        let verdicts = judge(&runs(), &FlowPointers::default(), &rules, now());
        assert_eq!(deleted(&verdicts), ["a", "b"]);
        let c = verdicts.iter().find(|(id, _)| id.as_str() == "c");
        assert_eq!(c.map(|(_, v)| v.clone()), Some(Err(KeepReason::Running)));
    }

    #[test]
    fn older_than_deletes_only_runs_started_before_the_age() {
        let rules = GcRules {
            older_than: Some(Duration::from_secs(30 * 24 * 3600)),
            ..GcRules::default()
        };
        let verdicts = judge(&runs(), &FlowPointers::default(), &rules, now());
        assert_eq!(deleted(&verdicts), ["a", "b"]);
    }

    #[test]
    fn a_tag_a_promotion_and_a_latest_pointer_each_keep_their_run() {
        let mut pointers = FlowPointers::default();
        pointers
            .promoted
            .insert("production".into(), RunId::from("a"));
        pointers.latest.push(("succeeded", RunId::from("d")));
        let rules = GcRules {
            keep_last: Some(0),
            keep_tagged: vec!["keep".into()],
            keep_promoted: true,
            ..GcRules::default()
        };
        let verdicts = judge(&runs(), &pointers, &rules, now());
        assert_eq!(deleted(&verdicts), ["e"]);
        let reason = |id: &str| {
            verdicts
                .iter()
                .find(|(r, _)| r.as_str() == id)
                .and_then(|(_, v)| v.clone().err())
        };
        assert_eq!(reason("a"), Some(KeepReason::Promoted("production".into())));
        assert_eq!(reason("b"), Some(KeepReason::Tagged("keep".into())));
        assert_eq!(reason("d"), Some(KeepReason::Latest("succeeded")));
        // Without --keep-promoted, the promoted run goes.
        let verdicts = judge(
            &runs(),
            &pointers,
            &GcRules {
                keep_promoted: false,
                ..rules
            },
            now(),
        );
        assert_eq!(deleted(&verdicts), ["a", "e"]);
    }

    #[test]
    fn a_start_time_that_cannot_be_read_is_never_old() {
        let mut records = runs();
        records[0].started = None;
        let rules = GcRules {
            older_than: Some(Duration::from_secs(3600)),
            ..GcRules::default()
        };
        let verdicts = judge(&records, &FlowPointers::default(), &rules, now());
        assert_eq!(deleted(&verdicts), ["b", "d", "e"]);
    }

    #[test]
    fn rules_without_keep_last_or_older_than_select_nothing() {
        assert!(!GcRules::default().selects());
        assert!(
            !GcRules {
                keep_tagged: vec!["x".into()],
                keep_promoted: true,
                ..GcRules::default()
            }
            .selects()
        );
        assert!(
            GcRules {
                keep_last: Some(0),
                ..GcRules::default()
            }
            .selects()
        );
    }
}
