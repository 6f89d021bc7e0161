//! Split/join balance: every split is closed by one join that receives exactly its branches,
//! before `end`.
//!
//! The walk visits the reachable steps of an acyclic graph in topological order, carrying to each
//! step the splits open where it runs. A step reached with two different sets of open splits must
//! be a join; a join must close the innermost split of every path into it, and receive all of
//! that split's branches. Each mistake is reported once: the steps after it, and later mistakes
//! involving the same splits, are not reported again.

use std::collections::{BTreeMap, HashSet};

use proc_macro2::Span;

use super::graph::Edge;
use super::signature::Roles;
use crate::errors::Errors;
use crate::model::{FlowDef, TransitionDef};

/// One open split on the way to a step: which split, and which of its branches.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
struct Frame {
    split: usize,
    branch: usize,
}

/// An edge into the step being visited, with the splits open along it, innermost last (the
/// edge's own split included).
struct Arrival<'e> {
    edge: &'e Edge,
    open: Vec<Frame>,
}

/// What the walk knows about the steps visited so far.
struct BalanceWalk<'a> {
    flow: &'a FlowDef,
    roles: &'a Roles,
    end: usize,
    /// The splits open while each step runs (after its own join, if it is one): `None` before the
    /// step is visited, and for good when an error was reported on the way to it, so that the
    /// error is not reported again downstream.
    open_at: Vec<Option<Vec<Frame>>>,
    /// Splits an error was reported about: a later mistake involving them is not reported.
    broken_splits: HashSet<usize>,
    /// For each join, the split it closes.
    join_of: Vec<Option<usize>>,
}

/// Checks the balance of the reachable, acyclic graph `edges`, and that each loop's back arm in
/// `back` returns to its head with the same splits open. Returns, for each join, the split it
/// closes.
#[allow(clippy::too_many_arguments)]
pub fn check_balance(
    flow: &FlowDef,
    roles: &Roles,
    start: usize,
    end: usize,
    edges: &[Edge],
    back: &[Edge],
    reachable: &[bool],
    errors: &mut Errors,
) -> Vec<Option<usize>> {
    let n = flow.steps.len();
    let mut walk = BalanceWalk {
        flow,
        roles,
        end,
        open_at: vec![None; n],
        broken_splits: HashSet::new(),
        join_of: vec![None; n],
    };
    walk.open_at[start] = Some(Vec::new());
    for s in topological_order(start, n, edges, reachable) {
        if s != start {
            walk.visit(s, edges, errors);
        }
    }
    for arm in back {
        walk.check_loop(arm, errors);
    }
    walk.join_of
}

