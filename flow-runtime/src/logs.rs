//! Per-task log capture for the `tracing` macros used inside steps.
//!
//! The in-process executor runs many tasks at once on a pool of worker threads, so one global log
//! file would interleave the lines of unrelated tasks and `logs RUN/STEP/TASK` could not show what a
//! single task said. Instead each task gets a [`TaskLog`], and while the task's body runs inside
//! [`capture`], every `tracing` event emitted *on that thread* is formatted into that task's log.
//! The executor stores [`TaskLog::take`] with the task's other outputs when the task ends.
//!
//! Routing is done by one global subscriber, installed by [`install`]: a `tracing_subscriber`
//! registry with
//!
//! - a `fmt` layer whose writer appends to the current thread's [`TaskLog`] (filtered by the
//!   `BLOOMING_TASK_LOG` variable, `EnvFilter` syntax, default `info`), one line per event:
//!   `<RFC 3339 time> <LEVEL> <spans:> <target>: <message> <fields>`, and
//! - a `fmt` layer printing the events emitted outside any task to stderr (filtered by `RUST_LOG`,
//!   default `warn`). Events inside a task are not printed unless `BLOOMING_ECHO_LOGS=1`, in which
//!   case they also go to stderr, subject to `RUST_LOG`.
//!
//! Capture follows the thread, not the task: a step that spawns its own threads (or a step run on a
//! separate thread because it has a timeout) must call [`capture`] again on that thread, with the
//! log obtained from [`current_log`], for those threads' events to land in the task's log.

use std::cell::RefCell;
use std::fmt;
use std::io;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Metadata, Subscriber};
use tracing_subscriber::field::RecordFields;
use tracing_subscriber::filter::{EnvFilter, LevelFilter};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::fmt::format::{DefaultFields, FormatFields, Writer};
use tracing_subscriber::layer::{Context, Filter, Layer, SubscriberExt};
use tracing_subscriber::util::SubscriberInitExt;

/// Environment variable selecting which events a task's log keeps (`EnvFilter` syntax).
pub const TASK_LOG_ENV: &str = "BLOOMING_TASK_LOG";

/// Environment variable that, set to `1`, also prints the events of tasks to stderr.
pub const ECHO_LOGS_ENV: &str = "BLOOMING_ECHO_LOGS";

/// How much of a task's log, or of one of its process's output streams, is kept at each end:
/// its first and its last 16 MiB. What lies between is dropped, and a line says how much.
pub const KEEP_AT_EACH_END: usize = 16 << 20;

/// The log of one task: the formatted lines of the `tracing` events its body emitted, up to
/// [`KEEP_AT_EACH_END`] bytes at the start and at the end (a step logging in a loop for hours
/// must not fill the memory or the datastore).
///
/// Cloning is cheap (an `Arc`), so the executor can keep one handle to read the log after the task
/// while the task's thread (or threads) append to another.
#[derive(Clone, Default)]
pub struct TaskLog {
    buf: Arc<Mutex<HeadAndTail>>,
}

impl TaskLog {
    /// An empty log, to be filled by [`capture`].
    pub fn new() -> Self {
        Self::default()
    }

    /// A copy of the lines captured so far, for showing a log while its task may still append.
    #[must_use]
    pub fn contents(&self) -> Vec<u8> {
        self.lock().to_bytes()
    }

    /// Moves the lines captured so far out of the log, leaving it empty; what the executor calls
    /// when the task ends.
    #[must_use = "the captured lines are lost if not stored"]
    pub fn take(&self) -> Vec<u8> {
        std::mem::take(&mut *self.lock()).into_bytes()
    }

    /// The size in bytes of what was kept (without the line saying what was dropped), e.g. to
    /// skip storing an empty log.
    pub fn len(&self) -> usize {
        self.lock().kept()
    }

    /// Whether nothing was captured, so an empty log need not be stored.
    pub fn is_empty(&self) -> bool {
        self.lock().kept() == 0
    }

