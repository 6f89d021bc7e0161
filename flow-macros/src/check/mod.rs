//! Phase two: everything that makes a flow invalid, each reported once on the token at fault.
//!
//! Names are checked first (they must be datastore keys), signatures step by step, the graph as a
//! whole. A step whose join flag
//! and signature disagree gets one signature error, and the graph checks take it as the join it
//! was meant to be, so the one mistake does not also show up as a broken graph.

mod balance;
mod graph;
mod loops;
mod names;
mod signature;

use crate::errors::Errors;
use crate::model::FlowDef;

pub use graph::CheckedGraph;

/// Checks `flow`; returns the resolved graph when it is valid.
pub fn check(flow: &FlowDef, errors: &mut Errors) -> Option<CheckedGraph> {
    names::check(flow, errors);
    let roles = signature::check(flow, errors);
    graph::check(flow, &roles, errors)
}

#[cfg(test)]
mod tests;
