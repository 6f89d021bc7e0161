//! The run record: what a run was, who started it, how it ended.

use serde::{Deserialize, Serialize};

use super::ids::RunId;
use super::provenance::Provenance;
use super::task_meta::TaskPath;
use crate::graph::{FlowGraph, Resources, Transition};

/// How a run stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RunStatus {
    /// Started and not finished (or its process died: see [`RunRecord::host`] and `pid`).
    Running,
    /// Every task succeeded and `end` ran.
    Succeeded,
    /// A task failed after its retries; the run stopped.
    Failed,
    /// Stopped on purpose before `end`, after the step `--until` named; `resume` goes on.
    Stopped,
}

impl std::fmt::Display for RunStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            RunStatus::Running => "running",
            RunStatus::Succeeded => "succeeded",
            RunStatus::Failed => "failed",
            RunStatus::Stopped => "stopped",
        })
    }
}

/// What is kept of a task's checkpoints once it completes: a run's choice (`--keep-checkpoints`),
/// recorded with it so that every task, in whatever process, follows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KeepCheckpoints {
    /// The last one: what the task ended with, readable later.
    #[default]
    Last,
    /// None: the task's artifacts are what it leaves.
    None,
}

impl KeepCheckpoints {
    /// Whether this is the default, which run records leave out.
    pub fn is_last(&self) -> bool {
        *self == KeepCheckpoints::Last
    }
}

/// One run, as stored in `run.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    /// Format version of this record.
    pub format: u32,
    /// The flow's name.
    pub flow: String,
    /// The run's id.
    pub run_id: RunId,
    /// The run's parameters, as JSON.
    #[serde(default)]
    pub params: serde_json::Value,
    /// How the run stands.
    pub status: RunStatus,
    /// When the run started (RFC 3339, UTC).
    pub started: String,
    /// When the run ended, if it did.
    #[serde(default)]
    pub finished: Option<String>,
    /// Who started the run (see [`current_user`](super::current_user)).
    pub user: String,
    /// The machine the run was driven from.
    pub host: String,
    /// The driving process.
    pub pid: u32,
    /// Tags given at `run` or added later with `tag`.
    #[serde(default)]
    pub tags: Vec<String>,
    /// The graph the run followed.
    pub graph: GraphRecord,
    /// For a resumed run, the run it reuses tasks from.
    #[serde(default)]
    pub origin_run_id: Option<RunId>,
    /// Why the run failed: the failing task and its message.
    #[serde(default)]
    pub failure: Option<String>,
    /// What code the run ran and where it came from; `None` in records written before it was
    /// recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provenance: Option<Provenance>,
    /// For a scratch run made by `spin`, the task of run `origin_run_id` it ran again. Such a
    /// run never becomes a flow's latest run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spin_of: Option<TaskPath>,
    /// What each task keeps of its checkpoints once it completes (absent: the last).
    #[serde(default, skip_serializing_if = "KeepCheckpoints::is_last")]
    pub keep_checkpoints: KeepCheckpoints,
    /// When a garbage collection began deleting this run (RFC 3339, UTC), if one did: the run is
    /// going, listings leave it out, and the next collection finishes deleting it whatever its
    /// rules (see `run/gc`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deleting: Option<String>,
}

/// The graph of a run, stored with it so that a run stays readable after the code changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GraphRecord {
    /// The steps, in the graph's order (`start` first).
    pub steps: Vec<StepRecord>,
}

/// One step of a [`GraphRecord`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepRecord {
    /// The step's name: its method's.
    pub name: String,
    /// What the step does next, as [`StepKind::as_str`](crate::graph::StepKind::as_str) names
    /// it: `linear`, `branch`, `foreach`, `switch`, `join` or `end`.
    pub kind: String,
    /// The step's doc comment, its description; empty when it has none.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub doc: String,
    /// The steps it can go to, in the order its transition names them.
    pub next: Vec<String>,
    /// For a foreach step, the field whose elements it fans out over.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub foreach: Option<String>,
    /// For a join, the split step whose branches it joins.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub join_of: Option<String>,
    /// What the step asked of its machine; absent (nothing asked) in records written before
    /// steps could declare resources.
    #[serde(default, skip_serializing_if = "Resources::is_empty")]
    pub resources: Resources,
}

