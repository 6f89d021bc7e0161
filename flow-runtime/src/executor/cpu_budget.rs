//! The cpus a local run may use, shared by its tasks by what their steps declare.
//!
//! A local run (in-process or `--process`) has `--max-workers` cpus. A task occupies its step's
//! `resources(cpus = N)`, 1 when the step declares none, so a flow without resources runs as
//! many tasks at once as it has workers, as before. A step asking more than the whole budget
//! takes all of it: its tasks run alone, and the run warns once per such step. Tasks start in
//! the order they were queued: a task that does not fit yet waits for cpus to free up, and the
//! tasks behind it wait too, so a wide task is never starved by narrow ones passing it.
//!
//! A Slurm run has no budget here ([`CpuBudget::unlimited`]): its cpus are the cluster's, which
//! `sbatch --cpus-per-task` asks for.

use std::collections::VecDeque;

use super::PendingTask;
use crate::graph::{FlowGraph, StepSpec};

/// The cpus free for tasks to start.
#[derive(Debug)]
pub(crate) struct CpuBudget {
    /// All the cpus of the run; `None` for no bound.
    total: Option<usize>,
    used: usize,
}

impl Default for CpuBudget {
    fn default() -> Self {
        CpuBudget::unlimited()
    }
}

impl CpuBudget {
    /// A budget of `total` cpus (at least 1).
    pub(crate) fn new(total: usize) -> Self {
        CpuBudget {
            total: Some(total.max(1)),
            used: 0,
        }
    }

    /// No bound: every task costs nothing.
    pub(crate) fn unlimited() -> Self {
        CpuBudget {
            total: None,
            used: 0,
        }
    }

    /// The cpus a task of `step` occupies: what it declares (1 if nothing), at most the whole
    /// budget; 0 without a bound.
    pub(crate) fn cost(&self, step: &StepSpec) -> usize {
        match self.total {
            None => 0,
            Some(total) => step
                .options
                .resources
                .cpus
                .map_or(1, |n| usize::try_from(n).unwrap_or(usize::MAX))
                .clamp(1, total),
        }
    }

    /// Takes the first queued task if its cpus are free, with what it occupies (to give back
    /// with [`release`](Self::release) when it ends).
    pub(crate) fn take_next<F>(
        &mut self,
        queue: &mut VecDeque<PendingTask<F>>,
        graph: &FlowGraph,
    ) -> Option<(PendingTask<F>, usize)> {
        let cost = self.cost(&graph.steps[queue.front()?.step]);
        if let Some(total) = self.total
            && self.used + cost > total
        {
            return None;
        }
        self.used += cost;
        queue.pop_front().map(|task| (task, cost))
    }

    /// Gives back the cpus of a task that ended.
    pub(crate) fn release(&mut self, cost: usize) {
        self.used = self.used.saturating_sub(cost);
    }

    /// One warning per step asking more cpus than the whole budget: such a step's tasks run
    /// alone, on fewer cpus than it asked.
    pub(crate) fn warnings(&self, graph: &FlowGraph) -> Vec<String> {
        let Some(total) = self.total else {
            return Vec::new();
        };
        graph
            .steps
            .iter()
            .filter_map(|step| {
                let asked = step.options.resources.cpus?;
                (usize::try_from(asked).unwrap_or(usize::MAX) > total).then(|| {
                    format!(
                        "step {} asks for {asked} cpus but this run has {total} \
                         (--max-workers); its tasks run alone, on {total}",
                        step.name
                    )
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::test_graphs::step;
    use crate::graph::{Resources, Transition};

    fn asking(cpus: Option<u32>) -> StepSpec {
        let mut s = step("wide", Transition::End, None);
        s.options.resources = Resources {
            cpus,
            ..Resources::NONE
        };
        s
    }

    #[test]
    fn a_task_costs_its_declared_cpus_one_by_default_and_at_most_the_budget() {
        let budget = CpuBudget::new(4);
        assert_eq!(budget.cost(&asking(None)), 1);
        assert_eq!(budget.cost(&asking(Some(3))), 3);
        assert_eq!(budget.cost(&asking(Some(8))), 4);
        assert_eq!(CpuBudget::unlimited().cost(&asking(Some(8))), 0);
    }

    const WIDE: FlowGraph = FlowGraph {
        name: "Wide",
        doc: "",
        steps: &[
            StepSpec {
                options: crate::graph::StepOptions {
                    resources: Resources {
                        cpus: Some(8),
                        memory_bytes: None,
                        gpus: None,
                    },
                    retries: 0,
                    timeout: None,
                    catch: None,
                    max_iterations: None,
                },
                ..step("start", Transition::Linear(1), None)
            },
            step("end", Transition::End, None),
        ],
        start: 0,
        end: 1,
    };

    #[test]
    fn a_step_wider_than_the_budget_is_warned_about_once() {
        assert_eq!(
            CpuBudget::new(2).warnings(&WIDE),
            [
                "step start asks for 8 cpus but this run has 2 (--max-workers); its tasks run \
              alone, on 2"
            ]
        );
        assert!(CpuBudget::new(8).warnings(&WIDE).is_empty());
        assert!(CpuBudget::unlimited().warnings(&WIDE).is_empty());
    }

    #[test]
    fn the_used_cpus_go_back_when_released() {
        let mut budget = CpuBudget::new(4);
        budget.used = 4;
        budget.release(3);
        assert_eq!(budget.used, 1);
        budget.release(5);
        assert_eq!(budget.used, 0);
    }
}
