//! A flow's runs listed whole, also when some of their records cannot be read.

use super::{ClientError, RunHandle};
use crate::run::RunId;

/// Every run of a flow that could be read, and the ones that could not: from
/// [`FlowHandle::list_runs`](super::FlowHandle::list_runs).
#[derive(Debug, Default)]
pub struct RunList {
    /// The runs read, newest first.
    pub runs: Vec<RunHandle>,
    /// The runs whose record is there but cannot be read (damaged, in a format this version
    /// does not read, or unreachable), newest first.
    pub unreadable: Vec<UnreadableRun>,
}

/// A run whose record cannot be read.
#[derive(Debug)]
pub struct UnreadableRun {
    /// The run's id, from the listing.
    pub run_id: RunId,
    /// Why its record cannot be read.
    pub error: ClientError,
}
