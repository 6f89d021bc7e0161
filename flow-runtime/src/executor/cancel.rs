//! Stopping a run when its coordinator is told to stop (SIGINT, SIGTERM).
//!
//! A coordinator killed outright leaves its run `running` forever, its Slurm jobs queued and its
//! child processes working for nobody. With [`super::RunOptions::stop_on_signals`] (what the CLI
//! sets), the run is driven on a thread of its own while the calling thread watches for a
//! signal. signal-hook's handlers only set flags, so nothing unsafe runs inside a handler. When
//! one arrives, the run is cancelled ([`Cancel::trigger`]): no worker takes another task, every
//! task's child process group gets SIGTERM (SIGKILL a few seconds later), the Slurm queue cancels
//! its jobs with `scancel` and waits until Slurm says they ended. The run is then recorded failed
//! ("interrupted by SIGTERM") and the caller gets [`super::RunError::Interrupted`].
//!
//! A task running on a worker thread (in-process mode) cannot be stopped from outside: it is
//! abandoned, and the process exits under it. What it leaves is harmless: a task becomes visible
//! only with its done marker, written last, so `resume` sees it either complete or not at all.
//!
//! A second signal while the first is being handled ends the process at once (exit status
//! 128 + the signal), for a user who does not want to wait for the jobs to be cancelled.

use std::collections::HashSet;
use std::process::Child;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, mpsc};
use std::time::{Duration, Instant};

use signal_hook::consts::{SIGINT, SIGTERM};

/// How long child processes have to end after SIGTERM before they get SIGKILL.
const KILL_AFTER: Duration = Duration::from_secs(5);

/// How often the waiting thread looks at the signal flag.
const POLL: Duration = Duration::from_millis(100);

/// How long an interrupted run in process mode may take to stop its tasks before it is recorded
/// as interrupted without them.
pub(crate) const PROCESS_GRACE: Duration = Duration::from_secs(15);

/// The same for Slurm, where cancelled jobs end within the cluster's `KillWait` (30 s by default).
pub(crate) const SLURM_GRACE: Duration = Duration::from_secs(90);

/// The cancellation of one run, shared by everything that starts work for it.
#[derive(Debug, Default)]
pub(crate) struct Cancel {
    /// The signal that cancelled the run; 0 while it goes on.
    signal: AtomicI32,
    /// The process groups of the tasks' child processes (each child leads its own).
    groups: Mutex<HashSet<i32>>,
    /// Whether the run's final record was written (or is being written) by someone: the run's
    /// own thread or, when it gave up waiting for it, the thread that watches for signals.
    recorded: AtomicBool,
}

impl Cancel {
    /// The signal that cancelled the run, if one did.
    pub(crate) fn signal(&self) -> Option<i32> {
        match self.signal.load(Ordering::SeqCst) {
            0 => None,
            signal => Some(signal),
        }
    }

    /// Whether the run was cancelled: no new task may start.
    pub(crate) fn is_set(&self) -> bool {
        self.signal().is_some()
    }

    /// Cancels the run because of `signal`: sends SIGTERM to every task's process group. Only the
    /// first call does anything.
    pub(crate) fn trigger(&self, signal: i32) {
        if self
            .signal
            .compare_exchange(0, signal, Ordering::SeqCst, Ordering::SeqCst)
            .is_ok()
        {
            for &group in self.lock_groups().iter() {
                signal_group(group, rustix::process::Signal::TERM);
            }
        }
    }

    /// Sends SIGKILL to the process groups still there after SIGTERM.
    pub(crate) fn kill_children(&self) {
        for &group in self.lock_groups().iter() {
            signal_group(group, rustix::process::Signal::KILL);
        }
    }

