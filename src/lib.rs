//! blooming-flowers: machine-learning and data pipelines as a typed DAG of steps.
//!
//! Annotate an ordinary struct's `impl` block with [`flow`](macro@flow) and its methods with
//! [`step`]: the compiler rejects a malformed graph (with an error on the token at fault), and
//! every field of the struct becomes an artifact stored after every step, so that any run can be
//! read back, compared, resumed from the step that failed, or deployed to a cluster unchanged.
//!
//! # A flow
//!
//! The struct is the flow's state. Each step takes `&mut self` and says where the run goes next;
//! a `foreach` runs its body once per element, each in its own task, and a `join` sees the end
//! state of every branch. The struct needs `Clone, Default, Serialize, Deserialize` (the
//! [`prelude`] re-exports serde's derives).
//!
//! ```
//! use blooming_flowers::prelude::*;
//!
//! #[derive(Clone, Default, Serialize, Deserialize)]
//! struct Squares { xs: Vec<u64>, square: u64, total: u64 }
//!
//! #[flow]
//! impl Squares {
//!     /// Picks the numbers.
//!     #[step(foreach = xs, next = sq)]
//!     fn start(&mut self) { self.xs = (1..=10).collect(); }
//!
//!     /// Runs once per element of `xs`, in its own task.
//!     #[step(next = gather)]
//!     fn sq(&mut self, x: u64) { self.square = x * x; }
//!
//!     /// Sees every `sq` task's state.
//!     #[step(join, next = end)]
//!     fn gather(&mut self, inputs: Inputs<Self>) {
//!         self.total = inputs.iter().map(|i| i.square).sum();
//!     }
//!
//!     #[step]
//!     fn end(&mut self) {}
//! }
//!
//! // The graph is a constant: checked at compile time, readable without running anything.
//! assert_eq!(Squares::GRAPH.steps.len(), 4);
//! assert_eq!(Squares::GRAPH.steps[0].doc, "Picks the numbers.");
//!
//! // Run it into a datastore (a directory here), then read the run back with the client.
//! use blooming_flowers::client::Client;
//! use blooming_flowers::executor::{RunOptions, run_flow};
//! use blooming_flowers::run::RunStore;
//!
//! let dir = tempfile::tempdir()?;
//! let store = RunStore::open_local(dir.path())?;
//! let no_params = serde_json::Value::Null; // a flow with parameters takes them as JSON
//! let summary = run_flow::<Squares>(&store, no_params, &RunOptions::default())?;
//! assert!(summary.failure.is_none());
//!
//! let client = Client::open(dir.path())?;
//! let run = client.flow("Squares").latest_successful_run()?;
//! assert_eq!(run.id(), &summary.run_id);
//! let total: u64 = run.artifact("total")?; // the `end` step's field, nothing else loaded
//! assert_eq!(total, 385);
//! let sq = run.step("sq")?;
//! assert_eq!(sq.tasks()?.len(), 10); // one task per element, each with its own artifacts
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Running it
//!
//! A flow binary is one line of `main`, and [`cli`] gives it every command: `run`, `resume`,
//! `show`, `graph`, `runs`, `dump`, `logs`, `tag`, `promote`, `gc`, `argo-workflow`, and the
//! `step` command that runs a single task (what process mode, Slurm and Argo execute):
//!
//! ```no_run
//! # use blooming_flowers::prelude::*;
//! # #[derive(Clone, Default, Serialize, Deserialize)] struct Squares;
//! # #[flow] impl Squares {
//! #     #[step(next = end)] fn start(&mut self) {}
//! #     #[step] fn end(&mut self) {}
//! # }
//! fn main() -> std::process::ExitCode {
//!     blooming_flowers::main::<Squares>()
//! }
//! ```
//!
//! `cargo run -- run` runs the flow in `./.blooming` (or `--datastore PATH`, or
//! `--datastore s3://bucket/prefix` with the cargo feature `s3`) and prints where its results are.
//! From code, [`executor::run_flow`] and [`executor::resume_flow`] do the same with
//! [`executor::RunOptions`]: worker threads, a child process per task, or a Slurm job per task.
//!
//! # Reading runs
//!
//! [`client::Client`] opens a datastore from any process, without the flow's code: flows, runs
//! (latest, latest successful, tagged, promoted), steps, tasks, artifacts (typed, or as
//! [`client::value`] when the type is not at hand), logs and cards. The CLI's `dump` and `logs`,
//! the web UI (cargo feature `ui`) and the Python reader read the same records.
//!
//! # Where each concern lives
//!
//! | Concern | Module |
//! |---|---|
//! | The trait `#[flow]` implements, and what a state must be | [`mod@flow`] |
//! | The static graph: steps, transitions, options, resources | [`graph`] |
//! | A step's identity at run time, its card and checkpoints | [`current`], [`mod@card`], [`checkpoint`] |
//! | What a join receives, and merging branches | [`inputs`] |
//! | A failed step's error | [`step_error`] |
//! | Running a flow, resuming it, one task at a time | [`executor`] |
//! | The state as artifacts, encoded as MessagePack | [`state`] |
//! | Where runs are kept: local directory, S3, blobs | [`datastore`] |
//! | Run records, ids, provenance, promotions, garbage collection | [`run`] |
//! | Reading past runs | [`client`] |
//! | Logs captured per task, the progress display | [`logs`], [`progress`] |
//! | The command line of a flow binary | [`cli`] |
//! | Argo Workflows manifests | [`argo`] |
//!
//! With the cargo feature `burn`, `burn_model` stores burn modules and optimizer state as flow
//! fields, and `burn` re-exports the burn version it reads and writes.

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
/// # #[flow] impl MyFlow {
/// #     #[step(next = end)] fn start(&mut self) {}
/// #     #[step] fn end(&mut self) {}
/// # }
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
