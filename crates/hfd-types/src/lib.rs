//! Value types shared by the hfd-rs crates: byte ranges, byte sizes, content
//! digests, URLs that are safe to print, and the retry backoff.
//!
//! This crate has no I/O and no async code (the backoff only computes delays). It holds only types that more than
//! one crate needs; anything used by a single crate lives in that crate.
//!
//! ```
//! use hfd_types::{ByteRange, ByteSize};
//! let r = ByteRange::new(0, 1024).unwrap();
//! assert_eq!(r.to_range_header(), "bytes=0-1023");
//! assert_eq!("1M".parse::<ByteSize>().unwrap().bytes(), 1 << 20);
//! ```

mod backoff;
mod digest;
mod memory;
mod range;
mod redact;
mod shown;
mod size;

pub use backoff::{Backoff, Jitter};
pub use digest::{ContentDigest, DigestParseError};
pub use memory::{ConnectionShare, MemoryBudget, RunShares};
pub use range::ByteRange;
pub use redact::RedactedUrl;
pub use shown::{is_deceptive, shown_path};
pub use size::{ByteSize, ByteSizeParseError};
