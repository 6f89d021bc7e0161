//! The dynamic task graph: which tasks a finished task makes ready, and the barriers where
//! branches wait for their join.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use super::cpu_budget::CpuBudget;
use super::task::{TaskFailed, load_items, runtime_failure, spec_of, task_id};
use super::{Finished, Frame, FrameKind, JoinInput, PendingInput, PendingTask, RunContext};
use crate::datastore::TaskIndex;
use crate::flow::{Flow, StepOutcome};
use crate::graph::{Loops, Transition};
use crate::run::{TaskId, TaskMeta, TaskPath};

/// Branches waiting for their join.
struct Barrier {
    expected: usize,
    base: (TaskPath, Arc<TaskIndex>),
    /// The frames the split ran in, which are the frames its join runs in.
    base_frames: Vec<Frame>,
    base_reused: bool,
    arrived: Vec<JoinInput>,
    all_reused: bool,
}

pub(crate) struct Scheduler<F> {
    pub queue: VecDeque<PendingTask<F>>,
    pub running: usize,
    pub failure: Option<(TaskPath, crate::run::TaskFailure)>,
    pub reached_end: bool,
    /// The step to stop after (`--until`): what it leads to is not queued.
    pub until: Option<usize>,
    /// Whether a task of `until` finished, so that the run stopped on purpose.
    pub stopped_until: bool,
    pub tasks_run: usize,
    pub tasks_reused: usize,
    /// The cpus free for the queued tasks to start (unbounded unless the run sets one).
    pub cpus: CpuBudget,
    /// For each split step, the join that closes it.
    closing_join: Vec<Option<usize>>,
    loops: Loops,
    /// Keyed by (join step, the join's task id).
    barriers: HashMap<(usize, TaskId), Barrier>,
}

impl<F: Flow> Scheduler<F> {
    pub fn new() -> Self {
        let graph = F::GRAPH;
        let closing_join = graph.closing_joins();
        let loops = Loops::of(graph);
        // `start` heads no loop: nothing may lead back to it.
        let start = PendingTask {
            step: graph.start,
            task_id: "0".into(),
            frames: Vec::new(),
            input: PendingInput::Start,
            parents_reused: true,
        };
        Scheduler {
            queue: VecDeque::from([start]),
            running: 0,
            failure: None,
            reached_end: false,
            until: None,
            stopped_until: false,
            tasks_run: 0,
            tasks_reused: 0,
            cpus: CpuBudget::unlimited(),
            closing_join,
            loops,
            barriers: HashMap::new(),
        }
    }

    /// Queues what `done` makes ready; returns how many tasks were queued per step.
    pub fn on_finished(&mut self, done: Finished<F>) -> Vec<(usize, usize)> {
        let graph = F::GRAPH;
        if done.reused {
            self.tasks_reused += 1;
        } else {
            self.tasks_run += 1;
        }
        let mut queued = Vec::new();
        // `--until end` is the whole run.
        if self.until == Some(done.step) && done.step != graph.end {
            self.stopped_until = true;
            return queued;
        }
        let step = &graph.steps[done.step];
        match step.transition {
            Transition::End => self.reached_end = true,
            Transition::Linear(next) => {
                if graph.steps[next].join.is_some() {
                    if let Some(n) = self.arrive(next, &done) {
                        queued.push((next, n));
                    }
                } else {
                    let frames = self.entered(next, self.left(next, &done.frames));
                    self.push_child(next, frames, &done, None);
                    queued.push((next, 1));
                }
            }
            Transition::Branch(targets) => {
                self.open_barrier(&done, targets.len());
                for (b, &t) in targets.iter().enumerate() {
                    let mut frames = done.frames.clone();
                    frames.push(Frame {
                        split: done.step,
                        index: b,
                        count: targets.len(),
                        kind: FrameKind::Branch,
                    });
                    let frames = self.entered(t, frames);
                    self.push_child(t, frames, &done, None);
                    queued.push((t, 1));
                }
            }
            Transition::Foreach { body, .. } => {
                let items = done.items.clone().unwrap_or_default();
                let n = items.len();
                self.open_barrier(&done, n);
                if n == 0 {
                    // Nothing to fan out over: the join runs at once with no inputs.
                    if let Some(join) = self.closing_join[done.step] {
                        self.release(join, task_id(&done.frames));
                        queued.push((join, 1));
                    }
                }
                for i in 0..n {
                    let mut frames = done.frames.clone();
                    frames.push(Frame {
                        split: done.step,
                        index: i,
                        count: n,
                        kind: FrameKind::Foreach,
                    });
                    let frames = self.entered(body, frames);
                    self.push_child(body, frames, &done, Some((Arc::clone(&items), i)));
                }
                queued.push((body, n));
            }
            Transition::Switch(arms) => {
                if let StepOutcome::Arm(k) = done.outcome
                    && let Some(arm) = arms.get(k)
                {
                    let frames = if self.loops.is_back_arm(done.step, arm.target) {
                        match self.next_pass(&done, arm.target) {
                            Ok(frames) => frames,
                            Err(message) => {
                                self.failure = Some((done.path.clone(), runtime_failure(message)));
                                return queued;
                            }
                        }
                    } else {
                        self.entered(arm.target, self.left(arm.target, &done.frames))
                    };
                    self.push_child(arm.target, frames, &done, None);
                    queued.push((arm.target, 1));
                } else {
                    self.failure = Some((
                        done.path.clone(),
                        runtime_failure("the switch step did not choose an arm"),
                    ));
                }
            }
        }
        queued
    }

