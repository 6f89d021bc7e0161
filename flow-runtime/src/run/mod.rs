//! Runs and tasks as the datastore records them: ids, the run record, each task's metadata,
//! and where all of it lives.
//!
//! ```text
//! flows/<Flow>/runs/<run id>/run.json                        the run record
//! flows/<Flow>/runs/<run id>/steps/<step>/<task id>/done.json  its index and metadata (complete)
//! flows/<Flow>/runs/<run id>/steps/<step>/<task id>/meta.json  its metadata when it failed
//! flows/<Flow>/runs/<run id>/steps/<step>/<task id>/spec.json  what a task runs on (process mode)
//! flows/<Flow>/runs/<run id>/steps/<step>/<task id>/attempt-<n>.log   its log
//! flows/<Flow>/runs/<run id>/steps/<step>/<task id>/checkpoints/<seq>.json   its checkpoints
//! flows/<Flow>/latest/{any,succeeded}                         the id of the run started last
//!                                                             (of those that succeeded)
//! flows/<Flow>/promotions/<label>/history/<time>-<unique>.json   a promotion or demotion
//! flows/<Flow>/promotions/<label>/current                     the newest of them (see
//!                                                             [`Promotion`])
//! ```
//!
//! `run.json` is created once, then changed in place (by `tag`, and by the end of the run) with
//! [`Storage::update`](crate::datastore::Storage::update), each change applied to what is stored
//! at that moment, so that none undoes another. The `latest` pointers are changed the same way
//! and only ever move to a run that started later.

mod checkpoints;
pub mod gc;
mod ids;
mod promotion;
mod provenance;
mod record;
mod store;
mod task_meta;
mod who;

pub use checkpoints::CheckpointRecord;
pub(crate) use ids::hostname;
pub use ids::{RunId, StepName, TaskId, new_run_id, validate_run_id};
pub use promotion::{Promotion, PromotionAction};
pub use provenance::{BuildInfo, Provenance, RUSTC_VERSION};
pub use record::{GraphRecord, KeepCheckpoints, RunRecord, RunStatus, StepRecord, now_rfc3339};
pub use store::{Latest, MAX_CARD_SIZE, RunStore, RunStoreError};
pub use task_meta::{
    AttemptRecord, ForeachRecord, FrameRecord, InputSpec, TaskFailure, TaskMeta, TaskPath,
    TaskSpec, TaskStatus,
};
pub use who::current_user;
