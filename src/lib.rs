//! blooming-flowers: machine-learning and data pipelines as a typed DAG of steps.
//!
//! Annotate an ordinary struct's `impl` block with [`flow`](macro@flow) and its methods with
//! [`step`]: the compiler rejects a malformed graph, and every field of the struct becomes an
//! artifact stored after every step.
//!
//! ```
//! use blooming_flowers::prelude::*;
//!
//! #[derive(Clone, Default, Serialize, Deserialize)]
//! struct Hello { greeting: String }
//!
//! #[flow]
//! impl Hello {
//!     /// Says hello.
//!     #[step(next = end)]
//!     fn start(&mut self) { self.greeting = "hello".into(); }
//!     #[step]
//!     fn end(&mut self) {}
//! }
//!
//! assert_eq!(Hello::GRAPH.steps.len(), 2);
//! assert_eq!(Hello::GRAPH.steps[0].doc, "Says hello.");
//! ```

#![warn(missing_docs)]

pub use flow_macros::{flow, step};
/// The ids a run's records and the client's handles hold (also in [`run`], with the other run
/// types): each a `String` underneath, stored as the plain string, and read as a `&str`.
pub use flow_runtime::run::{RunId, StepName, TaskId};
pub use flow_runtime::*;

/// The `main` of a flow binary, with the web UI's commands (cargo feature `ui`): `MYFLOW ui`
/// serves the read-only UI over the datastore (see the `flow-ui` crate), besides every command
/// of [`cli`].
///
/// ```no_run
/// # use blooming_flowers::prelude::*;
/// # #[derive(Clone, Default, Serialize, Deserialize)] struct MyFlow;
/// # #[flow] impl MyFlow { #[step] fn start(&mut self) {} }
/// fn main() -> std::process::ExitCode {
///     blooming_flowers::main::<MyFlow>()
/// }
/// ```
#[cfg(feature = "ui")]
pub fn main<F: Flow>() -> std::process::ExitCode {
    flow_runtime::cli::main_with::<F>(flow_ui::flow_commands())
}

/// burn 0.22.1 itself (cargo feature `burn`): the version [`burn_model`] stores and reads, with its
/// `flex` CPU backend and autodiff. Use it instead of depending on burn directly, so that the
/// versions cannot drift apart.
#[cfg(feature = "burn")]
pub use flow_runtime::burn_model::burn;

/// Everything a flow file needs: `use blooming_flowers::prelude::*;`.
pub mod prelude {
    pub use flow_macros::{flow, step};
    pub use flow_runtime::{Flow, FlowGraph, Input, Inputs, MergeError, StepError};
    pub use serde::{Deserialize, Serialize};
}

#[doc(hidden)]
pub mod __private {
    pub use flow_runtime::__private::*;

    /// The features of blooming-flowers a flow binary was built with: this crate's own, which
    /// include the runtime's.
    pub const FRAMEWORK_FEATURES: &[(&str, bool)] = &[
        ("burn", cfg!(feature = "burn")),
        ("s3", cfg!(feature = "s3")),
        ("ui", cfg!(feature = "ui")),
    ];
}
