//! The graph as a whole: names, start and end, reachability, cycles, (in [`super::loops`]) loops
//! and (in [`super::balance`]) split/join balance — Metaflow's linter, as compile errors.
//!
//! The checks run in tiers. Local mistakes (unknown names, bad start or end, edges that go
//! straight into a join) stop the tiers after them, because a graph with a wrong edge produces
//! nonsense further on. Orphans do not: they are left out of the rest of the analysis.

use std::collections::{HashSet, VecDeque};

use proc_macro2::Span;
use syn::Ident;

use super::balance::check_balance;
use super::loops::{back_arms, check_loops};
use super::signature::Roles;
use crate::errors::Errors;
use crate::model::{FlowDef, StepDef, Transition, TransitionDef, name_of};
use crate::suggest::did_you_mean;

/// A valid graph, resolved to step indices.
pub struct CheckedGraph {
    pub start: usize,
    pub end: usize,
    /// Each step's targets in the order its transition names them.
    pub targets: Vec<Vec<usize>>,
    /// For each join step, the split step it closes.
    pub join_of: Vec<Option<usize>>,
}

/// An edge, with the target token that names it.
#[derive(Clone)]
pub(super) struct Edge {
    pub from: usize,
    pub to: usize,
    /// Position of this edge among `from`'s targets: the branch number for a branch split.
    pub position: usize,
    pub span: Span,
}

pub fn check(flow: &FlowDef, roles: &Roles, errors: &mut Errors) -> Option<CheckedGraph> {
    let before = errors.len();
    let steps = &flow.steps;
    let names: Vec<&str> = steps.iter().map(|s| s.name.as_str()).collect();
    let unique: HashSet<&str> = names.iter().copied().collect();
    if unique.len() != names.len() {
        // rustc reports the duplicate method itself; a graph with two steps of one name has no
        // meaning worth checking further.
        return None;
    }
    let edges = resolve(flow, &names, errors);
    let start = find_start(flow, errors);
    let (end, renamed_end) = find_end(flow, errors);
    for (i, step) in steps.iter().enumerate() {
        if matches!(step.transition, Transition::Absent)
            && step.name != "end"
            && renamed_end != Some(i)
        {
            errors.at(
                step.attr_span,
                format!("step `{}` has no transition: add `next = …`, `foreach = …, next = …` or `switch(…)`; only `end` has none", step.name),
            );
        }
    }
    check_local_edges(flow, roles, errors);
    let (Some(edges), Some(start), Some(end)) = (edges, start, end) else {
        return None;
    };
    check_start_end(flow, roles, &edges, start, end, errors);
    // A step whose transition could not be read was reported; its missing edges would make
    // everything after it look unreachable or unjoined.
    let unreadable = steps
        .iter()
        .enumerate()
        .any(|(i, s)| s.transition.is_unreadable() && i != end);
    if errors.len() > before || unreadable {
        return None;
    }

    // Cycles first: a transition that loops back is usually the one that should have gone on to
    // the steps that now look unreachable, so those are not reported as well. A loop's back arm
    // is the one kind of edge that may close a cycle.
    let reachable = reachable_from(start, steps.len(), &edges);
    let is_back = back_arms(flow, start, &edges, &reachable);
    let forward: Vec<&Edge> = edges
        .iter()
        .zip(&is_back)
        .filter(|(e, back)| reachable[e.from] && !**back)
        .map(|(e, _)| e)
        .collect();
    if !check_cycles(flow, start, &forward, errors) {
        return None;
    }
    let (reached, reached_back): (Vec<Edge>, Vec<bool>) = edges
        .iter()
        .cloned()
        .zip(is_back)
        .filter(|(e, _)| reachable[e.from])
        .unzip();
    let loop_errors = check_loops(flow, end, &reached, &reached_back, errors);
    // A loop that never ends leaves the steps after it unreachable: that one mistake is reported.
    if !loop_errors.contains(&true) {
        report_orphans(flow, &reachable, &edges, errors);
    }
    let edges = reached;
    let forward: Vec<Edge> = edges
        .iter()
        .zip(&reached_back)
        .filter(|(_, back)| !**back)
        .map(|(e, _)| e.clone())
        .collect();
    let back: Vec<Edge> = edges
        .iter()
        .zip(reached_back.iter().zip(&loop_errors))
        .filter(|(_, (back, reported))| **back && !**reported)
        .map(|(e, _)| e.clone())
        .collect();
    let join_of = check_balance(flow, roles, start, end, &forward, &back, &reachable, errors);
    if errors.len() > before {
        return None;
    }
    let mut targets = vec![Vec::new(); steps.len()];
    for e in &edges {
        targets[e.from].push(e.to);
    }
    // `edges` is built in source order, so each list is in the transition's order.
    Some(CheckedGraph {
        start,
        end,
        targets,
        join_of,
    })
}