    /// Locks the buffer. A panic while the lock is held cannot leave the bytes half-updated in a
    /// way that matters (at worst one line is cut), so a poisoned lock is simply recovered.
    fn lock(&self) -> MutexGuard<'_, HeadAndTail> {
        self.buf
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// The last `n` lines of `bytes`, as text: what a failed task's message quotes of its output.
pub(crate) fn last_lines(bytes: &[u8], n: usize) -> String {
    let text = String::from_utf8_lossy(bytes);
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// A stream of bytes of unbounded length kept in bounded memory: its first `limit` bytes, its
/// last `limit` bytes, and how many were dropped between them.
#[derive(Debug)]
pub(crate) struct HeadAndTail {
    limit: usize,
    head: Vec<u8>,
    /// The last bytes after the head, at most `limit` of them.
    tail: std::collections::VecDeque<u8>,
    dropped: u64,
}

impl Default for HeadAndTail {
    fn default() -> Self {
        Self::new(KEEP_AT_EACH_END)
    }
}

impl HeadAndTail {
    /// Keeps `limit` bytes at each end.
    pub(crate) fn new(limit: usize) -> Self {
        HeadAndTail {
            limit,
            head: Vec::new(),
            tail: std::collections::VecDeque::new(),
            dropped: 0,
        }
    }

    /// Appends `bytes`, dropping from the middle what exceeds the bound.
    pub(crate) fn push(&mut self, mut bytes: &[u8]) {
        let room = self.limit - self.head.len();
        if room > 0 {
            let n = room.min(bytes.len());
            self.head.extend_from_slice(&bytes[..n]);
            bytes = &bytes[n..];
        }
        if bytes.len() >= self.limit {
            // Everything in the tail, and the start of `bytes`, falls out.
            let skip = bytes.len() - self.limit;
            self.dropped += (self.tail.len() + skip) as u64;
            self.tail.clear();
            bytes = &bytes[skip..];
        } else {
            let excess = (self.tail.len() + bytes.len()).saturating_sub(self.limit);
            self.tail.drain(..excess);
            self.dropped += excess as u64;
        }
        self.tail.extend(bytes);
    }

    /// How many bytes are kept.
    pub(crate) fn kept(&self) -> usize {
        self.head.len() + self.tail.len()
    }

    /// The bytes kept, with a line where some were dropped saying how many.
    pub(crate) fn to_bytes(&self) -> Vec<u8> {
        let marker = self.marker();
        let mut bytes = Vec::with_capacity(self.kept() + marker.len());
        bytes.extend_from_slice(&self.head);
        bytes.extend_from_slice(marker.as_bytes());
        let (a, b) = self.tail.as_slices();
        bytes.extend_from_slice(a);
        bytes.extend_from_slice(b);
        bytes
    }

    /// As [`HeadAndTail::to_bytes`], reusing the head's allocation.
    pub(crate) fn into_bytes(self) -> Vec<u8> {
        let marker = self.marker();
        let mut bytes = self.head;
        bytes.reserve(marker.len() + self.tail.len());
        bytes.extend_from_slice(marker.as_bytes());
        bytes.extend(self.tail);
        bytes
    }

    fn marker(&self) -> String {
        if self.dropped == 0 {
            return String::new();
        }
        let start = if self.head.last().is_some_and(|&b| b != b'\n') {
            "\n"
        } else {
            ""
        };
        format!(
            "{start}[{} bytes left out: only the first and the last {} bytes are kept]\n",
            self.dropped, self.limit
        )
    }
}

impl fmt::Debug for TaskLog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TaskLog").field("len", &self.len()).finish()
    }
}

thread_local! {
    /// The log that the events of this thread go to, if the thread is running a task.
    static CURRENT: RefCell<Option<TaskLog>> = const { RefCell::new(None) };
}

/// Runs `body` with the events emitted on this thread going to `log`, and returns its result.
///
/// The previous log of the thread (if any) is restored when `body` returns or panics, so captures
/// nest and a panicking step cannot leak its log to the next task run by the same worker.
/// Capture only has an effect when [`install`] succeeded in installing the global subscriber.
pub fn capture<R>(log: &TaskLog, body: impl FnOnce() -> R) -> R {
    let previous = CURRENT.with(|current| current.replace(Some(log.clone())));
    let _restore = Restore(previous);
    body()
}

/// The log this thread currently captures into, so that a step (or the executor) can carry it to
/// a thread it spawns and call [`capture`] there.
pub fn current_log() -> Option<TaskLog> {
    CURRENT
        .try_with(|current| current.borrow().clone())
        .ok()
        .flatten()
}

/// Puts back the thread's previous log when dropped, including during unwinding.
struct Restore(Option<TaskLog>);

impl Drop for Restore {
    fn drop(&mut self) {
        let previous = self.0.take();
        // The thread-local can only be gone if the thread is being torn down, where nothing is
        // left to restore.
        let _ = CURRENT.try_with(|current| *current.borrow_mut() = previous);
    }
}

