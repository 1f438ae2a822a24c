//! [`ClaimGate`]: asked just before a file starts whether this process is
//! the one to download it, so several processes can share one target
//! without fetching a file twice. The engine only honours the answer; what
//! a claim is (a lock file, a database row) is the caller's.

use crate::job::FileJob;

/// The answer of a [`ClaimGate`] for one file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// This process downloads the file (the caller keeps whatever it took
    /// to say so until the file is published).
    Mine,
    /// Another process is downloading it: the file is skipped with
    /// [`FileOutcome::Busy`](crate::FileOutcome::Busy) and the caller may
    /// ask again later.
    Busy,
    /// Another process already finished it:
    /// [`FileOutcome::DoneElsewhere`](crate::FileOutcome::DoneElsewhere).
    DoneElsewhere,
}

/// Decides whether a file is downloaded by this process. Blocking (the
/// engine calls it on a blocking thread, once per file, just before the
/// file's partial is opened).
pub trait ClaimGate: Send + Sync {
    /// Claims `job`'s file for this process (everything a claim needs is
    /// derived from the job: nothing is kept per file in advance).
    fn claim(&self, job: &FileJob) -> Claim;
}