/// Resolves every target name; unknown names are reported with a suggestion.
fn resolve(flow: &FlowDef, names: &[&str], errors: &mut Errors) -> Option<Vec<Edge>> {
    let mut edges = Vec::new();
    let mut ok = true;
    // A plain method named as a target is one mistake (its missing `#[step]`), however many
    // transitions name it.
    let mut reported_methods: Vec<&Ident> = Vec::new();
    for (from, step) in flow.steps.iter().enumerate() {
        let Some(transition) = step.transition.def() else {
            continue;
        };
        for (position, target) in transition.targets().into_iter().enumerate() {
            let target_name = name_of(target);
            if let Some(to) = names.iter().position(|n| *n == target_name) {
                edges.push(Edge {
                    from,
                    to,
                    position,
                    span: target.span(),
                });
                continue;
            }
            ok = false;
            match flow
                .plain_methods
                .iter()
                .find(|m| name_of(m) == target_name)
            {
                // `start` and `end` without `#[step]` are reported on the method itself.
                Some(_) if target_name == "start" || target_name == "end" => {}
                Some(method) if reported_methods.contains(&method) => {}
                Some(method) => {
                    reported_methods.push(method);
                    errors.at(
                        target.span(),
                        format!("`{target}` is a method of this impl but not a step: add `#[step(…)]` to it"),
                    );
                }
                None => errors.at(
                    target.span(),
                    format!(
                        "no step named `{target}` in this flow{}",
                        did_you_mean(&target.to_string(), names.iter().copied())
                    ),
                ),
            }
        }
    }
    ok.then_some(edges)
}

/// Finds `start`, or says how to add it: on the one step nothing leads to, if there is one, as
/// that is most likely the start under another name.
fn find_start(flow: &FlowDef, errors: &mut Errors) -> Option<usize> {
    if let Some(i) = flow.steps.iter().position(|s| s.name == "start") {
        return Some(i);
    }
    if let Some(method) = flow.plain_methods.iter().find(|m| name_of(m) == "start") {
        errors.at(
            method.span(),
            "`start` must be a step: add `#[step(next = …)]` to it",
        );
        return None;
    }
    let targeted = |step: &StepDef| {
        flow.steps.iter().any(|s| {
            s.transition
                .def()
                .is_some_and(|t| t.targets().iter().any(|x| name_of(x) == step.name))
        })
    };
    let roots: Vec<&StepDef> = flow
        .steps
        .iter()
        .filter(|s| s.name != "end" && !targeted(s))
        .collect();
    match roots.as_slice() {
        [root] => errors.at(
            root.ident.span(),
            format!(
                "flow `{}` has no `start` step; `{}` is the only step that no transition leads to: name it `start`",
                flow.name, root.name
            ),
        ),
        _ => errors.spanned(
            &flow.item.self_ty,
            format!("flow `{}` has no `start` step: add `#[step(next = …)] fn start(&mut self) {{ … }}`", flow.name),
        ),
    }
    None
}

