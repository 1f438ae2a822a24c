//! hfd: download a Hugging Face Hub repository, the use case behind the
//! `hfd-rs` binary.
//!
//! [`Downloader::plan`] pins the revision, lists and filters the files
//! (through `hfd-hub`) and compares them with the target folder;
//! [`Downloader::download`] runs the plan through `hfd-engine`, with a
//! [`RangeSource`](hfd_engine::RangeSource) over `hfd-http` that resolves each
//! file once and reuses its URL for every range, then publishes each file in
//! the layout huggingface_hub reads: a plain folder with its per-file
//! metadata ([`LocalDir`]), or the hub cache with blobs, snapshot symlinks
//! and refs ([`CacheRepo`]), both behind the [`Layout`] trait, under the
//! same locks huggingface_hub takes. With several endpoints, [`FailOver`]
//! runs the download on each in turn while the failure is one another
//! endpoint may not have. A rerun is a sync: files whose etag and size match are
//! skipped without any request beyond the listing.
//!
//! ```no_run
//! # use std::sync::Arc;
//! # async fn demo() -> Result<(), hfd::Error> {
//! use hfd::{DownloadRequest, Downloader};
//! use hfd_hub::{HubClient, HubConfig, RepoId, RepoRef, Revision};
//! let http = hfd_http::HttpClient::new(hfd_http::HttpConfig::default())?;
//! let hub = HubClient::new(HubConfig::default(), http.clone());
//! let downloader = Downloader::new(hub, http, hfd_engine::EngineConfig::default());
//! let repo = RepoRef::model(RepoId::new("openai-community/gpt2")?);
//! let request = DownloadRequest::new(repo, Revision::new("main")?, "gpt2");
//! let plan = downloader.plan(&request).await?;
//! let report = downloader
//!     .download(&plan, Arc::new(hfd_engine::NoopReporter), Default::default())
//!     .await?;
//! println!("{} files", report.files_done);
//! # Ok(()) }
//! ```
//!
//! What this crate does not do: print, parse arguments, read environment
//! variables or install a tracing subscriber (that is the CLI's job).

#![warn(missing_docs)]

pub mod bench;
mod claims;
mod classify;
mod download;
mod error;
mod fail_over;
mod fetch_list;
mod layer;
pub mod layout;
mod limit;
mod listing_ahead;
mod listing_file;
mod meter;
pub mod names;
mod publisher;
pub mod shard;
mod source;
pub mod verify;

pub use download::{DownloadPlan, DownloadReport, DownloadRequest, Downloader, PlannedFile};
pub use error::{Error, ErrorKind, Result};
pub use fail_over::{FailOver, FailingOver};
pub use fetch_list::FetchList;
pub use hfd_store::raise_open_file_limit;
pub use layout::{
    CacheRepo, FetchPolicy, FileAction, Layout, LocalDir, LocalMetadata, OutputLayout, Publish,
    SnapshotEntries,
};
pub use meter::LiveStats;
pub use names::NameRules;

pub use hfd_engine;
pub use hfd_http;
pub use hfd_hub;
