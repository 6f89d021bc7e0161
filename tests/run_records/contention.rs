//! Many writers of one flow's run records and `latest` pointers at once, for a local datastore
//! and an S3 one alike. Each writer opens the store for itself (`connect`), as separate
//! processes would.

use std::sync::{Barrier, Mutex};

use blooming_flowers::run::{GraphRecord, Latest, RunRecord, RunStatus, RunStore};

/// The flow every record here belongs to.
pub const FLOW: &str = "Tiny";

/// A run record as `run` would write it, without running anything.
pub fn record(run_id: &str, started: &str) -> RunRecord {
    RunRecord {
        format: 1,
        flow: FLOW.to_owned(),
        run_id: run_id.into(),
        params: serde_json::Value::Null,
        status: RunStatus::Running,
        started: started.to_owned(),
        finished: None,
        user: "tester".to_owned(),
        host: "here".to_owned(),
        pid: 1,
        tags: vec!["initial".to_owned()],
        graph: GraphRecord { steps: Vec::new() },
        origin_run_id: None,
        failure: None,
        provenance: None,
        spin_of: None,
        keep_checkpoints: Default::default(),
        deleting: None,
    }
}

/// A small deterministic generator, so that a failure can be replayed.
fn next(seed: &mut u64) -> u64 {
    *seed ^= *seed << 13;
    *seed ^= *seed >> 7;
    *seed ^= *seed << 17;
    *seed
}

/// `threads` writers, in `rounds` rounds: in each, every writer starts a run (moving
/// `latest/any`) and ends it successfully (moving `latest/succeeded`), all at once. Start
/// times are random within the round's hour (rounds go forward in time, so every round has
/// pointers to move and writers colliding); ids are random, unrelated to the start times.
/// After each round both pointers must name the run started last so far.
pub fn runs_ending_at_once_leave_latest_on_the_newest(
    connect: &(dyn Fn() -> RunStore + Sync),
    threads: usize,
    rounds: usize,
) {
    let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
    // runs[round][thread] = (id, started)
    let runs: Vec<Vec<(String, String)>> = (0..rounds)
        .map(|round| {
            (0..threads)
                .map(|t| {
                    let secs = next(&mut seed) % 3600;
                    let started = format!(
                        "2026-03-{:02}T{:02}:{:02}:{:02}.{:03}Z",
                        1 + round / 24,
                        round % 24,
                        secs / 60,
                        secs % 60,
                        next(&mut seed) % 1000
                    );
                    (format!("run-{:016x}-{round}-{t}", next(&mut seed)), started)
                })
                .collect()
        })
        .collect();
    let newest_after: Vec<String> = (0..rounds)
        .map(|round| {
            runs[..=round]
                .iter()
                .flatten()
                .max_by(|a, b| (&a.1, &a.0).cmp(&(&b.1, &b.0)))
                .map(|(id, _)| id.clone())
                .unwrap_or_default()
        })
        .collect();
    let barrier = Barrier::new(threads);
    let wrong = Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for t in 0..threads {
            let (runs, newest_after, barrier, wrong) = (&runs, &newest_after, &barrier, &wrong);
            scope.spawn(move || {
                let store = connect();
                for (round, row) in runs.iter().enumerate() {
                    let (id, started) = &row[t];
                    let mut run = record(id, started);
                    store.create_run(&run).expect("create");
                    barrier.wait();
                    store
                        .advance_latest(FLOW, Latest::Any, id)
                        .expect("advance");
                    run.status = RunStatus::Succeeded;
                    store.update_run(&run).expect("end");
                    barrier.wait();
                    if t == 0 {
                        for which in [Latest::Any, Latest::Succeeded] {
                            let latest = store.latest(FLOW, which).expect("latest");
                            if latest.as_deref() != Some(newest_after[round].as_str()) {
                                wrong
                                    .lock()
                                    .unwrap_or_else(|p| p.into_inner())
                                    .push(format!(
                                        "after round {round}, latest/{which} is {latest:?}, not {}",
                                        newest_after[round]
                                    ));
                            }
                        }
                    }
                }
            });
        }
    });
    let wrong = wrong.into_inner().unwrap_or_else(|p| p.into_inner());
    assert!(wrong.is_empty(), "{wrong:#?}");
}

/// `taggers` writers each add `tags_each` tags to one run while it ends: the run ends
/// succeeded, with every tag.
pub fn tags_added_while_a_run_ends_all_survive(
    connect: &(dyn Fn() -> RunStore + Sync),
    run_id: &str,
    taggers: usize,
    tags_each: usize,
) {
    let store = connect();
    let mut run = record(run_id, "2026-01-01T00:00:00.000Z");
    store.create_run(&run).expect("create");
    let barrier = Barrier::new(taggers + 1);
    std::thread::scope(|scope| {
        for t in 0..taggers {
            let barrier = &barrier;
            scope.spawn(move || {
                let store = connect();
                barrier.wait();
                for i in 0..tags_each {
                    let tag = format!("t{t}-{i}");
                    store
                        .update_tags(FLOW, run_id, &[tag.as_str()], &[])
                        .expect("tag");
                }
            });
        }
        barrier.wait();
        run.status = RunStatus::Succeeded;
        run.finished = Some("2026-01-01T00:01:00.000Z".to_owned());
        store.update_run(&run).expect("end");
    });
    let stored = store.read_run(FLOW, run_id).expect("read");
    assert_eq!(stored.status, RunStatus::Succeeded, "run {run_id}");
    assert!(stored.finished.is_some(), "run {run_id}");
    let missing: Vec<String> = (0..taggers)
        .flat_map(|t| (0..tags_each).map(move |i| format!("t{t}-{i}")))
        .filter(|tag| !stored.tags.contains(tag))
        .collect();
    assert!(missing.is_empty(), "run {run_id} lost {missing:?}");
    assert_eq!(stored.tags.first().map(String::as_str), Some("initial"));
}
