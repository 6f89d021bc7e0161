//! Argo Workflows manifests (`argo-workflow`), the spec a task derives without a coordinator,
//! and the run's `init` and `finish`.
//!
//! No Kubernetes runs here, so the manifests are checked two ways: against the JSON schema of
//! argo-workflows made strict (no unknown fields), and by executing them with a local
//! interpreter of the part of Argo they use (`argo/interpreter.rs`), whose containers are this
//! binary's own `step` commands on a local datastore; the results must equal a local run's.
//!
//! This binary is its own flow binary (the target has `harness = false`): with
//! `ARGO_TEST_FLOW=NAME` in its environment it is the command line of flow NAME, as the
//! interpreter starts it; with `--datastore …/process-NAME …` it is flow NAME's, as process mode
//! starts it for each task.

#[allow(dead_code)]
#[path = "../examples/big_field.rs"]
mod big_field;
#[allow(dead_code)]
#[path = "../examples/fanout.rs"]
mod fanout;
#[path = "argo/flows.rs"]
mod flows;
#[path = "argo/interpreter.rs"]
mod interpreter;
#[allow(dead_code)]
#[path = "../examples/squares.rs"]
mod squares;
#[path = "argo/train_burn.rs"]
mod train_burn;

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{ExitCode, Stdio};

use blooming_flowers::Flow;
use blooming_flowers::cli::{EXIT_OK, EXIT_USAGE, run_cli_with};
use blooming_flowers::client::Client;
use blooming_flowers::executor::{DeriveSpecError, derive_spec};
use blooming_flowers::run::{RunStatus, RunStore};
use serde_json::Value;

use big_field::BigField;
use fanout::Fanout;
use flows::{Breaks, Looping, Nested, Sized};
use interpreter::{Exit, Phase};
use squares::Squares;
use train_burn::TrainBurn;

/// Names the flow this binary is, for the interpreter's containers.
const FLOW_ENV: &str = "ARGO_TEST_FLOW";
/// Process mode's datastores are named `PROCESS_PREFIX` + the flow, so that the children the
/// executor starts know which flow they are.
const PROCESS_PREFIX: &str = "process-";
/// The image the manifests name (nothing pulls it here).
const IMAGE: &str = "registry.example.invalid/blooming/flows:test";

/// This binary as flow `name`'s command line.
fn as_flow(name: &str) -> ExitCode {
    match name {
        "squares" => blooming_flowers::main::<Squares>(),
        "fanout" => blooming_flowers::main::<Fanout>(),
        "big_field" => blooming_flowers::main::<BigField>(),
        "train_burn" => blooming_flowers::main::<TrainBurn>(),
        "nested" => blooming_flowers::main::<Nested>(),
        "breaks" => blooming_flowers::main::<Breaks>(),
        "looping" => blooming_flowers::main::<Looping>(),
        "sized" => blooming_flowers::main::<Sized>(),
        other => {
            eprintln!("no test flow `{other}`");
            ExitCode::from(EXIT_USAGE)
        }
    }
}

/// The flow a process-mode child is: from its `--datastore` directory's name.
fn flow_of_process_child(args: &[OsString]) -> Option<String> {
    if args.get(1)? != "--datastore" {
        return None;
    }
    let dir = Path::new(args.get(2)?).file_name()?.to_str()?;
    dir.strip_prefix(PROCESS_PREFIX).map(str::to_string)
}

struct Output {
    code: u8,
    out: String,
    err: String,
}

impl Output {
    fn check(&self, ok: bool, what: &str) -> Result<(), String> {
        if ok {
            Ok(())
        } else {
            Err(format!(
                "{what}\nexit {}\n--- stdout\n{}--- stderr\n{}",
                self.code, self.out, self.err
            ))
        }
    }

    /// The run id in "Run ID of FLOW …".
    fn run_id(&self) -> String {
        format!("{} {}", self.out, self.err)
            .split_whitespace()
            .skip_while(|w| *w != "Run")
            .nth(1)
            .unwrap_or_default()
            .to_string()
    }
}

/// Flow `F`'s command line in this process, on datastore `datastore`.
fn cli<F: Flow>(datastore: &Path, args: &[&str]) -> Output {
    let mut argv: Vec<OsString> = vec!["flow".into(), "--datastore".into(), datastore.into()];
    argv.extend(args.iter().map(OsString::from));
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let code = run_cli_with::<F, _, _>(argv, &mut out, &mut err);
    Output {
        code,
        out: String::from_utf8_lossy(&out).into_owned(),
        err: String::from_utf8_lossy(&err).into_owned(),
    }
}

fn exe() -> Result<String, String> {
    std::env::current_exe()
        .map_err(|e| e.to_string())?
        .to_str()
        .map(str::to_string)
        .ok_or_else(|| "this binary's path is not UTF-8".to_string())
}

/// Flow `F`'s manifest, through its command line, with this binary as the flow binary.
fn manifest<F: Flow>(datastore: &Path, extra: &[&str]) -> Result<Value, String> {
    let exe = exe()?;
    let mut args = vec!["argo-workflow", "--image", IMAGE, "--binary", &exe];
    args.extend_from_slice(extra);
    let o = cli::<F>(datastore, &args);
    o.check(o.code == EXIT_OK, "argo-workflow should print a manifest")?;
    serde_json::from_str(&o.out).map_err(|e| format!("the manifest is not JSON: {e}\n{}", o.out))
}

