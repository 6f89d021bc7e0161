//! Garbage collection: deleting runs by rules, then the blobs no kept run references.
//!
//! Blobs are shared: every run that stores the same value names the same blob, so no blob can be
//! deleted with its run. A collection goes in three phases:
//!
//! 1. **Runs** (`rules.rs`, `delete_run.rs`): the runs of the flows in scope are judged by the
//!    rules ([`GcRules`]); each that goes is first marked as being deleted, then its records go,
//!    its `run.json` last. Runs an earlier collection began deleting are finished whatever the
//!    rules.
//! 2. **Mark** (`mark.rs`): every run left, of every flow of the datastore, is read, one at a
//!    time: the blobs its done markers, metadata and checkpoint records name are live.
//! 3. **Sweep** (`sweep.rs`): every blob not live and last written before the collection began
//!    minus the grace period (a day by default) is deleted, shard by shard; then the temporary
//!    files and staging objects crashed writers left, a day old at least.
//!
//! **Runs going on.** A run still running is never deleted. A run going on while the collection
//! works writes markers the mark phase may not see; the blobs they name are kept by the grace
//! period, because every writer refreshes a blob it relies on without writing it
//! (`datastore::freshness`: a blob so relied on was written at most an hour before). Of the
//! alternatives, a lease (runs register, the collection waits for them) would make a collection
//! wait for the longest run and a crashed run block it; the grace period needs no coordination,
//! as in git (`gc.pruneExpire` and "freshened" objects). The one window left is on an object
//! store, which has no conditional delete: a blob refreshed between the sweep's look at it and
//! its delete (a request's time) is lost; a local datastore renames the blob aside first and
//! puts it back if it was refreshed.
//!
//! **Interrupted.** Killed at any point, a collection leaves every kept run whole: runs are
//! deleted one at a time in an order that leaves each listed (as being deleted) or gone, and only
//! blobs no kept run references are deleted. A second collection finishes the job.

mod delete_run;
mod mark;
mod rules;
mod sweep;
#[cfg(test)]
mod tests;

use std::collections::HashSet;
use std::time::{Duration, SystemTime};

pub use mark::LiveBlobs;
pub use rules::{FlowPointers, GcRules, KeepReason, RunSummary, judge};

use crate::run::{Latest, RunId, RunStatus, RunStore, RunStoreError};

/// How long after its last write an unreferenced blob is kept, unless `--grace` says otherwise.
pub const DEFAULT_GRACE: Duration = Duration::from_secs(24 * 3600);

/// Objects and their bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Freed {
    /// How many objects.
    pub objects: u64,
    /// Their bytes.
    pub bytes: u64,
}

impl Freed {
    fn add(&mut self, size: u64) {
        self.objects += 1;
        self.bytes += size;
    }
}

/// What a collection does.
#[derive(Debug, Clone)]
pub struct GcOptions {
    /// Which runs it keeps.
    pub rules: GcRules,
    /// The flows whose runs it judges (every flow of the datastore for `None`). Blobs are
    /// shared by every flow: the mark phase always reads the runs of every flow.
    pub flows: Option<Vec<String>>,
    /// How long after its last write an unreferenced blob is kept.
    pub grace: Duration,
    /// Only say what would go.
    pub dry_run: bool,
}

/// Why a collection stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GcError {
    /// Rules that keep nothing by age or count: every run not kept otherwise would go.
    #[error(
        "say which runs may go: --keep-last N (keep the N newest runs of each flow), --older-than AGE (delete only runs started longer ago), or both"
    )]
    NoRule,
    /// A kept run whose references cannot be read: no blob is deleted.
    #[error(
        "cannot tell which blobs run `{run_id}` of flow `{flow}` references, so no blob was deleted: {source}"
    )]
    Mark {
        /// The run's flow.
        flow: String,
        /// The run.
        run_id: RunId,
        /// What could not be read.
        #[source]
        source: Box<RunStoreError>,
    },
    /// Reading or deleting runs or blobs failed; what was deleted so far stays deleted.
    #[error(transparent)]
    Store(#[from] RunStoreError),
}