/// Whether this thread is running a task. `try_with` because events can be emitted from other
/// thread-local destructors, after ours is gone.
fn in_task() -> bool {
    CURRENT
        .try_with(|current| current.borrow().is_some())
        .unwrap_or(false)
}

/// Installs the global `tracing` subscriber that routes events to task logs; returns whether it is
/// in place.
///
/// Called by the runtime before it runs tasks; calling it again is cheap and returns the first
/// answer. If the program already installed a global subscriber of its own, that one is kept (no
/// panic) and this returns `false`: events then go wherever the program's subscriber sends them,
/// and task logs stay empty.
pub fn install() -> bool {
    static INSTALLED: OnceLock<bool> = OnceLock::new();
    *INSTALLED.get_or_init(|| {
        let echo = std::env::var(ECHO_LOGS_ENV).is_ok_and(|value| value == "1");
        let stderr_filter = EnvFilter::builder()
            .with_default_directive(LevelFilter::WARN.into())
            .from_env_lossy();
        let task_filter = EnvFilter::builder()
            .with_default_directive(LevelFilter::INFO.into())
            .with_env_var(TASK_LOG_ENV)
            .from_env_lossy();
        let stderr = tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .with_filter(Gated {
                inner: stderr_filter,
                when: if echo {
                    When::Always
                } else {
                    When::OutsideTask
                },
            });
        let tasks = tracing_subscriber::fmt::layer()
            .fmt_fields(TaskLogFields::default())
            .with_writer(IntoTaskLog)
            .with_ansi(false)
            // What a step logs is stored as it logged it; `logs` escapes control characters
            // when it shows them on a terminal.
            .with_ansi_sanitization(false)
            .with_filter(Gated {
                inner: task_filter,
                when: When::InTask,
            });
        tracing_subscriber::registry()
            .with(stderr)
            .with(tasks)
            .try_init()
            .is_ok()
    })
}

/// Which threads a [`Gated`] filter lets through.
#[derive(Clone, Copy)]
enum When {
    /// Threads running a task.
    InTask,
    /// Threads not running a task.
    OutsideTask,
    /// Every thread.
    Always,
}

/// An `EnvFilter` that also depends on whether the current thread runs a task.
///
/// Combining the `EnvFilter` with a `filter_fn` would lose the filter's maximum level, making
/// every disabled `trace!` in the process pay for a dynamic check; this keeps the level hint and
/// only the callsites the `EnvFilter` can enable are asked again at each event.
struct Gated {
    inner: EnvFilter,
    when: When,
}

impl Gated {
    fn gate_open(&self) -> bool {
        match self.when {
            When::InTask => in_task(),
            When::OutsideTask => !in_task(),
            When::Always => true,
        }
    }
}

impl<S: Subscriber> Filter<S> for Gated {
    fn enabled(&self, meta: &Metadata<'_>, cx: &Context<'_, S>) -> bool {
        self.gate_open() && Filter::enabled(&self.inner, meta, cx)
    }

    fn callsite_enabled(&self, meta: &'static Metadata<'static>) -> tracing::subscriber::Interest {
        let interest = Filter::<S>::callsite_enabled(&self.inner, meta);
        match self.when {
            When::Always => interest,
            // The thread's state changes from one event to the next, so the answer can't be cached.
            When::InTask | When::OutsideTask if interest.is_never() => interest,
            When::InTask | When::OutsideTask => tracing::subscriber::Interest::sometimes(),
        }
    }

    fn max_level_hint(&self) -> Option<LevelFilter> {
        Filter::<S>::max_level_hint(&self.inner)
    }

    fn event_enabled(&self, event: &Event<'_>, cx: &Context<'_, S>) -> bool {
        Filter::event_enabled(&self.inner, event, cx)
    }

    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        Filter::on_new_span(&self.inner, attrs, id, ctx);
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        Filter::on_record(&self.inner, id, values, ctx);
    }

    fn on_enter(&self, id: &Id, ctx: Context<'_, S>) {
        Filter::on_enter(&self.inner, id, ctx);
    }

    fn on_exit(&self, id: &Id, ctx: Context<'_, S>) {
        Filter::on_exit(&self.inner, id, ctx);
    }

    fn on_close(&self, id: Id, ctx: Context<'_, S>) {
        Filter::on_close(&self.inner, id, ctx);
    }
}

/// The writer of the task layer: each formatted event, a whole line written at once, goes to the
/// log of the task running on the calling thread.
struct IntoTaskLog;

