//! Run records and `latest` pointers under concurrent writers and hostile content: a record is
//! the run its location says, `tag` and the end of a run never undo each other, `latest` only
//! moves forward (by start time, whatever the ids), and a damaged pointer is a clear error.

use std::path::Path;

use blooming_flowers::cli::{EXIT_OK, run_cli_with};
use blooming_flowers::prelude::*;
use blooming_flowers::run::{Latest, RunId, RunRecord, RunStatus, RunStore};

#[path = "run_records/contention.rs"]
mod contention;
use contention::record;

#[derive(Clone, Default, Serialize, Deserialize)]
struct Tiny {
    n: u64,
}

#[flow]
impl Tiny {
    #[step(next = end)]
    fn start(&mut self) {
        self.n = 7;
    }

    #[step]
    fn end(&mut self) {}
}

struct Output {
    code: u8,
    out: String,
    err: String,
}

impl std::fmt::Debug for Output {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit {}\n--- stdout\n{}--- stderr\n{}",
            self.code, self.out, self.err
        )
    }
}

fn cli<F: Flow>(datastore: &Path, args: &[&str]) -> Output {
    let mut argv = vec![
        "flow".to_owned(),
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

fn run_id_in(text: &str) -> String {
    text.split_whitespace()
        .skip_while(|w| *w != "Run")
        .nth(1)
        .unwrap_or_else(|| panic!("no run id in {text}"))
        .to_owned()
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read dir") {
        let entry = entry.expect("entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy");
        }
    }
}

fn local_store(dir: &Path) -> RunStore {
    RunStore::open_local(dir).expect("store")
}

// ------------------------------------------------------------------------------- item 3

#[test]
fn tagging_a_copied_run_directory_tags_the_copy_and_leaves_the_original_alone() {
    let dir = tempfile::tempdir().expect("dir");
    let o = cli::<Tiny>(dir.path(), &["run"]);
    assert_eq!(o.code, EXIT_OK, "{o:?}");
    let original = run_id_in(&o.out);
    let runs = dir.path().join("flows/Tiny/runs");
    let copy = "20000101T000000000Z-c0c0c0c0";
    copy_dir(&runs.join(&original), &runs.join(copy));
    let original_record = runs.join(&original).join("run.json");
    let before = std::fs::read(&original_record).expect("original record");

    let o = cli::<Tiny>(dir.path(), &["tag", copy, "add", "copied"]);
    assert_eq!(o.code, EXIT_OK, "{o:?}");
    assert!(o.out.contains(copy), "names the copy: {o:?}");

    assert_eq!(
        std::fs::read(&original_record).expect("original record"),
        before,
        "the original's record was rewritten"
    );
    let store = local_store(dir.path());
    let copied = store.read_run("Tiny", copy).expect("copy");
    assert_eq!(copied.run_id, copy);
    assert_eq!(copied.tags, ["copied"]);
    let untouched = store.read_run("Tiny", &original).expect("original");
    assert!(untouched.tags.is_empty(), "{:?}", untouched.tags);
}

#[test]
fn a_record_is_the_run_and_flow_of_its_location() {
    let dir = tempfile::tempdir().expect("dir");
    let store = local_store(dir.path());
    store
        .create_run(&RunRecord {
            flow: "Other".to_owned(),
            ..record("someone-else", "2026-01-01T00:00:00.000Z")
        })
        .expect("create");
    let from = dir.path().join("flows/Other/runs/someone-else");
    let to = dir.path().join("flows/Tiny/runs/here-now");
    copy_dir(&from, &to);
    let read = store.read_run("Tiny", "here-now").expect("read");
    assert_eq!(
        (read.flow.as_str(), read.run_id.as_str()),
        ("Tiny", "here-now")
    );
}

// ------------------------------------------------------------------------------- item 8

/// The steps of `tag` (read the record, then write the change) with the end of the run in
/// between: the end's status and the tag both stay.
#[test]
fn a_tag_read_before_the_run_ends_and_written_after_keeps_the_status() {
    let dir = tempfile::tempdir().expect("dir");
    let store = local_store(dir.path());
    let mut run = record("r1", "2026-01-01T00:00:00.000Z");
    store.create_run(&run).expect("create");

    // `tag` reads the record (to resolve the run) …
    let seen = store.read_run("Tiny", "r1").expect("read");
    // … the run ends …
    run.status = RunStatus::Succeeded;
    run.finished = Some("2026-01-01T00:01:00.000Z".to_owned());
    store.update_run(&run).expect("end");
    // … and `tag` writes its change.
    let after = store
        .update_tags("Tiny", &seen.run_id, &["late"], &[])
        .expect("tag");
    assert_eq!(after.status, RunStatus::Succeeded);

    let stored = store.read_run("Tiny", "r1").expect("read");
    assert_eq!(stored.status, RunStatus::Succeeded);
    assert!(stored.finished.is_some());
    assert_eq!(stored.tags, ["initial", "late"]);
}

/// Threads tag a run while it ends: its status and every tag survive.
#[test]
fn tags_added_while_a_run_ends_all_survive_with_its_status() {
    let dir = tempfile::tempdir().expect("dir");
    let connect = || local_store(dir.path());
    for round in 0..5 {
        contention::tags_added_while_a_run_ends_all_survive(&connect, &format!("r{round}"), 8, 10);
    }
}

