//! The graph as a whole: names, start and end, reachability, cycles, and split/join balance —
//! Metaflow's linter, as compile errors.
//!
//! The checks run in tiers. Local mistakes (unknown names, bad start or end, edges that go
//! straight into a join) stop the tiers after them, because a graph with a wrong edge produces
//! nonsense further on. Orphans do not: they are left out of the rest of the analysis.

use std::collections::{BTreeMap, HashSet, VecDeque};

use proc_macro2::Span;
use syn::Ident;

use super::signature::Roles;
use crate::errors::Errors;
use crate::model::{FlowDef, StepDef, TransitionDef, name_of};
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
struct Edge {
    from: usize,
    to: usize,
    /// Position of this edge among `from`'s targets: the branch number for a branch split.
    position: usize,
    span: Span,
}

/// One open split on the way to a step: which split, and which of its branches.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
struct Frame {
    split: usize,
    branch: usize,
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
        if step.transition.is_none()
            && step.name != "end"
            && !step.transition_failed
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
        .any(|(i, s)| s.transition_failed && i != end);
    if errors.len() > before || unreadable {
        return None;
    }

    // Cycles first: a transition that loops back is usually the one that should have gone on to
    // the steps that now look unreachable, so those are not reported as well.
    let reachable = reachable_from(start, steps.len(), &edges);
    let reached: Vec<&Edge> = edges.iter().filter(|e| reachable[e.from]).collect();
    if !check_cycles(flow, start, &reached, errors) {
        return None;
    }
    report_orphans(flow, &reachable, &edges, errors);
    let edges: Vec<Edge> = edges.into_iter().filter(|e| reachable[e.from]).collect();
    let join_of = check_balance(flow, roles, start, end, &edges, &reachable, errors);
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
        let Some(transition) = &step.transition else {
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
                .as_ref()
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
        .filter(|&i| flow.steps[i].transition.is_none() && !flow.steps[i].transition_failed)
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
        match &step.transition {
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
    if let Some(transition) = &end_step.transition {
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
                errors.at(
                    edge.span,
                    format!(
                        "this transition closes a cycle ({}): a flow is a DAG; repeat work inside a step or with a foreach",
                        cycle.join(" → ")
                    ),
                );
            }
            Mark::Done => {}
        }
    }
    acyclic
}

/// Split/join balance: every split is closed by one join that receives exactly its branches,
/// before `end`. Returns, for each join, the split it closes.
fn check_balance(
    flow: &FlowDef,
    roles: &Roles,
    start: usize,
    end: usize,
    edges: &[Edge],
    reachable: &[bool],
    errors: &mut Errors,
) -> Vec<Option<usize>> {
    let steps = &flow.steps;
    let n = steps.len();
    let mut join_of = vec![None; n];
    // The splits open while a step runs (after its own join, if it is one); `None` once an error
    // was reported upstream, so that it is not reported again downstream.
    let mut context: Vec<Option<Vec<Frame>>> = vec![None; n];
    context[start] = Some(Vec::new());
    let mut broken_splits: HashSet<usize> = HashSet::new();

    for s in topological_order(start, n, edges, reachable) {
        if s == start {
            continue;
        }
        let mut incoming: Vec<(&Edge, Vec<Frame>)> = Vec::new();
        for e in edges.iter().filter(|e| e.to == s) {
            let Some(ctx) = &context[e.from] else {
                continue;
            };
            let mut stack = ctx.clone();
            match &steps[e.from].transition {
                Some(TransitionDef::Branch { .. }) => stack.push(Frame {
                    split: e.from,
                    branch: e.position,
                }),
                Some(TransitionDef::Foreach { .. }) => stack.push(Frame {
                    split: e.from,
                    branch: 0,
                }),
                _ => {}
            }
            incoming.push((e, stack));
        }
        if incoming.is_empty() {
            continue;
        }
        let involves_broken = incoming
            .iter()
            .any(|(_, st)| st.iter().any(|f| broken_splits.contains(&f.split)));
        if roles.is_join[s] {
            context[s] = check_join(
                flow,
                roles,
                s,
                &incoming,
                &mut broken_splits,
                &mut join_of,
                involves_broken,
                errors,
            );
        } else {
            let first = &incoming[0].1;
            if let Some((_, other)) = incoming.iter().find(|(_, st)| st != first) {
                if !involves_broken {
                    errors.at(
                        steps[s].ident.span(),
                        not_a_join_message(flow, s, end, first, other),
                    );
                }
                continue;
            }
            if s == end && !first.is_empty() {
                if !involves_broken {
                    let open = first[first.len() - 1].split;
                    errors.at(
                        incoming[0].0.span,
                        format!(
                            "`end` is reached while the split at `{}` is still open: join its branches in a step before `end`",
                            steps[open].name
                        ),
                    );
                }
                continue;
            }
            context[s] = Some(first.clone());
        }
    }
    join_of
}