    /// `frames` without the loops `to` is not part of: the loops a switch arm leaves.
    fn left(&self, to: usize, frames: &[Frame]) -> Vec<Frame> {
        frames
            .iter()
            .copied()
            .filter(|f| f.kind != FrameKind::Loop || self.loops.head_contains(f.split, to))
            .collect()
    }

    /// `frames` with the first pass of the loop `to` heads, when an edge other than a back arm
    /// leads to it.
    fn entered(&self, to: usize, mut frames: Vec<Frame>) -> Vec<Frame> {
        if self.loops.headed_by(to).is_some() {
            frames.push(Frame {
                split: to,
                index: 0,
                count: 0,
                kind: FrameKind::Loop,
            });
        }
        frames
    }

    /// The frames of the next pass of the loop headed by `head`, which the switch `done` chose
    /// to go back to; an error when its `max_iterations` are used up.
    fn next_pass(&self, done: &Finished<F>, head: usize) -> Result<Vec<Frame>, String> {
        let graph = F::GRAPH;
        let at = done
            .frames
            .iter()
            .rposition(|f| f.kind == FrameKind::Loop && f.split == head)
            .ok_or_else(|| {
                format!(
                    "step `{}` went back to `{}` from outside its loop",
                    graph.steps[done.step].name, graph.steps[head].name
                )
            })?;
        // Inner loops the back arm leaves end here; no split can be open inside the pass.
        let mut frames = done.frames[..=at].to_vec();
        let passes = frames[at].index + 1;
        if let Some(max) = graph.steps[done.step].options.max_iterations
            && passes >= max as usize
        {
            return Err(format!(
                "`{}` chose to go back to `{}` after {passes} pass{}, the most its `max_iterations = {max}` allows",
                graph.steps[done.step].name,
                graph.steps[head].name,
                if passes == 1 { "" } else { "es" }
            ));
        }
        frames[at].index = passes;
        Ok(frames)
    }

    fn push_child(
        &mut self,
        step: usize,
        frames: Vec<Frame>,
        parent: &Finished<F>,
        item: Option<(Arc<Vec<Vec<u8>>>, usize)>,
    ) {
        let task_id = task_id(&frames);
        let input = match item {
            None => PendingInput::Parent {
                path: parent.path.clone(),
                index: Arc::clone(&parent.index),
                state: parent.state.clone(),
            },
            Some((items, position)) => PendingInput::Item {
                path: parent.path.clone(),
                index: Arc::clone(&parent.index),
                state: parent.state.clone(),
                items,
                position,
            },
        };
        self.queue.push_back(PendingTask {
            step,
            task_id,
            frames,
            input,
            parents_reused: parent.reused,
        });
    }

    fn open_barrier(&mut self, split: &Finished<F>, expected: usize) {
        let Some(join) = self.closing_join[split.step] else {
            return;
        };
        let key = (join, task_id(&split.frames));
        self.barriers.insert(
            key,
            Barrier {
                expected,
                base: (split.path.clone(), Arc::clone(&split.index)),
                base_frames: split.frames.clone(),
                base_reused: split.reused,
                arrived: Vec::new(),
                all_reused: true,
            },
        );
    }

    /// A branch reached join `join`; queues the join when it was the last. Returns 1 if queued.
    fn arrive(&mut self, join: usize, done: &Finished<F>) -> Option<usize> {
        let top = done.frames.last()?;
        let outer = &done.frames[..done.frames.len() - 1];
        let key = (join, task_id(outer));
        let barrier = self.barriers.get_mut(&key)?;
        barrier.arrived.push(JoinInput {
            path: done.path.clone(),
            position: top.index,
            index: Arc::clone(&done.index),
        });
        barrier.all_reused &= done.reused;
        if barrier.arrived.len() == barrier.expected {
            self.release(join, key.1);
            return Some(1);
        }
        None
    }

