//! The command line with a flow written by hand, so that parameters (which `#[flow]` does not
//! declare yet) can be tested here; the root package's `tests/cli.rs` covers `#[flow]` flows.

use clap::error::ErrorKind;
use clap::{Arg, ArgMatches, Command, value_parser};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::args::parse_tag;
use super::*;
use crate::flow::{StepInput, StepOutcome};
use crate::graph::{FlowGraph, StepOptions, StepSpec, Transition};
use crate::step_error::StepError;

#[test]
fn tags_are_checked() {
    assert_eq!(
        parse_tag("nightly-2026.11"),
        Ok("nightly-2026.11".to_owned())
    );
    assert_eq!(parse_tag("k=v/ü"), Ok("k=v/ü".to_owned()));
    assert!(parse_tag("").is_err());
    assert!(parse_tag("a b").is_err());
    assert!(parse_tag("a\tb").is_err());
    assert!(parse_tag("a\u{7}").is_err());
    assert!(parse_tag(&"x".repeat(257)).is_err());
}

const OPTIONS: StepOptions = StepOptions {
    retries: 0,
    timeout: None,
    catch: None,
    max_iterations: None,
    resources: crate::graph::Resources::NONE,
};
const STEPS: &[StepSpec] = &[
    StepSpec {
        name: "start",
        doc: "",
        transition: Transition::Linear(1),
        join: None,
        options: OPTIONS,
    },
    StepSpec {
        name: "end",
        doc: "",
        transition: Transition::End,
        join: None,
        options: OPTIONS,
    },
];

/// `start` doubles the parameter `n`; `name` is stored as given.
#[derive(Clone, Default, Serialize, Deserialize)]
struct Params {
    n: u32,
    name: String,
    doubled: u32,
}

impl Flow for Params {
    const GRAPH: &'static FlowGraph = &FlowGraph {
        name: "Params",
        doc: "A flow with parameters.\n\nWritten by hand.",
        steps: STEPS,
        start: 0,
        end: 1,
    };
    type __State = Params;
    fn __as_state(&self) -> &Params {
        self
    }
    fn __from_state(state: Params) -> Params {
        state
    }
    fn __run_step(
        &mut self,
        step: usize,
        _input: StepInput<'_, Self>,
    ) -> Result<StepOutcome, StepError> {
        if step == 0 {
            self.doubled = self.n * 2;
        }
        Ok(StepOutcome::Continue)
    }
    fn __foreach_items(&self, _step: usize) -> Result<Vec<Vec<u8>>, StepError> {
        Ok(Vec::new())
    }
    fn __record_caught(&mut self, _step: usize, _message: String) {}
    fn __params_command(command: Command) -> Command {
        command
            .arg(
                Arg::new("n")
                    .long("n")
                    .value_parser(value_parser!(u32))
                    .default_value("3")
                    .help("How many"),
            )
            .arg(Arg::new("name").long("name").default_value("anon"))
    }
    fn __apply_params(&mut self, matches: &ArgMatches) -> Result<Value, clap::Error> {
        self.n = matches.get_one::<u32>("n").copied().unwrap_or_default();
        self.name = matches
            .get_one::<String>("name")
            .cloned()
            .unwrap_or_default();
        if self.n > 1000 {
            return Err(clap::Error::raw(
                ErrorKind::ValueValidation,
                "--n must be at most 1000\n",
            ));
        }
        Ok(json!({"n": self.n, "name": self.name}))
    }
    fn __restore_params(&mut self, params: &Value) -> Result<(), String> {
        self.n = params["n"]
            .as_u64()
            .and_then(|n| u32::try_from(n).ok())
            .ok_or("no n")?;
        self.name = params["name"].as_str().ok_or("no name")?.to_owned();
        Ok(())
    }
}

/// A flow whose parameters shadow `run --tag` (by its long name), `--help` (by `-h`) and the
/// global `--datastore` (by its id).
#[derive(Clone, Default, Serialize, Deserialize)]
struct Clash;

impl Flow for Clash {
    const GRAPH: &'static FlowGraph = &FlowGraph {
        name: "Clash",
        doc: "",
        steps: STEPS,
        start: 0,
        end: 1,
    };
    type __State = Clash;
    fn __as_state(&self) -> &Clash {
        self
    }
    fn __from_state(state: Clash) -> Clash {
        state
    }
    fn __run_step(
        &mut self,
        _step: usize,
        _input: StepInput<'_, Self>,
    ) -> Result<StepOutcome, StepError> {
        Ok(StepOutcome::Continue)
    }
    fn __foreach_items(&self, _step: usize) -> Result<Vec<Vec<u8>>, StepError> {
        Ok(Vec::new())
    }
    fn __record_caught(&mut self, _step: usize, _message: String) {}
    fn __params_command(command: Command) -> Command {
        command
            .arg(Arg::new("label").long("tag"))
            .arg(Arg::new("height").short('h'))
            .arg(Arg::new("datastore").long("store"))
            .arg(Arg::new("fine").long("fine"))
    }
}

