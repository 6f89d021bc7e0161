//! The graph of a flow → an Argo Workflows manifest.

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use clap::{ArgAction, Command};

use super::manifest::{
    API_VERSION, Arguments, Container, DagTask, DagTemplate, EnvFromSource, Inputs, ObjectMeta,
    Outputs, Parameter, PersistentVolumeClaimSource, RetryStrategy, SecretEnvSource, Template,
    ValueFrom, Volume, VolumeMount, Workflow, WorkflowSpec,
};
use super::{FOREACH_FILE, GLOBAL_RUN_ID, NEXT_TASK_FILE, OUTPUTS_DIR, RUN_ID_FILE, SWITCH_FILE};
use crate::flow::Flow;
use crate::graph::{
    FlowGraph, Loops, OpenSplit, StepFrame, StepSpec, Transition, open_splits, step_frames,
};

/// What the manifest cannot take from the flow itself.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ArgoOptions {
    /// The container image holding the flow binary.
    pub image: String,
    /// The datastore as every container sees it: a path (on a volume mounted in every pod) or
    /// any other location the flow binary's `--datastore` accepts. Given to every container.
    pub datastore: String,
    /// The flow binary's path in the image; `None` runs the image's entrypoint.
    pub binary: Option<String>,
    /// The resource's name (for a Workflow, otherwise `generateName: FLOW-`).
    pub name: Option<String>,
    /// The namespace the resource goes to.
    pub namespace: Option<String>,
    /// The service account the pods run as.
    pub service_account: Option<String>,
    /// Write a `WorkflowTemplate` instead of a `Workflow`.
    pub template: bool,
    /// A persistent volume claim mounted at the datastore's path in every pod.
    pub volume_claim: Option<String>,
    /// Secrets whose keys become environment variables of every container: the credentials
    /// of an object-store datastore (`AWS_ACCESS_KEY_ID`, …).
    pub env_secrets: Vec<String>,
    /// Tags every run of this manifest is recorded with.
    pub tags: Vec<String>,
}

/// Why no manifest could be made.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ArgoError {
    /// An option's value cannot be used.
    #[error("{0}")]
    Invalid(String),
    /// The graph has a shape Argo's conditions cannot express.
    #[error("step `{step}` cannot be expressed in Argo Workflows: {reason}")]
    Unsupported {
        /// The step whose transition cannot be expressed.
        step: String,
        /// Why, in a sentence for the user.
        reason: String,
    },
    /// The graph is not one `#[flow]` accepts (hand-written graphs only).
    #[error("the graph of flow `{flow}` cannot be followed: {reason}")]
    Graph {
        /// The flow's name.
        flow: String,
        /// What about the graph cannot be followed.
        reason: String,
    },
}

/// How a flow parameter's workflow value becomes a command-line argument of the flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParamKind {
    /// `--name VALUE`.
    Value,
    /// A flag set by its presence: `true` or `false` in the workflow.
    Flag,
    /// A flag cleared by its presence (`ArgAction::SetFalse`): `true` or `false` in the workflow.
    NegatedFlag,
    /// A flag counted by repetition (`-vvv`): a number in the workflow.
    Count,
    /// A positional argument.
    Positional,
}

/// One parameter of a flow as a workflow parameter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlowParam {
    /// The workflow parameter's name: the flag's long name, else the argument's id.
    pub name: String,
    /// The flag's long name (`--name`), if it has one.
    pub long: Option<String>,
    /// How its value reaches the flow's command line.
    pub kind: ParamKind,
    /// The default value as the workflow shows it; `None` for a parameter that must be given.
    pub default: Option<String>,
    /// Whether the flow requires it.
    pub required: bool,
    /// Its help text.
    pub help: Option<String>,
    /// The values it accepts, where the flow says.
    pub choices: Vec<String>,
}

/// The parameters that `params` (a command holding a flow's parameters, as
/// `Flow::__params_command` makes it) declares, as workflow parameters.
pub fn flow_params(params: &Command) -> Vec<FlowParam> {
    params
        .get_arguments()
        .filter_map(|arg| {
            let kind = match arg.get_action() {
                ArgAction::SetTrue => ParamKind::Flag,
                ArgAction::SetFalse => ParamKind::NegatedFlag,
                ArgAction::Count => ParamKind::Count,
                ArgAction::Set | ArgAction::Append if arg.is_positional() => ParamKind::Positional,
                ArgAction::Set | ArgAction::Append => ParamKind::Value,
                _ => return None,
            };
            let defaults: Vec<String> = arg
                .get_default_values()
                .iter()
                .map(|v| v.to_string_lossy().into_owned())
                .collect();
            let default = match kind {
                ParamKind::Flag => Some("false".to_string()),
                ParamKind::NegatedFlag => Some("true".to_string()),
                ParamKind::Count => Some("0".to_string()),
                _ if defaults.is_empty() && arg.is_required_set() => None,
                // An optional value without a default: empty means "not given".
                _ if defaults.is_empty() => Some(String::new()),
                _ => Some(defaults.join(",")),
            };
            let choices = match kind {
                ParamKind::Flag | ParamKind::NegatedFlag => {
                    vec!["true".to_string(), "false".to_string()]
                }
                _ => arg
                    .get_possible_values()
                    .iter()
                    .filter(|v| !v.is_hide_set())
                    .map(|v| v.get_name().to_string())
                    .collect(),
            };
            let long = arg.get_long().map(str::to_string);
            Some(FlowParam {
                name: long
                    .clone()
                    .unwrap_or_else(|| arg.get_id().as_str().to_string()),
                long,
                kind,
                default,
                required: arg.is_required_set(),
                help: arg
                    .get_help()
                    .map(|h| h.to_string())
                    .filter(|h| !h.trim().is_empty()),
                choices,
            })
        })
        .collect()
}