/// Finds `end`, or says how to add it: on the one step without a transition, if there is one, as
/// that is most likely the end under another name. Also returns that step, which then gets no
/// second error for having no transition.
fn find_end(flow: &FlowDef, errors: &mut Errors) -> (Option<usize>, Option<usize>) {
    if let Some(i) = flow.steps.iter().position(|s| s.name == "end") {
        return (Some(i), None);
    }
    if let Some(method) = flow.plain_methods.iter().find(|m| name_of(m) == "end") {
        errors.at(method.span(), "`end` must be a step: add `#[step]` to it");
        return (None, None);
    }
    let leaves: Vec<usize> = (0..flow.steps.len())
        .filter(|&i| matches!(flow.steps[i].transition, Transition::Absent))
        .collect();
    if let [leaf] = leaves[..] {
        let step = &flow.steps[leaf];
        errors.at(
            step.ident.span(),
            format!(
                "flow `{}` has no `end` step; `{}` is the only step without a transition: name it `end`, or give it a transition",
                flow.name, step.name
            ),
        );
        return (None, Some(leaf));
    }
    errors.spanned(
        &flow.item.self_ty,
        format!(
            "flow `{}` has no `end` step: add `#[step] fn end(&mut self) {{ … }}`",
            flow.name
        ),
    );
    (None, None)
}

/// Reports the steps no path from `start` reaches: only the first of each unreachable chain, as
/// the steps after it are unreachable because of it.
fn report_orphans(flow: &FlowDef, reachable: &[bool], edges: &[Edge], errors: &mut Errors) {
    let unreachable: Vec<usize> = (0..flow.steps.len()).filter(|&i| !reachable[i]).collect();
    let roots: Vec<usize> = unreachable
        .iter()
        .copied()
        .filter(|&i| !edges.iter().any(|e| e.to == i && e.from != i))
        .collect();
    // Unreachable steps that only lead to each other have no first one: report one of them.
    let roots = if roots.is_empty() {
        unreachable.into_iter().take(1).collect()
    } else {
        roots
    };
    for i in roots {
        let step = &flow.steps[i];
        errors.at(
            step.ident.span(),
            format!(
                "step `{}` is never reached from `start`: no transition leads to it",
                step.name
            ),
        );
    }
}

/// Rules about single edges: duplicate branch targets, switch arity, edges straight into a join.
fn check_local_edges(flow: &FlowDef, roles: &Roles, errors: &mut Errors) {
    let names: Vec<&str> = flow.steps.iter().map(|s| s.name.as_str()).collect();
    // A step that takes `Inputs` without the `join` flag was reported as such; an edge into it
    // is not reported again.
    let is_join = |name: &Ident| {
        names
            .iter()
            .position(|n| *n == name_of(name))
            .is_some_and(|i| roles.is_join[i] && flow.steps[i].join.is_some())
    };
    let is_end = |name: &Ident| name_of(name) == "end";
    // `end`'s own transition is reported as a whole, by `check_start_end`.
    for step in flow.steps.iter().filter(|s| s.name != "end") {
        match step.transition.def() {
            Some(TransitionDef::Branch { targets }) => {
                for (i, t) in targets.iter().enumerate() {
                    if targets[..i].iter().any(|x| name_of(x) == name_of(t)) {
                        errors.at(t.span(), format!("`{t}` is already a branch of this split"));
                    } else if is_end(t) {
                        errors.at(
                            t.span(),
                            "a branch cannot go straight to `end`: join the branches in a step before `end`",
                        );
                    } else if is_join(t) {
                        errors.at(
                            t.span(),
                            format!("a branch cannot go straight into the join `{t}`: each branch needs at least one step"),
                        );
                    }
                }
            }
            Some(TransitionDef::Foreach { body, .. }) if is_end(body) => {
                errors.at(
                    body.span(),
                    "a foreach cannot go straight to `end`: it needs a body step that takes the element, and a join",
                );
            }
            Some(TransitionDef::Foreach { body, .. }) if is_join(body) => {
                errors.at(
                    body.span(),
                    format!("a foreach cannot go straight into the join `{body}`: it needs a body step that takes the element"),
                );
            }
            Some(TransitionDef::Switch { keyword, arms }) => {
                if arms.len() < 2 {
                    errors.at(
                        *keyword,
                        "a switch needs at least two arms; for a single successor write `next = …`",
                    );
                }
                for arm in arms {
                    if is_join(&arm.target) {
                        errors.at(
                            arm.target.span(),
                            format!("a switch arm cannot go straight into the join `{}`: only splits are joined", arm.target),
                        );
                    }
                }
            }
            _ => {}
        }
    }
}

