//! The contract every layout implements: the [`Layout`] trait and the types
//! it speaks (kept apart from `mod.rs` so the layouts import it without
//! importing the module that names them).

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use hfd_hub::{Commit, RemoteFile, Revision};
use hfd_store::TargetDir;

use super::tree_record::TreeRecord;
use crate::error::Result;

/// Whether files already up to date are fetched again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FetchPolicy {
    /// Skip files the target already holds at the listed etag and size.
    #[default]
    SkipUpToDate,
    /// Fetch every selected file again (`--force`); in the cache, a fresh
    /// blob replaces the one there.
    RefetchAll,
}

/// What happens to one file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileAction {
    /// Not present locally: fetch.
    New,
    /// Present but with another etag or size (or unknown): fetch again.
    Changed,
    /// Present with the same etag and size: no transfer. (In the cache this
    /// includes a file whose blob another revision already holds; the run
    /// only links it into the snapshot.)
    UpToDate,
}

/// Outcome of publishing one file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Publish {
    /// In place.
    Done,
    /// Another process holds the file's lock; nothing was done.
    Busy,
}

/// Whether the caller of [`Layout::publish`] already holds the lock
/// huggingface_hub takes for the item ([`Layout::lock_path`]): a download's
/// claim is kept on that file and takes the lock through its own descriptor
/// (`crate::claims`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HubLock {
    /// The layout takes it (and answers [`Publish::Busy`] when it is held
    /// elsewhere).
    Take,
    /// Held by the caller for the whole publication.
    Held,
}

/// Where the engine writes one file: the partial it fills, and the name the
/// complete, verified file gets before it is published.
#[derive(Debug, Clone)]
pub struct JobPaths {
    /// The target folder both paths lie below; the engine reaches them
    /// through it, following no symbolic link.
    pub target: TargetDir,
    /// The partial file.
    pub partial: PathBuf,
    /// The complete, verified file, not yet published.
    pub staged: PathBuf,
}

/// Files published together: one download shared by every path with its
/// content, or none (an up-to-date file whose link or metadata may need
/// refreshing).
#[derive(Debug, Clone)]
pub struct PublishItem {
    /// The files, all with the same etag (one, except in a layout that
    /// [shares content](Layout::shares_content)).
    pub files: Vec<RemoteFile>,
    /// The verified download, or `None` for an up-to-date file.
    pub staged: Option<PathBuf>,
}

/// An output layout: how a target is read before a run, prepared, filled and
/// finished. Every method that touches the disk is blocking.
pub trait Layout: fmt::Debug + Send + Sync {
    /// The folder where the files of `commit` appear.
    fn files_dir(&self, commit: &Commit) -> PathBuf;

    /// Whether files with the same etag are downloaded once and published
    /// together.
    fn shares_content(&self) -> bool;

    /// What a run must do with `file`, from what the target holds. Fails on
    /// a path that would leave the target.
    fn classify(
        &self,
        commit: &Commit,
        file: &RemoteFile,
        fetch: FetchPolicy,
    ) -> Result<FileAction>;

    /// [`classify`](Self::classify), and for an up-to-date file whether it
    /// is already settled at `commit` (nothing to refresh at publication:
    /// the run then touches it no more). By default nothing is settled.
    fn classify_settled(
        &self,
        commit: &Commit,
        file: &RemoteFile,
        fetch: FetchPolicy,
    ) -> Result<(FileAction, bool)> {
        Ok((self.classify(commit, file, fetch)?, false))
    }

    /// Creates the target's folders and tags. Returns the layout as the run
    /// uses it (a layout may adapt to the filesystem, as the cache does
    /// when symlinks are refused).
    fn prepare(&self) -> Result<Arc<dyn Layout>>;

    /// Records the complete, unfiltered listing of `commit` (only called
    /// for unfiltered runs).
    fn write_tree(&self, commit: &Commit, listing: &TreeRecord) -> Result<()>;

    /// Whether the listing of `commit` is already recorded (then
    /// [`write_tree`](Self::write_tree) would do nothing). By default: no.
    fn has_tree(&self, _commit: &Commit) -> bool {
        false
    }

    /// Where a listing in progress is kept between runs (decision 0027):
    /// the target folder and the file's path below it, in the layout's own
    /// metadata folder. By default: not kept.
    fn listing_state(&self) -> Option<(PathBuf, PathBuf)> {
        None
    }

    /// Where the engine writes `file`, parent folders created.
    fn job_paths(&self, file: &RemoteFile) -> Result<JobPaths>;

    /// The lock file huggingface_hub holds while it writes `file` (no disk
    /// access). A download's claim is kept on it too.
    fn lock_path(&self, file: &RemoteFile) -> Result<PathBuf>;

    /// Publishes `item` under the lock huggingface_hub takes for the same
    /// target (taken here unless `lock` says the caller holds it);
    /// [`Publish::Busy`], with nothing done, when another process holds it.
    fn publish(
        &self,
        commit: &Commit,
        item: &PublishItem,
        fetch: FetchPolicy,
        lock: HubLock,
    ) -> Result<Publish>;

    /// After a successful run (the cache's snapshot folder and ref).
    fn finish(&self, revision: &Revision, commit: &Commit) -> Result<()>;
}
