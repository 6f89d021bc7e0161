//! A local interpreter of the subset of Argo Workflows the generated manifests use: DAG and
//! container templates, `depends` (task results combined with `&&`, `||`, `!`), `when`
//! (string comparisons), `withParam`, input and output parameters (`valueFrom.path`, with
//! `globalName`), workflow parameters and `onExit`.
//!
//! Tasks run one at a time in an order their dependencies allow, each container as a local
//! process; Argo would run independent tasks in parallel, which the datastore makes no
//! different. Where Argo would refuse a manifest or fail a node (an unresolved `{{…}}`, a
//! reference to a task that is not an ancestor, a missing input, an unknown field this
//! interpreter relies on), the interpreter reports an error instead of guessing.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde_json::Value;

/// How a node ended, as Argo names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Succeeded,
    Failed,
    /// Its `when` was false, or its `withParam` list empty.
    Skipped,
    /// Its `depends` was false.
    Omitted,
}

impl Phase {
    fn as_str(self) -> &'static str {
        match self {
            Phase::Succeeded => "Succeeded",
            Phase::Failed => "Failed",
            Phase::Skipped => "Skipped",
            Phase::Omitted => "Omitted",
        }
    }
}

/// What a container run returned.
pub struct Exit {
    pub success: bool,
    pub stderr: String,
}

/// Runs one container's command line (program first) as a local process.
pub type Runner<'a> = dyn Fn(&[String]) -> Result<Exit, String> + 'a;

/// How a workflow went.
pub struct Outcome {
    /// The entrypoint's phase.
    pub phase: Phase,
    /// The exit handler's phase, if there is one.
    pub exit_handler: Option<Phase>,
    /// `workflow.outputs.parameters.*` and the other workflow variables.
    pub globals: BTreeMap<String, String>,
    /// Every container's command line, in the order they ran.
    pub containers: Vec<Vec<String>>,
    /// What failed containers printed on stderr.
    pub failures: Vec<String>,
}

/// Runs a Workflow (or a WorkflowTemplate as `argo submit --from` would) with the workflow
/// parameters `overrides` (`-p name=value`), containers through `runner`, output files under
/// `scratch`.
pub fn run(
    manifest: &Value,
    overrides: &[(&str, &str)],
    runner: &Runner<'_>,
    scratch: &Path,
) -> Result<Outcome, String> {
    let kind = manifest["kind"].as_str().unwrap_or_default();
    if manifest["apiVersion"] != "argoproj.io/v1alpha1"
        || !matches!(kind, "Workflow" | "WorkflowTemplate")
    {
        return Err(format!("not an Argo workflow: kind `{kind}`"));
    }
    let spec = &manifest["spec"];
    let mut templates = BTreeMap::new();
    for t in array(&spec["templates"], "spec.templates")? {
        let name = string(&t["name"], "a template's name")?;
        if templates.insert(name.clone(), t.clone()).is_some() {
            return Err(format!("two templates are named `{name}`"));
        }
    }
    let mut globals = BTreeMap::new();
    let declared = optional_array(&spec["arguments"]["parameters"])?;
    for (name, _) in overrides {
        if !declared.iter().any(|p| p["name"] == *name) {
            return Err(format!("the workflow has no parameter `{name}`"));
        }
    }
    for p in &declared {
        let name = string(&p["name"], "a workflow parameter's name")?;
        let value = match overrides.iter().find(|(n, _)| *n == name) {
            Some((_, v)) => v.to_string(),
            None => p["value"]
                .as_str()
                .ok_or_else(|| format!("workflow parameter `{name}` has no value"))?
                .to_string(),
        };
        let allowed = optional_array(&p["enum"])?;
        if !allowed.is_empty() && !allowed.iter().any(|a| a == &Value::from(value.clone())) {
            return Err(format!("`{value}` is not one of the values of `{name}`"));
        }
        globals.insert(format!("workflow.parameters.{name}"), value);
    }
    let mut machine = Machine {
        templates,
        globals,
        runner,
        scratch: scratch.to_path_buf(),
        containers: Vec::new(),
        failures: Vec::new(),
    };
    let entrypoint = string(&spec["entrypoint"], "spec.entrypoint")?;
    let (phase, _) = machine.template(&entrypoint, &BTreeMap::new())?;
    machine
        .globals
        .insert("workflow.status".into(), phase.as_str().into());
    let exit_handler = match spec["onExit"].as_str() {
        Some(name) => Some(machine.template(name, &BTreeMap::new())?.0),
        None => None,
    };
    Ok(Outcome {
        phase,
        exit_handler,
        globals: machine.globals,
        containers: machine.containers,
        failures: machine.failures,
    })
}

