//! Which splits are open at each step, and which join closes each split: what the scheduler, the
//! derivation of a task's spec and the Argo manifest all need, read from the graph alone.

use super::loops::Loops;
use super::{FlowGraph, Transition};

/// One split open while a step runs, as the graph alone tells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct OpenSplit {
    /// The split step.
    pub split: usize,
    /// For a branch split, the branch (its position among the split's targets); 0 for a foreach.
    pub branch: usize,
    /// Whether the split is a foreach, whose index is part of task ids.
    pub foreach: bool,
}

/// Why the splits of a graph cannot be followed. `#[flow]` refuses such graphs, so only a
/// hand-written one gets here.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum SplitsError {
    /// A step leads back to itself.
    #[error("step `{step}` is part of a cycle")]
    Cycle { step: &'static str },
    /// A join is reached by a path that does not go through its split.
    #[error("join `{join}` is reached outside a branch of `{split}`")]
    JoinOutsideSplit {
        join: &'static str,
        split: &'static str,
    },
    /// A join's incoming branches come from different splits.
    #[error("join `{join}` receives branches of different splits")]
    BranchesOfDifferentSplits { join: &'static str },
    /// Branches meet at a step that does not join them.
    #[error("step `{step}` is reached from different splits but is not a join")]
    BranchesMeetOutsideJoin { step: &'static str },
}

/// For every step, the splits open while it runs, outermost first; `None` for a step that
/// cannot be reached from `start`. A join runs with its split's frames, not its branches'.
///
/// The same walk as the macro's balance check, so a graph `#[flow]` accepted never fails here.
///
/// A loop's back arms are left out: a pass starts at the loop's head with the splits its first
/// pass found open there (`#[flow]` checks that the back arms agree).
pub(crate) fn open_splits(graph: &FlowGraph) -> Result<Vec<Option<Vec<OpenSplit>>>, SplitsError> {
    let loops = Loops::of(graph);
    let mut memo = vec![Visit::New; graph.steps.len()];
    for s in 0..graph.steps.len() {
        context(graph, &loops, s, &mut memo)?;
    }
    Ok(memo
        .into_iter()
        .map(|v| match v {
            Visit::Done(c) => c,
            _ => None,
        })
        .collect())
}

#[derive(Clone)]
enum Visit {
    New,
    InProgress,
    Done(Option<Vec<OpenSplit>>),
}

fn context(
    graph: &FlowGraph,
    loops: &Loops,
    s: usize,
    memo: &mut [Visit],
) -> Result<Option<Vec<OpenSplit>>, SplitsError> {
    match &memo[s] {
        Visit::Done(c) => return Ok(c.clone()),
        Visit::InProgress => {
            return Err(SplitsError::Cycle {
                step: graph.steps[s].name,
            });
        }
        Visit::New => {}
    }
    if s == graph.start {
        memo[s] = Visit::Done(Some(Vec::new()));
        return Ok(Some(Vec::new()));
    }
    memo[s] = Visit::InProgress;
    let mut incoming: Vec<Vec<OpenSplit>> = Vec::new();
    for p in graph.predecessors(s) {
        if loops.is_back_arm(p, s) {
            continue;
        }
        let Some(mut stack) = context(graph, loops, p, memo)? else {
            continue;
        };
        match graph.steps[p].transition {
            Transition::Branch(targets) => {
                let branch = targets.iter().position(|&t| t == s).unwrap_or(0);
                stack.push(OpenSplit {
                    split: p,
                    branch,
                    foreach: false,
                });
            }
            Transition::Foreach { .. } => stack.push(OpenSplit {
                split: p,
                branch: 0,
                foreach: true,
            }),
            _ => {}
        }
        incoming.push(stack);
    }
    let step = &graph.steps[s];
    let result = match (incoming.first(), step.join) {
        (None, _) => None,
        (Some(first), Some(split)) => {
            // A join runs in the frames its split ran in: every branch's minus the branch's own.
            let below = |stack: &Vec<OpenSplit>| match stack.split_last() {
                Some((top, rest)) if top.split == split => Some(rest.to_vec()),
                _ => None,
            };
            let Some(base) = below(first) else {
                return Err(SplitsError::JoinOutsideSplit {
                    join: step.name,
                    split: graph.steps[split].name,
                });
            };
            if incoming.iter().any(|c| below(c).as_ref() != Some(&base)) {
                return Err(SplitsError::BranchesOfDifferentSplits { join: step.name });
            }
            Some(base)
        }
        (Some(first), None) => {
            if incoming.iter().any(|c| c != first) {
                return Err(SplitsError::BranchesMeetOutsideJoin { step: step.name });
            }
            Some(first.clone())
        }
    };
    memo[s] = Visit::Done(result.clone());
    Ok(result)
}

impl FlowGraph {
    /// For every step, the join that closes it when it is a split; `None` for other steps.
    pub(crate) fn closing_joins(&self) -> Vec<Option<usize>> {
        let mut closing = vec![None; self.steps.len()];
        for (j, step) in self.steps.iter().enumerate() {
            if let Some(split) = step.join {
                closing[split] = Some(j);
            }
        }
        closing
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_graphs::{EVERY, step};
    use super::*;

    fn names(stack: &[OpenSplit]) -> Vec<(&'static str, usize, bool)> {
        stack
            .iter()
            .map(|o| (EVERY.steps[o.split].name, o.branch, o.foreach))
            .collect()
    }

    #[test]
    fn open_splits_follow_the_graph() {
        let contexts = open_splits(&EVERY).expect("a well-formed graph");
        let at = |name: &str| {
            let s = EVERY.step_index(name).expect("a step");
            names(contexts[s].as_deref().expect("reachable"))
        };
        assert_eq!(at("start"), vec![]);
        assert_eq!(at("a"), vec![("start", 0, false)]);
        assert_eq!(at("b"), vec![("start", 1, false)]);
        assert_eq!(at("both"), vec![]);
        assert_eq!(at("inner"), vec![("fan", 0, true)]);
        assert_eq!(at("body"), vec![("fan", 0, true), ("inner", 0, true)]);
        assert_eq!(at("inner_join"), vec![("fan", 0, true)]);
        assert_eq!(at("outer_join"), vec![]);
        assert_eq!(at("big"), vec![]);
        assert_eq!(at("end"), vec![]);
    }

    #[test]
    fn a_cycle_or_a_join_without_its_split_is_reported() {
        use crate::graph::{StepSpec, Transition};
        const CYCLE: &[StepSpec] = &[
            step("start", Transition::Linear(1), None),
            step("a", Transition::Linear(2), None),
            step("b", Transition::Linear(1), None),
            step("end", Transition::End, None),
        ];
        let graph = FlowGraph {
            steps: CYCLE,
            end: 3,
            ..EVERY
        };
        assert!(open_splits(&graph).is_err());
        const LONELY_JOIN: &[StepSpec] = &[
            step("start", Transition::Linear(1), None),
            step("j", Transition::Linear(2), Some(0)),
            step("end", Transition::End, None),
        ];
        let graph = FlowGraph {
            steps: LONELY_JOIN,
            end: 2,
            ..EVERY
        };
        let error = open_splits(&graph)
            .expect_err("a join outside its split")
            .to_string();
        assert!(error.contains("join `j`"), "{error}");
    }

    #[test]
    fn each_split_is_closed_by_its_join() {
        let joins = EVERY.closing_joins();
        let closing = |split: &str| {
            joins[EVERY.step_index(split).expect("a step")].map(|j| EVERY.steps[j].name)
        };
        assert_eq!(closing("start"), Some("both"));
        assert_eq!(closing("fan"), Some("outer_join"));
        assert_eq!(closing("inner"), Some("inner_join"));
        assert_eq!(closing("decide"), None);
        assert_eq!(closing("body"), None);
    }
}
