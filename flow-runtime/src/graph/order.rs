//! The one order of a graph's steps that everything listing them uses: topological from `start`,
//! ties broken by declaration order.
//!
//! It does not trust the graph to be well formed (a hand-written graph may hold a cycle, an
//! unreachable step or an index out of range): every step is still placed exactly once, and
//! nothing panics or loops.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use super::FlowGraph;

impl FlowGraph {
    /// Every step index exactly once: first the steps reachable from `start` in topological order
    /// (ties by declaration order), then the rest the same way. A cycle is broken by taking its
    /// earliest-declared step.
    ///
    /// The renderings list steps in this order and the Argo manifest lists its templates and
    /// tasks in it, so both read top to bottom the way a run proceeds.
    pub(crate) fn topological_order(&self) -> Vec<usize> {
        let n = self.steps.len();
        let mut placed = vec![false; n];
        let mut order = Vec::with_capacity(n);
        if self.start < n {
            let reachable = self.reachable_from(self.start);
            self.topological_into(&reachable, Some(self.start), &mut placed, &mut order);
        }
        let rest: Vec<bool> = placed.iter().map(|&p| !p).collect();
        self.topological_into(&rest, None, &mut placed, &mut order);
        order
    }

    fn reachable_from(&self, first: usize) -> Vec<bool> {
        let n = self.steps.len();
        let mut seen = vec![false; n];
        seen[first] = true;
        let mut stack = vec![first];
        while let Some(i) = stack.pop() {
            for t in self.steps[i].transition.targets() {
                if t < n && !seen[t] {
                    seen[t] = true;
                    stack.push(t);
                }
            }
        }
        seen
    }

    /// Kahn's algorithm over the steps marked in `within`, appending to `order`. `first`, when
    /// given, goes first even if it has predecessors (a cycle back to `start`).
    fn topological_into(
        &self,
        within: &[bool],
        first: Option<usize>,
        placed: &mut [bool],
        order: &mut Vec<usize>,
    ) {
        let n = self.steps.len();
        // A loop's back arms do not order anything: its head comes before the switches going
        // back to it.
        let loops = super::Loops::of(self);
        let targets = |i: usize| {
            let loops = &loops;
            self.steps[i]
                .transition
                .targets()
                .filter(move |&t| t < n && within[t] && !loops.is_back_arm(i, t))
        };
        let mut indegree = vec![0usize; n];
        for i in (0..n).filter(|&i| within[i]) {
            for t in targets(i) {
                indegree[t] += 1;
            }
        }
        let mut ready: BinaryHeap<Reverse<usize>> = (0..n)
            .filter(|&i| within[i] && indegree[i] == 0)
            .map(Reverse)
            .collect();
        if let Some(first) = first
            && ready.is_empty()
        {
            ready.push(Reverse(first));
        }
        loop {
            while let Some(Reverse(i)) = ready.pop() {
                if placed[i] {
                    continue;
                }
                placed[i] = true;
                order.push(i);
                for t in targets(i) {
                    indegree[t] = indegree[t].saturating_sub(1);
                    if indegree[t] == 0 && !placed[t] {
                        ready.push(Reverse(t));
                    }
                }
            }
            // Only a cycle leaves steps unplaced here: break it at its earliest-declared step.
            match (0..n).find(|&i| within[i] && !placed[i]) {
                Some(i) => ready.push(Reverse(i)),
                None => break,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::FlowGraph;
    use super::super::test_graphs::{EVERY, TWO_ARMS_TO_ONE_STEP};

    fn names(graph: &FlowGraph) -> Vec<&'static str> {
        graph
            .topological_order()
            .into_iter()
            .map(|s| graph.steps[s].name)
            .collect()
    }

    #[test]
    fn every_step_comes_after_its_predecessors() {
        assert_eq!(
            names(&EVERY),
            [
                "start",
                "a",
                "b",
                "both",
                "fan",
                "inner",
                "body",
                "inner_join",
                "outer_join",
                "decide",
                "big",
                "small",
                "end",
            ]
        );
    }

    #[test]
    fn a_step_two_arms_of_a_switch_lead_to_is_placed_once() {
        assert_eq!(
            names(&TWO_ARMS_TO_ONE_STEP),
            ["start", "fast", "slow", "end"]
        );
    }
}
