//! A fake Hugging Face Hub for hfd-rs tests and benches.
//!
//! [`FakeHub`] serves, on 127.0.0.1, the hub protocol described in
//! `docs/hub-protocol.md` (§1–§8): repo info (`siblings`, `?blobs=true`), the paginated
//! tree API with `Link: rel="next"`, `paths-info`, refs, `whoami-v2`, and `resolve` with
//! the real redirect shapes — 307 to `/api/resolve-cache/…` for regular files of public
//! repos, 302 to a presigned-looking URL on a *second listener* (the "CDN") for LFS files,
//! 200 directly for regular files of private repos — plus the hub's error codes
//! (`RepoNotFound`, `GatedRepo`, `RevisionNotFound`, `EntryNotFound`, invalid token).
//! Content answers support single `Range` requests (206 / 416) and `HEAD`.
//!
//! Main types:
//! - [`FakeHub`] / [`FakeHubBuilder`]: start a hub with repos, transport
//!   ([`Transport::Http1`], [`Transport::H2c`], [`Transport::Tls`] with a generated CA),
//!   per-connection throttling, latency and tokens.
//! - [`RepoFixture`]: repo contents (in-memory files, seeded LFS files generated from
//!   `(seed, offset)` and never held in memory, synthetic datasets with awkward names, or a
//!   folder on disk). Every repo has `main`, a tag `v1.0` and `refs/pr/1`.
//! - [`RequestLog`]: every request answered (method, path, status, origin, range,
//!   `Authorization` presence, connection id, fault fired) and per-connection byte counts.
//! - [`Faults`] / [`Fault`]: scoped, runtime-settable faults (reset, stall, 5xx, 429,
//!   ignored range, wrong `Content-Range`, short/long body, ETag change, expired CDN URL),
//!   and hostile answers (issue #9): a lying `Content-Length`, an endless body, a gzip body
//!   despite `identity`, a `Content-Range` outside the file, a huge header, redirect loops,
//!   chains, downgrades and redirects to another host, raw JSON bodies (bombs), an endless
//!   listing, an echoed `Authorization`; plus hostile listings
//!   ([`Faults::set_extra_tree_entries`]: raw entries such as `../x`) and huge ones generated
//!   page by page ([`Faults::set_synthetic_tree_entries`]).
//!
//! ```no_run
//! use hfd_testkit::{FakeHub, Fault, FaultKind, FaultTarget, RepoFixture, Transport, MIB};
//! # async fn demo() -> Result<(), hfd_testkit::Error> {
//! let hub = FakeHub::builder()
//!     .repo(RepoFixture::model("org/model")
//!         .regular_file("config.json", "{}")
//!         .lfs_file("model.safetensors", 8 * MIB, 42))
//!     .repo(RepoFixture::synthetic_dataset("org/data", 50, 7))
//!     .transport(Transport::H2c)
//!     .token("hf_good")
//!     .start()
//!     .await?;
//! hub.faults().inject(Fault::new(FaultKind::ResetAfterBytes(MIB)).on(FaultTarget::Cdn));
//! let endpoint = hub.endpoint(); // set HF_ENDPOINT to this
//! let expected = hub.file_bytes("org/model", "config.json").unwrap();
//! assert_eq!(hub.log().resolve_count(), 0);
//! # let _ = (endpoint, expected); Ok(()) }
//! ```
//!
//! It does NOT implement uploads, the Xet protocol (LFS files are plain HTTP on the CDN
//! listener, no `xetHash`), search, or case-insensitive repo ids; it is only a
//! dev-dependency and shares no types with `hfd-hub` (its JSON is written by hand so a
//! misread field fails a test). Disk-backed fixture files are read with blocking I/O in
//! 64 KiB chunks on the runtime threads, which is fine for tests and local benches.
//!
//! [`support`] holds what tests across the workspace share when they meet the outside
//! world: binary lookup, real proxies (tinyproxy, microsocks) and the Python client runner.
//!
//! The standalone binary `hfd-fakehub` serves the same hub from the command line.

#![warn(missing_docs)]

mod body;
mod content;
mod error;
mod fault;
mod fixture;
mod hub;
mod log;
mod net;
mod routes;
mod state;
pub mod support;
mod tls;

pub use content::{fill_seeded, git_blob_sha1, seeded_bytes};
pub use error::Error;
pub use fault::{EchoChannel, Fault, FaultKind, FaultTarget, Faults};
pub use fixture::{Access, CommitChange, FileInfo, RepoFixture, RepoType};
pub use hub::{FakeHub, FakeHubBuilder, FileReader, RateChooser, Transport};
pub use log::{ConnectionStats, LogEntry, Origin, RequestLog, Route};
pub use routes::tree_cursor;

/// 1024 bytes.
pub const KIB: u64 = 1024;
/// 1024 KiB.
pub const MIB: u64 = 1024 * 1024;