impl<'a> MakeWriter<'a> for IntoTaskLog {
    type Writer = TaskLogWriter;

    fn make_writer(&'a self) -> TaskLogWriter {
        TaskLogWriter(current_log())
    }
}

/// Appends to one task's log; the `fmt` layer formats an event before asking for this, so a
/// field's `Debug` impl that itself logs finds the log's lock free.
struct TaskLogWriter(Option<TaskLog>);

impl io::Write for TaskLogWriter {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        if let Some(log) = &self.0 {
            log.lock().push(bytes);
        }
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// `tracing_subscriber`'s default field format under a type of its own: a span keeps its
/// formatted fields once per format type, and this keeps the task layer's apart from the stderr
/// layer's (which escapes control characters).
#[derive(Default)]
struct TaskLogFields(DefaultFields);

impl<'w> FormatFields<'w> for TaskLogFields {
    fn format_fields<R: RecordFields>(&self, writer: Writer<'w>, fields: R) -> fmt::Result {
        self.0.format_fields(writer, fields)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(log: &TaskLog) -> String {
        String::from_utf8_lossy(&log.contents()).into_owned()
    }

    #[test]
    fn install_is_idempotent_and_active() {
        assert!(install(), "another global subscriber was installed");
        assert!(install());
    }

    #[test]
    fn events_outside_capture_are_not_recorded() {
        install();
        let log = TaskLog::new();
        tracing::info!("outside-capture marker");
        capture(&log, || tracing::info!("inside"));
        let text = text(&log);
        assert!(text.contains("inside"));
        assert!(!text.contains("outside-capture marker"));
        assert_eq!(text.lines().count(), 1);
        assert!(current_log().is_none());
    }

    #[test]
    fn concurrent_threads_get_only_their_own_lines() {
        install();
        let logs = [TaskLog::new(), TaskLog::new()];
        let barrier = Arc::new(std::sync::Barrier::new(2));
        std::thread::scope(|scope| {
            for (n, log) in logs.iter().enumerate() {
                let barrier = Arc::clone(&barrier);
                scope.spawn(move || {
                    capture(log, || {
                        barrier.wait();
                        for i in 0..200 {
                            tracing::info!(task = n, i, "line from task {n}");
                        }
                    })
                });
            }
        });
        for (n, log) in logs.iter().enumerate() {
            let text = text(log);
            assert_eq!(text.lines().count(), 200, "{text}");
            assert!(
                text.lines()
                    .all(|line| line.contains(&format!("line from task {n} task={n} i=")))
            );
        }
    }

    #[test]
    fn nested_capture_restores_the_outer_log() {
        install();
        let (outer, inner) = (TaskLog::new(), TaskLog::new());
        capture(&outer, || {
            tracing::info!("before");
            capture(&inner, || tracing::info!("nested"));
            tracing::info!("after");
        });
        assert_eq!(text(&inner).lines().count(), 1);
        assert!(text(&inner).contains("nested"));
        let outer = text(&outer);
        assert!(outer.contains("before") && outer.contains("after"));
        assert!(!outer.contains("nested"));
    }

    #[test]
    fn panic_inside_capture_restores_the_previous_log() {
        install();
        let (outer, inner) = (TaskLog::new(), TaskLog::new());
        capture(&outer, || {
            let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                capture(&inner, || {
                    tracing::error!("about to fail");
                    panic!("step failed");
                })
            }));
            assert!(result.is_err());
            tracing::info!("still outer");
        });
        assert!(text(&inner).contains("about to fail"));
        assert!(!text(&inner).contains("still outer"));
        assert!(text(&outer).contains("still outer"));
        assert!(current_log().is_none());
    }

    #[test]
    fn fields_and_spans_are_formatted() {
        install();
        let log = TaskLog::new();
        capture(&log, || {
            let span = tracing::info_span!("batch", index = 3);
            let _entered = span.enter();
            tracing::info!(rows = 10, name = "train", ratio = 0.5, "loaded {} rows", 10);
            tracing::warn!(r#type = "x");
        });
        let text = text(&log);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2, "{text}");
        assert!(
            lines[0].ends_with(
                " INFO batch{index=3}: flow_runtime::logs::tests: loaded 10 rows rows=10 \
                 name=\"train\" ratio=0.5"
            ),
            "{}",
            lines[0]
        );
        assert!(
            lines[1].ends_with(" WARN batch{index=3}: flow_runtime::logs::tests: type=\"x\""),
            "{}",
            lines[1]
        );
        // RFC 3339 time first, in UTC.
        let time = lines[0].split(' ').next().unwrap_or_default();
        assert!(time.len() >= 20 && time.ends_with('Z') && time.as_bytes()[10] == b'T');
    }

    #[test]
    fn a_field_that_logs_while_it_is_formatted_does_not_deadlock() {
        struct Chatty;
        impl fmt::Debug for Chatty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                tracing::info!("from inside Debug");
                f.write_str("chatty")
            }
        }
        install();
        let log = TaskLog::new();
        capture(&log, || tracing::info!(value = ?Chatty, "outer"));
        let text = text(&log);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2, "{text}");
        assert!(lines[0].ends_with(": from inside Debug"), "{text}");
        assert!(lines[1].ends_with(": outer value=chatty"), "{text}");
    }

    #[test]
    fn levels_are_written_and_filtered() {
        install();
        let log = TaskLog::new();
        capture(&log, || {
            tracing::error!("e");
            tracing::warn!("w");
            tracing::info!("i");
            tracing::debug!("d");
            tracing::trace!("t");
        });
        let text = text(&log);
        let levels: Vec<&str> = text
            .lines()
            .filter_map(|line| line.split_whitespace().nth(1))
            .collect();
        if std::env::var_os(TASK_LOG_ENV).is_none() {
            assert_eq!(levels, ["ERROR", "WARN", "INFO"], "{text}");
        } else {
            assert!(levels.starts_with(&["ERROR", "WARN", "INFO"]), "{text}");
        }
    }

    #[test]
    fn take_empties_and_len_counts_bytes() {
        install();
        let log = TaskLog::new();
        assert!(log.is_empty());
        capture(&log, || tracing::info!("x"));
        let len = log.len();
        assert!(len > 0);
        let bytes = log.take();
        assert_eq!(bytes.len(), len);
        assert!(log.is_empty());
        assert!(bytes.ends_with(b"x\n"));
    }

    #[test]
    fn a_task_log_keeps_its_first_and_last_parts_within_its_bound() {
        install();
        let log = TaskLog::new();
        let line = "y".repeat(1000);
        capture(&log, || {
            tracing::info!("first line");
            for i in 0..40_000 {
                tracing::info!(i, "{line}");
            }
            tracing::info!("last line");
        });
        let bytes = log.take();
        let text = String::from_utf8_lossy(&bytes);
        assert!(
            bytes.len() <= 2 * (16 << 20) + 200,
            "{} bytes kept",
            bytes.len()
        );
        assert!(
            text.lines()
                .next()
                .is_some_and(|l| l.ends_with("first line"))
        );
        assert!(text.ends_with("last line\n"));
        assert!(text.contains(" bytes left out"), "no marker");
    }

    #[test]
    fn head_and_tail_keep_both_ends_and_count_what_they_drop() {
        let mut kept = HeadAndTail::new(4);
        kept.push(b"ab");
        assert_eq!(kept.to_bytes(), b"ab");
        kept.push(b"cdef");
        assert_eq!(kept.to_bytes(), b"abcdef");
        kept.push(b"ghi");
        assert_eq!(kept.kept(), 8);
        let marker = |n: u64| {
            format!("\n[{n} bytes left out: only the first and the last 4 bytes are kept]\n")
        };
        assert_eq!(
            kept.to_bytes(),
            format!("abcd{}fghi", marker(1)).into_bytes()
        );
        kept.push(b"jklmnopqrstu");
        kept.push(b"v");
        assert_eq!(kept.kept(), 8);
        let expected = format!("abcd{}stuv", marker(14)).into_bytes();
        assert_eq!(kept.to_bytes(), expected);
        assert_eq!(kept.into_bytes(), expected);
        let mut lines = HeadAndTail::new(3);
        lines.push(b"a\nbcdefg");
        assert!(lines.to_bytes().starts_with(b"a\nb\n[2 bytes left out"));
    }

    #[test]
    fn log_follows_to_spawned_thread_via_current_log() {
        install();
        let log = TaskLog::new();
        capture(&log, || {
            let handle = current_log();
            std::thread::scope(|scope| {
                scope.spawn(|| match &handle {
                    Some(log) => capture(log, || tracing::info!("from helper thread")),
                    None => panic!("no current log inside capture"),
                });
            });
        });
        assert!(text(&log).contains("from helper thread"));
    }
}
