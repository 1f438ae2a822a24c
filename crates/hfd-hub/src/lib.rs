//! The Hugging Face Hub protocol client of hfd-rs: it finds out exactly which
//! bytes to fetch, and from where, for a model, dataset or Space repository,
//! through the official Hub or a mirror, with as few requests as possible,
//! and says precisely what went wrong when it cannot.
//!
//! Main types:
//! - [`HubClient`] (built from a [`HubConfig`] and an [`hfd_http::HttpClient`]):
//!   [`HubClient::pin_revision`] turns a branch, tag or `refs/pr/N` into one
//!   [`Commit`]; [`HubClient::list_files`] lists every file through the
//!   paginated recursive tree API; [`HubClient::resolve`] turns a file into a
//!   [`ResolvedFile`] (final URL, size, ETag, whether the token may go
//!   there) with one request; [`HubClient::plan`] does pin + list + filter.
//! - [`RepoId`], [`RepoType`], [`RepoRef`], [`Revision`], [`Endpoint`]:
//!   validated inputs. [`Selection`] and [`Glob`]: `--include`/`--exclude`
//!   with huggingface_hub's `fnmatch` semantics.
//! - [`RemoteFile`]: path, size, git oid, LFS SHA-256, Xet hash;
//!   [`RemoteFile::expected_digest`] is what the bytes must hash to.
//! - [`Token`] (prints as `hf_***`) and [`find_token`] (token precedence of
//!   `HF_TOKEN`, `HF_TOKEN_PATH`, `$HF_HOME/token`, from a lookup closure).
//! - [`Error`] with [`Error::kind`] → [`HubErrorKind`] for exit codes.
//!
//! Security rules enforced here: every listed path is checked
//! (`check_repo_path`: no traversal, absolute path, backslash, control
//! character or over-long name), and selected paths that would overwrite
//! each other on a case-insensitive or normalising file system are refused
//! (`find_path_collision`); listings are filtered page by page
//! ([`HubClient::list_selected`]), so memory follows the selection, not the
//! repository; a redirect from https to http is refused; the token goes only
//! to the endpoint's origin and official Hub hosts over https, never to a
//! CDN host, never appears in `Debug`, `Display` or logs, and is scrubbed
//! from error texts a server echoes back; signed URLs are
//! [`hfd_types::RedactedUrl`].
//!
//! ```
//! use hfd_hub::{Endpoint, RepoId, RepoRef, Selection};
//! let repo = RepoRef::dataset(RepoId::new("HuggingFaceFW/fineweb").unwrap());
//! let endpoint = Endpoint::parse("https://hf-mirror.com/").unwrap();
//! assert_eq!(
//!     endpoint.resolve_url(&repo, "refs/pr/1", "sample/a b.parquet"),
//!     "https://hf-mirror.com/datasets/HuggingFaceFW/fineweb/resolve/refs%2Fpr%2F1/sample/a%20b.parquet"
//! );
//! let selection = Selection::all().include(["sample/10BT/*"]).exclude(["*.md"]);
//! assert!(selection.matches("sample/10BT/000.parquet"));
//! assert!(!selection.matches("README.md"));
//! ```
//!
//! What it does not do: read environment variables (the CLI passes the
//! endpoint and token in; [`find_token`] takes a lookup closure), open or
//! write downloaded files, fetch file contents in ranges, or speak the Xet
//! protocol. It only emits `tracing` events.
//!
//! Cancel safety: all async methods may be dropped at any await point;
//! nothing is left half-done.

#![warn(missing_docs)]

mod auth;
mod client;
mod endpoint;
mod error;
mod file;
mod headers;
mod repo;
mod repo_path;
mod selection;

pub use auth::{FoundToken, Token, TokenSource, find_token, token_file_path};
pub use client::{
    HubClient, HubConfig, ListingStore, MetadataRetry, OpenedFile, RepoPlan, ResolvedFile,
    TreePages,
};
pub use endpoint::{DEFAULT_ENDPOINT, Endpoint, OFFICIAL_HUB_HOSTS, encode_path, encode_revision};
pub use error::{Error, HubErrorKind, RequestId, Result, ServerMessage};
pub use file::RemoteFile;
pub use headers::normalize_etag;
pub use repo::{Commit, RepoId, RepoRef, RepoType, Revision};
pub use repo_path::{
    MAX_PATH_BYTES, MAX_SEGMENT_BYTES, PathCollisions, PathProblem, check_path_collisions,
    find_path_collision,
};
pub use selection::{Glob, Selection};

/// The parsers `crates/hfd-fuzz` drives, public only in fuzz builds
/// (`RUSTFLAGS='--cfg fuzzing'`, which cargo-fuzz sets), as the h2 crate
/// does: the product API does not carry them.
#[cfg(fuzzing)]
pub mod fuzz_bridge {
    pub use crate::headers::{
        RateLimit, link_next, rate_limit, rate_limit_wait, request_id, retry_after,
    };
    pub use crate::repo_path::{check_repo_path, find_path_collision};

    /// Parses one page of the recursive tree API (the listing's parser).
    pub fn parse_tree_page(
        json: &[u8],
        url: &hfd_types::RedactedUrl,
    ) -> crate::Result<Vec<crate::RemoteFile>> {
        crate::file::parse_page(json, url).map(|(files, _)| files)
    }
}