/// The flow's command-line arguments for `NAME=VALUE`-style workflow values: `args` as `init`
/// receives them (`--name=value` per parameter, positional values as they are), with flags
/// given as `true`/`false` (or a count) turned into their presence, and empty values of
/// optional parameters left out. Anything else passes through for the flow's parser to judge.
pub fn to_flow_args(params: &[FlowParam], args: &[String]) -> Result<Vec<String>, String> {
    let mut out = Vec::with_capacity(args.len());
    for arg in args {
        let parsed = arg
            .strip_prefix("--")
            .and_then(|rest| rest.split_once('='))
            .and_then(|(long, value)| {
                params
                    .iter()
                    .find(|p| p.long.as_deref() == Some(long))
                    .map(|p| (p, long, value))
            });
        let Some((param, long, value)) = parsed else {
            out.push(arg.clone());
            continue;
        };
        let truth = || match value.trim() {
            "true" => Ok(true),
            "false" => Ok(false),
            other => Err(format!(
                "parameter `{}` is `true` or `false`, not `{other}`",
                param.name
            )),
        };
        match param.kind {
            ParamKind::Flag => {
                if truth()? {
                    out.push(format!("--{long}"));
                }
            }
            ParamKind::NegatedFlag => {
                if !truth()? {
                    out.push(format!("--{long}"));
                }
            }
            ParamKind::Count => {
                let n: usize = value
                    .trim()
                    .parse()
                    .map_err(|_| format!("parameter `{}` is a count, not `{value}`", param.name))?;
                out.extend(std::iter::repeat_n(format!("--{long}"), n));
            }
            ParamKind::Value | ParamKind::Positional => {
                if !(value.is_empty() && param.default.as_deref() == Some("")) {
                    out.push(arg.clone());
                }
            }
        }
    }
    Ok(out)
}

/// The manifest of flow `F`.
pub fn workflow<F: Flow>(options: &ArgoOptions) -> Result<Workflow, ArgoError> {
    build(F::GRAPH, &F::__params_command(Command::new("run")), options)
}

/// The manifest of the flow with graph `graph` and parameters `params` (a command holding the
/// flow's parameters, as `Flow::__params_command` makes it).
pub fn build(
    graph: &FlowGraph,
    params: &Command,
    options: &ArgoOptions,
) -> Result<Workflow, ArgoError> {
    check_options(options)?;
    let plan = Plan::new(graph)?;
    let params = flow_params(params);

    let mut templates = vec![plan.dag_template(Scope::Root)?];
    for split in plan.foreach_splits() {
        templates.push(plan.dag_template(Scope::Foreach(split))?);
    }
    for head in plan.loop_heads() {
        templates.push(plan.dag_template(Scope::Loop(head))?);
    }
    templates.push(init_template(options, &params));
    for s in plan.order.iter().copied() {
        templates.push(plan.step_template(s, options));
    }
    templates.push(finish_template(options));

    let flow_label = kebab(graph.name);
    let (name, generate_name) = match (&options.name, options.template) {
        (Some(name), _) => (Some(name.clone()), None),
        (None, true) => (Some(flow_label.clone()), None),
        (None, false) => (None, Some(format!("{flow_label}-"))),
    };
    let arguments = (!params.is_empty()).then(|| Arguments {
        parameters: params
            .iter()
            .map(|p| Parameter {
                name: p.name.clone(),
                value: p.default.clone(),
                description: p.help.clone(),
                allowed: p.choices.clone(),
                ..Parameter::default()
            })
            .collect(),
    });
    let volumes = match &options.volume_claim {
        Some(claim) => vec![Volume {
            name: DATASTORE_VOLUME.to_string(),
            persistent_volume_claim: Some(PersistentVolumeClaimSource {
                claim_name: claim.clone(),
            }),
        }],
        None => Vec::new(),
    };
    Ok(Workflow {
        api_version: API_VERSION.to_string(),
        kind: if options.template {
            "WorkflowTemplate"
        } else {
            "Workflow"
        }
        .to_string(),
        metadata: ObjectMeta {
            name,
            generate_name,
            namespace: options.namespace.clone(),
            labels: BTreeMap::from([("blooming-flowers/flow".to_string(), flow_label)]),
            annotations: BTreeMap::from([(
                "blooming-flowers/flow".to_string(),
                graph.name.to_string(),
            )]),
        },
        spec: WorkflowSpec {
            entrypoint: MAIN.to_string(),
            on_exit: Some(FINISH.to_string()),
            arguments,
            service_account_name: options.service_account.clone(),
            volumes,
            templates,
        },
    })
}

