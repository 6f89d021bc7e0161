//! The trait `#[flow]` implements, and what a flow's state must be.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::graph::FlowGraph;
use crate::inputs::Inputs;
use crate::run::BuildInfo;
use crate::step_error::StepError;

/// What a flow's state must be to be stored after every step.
///
/// Implemented for every type that is `Clone + Default + Serialize + Deserialize + Send`:
/// derive those four on the flow struct and nothing else is needed. The serde traits are reached
/// through this trait's methods rather than as supertraits, so a struct that lacks them gets one
/// clear error instead of one per missing trait.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be persisted as flow state",
    label = "this flow's state type is not persistable",
    note = "derive `Clone, Default, Serialize, Deserialize` on `{Self}`: every field is stored after every step"
)]
pub trait Persistable: Send + Sized + 'static {
    /// Serializes the state (the flow struct's `Serialize`).
    fn persist<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error>;
    /// Deserializes a state (the flow struct's `Deserialize`).
    fn restore<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error>;
    /// The state a run starts from (the flow struct's `Default`).
    fn initial() -> Self;
    /// A copy of the state for a branch or a foreach task (the flow struct's `Clone`).
    fn duplicate(&self) -> Self;
}

#[diagnostic::do_not_recommend]
impl<T> Persistable for T
where
    T: Serialize + DeserializeOwned + Clone + Default + Send + 'static,
{
    fn persist<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.serialize(serializer)
    }
    fn restore<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        T::deserialize(deserializer)
    }
    fn initial() -> Self {
        T::default()
    }
    fn duplicate(&self) -> Self {
        self.clone()
    }
}

/// Lends a flow's state to serde as a `Serialize` value.
pub struct StateRef<'a, F>(pub &'a F);

impl<F: Flow> Serialize for StateRef<'_, F> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        persist(self.0, serializer)
    }
}

/// Receives a flow's state from serde as a `Deserialize` value.
pub struct StateOwned<F>(pub F);

impl<'de, F: Flow> Deserialize<'de> for StateOwned<F> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        restore(deserializer).map(StateOwned)
    }
}

/// A flow: a struct whose `impl` block carries `#[flow]`.
///
/// Its state is persisted through [`Persistable`]; use [`persist`], [`restore`], [`initial`] and
/// [`duplicate`] rather than the hidden items.
///
/// Never implement this by hand: `#[flow]` writes the implementation from the steps it finds.
pub trait Flow: Send + Sync + Sized + 'static {
    /// The static description of the flow's graph.
    const GRAPH: &'static FlowGraph;

    /// How the flow's crate was built (package, features, git commit), recorded in the
    /// provenance of every run.
    const BUILD: &'static BuildInfo = &BuildInfo::UNKNOWN;

    /// Always `Self`. The persistence bound sits on this type rather than on `Flow` itself, so a
    /// flow struct without the serde derives gets exactly one error, at the `#[flow]` impl.
    #[doc(hidden)]
    type __State: Persistable;

    /// `self` as [`Flow::__State`] (the identity).
    #[doc(hidden)]
    fn __as_state(&self) -> &Self::__State;

    /// A [`Flow::__State`] as `Self` (the identity).
    #[doc(hidden)]
    fn __from_state(state: Self::__State) -> Self;

    /// Runs step `step` on this state. Called by the executor only.
    #[doc(hidden)]
    fn __run_step(
        &mut self,
        step: usize,
        input: StepInput<'_, Self>,
    ) -> Result<StepOutcome, StepError>;

    /// Encodes, one MessagePack value each, the elements a foreach step fans out over.
    #[doc(hidden)]
    fn __foreach_items(&self, step: usize) -> Result<Vec<Vec<u8>>, StepError>;

    /// Stores a caught failure's message in the field named by `catch = field` of step `step`.
    #[doc(hidden)]
    fn __record_caught(&mut self, step: usize, message: String);

    /// Adds the flow's parameters (`#[flow(params = field)]`) to the `run` command.
    #[doc(hidden)]
    fn __params_command(command: clap::Command) -> clap::Command {
        command
    }

    /// Sets the parameters field from the parsed command line; returns it as JSON for the run
    /// record.
    #[doc(hidden)]
    fn __apply_params(
        &mut self,
        _matches: &clap::ArgMatches,
    ) -> Result<serde_json::Value, clap::Error> {
        Ok(serde_json::Value::Null)
    }

    /// Sets the parameters field from a run record's JSON (resume, and tasks in other processes).
    #[doc(hidden)]
    fn __restore_params(&mut self, _params: &serde_json::Value) -> Result<(), String> {
        Ok(())
    }
}

/// What a task receives besides its state.
pub enum StepInput<'a, F> {
    /// Nothing: linear, branch, switch, foreach-split and end steps.
    Plain,
    /// The MessagePack encoding of the foreach element this body task runs on.
    Item(&'a [u8]),
    /// The end states of every branch this join step joins.
    Join(Inputs<F>),
}

/// What a step's run decided about its successors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepOutcome {
    /// Go on along the step's static transition.
    Continue,
    /// A switch step picked arm number `0`-based index.
    Arm(usize),
}

/// Serializes a flow's state with any serde serializer.
pub fn persist<F: Flow, S: Serializer>(state: &F, serializer: S) -> Result<S::Ok, S::Error> {
    state.__as_state().persist(serializer)
}

/// Deserializes a flow's state with any serde deserializer.
pub fn restore<'de, F: Flow, D: Deserializer<'de>>(deserializer: D) -> Result<F, D::Error> {
    F::__State::restore(deserializer).map(F::__from_state)
}

/// The state a run of `F` starts from.
pub fn initial<F: Flow>() -> F {
    F::__from_state(F::__State::initial())
}

/// A copy of a flow's state.
pub fn duplicate<F: Flow>(state: &F) -> F {
    F::__from_state(state.__as_state().duplicate())
}
