//! `spin`: one task of a past run runs again with the current code, from what that run gave it,
//! into a scratch run; only that task's artifacts can change, and nothing of the past run or the
//! flow's latest runs moves.

use std::ffi::OsString;
use std::path::Path;

use blooming_flowers::Flow;
use blooming_flowers::cli::run_cli_with;
use blooming_flowers::client::Client;

#[allow(dead_code)]
#[path = "../examples/squares.rs"]
mod squares;

/// The squares example after an edit: `sq` cubes instead of squaring.
mod edited {
    use blooming_flowers::prelude::*;

    #[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
    enum Route {
        Big,
        Small,
    }

    #[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
    pub struct Squares {
        xs: Vec<u64>,
        square: u64,
        total: u64,
        note: String,
        verdict: String,
    }

    #[flow]
    impl Squares {
        #[step(next = [left, right])]
        fn start(&mut self) {
            self.xs = (1..=10).collect();
        }
        #[step(next = both)]
        fn left(&mut self) {
            self.note = "from the left".into();
        }
        #[step(next = both)]
        fn right(&mut self) {}
        #[step(join, next = fan)]
        fn both(&mut self, inputs: Inputs<Self>) -> Result<(), MergeError> {
            inputs.merge_artifacts(self)
        }
        #[step(foreach = xs, next = sq)]
        fn fan(&mut self) {}
        #[step(next = gather)]
        fn sq(&mut self, x: u64) -> Result<(), String> {
            if x == 7 {
                return Err("seven is not welcome here".into());
            }
            self.square = x * x * x;
            Ok(())
        }
        #[step(join, next = decide)]
        fn gather(&mut self, inputs: Inputs<Self>) {
            self.total = inputs.iter().map(|i| i.square).sum();
        }
        #[step(switch(Route::Big => big, Route::Small => small))]
        fn decide(&mut self) -> Route {
            if self.total > 100 {
                Route::Big
            } else {
                Route::Small
            }
        }
        #[step(next = end)]
        fn big(&mut self) {
            self.verdict = format!("{} is big", self.total);
        }
        #[step(next = end)]
        fn small(&mut self) {
            self.verdict = format!("{} is small", self.total);
        }
        #[step]
        fn end(&mut self) {}
    }
}

struct Output {
    code: u8,
    out: String,
    err: String,
}

fn cli<F: Flow>(datastore: &Path, args: &[&str]) -> Output {
    let mut argv: Vec<OsString> = vec!["squares".into(), "--datastore".into(), datastore.into()];
    argv.extend(args.iter().map(OsString::from));
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let code = run_cli_with::<F, _, _>(argv, &mut out, &mut err);
    Output {
        code,
        out: String::from_utf8_lossy(&out).into_owned(),
        err: String::from_utf8_lossy(&err).into_owned(),
    }
}

