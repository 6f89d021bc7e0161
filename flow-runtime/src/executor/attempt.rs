//! One attempt of one step: the user's code, with its panics caught, its logs captured, its
//! `current()` set and its timeout enforced.

use std::cell::RefCell;
use std::panic::{self, AssertUnwindSafe};
use std::sync::Once;
use std::sync::mpsc;
use std::time::Duration;

use crate::current::{Current, with_current};
use crate::flow::{Flow, StepInput, StepOutcome};
use crate::logs::{TaskLog, capture};
use crate::run::TaskFailure;

thread_local! {
    /// Set while a step runs on this thread, so the panic hook knows to record, not print.
    static IN_STEP: RefCell<bool> = const { RefCell::new(false) };
    /// Set while a worker runs a task on this thread (outside the step body too: the user's
    /// `Default`, `Clone`, `Serialize` and `Deserialize` run there), for the same reason.
    static IN_TASK: RefCell<bool> = const { RefCell::new(false) };
    /// What the task was doing outside its step, for the message of a panic there.
    static PHASE: std::cell::Cell<&'static str> = const { std::cell::Cell::new("running") };
    /// The location and message of the last panic in a step on this thread.
    static LAST_PANIC: RefCell<Option<(String, Option<String>)>> = const { RefCell::new(None) };
}

/// Installs, once, a panic hook that records a step's panic (message and location) instead of
/// printing it; panics outside steps go to the previous hook.
fn install_panic_hook() {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let previous = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            if IN_STEP.with(|s| *s.borrow()) || IN_TASK.with(|s| *s.borrow()) {
                let message = panic_message(info.payload());
                let location = info
                    .location()
                    .map(|l| format!("{}:{}:{}", l.file(), l.line(), l.column()));
                LAST_PANIC.with(|p| *p.borrow_mut() = Some((message, location)));
            } else {
                previous(info);
            }
        }));
    });
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "a step panicked with a non-string payload".to_string()
    }
}

/// Says what the task on this thread is doing outside its step body, for the message of a
/// panic in the user's trait impls (`"storing its state"`).
pub(crate) fn set_phase(phase: &'static str) {
    PHASE.with(|p| p.set(phase));
}

/// Runs a whole task (`f`) so that a panic anywhere in it, outside the step body too (the
/// user's `Default`, `Clone`, `Serialize` or `Deserialize`, or the runtime itself), becomes the
/// task's failure instead of unwinding through the worker: a worker that unwinds never tells
/// the scheduler its task ended, and the other workers would wait for it forever.
pub(crate) fn catch_task_panic<R>(f: impl FnOnce() -> R) -> Result<R, TaskFailure> {
    install_panic_hook();
    IN_TASK.with(|s| *s.borrow_mut() = true);
    LAST_PANIC.with(|p| *p.borrow_mut() = None);
    set_phase("running");
    let result = panic::catch_unwind(AssertUnwindSafe(f));
    IN_TASK.with(|s| *s.borrow_mut() = false);
    result.map_err(|payload| {
        let (message, location) = LAST_PANIC
            .with(|p| p.borrow_mut().take())
            .unwrap_or_else(|| (panic_message(&*payload), None));
        let phase = PHASE.with(|p| p.get());
        TaskFailure {
            kind: "panic".into(),
            message: format!("panicked outside the step, while {phase}: {message}"),
            causes: Vec::new(),
            location,
        }
    })
}

/// What one attempt produced.
pub(crate) struct AttemptResult<F> {
    pub state: F,
    pub outcome: Result<StepOutcome, TaskFailure>,
}

/// The input of one attempt, owned so that it can move to a timeout thread.
pub(crate) enum AttemptInput<F> {
    Plain,
    Item(std::sync::Arc<Vec<u8>>),
    Join(crate::inputs::Inputs<F>),
}

/// Runs step `step` on `state`: on this thread, or on a thread of its own when the step has a
/// timeout (a thread cannot be stopped: after a timeout it is abandoned and its result dropped).
pub(crate) fn run_attempt<F: Flow>(
    state: F,
    step: usize,
    input: AttemptInput<F>,
    current: Current,
    log: &TaskLog,
    timeout: Option<Duration>,
) -> Result<AttemptResult<F>, TaskFailure> {
    install_panic_hook();
    match timeout {
        None => Ok(run_here(state, step, input, current, log)),
        Some(limit) => {
            let (tx, rx) = mpsc::channel();
            let log = log.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("step-{}", current.step))
                .spawn(move || {
                    let _ = tx.send(run_here(state, step, input, current, &log));
                });
            if let Err(e) = spawned {
                return Err(TaskFailure {
                    kind: "runtime".into(),
                    message: format!("cannot start a thread for the step: {e}"),
                    causes: Vec::new(),
                    location: None,
                });
            }
            match rx.recv_timeout(limit) {
                Ok(result) => Ok(result),
                Err(_) => Err(TaskFailure {
                    kind: "timeout".into(),
                    message: format!(
                        "the step did not finish within its timeout of {}",
                        humantime::format_duration(limit)
                    ),
                    causes: Vec::new(),
                    location: None,
                }),
            }
        }
    }
}

fn run_here<F: Flow>(
    mut state: F,
    step: usize,
    input: AttemptInput<F>,
    current: Current,
    log: &TaskLog,
) -> AttemptResult<F> {
    IN_STEP.with(|s| *s.borrow_mut() = true);
    LAST_PANIC.with(|p| *p.borrow_mut() = None);
    let result = capture(log, || {
        with_current(current, || {
            panic::catch_unwind(AssertUnwindSafe(|| match &input {
                AttemptInput::Plain => state.__run_step(step, StepInput::Plain),
                AttemptInput::Item(bytes) => state.__run_step(step, StepInput::Item(bytes)),
                AttemptInput::Join(inputs) => {
                    state.__run_step(step, StepInput::Join(inputs.clone_handle()))
                }
            }))
        })
    });
    IN_STEP.with(|s| *s.borrow_mut() = false);
    let outcome = match result {
        Ok(Ok(outcome)) => Ok(outcome),
        Ok(Err(error)) => Err(TaskFailure {
            kind: "error".into(),
            message: error.message,
            causes: error.causes,
            location: None,
        }),
        Err(payload) => {
            let (message, location) = LAST_PANIC
                .with(|p| p.borrow_mut().take())
                .unwrap_or_else(|| (panic_message(&*payload), None));
            Err(TaskFailure {
                kind: "panic".into(),
                message: format!("panicked: {message}"),
                causes: Vec::new(),
                location,
            })
        }
    };
    AttemptResult { state, outcome }
}
