//! The names steps and the flow are stored under.
//!
//! A flow's name and each step's name become directories of the datastore
//! (`flows/<flow>/runs/<id>/steps/<step>`), so they must be valid datastore key segments, or
//! every run of the flow fails when it first stores a task. The runtime's rules are in
//! `flow-runtime/src/datastore/keys.rs`; [`key_segment_problem`] mirrors them, and a unit test
//! checks that the two agree. Names that differ only by case would also be one directory on a
//! case-insensitive file system (macOS, Windows) and in the S3 tools that sync to one.
//!
//! Each name gets at most one error, on the name itself; none of these mistakes changes the
//! graph, so the graph checks still run after them.

use std::fmt;

use crate::errors::Errors;
use crate::model::FlowDef;

/// The longest name the datastore accepts as one key segment, in bytes (the runtime's
/// `MAX_SEGMENT_LEN`, the usual limit of a file name).
const MAX_NAME_LEN: usize = 255;

/// Why a name cannot be a datastore key segment.
#[derive(Debug, PartialEq, Eq)]
pub enum NameProblem {
    /// Nothing to name a directory by (never a Rust identifier).
    Empty,
    /// Starts with `.`, which the datastore keeps for temporary files (never a Rust identifier).
    LeadingDot,
    /// Not one of the characters every file system and object store reads the same way.
    Character(char),
    /// Longer than a file name may be, in bytes.
    TooLong(usize),
}

impl fmt::Display for NameProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NameProblem::Empty => write!(f, "is empty"),
            NameProblem::LeadingDot => write!(
                f,
                "starts with `.`, which the datastore keeps for temporary files"
            ),
            NameProblem::Character(c) => write!(
                f,
                "contains `{c}`; the datastore allows only ASCII letters, digits and `_` in a name"
            ),
            NameProblem::TooLong(len) => write!(
                f,
                "is {len} bytes long; the datastore allows at most {MAX_NAME_LEN} in a name"
            ),
        }
    }
}

/// Why `name` is not a valid datastore key segment, if it is not: the same rules as the runtime's
/// `check_segment` (`datastore/keys.rs`), in the same order.
pub fn key_segment_problem(name: &str) -> Option<NameProblem> {
    if name.is_empty() {
        return Some(NameProblem::Empty);
    }
    if name.starts_with('.') {
        return Some(NameProblem::LeadingDot);
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        return Some(NameProblem::Character(c));
    }
    if name.len() > MAX_NAME_LEN {
        return Some(NameProblem::TooLong(name.len()));
    }
    None
}

/// Reports every flow or step name the datastore cannot store, and every step whose name
/// differs from an earlier step's only by case.
pub fn check(flow: &FlowDef, errors: &mut Errors) {
    if let Some(problem) = key_segment_problem(&flow.name) {
        errors.at(
            flow.name_span,
            format!(
                "flow name `{}` {problem}; the flow is stored under its type's name: rename the type",
                flow.name
            ),
        );
    }
    let mut accepted: Vec<&str> = Vec::new();
    for step in &flow.steps {
        let name = step.name.as_str();
        if name.starts_with('_') {
            errors.at(step.ident.span(), "step names cannot start with `_`");
            continue;
        }
        if let Some(problem) = key_segment_problem(name) {
            errors.at(step.ident.span(), format!("step name `{name}` {problem}"));
            continue;
        }
        // The same name twice is rustc's duplicate definition, not a case collision.
        if let Some(first) = accepted
            .iter()
            .find(|other| **other != name && other.eq_ignore_ascii_case(name))
        {
            errors.at(
                step.ident.span(),
                format!(
                    "step `{name}` differs from step `{first}` only by case; they would be one \
                     directory on a case-insensitive file system or in S3 tools: rename one"
                ),
            );
            continue;
        }
        accepted.push(name);
    }
}