impl RunRecord {
    /// The record of a run of `graph` starting now, from this process: status `running`, the
    /// user this process runs as ([`current_user`](super::current_user)), this host and pid, the graph as it is now.
    pub fn starting(
        graph: &FlowGraph,
        run_id: RunId,
        params: serde_json::Value,
        tags: Vec<String>,
        origin_run_id: Option<RunId>,
    ) -> Self {
        RunRecord {
            format: 1,
            flow: graph.name.to_string(),
            run_id,
            params,
            status: RunStatus::Running,
            started: now_rfc3339(),
            finished: None,
            user: super::who::current_user(),
            host: super::hostname(),
            pid: std::process::id(),
            tags,
            graph: GraphRecord::of(graph),
            origin_run_id,
            failure: None,
            provenance: None,
            spin_of: None,
            keep_checkpoints: KeepCheckpoints::Last,
            deleting: None,
        }
    }
}

impl GraphRecord {
    /// The stored form of `graph`.
    pub fn of(graph: &FlowGraph) -> Self {
        let steps = graph
            .steps
            .iter()
            .map(|s| StepRecord {
                name: s.name.to_string(),
                kind: s.kind().as_str().to_string(),
                doc: s.doc.to_string(),
                next: s
                    .transition
                    .targets()
                    .map(|t| graph.steps[t].name.to_string())
                    .collect(),
                foreach: match s.transition {
                    Transition::Foreach { field, .. } => Some(field.to_string()),
                    _ => None,
                },
                join_of: s.join.map(|j| graph.steps[j].name.to_string()),
                resources: s.options.resources,
            })
            .collect();
        GraphRecord { steps }
    }
}

/// Now, as RFC 3339 with milliseconds.
pub fn now_rfc3339() -> String {
    humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_written_before_provenance_reads_without_it() {
        let old = br#"{"format": 1, "flow": "F", "run_id": "r", "status": "succeeded",
            "started": "2026-01-01T00:00:00.000Z", "user": "u", "host": "h", "pid": 1,
            "graph": {"steps": []}}"#;
        let record: RunRecord = serde_json::from_slice(old).expect("an old record reads");
        assert_eq!(record.provenance, None);
        let written = serde_json::to_value(&record).expect("encode");
        assert!(written.get("provenance").is_none(), "{written}");
    }

    #[test]
    fn a_graph_stored_before_resources_reads_as_asking_nothing() {
        let old = br#"{"steps": [{"name": "start", "kind": "linear", "next": ["end"]},
            {"name": "end", "kind": "end", "next": []}]}"#;
        let graph: GraphRecord = serde_json::from_slice(old).expect("an old graph reads");
        assert!(graph.steps.iter().all(|s| s.resources.is_empty()));
        let written = serde_json::to_value(&graph).expect("encode");
        assert!(written["steps"][0].get("resources").is_none(), "{written}");
    }

    #[test]
    fn a_step_s_resources_are_stored_with_the_graph() {
        let mut graph = GraphRecord {
            steps: vec![StepRecord {
                name: "train".into(),
                kind: "linear".into(),
                doc: String::new(),
                next: vec!["end".into()],
                foreach: None,
                join_of: None,
                resources: Resources::NONE,
            }],
        };
        graph.steps[0].resources.cpus = Some(2);
        graph.steps[0].resources.memory_bytes = Some(100 << 20);
        let written = serde_json::to_value(&graph).expect("encode");
        assert_eq!(
            written["steps"][0]["resources"],
            serde_json::json!({"cpus": 2, "memory_bytes": 104_857_600})
        );
        let back: GraphRecord = serde_json::from_value(written).expect("decode");
        assert_eq!(back, graph);
    }

    #[test]
    fn provenance_is_written_and_read_back() {
        let old = br#"{"format": 1, "flow": "F", "run_id": "r", "status": "running",
            "started": "2026-01-01T00:00:00.000Z", "user": "u", "host": "h", "pid": 1,
            "graph": {"steps": []}, "provenance": {"binary_hash": "ab", "git_dirty": true}}"#;
        let record: RunRecord = serde_json::from_slice(old).expect("reads");
        let provenance = record.provenance.clone().expect("provenance");
        assert_eq!(provenance.binary_hash.as_deref(), Some("ab"));
        assert_eq!(provenance.git_dirty, Some(true));
        assert_eq!(provenance.package, None);
        let again: RunRecord =
            serde_json::from_value(serde_json::to_value(&record).expect("encode")).expect("read");
        assert_eq!(again, record);
    }
}
