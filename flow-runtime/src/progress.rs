//! A progress display for long runs on a terminal.
//!
//! A foreach over thousands of items can run for minutes; without feedback a user cannot tell a slow
//! run from a stuck one. On a terminal, the run shows one spinner line for the whole run (elapsed
//! time, tasks done of tasks known, running and failed counts) and one bar per step that has more
//! than one task (a foreach's children), e.g.
//!
//! ```text
//! ⠙ HelloFlow [00:00:12] 5,131/10,003 tasks · 8 running
//! sq               [=============>                ] 5,123/10,000 · 8 running
//! ```
//!
//! Workers report concurrently through `&self`, so a [`Progress`] is shared by reference (or
//! cloned: clones report to the same display). When disabled (output piped, `CI` set) every method
//! is a single branch, so the executor can call them unconditionally. When enabled, a report is a
//! few atomic operations plus a redraw that `indicatif` rate-limits, so 10,000 tasks cost little.

use std::collections::HashMap;
use std::fmt;
use std::io::IsTerminal;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, PoisonError, RwLock};
use std::time::Duration;

use indicatif::{
    HumanCount, MultiProgress, ProgressBar, ProgressDrawTarget, ProgressState, ProgressStyle,
};

/// The display of one run's progress, or nothing when disabled.
#[derive(Clone)]
pub struct Progress {
    inner: Option<Arc<Inner>>,
}

/// How many tasks of a step (or of the whole run) reached each stage, as reported so far.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StepCounts {
    /// Tasks announced with [`Progress::task_queued`].
    pub queued: u64,
    /// Tasks announced with [`Progress::task_started`].
    pub started: u64,
    /// Tasks reported finished successfully.
    pub succeeded: u64,
    /// Tasks reported finished with a failure.
    pub failed: u64,
}

impl StepCounts {
    /// Tasks started and not yet finished.
    pub fn running(&self) -> u64 {
        self.started
            .saturating_sub(self.succeeded.saturating_add(self.failed))
    }

    /// Tasks finished either way, the position of the step's bar.
    pub fn finished(&self) -> u64 {
        self.succeeded.saturating_add(self.failed)
    }
}

/// The state behind an enabled display.
struct Inner {
    multi: MultiProgress,
    /// The whole run's line.
    spinner: ProgressBar,
    totals: Arc<Counters>,
    /// Only locked to find or add a step, never while drawing.
    steps: RwLock<HashMap<String, Arc<StepEntry>>>,
}

/// One step's counts, and its bar once it has more than one task.
struct StepEntry {
    name: String,
    /// Shared with the bar's style, which renders the running and failed counts at draw time.
    counters: Arc<Counters>,
    bar: OnceLock<ProgressBar>,
}

/// Counters updated by workers without locks; the display only needs eventual accuracy, and
/// joining the workers makes the final values exact for [`Progress::counts`].
#[derive(Default)]
struct Counters {
    queued: AtomicU64,
    started: AtomicU64,
    succeeded: AtomicU64,
    failed: AtomicU64,
}

impl Counters {
    fn snapshot(&self) -> StepCounts {
        StepCounts {
            queued: self.queued.load(Ordering::Relaxed),
            started: self.started.load(Ordering::Relaxed),
            succeeded: self.succeeded.load(Ordering::Relaxed),
            failed: self.failed.load(Ordering::Relaxed),
        }
    }

    /// Writes ` · 3 running · 1 failed`, leaving out the zero counts.
    fn write_activity(&self, w: &mut dyn fmt::Write) {
        let counts = self.snapshot();
        let running = counts.running();
        if running > 0 {
            let _ = write!(w, " · {} running", HumanCount(running));
        }
        if counts.failed > 0 {
            let _ = write!(w, " · {} failed", HumanCount(counts.failed));
        }
    }
}

const SPINNER_TEMPLATE: &str = "{spinner:.green} {prefix:.bold} [{elapsed_precise}] {totals} {msg}";
const STEP_TEMPLATE: &str = "{prefix:<16} [{bar:30.cyan/blue}] {human_pos}/{human_len}{activity}";

impl Progress {
    /// A display for a run of `flow_name` on stderr, or a disabled one that does nothing.
    pub fn new(flow_name: &str, enabled: bool) -> Self {
        if enabled {
            Self::with_draw_target(flow_name, ProgressDrawTarget::stderr())
        } else {
            Self::disabled()
        }
    }

    /// A display enabled only when someone watches it: stderr is a terminal and the `CI`
    /// environment variable is unset, so logs of scripts and CI jobs stay free of redraw noise.
    pub fn for_terminal(flow_name: &str) -> Self {
        let enabled = std::io::stderr().is_terminal() && std::env::var_os("CI").is_none();
        Self::new(flow_name, enabled)
    }

    /// A display that ignores every report.
    pub fn disabled() -> Self {
        Self { inner: None }
    }

