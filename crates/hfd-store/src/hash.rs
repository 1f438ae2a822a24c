//! Content hashes the hub publishes: SHA-256 (LFS) and git-blob SHA-1.

use std::fmt;

use hfd_types::ContentDigest;
use sha1::Sha1;
use sha2::{Digest, Sha256};

/// An incremental hasher producing a [`ContentDigest`].
///
/// The git-blob SHA-1 hashes the header `"blob <len>\0"` before the content,
/// so it needs the total length up front.
#[derive(Clone)]
pub struct ContentHasher {
    state: State,
}

#[derive(Clone)]
enum State {
    Sha256(Sha256),
    GitSha1(Sha1),
}

impl ContentHasher {
    /// SHA-256 of the content (LFS and Xet files).
    pub fn sha256() -> Self {
        Self {
            state: State::Sha256(Sha256::new()),
        }
    }

    /// Git blob SHA-1 of a `len`-byte file (regular files).
    pub fn git_sha1(len: u64) -> Self {
        let mut sha = Sha1::new();
        sha.update(format!("blob {len}\0").as_bytes());
        Self {
            state: State::GitSha1(sha),
        }
    }

    /// A hasher of the same algorithm as `digest`, for a `len`-byte file.
    pub fn like(digest: &ContentDigest, len: u64) -> Self {
        match digest {
            ContentDigest::Sha256(_) => Self::sha256(),
            ContentDigest::GitSha1(_) => Self::git_sha1(len),
        }
    }

    /// Feeds the next bytes of the content.
    pub fn update(&mut self, data: &[u8]) {
        match &mut self.state {
            State::Sha256(h) => h.update(data),
            State::GitSha1(h) => h.update(data),
        }
    }

    /// The digest of everything fed so far.
    pub fn finish(self) -> ContentDigest {
        match self.state {
            State::Sha256(h) => ContentDigest::Sha256(h.finalize().into()),
            State::GitSha1(h) => ContentDigest::GitSha1(h.finalize().into()),
        }
    }

    /// Hashes a whole in-memory buffer the same way as `digest` was made.
    pub fn digest_like(digest: &ContentDigest, data: &[u8]) -> ContentDigest {
        let mut h = Self::like(digest, data.len() as u64);
        h.update(data);
        h.finish()
    }

    /// Hashes the `len`-byte file at `path` the same way as `digest` was
    /// made, reading it in 1 MiB blocks. Blocking: call it from a blocking
    /// thread.
    pub fn file_digest_like(
        digest: &ContentDigest,
        path: &std::path::Path,
        len: u64,
    ) -> std::io::Result<ContentDigest> {
        use std::io::Read;
        let mut file = std::fs::File::open(path)?;
        let mut h = Self::like(digest, len);
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = file.read(&mut buf)?;
            if n == 0 {
                break;
            }
            h.update(&buf[..n]);
        }
        Ok(h.finish())
    }
}

impl fmt::Debug for ContentHasher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let algorithm = match self.state {
            State::Sha256(_) => "sha256",
            State::GitSha1(_) => "git-sha1",
        };
        f.debug_struct("ContentHasher")
            .field("algorithm", &algorithm)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::ContentHasher;

    // Vectors: `git hash-object` of "Hello, World!" and of the empty file, `sha256sum` of
    // "Hello, World!" (docs/hub-protocol.md §4.5).
    #[test]
    fn git_blob_vectors() {
        let mut h = ContentHasher::git_sha1(13);
        h.update(b"Hello, ");
        h.update(b"World!");
        assert_eq!(
            h.finish().to_hex(),
            "b45ef6fec89518d314f546fd6c3025367b721684"
        );
        assert_eq!(
            ContentHasher::git_sha1(0).finish().to_hex(),
            "e69de29bb2d1d6434b8b29ae775ad8c2e48c5391"
        );
    }

    #[test]
    fn sha256_vector() {
        let mut h = ContentHasher::sha256();
        h.update(b"Hello, World!");
        assert_eq!(
            h.finish().to_hex(),
            "dffd6021bb2bd5b0af676290809ec3a53191dd81c7f70a4b28688a362182986f"
        );
    }
}
