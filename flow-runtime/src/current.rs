//! Where the running step is: the counterpart of Metaflow's `current`.
//!
//! A step's signature carries its state, not its identity, yet a step sometimes needs to know which
//! run and task it is (to name an output file, to tag an external resource, to log which foreach item
//! it handles). The executor sets a [`Current`] for the thread that runs the task with
//! [`with_current`], and the step reads it with [`current`].
//!
//! Like log capture, this follows the thread: a step that spawns threads must pass the value along
//! (`current()` returns a clone that can be moved into the new thread and set there with
//! [`with_current`]).

use std::cell::RefCell;
use std::sync::Arc;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::card::CardWriter;
use crate::checkpoint::{CheckpointError, TaskCheckpoints};
use crate::run::{RunId, TaskId};

/// The identity of the running task, and a handle to its card.
///
/// Equality and hashing compare the identity only (flow, run, step, task, attempt, foreach), not
/// the card.
#[derive(Clone, Debug)]
pub struct Current {
    /// The name of the flow, as in its graph.
    pub flow: &'static str,
    /// The id of the run, unique across machines.
    pub run_id: RunId,
    /// The name of the step this task runs.
    pub step: &'static str,
    /// The id of the task within its step.
    pub task_id: TaskId,
    /// Which attempt this is, `0` for the first, counting the retries of the step.
    pub attempt: u32,
    /// The foreach splits this task is inside of, outermost first; empty outside any foreach.
    pub foreach: Vec<ForeachFrame>,
    /// The attempt's card, shared by every clone.
    card: CardWriter,
    /// Where the task's checkpoints go; `None` outside a task the executor runs.
    checkpoints: Option<Arc<TaskCheckpoints>>,
}

impl PartialEq for Current {
    fn eq(&self, other: &Self) -> bool {
        self.identity() == other.identity()
    }
}

impl Eq for Current {}

impl std::hash::Hash for Current {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.identity().hash(state);
    }
}

/// One open foreach split around a task: which item of which split it handles.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ForeachFrame {
    /// The step that opened the split.
    pub step: &'static str,
    /// The position of this task's item in the split, from `0`.
    pub index: usize,
    /// How many items the split has.
    pub count: usize,
}

impl Current {
    /// The identity of a task, with a new empty card.
    pub fn new(
        flow: &'static str,
        run_id: RunId,
        step: &'static str,
        task_id: TaskId,
        attempt: u32,
        foreach: Vec<ForeachFrame>,
    ) -> Current {
        Current {
            flow,
            run_id,
            step,
            task_id,
            attempt,
            foreach,
            card: CardWriter::detached(),
            checkpoints: None,
        }
    }

    /// The same task, storing its checkpoints with `checkpoints`.
    pub fn with_checkpoints(mut self, checkpoints: Arc<TaskCheckpoints>) -> Current {
        self.checkpoints = Some(checkpoints);
        self
    }

    /// Stores `value` (any serde value: a model, an optimizer's state, the epoch reached) as a
    /// checkpoint of this task, and returns its number. When the task runs again (a retry, a
    /// `resume` of a run where it did not complete, a Slurm job requeued after its time limit),
    /// [`last_checkpoint`](Self::last_checkpoint) gives it back. Once the task completes only its
    /// last checkpoint is kept.
    ///
    /// ```no_run
    /// # use serde::{Deserialize, Serialize};
    /// # #[derive(Serialize, Deserialize)] struct Progress { epoch: u32, weights: Vec<f32> }
    /// use flow_runtime::current::current;
    ///
    /// let task = current().expect("inside a step");
    /// let mut progress: Progress = task
    ///     .last_checkpoint()
    ///     .expect("a readable checkpoint")
    ///     .unwrap_or(Progress { epoch: 0, weights: vec![0.0; 10] });
    /// while progress.epoch < 100 {
    ///     progress.epoch += 1; // … train one epoch …
    ///     task.checkpoint(&progress).expect("stored");
    /// }
    /// ```
    ///
    /// # Errors
    ///
    /// [`CheckpointError::NotInTask`] outside a task the executor runs; storage failures.
    pub fn checkpoint<T: Serialize + ?Sized>(&self, value: &T) -> Result<u64, CheckpointError> {
        let checkpoints = self
            .checkpoints
            .as_ref()
            .ok_or(CheckpointError::NotInTask)?;
        checkpoints.save(value, self.attempt)
    }