// ---------------------------------------------------------------------------------------------
// The copy of the burn example (the others are the examples themselves).

/// The lines of a flow's source that make its manifest: `#[flow]`, and each `#[step]` and
/// `#[arg]` with the name of the item it is on.
fn signature(source: &str) -> Vec<String> {
    let lines: Vec<&str> = source.lines().map(str::trim).collect();
    let mut out = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        if line.starts_with("#[flow") {
            out.push(line.to_string());
        }
        if line.starts_with("#[step") || line.starts_with("#[arg(") {
            let item = lines[i + 1..]
                .iter()
                .find(|l| !l.starts_with("#[") && !l.starts_with("///"))
                .copied()
                .unwrap_or_default();
            let name: String = item
                .trim_start_matches("pub ")
                .trim_start_matches("fn ")
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            out.push(format!("{line} {name}"));
        }
    }
    out
}

fn the_burn_example_matches_its_copy() -> Result<(), String> {
    let pairs = [(
        "train_burn",
        include_str!("../examples/train_burn.rs"),
        include_str!("argo/train_burn.rs"),
    )];
    for (name, example, copy) in pairs {
        let (a, b) = (signature(example), signature(copy));
        if a.is_empty() || a != b {
            return Err(format!(
                "tests/argo/{name}.rs no longer has the steps of examples/{name}.rs; update it\n\
                 example: {a:#?}\ncopy: {b:#?}"
            ));
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// The schema.

/// Argo's schema made strict, as validators of a Workflow and a WorkflowTemplate; `None` where
/// the schema is not beside the clone.
struct Schemas {
    workflow: jsonschema::Validator,
    template: jsonschema::Validator,
    cron: jsonschema::Validator,
    published_workflow: jsonschema::Validator,
}

fn schemas() -> Result<Option<Schemas>, String> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("shared")
        .join("data")
        .join("argo-workflows.schema.json");
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
    };
    let published: Value = serde_json::from_str(&text).map_err(|e| e.to_string())?;
    let mut strict = published.clone();
    let definitions = strict
        .get_mut("definitions")
        .and_then(Value::as_object_mut)
        .ok_or("the schema has no definitions")?;
    let mut made_strict = 0;
    for definition in definitions.values_mut() {
        if let Some(object) = definition.as_object_mut()
            && object.contains_key("properties")
            && !object.contains_key("additionalProperties")
        {
            object.insert("additionalProperties".into(), Value::Bool(false));
            made_strict += 1;
        }
    }
    if made_strict < 100 {
        return Err(format!(
            "only {made_strict} definitions were made strict: is this the argo-workflows schema?"
        ));
    }
    let validator = |schema: &Value, kind: &str| -> Result<jsonschema::Validator, String> {
        let mut root = schema.clone();
        let object = root.as_object_mut().ok_or("the schema is not an object")?;
        object.remove("oneOf");
        object.insert(
            "$ref".into(),
            Value::from(format!(
                "#/definitions/io.argoproj.workflow.v1alpha1.{kind}"
            )),
        );
        jsonschema::validator_for(&root).map_err(|e| format!("the schema does not compile: {e}"))
    };
    Ok(Some(Schemas {
        workflow: validator(&strict, "Workflow")?,
        template: validator(&strict, "WorkflowTemplate")?,
        cron: validator(&strict, "CronWorkflow")?,
        published_workflow: validator(&published, "Workflow")?,
    }))
}

fn schema_errors(validator: &jsonschema::Validator, manifest: &Value) -> Vec<String> {
    validator
        .iter_errors(manifest)
        .map(|e| format!("at {}: {e}", e.instance_path()))
        .collect()
}

fn every_manifest(dir: &Path) -> Result<Vec<(&'static str, Value)>, String> {
    Ok(vec![
        ("squares", manifest::<Squares>(dir, &[])?),
        ("fanout", manifest::<Fanout>(dir, &[])?),
        ("big_field", manifest::<BigField>(dir, &[])?),
        ("train_burn", manifest::<TrainBurn>(dir, &[])?),
        ("nested", manifest::<Nested>(dir, &[])?),
        ("breaks", manifest::<Breaks>(dir, &[])?),
        ("looping", manifest::<Looping>(dir, &[])?),
        ("sized", manifest::<Sized>(dir, &[])?),
    ])
}

fn manifests_pass_the_strict_schema(dir: &Path, schemas: Option<&Schemas>) -> Result<(), String> {
    let Some(schemas) = schemas else {
        println!(
            "note: ../shared/data/argo-workflows.schema.json is absent: the manifests cannot be \
             checked against Argo's schema here (they are still executed below)"
        );
        return Ok(());
    };
    for (name, m) in every_manifest(dir)? {
        let errors = schema_errors(&schemas.workflow, &m);
        if !errors.is_empty() {
            return Err(format!(
                "the {name} manifest fails the strict schema:\n{errors:#?}"
            ));
        }
    }
    // Every option, and the template kind.
    let all = manifest::<Nested>(
        dir,
        &[
            "--name",
            "nested-nightly",
            "--namespace",
            "flows",
            "--service-account",
            "runner",
            "--volume-claim",
            "flows-data",
            "--env-secret",
            "flows-credentials",
            "--tag",
            "nightly",
            "--template",
        ],
    )?;
    if all["kind"] != "WorkflowTemplate" || all["metadata"]["name"] != "nested-nightly" {
        return Err(format!(
            "--template --name are not honoured: {}",
            all["metadata"]
        ));
    }
    let errors = schema_errors(&schemas.template, &all);
    if !errors.is_empty() {
        return Err(format!(
            "the WorkflowTemplate fails the strict schema:\n{errors:#?}"
        ));
    }
    // A datastore on object storage, its credentials from a secret.
    let s3 = manifest::<Squares>(Path::new("s3://flows/prod"), &["--env-secret", "flows-s3"])?;
    let errors = schema_errors(&schemas.workflow, &s3);
    if !errors.is_empty() || !s3.to_string().contains("s3://flows/prod") {
        return Err(format!("the s3 manifest: {errors:#?}"));
    }
    Ok(())
}

/// `--schedule` makes a CronWorkflow around the same workflow, which passes the strict schema;
/// a bad schedule, time zone or policy is refused with exit 2 and nothing printed.
fn a_schedule_makes_a_cron_workflow(dir: &Path, schemas: Option<&Schemas>) -> Result<(), String> {
    let plain = manifest::<Squares>(dir, &[])?;
    let cron = manifest::<Squares>(
        dir,
        &[
            "--schedule",
            "0 3 * * *",
            "--schedule",
            "@hourly",
            "--timezone",
            "Europe/Paris",
            "--concurrency-policy",
            "Forbid",
            "--namespace",
            "flows",
        ],
    )?;
    if cron["kind"] != "CronWorkflow"
        || cron["metadata"]["name"] != "squares"
        || cron["metadata"]["namespace"] != "flows"
        || cron["spec"]["schedules"] != serde_json::json!(["0 3 * * *", "@hourly"])
        || cron["spec"]["timezone"] != "Europe/Paris"
        || cron["spec"]["concurrencyPolicy"] != "Forbid"
        || cron["spec"]["workflowMetadata"]["labels"] != plain["metadata"]["labels"]
        || cron["spec"]["workflowSpec"] != plain["spec"]
    {
        return Err(format!("not the CronWorkflow expected: {cron:#}"));
    }
    if let Some(schemas) = schemas {
        let errors = schema_errors(&schemas.cron, &cron);
        if !errors.is_empty() {
            return Err(format!(
                "the CronWorkflow fails the strict schema:\n{errors:#?}"
            ));
        }
    }
    let exe = exe()?;
    for (extra, expected) in [
        (&["--schedule", "0 3 * *"][..], "has 4 fields"),
        (
            &["--schedule", "0 3 * * Mon;"][..],
            "the day of week field `Mon;` has `;`",
        ),
        (
            &["--schedule", "@daily", "--timezone", "Paris time"][..],
            "time zone `Paris time`",
        ),
        (
            &["--schedule", "@daily", "--concurrency-policy", "never"][..],
            "never",
        ),
        (&["--timezone", "UTC"][..], "--schedule"),
        (&["--schedule", "@daily", "--template"][..], "--template"),
    ] {
        let mut args = vec!["argo-workflow", "--image", IMAGE, "--binary", &exe];
        args.extend_from_slice(extra);
        let o = cli::<Squares>(dir, &args);
        o.check(
            o.code == EXIT_USAGE && o.out.is_empty() && o.err.contains(expected),
            &format!("{extra:?} should be refused, saying {expected:?}"),
        )?;
    }
    Ok(())
}

/// Renames the first key `from` found anywhere in `value` to `to`.
fn rename_key(value: &mut Value, from: &str, to: &str) -> bool {
    match value {
        Value::Object(map) => {
            if let Some(v) = map.remove(from) {
                map.insert(to.to_string(), v);
                return true;
            }
            map.values_mut().any(|v| rename_key(v, from, to))
        }
        Value::Array(items) => items.iter_mut().any(|v| rename_key(v, from, to)),
        _ => false,
    }
}

fn broken_manifests_fail_the_strict_schema(
    dir: &Path,
    schemas: Option<&Schemas>,
) -> Result<(), String> {
    let Some(schemas) = schemas else {
        return Ok(());
    };
    let good = manifest::<Squares>(dir, &[])?;
    for (from, to) in [("withParam", "withParams"), ("container", "contaner")] {
        let mut broken = good.clone();
        if !rename_key(&mut broken, from, to) {
            return Err(format!("the squares manifest has no `{from}`"));
        }
        let errors = schema_errors(&schemas.workflow, &broken);
        if !errors.iter().any(|e| e.contains(to)) {
            return Err(format!(
                "a manifest with `{to}` should fail the strict schema, naming it; got {errors:#?}"
            ));
        }
        if from == "withParam" && !schema_errors(&schemas.published_workflow, &broken).is_empty() {
            return Err("the published schema was expected to let `withParams` through".into());
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// The shape of a manifest.

fn task<'m>(m: &'m Value, template: &str, name: &str) -> Result<&'m Value, String> {
    m["spec"]["templates"]
        .as_array()
        .and_then(|ts| ts.iter().find(|t| t["name"] == template))
        .and_then(|t| t["dag"]["tasks"].as_array())
        .and_then(|ts| ts.iter().find(|t| t["name"] == name))
        .ok_or_else(|| format!("no task `{name}` in template `{template}`"))
}

/// The container of the template `name` in `m`.
fn container_of<'m>(m: &'m Value, name: &str) -> Result<&'m Value, String> {
    m["spec"]["templates"]
        .as_array()
        .and_then(|ts| ts.iter().find(|t| t["name"] == name))
        .map(|t| &t["container"])
        .ok_or_else(|| format!("no template `{name}`"))
}