fn check_start_end(
    flow: &FlowDef,
    roles: &Roles,
    edges: &[Edge],
    start: usize,
    end: usize,
    errors: &mut Errors,
) {
    // `end`'s own transition is reported below, once, whatever its target.
    for e in edges.iter().filter(|e| e.to == start && e.from != end) {
        errors.at(
            e.span,
            "no step can lead to `start`: it is where every run begins",
        );
    }
    let end_step = &flow.steps[end];
    if let Some(transition) = end_step.transition.def() {
        let span = match transition {
            TransitionDef::Switch { keyword, .. } => *keyword,
            _ => transition.targets()[0].span(),
        };
        errors.at(
            span,
            "`end` finishes the flow and has no transition: write `#[step] fn end(&mut self)`",
        );
    }
    if let Some(span) = roles.join_span[end].filter(|_| end_step.join.is_some()) {
        errors.at(
            span,
            "`end` cannot be a join: join the branches in a step before `end`",
        );
    }
    if let Some(span) = roles.join_span[start].filter(|_| flow.steps[start].join.is_some()) {
        errors.at(span, "`start` cannot be a join: no branches lead to it");
    }
}

fn reachable_from(start: usize, n: usize, edges: &[Edge]) -> Vec<bool> {
    let mut seen = vec![false; n];
    let mut queue = VecDeque::from([start]);
    seen[start] = true;
    while let Some(s) = queue.pop_front() {
        for e in edges.iter().filter(|e| e.from == s) {
            if !seen[e.to] {
                seen[e.to] = true;
                queue.push_back(e.to);
            }
        }
    }
    seen
}

/// Reports each edge that closes a cycle; returns whether the graph is acyclic.
fn check_cycles(flow: &FlowDef, start: usize, edges: &[&Edge], errors: &mut Errors) -> bool {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        Open,
        Done,
    }
    let n = flow.steps.len();
    let mut mark = vec![Mark::New; n];
    let mut path = vec![start];
    let mut cursor = vec![0usize];
    mark[start] = Mark::Open;
    let mut acyclic = true;
    // Iterative depth-first search: each frame remembers which outgoing edge it visits next.
    while let Some(&node) = path.last() {
        let out: Vec<&Edge> = edges.iter().copied().filter(|e| e.from == node).collect();
        let Some(top) = cursor.last_mut() else { break };
        if *top >= out.len() {
            mark[node] = Mark::Done;
            path.pop();
            cursor.pop();
            continue;
        }
        let edge = out[*top];
        *top += 1;
        match mark[edge.to] {
            Mark::New => {
                mark[edge.to] = Mark::Open;
                path.push(edge.to);
                cursor.push(0);
            }
            Mark::Open => {
                acyclic = false;
                let from = path.iter().position(|&p| p == edge.to).unwrap_or(0);
                let cycle: Vec<&str> = path[from..]
                    .iter()
                    .chain(std::iter::once(&edge.to))
                    .map(|&i| flow.steps[i].name.as_str())
                    .collect();
                let is_arm = matches!(
                    flow.steps[edge.from].transition.def(),
                    Some(TransitionDef::Switch { .. })
                );
                let why = if is_arm {
                    format!(
                        "a switch arm may go back only to a step that every path to `{}` passes through, to loop",
                        flow.steps[edge.from].name
                    )
                } else {
                    "only a switch arm may go back to an earlier step, as a loop: `switch(Again => a, Done => b)`".to_string()
                };
                errors.at(
                    edge.span,
                    format!(
                        "this transition closes a cycle ({}): {why}",
                        cycle.join(" → ")
                    ),
                );
            }
            Mark::Done => {}
        }
    }
    acyclic
}
