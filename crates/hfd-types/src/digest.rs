//! Content digests the hub publishes for each file.

use std::fmt;

/// The hash the hub gives for a file's content.
///
/// Regular (git) files are identified by their git blob SHA-1 (40 hex), LFS
/// and Xet files by the SHA-256 of their content (64 hex). See
/// `docs/hub-protocol.md` §4.5.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub enum ContentDigest {
    /// SHA-1 over `"blob <len>\0"` followed by the content.
    GitSha1([u8; 20]),
    /// SHA-256 of the content.
    Sha256([u8; 32]),
}

/// Why a digest string was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a git sha1 or sha256 digest: {input:?}")]
pub struct DigestParseError {
    input: String,
}

impl ContentDigest {
    /// Parses 40 hex digits as a git SHA-1 and 64 as a SHA-256 (either case).
    pub fn from_hex(hex: &str) -> Result<Self, DigestParseError> {
        let err = || DigestParseError {
            input: hex.chars().take(80).collect(),
        };
        match hex.len() {
            40 => decode::<20>(hex).map(Self::GitSha1).ok_or_else(err),
            64 => decode::<32>(hex).map(Self::Sha256).ok_or_else(err),
            _ => Err(err()),
        }
    }

    /// The raw digest bytes.
    pub fn as_bytes(&self) -> &[u8] {
        match self {
            Self::GitSha1(b) => b,
            Self::Sha256(b) => b,
        }
    }

    /// Lower-case hex, as the hub writes it.
    pub fn to_hex(&self) -> String {
        use fmt::Write;
        let mut out = String::with_capacity(64);
        for b in self.as_bytes() {
            let _ = write!(out, "{b:02x}");
        }
        out
    }

    /// `"git-sha1"` or `"sha256"`.
    pub fn algorithm(&self) -> &'static str {
        match self {
            Self::GitSha1(_) => "git-sha1",
            Self::Sha256(_) => "sha256",
        }
    }
}

fn decode<const N: usize>(hex: &str) -> Option<[u8; N]> {
    let bytes = hex.as_bytes();
    let mut out = [0u8; N];
    for (i, pair) in bytes.chunks_exact(2).enumerate() {
        let hi = (pair[0] as char).to_digit(16)?;
        let lo = (pair[1] as char).to_digit(16)?;
        out[i] = (hi * 16 + lo) as u8;
    }
    Some(out)
}

impl fmt::Display for ContentDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for ContentDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.algorithm(), self.to_hex())
    }
}

#[cfg(test)]
mod tests {
    use super::ContentDigest;

    #[test]
    fn round_trips_both_kinds() {
        let sha1 = "b45ef6fec89518d314f546fd6c3025367b721684";
        let d = ContentDigest::from_hex(sha1).unwrap();
        assert!(matches!(d, ContentDigest::GitSha1(_)));
        assert_eq!(d.to_hex(), sha1);
        let sha256 = "DFFD6021BB2BD5B0AF676290809EC3A53191DD81C7F70A4B28688A362182986F";
        let d = ContentDigest::from_hex(sha256).unwrap();
        assert_eq!(d.to_hex(), sha256.to_ascii_lowercase());
        assert_eq!(d.algorithm(), "sha256");
    }

    #[test]
    fn rejects_other_lengths_and_non_hex() {
        assert!(ContentDigest::from_hex("abc").is_err());
        assert!(ContentDigest::from_hex(&"*".repeat(64)).is_err());
        assert!(ContentDigest::from_hex(&"g".repeat(40)).is_err());
    }
}