impl BalanceWalk<'_> {
    fn visit(&mut self, s: usize, edges: &[Edge], errors: &mut Errors) {
        let arrivals = self.arrivals(s, edges);
        let Some(first) = arrivals.first() else {
            return;
        };
        let quiet = arrivals
            .iter()
            .any(|a| a.open.iter().any(|f| self.broken_splits.contains(&f.split)));
        self.open_at[s] = if self.roles.is_join[s] {
            self.visit_join(s, &arrivals, quiet, errors)
        } else {
            self.visit_step(s, first, &arrivals, quiet, errors)
        };
    }

    /// A loop's back arm must find at its head the splits it left there: a pass cannot start in
    /// one branch or element and go on in another, nor leave a split without its join.
    fn check_loop(&self, arm: &Edge, errors: &mut Errors) {
        let (Some(at_switch), Some(at_head)) = (&self.open_at[arm.from], &self.open_at[arm.to])
        else {
            // An error on the way to either was reported already.
            return;
        };
        if at_switch == at_head {
            return;
        }
        let steps = &self.flow.steps;
        let (switch, head) = (&steps[arm.from].name, &steps[arm.to].name);
        let inner = |open: &[Frame], other: &[Frame]| {
            open.iter()
                .rev()
                .find(|f| !other.contains(f))
                .map(|f| steps[f.split].name.clone())
        };
        let message = match (inner(at_switch, at_head), inner(at_head, at_switch)) {
            (Some(split), _) => format!(
                "this loop leaves a split open: `{switch}` runs inside the split at `{split}` and `{head}` outside it; join the split before `{switch}`, or loop to a step inside it"
            ),
            (None, Some(split)) => format!(
                "this loop crosses a split: `{head}` runs inside the split at `{split}` and `{switch}` after its join; loop inside the split, or to a step after its join"
            ),
            (None, None) => format!(
                "this loop crosses a split: `{switch}` and `{head}` run in different branches"
            ),
        };
        errors.at(arm.span, message);
    }

    /// The edges into `s` from steps whose open splits are known, each with the splits open
    /// along it.
    fn arrivals<'e>(&self, s: usize, edges: &'e [Edge]) -> Vec<Arrival<'e>> {
        let mut arrivals = Vec::new();
        for edge in edges.iter().filter(|e| e.to == s) {
            let Some(open) = &self.open_at[edge.from] else {
                continue;
            };
            let mut open = open.clone();
            match self.flow.steps[edge.from].transition.def() {
                Some(TransitionDef::Branch { .. }) => open.push(Frame {
                    split: edge.from,
                    branch: edge.position,
                }),
                Some(TransitionDef::Foreach { .. }) => open.push(Frame {
                    split: edge.from,
                    branch: 0,
                }),
                _ => {}
            }
            arrivals.push(Arrival { edge, open });
        }
        arrivals
    }

    /// A step that is not a join: every path into it must have the same splits open, and none
    /// may be open at `end`. Returns the splits open while it runs.
    fn visit_step(
        &self,
        s: usize,
        first: &Arrival,
        arrivals: &[Arrival],
        quiet: bool,
        errors: &mut Errors,
    ) -> Option<Vec<Frame>> {
        let steps = &self.flow.steps;
        if let Some(other) = arrivals.iter().find(|a| a.open != first.open) {
            if !quiet {
                errors.at(
                    steps[s].ident.span(),
                    not_a_join_message(self.flow, s, self.end, &first.open, &other.open),
                );
            }
            return None;
        }
        if s == self.end
            && let Some(open) = first.open.last()
        {
            if !quiet {
                errors.at(
                    first.edge.span,
                    format!(
                        "`end` is reached while the split at `{}` is still open: join its branches in a step before `end`",
                        steps[open.split].name
                    ),
                );
            }
            return None;
        }
        Some(first.open.clone())
    }

    /// A join: it must close the innermost split of every path into it, and receive every branch
    /// of that split. Returns the splits still open after it.
    fn visit_join(
        &mut self,
        s: usize,
        arrivals: &[Arrival],
        quiet: bool,
        errors: &mut Errors,
    ) -> Option<Vec<Frame>> {
        let steps = &self.flow.steps;
        // `None` when the join flag and signature disagree: that was reported already.
        let blame = self.roles.join_span[s];
        let report = |errors: &mut Errors, span: Span, msg: String| {
            if blame.is_some() && !quiet {
                errors.at(span, msg);
            }
        };
        let Some(innermost) = arrivals
            .iter()
            .map(|a| a.open.last().copied())
            .collect::<Option<Vec<Frame>>>()
        else {
            report(
                errors,
                blame.unwrap_or(steps[s].ident.span()),
                format!(
                    "`{}` is a join, but no split is open where it is reached: a join closes a branch (`next = [a, b]`) or a foreach",
                    steps[s].name
                ),
            );
            return None;
        };
        // The split most of the incoming branches come from is taken as the one meant.
        let mut votes: BTreeMap<usize, usize> = BTreeMap::new();
        for frame in &innermost {
            *votes.entry(frame.split).or_default() += 1;
        }
        let split = votes
            .iter()
            .max_by_key(|(_, v)| **v)
            .map(|(k, _)| *k)
            .unwrap_or(0);
        if let Some((stray, other)) = arrivals
            .iter()
            .zip(&innermost)
            .find(|(_, f)| f.split != split)
        {
            let other = other.split;
            // When one split is nested in a branch of the other, the inner one lacks its own join.
            let majority = arrivals
                .iter()
                .zip(&innermost)
                .find(|(_, f)| f.split == split)
                .map(|(a, _)| a.open.as_slice());
            let inner = if majority.is_some_and(|m| m.iter().any(|f| f.split == other)) {
                Some(split)
            } else if stray.open.iter().any(|f| f.split == split) {
                Some(other)
            } else {
                None
            };
            let hint = inner
                .map(|i| {
                    format!(
                        "; join the branches of `{}` in a step of their own first",
                        steps[i].name
                    )
                })
                .unwrap_or_default();
            report(
                errors,
                stray.edge.span,
                format!(
                    "join `{}` mixes unrelated splits: `{}` comes from a branch of the split at `{}`, the others from the split at `{}`{hint}",
                    steps[s].name,
                    steps[stray.edge.from].name,
                    steps[other].name,
                    steps[split].name
                ),
            );
            self.broken_splits.insert(split);
            self.broken_splits.insert(other);
            return None;
        }
        let expected: Vec<usize> = match steps[split].transition.def() {
            Some(TransitionDef::Branch { targets }) => (0..targets.len()).collect(),
            _ => vec![0],
        };
        let got: HashSet<usize> = innermost.iter().map(|f| f.branch).collect();
        let missing: Vec<usize> = expected.into_iter().filter(|b| !got.contains(b)).collect();
        if !missing.is_empty() {
            let names: Vec<String> = missing
                .iter()
                .map(|&b| format!("`{}`", branch_name(self.flow, split, b)))
                .collect();
            report(
                errors,
                blame.unwrap_or(steps[s].ident.span()),
                format!(
                    "join `{}` does not receive the branch{} {} of the split at `{}`: every branch of a split must reach its join",
                    steps[s].name,
                    if names.len() > 1 { "es" } else { "" },
                    names.join(", "),
                    steps[split].name
                ),
            );
            self.broken_splits.insert(split);
        }
        self.join_of[s] = Some(split);
        // Every arrival has this split innermost: what is below it stays open.
        arrivals.first().map(|a| {
            let mut below = a.open.clone();
            below.pop();
            below
        })
    }
}

