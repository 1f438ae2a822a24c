//! [`FileCtx`]: the state of one file in flight, shared by its connections.

use std::sync::{Arc, Mutex};

use hfd_store::PartialFile;
use tokio::sync::Notify;

use crate::journal_flush::JournalTrigger;
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
    /// Group-commit trigger of a journaled file.
    pub(crate) journal: Option<Arc<JournalTrigger>>,
    /// Bytes collected before one blocking write.
    pub(crate) write_batch: u64,
}