/// The root DAG template.
const MAIN: &str = "main";
/// The exit handler's template.
const FINISH: &str = "finish";
/// The template of the task that creates the run.
const INIT: &str = "init";
/// The volume holding the datastore, with `volume_claim`.
const DATASTORE_VOLUME: &str = "datastore";
/// The time a pod gets beyond its attempts' timeouts: starting, loading the inputs, storing the
/// outputs.
const DEADLINE_MARGIN: Duration = Duration::from_secs(300);

fn check_options(options: &ArgoOptions) -> Result<(), ArgoError> {
    let invalid = |m: String| Err(ArgoError::Invalid(m));
    if options.image.trim().is_empty() {
        return invalid("the image cannot be empty".into());
    }
    let datastore = &options.datastore;
    if datastore.is_empty() {
        return invalid("the datastore cannot be empty".into());
    }
    if datastore.contains("{{") {
        return invalid(format!(
            "the datastore `{datastore}` contains `{{{{`, which Argo would substitute"
        ));
    }
    let is_path = !datastore.contains("://");
    if is_path && !datastore.starts_with('/') {
        return invalid(format!(
            "the datastore `{datastore}` is a relative path; every container needs the same \
             absolute one (a volume mounted in every pod) or an object store's URL"
        ));
    }
    if options.volume_claim.is_some() && !is_path {
        return invalid(format!(
            "a volume claim is mounted at the datastore's path, but `{datastore}` is not a path"
        ));
    }
    if let Some(name) = &options.name
        && !is_dns_label(name)
    {
        return invalid(format!(
            "`{name}` cannot name a workflow: use at most 63 lowercase letters, digits and `-`, \
             starting and ending with a letter or digit"
        ));
    }
    if let Some(namespace) = &options.namespace
        && !is_dns_label(namespace)
    {
        return invalid(format!("`{namespace}` is not a valid namespace"));
    }
    let named = [
        ("service account", options.service_account.as_ref()),
        ("volume claim", options.volume_claim.as_ref()),
    ];
    let secrets = options.env_secrets.iter().map(|s| ("secret", Some(s)));
    for (what, value) in named.into_iter().chain(secrets) {
        if let Some(value) = value
            && !(value.len() <= 253 && value.split('.').all(is_dns_label))
        {
            return invalid(format!("`{value}` is not a valid {what} name"));
        }
    }
    Ok(())
}

fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// `BigField` → `big-field`: a name Kubernetes accepts.
fn kebab(name: &str) -> String {
    let mut out = String::new();
    let mut previous_lower = false;
    for c in name.chars() {
        if c.is_ascii_uppercase() {
            if previous_lower {
                out.push('-');
            }
            out.push(c.to_ascii_lowercase());
            previous_lower = false;
        } else if c.is_ascii_alphanumeric() {
            out.push(c);
            previous_lower = true;
        } else if (c == '_' || c == '-') && !out.ends_with('-') {
            out.push('-');
            previous_lower = false;
        }
    }
    let out = out.trim_matches('-').chars().take(50).collect::<String>();
    let out = out.trim_end_matches('-').to_string();
    if out.is_empty() {
        "flow".to_string()
    } else {
        out
    }
}

/// A step name as Argo names tasks and templates (letters, digits and `-`): `_` becomes `-`,
/// which no Rust name has, so distinct steps keep distinct names.
fn argo_name(step: &str) -> String {
    let mut name: String = step
        .chars()
        .map(|c| {
            if c == '_' {
                '-'
            } else {
                c.to_ascii_lowercase()
            }
        })
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
        .collect();
    if !name.starts_with(|c: char| c.is_ascii_alphanumeric()) {
        name.insert(0, 's');
    }
    name
}

fn param(name: &str, value: impl Into<String>) -> Parameter {
    Parameter {
        name: name.to_string(),
        value: Some(value.into()),
        ..Parameter::default()
    }
}

fn input(name: &str) -> Parameter {
    Parameter {
        name: name.to_string(),
        ..Parameter::default()
    }
}

fn output(name: &str, file: &str) -> Parameter {
    Parameter {
        name: name.to_string(),
        value_from: Some(ValueFrom {
            path: Some(format!("{OUTPUTS_DIR}/{file}")),
            default: None,
        }),
        ..Parameter::default()
    }
}

/// A container running the flow binary with `args` after `--datastore LOC`.
fn container(options: &ArgoOptions, args: Vec<String>) -> Container {
    let mut all = crate::executor::StepInvocation::datastore_args(options.datastore.as_str());
    all.extend(args);
    Container {
        image: options.image.clone(),
        command: options.binary.iter().cloned().collect(),
        args: all,
        volume_mounts: match options.volume_claim {
            Some(_) => vec![VolumeMount {
                name: DATASTORE_VOLUME.to_string(),
                mount_path: options.datastore.clone(),
            }],
            None => Vec::new(),
        },
        env_from: options
            .env_secrets
            .iter()
            .map(|name| EnvFromSource {
                secret_ref: Some(SecretEnvSource { name: name.clone() }),
            })
            .collect(),
        resources: None,
    }
}

