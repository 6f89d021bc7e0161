//! Loops: a switch arm that goes back to a step every path to the switch passes through (the
//! loop's head). `#[flow]` accepts no other cycle, so a graph without its back arms is acyclic.
//!
//! Every pass of a loop starts at its head, and the steps of the loop (its head, the switches
//! that go back to it and every step between) run once per pass, as tasks whose ids count the
//! pass (`i0`, `i1`, …). Loops with one head are one loop, whichever switch goes back; loops with
//! different heads are nested or apart.

use super::FlowGraph;

/// The loops of a graph.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Loops {
    /// For each loop, its head.
    heads: Vec<usize>,
    /// For each loop, which steps belong to it.
    members: Vec<Vec<bool>>,
    /// For each step, the loop it heads.
    headed: Vec<Option<usize>>,
    /// The back arms, as (switch, head) pairs.
    back: Vec<(usize, usize)>,
}

impl Loops {
    /// The loops of `graph`. Indices out of range (a hand-written graph) are ignored.
    pub(crate) fn of(graph: &FlowGraph) -> Loops {
        let n = graph.steps.len();
        let targets = |s: usize| {
            graph.steps[s]
                .transition
                .targets()
                .filter(|&t| t < n)
                .collect::<Vec<_>>()
        };
        let switches = |s: usize| matches!(graph.steps[s].transition, super::Transition::Switch(_));
        let dominators = dominators(graph.start, n, &targets);
        let mut back = Vec::new();
        for s in (0..n).filter(|&s| switches(s)) {
            for t in targets(s) {
                if dominators[s].get(t).copied().unwrap_or(false) && !back.contains(&(s, t)) {
                    back.push((s, t));
                }
            }
        }
        let mut heads: Vec<usize> = back.iter().map(|&(_, t)| t).collect();
        heads.sort_unstable();
        heads.dedup();
        let mut headed = vec![None; n];
        let members = heads
            .iter()
            .enumerate()
            .map(|(l, &head)| {
                headed[head] = Some(l);
                // The natural loop: the head, and every step from which a switch going back to
                // it is reached without passing through the head (inner loops' back arms
                // included: the steps of an inner loop are steps of the outer one).
                let mut member = vec![false; n];
                member[head] = true;
                let mut stack: Vec<usize> = back
                    .iter()
                    .filter(|&&(_, t)| t == head)
                    .map(|&(s, _)| s)
                    .collect();
                while let Some(s) = stack.pop() {
                    if member[s] {
                        continue;
                    }
                    member[s] = true;
                    stack.extend((0..n).filter(|&p| !member[p] && targets(p).contains(&s)));
                }
                member
            })
            .collect();
        Loops {
            heads,
            members,
            headed,
            back,
        }
    }

    /// Whether the edge from `from` to `to` is a loop's back arm.
    pub(crate) fn is_back_arm(&self, from: usize, to: usize) -> bool {
        self.back.contains(&(from, to))
    }

    /// The loop whose head is `step`.
    pub(crate) fn headed_by(&self, step: usize) -> Option<usize> {
        self.headed.get(step).copied().flatten()
    }

    /// The head of loop `l`.
    pub(crate) fn head(&self, l: usize) -> usize {
        self.heads[l]
    }

    /// Whether `step` belongs to loop `l`.
    pub(crate) fn contains(&self, l: usize, step: usize) -> bool {
        self.members
            .get(l)
            .and_then(|m| m.get(step))
            .copied()
            .unwrap_or(false)
    }

    /// Whether `step` belongs to the loop headed by `head`.
    pub(crate) fn head_contains(&self, head: usize, step: usize) -> bool {
        self.headed_by(head).is_some_and(|l| self.contains(l, step))
    }

    /// The loops `step` belongs to, outermost first.
    pub(crate) fn containing(&self, step: usize) -> Vec<usize> {
        let mut loops: Vec<usize> = (0..self.heads.len())
            .filter(|&l| self.contains(l, step))
            .collect();
        // Nested loops: the outer one has more steps.
        loops.sort_by_key(|&l| std::cmp::Reverse(self.members[l].iter().filter(|&&m| m).count()));
        loops
    }