struct Machine<'a, 'r> {
    templates: BTreeMap<String, Value>,
    globals: BTreeMap<String, String>,
    runner: &'a Runner<'r>,
    scratch: PathBuf,
    containers: Vec<Vec<String>>,
    failures: Vec<String>,
}

type Outputs = BTreeMap<String, String>;

impl Machine<'_, '_> {
    /// Runs template `name` with arguments `args`.
    fn template(&mut self, name: &str, args: &Outputs) -> Result<(Phase, Outputs), String> {
        let t = self
            .templates
            .get(name)
            .cloned()
            .ok_or_else(|| format!("no template `{name}`"))?;
        known_fields(
            &t,
            &[
                "name",
                "inputs",
                "outputs",
                "container",
                "dag",
                "retryStrategy",
                "activeDeadlineSeconds",
            ],
            &format!("template {name}"),
        )?;
        let mut inputs = BTreeMap::new();
        for p in optional_array(&t["inputs"]["parameters"])? {
            let input = string(&p["name"], "an input's name")?;
            let value = args
                .get(&input)
                .cloned()
                .or_else(|| p["default"].as_str().map(str::to_string))
                .or_else(|| p["value"].as_str().map(str::to_string))
                .ok_or_else(|| format!("template `{name}` gets no value for input `{input}`"))?;
            inputs.insert(input, value);
        }
        if let Some(extra) = args.keys().find(|k| !inputs.contains_key(*k)) {
            return Err(format!("template `{name}` has no input `{extra}`"));
        }
        if t.get("dag").is_some() {
            self.dag(name, &t, &inputs)
        } else if t.get("container").is_some() {
            self.container(name, &t, &inputs)
        } else {
            Err(format!(
                "template `{name}` is neither a DAG nor a container"
            ))
        }
    }

    /// Variables every template sees, and its inputs.
    fn scope(&self, inputs: &Outputs) -> Outputs {
        let mut vars = self.globals.clone();
        for (k, v) in inputs {
            vars.insert(format!("inputs.parameters.{k}"), v.clone());
        }
        vars
    }

    fn container(
        &mut self,
        name: &str,
        t: &Value,
        inputs: &Outputs,
    ) -> Result<(Phase, Outputs), String> {
        let c = &t["container"];
        known_fields(
            c,
            &["image", "command", "args", "volumeMounts"],
            &format!("the container of {name}"),
        )?;
        if string(&c["image"], "a container's image")?.is_empty() {
            return Err(format!("template `{name}` has an empty image"));
        }
        let vars = self.scope(inputs);
        // Each container has its own file system: the directories its output parameters are
        // read from become a fresh local directory.
        let local = self.scratch.join(format!("node-{}", self.containers.len()));
        std::fs::create_dir_all(&local).map_err(|e| e.to_string())?;
        let outputs = optional_array(&t["outputs"]["parameters"])?;
        let mut dirs: BTreeSet<String> = BTreeSet::new();
        for p in &outputs {
            let path = string(&p["valueFrom"]["path"], "an output's valueFrom.path")?;
            let dir = Path::new(&path)
                .parent()
                .map(|d| d.to_string_lossy().into_owned())
                .ok_or_else(|| format!("output path `{path}` has no directory"))?;
            dirs.insert(dir);
        }
        let relocate = |arg: String| -> String {
            for dir in &dirs {
                if arg == *dir {
                    return local.to_string_lossy().into_owned();
                }
                if let Some(rest) = arg.strip_prefix(&format!("{dir}/")) {
                    return local.join(rest).to_string_lossy().into_owned();
                }
            }
            arg
        };
        let mut argv: Vec<String> = Vec::new();
        for part in optional_array(&c["command"])?
            .iter()
            .chain(optional_array(&c["args"])?.iter())
        {
            let text = string(part, "a command-line argument")?;
            argv.push(relocate(substitute(&text, &vars)?));
        }
        if argv.is_empty() {
            return Err(format!(
                "template `{name}` has no command: the interpreter needs `command` (--binary)"
            ));
        }
        self.containers.push(argv.clone());
        let exit = (self.runner)(&argv)?;
        if !exit.success {
            self.failures
                .push(format!("{} failed:\n{}", argv.join(" "), exit.stderr));
            return Ok((Phase::Failed, Outputs::new()));
        }
        let mut values = Outputs::new();
        for p in &outputs {
            let output = string(&p["name"], "an output's name")?;
            let path = string(&p["valueFrom"]["path"], "an output's valueFrom.path")?;
            let value = match std::fs::read_to_string(relocate(path.clone())) {
                Ok(v) => v,
                Err(e) => p["valueFrom"]["default"]
                    .as_str()
                    .map(str::to_string)
                    .ok_or_else(|| format!("template `{name}` left no output `{path}`: {e}"))?,
            };
            if let Some(global) = p["globalName"].as_str() {
                self.globals.insert(
                    format!("workflow.outputs.parameters.{global}"),
                    value.clone(),
                );
            }
            values.insert(output, value);
        }
        Ok((Phase::Succeeded, values))
    }

