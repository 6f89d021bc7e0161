//! The static description of a flow's graph.
//!
//! `#[flow]` writes one [`FlowGraph`] per flow type as a `const`, so everything here is usable
//! without running anything: the CLI's `show` and `graph` commands, the executor's scheduling and
//! the run records all read the same description.
//!
//! Everything read from the graph alone lives here too, for the executor and the Argo manifest
//! to share: the order steps are listed in (`order.rs`), the splits open at each step and the
//! join closing each split (`splits.rs`), the shape of task ids (`task_ids.rs`).

mod frames;
mod loops;
mod order;
mod render;
mod resources;
mod splits;
mod task_ids;
#[cfg(test)]
pub(crate) mod test_graphs;

pub(crate) use frames::{StepFrame, id_kinds, step_frames};
pub(crate) use loops::Loops;
pub use resources::{Resources, memory_text};
pub(crate) use splits::{OpenSplit, open_splits};
pub(crate) use task_ids::{IdKind, IdPart, example_task_id, parse_task_id, task_id_of};

use std::time::Duration;

/// A flow's whole graph: its steps in declaration order, with `start` and `end` located.
///
/// Step references inside the graph are indices into [`FlowGraph::steps`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlowGraph {
    /// The flow's name: the name of the type `#[flow]` was applied to.
    pub name: &'static str,
    /// The doc comment of the flow's `impl` block, if any.
    pub doc: &'static str,
    /// Every step, in the order the `impl` block declares them.
    pub steps: &'static [StepSpec],
    /// Index of the `start` step.
    pub start: usize,
    /// Index of the `end` step.
    pub end: usize,
}

/// One step of a flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StepSpec {
    /// The step's name: the name of its method.
    pub name: &'static str,
    /// The step's doc comment, trimmed; empty when it has none.
    pub doc: &'static str,
    /// Where the step goes next.
    pub transition: Transition,
    /// For a join step, the index of the split step whose branches it joins.
    pub join: Option<usize>,
    /// Retries, timeout and failure handling declared on the step.
    pub options: StepOptions,
}

/// Where a step goes when it finishes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    /// The `end` step: no successor.
    End,
    /// `next = a`: one successor.
    Linear(usize),
    /// `next = [a, b, …]`: every successor runs, each on its own copy of the state.
    Branch(&'static [usize]),
    /// `foreach = field, next = body`: one `body` task per element of `field`.
    Foreach {
        /// The field of the flow struct whose elements fan out.
        field: &'static str,
        /// The step that runs once per element and takes the element as its parameter.
        body: usize,
    },
    /// `switch(PATTERN => step, …)`: exactly one successor, chosen by the value the step returns.
    Switch(&'static [SwitchArm]),
}

/// One arm of a switch step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SwitchArm {
    /// The pattern as written in the source, e.g. `Route::Big`.
    pub pattern: &'static str,
    /// The step this arm leads to.
    pub target: usize,
}

/// Options declared beside a step's transition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StepOptions {
    /// How many times a failed task is retried before the failure counts (`retries = N`).
    pub retries: u32,
    /// The longest one attempt may run (`timeout = "30s"` or `timeout = 30`).
    pub timeout: Option<Duration>,
    /// Whether a failure after the last retry is caught instead of failing the run (`catch`).
    pub catch: Option<CatchSpec>,
    /// On a switch that closes a loop, the most passes the loop may make
    /// (`max_iterations = N`): choosing to go back once more fails the run.
    pub max_iterations: Option<u32>,
    /// What one task of the step asks of its machine (`resources(cpus = 8, memory = "64 GiB")`).
    pub resources: Resources,
}

/// What `catch` does with a failure that exhausted its retries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CatchSpec {
    /// With `catch = field`, the field that receives the error message (an `Option<String>`).
    pub field: Option<&'static str>,
}

/// The kind of a step, derived from its transition and join flag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepKind {
    /// A step with one successor and one predecessor.
    Linear,
    /// A static split into several branches.
    Branch,
    /// A dynamic split over the elements of a field.
    Foreach,
    /// A step that picks one successor at run time.
    Switch,
    /// A step that receives the end states of every branch of a split.
    Join,
    /// The `end` step.
    End,
}

impl StepKind {
    /// The word for it, as graphs are rendered and as run records store it: `linear`,
    /// `branch`, `foreach`, `switch`, `join` or `end`.
    pub fn as_str(self) -> &'static str {
        match self {
            StepKind::Linear => "linear",
            StepKind::Branch => "branch",
            StepKind::Foreach => "foreach",
            StepKind::Switch => "switch",
            StepKind::Join => "join",
            StepKind::End => "end",
        }
    }
}

impl FlowGraph {
    /// The index of the step called `name`.
    pub fn step_index(&self, name: &str) -> Option<usize> {
        self.steps.iter().position(|s| s.name == name)
    }

    /// The step called `name`.
    pub fn step(&self, name: &str) -> Option<&StepSpec> {
        self.steps.iter().find(|s| s.name == name)
    }

    /// The indices of the steps that come right after step `index`, in declaration order of the
    /// transition.
    pub fn successors(&self, index: usize) -> Vec<usize> {
        self.steps[index].transition.targets().collect()
    }

    /// The indices of the steps that lead straight to step `index`.
    pub fn predecessors(&self, index: usize) -> Vec<usize> {
        (0..self.steps.len())
            .filter(|&i| self.steps[i].transition.targets().any(|t| t == index))
            .collect()
    }

    /// Whether step `index` is the body of a foreach, i.e. takes an item.
    pub fn is_foreach_body(&self, index: usize) -> bool {
        self.steps
            .iter()
            .any(|s| matches!(s.transition, Transition::Foreach { body, .. } if body == index))
    }
}

impl StepSpec {
    /// The kind of this step; a join that splits again reports [`StepKind::Join`].
    pub fn kind(&self) -> StepKind {
        if self.join.is_some() {
            return StepKind::Join;
        }
        match self.transition {
            Transition::End => StepKind::End,
            Transition::Linear(_) => StepKind::Linear,
            Transition::Branch(_) => StepKind::Branch,
            Transition::Foreach { .. } => StepKind::Foreach,
            Transition::Switch(_) => StepKind::Switch,
        }
    }
}

impl Transition {
    /// Every step this transition can lead to, in source order.
    pub fn targets(&self) -> impl Iterator<Item = usize> + '_ {
        let (single, many, arms): (Option<usize>, &[usize], &[SwitchArm]) = match *self {
            Transition::End => (None, &[], &[]),
            Transition::Linear(t) => (Some(t), &[], &[]),
            Transition::Branch(ts) => (None, ts, &[]),
            Transition::Foreach { body, .. } => (Some(body), &[], &[]),
            Transition::Switch(arms) => (None, &[], arms),
        };
        single
            .into_iter()
            .chain(many.iter().copied())
            .chain(arms.iter().map(|a| a.target))
    }
}
