//! [`FileJob`]: one file the engine is asked to download.

use std::path::PathBuf;

use hfd_store::{FileIdentity, TargetDir};
use hfd_types::ContentDigest;

use crate::source::FileKey;

/// One file to download.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct FileJob {
    /// The caller's identity for the file, passed back to the source.
    pub key: FileKey,
    /// Exact size in bytes.
    pub size: u64,
    /// Digest to verify before the file gets its final name.
    pub expected: Option<ContentDigest>,
    /// Unique temporary name to write to (never `<final>.incomplete`).
    pub partial_path: PathBuf,
    /// Name the file gets once complete and verified. Its directory must
    /// exist.
    pub final_path: PathBuf,
    /// The file's identity on the hub. With one, the partial gets a resume
    /// journal (`<partial>.journal`): a matching journal from an earlier run
    /// is resumed (its ranges are never fetched again), and durable ranges
    /// are journaled as the download goes. Without one (tests), no journal
    /// and every run starts from zero.
    pub identity: Option<FileIdentity>,
    /// Start over: a partial and journal left by an earlier run are
    /// discarded instead of resumed (`--force`, repairs).
    pub fresh: bool,
    /// The target folder both paths lie below. With one, the partial, its
    /// journal and the final name are opened relative to this checked
    /// handle and no symbolic link below it is ever followed (a link
    /// planted at one of those names is refused, not written through).
    /// Without one (tests), the paths are used as given.
    pub target: Option<TargetDir>,
}

impl FileJob {
    /// A job without an expected digest.
    pub fn new(
        key: FileKey,
        size: u64,
        partial_path: impl Into<PathBuf>,
        final_path: impl Into<PathBuf>,
    ) -> Self {
        Self {
            key,
            size,
            expected: None,
            partial_path: partial_path.into(),
            final_path: final_path.into(),
            identity: None,
            fresh: false,
            target: None,
        }
    }

    /// Sets the target folder `partial_path` and `final_path` lie below:
    /// from then on they are reached through it without following links.
    #[must_use]
    pub fn with_target(mut self, target: TargetDir) -> Self {
        self.target = Some(target);
        self
    }

    /// Sets the identity, which turns on the resume journal.
    #[must_use]
    pub fn with_identity(mut self, identity: FileIdentity) -> Self {
        self.identity = Some(identity);
        self
    }

    /// Discards any partial and journal from an earlier run before the
    /// download starts (see [`FileJob::fresh`]).
    #[must_use]
    pub fn fresh(mut self) -> Self {
        self.fresh = true;
        self
    }

    /// Sets the digest to verify.
    #[must_use]
    pub fn with_expected(mut self, digest: ContentDigest) -> Self {
        self.expected = Some(digest);
        self
    }
}