    fn dag(&mut self, name: &str, t: &Value, inputs: &Outputs) -> Result<(Phase, Outputs), String> {
        let tasks = array(&t["dag"]["tasks"], "dag.tasks")?;
        let mut names = Vec::new();
        for task in &tasks {
            known_fields(
                task,
                &[
                    "name",
                    "template",
                    "arguments",
                    "depends",
                    "when",
                    "withParam",
                ],
                &format!("a task of {name}"),
            )?;
            let n = string(&task["name"], "a task's name")?;
            if names.contains(&n) {
                return Err(format!("two tasks of `{name}` are named `{n}`"));
            }
            names.push(n);
        }
        let mut parents: Vec<Vec<String>> = Vec::new();
        for task in &tasks {
            let deps = match task["depends"].as_str() {
                Some(expr) => Expr::parse(expr)?.names(),
                None => Vec::new(),
            };
            if let Some(unknown) = deps.iter().find(|d| !names.contains(d)) {
                return Err(format!("`{unknown}` in a `depends` of `{name}` is no task"));
            }
            parents.push(deps);
        }
        let ancestors = |i: usize| -> BTreeSet<String> {
            let mut seen = BTreeSet::new();
            let mut stack = parents[i].clone();
            while let Some(n) = stack.pop() {
                if seen.insert(n.clone())
                    && let Some(j) = names.iter().position(|m| *m == n)
                {
                    stack.extend(parents[j].iter().cloned());
                }
            }
            seen
        };
        let mut results: BTreeMap<String, (Phase, Outputs)> = BTreeMap::new();
        let mut failed = false;
        while results.len() < tasks.len() && !failed {
            let Some(i) = (0..tasks.len()).find(|&i| {
                !results.contains_key(&names[i])
                    && parents[i].iter().all(|p| results.contains_key(p))
            }) else {
                return Err(format!(
                    "the tasks of `{name}` depend on each other in a cycle"
                ));
            };
            let task = &tasks[i];
            let phases: BTreeMap<String, Phase> =
                results.iter().map(|(k, (p, _))| (k.clone(), *p)).collect();
            let run = match task["depends"].as_str() {
                Some(expr) => Expr::parse(expr)?.eval(&phases)?,
                None => true,
            };
            let result = if !run {
                (Phase::Omitted, Outputs::new())
            } else {
                let mut vars = self.scope(inputs);
                for a in ancestors(i) {
                    if let Some((_, outputs)) = results.get(&a) {
                        for (k, v) in outputs {
                            vars.insert(format!("tasks.{a}.outputs.parameters.{k}"), v.clone());
                        }
                    }
                }
                self.task(task, &vars)?
            };
            failed = result.0 == Phase::Failed;
            results.insert(names[i].clone(), result);
        }
        // Argo stops scheduling new tasks once one failed (failFast).
        let phase = if failed {
            Phase::Failed
        } else {
            Phase::Succeeded
        };
        Ok((phase, Outputs::new()))
    }