/// The id of the run a `spin` made, from its first line.
fn scratch_run(out: &str) -> String {
    out.split(" into run ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_default()
        .to_string()
}

#[test]
fn a_spin_runs_the_edited_step_alone_and_moves_nothing_else() {
    let dir = tempfile::tempdir().expect("temp dir");
    let o = cli::<squares::Squares>(dir.path(), &["run"]);
    assert_eq!(o.code, 0, "{}", o.err);
    let client = Client::open(dir.path()).expect("client");
    let flow = client.flow("Squares");
    let origin = flow.latest_run().expect("a run").id().clone();

    let o = cli::<edited::Squares>(
        dir.path(),
        &["spin", "sq", "--task-id", "3", "--origin-run-id", &origin],
    );
    assert_eq!(o.code, 0, "{}\n{}", o.out, o.err);
    assert!(
        o.out.contains("1 artifact changed, 4 unchanged:"),
        "{}",
        o.out
    );
    assert!(o.out.contains("  square: 16 → 64"), "{}", o.out);
    let scratch = scratch_run(&o.out);
    let run = flow.run(&scratch).expect("the scratch run");
    let record = run.record();
    assert_eq!(record.origin_run_id.as_ref(), Some(&origin));
    let spun = record.spin_of.as_ref().expect("a spin");
    assert_eq!((spun.step.as_str(), spun.task.as_str()), ("sq", "3"));
    let task = run.step("sq").expect("sq").task("3").expect("task");
    assert_eq!(task.artifact::<u64>("square").expect("square"), 64);
    // The scratch run holds that task alone.
    assert_eq!(run.step_names().expect("steps"), ["sq"]);

    // Nothing of the origin moved, and the scratch run is nobody's latest.
    let again = flow.run(&origin).expect("origin");
    let square: u64 = again
        .step("sq")
        .and_then(|s| s.task("3"))
        .and_then(|t| t.artifact("square"))
        .expect("square");
    assert_eq!(square, 16);
    assert_eq!(flow.latest_run().expect("latest").id(), &origin);
    assert_eq!(flow.latest_successful_run().expect("latest").id(), &origin);
    let o = cli::<squares::Squares>(dir.path(), &["runs"]);
    assert!(
        o.out
            .lines()
            .any(|l| l.starts_with(scratch.as_str())
                && l.ends_with(&format!("spin of {origin}/sq/3"))),
        "{}",
        o.out
    );

    // A step whose code did not change: every artifact is the same.
    let o = cli::<squares::Squares>(dir.path(), &["spin", "gather"]);
    assert_eq!(o.code, 0, "{}", o.err);
    assert!(
        o.out.contains("0 artifacts changed, 5 unchanged."),
        "{}",
        o.out
    );
    assert_eq!(flow.latest_run().expect("latest").id(), &origin);
}

#[test]
fn a_spin_says_what_is_wrong() {
    let dir = tempfile::tempdir().expect("temp dir");
    let o = cli::<squares::Squares>(dir.path(), &["spin", "sq"]);
    assert_eq!(o.code, 2, "no run yet: {}", o.err);
    let o = cli::<squares::Squares>(dir.path(), &["run"]);
    assert_eq!(o.code, 0, "{}", o.err);

    let o = cli::<squares::Squares>(dir.path(), &["spin", "sqr"]);
    assert_eq!(o.code, 2);
    assert!(o.err.contains("has no step `sqr`"), "{}", o.err);
    let o = cli::<squares::Squares>(dir.path(), &["spin", "sq"]);
    assert_eq!(o.code, 2);
    assert!(
        o.err.contains("step `sq` has 10 tasks in run")
            && o.err.contains("--task-id (0, 1, 2, 3, 4, …)"),
        "{}",
        o.err
    );
    let o = cli::<squares::Squares>(dir.path(), &["spin", "sq", "--task-id", "10"]);
    assert_eq!(o.code, 2);
    assert!(
        o.err.contains("has no task sq/10 that started"),
        "{}",
        o.err
    );
    let o = cli::<squares::Squares>(dir.path(), &["spin", "sq", "--task-id", "../x"]);
    assert_eq!(o.code, 2, "{}", o.err);

    // A parent task the origin run no longer holds: a clear error, and the origin keeps the rest.
    let origin = Client::open(dir.path())
        .expect("client")
        .flow("Squares")
        .latest_run()
        .expect("run")
        .id()
        .clone();
    let marker = dir
        .path()
        .join(format!("flows/Squares/runs/{origin}/steps/fan/0/done.json"));
    let kept = std::fs::read(&marker).expect("the fan's marker");
    std::fs::remove_file(&marker).expect("remove it");
    let o = cli::<squares::Squares>(dir.path(), &["spin", "sq", "--task-id", "2"]);
    assert_eq!(o.code, 1, "{}", o.out);
    assert!(
        o.err
            .contains(&format!("task fan/0 of run {origin} is not complete")),
        "{}",
        o.err
    );
    std::fs::write(&marker, kept).expect("put it back");
    let o = cli::<squares::Squares>(dir.path(), &["dump", &format!("{origin}/sq/2")]);
    assert_eq!(o.code, 0, "the origin's task reads whole: {}", o.err);

    // The edited code fails on 7: the spin says so and exits 1; the failure is the scratch run's.
    let o = cli::<edited::Squares>(dir.path(), &["spin", "sq", "--task-id", "6"]);
    assert_eq!(o.code, 1, "{}", o.out);
    assert!(o.err.contains("seven is not welcome here"), "{}", o.err);
    let scratch = scratch_run(&o.out);
    let client = Client::open(dir.path()).expect("client");
    let run = client.flow("Squares").run(&scratch).expect("scratch run");
    assert!(!run.successful());
}
