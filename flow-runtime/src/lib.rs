//! The runtime of blooming-flowers: the graph model, the executor, the datastore, the client API
//! and the CLI. Users depend on the `blooming-flowers` facade, which re-exports all of it.

#![warn(missing_docs)]

pub mod argo;
#[cfg(feature = "burn")]
pub mod burn_model;
pub mod card;
pub mod checkpoint;
pub mod cli;
pub mod client;
pub mod current;
pub mod datastore;
pub mod executor;
pub mod flow;
pub mod graph;
pub mod inputs;
pub mod logs;
pub mod progress;
pub mod run;
pub mod state;
pub mod step_error;

#[doc(hidden)]
pub mod __private {
    pub use crate::private::*;
}
mod private;

/// The command-line parser, re-exported so that a flow's parameters can derive `clap::Args`
/// with the same version: `use blooming_flowers::clap;`.
pub use clap;
pub use cli::main;
pub use current::card;
pub use flow::{
    Flow, Persistable, StateOwned, StateRef, StepInput, StepOutcome, duplicate, initial, persist,
    restore,
};
pub use graph::{
    CatchSpec, FlowGraph, Resources, StepKind, StepOptions, StepSpec, SwitchArm, Transition,
};
pub use inputs::{Input, InputError, Inputs, MergeConflict, MergeError};
pub use step_error::{StepError, StepReturn};