    /// Runs one DAG task whose `depends` held.
    fn task(&mut self, task: &Value, vars: &Outputs) -> Result<(Phase, Outputs), String> {
        if let Some(when) = task["when"].as_str()
            && !when_holds(&substitute(when, vars)?)?
        {
            return Ok((Phase::Skipped, Outputs::new()));
        }
        let template = string(&task["template"], "a task's template")?;
        let arguments = optional_array(&task["arguments"]["parameters"])?;
        let args_with = |vars: &Outputs| -> Result<Outputs, String> {
            let mut args = Outputs::new();
            for p in &arguments {
                let value = string(&p["value"], "an argument's value")?;
                args.insert(
                    string(&p["name"], "an argument's name")?,
                    substitute(&value, vars)?,
                );
            }
            Ok(args)
        };
        let Some(param) = task["withParam"].as_str() else {
            return self.template(&template, &args_with(vars)?);
        };
        let list = substitute(param, vars)?;
        let items: Vec<Value> = serde_json::from_str(&list)
            .map_err(|e| format!("withParam `{list}` is not a JSON list: {e}"))?;
        if items.is_empty() {
            return Ok((Phase::Skipped, Outputs::new()));
        }
        let mut phase = Phase::Succeeded;
        for item in items {
            let mut vars = vars.clone();
            vars.insert(
                "item".into(),
                match item {
                    Value::String(s) => s,
                    other => other.to_string(),
                },
            );
            if self.template(&template, &args_with(&vars)?)?.0 == Phase::Failed {
                phase = Phase::Failed;
            }
        }
        Ok((phase, Outputs::new()))
    }
}

/// `text` with every `{{name}}` replaced; an unknown name is an error, as Argo fails the node.
fn substitute(text: &str, vars: &Outputs) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after
            .find("}}")
            .ok_or_else(|| format!("`{text}` has an unclosed `{{{{`"))?;
        let name = after[..end].trim();
        let value = vars
            .get(name)
            .ok_or_else(|| format!("cannot resolve `{{{{{name}}}}}` in `{text}`"))?;
        out.push_str(value);
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

/// A substituted `when`: comparisons of quoted strings joined by `||`.
fn when_holds(condition: &str) -> Result<bool, String> {
    let unquote = |s: &str| -> Result<String, String> {
        let s = s.trim();
        s.strip_prefix('\'')
            .and_then(|s| s.strip_suffix('\''))
            .map(str::to_string)
            .ok_or_else(|| format!("`{s}` in a `when` is not a quoted string"))
    };
    let mut any = false;
    for term in condition.split("||") {
        let (left, right, equal) = if let Some((l, r)) = term.split_once("!=") {
            (l, r, false)
        } else if let Some((l, r)) = term.split_once("==") {
            (l, r, true)
        } else {
            return Err(format!("unsupported `when`: `{condition}`"));
        };
        any |= (unquote(left)? == unquote(right)?) == equal;
    }
    Ok(any)
}

/// A `depends` expression.
#[derive(Debug)]
enum Expr {
    Task(String, Option<String>),
    Not(Box<Expr>),
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
}

impl Expr {
    fn parse(text: &str) -> Result<Expr, String> {
        let tokens = tokenize(text)?;
        let mut at = 0;
        let expr = Self::or(&tokens, &mut at)?;
        if at != tokens.len() {
            return Err(format!("unexpected `{}` in depends `{text}`", tokens[at]));
        }
        Ok(expr)
    }

    fn or(tokens: &[String], at: &mut usize) -> Result<Expr, String> {
        let mut left = Self::and(tokens, at)?;
        while tokens.get(*at).is_some_and(|t| t == "||") {
            *at += 1;
            left = Expr::Or(Box::new(left), Box::new(Self::and(tokens, at)?));
        }
        Ok(left)
    }

    fn and(tokens: &[String], at: &mut usize) -> Result<Expr, String> {
        let mut left = Self::unary(tokens, at)?;
        while tokens.get(*at).is_some_and(|t| t == "&&") {
            *at += 1;
            left = Expr::And(Box::new(left), Box::new(Self::unary(tokens, at)?));
        }
        Ok(left)
    }