/// One run a collection deleted (or, in a dry run, would delete).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeletedRun {
    /// The run's flow.
    pub flow: String,
    /// The run.
    pub run_id: RunId,
    /// How it ended.
    pub status: RunStatus,
    /// When it started, as its record says.
    pub started: String,
    /// Whether an earlier collection had begun deleting it (it was finished whatever the
    /// rules).
    pub finished_earlier_collection: bool,
    /// Its records, logs and cards (its blobs are counted apart, as they are shared).
    pub freed: Freed,
}

/// A run kept although the rules might have deleted it: its record cannot be read.
#[derive(Debug)]
pub struct UnreadableRun {
    /// The run's flow.
    pub flow: String,
    /// The run.
    pub run_id: RunId,
    /// Why it cannot be read.
    pub error: RunStoreError,
}

/// What a collection found and did.
#[derive(Debug, Default)]
pub struct GcReport {
    /// Whether it was a dry run: nothing was deleted.
    pub dry_run: bool,
    /// How many runs were deleted (each was given to `collect`'s `on_deleted` as it went).
    pub deleted_runs: usize,
    /// Their records, logs and cards.
    pub deleted_run_objects: Freed,
    /// How many runs of the flows in scope were kept, by reason.
    pub kept: Vec<(KeepReason, usize)>,
    /// Runs kept because their record cannot be read.
    pub unreadable: Vec<UnreadableRun>,
    /// How many runs (of every flow) the mark phase read.
    pub marked_runs: usize,
    /// The blobs: deleted, live, and unreferenced but within the grace period.
    pub blobs: BlobCounts,
    /// Temporary files and staging objects of crashed writers removed (older than the grace
    /// period, and a day at least).
    pub temporaries: usize,
}

/// How the blobs stood, and what went.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BlobCounts {
    /// Unreferenced and older than the grace period: deleted.
    pub deleted: Freed,
    /// Referenced by a kept run.
    pub live: Freed,
    /// Unreferenced, but written within the grace period: kept.
    pub young: Freed,
}

/// Runs a collection over the datastore of `store` (see the module's documentation), calling
/// `on_deleted` with each run as it is deleted (or, in a dry run, found to go): the report keeps
/// only counts, so that memory does not grow with the runs deleted.
///
/// # Errors
///
/// [`GcError::NoRule`] before anything is read; [`GcError::Mark`] when a kept run's done
/// marker cannot be read (runs were deleted, no blob was); storage failures.
pub fn collect(
    store: &RunStore,
    options: &GcOptions,
    on_deleted: &mut dyn FnMut(&DeletedRun),
) -> Result<GcReport, GcError> {
    if !options.rules.selects() {
        return Err(GcError::NoRule);
    }
    let began = SystemTime::now();
    let cutoff = began
        .checked_sub(options.grace)
        .unwrap_or(SystemTime::UNIX_EPOCH);
    let mut report = GcReport {
        dry_run: options.dry_run,
        ..GcReport::default()
    };
    let flows = match &options.flows {
        Some(flows) => flows.clone(),
        None => store.list_flows()?,
    };
    // The runs deleted (or, in a dry run, that would be): the mark phase leaves them out.
    let mut gone: HashSet<(String, RunId)> = HashSet::new();
    for flow in &flows {
        collect_runs(
            store,
            flow,
            options,
            began,
            &mut report,
            &mut gone,
            on_deleted,
        )?;
    }
    let mut live = LiveBlobs::default();
    for flow in store.list_flows()? {
        for run_id in store.list_runs(&flow)? {
            if gone.contains(&(flow.clone(), run_id.clone())) {
                continue;
            }
            // A run another collection is deleting keeps no blob; one whose record cannot be
            // read keeps what its other records name; a folder without a record (left by a
            // deletion) has nothing to mark, which marking it finds.
            let counted = match store.read_run(&flow, &run_id) {
                Ok(record) if record.deleting.is_some() => continue,
                Ok(_) => true,
                Err(_) => false,
            };
            let run = RunStore::run_key(&flow, &run_id)?;
            live.mark_run(store, &run).map_err(|source| GcError::Mark {
                flow: flow.clone(),
                run_id: run_id.clone(),
                source: Box::new(source),
            })?;
            report.marked_runs += usize::from(counted);
        }
    }
    let swept = sweep::sweep(store.storage(), &live, cutoff, options.dry_run)
        .map_err(RunStoreError::from)?;
    report.blobs = swept;
    if !options.dry_run {
        // Litter of writers that crashed (temporary files, staging objects): a day old at least,
        // so that no write in progress loses its temporary file whatever the grace period.
        report.temporaries = store
            .storage()
            .remove_stale_temporaries(options.grace.max(DEFAULT_GRACE))
            .map_err(RunStoreError::from)?;
    }
    Ok(report)
}