// ------------------------------------------------------------------------------- item 9

fn latest(store: &RunStore, which: Latest) -> Option<RunId> {
    store.latest("Tiny", which).expect("latest")
}

/// Creates and ends a run as `run` does: `any` moves at the start, `succeeded` at the end.
fn start(store: &RunStore, id: &str, started: &str) -> RunRecord {
    let run = record(id, started);
    store.create_run(&run).expect("create");
    store
        .advance_latest("Tiny", Latest::Any, id)
        .expect("advance");
    run
}

fn succeed(store: &RunStore, mut run: RunRecord) {
    run.status = RunStatus::Succeeded;
    run.finished = Some("2026-06-01T00:00:00.000Z".to_owned());
    store.update_run(&run).expect("end");
}

#[test]
fn an_older_run_succeeding_after_a_newer_one_leaves_latest_on_the_newer() {
    let dir = tempfile::tempdir().expect("dir");
    let store = local_store(dir.path());
    let older = start(
        &store,
        "20260101T000000000Z-aaaaaaaa",
        "2026-01-01T00:00:00.000Z",
    );
    let newer = start(
        &store,
        "20260101T000001000Z-bbbbbbbb",
        "2026-01-01T00:00:01.000Z",
    );
    succeed(&store, newer.clone());
    succeed(&store, older);
    assert_eq!(
        latest(&store, Latest::Succeeded),
        Some(newer.run_id.clone())
    );
    assert_eq!(latest(&store, Latest::Any), Some(newer.run_id));
}

/// Run ids chosen by hand (`init --run-id`, Argo's names) need not sort by time.
#[test]
fn latest_follows_start_times_when_ids_sort_the_other_way() {
    let dir = tempfile::tempdir().expect("dir");
    let store = local_store(dir.path());
    let older = start(&store, "zzz-first", "2026-01-01T00:00:00.000Z");
    let newer = start(&store, "aaa-second", "2026-01-01T00:00:05.000Z");
    assert_eq!(latest(&store, Latest::Any), Some(newer.run_id.clone()));
    succeed(&store, older.clone());
    assert_eq!(latest(&store, Latest::Succeeded), Some(older.run_id));
    succeed(&store, newer.clone());
    assert_eq!(latest(&store, Latest::Succeeded), Some(newer.run_id));
}

/// Eight threads start and end runs at once, twenty times over.
#[test]
fn latest_ends_on_the_newest_start_among_many_concurrent_runs() {
    let dir = tempfile::tempdir().expect("dir");
    contention::runs_ending_at_once_leave_latest_on_the_newest(&|| local_store(dir.path()), 8, 20);
}

#[test]
fn a_damaged_pointer_is_an_error_naming_it_without_its_content() {
    let dir = tempfile::tempdir().expect("dir");
    let store = local_store(dir.path());
    start(&store, "a-run", "2026-01-01T00:00:00.000Z");
    let pointer = dir.path().join("flows/Tiny/latest/any");
    for damage in [
        "\u{1b}]0;owned\u{7}../../etc/passwd",
        "has space",
        "",
        "{\"run_id\": \"\u{1b}[31mred\"}",
        "{not json",
    ] {
        std::fs::write(&pointer, damage).expect("damage");
        let e = store
            .latest("Tiny", Latest::Any)
            .expect_err(&format!("{damage:?} is not a run id"));
        let message = e.to_string();
        assert!(message.contains("flows/Tiny/latest/any"), "{message}");
        for part in ["owned", "passwd", "has space", "red", "not json"] {
            assert!(
                !(damage.contains(part) && message.contains(part)),
                "{message:?} echoes {damage:?}"
            );
        }
        assert!(!message.contains('\u{1b}'), "{message:?}");

        let o = cli::<Tiny>(dir.path(), &["dump", "latest"]);
        assert_ne!(o.code, EXIT_OK, "{o:?}");
        assert!(o.err.contains("latest/any"), "{o:?}");
        assert!(
            !o.err.contains('\u{1b}') && !o.out.contains('\u{1b}'),
            "{o:?}"
        );
    }
}

/// Pointers written before they carried start times (the bare run id) still read, and a
/// newer run moves them forward.
#[test]
fn a_pointer_holding_a_bare_run_id_still_reads_and_moves_forward() {
    let dir = tempfile::tempdir().expect("dir");
    let store = local_store(dir.path());
    let old = record("zz-old", "2026-01-01T00:00:00.000Z");
    store.create_run(&old).expect("create");
    let pointer = dir.path().join("flows/Tiny/latest/any");
    std::fs::create_dir_all(pointer.parent().expect("parent")).expect("mkdir");
    std::fs::write(&pointer, "zz-old\n").expect("old pointer");
    assert_eq!(latest(&store, Latest::Any).as_deref(), Some("zz-old"));
    start(&store, "aa-new", "2026-01-02T00:00:00.000Z");
    assert_eq!(latest(&store, Latest::Any).as_deref(), Some("aa-new"));
    // An older run does not move it back.
    start(&store, "mm-older", "2025-12-31T00:00:00.000Z");
    assert_eq!(latest(&store, Latest::Any).as_deref(), Some("aa-new"));
}
