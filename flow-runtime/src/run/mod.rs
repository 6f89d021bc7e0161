//! Runs and tasks as the datastore records them: ids, the run record, each task's metadata,
//! and where all of it lives.
//!
//! ```text
//! flows/<Flow>/runs/<run id>/run.json                        the run record
//! flows/<Flow>/runs/<run id>/steps/<step>/<task id>/done.json  its index and metadata (complete)
//! flows/<Flow>/runs/<run id>/steps/<step>/<task id>/meta.json  its metadata when it failed
//! flows/<Flow>/runs/<run id>/steps/<step>/<task id>/spec.json  what a task runs on (process mode)
//! flows/<Flow>/runs/<run id>/steps/<step>/<task id>/attempt-<n>.log   its log
//! flows/<Flow>/latest/{any,succeeded}                         the newest run ids
//! ```

mod ids;
mod record;
mod store;
mod task_meta;

pub(crate) use ids::hostname;
pub use ids::new_run_id;
pub use record::{GraphRecord, RunRecord, RunStatus, StepRecord, now_rfc3339};
pub use store::{RunStore, RunStoreError};
pub use task_meta::{
    AttemptRecord, ForeachRecord, FrameRecord, InputSpec, TaskFailure, TaskMeta, TaskPath,
    TaskSpec, TaskStatus,
};
