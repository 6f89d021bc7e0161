//! Loops: a switch arm that goes back to an earlier step.
//!
//! An arm is a loop's back arm when its target dominates its switch (every path from `start` to
//! the switch passes through the target, which is then the loop's head). Only such arms may close
//! a cycle: every other cycle is reported by the cycle check, which runs on the graph without the
//! back arms. With that rule a loop has one way in, its head, so each of its passes starts there,
//! and loops with different heads are nested or apart. What is checked here on top:
//!
//! - a loop can be left: its head reaches `end`;
//! - a loop does not go back to a foreach's body, which takes the element as a parameter;
//! - `max_iterations` is only on a switch with a back arm;
//! - (in [`super::balance`]) a loop stays inside the splits open at its head.

use super::graph::Edge;
use crate::errors::Errors;
use crate::model::{FlowDef, TransitionDef, name_of};

/// For each edge, whether it is a loop's back arm: a switch arm whose target dominates the
/// switch. `reachable` are the steps `start` reaches; edges from other steps are never back arms.
pub(super) fn back_arms(
    flow: &FlowDef,
    start: usize,
    edges: &[Edge],
    reachable: &[bool],
) -> Vec<bool> {
    let dominators = dominators(start, flow.steps.len(), edges, reachable);
    edges
        .iter()
        .map(|e| {
            reachable[e.from]
                && matches!(
                    flow.steps[e.from].transition.def(),
                    Some(TransitionDef::Switch { .. })
                )
                && dominators[e.from][e.to]
        })
        .collect()
}

/// `dominators[s][d]`: whether every path from `start` to `s` passes through `d`, for reachable
/// steps (the iterative data-flow algorithm; flows have a few dozen steps at most).
fn dominators(start: usize, n: usize, edges: &[Edge], reachable: &[bool]) -> Vec<Vec<bool>> {
    let mut dom: Vec<Vec<bool>> = (0..n)
        .map(|s| {
            if s == start {
                (0..n).map(|d| d == start).collect()
            } else {
                reachable.to_vec()
            }
        })
        .collect();
    let mut changed = true;
    while changed {
        changed = false;
        for s in (0..n).filter(|&s| s != start && reachable[s]) {
            let mut meet: Vec<bool> = reachable.to_vec();
            for e in edges.iter().filter(|e| e.to == s && reachable[e.from]) {
                for (m, d) in meet.iter_mut().zip(&dom[e.from]) {
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

/// The rules on loops that do not need the splits: each loop can be left, none goes back to a
/// foreach's body, `max_iterations` only where a loop is closed. Returns, for each edge, whether
/// an error was reported on it, so that the checks after this one pass it by.
pub(super) fn check_loops(
    flow: &FlowDef,
    end: usize,
    edges: &[Edge],
    is_back: &[bool],
    errors: &mut Errors,
) -> Vec<bool> {
    let steps = &flow.steps;
    let reaches_end = reaching(end, steps.len(), edges);
    let mut reported = vec![false; edges.len()];
    let mut reported_switches = Vec::new();
    for (k, e) in edges.iter().enumerate().filter(|(k, _)| is_back[*k]) {
        let (switch, head) = (&steps[e.from], &steps[e.to]);
        let body_of = steps.iter().find(|s| {
            matches!(s.transition.def(), Some(TransitionDef::Foreach { body, .. }) if name_of(body) == head.name)
        });
        if let Some(split) = body_of {
            reported[k] = true;
            errors.at(
                e.span,
                format!(
                    "a loop cannot go back to `{}`, the body of the foreach at `{}`: it takes the element as a parameter; loop to a step after it",
                    head.name, split.name
                ),
            );
        } else if !reaches_end[e.to] {
            reported[k] = true;
            if reported_switches.contains(&e.from) {
                continue;
            }
            reported_switches.push(e.from);
            errors.at(
                e.span,
                format!(
                    "this loop never ends: no step from `{}` to `{}` leads out of it; give the switch of `{}` an arm that leaves the loop, e.g. `Done => end`",
                    head.name, switch.name, switch.name
                ),
            );
        }
    }
    for (i, step) in steps.iter().enumerate() {
        let Some((_, span)) = step.options.max_iterations else {
            continue;
        };
        let closes_a_loop = edges
            .iter()
            .zip(is_back)
            .any(|(e, back)| *back && e.from == i);
        if !closes_a_loop {
            errors.at(
                span,
                format!(
                    "`max_iterations` limits a loop, but no switch arm of `{}` goes back to an earlier step: write it on the switch that goes back, as in `#[step(switch(Again => train, Done => end), max_iterations = 10)]`",
                    step.name
                ),
            );
        }
    }
    reported
}

/// For each step, whether it reaches `target` along `edges`.
fn reaching(target: usize, n: usize, edges: &[Edge]) -> Vec<bool> {
    let mut seen = vec![false; n];
    seen[target] = true;
    let mut stack = vec![target];
    while let Some(s) = stack.pop() {
        for e in edges.iter().filter(|e| e.to == s) {
            if !seen[e.from] {
                seen[e.from] = true;
                stack.push(e.from);
            }
        }
    }
    seen
}