    fn release(&mut self, join: usize, join_task: TaskId) {
        let Some(mut barrier) = self.barriers.remove(&(join, join_task.clone())) else {
            return;
        };
        barrier.arrived.sort_by_key(|i| i.position);
        self.queue.push_back(PendingTask {
            step: join,
            task_id: join_task,
            frames: barrier.base_frames,
            input: PendingInput::Join {
                base: barrier.base,
                inputs: barrier.arrived,
            },
            parents_reused: barrier.all_reused && barrier.base_reused,
        });
    }
}

/// For a resumed run: reuses the origin's task at the same place when it succeeded there and
/// everything it reads from was reused too. Nothing is copied but the task's small records.
pub(crate) fn try_reuse<F: Flow>(
    ctx: &RunContext,
    pending: &PendingTask<F>,
) -> Result<Option<Finished<F>>, TaskFailed> {
    let Some(origin) = &ctx.origin else {
        return Ok(None);
    };
    if !pending.parents_reused || origin.rerun[pending.step] {
        return Ok(None);
    }
    let graph = F::GRAPH;
    let step = &graph.steps[pending.step];
    let path = pending.path();
    let fail = |message: String| TaskFailed::new(path.clone(), runtime_failure(message));
    let origin_key =
        crate::run::RunStore::task_key(graph.name, &origin.run_id, step.name, &pending.task_id)
            .map_err(|e| fail(e.to_string()))?;
    // One read: the done marker holds the index and the metadata. An origin task whose marker
    // cannot be read as one (cut short by a power loss, garbage from a bad disk, a format this
    // version does not read) is not reusable: it runs again, as if it had never completed.
    let (index, origin_meta) = match ctx.store.read_done(&origin_key) {
        Ok(Some((index, Some(meta)))) => (index, meta),
        Ok(_) => return Ok(None),
        Err(e) if e.is_damaged_record() => {
            tracing::warn!("not reusing task {path} of run {}: {e}", origin.run_id);
            return Ok(None);
        }
        Err(e) => return Err(fail(e.to_string())),
    };
    // Its marker will name the origin's blobs without writing them: each must be there whole,
    // and fresh, so that a collection going on keeps it (`datastore::freshness`). A blob gone
    // or damaged makes the task run again, which stores it anew.
    let blobs = ctx.store.blobs().remembering(&ctx.known_blobs);
    // The elements' blob is not sized in its record: any size will do here, and reading it
    // below checks it by its hash.
    let items = origin_meta.foreach.as_ref().map(|f| (&f.items, None));
    let artifacts = index.artifacts.iter().map(|a| (&a.hash, Some(a)));
    for (hash, artifact) in artifacts.chain(items) {
        match blobs.keep_fresh(hash, artifact.map(|a| a.size)) {
            Ok(true) => {}
            Ok(false) => {
                let what = artifact.map_or("its foreach elements".to_string(), |a| {
                    format!("its artifact `{}`", a.name)
                });
                tracing::warn!(
                    "not reusing task {path} of run {}: {what} is missing or damaged",
                    origin.run_id
                );
                return Ok(None);
            }
            Err(e) => return Err(fail(e.to_string())),
        }
    }
    // Everything that decides whether the task can be reused comes before its done marker is
    // written in this run: once written, the marker is final, and it must describe the state
    // the following tasks start from.
    let outcome = match (&origin_meta.chose, step.transition) {
        (Some(chosen), Transition::Switch(arms)) => {
            match arms
                .iter()
                .position(|a| graph.steps[a.target].name == chosen)
            {
                Some(k) => StepOutcome::Arm(k),
                // The flow changed since: the recorded choice is no arm of this version.
                None => return Ok(None),
            }
        }
        (None, Transition::Switch(_)) => return Ok(None),
        _ => StepOutcome::Continue,
    };
    let items = match &origin_meta.foreach {
        Some(f) => match load_items(ctx, &f.items) {
            Ok(items) if items.len() == f.count => Some(Arc::new(items)),
            Ok(_) | Err(_) => {
                tracing::warn!(
                    "not reusing task {path} of run {}: its foreach elements are damaged",
                    origin.run_id
                );
                return Ok(None);
            }
        },
        None if matches!(step.transition, Transition::Foreach { .. }) => return Ok(None),
        None => None,
    };
    let key = ctx
        .task_key(step.name, &pending.task_id)
        .map_err(|e| fail(e.to_string()))?;
    let meta = TaskMeta {
        run_id: ctx.run_id.clone(),
        spec: spec_of(pending),
        origin_run_id: Some(
            origin_meta
                .origin_run_id
                .clone()
                .unwrap_or_else(|| origin.run_id.clone()),
        ),
        ..origin_meta
    };
    let index = super::task::complete(ctx, &key, Arc::new(index), &meta)
        .map_err(|e| fail(e.to_string()))?;
    Ok(Some(Finished {
        path,
        step: pending.step,
        frames: pending.frames.clone(),
        index,
        state: None,
        outcome,
        items,
        reused: true,
    }))
}
