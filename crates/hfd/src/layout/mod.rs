//! Where a plan's files go on disk: one [`Layout`] trait, one module per
//! layout, and the filesystem helpers they share.
//!
//! - [`local_dir`]: a plain folder with huggingface_hub's
//!   `.cache/huggingface/` metadata ([`LocalDir`]).
//! - [`hub_cache`]: the hub cache with blobs, snapshot links and refs
//!   ([`CacheRepo`]).
//! - `contract`: the [`Layout`] trait and the words it speaks
//!   ([`FileAction`], [`FetchPolicy`], [`Publish`], …).
//! - `fs`: safe joins, atomic writes and the tree listing both use.
//! - `lock`: the advisory locks huggingface_hub takes on the same targets.
//! - `tree_record`: the listing kept, packed, for `trees/<commit>.json`
//!   ([`TreeRecord`]).
//!
//! The engine writes each file to a partial path and, once complete and
//! verified, renames it to a *staged* path ([`Layout::job_paths`]; a file
//! fetched without a journal keeps its partial name); the publisher
//! (`crate::publisher`) then hands it to [`Layout::publish`].
//!
//! Adding a layout: a new module with a type implementing [`Layout`], and a
//! variant of [`OutputLayout`] that [`OutputLayout::open`] maps to it. The
//! other layouts, the publisher and the download stay as they are.

pub mod hub_cache;
pub mod local_dir;

mod contract;
pub(crate) mod fs;
pub(crate) mod lock;
mod tree_record;

use std::path::PathBuf;
use std::sync::Arc;

use hfd_hub::RepoRef;

pub use contract::{FetchPolicy, FileAction, HubLock, JobPaths, Layout, Publish, PublishItem};
pub use hub_cache::{CacheRepo, SnapshotEntries};
pub use local_dir::{LocalDir, LocalMetadata};
pub use tree_record::TreeRecord;

/// Which layout a download writes, with its options (what
/// [`DownloadRequest`](crate::DownloadRequest) carries).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum OutputLayout {
    /// A plain folder (`--local-dir`) with huggingface_hub's per-file
    /// metadata under `.cache/huggingface/`.
    LocalDir(PathBuf),
    /// The Hugging Face cache layout under `root` (the `HF_HUB_CACHE`
    /// folder).
    HubCache {
        /// The cache root.
        root: PathBuf,
        /// Snapshot entries as symlinks to the blobs or as copies.
        entries: SnapshotEntries,
    },
}

impl OutputLayout {
    /// The hub cache at `root`, snapshot entries as symlinks.
    pub fn hub_cache(root: impl Into<PathBuf>) -> Self {
        Self::HubCache {
            root: root.into(),
            entries: SnapshotEntries::Symlinks,
        }
    }

    /// The layout for `repo`.
    pub fn open(&self, repo: &RepoRef) -> Arc<dyn Layout> {
        match self {
            Self::LocalDir(dir) => Arc::new(LocalDir::new(dir)),
            Self::HubCache { root, entries } => {
                Arc::new(CacheRepo::new(root, repo).with_entries(*entries))
            }
        }
    }
}