#[allow(clippy::too_many_arguments)]
fn check_join(
    flow: &FlowDef,
    roles: &Roles,
    s: usize,
    incoming: &[(&Edge, Vec<Frame>)],
    broken_splits: &mut HashSet<usize>,
    join_of: &mut [Option<usize>],
    involves_broken: bool,
    errors: &mut Errors,
) -> Option<Vec<Frame>> {
    let steps = &flow.steps;
    // `None` when the join flag and signature disagree: that was reported already.
    let blame = roles.join_span[s];
    let report = |errors: &mut Errors, span: Span, msg: String| {
        if blame.is_some() && !involves_broken {
            errors.at(span, msg);
        }
    };
    if incoming.iter().any(|(_, st)| st.is_empty()) {
        report(
            errors,
            blame.unwrap_or(steps[s].ident.span()),
            format!(
                "`{}` is a join, but no split is open where it is reached: a join closes a branch (`next = [a, b]`) or a foreach",
                steps[s].name
            ),
        );
        return None;
    }
    // The split most of the incoming branches come from is taken as the one meant.
    let mut votes: BTreeMap<usize, usize> = BTreeMap::new();
    for (_, st) in incoming {
        *votes.entry(st[st.len() - 1].split).or_default() += 1;
    }
    let split = votes
        .iter()
        .max_by_key(|(_, v)| **v)
        .map(|(k, _)| *k)
        .unwrap_or(0);
    if let Some((edge, st)) = incoming
        .iter()
        .find(|(_, st)| st[st.len() - 1].split != split)
    {
        let other = st[st.len() - 1].split;
        // When one split is nested in a branch of the other, the inner one lacks its own join.
        let majority = incoming
            .iter()
            .find(|(_, m)| m[m.len() - 1].split == split)
            .map(|(_, m)| m.as_slice());
        let inner = if majority.is_some_and(|m| m.iter().any(|f| f.split == other)) {
            Some(split)
        } else if st.iter().any(|f| f.split == split) {
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
            edge.span,
            format!(
                "join `{}` mixes unrelated splits: `{}` comes from a branch of the split at `{}`, the others from the split at `{}`{hint}",
                steps[s].name, steps[edge.from].name, steps[other].name, steps[split].name
            ),
        );
        broken_splits.insert(split);
        broken_splits.insert(other);
        return None;
    }
    let expected: Vec<usize> = match &steps[split].transition {
        Some(TransitionDef::Branch { targets }) => (0..targets.len()).collect(),
        _ => vec![0],
    };
    let got: HashSet<usize> = incoming
        .iter()
        .map(|(_, st)| st[st.len() - 1].branch)
        .collect();
    let missing: Vec<usize> = expected.into_iter().filter(|b| !got.contains(b)).collect();
    if !missing.is_empty() {
        let names: Vec<String> = missing
            .iter()
            .map(|&b| format!("`{}`", branch_name(flow, split, b)))
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
        broken_splits.insert(split);
    }
    join_of[s] = Some(split);
    let below = &incoming[0].1;
    Some(below[..below.len() - 1].to_vec())
}

fn branch_name(flow: &FlowDef, split: usize, branch: usize) -> String {
    match &flow.steps[split].transition {
        Some(t) => t
            .targets()
            .get(branch)
            .map(|t| t.to_string())
            .unwrap_or_default(),
        None => String::new(),
    }
}

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
