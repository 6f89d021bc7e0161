//! The frames each step runs in, as the graph alone tells them: the splits open where it runs
//! ([`super::open_splits`]) and the loops it belongs to ([`super::loops`]), outermost first. A
//! loop is inside the splits open at its head and outside those opened within it. The foreach
//! and loop frames are the parts of the step's task ids.

use super::FlowGraph;
use super::loops::Loops;
use super::splits::{OpenSplit, SplitsError, open_splits};
use super::task_ids::IdKind;

/// One frame a step runs in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StepFrame {
    /// An open split: a branch of a split, or an element of a foreach.
    Split(OpenSplit),
    /// A pass of the loop whose head is `head`.
    Loop { head: usize },
}

impl StepFrame {
    /// The kind of task id part this frame makes, if any (a branch makes none).
    pub(crate) fn id_kind(self) -> Option<IdKind> {
        match self {
            StepFrame::Split(o) if o.foreach => Some(IdKind::Element),
            StepFrame::Split(_) => None,
            StepFrame::Loop { .. } => Some(IdKind::Pass),
        }
    }
}

/// For every step, the frames it runs in, outermost first; `None` for a step that cannot be
/// reached from `start`.
pub(crate) fn step_frames(graph: &FlowGraph) -> Result<Vec<Option<Vec<StepFrame>>>, SplitsError> {
    let splits = open_splits(graph)?;
    let loops = Loops::of(graph);
    Ok((0..graph.steps.len())
        .map(|s| {
            let open = splits[s].as_ref()?;
            // Each loop sits after the splits open at its head.
            let placed: Vec<(usize, usize)> = loops
                .containing(s)
                .into_iter()
                .map(|l| {
                    let head = loops.head(l);
                    let depth = splits[head].as_ref().map_or(0, Vec::len);
                    (depth, head)
                })
                .collect();
            let mut frames = Vec::with_capacity(open.len() + placed.len());
            for depth in 0..=open.len() {
                frames.extend(
                    placed
                        .iter()
                        .filter(|(d, _)| *d == depth)
                        .map(|&(_, head)| StepFrame::Loop { head }),
                );
                if let Some(&o) = open.get(depth) {
                    frames.push(StepFrame::Split(o));
                }
            }
            Some(frames)
        })
        .collect())
}

/// The kinds of the parts of the task ids of a step running in `frames`.
pub(crate) fn id_kinds(frames: &[StepFrame]) -> Vec<IdKind> {
    frames.iter().filter_map(|f| f.id_kind()).collect()
}

#[cfg(test)]
mod tests {
    use super::super::test_graphs::{EVERY, arm, step};
    use super::super::{StepSpec, Transition};
    use super::*;

    /// A loop around a foreach whose body holds a loop:
    /// start → fit → fan (foreach) → body → again (back to itself, or on) → done → join →
    /// check (back to fit, or on to end).
    const LOOPS: &[StepSpec] = &[
        step("start", Transition::Linear(1), None),
        step("fit", Transition::Linear(2), None),
        step(
            "fan",
            Transition::Foreach {
                field: "xs",
                body: 3,
            },
            None,
        ),
        step("body", Transition::Linear(4), None),
        step("again", Transition::Switch(&[arm(4), arm(5)]), None),
        step("done", Transition::Linear(6), None),
        step("join", Transition::Linear(7), Some(2)),
        step("check", Transition::Switch(&[arm(1), arm(8)]), None),
        step("end", Transition::End, None),
    ];

    #[test]
    fn loops_sit_between_the_splits_around_them() {
        let graph = FlowGraph {
            steps: LOOPS,
            end: 8,
            ..EVERY
        };
        let frames = step_frames(&graph).expect("a well-formed graph");
        let kinds = |name: &str| {
            let s = graph.step_index(name).expect("a step");
            id_kinds(frames[s].as_deref().expect("reachable"))
        };
        use IdKind::{Element, Pass};
        assert_eq!(kinds("start"), vec![]);
        assert_eq!(kinds("fit"), vec![Pass]);
        assert_eq!(kinds("fan"), vec![Pass]);
        assert_eq!(kinds("body"), vec![Pass, Element]);
        assert_eq!(kinds("again"), vec![Pass, Element, Pass]);
        assert_eq!(kinds("done"), vec![Pass, Element]);
        assert_eq!(kinds("join"), vec![Pass]);
        assert_eq!(kinds("check"), vec![Pass]);
        assert_eq!(kinds("end"), vec![]);
        let again = graph.step_index("again").expect("a step");
        assert_eq!(
            frames[again].as_deref().and_then(|f| f.last().copied()),
            Some(StepFrame::Loop { head: again })
        );
    }
}