    /// Follows `child`, which leads a process group of its own, until the returned guard is
    /// dropped: a cancellation sends its group SIGTERM, at once if the run is cancelled already.
    pub(crate) fn watch(&self, child: &Child) -> WatchedChild<'_> {
        let group = i32::try_from(child.id()).unwrap_or(0);
        let mut groups = self.lock_groups();
        groups.insert(group);
        // Read under the lock: `trigger` sets the signal before it goes through the groups, so
        // either it sees this group or this sees its signal.
        if self.is_set() {
            signal_group(group, rustix::process::Signal::TERM);
        }
        WatchedChild {
            cancel: self,
            group,
        }
    }

    /// Takes the right to write the run's final record; `false` if it was taken already.
    pub(crate) fn claim_record(&self) -> bool {
        !self.recorded.swap(true, Ordering::SeqCst)
    }

    fn lock_groups(&self) -> MutexGuard<'_, HashSet<i32>> {
        self.groups
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// A child process followed by a [`Cancel`]; forgotten when dropped (after the child was reaped).
pub(crate) struct WatchedChild<'a> {
    cancel: &'a Cancel,
    group: i32,
}

impl Drop for WatchedChild<'_> {
    fn drop(&mut self) {
        self.cancel.lock_groups().remove(&self.group);
    }
}

fn signal_group(group: i32, signal: rustix::process::Signal) {
    if let Some(pid) = rustix::process::Pid::from_raw(group) {
        // The group may be gone already: nothing to do then.
        let _ = rustix::process::kill_process_group(pid, signal);
    }
}

/// What a run's record says when a signal stopped it: "interrupted by SIGTERM".
pub(crate) fn interrupted_by(signal: i32) -> String {
    match signal_hook::low_level::signal_name(signal) {
        Some(name) => format!("interrupted by {name}"),
        None => format!("interrupted by signal {signal}"),
    }
}

/// The signal this process received since [`listen`] installed its handlers (0: none).
fn received() -> &'static Arc<AtomicUsize> {
    static RECEIVED: OnceLock<Arc<AtomicUsize>> = OnceLock::new();
    RECEIVED.get_or_init(|| Arc::new(AtomicUsize::new(0)))
}

/// Installs the handlers of SIGINT and SIGTERM, once per process; returns whether they are in
/// place. They stay for the life of the process (signal-hook cannot give the default action
/// back), which suits a command-line program that ends with its run.
pub(crate) fn listen() -> bool {
    static INSTALLED: OnceLock<bool> = OnceLock::new();
    *INSTALLED.get_or_init(|| {
        let once = Arc::new(AtomicBool::new(false));
        [SIGINT, SIGTERM].into_iter().all(|signal| {
            // In this order: the shutdown looks at the flag before the second action sets it,
            // so only a signal after the first ends the process.
            let installed = signal_hook::flag::register_conditional_shutdown(
                signal,
                128 + signal,
                Arc::clone(&once),
            )
            .and_then(|_| signal_hook::flag::register(signal, Arc::clone(&once)))
            .and_then(|_| {
                signal_hook::flag::register_usize(
                    signal,
                    Arc::clone(received()),
                    usize::try_from(signal).unwrap_or(0),
                )
            });
            if let Err(e) = &installed {
                tracing::warn!("cannot handle signal {signal}; it will end runs abruptly: {e}");
            }
            installed.is_ok()
        })
    })
}

fn received_signal() -> Option<i32> {
    match received().load(Ordering::SeqCst) {
        0 => None,
        signal => i32::try_from(signal).ok(),
    }
}

