//! Bytes at rest for hfd-rs: partial files that several writers fill at
//! disjoint offsets, verified as they fill and published atomically.
//!
//! The life of a download on disk:
//!
//! 1. [`preflight`] checks the free space of a whole plan (grouped by
//!    filesystem); [`free_space`] answers for one path.
//! 2. [`PartialFile::create`] opens a caller-chosen unique temporary name
//!    (inside a [`TargetDir`] with [`PartialFile::open_or_create_in`], which
//!    never follows a symbolic link planted there),
//!    takes an exclusive lock and preallocates the file (`fallocate`), so a
//!    full disk fails up front with [`Error::DiskFull`] naming the file and
//!    the bytes needed.
//! 3. Each writer ([`PartialFile::writer`], a [`FileWriter`]) copies body
//!    frames into the file, either through a memory-mapped window mapped only
//!    while it is written ([`Backend::Mmap`]) or with positioned writes
//!    ([`Backend::Pwrite`]). Writes in progress never overlap (enforced).
//! 4. The hash of the contiguous prefix (SHA-256 for LFS, git-blob SHA-1 for
//!    regular files, see [`ContentHasher`]) advances as the prefix fills:
//!    in-order bytes are hashed from the write buffer, bytes written ahead of
//!    the prefix are read back once when the gap closes
//!    ([`PartialFile::advance_hash`]).
//! 5. [`PartialFile::flush`] makes completed writes durable and returns the
//!    newly durable ranges as a [`Flushed`] event; with a journal it then
//!    appends them to it and syncs it (one group commit).
//!
//! Resume: [`PartialFile::open_or_create`] with a [`JournalHeader`] (the
//! file's [`FileIdentity`] and the run's [`SegmentLayout`]) keeps the
//! partial when its journal (`<partial>.journal`, see [`journal_path`])
//! validates and describes the same content, returns the durable ranges in
//! a [`Resume`] and rebuilds the inline hash over their prefix; otherwise it
//! discards the journal with a `warn` and starts from zero. The format is in
//! `docs/journal-format.md`; [`decode`] is pure and total (fuzzed).
//! 6. [`PartialFile::finalize`] checks completeness and the digest, `fsync`s,
//!    renames to the final name and `fsync`s the directory. A mismatch leaves
//!    the partial in place.
//!
//! ```
//! use hfd_store::{ContentHasher, PartialFile, StoreConfig};
//! # fn main() -> Result<(), hfd_store::Error> {
//! let dir = tempfile::tempdir().unwrap();
//! let data = b"Hello, World!";
//! let expected = ContentHasher::digest_like(
//!     &hfd_types::ContentDigest::from_hex("b45ef6fec89518d314f546fd6c3025367b721684").unwrap(),
//!     data,
//! );
//! let partial = PartialFile::create(
//!     &dir.path().join(".tmp-1234"),
//!     data.len() as u64,
//!     Some(expected),
//!     &StoreConfig::default(),
//! )?;
//! let (mut a, mut b) = (partial.writer(), partial.writer());
//! b.write_at(7, &data[7..])?; // out of order: hashed later
//! a.write_at(0, &data[..7])?;
//! partial.flush()?;
//! let done = partial.finalize(&dir.path().join("hello.txt"))?;
//! assert_eq!(done.digest, Some(expected));
//! # Ok(()) }
//! ```
//!
//! What this crate does not do: networking, async code, scheduling; it
//! never decides file names or when to flush (the engine does). All blocking calls
//! (`write_at`, `flush`, `advance_hash`, `finalize`) belong on a blocking
//! thread. The only `unsafe` code of the workspace lives in the private
//! `backend::mmap` module, with its invariants written down there, and in
//! `platform::windows` (two Win32 calls). Everything that differs between
//! operating systems is behind the private `platform` module's seams.

#![warn(missing_docs)]

mod backend;
mod claim_lock;
mod error;
mod hash;
mod journal;
mod partial;
mod platform;
#[cfg(test)]
mod powercut;
mod prealloc;
mod probe;
mod region;
mod resume;
mod space;
mod target_dir;

pub use backend::{Backend, FileWriter};
pub use claim_lock::ClaimLock;
pub use error::{Error, Result};
pub use hash::ContentHasher;
pub use journal::{
    DecodedJournal, FileIdentity, HeaderDefect, JOURNAL_MAGIC, JOURNAL_VERSION, JournalHeader,
    RECORD_LEN, RecordDefect, SegmentLayout, decode, encode, journal_path,
};
pub use partial::{Finalized, Flushed, HashStats, PartialFile, StoreConfig};
pub use prealloc::{Preallocation, allocated_bytes, preallocate};
pub use region::RangeSet;
pub use resume::{DiscardReason, JournalState, Resume};
pub use space::{free_space, preflight};
pub use target_dir::{EntryKind, OpenMode, TargetDir};

/// Raises the process's soft limit of open files towards its hard limit
/// (at most 8,192; nothing on Windows). Call once at start-up: a run keeps
/// a descriptor per connection, per file in flight and its claim, and per
/// kept folder, more than macOS's default 256 allows.
pub fn raise_open_file_limit() {
    platform::raise_open_file_limit();
}