    fn unary(tokens: &[String], at: &mut usize) -> Result<Expr, String> {
        let token = tokens
            .get(*at)
            .ok_or("a depends expression ends too early")?;
        *at += 1;
        match token.as_str() {
            "!" => Ok(Expr::Not(Box::new(Self::unary(tokens, at)?))),
            "(" => {
                let inner = Self::or(tokens, at)?;
                if tokens.get(*at).map(String::as_str) != Some(")") {
                    return Err("a `(` in depends is not closed".into());
                }
                *at += 1;
                Ok(inner)
            }
            "&&" | "||" | ")" => Err(format!("unexpected `{token}` in depends")),
            operand => {
                let (task, result) = match operand.split_once('.') {
                    Some((t, r)) => (t.to_string(), Some(r.to_string())),
                    None => (operand.to_string(), None),
                };
                Ok(Expr::Task(task, result))
            }
        }
    }

    fn names(&self) -> Vec<String> {
        match self {
            Expr::Task(t, _) => vec![t.clone()],
            Expr::Not(e) => e.names(),
            Expr::And(a, b) | Expr::Or(a, b) => {
                let mut n = a.names();
                n.extend(b.names());
                n
            }
        }
    }

    fn eval(&self, phases: &BTreeMap<String, Phase>) -> Result<bool, String> {
        Ok(match self {
            Expr::Task(task, result) => {
                let phase = *phases
                    .get(task)
                    .ok_or_else(|| format!("`{task}` has not finished"))?;
                match result.as_deref() {
                    // A bare name means Succeeded, Skipped or Daemoned.
                    None => matches!(phase, Phase::Succeeded | Phase::Skipped),
                    Some("Succeeded") => phase == Phase::Succeeded,
                    Some("Failed") => phase == Phase::Failed,
                    Some("Skipped") => phase == Phase::Skipped,
                    Some("Omitted") => phase == Phase::Omitted,
                    Some("Errored" | "Daemoned") => false,
                    Some(other) => return Err(format!("unknown task result `{task}.{other}`")),
                }
            }
            Expr::Not(e) => !e.eval(phases)?,
            Expr::And(a, b) => a.eval(phases)? && b.eval(phases)?,
            Expr::Or(a, b) => a.eval(phases)? || b.eval(phases)?,
        })
    }
}

fn tokenize(text: &str) -> Result<Vec<String>, String> {
    let mut tokens = Vec::new();
    let chars: Vec<char> = text.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
        } else if c == '(' || c == ')' || c == '!' {
            tokens.push(c.to_string());
            i += 1;
        } else if (c == '&' || c == '|') && chars.get(i + 1) == Some(&c) {
            tokens.push(format!("{c}{c}"));
            i += 2;
        } else if c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.' {
            let start = i;
            while i < chars.len()
                && (chars[i].is_ascii_alphanumeric() || matches!(chars[i], '-' | '_' | '.'))
            {
                i += 1;
            }
            tokens.push(chars[start..i].iter().collect());
        } else {
            return Err(format!("unexpected `{c}` in depends `{text}`"));
        }
    }
    Ok(tokens)
}

fn array(value: &Value, what: &str) -> Result<Vec<Value>, String> {
    value
        .as_array()
        .cloned()
        .ok_or_else(|| format!("{what} is not a list"))
}

fn optional_array(value: &Value) -> Result<Vec<Value>, String> {
    match value {
        Value::Null => Ok(Vec::new()),
        Value::Array(a) => Ok(a.clone()),
        other => Err(format!("expected a list, found {other}")),
    }
}

fn string(value: &Value, what: &str) -> Result<String, String> {
    value
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| format!("{what} is not a string"))
}

/// Fails on a field this interpreter neither acts on nor knows to make no difference locally
/// (`retryStrategy` retries pod errors, `activeDeadlineSeconds` hung pods, `volumeMounts` share
/// what a local datastore shares anyway): running a manifest that asks for more than the
/// interpreter does would prove nothing.
fn known_fields(value: &Value, known: &[&str], what: &str) -> Result<(), String> {
    match value.as_object() {
        Some(map) => match map.keys().find(|k| !known.contains(&k.as_str())) {
            Some(k) => Err(format!(
                "{what} has a field `{k}` the interpreter does not know"
            )),
            None => Ok(()),
        },
        None => Err(format!("{what} is not an object")),
    }
}