    /// An enabled display drawing to `target`; tests use a hidden target.
    pub(crate) fn with_draw_target(flow_name: &str, target: ProgressDrawTarget) -> Self {
        let multi = MultiProgress::with_draw_target(target);
        let totals = Arc::new(Counters::default());
        let shown = Arc::clone(&totals);
        let style = ProgressStyle::with_template(SPINNER_TEMPLATE)
            .unwrap_or_else(|_| ProgressStyle::default_spinner())
            .with_key(
                "totals",
                move |_: &ProgressState, w: &mut dyn fmt::Write| {
                    let counts = shown.snapshot();
                    let _ = write!(
                        w,
                        "{}/{} tasks",
                        HumanCount(counts.finished()),
                        HumanCount(counts.queued)
                    );
                    shown.write_activity(w);
                },
            );
        let spinner = multi.add(ProgressBar::new_spinner().with_style(style));
        spinner.set_prefix(flow_name.to_owned());
        if !multi.is_hidden() {
            // Keeps the elapsed time moving while long tasks report nothing.
            spinner.enable_steady_tick(Duration::from_millis(100));
        }
        Self {
            inner: Some(Arc::new(Inner {
                multi,
                spinner,
                totals,
                steps: RwLock::new(HashMap::new()),
            })),
        }
    }

    /// Whether reports are shown, e.g. to avoid preparing a message nobody will see.
    pub fn is_enabled(&self) -> bool {
        self.inner.is_some()
    }

    /// Announces `n` more tasks of `step`, e.g. the children of a foreach once its items are known;
    /// a step gets its own bar once it has more than one task.
    pub fn task_queued(&self, step: &str, n: usize) {
        let Some(inner) = &self.inner else { return };
        let n = u64::try_from(n).unwrap_or(u64::MAX);
        let entry = inner.entry(step);
        entry.counters.queued.fetch_add(n, Ordering::Relaxed);
        inner.totals.queued.fetch_add(n, Ordering::Relaxed);
        let queued = entry.counters.queued.load(Ordering::Relaxed);
        if queued > 1 {
            let bar = entry.bar.get_or_init(|| inner.add_bar(&entry));
            // Absolute values, not increments: a bar created concurrently already counted them.
            bar.set_length(queued);
        }
    }

    /// Reports that a task of `step` began running.
    pub fn task_started(&self, step: &str) {
        let Some(inner) = &self.inner else { return };
        let entry = inner.entry(step);
        entry.counters.started.fetch_add(1, Ordering::Relaxed);
        inner.totals.started.fetch_add(1, Ordering::Relaxed);
        if let Some(bar) = entry.bar.get() {
            bar.tick();
        }
    }

    /// Reports that a task of `step` ended, successfully or not.
    pub fn task_finished(&self, step: &str, ok: bool) {
        let Some(inner) = &self.inner else { return };
        let entry = inner.entry(step);
        let (step_counter, total_counter) = if ok {
            (&entry.counters.succeeded, &inner.totals.succeeded)
        } else {
            (&entry.counters.failed, &inner.totals.failed)
        };
        step_counter.fetch_add(1, Ordering::Relaxed);
        total_counter.fetch_add(1, Ordering::Relaxed);
        if let Some(bar) = entry.bar.get() {
            bar.set_position(entry.counters.snapshot().finished());
        }
    }

    /// Ends the display with every bar at its final count and `message` (e.g. where the results
    /// are, or why the run failed) on the run's line, which stays on the terminal.
    pub fn finish(&self, message: &str) {
        let Some(inner) = &self.inner else { return };
        for entry in inner.entries() {
            if let Some(bar) = entry.bar.get() {
                let counts = entry.counters.snapshot();
                bar.set_length(counts.queued);
                bar.set_position(counts.finished());
                bar.finish();
            }
        }
        inner.spinner.finish_with_message(message.to_owned());
    }

    /// Runs `f` with the display cleared, so that lines printed to the terminal meanwhile (a
    /// failure, a warning) are not overwritten by the next redraw.
    pub fn suspend<R>(&self, f: impl FnOnce() -> R) -> R {
        match &self.inner {
            Some(inner) => inner.multi.suspend(f),
            None => f(),
        }
    }

    /// The counts reported for `step`, or `None` if the display is disabled or the step was never
    /// reported; for summaries and tests.
    pub fn counts(&self, step: &str) -> Option<StepCounts> {
        let inner = self.inner.as_ref()?;
        let steps = inner.steps.read().unwrap_or_else(PoisonError::into_inner);
        steps.get(step).map(|entry| entry.counters.snapshot())
    }

    /// The counts of the whole run, or `None` if the display is disabled.
    pub fn totals(&self) -> Option<StepCounts> {
        self.inner.as_ref().map(|inner| inner.totals.snapshot())
    }

    /// Whether `step` has its own bar.
    #[cfg(test)]
    fn has_bar(&self, step: &str) -> bool {
        self.inner.as_ref().is_some_and(|inner| {
            inner
                .entries()
                .iter()
                .any(|entry| entry.name == step && entry.bar.get().is_some())
        })
    }
}

