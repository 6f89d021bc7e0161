//! Argo Workflows manifests for a flow: one container per task, each running the flow binary's
//! `step` command against a shared datastore.
//!
//! [`workflow`] turns a flow's static graph and parameters into a `Workflow` (or, with
//! [`ArgoOptions::template`], a `WorkflowTemplate`); the CLI prints it with `argo-workflow`.
//! No Kubernetes is needed to build one; to run one, the cluster needs the flow binary in an
//! image and the datastore reachable from every pod (a shared volume, or object storage).
//!
//! How the pieces map:
//!
//! | flow | manifest |
//! |---|---|
//! | the run record | task `init` (`FLOW init`) creates the run with the workflow's parameters and exports the run id; `onExit` runs `FLOW finish`, which records how the run ended |
//! | a step's task | a container template `step-NAME` running `FLOW --datastore LOC step NAME --run-id … --task-id …`; the task derives what it starts from out of the datastore |
//! | `next = a` | a DAG task depending on its predecessor's success |
//! | `next = [a, b]`, a join | parallel DAG tasks; the join depends on every branch |
//! | `foreach` | the split writes its children's task ids to an output parameter; the body is a DAG template `foreach-SPLIT`, run once per id with `withParam`, nested for nested foreaches; the join depends on that fan-out |
//! | `switch` | the switch writes the chosen step to an output parameter; each arm's task has a `when` on it, and skipped arms leave their successors out |
//! | `retries = n` | in-container attempts as everywhere, plus `retryStrategy` (`limit: n`, `OnError`) for pods that die of something else |
//! | `timeout` | per attempt in the container, plus the pod's `activeDeadlineSeconds` as a backstop |
//! | `catch` | in the container, as everywhere |
//! | `resources(cpus, memory, gpus)` | the step container's `resources`: `cpu` and `memory` requests, a `memory` limit equal to its request, `nvidia.com/gpu` as a limit (see `resources.rs` for why) |
//! | parameters (`#[flow(params = …)]`) | workflow parameters with the flags' defaults, help and choices, given to `init` |
//! | a schedule (`--schedule`) | a `CronWorkflow` whose `workflowSpec` is the workflow above ([`cron_workflow`]) |

mod builder;
pub mod manifest;
mod resources;
mod schedule;

pub use schedule::{CONCURRENCY_POLICIES, Schedule, check_schedule, cron_workflow};

pub use builder::{
    ArgoError, ArgoOptions, FlowParam, ParamKind, build, flow_params, to_flow_args, workflow,
};

/// Where a container writes the files Argo reads as output parameters (`step --argo-outputs`,
/// `init --argo-outputs`): a path inside the container.
pub const OUTPUTS_DIR: &str = "/tmp/blooming-argo";

/// The file, under the outputs directory, that a foreach split writes: a JSON list of its
/// children's task ids, which the body's fan-out iterates over (`withParam`).
pub const FOREACH_FILE: &str = "foreach.json";

/// The file, under the outputs directory, that a switch writes: the name of the step it chose.
pub const SWITCH_FILE: &str = "switch";

/// The file a switch that closes a loop writes the task id of the step it chose into (the next
/// pass, when it goes back), read as its output parameter `next-task-id`.
pub const NEXT_TASK_FILE: &str = "next-task-id";

/// The file, under the outputs directory, that `init` writes: the new run's id.
pub const RUN_ID_FILE: &str = "run-id";

/// The workflow-wide name of `init`'s run id output (`{{workflow.outputs.parameters.…}}`), which
/// the exit handler reads.
pub const GLOBAL_RUN_ID: &str = "blooming-run-id";