/// `init`: creates the run record with the workflow's parameters, exports the run id.
fn init_template(options: &ArgoOptions, params: &[FlowParam]) -> Template {
    let mut args = vec![
        "init".to_string(),
        crate::executor::step_invocation::long(crate::executor::step_invocation::ARGO_OUTPUTS_FLAG),
        OUTPUTS_DIR.to_string(),
    ];
    for tag in &options.tags {
        args.push("--tag".to_string());
        args.push(tag.clone());
    }
    args.push("--".to_string());
    for p in params {
        let value = format!("{{{{workflow.parameters.{}}}}}", p.name);
        args.push(match &p.long {
            Some(long) => format!("--{long}={value}"),
            None => value,
        });
    }
    let mut run_id = output("run-id", RUN_ID_FILE);
    run_id.global_name = Some(GLOBAL_RUN_ID.to_string());
    if let Some(from) = &mut run_id.value_from {
        // Without a run, the exit handler must still resolve its argument (and says so).
        from.default = Some(String::new());
    }
    Template {
        name: INIT.to_string(),
        outputs: Some(Outputs {
            parameters: vec![run_id],
        }),
        container: Some(container(options, args)),
        ..Template::default()
    }
}

/// `finish`, the exit handler: records how the run ended.
fn finish_template(options: &ArgoOptions) -> Template {
    Template {
        name: FINISH.to_string(),
        container: Some(container(
            options,
            vec![
                "finish".to_string(),
                "--run-id".to_string(),
                format!("{{{{workflow.outputs.parameters.{GLOBAL_RUN_ID}}}}}"),
            ],
        )),
        ..Template::default()
    }
}

/// A DAG template: the root, a foreach's body (one per element), or a loop's pass, which calls
/// itself for the next pass (Argo's recursive templates).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scope {
    Root,
    /// The body of the foreach split at this step.
    Foreach(usize),
    /// A pass of the loop headed by this step.
    Loop(usize),
}

/// The task that runs a loop's next pass is named after the switch that goes back, with this.
const PASS_SUFFIX: &str = "next-pass";

/// The flow's graph, arranged for Argo: which DAG template each step is in, and names.
struct Plan<'g> {
    graph: &'g FlowGraph,
    /// The splits open at each step (every step is reachable).
    contexts: Vec<Vec<OpenSplit>>,
    /// The DAG templates each step runs inside, outermost first: its foreaches and loops.
    scopes: Vec<Vec<Scope>>,
    loops: Loops,
    /// Every step, predecessors first: the order the graph's renderings list them in.
    order: Vec<usize>,
    /// The name of the task running `init` in the root DAG.
    init_task: String,
}