    /// The last checkpoint this task stored, decoded as `T`, or `None` when it has none (its
    /// first run, or a unit test calling the step directly).
    ///
    /// # Errors
    ///
    /// [`CheckpointError::Load`] when the last checkpoint cannot be read as a `T` (damaged, or
    /// of another type); storage failures.
    pub fn last_checkpoint<T: DeserializeOwned>(&self) -> Result<Option<T>, CheckpointError> {
        match &self.checkpoints {
            Some(checkpoints) => checkpoints.last(),
            None => Ok(None),
        }
    }

    #[allow(clippy::type_complexity)]
    fn identity(&self) -> (&str, &RunId, &str, &TaskId, u32, &[ForeachFrame]) {
        (
            self.flow,
            &self.run_id,
            self.step,
            &self.task_id,
            self.attempt,
            &self.foreach,
        )
    }

    /// The card of this task's attempt: every clone of this `Current` (one moved to another
    /// thread included) writes to the same card, which the executor stores when the attempt ends.
    ///
    /// ```
    /// use flow_runtime::current::Current;
    ///
    /// let task = Current::new("TrainFlow", "1".into(), "train", "0".into(), 0, Vec::new());
    /// let copy = task.clone();
    /// std::thread::spawn(move || {
    ///     copy.card().markdown("written on another thread");
    /// })
    /// .join()
    /// .unwrap();
    /// assert_eq!(task.card().snapshot().components.len(), 1);
    /// ```
    pub fn card(&self) -> CardWriter {
        self.card.clone()
    }

    /// The same task with a new, empty card: what each attempt starts from.
    pub fn with_new_card(mut self) -> Current {
        self.card = CardWriter::detached();
        self
    }
    /// The index of the task's item in the innermost foreach, the one a step usually wants (e.g.
    /// to pick its shard); `None` outside any foreach.
    pub fn foreach_index(&self) -> Option<usize> {
        self.foreach.last().map(|frame| frame.index)
    }

    /// The pass of the innermost loop the task runs in, from `0` (its task id counts it, as in
    /// `i2`); `None` outside any loop.
    ///
    /// ```
    /// use flow_runtime::current::Current;
    ///
    /// let task = Current::new("TrainFlow", "1".into(), "fit", "3-i2".into(), 0, Vec::new());
    /// assert_eq!(task.loop_pass(), Some(2));
    /// ```
    pub fn loop_pass(&self) -> Option<usize> {
        self.task_id
            .as_str()
            .split('-')
            .rev()
            .find_map(|part| part.strip_prefix('i')?.parse().ok())
    }

    /// The task's address, `flow/run_id/step/task_id`, the form `dump` and `logs` accept.
    pub fn pathspec(&self) -> String {
        format!(
            "{}/{}/{}/{}",
            self.flow, self.run_id, self.step, self.task_id
        )
    }
}

thread_local! {
    /// The task this thread is running, if any.
    static CURRENT: RefCell<Option<Current>> = const { RefCell::new(None) };
}

/// The identity of the task running on this thread, or `None` outside a task (e.g. in a unit test
/// calling a step function directly).
///
/// A clone, so it stays valid after the task ends and can be moved to another thread.
pub fn current() -> Option<Current> {
    CURRENT
        .try_with(|current| current.borrow().clone())
        .ok()
        .flatten()
}

