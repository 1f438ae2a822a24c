//! Files of a listing, and parsing one page of the tree API (docs/hub-protocol.md §3).

use serde::Deserialize;

use crate::error::{Error, Result};
use crate::repo_path::check_repo_path;
use hfd_types::{ContentDigest, RedactedUrl};

/// One file of a repository at a pinned commit, as the tree API lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RemoteFile {
    /// `/`-separated path inside the repo, checked by
    /// `check_repo_path`.
    pub path: String,
    /// Content size in bytes (the real object size for LFS files).
    pub size: u64,
    /// Git object id (always a git SHA-1). For LFS files this is the id of
    /// the pointer blob, not of the content.
    pub oid: ContentDigest,
    /// SHA-256 of the content, for LFS/Xet files.
    pub lfs_sha256: Option<ContentDigest>,
    /// Xet file hash (64 lower-case hex), when valid; a redacted value
    /// (`****…`) is treated as absent. Not a content hash to verify with.
    pub xet_hash: Option<String>,
}

impl RemoteFile {
    /// The digest the downloaded bytes must have: SHA-256 for LFS files,
    /// the git blob SHA-1 otherwise.
    pub fn expected_digest(&self) -> ContentDigest {
        self.lfs_sha256.unwrap_or(self.oid)
    }

    /// The ETag the resolve endpoint returns for this file (hex of
    /// [`Self::expected_digest`]); also the cache blob name.
    pub fn etag(&self) -> String {
        self.expected_digest().to_hex()
    }

    /// Whether the file is stored in LFS/Xet.
    pub fn is_lfs(&self) -> bool {
        self.lfs_sha256.is_some()
    }
}

#[derive(Deserialize)]
struct RawEntry {
    #[serde(rename = "type")]
    kind: String,
    path: String,
    #[serde(default)]
    oid: Option<String>,
    #[serde(default)]
    size: Option<u64>,
    #[serde(default)]
    lfs: Option<RawLfs>,
    #[serde(default, rename = "xetHash")]
    xet_hash: Option<String>,
}

#[derive(Deserialize)]
struct RawLfs {
    oid: String,
    #[serde(default)]
    size: Option<u64>,
}

/// Parses one page of `GET /api/{types}/{repo}/tree/…` into files and the
/// number of entries (files and directories) on the page: directories (any
/// `type` other than `"file"`) are skipped, every path is checked with
/// `check_repo_path`, `oid` must be a git SHA-1 and `lfs.oid` a SHA-256,
/// `size` must be present and equal `lfs.size`. `url` names the page in
/// errors.
///
/// The array is read entry by entry: each entry becomes a [`RemoteFile`]
/// (or is dropped, for directories) before the next is parsed, so a page
/// never exists twice in memory. Nesting deeper than serde_json's limit of
/// 128 levels is an error, not a stack overflow.
pub(crate) fn parse_page(json: &[u8], url: &RedactedUrl) -> Result<(Vec<RemoteFile>, usize)> {
    let malformed = |reason: String| Error::Malformed {
        url: url.clone(),
        reason,
    };
    let mut reader = serde_json::Deserializer::from_slice(json);
    let mut visitor = PageVisitor {
        url,
        files: Vec::new(),
        entries: 0,
        failure: None,
    };
    let parsed =
        serde::Deserializer::deserialize_seq(&mut reader, &mut visitor).and_then(|()| reader.end());
    if let Some(failure) = visitor.failure {
        return Err(failure);
    }
    parsed.map_err(|e| {
        malformed(format!(
            "the tree listing is not a JSON array of entries: {e}"
        ))
    })?;
    Ok((visitor.files, visitor.entries))
}

struct PageVisitor<'u> {
    url: &'u RedactedUrl,
    files: Vec<RemoteFile>,
    entries: usize,
    /// The first entry that was refused (the parse is stopped there).
    failure: Option<Error>,
}