fn manifest_shape(dir: &Path) -> Result<(), String> {
    let m = manifest::<Squares>(dir, &[])?;
    let expect = |what: &str, got: &Value, want: Value| -> Result<(), String> {
        if *got == want {
            Ok(())
        } else {
            Err(format!("{what}: expected {want}, got {got}"))
        }
    };
    // `resources(cpus = 8, memory = "64 GiB", gpus = 1)`: cpu and memory requested, memory
    // limited to its request, the GPU a limit; a step asking nothing has no `resources`.
    let sized = manifest::<Sized>(dir, &[])?;
    expect(
        "the resources of a step asking for them",
        &container_of(&sized, "step-train")?["resources"],
        serde_json::json!({
            "requests": {"cpu": "8", "memory": "64Gi"},
            "limits": {"memory": "64Gi", "nvidia.com/gpu": "1"},
        }),
    )?;
    expect(
        "the resources of a step asking nothing",
        &container_of(&sized, "step-start")?["resources"],
        Value::Null,
    )?;
    expect("kind", &m["kind"], "Workflow".into())?;
    expect(
        "generateName",
        &m["metadata"]["generateName"],
        "squares-".into(),
    )?;
    expect("onExit", &m["spec"]["onExit"], "finish".into())?;
    expect(
        "start waits for init",
        &task(&m, "main", "start")?["depends"],
        "init.Succeeded".into(),
    )?;
    expect(
        "the branch join",
        &task(&m, "main", "both")?["depends"],
        "left.Succeeded && right.Succeeded".into(),
    )?;
    let fan_out = task(&m, "main", "sq")?;
    expect(
        "the fan-out",
        &fan_out["withParam"],
        "{{tasks.fan.outputs.parameters.foreach}}".into(),
    )?;
    expect(
        "the body template",
        &fan_out["template"],
        "foreach-fan".into(),
    )?;
    expect(
        "the foreach join",
        &task(&m, "main", "gather")?["depends"],
        "(sq.Succeeded || sq.Skipped)".into(),
    )?;
    expect(
        "a switch arm",
        &task(&m, "main", "big")?["when"],
        "'{{tasks.decide.outputs.parameters.switch}}' == 'big'".into(),
    )?;
    expect(
        "after the arms",
        &task(&m, "main", "end")?["depends"],
        "(big.Succeeded || small.Succeeded)".into(),
    )?;
    expect(
        "the body",
        &task(&m, "foreach-fan", "sq")?["arguments"]["parameters"][1]["value"],
        "{{inputs.parameters.task-id}}".into(),
    )?;

    let m = manifest::<Nested>(dir, &[])?;
    expect(
        "an arm straight into end",
        &task(&m, "main", "end")?["when"],
        ("'{{tasks.decide.outputs.parameters.switch}}' == 'end' || \
          '{{tasks.decide.outputs.parameters.switch}}' == 'detour'")
            .into(),
    )?;
    expect(
        "a nested fan-out",
        &task(&m, "foreach-outer", "cell")?["withParam"],
        "{{tasks.inner.outputs.parameters.foreach}}".into(),
    )?;
    let templates = m["spec"]["templates"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let step = |name: &str| {
        templates
            .iter()
            .find(|t| t["name"] == format!("step-{name}"))
            .cloned()
            .unwrap_or_default()
    };
    expect(
        "retries",
        &step("odd")["retryStrategy"],
        serde_json::json!({"limit": "2", "retryPolicy": "OnError"}),
    )?;
    expect(
        "a timeout",
        &step("row-end")["activeDeadlineSeconds"],
        "420".into(),
    )?;
    let parameters = &m["spec"]["arguments"]["parameters"];
    expect(
        "the parameters",
        parameters,
        serde_json::json!([
            {"name": "rows", "value": "3", "description": "How many rows the outer foreach goes over"},
            {"name": "detour", "value": "false",
             "description": "Ends through `detour` instead of going straight to `end`",
             "enum": ["true", "false"]}
        ]),
    )
}

// ---------------------------------------------------------------------------------------------
// derive_spec against the scheduler.

/// Runs `F` in process mode, which writes every task's spec, and checks that `derive_spec`
/// finds the same for every task.
fn specs_match<F: Flow>(root: &Path, flow: &str, params: &[&str]) -> Result<usize, String> {
    let dir = root.join(format!("{PROCESS_PREFIX}{flow}"));
    let mut args = vec!["run", "--process", "--max-workers", "2"];
    args.extend_from_slice(params);
    let o = cli::<F>(&dir, &args);
    o.check(o.code == EXIT_OK, "the process-mode run should succeed")?;
    let run_id = o.run_id();
    let client = Client::open(&dir).map_err(|e| e.to_string())?;
    let store = client.store();
    let run = client
        .flow(F::GRAPH.name)
        .run(&run_id)
        .map_err(|e| e.to_string())?;
    let mut checked = 0;
    for step in run.step_names().map_err(|e| e.to_string())? {
        for task in store
            .list_tasks(F::GRAPH.name, &run_id, &step)
            .map_err(|e| e.to_string())?
        {
            let key = RunStore::task_key(F::GRAPH.name, &run_id, &step, &task)
                .map_err(|e| e.to_string())?;
            let written = store
                .read_spec(&key)
                .map_err(|e| e.to_string())?
                .ok_or_else(|| format!("{step}/{task} has no spec.json"))?;
            let derived = derive_spec(F::GRAPH, store, &run_id, &step, &task)
                .map_err(|e| format!("{step}/{task}: {e}"))?;
            if derived != written {
                return Err(format!(
                    "{flow} {step}/{task}: derived\n{derived:#?}\nwritten\n{written:#?}"
                ));
            }
            checked += 1;
        }
    }
    Ok(checked)
}

fn derive_spec_matches_process_mode(dir: &Path) -> Result<(), String> {
    let mut checked = specs_match::<Squares>(dir, "squares", &[])?;
    checked += specs_match::<Nested>(&dir.join("a"), "nested", &["--rows", "3"])?;
    checked += specs_match::<Nested>(&dir.join("b"), "nested", &["--rows", "2", "--detour"])?;
    checked += specs_match::<Nested>(&dir.join("c"), "nested", &["--rows", "0"])?;
    // 1 + 3 rounds × (round, again) + 6 elements × (element, settle) + 10 attempts and
    // judgements + 3 gathers + 2 polishes + end = 45.
    let looping = specs_match::<Looping>(&dir.join("d"), "looping", &[])?;
    if looping != 45 {
        return Err(format!("the looping flow ran {looping} tasks, not 45"));
    }
    checked += looping;
    // squares: 1 + 2 + 1 + 1 + 10 + 1 + 1 + 1 + 1; nested (3 rows): 8 + 3 rows of 4 + 6 cells
    // of 2 + 2 + 1; and so on: what matters is that every task was compared.
    if checked < 80 {
        return Err(format!("only {checked} tasks were compared"));
    }
    println!("  {checked} tasks: the derived spec equals the one process mode wrote");
    Ok(())
}

fn derive_spec_reports_missing_parents(dir: &Path) -> Result<(), String> {
    let o = cli::<Nested>(dir, &["init", "--", "--rows=2"]);
    o.check(o.code == EXIT_OK, "init")?;
    let run_id = o.out.trim().to_string();
    let client = Client::open(dir).map_err(|e| e.to_string())?;
    let store = client.store();
    let graph = Nested::GRAPH;
    let not_ready = derive_spec(graph, store, &run_id, "left", "0");
    if !matches!(&not_ready, Err(DeriveSpecError::NotReady { reason, .. }) if reason.contains("start/0 is not complete"))
    {
        return Err(format!("left before start: {not_ready:?}"));
    }
    let bad_id = derive_spec(graph, store, &run_id, "cell", "1");
    if !matches!(&bad_id, Err(DeriveSpecError::NoSuchTask { reason, .. }) if reason.contains("`0-0`"))
    {
        return Err(format!("a one-part id in a nested foreach: {bad_id:?}"));
    }
    // `step` derives the spec: start runs; a task whose parent has not run says which.
    let o = cli::<Nested>(
        dir,
        &["step", "start", "--run-id", &run_id, "--task-id", "0"],
    );
    o.check(o.code == EXIT_OK, "step start")?;
    let o = cli::<Nested>(
        dir,
        &["step", "both", "--run-id", &run_id, "--task-id", "0"],
    );
    o.check(
        o.code == 1 && o.err.contains("branch `left` of `start` has not arrived"),
        "a join before its branches",
    )?;
    for step in ["left", "right", "both", "outer"] {
        let o = cli::<Nested>(dir, &["step", step, "--run-id", &run_id, "--task-id", "0"]);
        o.check(o.code == EXIT_OK, step)?;
    }
    let o = cli::<Nested>(
        dir,
        &["step", "row_start", "--run-id", &run_id, "--task-id", "2"],
    );
    o.check(
        o.code == 1 && o.err.contains("no task row_start/2") && o.err.contains("2 elements"),
        "an element past the end",
    )?;
    let outputs = dir.join("outputs");
    let o = cli::<Nested>(
        dir,
        &[
            "step",
            "row_start",
            "--run-id",
            &run_id,
            "--task-id",
            "1",
            "--argo-outputs",
            &outputs.display().to_string(),
        ],
    );
    o.check(o.code == EXIT_OK, "row_start/1")?;
    let o = cli::<Nested>(
        dir,
        &[
            "step",
            "outer",
            "--run-id",
            &run_id,
            "--task-id",
            "0",
            "--argo-outputs",
            &outputs.display().to_string(),
        ],
    );
    o.check(o.code == EXIT_OK, "outer again, with outputs")?;
    let ids = std::fs::read_to_string(outputs.join("foreach.json")).map_err(|e| e.to_string())?;
    if ids != r#"["0","1"]"# {
        return Err(format!("the fan-out's task ids: {ids}"));
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Executing manifests.

/// Runs `argv` as a container would, as flow `flow`.
fn container(flow: &'static str) -> impl Fn(&[String]) -> Result<Exit, String> {
    move |argv: &[String]| {
        let (program, args) = argv.split_first().ok_or("an empty command line")?;
        let output = std::process::Command::new(program)
            .args(args)
            .env(FLOW_ENV, flow)
            .env_remove("BLOOMING_DATASTORE")
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("cannot start {program}: {e}"))?;
        Ok(Exit {
            success: output.status.success(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        })
    }
}

/// The run id `init` exported.
fn argo_run_id(outcome: &interpreter::Outcome) -> Result<String, String> {
    outcome
        .globals
        .get("workflow.outputs.parameters.blooming-run-id")
        .cloned()
        .filter(|id| !id.is_empty())
        .ok_or_else(|| "init exported no run id".to_string())
}

/// Everything the two runs left is the same, but the run ids and times.
fn same_runs(dir: &Path, flow: &str, reference: &str, argo: &str) -> Result<usize, String> {
    let e = |e: blooming_flowers::client::ClientError| e.to_string();
    let client = Client::open(dir).map_err(e)?;
    let handle = client.flow(flow);
    let (a, b) = (
        handle.run(reference).map_err(e)?,
        handle.run(argo).map_err(e)?,
    );
    if b.status() != a.status() || a.status() != RunStatus::Succeeded {
        return Err(format!(
            "statuses: local {}, argo {}",
            a.status(),
            b.status()
        ));
    }
    if a.params() != b.params() {
        return Err(format!("params: {} vs {}", a.params(), b.params()));
    }
    let steps = a.step_names().map_err(e)?;
    if steps != b.step_names().map_err(e)? {
        return Err(format!(
            "steps: {steps:?} vs {:?}",
            b.step_names().map_err(e)?
        ));
    }
    let mut tasks = 0;
    for step in &steps {
        let (sa, sb) = (a.step(step).map_err(e)?, b.step(step).map_err(e)?);
        let ids = sa.task_ids().map_err(e)?;
        if ids != sb.task_ids().map_err(e)? {
            return Err(format!(
                "{step}: tasks {ids:?} vs {:?}",
                sb.task_ids().map_err(e)?
            ));
        }
        for id in &ids {
            let (ta, tb) = (sa.task(id).map_err(e)?, sb.task(id).map_err(e)?);
            let (ma, mb) = (ta.meta(), tb.meta());
            if ma.spec != mb.spec
                || ma.status != mb.status
                || ma.foreach != mb.foreach
                || ma.chose != mb.chose
                || ma.attempts.len() != mb.attempts.len()
            {
                return Err(format!("{step}/{id}: local {ma:#?}\nargo {mb:#?}"));
            }
            if ta.artifacts().map_err(e)? != tb.artifacts().map_err(e)? {
                return Err(format!("{step}/{id}: the artifacts differ"));
            }
            tasks += 1;
        }
    }
    let latest = handle.latest_successful_run().map_err(e)?;
    if latest.id() != argo {
        return Err(format!(
            "the latest successful run is {}, not the argo run {argo}",
            latest.id()
        ));
    }
    Ok(tasks)
}

/// Runs `F` locally with `params` and through its manifest with `overrides`, and compares.
fn runs_alike<F: Flow>(
    dir: &Path,
    flow: &'static str,
    params: &[&str],
    overrides: &[(&str, &str)],
) -> Result<(), String> {
    let mut args = vec!["run"];
    args.extend_from_slice(params);
    let o = cli::<F>(dir, &args);
    o.check(o.code == EXIT_OK, "the local run")?;
    let reference = o.run_id();
    let m = manifest::<F>(dir, &[])?;
    let scratch = dir.join(format!("scratch-{flow}-{}", overrides.len()));
    let outcome = interpreter::run(&m, overrides, &container(flow), &scratch)
        .map_err(|e| format!("{flow}: the interpreter stopped: {e}"))?;
    if outcome.phase != Phase::Succeeded || outcome.exit_handler != Some(Phase::Succeeded) {
        return Err(format!(
            "{flow}: the workflow ended {:?}, its exit handler {:?}:\n{}",
            outcome.phase,
            outcome.exit_handler,
            outcome.failures.join("\n")
        ));
    }
    let argo = argo_run_id(&outcome)?;
    let tasks = same_runs(dir, F::GRAPH.name, &reference, &argo)
        .map_err(|e| format!("{flow} {overrides:?}: {e}"))?;
    // One container per task, plus init and finish: no pod for arms the switch did not take.
    if outcome.containers.len() != tasks + 2 {
        return Err(format!(
            "{flow}: {} containers for {tasks} tasks",
            outcome.containers.len()
        ));
    }
    println!(
        "  {flow} {overrides:?}: {tasks} tasks in {} containers, as the local run",
        outcome.containers.len()
    );
    Ok(())
}

fn manifests_run_like_local_runs(dir: &Path) -> Result<(), String> {
    runs_alike::<Squares>(&dir.join("squares"), "squares", &[], &[])?;
    let nested = dir.join("nested");
    runs_alike::<Nested>(&nested, "nested", &[], &[])?;
    runs_alike::<Nested>(
        &nested,
        "nested",
        &["--rows", "2", "--detour"],
        &[("rows", "2"), ("detour", "true")],
    )?;
    runs_alike::<Nested>(&nested, "nested", &["--rows", "0"], &[("rows", "0")])?;
    runs_alike::<Fanout>(
        &dir.join("fanout"),
        "fanout",
        &["--items", "5"],
        &[("items", "5")],
    )?;
    runs_alike::<BigField>(
        &dir.join("big_field"),
        "big_field",
        &["--mib", "1"],
        &[("mib", "1")],
    )?;
    runs_alike::<Looping>(&dir.join("looping"), "looping", &[], &[])?;
    runs_alike::<Looping>(
        &dir.join("looping"),
        "looping",
        &["--rounds", "1"],
        &[("rounds", "1")],
    )?;
    runs_alike::<TrainBurn>(&dir.join("train_burn"), "train_burn", &[], &[])
}

/// The interpreter and the tasks catch a wrong manifest: without its `when`, the arm the switch
/// did not choose runs, finds out from the datastore, and fails the workflow.
fn a_wrong_manifest_fails_when_executed(dir: &Path) -> Result<(), String> {
    let mut m = manifest::<Squares>(dir, &[])?;
    let small = m["spec"]["templates"]
        .as_array_mut()
        .and_then(|ts| ts.iter_mut().find(|t| t["name"] == "main"))
        .and_then(|t| t["dag"]["tasks"].as_array_mut())
        .and_then(|ts| ts.iter_mut().find(|t| t["name"] == "small"))
        .and_then(Value::as_object_mut)
        .ok_or("no task `small`")?;
    small.remove("when").ok_or("`small` has no `when`")?;
    let outcome = interpreter::run(&m, &[], &container("squares"), &dir.join("scratch"))?;
    let failures = outcome.failures.join("\n");
    if outcome.phase != Phase::Failed || !failures.contains("the switch decide/0 chose `big`") {
        return Err(format!(
            "the workflow ended {:?}; failures:\n{failures}",
            outcome.phase
        ));
    }
    Ok(())
}

fn a_failing_task_fails_the_workflow_and_the_run(dir: &Path) -> Result<(), String> {
    let m = manifest::<Breaks>(dir, &[])?;
    let outcome = interpreter::run(&m, &[], &container("breaks"), &dir.join("scratch"))?;
    if outcome.phase != Phase::Failed || outcome.exit_handler != Some(Phase::Succeeded) {
        return Err(format!(
            "the workflow ended {:?}, its exit handler {:?}",
            outcome.phase, outcome.exit_handler
        ));
    }
    let run_id = argo_run_id(&outcome)?;
    let client = Client::open(dir).map_err(|e| e.to_string())?;
    let run = client
        .flow("Breaks")
        .run(&run_id)
        .map_err(|e| e.to_string())?;
    let failure = run.record().failure.clone().unwrap_or_default();
    if run.status() != RunStatus::Failed
        || !failure.contains("task work/1 failed")
        || !failure.contains("cannot work on 2")
        || run.record().finished.is_none()
    {
        return Err(format!("the run: {:#?}", run.record()));
    }
    if client.flow("Breaks").latest_successful_run().is_ok() {
        return Err("a failed run became the latest successful one".into());
    }
    let o = cli::<Breaks>(dir, &["runs", "--json"]);
    o.check(o.out.contains("\"failed\""), "runs shows the run as failed")
}

fn init_and_finish(dir: &Path) -> Result<(), String> {
    let o = cli::<Nested>(dir, &["init", "--", "--rows=many"]);
    o.check(
        o.code == EXIT_USAGE && o.err.contains("many"),
        "a bad parameter",
    )?;
    let o = cli::<Nested>(dir, &["init", "--", "--detour=maybe"]);
    o.check(
        o.code == EXIT_USAGE,
        "a flag that is neither true nor false",
    )?;
    if dir.join("flows").exists() {
        return Err("bad parameters wrote to the datastore".into());
    }
    let o = cli::<Nested>(
        dir,
        &[
            "init",
            "--run-id",
            "fixed-1",
            "--tag",
            "t1",
            "--",
            "--rows=4",
            "--detour=true",
        ],
    );
    o.check(
        o.code == EXIT_OK && o.out.trim() == "fixed-1",
        "init with a run id",
    )?;
    let o = cli::<Nested>(dir, &["init", "--run-id", "fixed-1"]);
    o.check(o.code == EXIT_USAGE, "the same run id twice")?;
    let client = Client::open(dir).map_err(|e| e.to_string())?;
    let run = client
        .flow("Nested")
        .run("fixed-1")
        .map_err(|e| e.to_string())?;
    if run.params() != &serde_json::json!({"rows": 4, "detour": true})
        || run.tags() != ["t1"]
        || run.status() != RunStatus::Running
    {
        return Err(format!("the initialised run: {:#?}", run.record()));
    }
    let latest = client
        .flow("Nested")
        .latest_run()
        .map_err(|e| e.to_string())?;
    if latest.id() != "fixed-1" {
        return Err("init does not move the latest pointer".into());
    }
    for _ in 0..2 {
        let o = cli::<Nested>(dir, &["finish", "--run-id", "fixed-1"]);
        o.check(
            o.code == EXIT_OK
                && o.out
                    .contains("failed: the run stopped before reaching `end`"),
            "finish of a run that never ran",
        )?;
    }
    let o = cli::<Nested>(dir, &["finish", "--run-id", ""]);
    o.check(
        o.code == EXIT_OK && o.err.contains("No run"),
        "finish without a run",
    )?;

    // The manifest's datastore is the containers' and must be absolute.
    let mut argv: Vec<OsString> = vec!["flow".into(), "argo-workflow".into()];
    argv.extend(["--image", IMAGE].map(OsString::from));
    let (mut out, mut err) = (Vec::new(), Vec::new());
    // Only where the environment names no datastore either.
    let env_set = std::env::var_os("BLOOMING_DATASTORE").is_some();
    if !env_set {
        let code = run_cli_with::<Nested, _, _>(argv, &mut out, &mut err);
        if code != EXIT_USAGE || !String::from_utf8_lossy(&err).contains("--datastore") {
            return Err("argo-workflow without a datastore should be refused".into());
        }
    }
    let o = cli::<Nested>(
        Path::new("relative/store"),
        &["argo-workflow", "--image", IMAGE],
    );
    o.check(
        o.code == EXIT_USAGE && o.err.contains("relative"),
        "a relative datastore",
    )?;
    let o = cli::<Nested>(
        dir,
        &["argo-workflow", "--image", IMAGE, "--name", "Not_OK"],
    );
    o.check(o.code == EXIT_USAGE, "a name Kubernetes refuses")
}

/// One check of `main`'s list.
type Check<'a> = Box<dyn Fn() -> Result<(), String> + 'a>;

fn main() -> ExitCode {
    let args: Vec<OsString> = std::env::args_os().collect();
    if let Some(flow) = std::env::var_os(FLOW_ENV) {
        return as_flow(&flow.to_string_lossy());
    }
    if let Some(flow) = flow_of_process_child(&args) {
        return as_flow(&flow);
    }
    let dir = match tempfile::tempdir() {
        Ok(d) => d,
        Err(e) => {
            eprintln!("cannot make a temporary directory: {e}");
            return ExitCode::FAILURE;
        }
    };
    let root: PathBuf = dir.path().to_path_buf();
    let schemas = match schemas() {
        Ok(s) => s,
        Err(e) => {
            println!("test loading_the_schema ... FAILED\n{e}");
            return ExitCode::FAILURE;
        }
    };
    let at = |name: &str| root.join(name);
    let tests: Vec<(&str, Check<'_>)> = vec![
        (
            "the_burn_example_matches_its_copy",
            Box::new(the_burn_example_matches_its_copy),
        ),
        (
            "manifests_pass_the_strict_schema",
            Box::new(|| manifests_pass_the_strict_schema(&at("schema"), schemas.as_ref())),
        ),
        (
            "broken_manifests_fail_the_strict_schema",
            Box::new(|| broken_manifests_fail_the_strict_schema(&at("broken"), schemas.as_ref())),
        ),
        ("manifest_shape", Box::new(|| manifest_shape(&at("shape")))),
        (
            "a_schedule_makes_a_cron_workflow",
            Box::new(|| a_schedule_makes_a_cron_workflow(&at("cron"), schemas.as_ref())),
        ),
        (
            "derive_spec_matches_process_mode",
            Box::new(|| derive_spec_matches_process_mode(&at("derive"))),
        ),
        (
            "derive_spec_reports_missing_parents",
            Box::new(|| derive_spec_reports_missing_parents(&at("missing"))),
        ),
        (
            "manifests_run_like_local_runs",
            Box::new(|| manifests_run_like_local_runs(&at("execute"))),
        ),
        (
            "a_wrong_manifest_fails_when_executed",
            Box::new(|| a_wrong_manifest_fails_when_executed(&at("wrong"))),
        ),
        (
            "a_failing_task_fails_the_workflow_and_the_run",
            Box::new(|| a_failing_task_fails_the_workflow_and_the_run(&at("failing"))),
        ),
        ("init_and_finish", Box::new(|| init_and_finish(&at("init")))),
    ];
    let mut failed = 0;
    for (name, test) in &tests {
        match test() {
            Ok(()) => println!("test {name} ... ok"),
            Err(e) => {
                failed += 1;
                println!("test {name} ... FAILED\n{e}");
            }
        }
    }
    println!("{} passed, {failed} failed", tests.len() - failed);
    if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