/// The card of the task running on this thread, or outside a task (a unit test calling a step
/// function directly) a detached card, dropped when its last handle is: steps can write cards
/// unconditionally.
///
/// ```
/// use flow_runtime::card::Chart;
///
/// let losses = vec![0.8_f32, 0.4, 0.2];
/// flow_runtime::card()
///     .markdown("## Training")
///     .chart(Chart::line("loss").x_label("epoch").series("lr=0.01", losses));
/// ```
pub fn card() -> crate::card::CardWriter {
    CURRENT
        .try_with(|current| current.borrow().as_ref().map(Current::card))
        .ok()
        .flatten()
        .unwrap_or_else(CardWriter::detached)
}

/// Runs `body` with `current` as the task identity of this thread, and returns its result.
///
/// The previous value is restored when `body` returns or panics, so a failed task cannot leave its
/// identity to the next task run by the same worker thread, and calls nest.
///
/// ```
/// use flow_runtime::current::{Current, ForeachFrame, current, with_current};
///
/// let task = Current::new(
///     "HelloFlow",
///     "1".into(),
///     "square",
///     "7".into(),
///     0,
///     vec![ForeachFrame { step: "start", index: 6, count: 10 }],
/// );
/// let index = with_current(task, || current().and_then(|c| c.foreach_index()));
/// assert_eq!(index, Some(6));
/// assert!(current().is_none());
/// ```
pub fn with_current<R>(current: Current, body: impl FnOnce() -> R) -> R {
    let previous = CURRENT.with(|slot| slot.replace(Some(current)));
    let _restore = Restore(previous);
    body()
}

/// Puts back the thread's previous identity when dropped, including during unwinding.
struct Restore(Option<Current>);

impl Drop for Restore {
    fn drop(&mut self) {
        let previous = self.0.take();
        // Only gone while the thread is torn down, where there is nothing left to restore.
        let _ = CURRENT.try_with(|slot| *slot.borrow_mut() = previous);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task(step: &'static str, foreach: Vec<ForeachFrame>) -> Current {
        Current::new("F", "r1".into(), step, "t1".into(), 1, foreach)
    }

    #[test]
    fn the_card_follows_the_task_and_clones_share_it() {
        let a = task("a", Vec::new());
        let b = a.clone();
        assert_eq!(a, b);
        assert!(a.card().same_card(&b.card()));
        let fresh = a.clone().with_new_card();
        assert_eq!(fresh, a, "the card is not part of the identity");
        assert!(!fresh.card().same_card(&a.card()));
        with_current(a.clone(), || {
            card().markdown("inside");
        });
        card().markdown("outside: detached, dropped");
        assert_eq!(a.card().snapshot().components.len(), 1);
        assert!(b.card().snapshot().components.len() == 1);
    }

    #[test]
    fn absent_outside_a_task() {
        assert!(current().is_none());
    }

    #[test]
    fn innermost_foreach_index() {
        let frames = vec![
            ForeachFrame {
                step: "outer",
                index: 2,
                count: 3,
            },
            ForeachFrame {
                step: "inner",
                index: 5,
                count: 8,
            },
        ];
        assert_eq!(task("s", frames).foreach_index(), Some(5));
        assert_eq!(task("s", Vec::new()).foreach_index(), None);
        assert_eq!(task("s", Vec::new()).pathspec(), "F/r1/s/t1");
    }

    #[test]
    fn nested_and_restored_on_panic() {
        with_current(task("a", Vec::new()), || {
            with_current(task("b", Vec::new()), || {
                assert_eq!(current().map(|c| c.step), Some("b"));
            });
            assert_eq!(current().map(|c| c.step), Some("a"));
            let result = std::panic::catch_unwind(|| {
                with_current(task("c", Vec::new()), || panic!("step failed"))
            });
            assert!(result.is_err());
            assert_eq!(current().map(|c| c.step), Some("a"));
        });
        assert!(current().is_none());
    }

    #[test]
    fn per_thread() {
        with_current(task("a", Vec::new()), || {
            std::thread::scope(|scope| {
                let other = scope.spawn(current);
                assert!(matches!(other.join(), Ok(None)));
            });
        });
    }
}