    /// The switches that go back to `head`.
    pub(crate) fn back_arms_to(&self, head: usize) -> impl Iterator<Item = usize> + '_ {
        self.back
            .iter()
            .filter(move |&&(_, t)| t == head)
            .map(|&(s, _)| s)
    }
}

/// `dominators[s][d]`: whether every path from `start` to `s` passes through `d` (the iterative
/// data-flow algorithm; flows have a few dozen steps at most). Unreachable steps dominate and are
/// dominated by nothing.
fn dominators(start: usize, n: usize, targets: &dyn Fn(usize) -> Vec<usize>) -> Vec<Vec<bool>> {
    let mut reachable = vec![false; n];
    if start < n {
        reachable[start] = true;
        let mut stack = vec![start];
        while let Some(s) = stack.pop() {
            for t in targets(s) {
                if !reachable[t] {
                    reachable[t] = true;
                    stack.push(t);
                }
            }
        }
    }
    let predecessors: Vec<Vec<usize>> = (0..n)
        .map(|s| {
            (0..n)
                .filter(|&p| reachable[p] && targets(p).contains(&s))
                .collect()
        })
        .collect();
    let mut dom: Vec<Vec<bool>> = (0..n)
        .map(|s| match s {
            _ if !reachable[s] => vec![false; n],
            _ if s == start => (0..n).map(|d| d == start).collect(),
            _ => reachable.clone(),
        })
        .collect();
    let mut changed = true;
    while changed {
        changed = false;
        for s in (0..n).filter(|&s| s != start && reachable[s]) {
            let mut meet = reachable.clone();
            for &p in &predecessors[s] {
                for (m, d) in meet.iter_mut().zip(&dom[p]) {
                    *m &= *d;
                }
            }
            meet[s] = true;
            if meet != dom[s] {
                dom[s] = meet;
                changed = true;
            }
        }
    }
    dom
}

#[cfg(test)]
mod tests {
    use super::super::test_graphs::{EVERY, arm, step};
    use super::super::{StepSpec, Transition};
    use super::*;

    /// start → fit → check (back to fit, or on to outer) → outer → inner (back to itself, or on
    /// to decide) → decide (back to outer, or on to end).
    const NESTED: &[StepSpec] = &[
        step("start", Transition::Linear(1), None),
        step("fit", Transition::Linear(2), None),
        step("check", Transition::Switch(&[arm(1), arm(3)]), None),
        step("outer", Transition::Linear(4), None),
        step("inner", Transition::Switch(&[arm(4), arm(5)]), None),
        step("decide", Transition::Switch(&[arm(3), arm(6)]), None),
        step("end", Transition::End, None),
    ];

    #[test]
    fn back_arms_heads_and_members_are_found() {
        let graph = FlowGraph {
            steps: NESTED,
            end: 6,
            ..EVERY
        };
        let loops = Loops::of(&graph);
        assert!(loops.is_back_arm(2, 1));
        assert!(loops.is_back_arm(4, 4));
        assert!(loops.is_back_arm(5, 3));
        assert!(!loops.is_back_arm(2, 3));
        assert!(!loops.is_back_arm(0, 1));
        let fit = loops.headed_by(1).expect("fit heads a loop");
        let outer = loops.headed_by(3).expect("outer heads a loop");
        let inner = loops.headed_by(4).expect("inner heads a loop");
        let members = |l: usize| (0..7).filter(|&s| loops.contains(l, s)).collect::<Vec<_>>();
        assert_eq!(members(fit), vec![1, 2]);
        assert_eq!(members(outer), vec![3, 4, 5]);
        assert_eq!(members(inner), vec![4]);
        assert_eq!(loops.containing(4), vec![outer, inner]);
        assert_eq!(loops.containing(6), Vec::<usize>::new());
        assert!(Loops::of(&EVERY).heads.is_empty());
    }
}
