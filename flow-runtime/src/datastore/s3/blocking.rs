//! The bridge from the synchronous [`Storage`](crate::datastore::storage::Storage) onto the asynchronous
//! `object_store`: each storage's own small tokio runtime, which callers block on.

use std::future::Future;
use std::io;

use tokio::runtime::Runtime;

/// Threads of each storage's runtime: they only drive sockets and timers, the caller's thread
/// does the blocking and the copying.
pub const RUNTIME_THREADS: usize = 2;

/// A tokio runtime that a synchronous caller blocks on, shut down without waiting when dropped.
pub(super) struct BlockingRuntime(Option<Runtime>);

impl BlockingRuntime {
    /// A multi-thread runtime of [`RUNTIME_THREADS`] threads.
    pub(super) fn start() -> io::Result<Self> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(RUNTIME_THREADS)
            .thread_name("blooming-object-store")
            .enable_all()
            .build()?;
        Ok(BlockingRuntime(Some(runtime)))
    }

    /// The runtime, to spawn on.
    pub(super) fn runtime(&self) -> &Runtime {
        // `None` only inside `drop`.
        self.0
            .as_ref()
            .unwrap_or_else(|| unreachable!("the runtime is used after it was dropped"))
    }

    /// Runs `future` to its end on the runtime, blocking the calling thread.
    pub(super) fn block_on<F>(&self, future: F) -> F::Output
    where
        F: Future + Send,
        F::Output: Send,
    {
        let runtime = self.runtime();
        if tokio::runtime::Handle::try_current().is_err() {
            return runtime.block_on(future);
        }
        // Inside a runtime (the caller's async code): blocking this thread on another runtime
        // would panic, so a helper thread blocks instead.
        std::thread::scope(|scope| {
            scope
                .spawn(|| runtime.block_on(future))
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
        })
    }
}

impl Drop for BlockingRuntime {
    fn drop(&mut self) {
        // Dropping a runtime waits for its threads, and panics inside an async context (where a
        // client may well be dropped). Nothing needs waiting for: every operation completed
        // before its method returned, what is left are idle connections.
        if let Some(runtime) = self.0.take() {
            runtime.shutdown_background();
        }
    }
}
