//! The part of the Argo Workflows resource model (`argoproj.io/v1alpha1`) that the generated
//! manifests use, with Argo's field names. Empty fields are left out, so that a manifest only
//! says what it means.
//!
//! Argo's `IntOrString` fields (`activeDeadlineSeconds`, `retryStrategy.limit`) are written as
//! strings: Argo reads both forms and its published JSON schema only allows strings.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The API version of every Argo Workflows resource written here.
pub const API_VERSION: &str = "argoproj.io/v1alpha1";

/// A `Workflow` (one execution) or a `WorkflowTemplate` (stored in the cluster and submitted
/// later): the two kinds share everything but `kind` and how they are named.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Workflow {
    /// Always [`API_VERSION`].
    pub api_version: String,
    /// `Workflow` or `WorkflowTemplate`.
    pub kind: String,
    /// Its name and namespace.
    pub metadata: ObjectMeta,
    /// What it runs.
    pub spec: WorkflowSpec,
}

/// A `CronWorkflow`: a workflow Argo starts on a schedule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CronWorkflow {
    /// Always [`API_VERSION`].
    pub api_version: String,
    /// `CronWorkflow`.
    pub kind: String,
    /// Its name and namespace.
    pub metadata: ObjectMeta,
    /// When, and what it runs.
    pub spec: CronWorkflowSpec,
}

/// When a `CronWorkflow` starts its workflow, and the workflow.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CronWorkflowSpec {
    /// Cron schedules (Argo 3.6 and later).
    pub schedules: Vec<String>,
    /// The time zone the schedules are read in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timezone: Option<String>,
    /// `Allow`, `Forbid` or `Replace`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub concurrency_policy: Option<String>,
    /// Labels and annotations of every workflow it starts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workflow_metadata: Option<ObjectMeta>,
    /// The workflow it starts.
    pub workflow_spec: WorkflowSpec,
}

/// Kubernetes object metadata.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectMeta {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    /// The name (a WorkflowTemplate's, or a Workflow's given one).
    pub name: Option<String>,
    /// A prefix to which Kubernetes appends a random suffix (Workflows only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generate_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    /// The namespace it goes to.
    pub namespace: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    /// Labels, for selecting resources.
    pub labels: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    /// Annotations, for people and tools.
    pub annotations: BTreeMap<String, String>,
}

/// What a workflow runs.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkflowSpec {
    /// The template the workflow starts with.
    pub entrypoint: String,
    /// The template run when the workflow ends, whatever its outcome.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_exit: Option<String>,
    /// The workflow's parameters, which `argo submit -p name=value` overrides.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arguments: Option<Arguments>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    /// The service account the pods run as.
    pub service_account_name: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    /// Volumes the containers may mount.
    pub volumes: Vec<Volume>,
    /// Every template, the entrypoint and the exit handler among them.
    pub templates: Vec<Template>,
}

/// Parameters passed to a workflow or a template.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Arguments {
    /// The parameters.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub parameters: Vec<Parameter>,
}

/// A parameter: an argument (`value`), an input (`default`) or an output (`valueFrom`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Parameter {
    /// The name.
    pub name: String,
    /// An argument's value (for a workflow parameter, its default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// An input's value when no argument gives one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<String>,
    /// What the parameter means.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The values a parameter may take.
    #[serde(default, rename = "enum", skip_serializing_if = "Vec::is_empty")]
    pub allowed: Vec<String>,
    /// Where an output parameter's value comes from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value_from: Option<ValueFrom>,
    /// Exports an output parameter as `{{workflow.outputs.parameters.NAME}}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub global_name: Option<String>,
}

/// Where an output parameter's value comes from.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ValueFrom {
    /// A file the container wrote.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// The value when the file cannot be read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<String>,
}

/// One template: a container to run, or a DAG of tasks that call templates.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Template {
    /// The name.
    pub name: String,
    /// The parameters the template takes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inputs: Option<Inputs>,
    /// The parameters the template produces.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outputs: Option<Outputs>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    /// The container of a container template.
    pub container: Option<Container>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    /// The tasks of a DAG template.
    pub dag: Option<DagTemplate>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    /// How a failed pod is retried.
    pub retry_strategy: Option<RetryStrategy>,
    /// The longest a container template's pod may run, in seconds (as a string).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active_deadline_seconds: Option<String>,
}

/// A template's input parameters.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Inputs {
    /// The parameters.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub parameters: Vec<Parameter>,
}

/// A template's output parameters.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Outputs {
    /// The parameters.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub parameters: Vec<Parameter>,
}

/// A Kubernetes container.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Container {
    /// The image.
    pub image: String,
    /// The program; the image's entrypoint when empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub command: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    /// The program's arguments.
    pub args: Vec<String>,
    /// Volumes mounted in the container.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub volume_mounts: Vec<VolumeMount>,
    /// Environment variables from secrets (credentials of an object-store datastore).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env_from: Vec<EnvFromSource>,
    /// What the container asks of its node: a step's `resources(...)`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
}

/// A container's resource requests and limits, as Kubernetes quantities (`"8"`, `"64Gi"`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResourceRequirements {
    /// What the scheduler reserves on the node: `cpu`, `memory`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub requests: BTreeMap<String, String>,
    /// What the container may not exceed: `memory`, `nvidia.com/gpu`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub limits: BTreeMap<String, String>,
}

/// A source of a container's environment variables.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EnvFromSource {
    /// Every key of a secret becomes a variable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_ref: Option<SecretEnvSource>,
}

/// A secret whose keys become environment variables.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SecretEnvSource {
    /// The name.
    pub name: String,
}

/// Where a volume appears in a container.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VolumeMount {
    /// The name.
    pub name: String,
    /// The path inside the container.
    pub mount_path: String,
}

/// A pod volume.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Volume {
    /// The name.
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    /// The claim backing the volume.
    pub persistent_volume_claim: Option<PersistentVolumeClaimSource>,
}

/// A volume backed by an existing persistent volume claim.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PersistentVolumeClaimSource {
    /// The claim's name.
    pub claim_name: String,
}

/// A DAG: tasks that run once their dependencies allow.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DagTemplate {
    /// The tasks, in any order: dependencies decide.
    pub tasks: Vec<DagTask>,
}

/// One task of a DAG.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DagTask {
    /// The name.
    pub name: String,
    /// The template it runs.
    pub template: String,
    /// The template's input values.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arguments: Option<Arguments>,
    /// When the task may run, over the results of other tasks of the DAG
    /// (`a.Succeeded || b.Succeeded`); evaluated once every task it names has finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub depends: Option<String>,
    /// A condition evaluated just before the task would run; false skips it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub when: Option<String>,
    /// A JSON list: the task runs once per element (`{{item}}`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub with_param: Option<String>,
}

/// How Argo retries a template's pod.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RetryStrategy {
    /// The number of retries (as a string).
    pub limit: String,
    /// Which failures are retried: `Always`, `OnFailure`, `OnError`, `OnTransientError`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_policy: Option<String>,
}
