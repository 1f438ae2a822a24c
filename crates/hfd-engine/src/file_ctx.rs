//! [`FileCtx`]: the state of one file in flight, shared by its connections.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use hfd_store::PartialFile;
use tokio::sync::Notify;

use crate::journal_flush::Unjournaled;
use crate::plan::FilePlan;
use crate::source::FileKey;

/// State of one file shared by its workers.
pub(crate) struct FileCtx {
    pub(crate) key: FileKey,
    pub(crate) size: u64,
    pub(crate) partial: PartialFile,
    pub(crate) plan: Mutex<FilePlan>,
    /// Signalled whenever a lane ends (work may have appeared).
    pub(crate) changed: Notify,
    /// Marks a journaled file as having bytes to commit.
    pub(crate) journal: Option<Arc<Unjournaled>>,
    /// Bytes collected before one blocking write.
    pub(crate) write_batch: u64,
    /// A batch is written once its first frame is this old, however small:
    /// bounds the received bytes a `kill -9` loses on a slow connection.
    pub(crate) batch_age: Duration,
}