impl fmt::Debug for Progress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Progress")
            .field("enabled", &self.is_enabled())
            .field("totals", &self.totals())
            .finish()
    }
}

impl Inner {
    /// The entry of `step`, created at its first report. The map's lock is held only for the
    /// lookup (a poisoned lock still holds a valid map: entries are only ever inserted).
    fn entry(&self, step: &str) -> Arc<StepEntry> {
        if let Some(entry) = self
            .steps
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(step)
        {
            return Arc::clone(entry);
        }
        let mut steps = self.steps.write().unwrap_or_else(PoisonError::into_inner);
        Arc::clone(steps.entry(step.to_owned()).or_insert_with(|| {
            Arc::new(StepEntry {
                name: step.to_owned(),
                counters: Arc::new(Counters::default()),
                bar: OnceLock::new(),
            })
        }))
    }

    fn entries(&self) -> Vec<Arc<StepEntry>> {
        self.steps
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .cloned()
            .collect()
    }

    /// Adds the bar of a step below the existing lines.
    fn add_bar(&self, entry: &StepEntry) -> ProgressBar {
        let shown = Arc::clone(&entry.counters);
        let style = ProgressStyle::with_template(STEP_TEMPLATE)
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> ")
            .with_key(
                "activity",
                move |_: &ProgressState, w: &mut dyn fmt::Write| shown.write_activity(w),
            );
        let counts = entry.counters.snapshot();
        let bar = ProgressBar::with_draw_target(Some(counts.queued), ProgressDrawTarget::hidden())
            .with_style(style)
            .with_prefix(entry.name.clone())
            .with_position(counts.finished());
        self.multi.add(bar)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_send_sync<T: Send + Sync>() {}

    #[test]
    fn disabled_does_nothing() {
        assert_send_sync::<Progress>();
        let progress = Progress::new("F", false);
        assert!(!progress.is_enabled());
        progress.task_queued("sq", 10);
        progress.task_started("sq");
        progress.task_finished("sq", true);
        progress.finish("done");
        assert_eq!(progress.counts("sq"), None);
        assert_eq!(progress.totals(), None);
        assert_eq!(progress.suspend(|| 7), 7);
    }

    #[test]
    fn enabled_counts_concurrent_reports() {
        let progress = Progress::with_draw_target("F", ProgressDrawTarget::hidden());
        progress.task_queued("start", 1);
        progress.task_started("start");
        progress.task_finished("start", true);
        progress.task_queued("sq", 10_000);
        let started = std::time::Instant::now();
        std::thread::scope(|scope| {
            for worker in 0..8 {
                let progress = &progress;
                scope.spawn(move || {
                    for task in (worker..10_000).step_by(8) {
                        progress.task_started("sq");
                        progress.task_finished("sq", task % 1000 != 0);
                    }
                });
            }
        });
        let elapsed = started.elapsed();
        progress.task_queued("end", 1);
        progress.task_started("end");
        progress.finish("done");

        assert_eq!(
            progress.counts("sq"),
            Some(StepCounts {
                queued: 10_000,
                started: 10_000,
                succeeded: 9_990,
                failed: 10,
            })
        );
        assert_eq!(progress.counts("start").map(|c| c.succeeded), Some(1));
        assert_eq!(progress.counts("end").map(|c| c.running()), Some(1));
        assert_eq!(progress.counts("missing"), None);
        assert_eq!(
            progress.totals(),
            Some(StepCounts {
                queued: 10_002,
                started: 10_002,
                succeeded: 9_991,
                failed: 10,
            })
        );
        assert!(progress.has_bar("sq"));
        assert!(!progress.has_bar("start"));
        assert!(!progress.has_bar("end"));
        // Generous: a debug build does 20,000 reports in a few milliseconds.
        assert!(elapsed < Duration::from_secs(5), "{elapsed:?}");
    }

    #[test]
    fn bar_appears_once_a_step_has_several_tasks() {
        let progress = Progress::with_draw_target("F", ProgressDrawTarget::hidden());
        progress.task_queued("inner", 1);
        assert!(!progress.has_bar("inner"));
        progress.task_queued("inner", 1);
        assert!(progress.has_bar("inner"));
        // Clones report to the same display.
        let clone = progress.clone();
        clone.task_finished("inner", false);
        assert_eq!(progress.counts("inner").map(|c| c.failed), Some(1));
    }

    #[test]
    fn activity_leaves_out_zero_counts() {
        let counters = Counters::default();
        let mut text = String::new();
        counters.write_activity(&mut text);
        assert_eq!(text, "");
        counters.started.store(1_500, Ordering::Relaxed);
        counters.failed.store(2, Ordering::Relaxed);
        counters.write_activity(&mut text);
        assert_eq!(text, " · 1,498 running · 2 failed");
    }
}