/// The name of branch `branch` of `split`: the step it starts with.
fn branch_name(flow: &FlowDef, split: usize, branch: usize) -> String {
    match flow.steps[split].transition.def() {
        Some(t) => t
            .targets()
            .get(branch)
            .map(|t| t.to_string())
            .unwrap_or_default(),
        None => String::new(),
    }
}

/// Why a step reached with `a` and `b` open should be a join, or why `end` cannot be reached so.
fn not_a_join_message(flow: &FlowDef, s: usize, end: usize, a: &[Frame], b: &[Frame]) -> String {
    let steps = &flow.steps;
    let diverge = a.iter().zip(b).position(|(x, y)| x != y);
    let what = match diverge {
        Some(i) if a[i].split == b[i].split => format!(
            "branches `{}` and `{}` of the split at `{}`",
            branch_name(flow, a[i].split, a[i].branch),
            branch_name(flow, b[i].split, b[i].branch),
            steps[a[i].split].name
        ),
        _ => "paths inside and outside a split".to_string(),
    };
    if s == end {
        format!("`end` is reached by {what}: join them in a step before `end`")
    } else {
        format!(
            "step `{}` is reached by {what} but is not a join: write `#[step(join, …)] fn {}(&mut self, inputs: Inputs<Self>)`",
            steps[s].name, steps[s].name
        )
    }
}

/// Kahn's algorithm over the reachable, acyclic graph; ties in declaration order.
fn topological_order(start: usize, n: usize, edges: &[Edge], reachable: &[bool]) -> Vec<usize> {
    let mut indegree = vec![0usize; n];
    for e in edges {
        indegree[e.to] += 1;
    }
    let mut ready: Vec<usize> = vec![start];
    let mut order = Vec::new();
    while let Some(s) = ready.pop() {
        order.push(s);
        for e in edges.iter().filter(|e| e.from == s) {
            indegree[e.to] -= 1;
            if indegree[e.to] == 0 && reachable[e.to] {
                ready.push(e.to);
            }
        }
        ready.sort_unstable_by(|a, b| b.cmp(a));
    }
    order
}