impl<'de> serde::de::Visitor<'de> for &mut PageVisitor<'_> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON array of tree entries")
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(
        self,
        mut seq: A,
    ) -> std::result::Result<(), A::Error> {
        while let Some(entry) = seq.next_element::<RawEntry>()? {
            self.entries += 1;
            match to_file(entry, self.url) {
                Ok(Some(file)) => self.files.push(file),
                Ok(None) => {}
                Err(e) => {
                    self.failure = Some(e);
                    return Err(serde::de::Error::custom("refused entry"));
                }
            }
        }
        Ok(())
    }
}

/// One tree entry as a file (`None` for a directory), checked.
fn to_file(entry: RawEntry, url: &RedactedUrl) -> Result<Option<RemoteFile>> {
    if entry.kind != "file" {
        return Ok(None);
    }
    if let Err(problem) = check_repo_path(&entry.path) {
        return Err(Error::UnsafePath {
            path: entry.path,
            problem,
            url: url.clone(),
        });
    }
    let bad = |what: &str| Error::Malformed {
        url: url.clone(),
        reason: format!("{what} for file {:?}", entry.path),
    };
    let size = entry.size.ok_or_else(|| bad("no size"))?;
    let Some(Ok(oid @ ContentDigest::GitSha1(_))) =
        entry.oid.as_deref().map(ContentDigest::from_hex)
    else {
        return Err(bad("no valid git oid"));
    };
    let lfs_sha256 = match &entry.lfs {
        None => None,
        Some(lfs) => {
            let Ok(d @ ContentDigest::Sha256(_)) = ContentDigest::from_hex(&lfs.oid) else {
                return Err(bad("an invalid lfs.oid"));
            };
            if lfs.size.is_some_and(|s| s != size) {
                return Err(bad("lfs.size different from size"));
            }
            Some(d)
        }
    };
    let xet_hash = entry
        .xet_hash
        .filter(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()))
        .map(|h| h.to_ascii_lowercase());
    Ok(Some(RemoteFile {
        path: entry.path,
        size,
        oid,
        lfs_sha256,
        xet_hash,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::HubErrorKind;
    use crate::repo_path::PathProblem;

    fn parse_tree_page(json: &[u8], url: &RedactedUrl) -> Result<Vec<RemoteFile>> {
        parse_page(json, url).map(|(files, _)| files)
    }

    const SHA1: &str = "b45ef6fec89518d314f546fd6c3025367b721684";
    const SHA256: &str = "dffd6021bb2bd5b0af676290809ec3a53191dd81c7f70a4b28688a362182986f";

    fn url() -> RedactedUrl {
        RedactedUrl::new("http://127.0.0.1/api/models/o/m/tree/c?cursor=secret")
    }

    #[test]
    fn parses_files_and_skips_directories() {
        let json = format!(
            r#"[
              {{"type":"file","oid":"{SHA1}","size":13,"path":"config.json"}},
              {{"type":"directory","oid":"{SHA1}","path":"onnx"}},
              {{"type":"file","oid":"{SHA1}","size":548105171,"path":"onnx/model.safetensors",
                "lfs":{{"oid":"{SHA256}","size":548105171,"pointerSize":135}},
                "xetHash":"{}", "lastCommit": {{"id":"x"}}}},
              {{"type":"file","oid":"{SHA1}","size":5,"path":"x.bin",
                "lfs":{{"oid":"{SHA256}","size":5}},"xetHash":"{}"}}
            ]"#,
            "AB".repeat(32),
            "*".repeat(64)
        );
        let files = parse_tree_page(json.as_bytes(), &url()).unwrap();
        assert_eq!(files.len(), 3);
        assert_eq!(files[0].path, "config.json");
        assert!(!files[0].is_lfs());
        assert_eq!(files[0].etag(), SHA1);
        assert_eq!(files[0].expected_digest().algorithm(), "git-sha1");
        assert_eq!(files[1].size, 548_105_171);
        assert_eq!(files[1].etag(), SHA256);
        assert_eq!(files[1].expected_digest().algorithm(), "sha256");
        assert_eq!(files[1].xet_hash.as_deref(), Some("ab".repeat(32).as_str()));
        // A redacted xetHash is absent (Appendix B 14).
        assert_eq!(files[2].xet_hash, None);
    }

    #[test]
    fn empty_page_is_empty() {
        assert!(parse_tree_page(b"[]", &url()).unwrap().is_empty());
    }

    #[test]
    fn hostile_paths_are_rejected_naming_the_path() {
        for (path, problem) in [
            ("../../.bashrc", PathProblem::ParentSegment),
            ("/etc/passwd", PathProblem::Absolute),
            ("a\\\\b", PathProblem::Backslash),
            ("a/./b", PathProblem::DotSegment),
            ("a//b", PathProblem::EmptySegment),
            ("a\\u0000b", PathProblem::Nul),
            ("", PathProblem::Empty),
        ] {
            let json = format!(r#"[{{"type":"file","oid":"{SHA1}","size":1,"path":"{path}"}}]"#);
            let err = parse_tree_page(json.as_bytes(), &url()).unwrap_err();
            match &err {
                Error::UnsafePath { problem: p, .. } => assert_eq!(*p, problem, "{path}"),
                other => panic!("{path}: {other:?}"),
            }
            assert!(matches!(err.kind(), HubErrorKind::UnsafePath));
            let shown = err.to_string();
            assert!(!shown.contains("secret"), "{shown}");
        }
        let err = parse_tree_page(
            format!(r#"[{{"type":"file","oid":"{SHA1}","size":1,"path":"../x"}}]"#).as_bytes(),
            &url(),
        )
        .unwrap_err();
        assert!(err.to_string().contains("\"../x\""), "{err}");
    }

    #[test]
    fn json_bombs_are_malformed_not_crashes() {
        let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        let deep_field = format!(
            r#"[{{"type":"file","oid":"{SHA1}","size":1,"path":"a","x":{}{}}}]"#,
            "[".repeat(100_000),
            "]".repeat(100_000)
        );
        let deep_object = format!("[{}1{}]", r#"{"a":"#.repeat(50_000), "}".repeat(50_000));
        let huge_number = format!(
            r#"[{{"type":"file","oid":"{SHA1}","size":1{},"path":"a"}}]"#,
            "0".repeat(10_000)
        );
        // An unknown field is skipped without recursion, however deep.
        assert_eq!(
            parse_tree_page(deep_field.as_bytes(), &url())
                .unwrap()
                .len(),
            1
        );
        for bomb in [deep, deep_object, huge_number, "[".into(), "[{}".into()] {
            let err = parse_tree_page(bomb.as_bytes(), &url()).unwrap_err();
            assert!(matches!(err.kind(), HubErrorKind::Malformed), "{err}");
        }
        // Trailing garbage after the array.
        let err = parse_tree_page(b"[] []", &url()).unwrap_err();
        assert!(matches!(err.kind(), HubErrorKind::Malformed), "{err}");
    }

    #[test]
    fn many_directories_are_counted_not_kept() {
        let entry = format!(r#"{{"type":"directory","oid":"{SHA1}","path":"d"}}"#);
        let json = format!("[{}]", vec![entry; 10_000].join(","));
        let (files, entries) = parse_page(json.as_bytes(), &url()).unwrap();
        assert!(files.is_empty());
        assert_eq!(entries, 10_000);
    }

    #[test]
    fn malformed_entries_are_errors() {
        for json in [
            "{}".to_owned(),
            "not json".to_owned(),
            r#"[{"type":"file","path":"a"}]"#.to_owned(),
            format!(r#"[{{"type":"file","oid":"{SHA1}","path":"a"}}]"#),
            format!(r#"[{{"type":"file","oid":"{SHA256}","size":1,"path":"a"}}]"#),
            format!(r#"[{{"type":"file","oid":"{SHA1}","size":-1,"path":"a"}}]"#),
            format!(
                r#"[{{"type":"file","oid":"{SHA1}","size":1,"path":"a","lfs":{{"oid":"{SHA1}","size":1}}}}]"#
            ),
            format!(
                r#"[{{"type":"file","oid":"{SHA1}","size":1,"path":"a","lfs":{{"oid":"{SHA256}","size":2}}}}]"#
            ),
        ] {
            let err = parse_tree_page(json.as_bytes(), &url()).unwrap_err();
            assert!(
                matches!(err.kind(), HubErrorKind::Malformed),
                "{json}: {err}"
            );
        }
    }
}