impl<'g> Plan<'g> {
    fn new(graph: &'g FlowGraph) -> Result<Self, ArgoError> {
        let graph_error = |reason: String| ArgoError::Graph {
            flow: graph.name.to_string(),
            reason,
        };
        let contexts = open_splits(graph)
            .map_err(|e| graph_error(e.to_string()))?
            .into_iter()
            .enumerate()
            .map(|(s, c)| {
                c.ok_or_else(|| {
                    graph_error(format!(
                        "step `{}` cannot be reached from `start`",
                        graph.steps[s].name
                    ))
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let scopes = step_frames(graph)
            .map_err(|e| graph_error(e.to_string()))?
            .into_iter()
            .map(|frames| {
                frames
                    .unwrap_or_default()
                    .into_iter()
                    .filter_map(|f| match f {
                        StepFrame::Split(o) if o.foreach => Some(Scope::Foreach(o.split)),
                        StepFrame::Split(_) => None,
                        StepFrame::Loop { head } => Some(Scope::Loop(head)),
                    })
                    .collect()
            })
            .collect();
        let loops = Loops::of(graph);
        let order = graph.topological_order();
        let taken: HashSet<String> = graph.steps.iter().map(|s| argo_name(s.name)).collect();
        let init_task = ["init", "init-run", "blooming-init"]
            .into_iter()
            .find(|n| !taken.contains(*n))
            .unwrap_or("blooming-flowers-init")
            .to_string();
        Ok(Plan {
            graph,
            contexts,
            scopes,
            loops,
            order,
            init_task,
        })
    }

    fn step(&self, s: usize) -> &StepSpec {
        &self.graph.steps[s]
    }

    /// The DAG template that holds step `s`: the innermost foreach or loop it runs in.
    fn scope(&self, s: usize) -> Scope {
        self.scopes[s].last().copied().unwrap_or(Scope::Root)
    }

    /// The loop heads, in graph order.
    fn loop_heads(&self) -> Vec<usize> {
        self.order
            .iter()
            .copied()
            .filter(|&s| self.loops.headed_by(s).is_some())
            .collect()
    }

    /// The foreach splits, in graph order.
    fn foreach_splits(&self) -> Vec<usize> {
        self.order
            .iter()
            .copied()
            .filter(|&s| matches!(self.step(s).transition, Transition::Foreach { .. }))
            .collect()
    }

    fn body(&self, split: usize) -> usize {
        match self.step(split).transition {
            Transition::Foreach { body, .. } => body,
            _ => split,
        }
    }

    fn step_template_name(&self, s: usize) -> String {
        format!("step-{}", argo_name(self.step(s).name))
    }

    fn foreach_template_name(&self, split: usize) -> String {
        format!("foreach-{}", argo_name(self.step(split).name))
    }

    /// The task that stands for step `s` in the DAG of `scope`: its own, or the fan-out of the
    /// foreach or the first pass of the loop (directly inside `scope`) that holds it.
    fn task_in(&self, s: usize, scope: Scope) -> String {
        match self.inner_scope(s, scope) {
            None => argo_name(self.step(s).name),
            // A foreach's fan-out task is named after its body, a loop's after its head: each
            // runs inside it only.
            Some(Scope::Foreach(split)) => argo_name(self.step(self.body(split)).name),
            Some(Scope::Loop(head)) => argo_name(self.step(head).name),
            Some(Scope::Root) => argo_name(self.step(s).name),
        }
    }

    /// The scope directly inside `scope` that holds step `s`; `None` when `s` is in `scope`
    /// itself.
    fn inner_scope(&self, s: usize, scope: Scope) -> Option<Scope> {
        if self.scope(s) == scope {
            return None;
        }
        let chain = &self.scopes[s];
        match scope {
            Scope::Root => chain.first().copied(),
            _ => chain
                .iter()
                .position(|&c| c == scope)
                .and_then(|i| chain.get(i + 1).copied()),
        }
    }

    fn template_name(&self, scope: Scope) -> String {
        match scope {
            Scope::Root => MAIN.to_string(),
            Scope::Foreach(split) => self.foreach_template_name(split),
            Scope::Loop(head) => format!("loop-{}", argo_name(self.step(head).name)),
        }
    }

    /// The DAG template of the root, of a foreach's body or of a loop's pass.
    fn dag_template(&self, scope: Scope) -> Result<Template, ArgoError> {
        let (run_id, task_id) = match scope {
            Scope::Root => (
                format!("{{{{tasks.{}.outputs.parameters.run-id}}}}", self.init_task),
                "0".to_string(),
            ),
            _ => (
                "{{inputs.parameters.run-id}}".to_string(),
                "{{inputs.parameters.task-id}}".to_string(),
            ),
        };
        // The first pass of a loop inside this DAG: its task id is this one's with a pass 0.
        let first_pass = match scope {
            Scope::Root => "i0".to_string(),
            _ => format!("{task_id}-i0"),
        };
        let mut tasks = Vec::new();
        if scope == Scope::Root {
            tasks.push(DagTask {
                name: self.init_task.clone(),
                template: INIT.to_string(),
                ..DagTask::default()
            });
        }
        for s in self.order.iter().copied() {
            if self.scope(s) != scope {
                // A loop directly inside this DAG starts where its head is.
                if self.loops.headed_by(s).is_some()
                    && self.inner_scope(s, scope) == Some(Scope::Loop(s))
                {
                    let (depends, when) = self.conditions(s, scope)?;
                    tasks.push(DagTask {
                        name: argo_name(self.step(s).name),
                        template: self.template_name(Scope::Loop(s)),
                        arguments: Some(Arguments {
                            parameters: vec![
                                param("run-id", &run_id),
                                param("task-id", &first_pass),
                            ],
                        }),
                        depends,
                        when,
                        with_param: None,
                    });
                }
                continue;
            }
            let (depends, when) = self.conditions(s, scope)?;
            tasks.push(DagTask {
                name: argo_name(self.step(s).name),
                template: self.step_template_name(s),
                arguments: Some(Arguments {
                    parameters: vec![param("run-id", &run_id), param("task-id", &task_id)],
                }),
                depends,
                when,
                with_param: None,
            });
            if let Transition::Foreach { body, .. } = self.step(s).transition {
                let split = argo_name(self.step(s).name);
                tasks.push(DagTask {
                    name: argo_name(self.step(body).name),
                    template: self.foreach_template_name(s),
                    arguments: Some(Arguments {
                        parameters: vec![param("run-id", &run_id), param("task-id", "{{item}}")],
                    }),
                    depends: Some(format!("{split}.Succeeded")),
                    when: None,
                    with_param: Some(format!("{{{{tasks.{split}.outputs.parameters.foreach}}}}")),
                });
            }
        }
        if let Scope::Loop(head) = scope {
            // The next pass: this template again, when a switch goes back to the head.
            for switch in self.loops.back_arms_to(head) {
                let task = argo_name(self.step(switch).name);
                tasks.push(DagTask {
                    name: format!("{task}-{}", PASS_SUFFIX),
                    template: self.template_name(scope),
                    arguments: Some(Arguments {
                        parameters: vec![
                            param("run-id", &run_id),
                            param(
                                "task-id",
                                format!("{{{{tasks.{task}.outputs.parameters.next-task-id}}}}"),
                            ),
                        ],
                    }),
                    depends: Some(format!("{task}.Succeeded")),
                    when: Some(format!(
                        "'{{{{tasks.{task}.outputs.parameters.switch}}}}' == '{}'",
                        self.step(head).name
                    )),
                    with_param: None,
                });
            }
        }
        let mut seen = HashSet::new();
        if let Some(task) = tasks.iter().find(|t| !seen.insert(t.name.clone())) {
            return Err(ArgoError::Unsupported {
                step: task.name.clone(),
                reason: format!(
                    "two tasks of one DAG would be named `{}`; rename one of the steps",
                    task.name
                ),
            });
        }
        Ok(Template {
            name: self.template_name(scope),
            inputs: (scope != Scope::Root).then(|| Inputs {
                parameters: vec![input("run-id"), input("task-id")],
            }),
            dag: Some(DagTemplate { tasks }),
            ..Template::default()
        })
    }

    /// When the task of step `s` runs, in the DAG of `scope`: its `depends` and its `when`.
    ///
    /// Every dependency is on `Succeeded`, so that a skipped switch arm leaves out everything
    /// after it (Argo marks those tasks Omitted) instead of letting it run.
    fn conditions(
        &self,
        s: usize,
        scope: Scope,
    ) -> Result<(Option<String>, Option<String>), ArgoError> {
        let graph = self.graph;
        let step = self.step(s);
        let unsupported = |reason: String| ArgoError::Unsupported {
            step: step.name.to_string(),
            reason,
        };
        let any = |names: Vec<String>| -> String {
            let mut seen = HashSet::new();
            let mut names: Vec<String> = names
                .into_iter()
                .filter(|n| seen.insert(n.clone()))
                .map(|n| format!("{n}.Succeeded"))
                .collect();
            if names.len() == 1 {
                names.remove(0)
            } else {
                format!("({})", names.join(" || "))
            }
        };
        if s == graph.start {
            return Ok((Some(format!("{}.Succeeded", self.init_task)), None));
        }
        match scope {
            // The first step of a foreach body: its split ran before the fan-out started.
            Scope::Foreach(split) if self.body(split) == s => return Ok((None, None)),
            // The head of a loop: what comes before the pass started it.
            Scope::Loop(head) if head == s => return Ok((None, None)),
            _ => {}
        }
        // A loop's back arms start the next pass, not a task of this one.
        let predecessors: Vec<usize> = graph
            .predecessors(s)
            .into_iter()
            .filter(|&p| !self.loops.is_back_arm(p, s))
            .collect();
        // Leaving a loop: the loop's task stands for its switches, whose choice is made in
        // whichever pass was the last. That the loop succeeded says the way out was taken when
        // it has one way out only, which is all the manifest supports.
        let exits: Vec<usize> = predecessors
            .iter()
            .copied()
            .filter(|&p| matches!(self.inner_scope(p, scope), Some(Scope::Loop(_))))
            .collect();
        if let Some(&exit) = exits.first() {
            let Some(Scope::Loop(head)) = self.inner_scope(exit, scope) else {
                return Err(unsupported("it follows a loop".into()));
            };
            let alone = predecessors
                .iter()
                .all(|&p| self.inner_scope(p, scope) == Some(Scope::Loop(head)));
            let ways_out: HashSet<usize> = (0..graph.steps.len())
                .filter(|&p| self.loops.head_contains(head, p))
                .flat_map(|p| graph.steps[p].transition.targets().collect::<Vec<_>>())
                .filter(|&t| !self.loops.head_contains(head, t))
                .collect();
            if !alone || ways_out.len() != 1 || step.join.is_some() {
                return Err(unsupported(format!(
                    "it is one of several ways out of the loop at `{}`; argo-workflow writes loops                      with one way out: send every arm that leaves the loop to one step",
                    graph.steps[head].name
                )));
            }
            return Ok((
                Some(format!("{}.Succeeded", argo_name(self.step(head).name))),
                None,
            ));
        }
        if let Some(split) = step.join {
            return match graph.steps[split].transition {
                Transition::Foreach { .. } => {
                    let fanout = argo_name(self.step(self.body(split)).name);
                    // An empty foreach leaves its fan-out Skipped; the join still runs.
                    Ok((
                        Some(format!("({fanout}.Succeeded || {fanout}.Skipped)")),
                        None,
                    ))
                }
                Transition::Branch(targets) => {
                    let branches: Vec<String> = (0..targets.len())
                        .map(|branch| {
                            let top = OpenSplit {
                                split,
                                branch,
                                foreach: false,
                            };
                            any(predecessors
                                .iter()
                                .filter(|&&p| self.contexts[p].last() == Some(&top))
                                .map(|&p| self.task_in(p, scope))
                                .collect())
                        })
                        .collect();
                    Ok((Some(branches.join(" && ")), None))
                }
                _ => Err(unsupported("it joins a step that does not split".into())),
            };
        }
        let switches: Vec<usize> = predecessors
            .iter()
            .copied()
            .filter(|&p| matches!(graph.steps[p].transition, Transition::Switch(_)))
            .collect();
        let depends = Some(any(predecessors
            .iter()
            .map(|&p| self.task_in(p, scope))
            .collect()));
        let chose = |switch: usize, targets: &[usize]| -> String {
            let task = argo_name(self.step(switch).name);
            targets
                .iter()
                .map(|&t| {
                    format!(
                        "'{{{{tasks.{task}.outputs.parameters.switch}}}}' == '{}'",
                        self.step(t).name
                    )
                })
                .collect::<Vec<_>>()
                .join(" || ")
        };
        match switches.as_slice() {
            [] => Ok((depends, None)),
            [switch] => {
                // The other ways in must come from another arm of the same switch through
                // plain steps only; then "which arm the switch chose" says whether this runs.
                let mut arms = vec![s];
                for &p in predecessors.iter().filter(|&&p| p != *switch) {
                    let arm = self.arm_leading_to(p, *switch).ok_or_else(|| {
                        unsupported(format!(
                            "it is an arm of the switch `{}` and also follows `{}`, which does \
                             not come straight from another arm of that switch; put a step \
                             between the switch and `{}`",
                            graph.steps[*switch].name, graph.steps[p].name, step.name
                        ))
                    })?;
                    arms.push(arm);
                }
                Ok((depends, Some(chose(*switch, &arms))))
            }
            _ => Err(unsupported(
                "it is an arm of more than one switch; put a step between the switches and it"
                    .into(),
            )),
        }
    }

    /// The arm of `switch` from which step `p` is reached through steps with one successor and
    /// one predecessor each, if it is.
    fn arm_leading_to(&self, p: usize, switch: usize) -> Option<usize> {
        let graph = self.graph;
        let arms: Vec<usize> = graph.steps[switch].transition.targets().collect();
        let mut current = p;
        for _ in 0..graph.steps.len() {
            let step = self.step(current);
            if step.join.is_some() || !matches!(step.transition, Transition::Linear(_)) {
                return None;
            }
            let predecessors = graph.predecessors(current);
            match predecessors.as_slice() {
                [only] if *only == switch && arms.contains(&current) => return Some(current),
                [only] if *only != switch => current = *only,
                _ => return None,
            }
        }
        None
    }

    /// The container template of step `s`.
    fn step_template(&self, s: usize, options: &ArgoOptions) -> Template {
        let step = self.step(s);
        let mut outputs = match step.transition {
            Transition::Foreach { .. } => vec![output("foreach", FOREACH_FILE)],
            Transition::Switch(_) => vec![output("switch", SWITCH_FILE)],
            _ => Vec::new(),
        };
        if step
            .transition
            .targets()
            .any(|t| self.loops.is_back_arm(s, t))
        {
            // The task id of the next pass, for the recursive call.
            outputs.push(output("next-task-id", NEXT_TASK_FILE));
        }
        let outputs = (!outputs.is_empty()).then_some(outputs);
        let invocation = crate::executor::StepInvocation {
            argo_outputs: outputs.as_ref().map(|_| OUTPUTS_DIR.into()),
            ..crate::executor::StepInvocation::new(
                step.name,
                "{{inputs.parameters.run-id}}",
                "{{inputs.parameters.task-id}}",
            )
        };
        let args = invocation.to_args();
        let retries = step.options.retries;
        Template {
            name: self.step_template_name(s),
            inputs: Some(Inputs {
                parameters: vec![input("run-id"), input("task-id")],
            }),
            outputs: outputs.map(|parameters| Outputs { parameters }),
            container: Some(Container {
                resources: super::resources::requirements(&step.options.resources),
                ..container(options, args)
            }),
            dag: None,
            // Failures of the step's code are retried inside the container, with the attempt
            // records a local run keeps; Argo retries pods that die of something else.
            retry_strategy: (retries > 0).then(|| RetryStrategy {
                limit: retries.to_string(),
                retry_policy: Some("OnError".to_string()),
            }),
            active_deadline_seconds: step
                .options
                .timeout
                .map(|t| deadline(t, retries).to_string()),
        }
    }
}

/// The pod deadline of a step with `retries` retries of `timeout` each: every attempt's
/// timeout plus [`DEADLINE_MARGIN`], in whole seconds.
fn deadline(timeout: Duration, retries: u32) -> u64 {
    let per_attempt = timeout.as_secs() + u64::from(timeout.subsec_nanos() > 0);
    per_attempt
        .max(1)
        .saturating_mul(u64::from(retries) + 1)
        .saturating_add(DEADLINE_MARGIN.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_what_kubernetes_accepts() {
        assert_eq!(kebab("Squares"), "squares");
        assert_eq!(kebab("BigField"), "big-field");
        assert_eq!(kebab("train_burn_2"), "train-burn-2");
        assert_eq!(kebab("_"), "flow");
        assert_eq!(argo_name("gather_all"), "gather-all");
        assert_eq!(argo_name("_private"), "s-private");
        assert!(is_dns_label("squares-nightly"));
        assert!(!is_dns_label("Squares"));
        assert!(!is_dns_label("-a"));
    }

    #[test]
    fn a_step_reached_from_two_switches_is_refused() {
        use crate::graph::{StepOptions, SwitchArm};
        const fn step(name: &'static str, transition: Transition) -> StepSpec {
            StepSpec {
                name,
                doc: "",
                transition,
                join: None,
                options: StepOptions {
                    retries: 0,
                    timeout: None,
                    catch: None,
                    max_iterations: None,
                    resources: crate::graph::Resources::NONE,
                },
            }
        }
        const fn arm(target: usize) -> SwitchArm {
            SwitchArm {
                pattern: "_",
                target,
            }
        }
        // start chooses a or b; a chooses t or end; b goes to t: whether t runs depends on
        // two switches, which one `when` cannot say.
        const STEPS: &[StepSpec] = &[
            step("start", Transition::Switch(&[arm(1), arm(2)])),
            step("a", Transition::Switch(&[arm(3), arm(4)])),
            step("b", Transition::Linear(3)),
            step("t", Transition::Linear(4)),
            step("end", Transition::End),
        ];
        let graph = FlowGraph {
            name: "Two",
            doc: "",
            steps: STEPS,
            start: 0,
            end: 4,
        };
        let options = ArgoOptions {
            image: "img".into(),
            datastore: "/data".into(),
            ..ArgoOptions::default()
        };
        let error = build(&graph, &Command::new("run"), &options).expect_err("unsupported");
        assert!(
            matches!(&error, ArgoError::Unsupported { step, .. } if step == "t"),
            "{error}"
        );
        let relative = ArgoOptions {
            datastore: "data".into(),
            ..options
        };
        assert!(matches!(
            build(&graph, &Command::new("run"), &relative),
            Err(ArgoError::Invalid(_))
        ));
    }

    #[test]
    fn a_step_two_arms_of_a_switch_lead_to_gets_its_task() {
        let graph = crate::graph::test_graphs::TWO_ARMS_TO_ONE_STEP;
        let options = ArgoOptions {
            image: "img".into(),
            datastore: "/data".into(),
            ..ArgoOptions::default()
        };
        let workflow = build(&graph, &Command::new("run"), &options).expect("a manifest");
        let templates: Vec<&str> = workflow
            .spec
            .templates
            .iter()
            .map(|t| t.name.as_str())
            .collect();
        assert_eq!(
            templates,
            [
                "main",
                "init",
                "step-start",
                "step-fast",
                "step-slow",
                "step-end",
                "finish"
            ]
        );
        let main = workflow.spec.templates[0].dag.as_ref().expect("a DAG");
        let tasks: Vec<&str> = main.tasks.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(tasks, ["init", "start", "fast", "slow", "end"]);
    }

    #[test]
    fn deadlines_cover_every_attempt() {
        assert_eq!(deadline(Duration::from_secs(30), 0), 330);
        assert_eq!(deadline(Duration::from_millis(1500), 2), 306);
        assert_eq!(deadline(Duration::from_millis(1), 0), 301);
    }

    #[test]
    fn flags_become_true_false_values_and_back() {
        let command = Command::new("run")
            .arg(
                clap::Arg::new("lr")
                    .long("lr")
                    .default_value("0.1")
                    .help("Rate."),
            )
            .arg(
                clap::Arg::new("fast")
                    .long("fast")
                    .action(ArgAction::SetTrue),
            )
            .arg(clap::Arg::new("name").long("name"))
            .arg(
                clap::Arg::new("mode")
                    .long("mode")
                    .required(true)
                    .value_parser(["a", "b"]),
            )
            .arg(clap::Arg::new("v").long("verbose").action(ArgAction::Count));
        let params = flow_params(&command);
        let by_name = |n: &str| params.iter().find(|p| p.name == n).expect("a parameter");
        assert_eq!(by_name("lr").default.as_deref(), Some("0.1"));
        assert_eq!(by_name("lr").help.as_deref(), Some("Rate."));
        assert_eq!(by_name("fast").kind, ParamKind::Flag);
        assert_eq!(by_name("fast").default.as_deref(), Some("false"));
        assert_eq!(by_name("name").default.as_deref(), Some(""));
        assert_eq!(by_name("mode").default, None);
        assert_eq!(by_name("mode").choices, vec!["a", "b"]);
        assert_eq!(by_name("verbose").kind, ParamKind::Count);

        let args: Vec<String> = [
            "--lr=0.5",
            "--fast=true",
            "--name=",
            "--mode=b",
            "--verbose=2",
        ]
        .iter()
        .map(|a| a.to_string())
        .collect();
        assert_eq!(
            to_flow_args(&params, &args).expect("valid values"),
            vec!["--lr=0.5", "--fast", "--mode=b", "--verbose", "--verbose"]
        );
        let off = to_flow_args(&params, &["--fast=false".to_string()]).expect("valid");
        assert!(off.is_empty());
        let error = to_flow_args(&params, &["--fast=yes".to_string()]).expect_err("not a bool");
        assert!(error.contains("`true` or `false`"), "{error}");
    }
}