struct Output {
    code: u8,
    out: String,
    err: String,
}

fn cli<F: Flow>(datastore: &std::path::Path, args: &[&str]) -> Output {
    let mut argv = vec![
        "params".to_owned(),
        "--datastore".to_owned(),
        datastore.display().to_string(),
    ];
    argv.extend(args.iter().map(|a| (*a).to_owned()));
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let code = run_cli_with::<F, _, _>(argv, &mut out, &mut err);
    Output {
        code,
        out: String::from_utf8_lossy(&out).into_owned(),
        err: String::from_utf8_lossy(&err).into_owned(),
    }
}

fn json_of(o: &Output) -> Value {
    serde_json::from_str(&o.out).unwrap_or_else(|e| panic!("not JSON ({e}): {}{}", o.out, o.err))
}

#[test]
fn parameters_are_parsed_stored_and_restored() {
    let dir = tempfile::tempdir().expect("temp dir");
    let o = cli::<Params>(dir.path(), &["run", "--n", "21", "--name", "ann"]);
    assert_eq!(o.code, EXIT_OK, "{}{}", o.out, o.err);
    let o = cli::<Params>(dir.path(), &["dump", "latest/end", "--json"]);
    assert_eq!(json_of(&o), json!({"n": 21, "name": "ann", "doubled": 42}));
    let o = cli::<Params>(dir.path(), &["runs", "--json"]);
    assert_eq!(json_of(&o)[0]["params"], json!({"n": 21, "name": "ann"}));
    let o = cli::<Params>(dir.path(), &["dump", "latest"]);
    assert!(
        o.out.contains(r#"params:    {"n":21,"name":"ann"}"#),
        "{}",
        o.out
    );

    // Defaults, and a resume that reruns `start` with the origin's parameters.
    let o = cli::<Params>(dir.path(), &["run"]);
    assert_eq!(o.code, EXIT_OK, "{}{}", o.out, o.err);
    let o = cli::<Params>(
        dir.path(),
        &["dump", "latest/end", "--artifact", "doubled", "--json"],
    );
    assert_eq!(json_of(&o), json!(6));
    let o = cli::<Params>(dir.path(), &["resume", "start"]);
    assert_eq!(o.code, EXIT_OK, "{}{}", o.out, o.err);
    let o = cli::<Params>(dir.path(), &["dump", "latest/end", "--json"]);
    assert_eq!(json_of(&o), json!({"n": 3, "name": "anon", "doubled": 6}));

    let o = cli::<Params>(dir.path(), &["run", "--help"]);
    assert_eq!(o.code, EXIT_OK);
    assert!(
        o.out.contains("--n <n>") && o.out.contains("How many"),
        "{}",
        o.out
    );
}

#[test]
fn bad_parameters_are_exit_2_and_write_nothing() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = dir.path().join("store");
    for (args, message) in [
        (
            &["run", "--n", "many"][..],
            "invalid value 'many' for '--n <n>'",
        ),
        (&["run", "--n", "-1"][..], "-1"),
        (&["run", "--m", "1"][..], "unexpected argument '--m'"),
        (&["run", "--n", "5000"][..], "--n must be at most 1000"),
        (&["run", "--n"][..], "a value is required"),
    ] {
        let o = cli::<Params>(&store, args);
        assert_eq!(o.code, EXIT_USAGE, "{args:?}: {}{}", o.out, o.err);
        assert!(o.err.contains(message), "{args:?}: {}", o.err);
        assert!(o.err.starts_with("error: "), "{args:?}: {}", o.err);
    }
    assert!(!store.exists(), "bad parameters created the datastore");
}

#[test]
fn a_parameter_that_shadows_an_option_is_reported() {
    let dir = tempfile::tempdir().expect("temp dir");
    let o = cli::<Clash>(dir.path(), &["show"]);
    assert_eq!(o.code, EXIT_USAGE);
    assert_eq!(
        o.err,
        "error: flow parameter `--tag` clashes with the built-in option `--tag` of `run`; rename it\n\
         error: flow parameter `-h` clashes with the built-in option `-h` of `run`; rename it\n\
         error: flow parameter `--store` has the id `datastore` of the built-in option `--datastore` of `run`; rename it\n",
    );
}