/// Runs `work` (a whole run) on a thread of its own and returns what it returns, unless SIGINT
/// or SIGTERM arrives first: then `cancel` is triggered and `work` gets `grace` to stop; if it
/// does not (a task that cannot be stopped), `abandon` says what to return instead, and `work`
/// is left running. `work` and `abandon` agree through [`Cancel::claim_record`] on which of the
/// two records the run.
///
/// A panic of `work` is resumed on the calling thread.
pub(crate) fn run_interruptible<T: Send + 'static>(
    cancel: &Cancel,
    grace: Duration,
    work: impl FnOnce() -> T + Send + 'static,
    abandon: impl FnOnce(i32) -> T,
) -> std::io::Result<T> {
    let (sender, results) = mpsc::channel();
    let thread = std::thread::Builder::new()
        .name("blooming-run".into())
        .spawn(move || {
            let _ = sender.send(work());
        })?;
    let signal = loop {
        match results.recv_timeout(POLL) {
            Ok(value) => return join(thread, value),
            Err(mpsc::RecvTimeoutError::Disconnected) => return Err(resume_panic(thread)),
            Err(mpsc::RecvTimeoutError::Timeout) => {
                if let Some(signal) = received_signal() {
                    break signal;
                }
            }
        }
    };
    cancel.trigger(signal);
    let started = Instant::now();
    let mut killed = false;
    loop {
        let until = if killed { grace } else { KILL_AFTER.min(grace) };
        match results.recv_timeout(until.saturating_sub(started.elapsed())) {
            Ok(value) => return join(thread, value),
            Err(mpsc::RecvTimeoutError::Disconnected) => return Err(resume_panic(thread)),
            Err(mpsc::RecvTimeoutError::Timeout) if !killed => {
                cancel.kill_children();
                killed = true;
            }
            Err(mpsc::RecvTimeoutError::Timeout) => break,
        }
    }
    if cancel.claim_record() {
        // The thread is left to itself: the process ends with the caller.
        return Ok(abandon(signal));
    }
    // The run's thread is writing its record: it answers in a moment.
    match results.recv() {
        Ok(value) => join(thread, value),
        Err(mpsc::RecvError) => Err(resume_panic(thread)),
    }
}

fn join<T>(thread: std::thread::JoinHandle<()>, value: T) -> std::io::Result<T> {
    let _ = thread.join();
    Ok(value)
}

/// The run's thread ended without an answer: it panicked; the panic goes on here.
fn resume_panic(thread: std::thread::JoinHandle<()>) -> std::io::Error {
    match thread.join() {
        Err(payload) => std::panic::resume_unwind(payload),
        Ok(()) => std::io::Error::other("the run's thread ended without a result"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::process::CommandExt as _;

    #[test]
    fn a_watched_child_gets_sigterm_when_the_run_is_cancelled() {
        let cancel = Cancel::default();
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .process_group(0)
            .spawn()
            .expect("sleep");
        {
            let _watched = cancel.watch(&child);
            cancel.trigger(SIGTERM);
            let status = child.wait().expect("wait");
            use std::os::unix::process::ExitStatusExt as _;
            assert_eq!(status.signal(), Some(SIGTERM));
        }
        assert!(cancel.lock_groups().is_empty());
        assert_eq!(cancel.signal(), Some(SIGTERM));
        // Only the first signal counts.
        cancel.trigger(SIGINT);
        assert_eq!(cancel.signal(), Some(SIGTERM));
    }

    #[test]
    fn a_child_started_after_the_cancellation_is_stopped_at_once() {
        let cancel = Cancel::default();
        cancel.trigger(SIGINT);
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .process_group(0)
            .spawn()
            .expect("sleep");
        let _watched = cancel.watch(&child);
        use std::os::unix::process::ExitStatusExt as _;
        assert_eq!(child.wait().expect("wait").signal(), Some(SIGTERM));
    }

    #[test]
    fn the_record_is_claimed_once() {
        let cancel = Cancel::default();
        assert!(cancel.claim_record());
        assert!(!cancel.claim_record());
    }

    #[test]
    fn the_signal_is_named() {
        assert_eq!(interrupted_by(SIGTERM), "interrupted by SIGTERM");
        assert_eq!(interrupted_by(SIGINT), "interrupted by SIGINT");
    }

    #[test]
    fn work_without_a_signal_returns_its_value_and_a_panic_goes_on() {
        let cancel = Cancel::default();
        let value = run_interruptible(&cancel, Duration::ZERO, || 7, |_| 0).expect("a thread");
        assert_eq!(value, 7);
        let panicked = std::panic::catch_unwind(|| {
            run_interruptible(&cancel, Duration::ZERO, || panic!("inside the run"), |_| ())
        });
        assert!(panicked.is_err());
    }
}