/// Judges the runs of `flow` and deletes those that go (or only measures them, in a dry run).
fn collect_runs(
    store: &RunStore,
    flow: &str,
    options: &GcOptions,
    began: SystemTime,
    report: &mut GcReport,
    gone: &mut HashSet<(String, RunId)>,
    on_deleted: &mut dyn FnMut(&DeletedRun),
) -> Result<(), GcError> {
    let mut summaries = Vec::new();
    // Runs an earlier collection began deleting: finished whatever the rules.
    let mut doomed: Vec<(RunId, RunStatus, String, bool)> = Vec::new();
    for run_id in store.list_runs(flow)? {
        match store.read_run(flow, &run_id) {
            Ok(record) if record.deleting.is_some() => {
                doomed.push((record.run_id, record.status, record.started, true));
            }
            Ok(record) => summaries.push(RunSummary::from(record)),
            // A folder without a record: a run being created this very moment (its folder is
            // made just before its record), or what a collection killed after deleting a record
            // left, an empty folder that listings skip. Neither is touched: removing the folder
            // of a run being created would fail its creation.
            Err(RunStoreError::NoSuchRun { .. }) => {}
            Err(error) => report.unreadable.push(UnreadableRun {
                flow: flow.to_string(),
                run_id,
                error,
            }),
        }
    }
    let pointers = flow_pointers(store, flow)?;
    let mut going = HashSet::new();
    for (run_id, verdict) in judge(&summaries, &pointers, &options.rules, began) {
        match verdict {
            Ok(()) => {
                going.insert(run_id);
            }
            Err(reason) => match report.kept.iter_mut().find(|(r, _)| *r == reason) {
                Some((_, count)) => *count += 1,
                None => report.kept.push((reason, 1)),
            },
        }
    }
    // Oldest first, as listed.
    for summary in summaries {
        if going.contains(&summary.run_id) {
            let started = summary
                .started
                .map(|t| humantime::format_rfc3339_millis(t).to_string())
                .unwrap_or_default();
            doomed.push((summary.run_id, summary.status, started, false));
        }
    }
    drop(going);
    for (run_id, status, started, earlier) in doomed {
        let freed = if options.dry_run {
            delete_run::measure_run(store, flow, &run_id)?
        } else {
            delete_run::delete_run(store, flow, &run_id)?
        };
        // Deleted runs are no longer listed; in a dry run, the mark must leave them out.
        if options.dry_run {
            gone.insert((flow.to_string(), run_id.clone()));
        }
        report.deleted_runs += 1;
        report.deleted_run_objects.objects += freed.objects;
        report.deleted_run_objects.bytes += freed.bytes;
        on_deleted(&DeletedRun {
            flow: flow.to_string(),
            run_id,
            status,
            started,
            finished_earlier_collection: earlier,
            freed,
        });
    }
    Ok(())
}

/// What the `latest` pointers and promotion labels of `flow` name now. A damaged pointer or
/// label names nothing (it keeps no run).
fn flow_pointers(store: &RunStore, flow: &str) -> Result<FlowPointers, GcError> {
    let mut pointers = FlowPointers::default();
    for which in [Latest::Any, Latest::Succeeded] {
        match store.latest(flow, which) {
            Ok(Some(run_id)) => pointers.latest.push((which.pointer_name(), run_id)),
            Ok(None) | Err(RunStoreError::BadPointer { .. }) => {}
            Err(e) => return Err(e.into()),
        }
    }
    for label in store.promotion_labels(flow)? {
        match store.promotion(flow, &label) {
            Ok(Some(promotion)) => {
                if let Some(run_id) = promotion.run_id {
                    pointers.promoted.insert(label, run_id);
                }
            }
            Ok(None) | Err(RunStoreError::Corrupt { .. }) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(pointers)
}
