//! What the server knows about one file and one commit, whatever folder
//! it came from: the fields of the hub's tree entries.

use sha1::Digest as _;

/// One file of a commit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct FileEntry {
    /// `/`-separated repo path.
    pub(crate) path: String,
    /// Content size.
    pub(crate) size: u64,
    /// Git blob id (of the LFS pointer for LFS files), 40 hex.
    pub(crate) oid: String,
    /// SHA-256 of the content for LFS files, 64 hex.
    pub(crate) lfs_sha256: Option<String>,
}

impl FileEntry {
    /// An entry from the etag a cache or a metadata file names the content
    /// by: 64 hex is an LFS sha256 (the pointer's git id is derived from
    /// it), 40 hex is the git blob id of a regular file.
    pub(crate) fn from_etag(path: String, size: u64, etag: &str) -> Option<Self> {
        let etag = etag.trim().to_ascii_lowercase();
        if !etag.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        match etag.len() {
            40 => Some(Self {
                path,
                size,
                oid: etag,
                lfs_sha256: None,
            }),
            64 => Some(Self {
                path,
                size,
                oid: git_blob_sha1(lfs_pointer(&etag, size).as_bytes()),
                lfs_sha256: Some(etag),
            }),
            _ => None,
        }
    }

    /// The hub's ETag for the content: sha256 for LFS, git blob id otherwise.
    pub(crate) fn etag(&self) -> &str {
        self.lfs_sha256.as_deref().unwrap_or(&self.oid)
    }

    /// Size of the LFS pointer file git stores instead of the content.
    pub(crate) fn pointer_size(&self) -> u64 {
        self.lfs_sha256
            .as_deref()
            .map_or(0, |sha| lfs_pointer(sha, self.size).len() as u64)
    }
}

/// The files of one commit, sorted by path.
#[derive(Clone, Debug, Default)]
pub(crate) struct Listing {
    /// 40-hex commit.
    pub(crate) commit: String,
    /// Files, sorted by path.
    pub(crate) files: Vec<FileEntry>,
}

impl Listing {
    /// Sorts the files by path (the order the hub lists them in).
    pub(crate) fn sorted(mut self) -> Self {
        self.files.sort_by(|a, b| a.path.cmp(&b.path));
        self.files.dedup_by(|a, b| a.path == b.path);
        self
    }

    /// Every folder that holds a file, sorted.
    pub(crate) fn dirs(&self) -> std::collections::BTreeSet<&str> {
        let mut dirs = std::collections::BTreeSet::new();
        for f in &self.files {
            let mut rest = f.path.as_str();
            while let Some((parent, _)) = rest.rsplit_once('/') {
                if !dirs.insert(parent) {
                    break;
                }
                rest = parent;
            }
        }
        dirs
    }

    /// The file at `path`.
    pub(crate) fn file(&self, path: &str) -> Option<&FileEntry> {
        self.files
            .binary_search_by(|f| f.path.as_str().cmp(path))
            .ok()
            .map(|i| &self.files[i])
    }
}

/// The git-lfs pointer text for content `sha256` of `size` bytes.
fn lfs_pointer(sha256: &str, size: u64) -> String {
    format!("version https://git-lfs.github.com/spec/v1\noid sha256:{sha256}\nsize {size}\n")
}

/// Git's blob id: sha1 of `blob <len>\0<content>`.
pub(crate) fn git_blob_sha1(content: &[u8]) -> String {
    let mut h = sha1::Sha1::new();
    h.update(format!("blob {}\0", content.len()).as_bytes());
    h.update(content);
    hex::encode(h.finalize())
}

/// Git's blob id of a file, streamed (for files whose etag no metadata
/// records).
pub(crate) fn git_blob_sha1_of_file(path: &std::path::Path) -> std::io::Result<(u64, String)> {
    use std::io::Read as _;
    let mut file = std::fs::File::open(path)?;
    let len = file.metadata()?.len();
    let mut h = sha1::Sha1::new();
    h.update(format!("blob {len}\0").as_bytes());
    let mut buf = vec![0u8; 1 << 20];
    let mut seen = 0u64;
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        seen += n as u64;
        h.update(&buf[..n]);
    }
    if seen != len {
        return Err(std::io::Error::other(
            "the file changed while it was hashed",
        ));
    }
    Ok((len, hex::encode(h.finalize())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn etags_decide_lfs() {
        let sha = "a".repeat(64);
        let e = FileEntry::from_etag("w.bin".into(), 5, &sha).unwrap();
        assert_eq!(e.lfs_sha256.as_deref(), Some(sha.as_str()));
        assert_eq!(e.etag(), sha);
        assert_eq!(e.oid.len(), 40);
        assert!(e.pointer_size() > 100);
        let r = FileEntry::from_etag("c.json".into(), 2, &"B".repeat(40)).unwrap();
        assert_eq!(r.etag(), "b".repeat(40));
        assert!(FileEntry::from_etag("x".into(), 1, "abc").is_none());
        assert!(FileEntry::from_etag("x".into(), 1, &"g".repeat(40)).is_none());
    }

    #[test]
    fn git_ids_match_git() {
        // `printf 'hello\n' | git hash-object --stdin`
        assert_eq!(
            git_blob_sha1(b"hello\n"),
            "ce013625030ba8dba906f756967f9e9ca394464a"
        );
    }

    #[test]
    fn dirs_of_a_listing() {
        let l = Listing {
            commit: String::new(),
            files: vec![
                FileEntry::from_etag("a/b/c.txt".into(), 1, &"1".repeat(40)).unwrap(),
                FileEntry::from_etag("a/d.txt".into(), 1, &"1".repeat(40)).unwrap(),
                FileEntry::from_etag("e.txt".into(), 1, &"1".repeat(40)).unwrap(),
            ],
        }
        .sorted();
        assert_eq!(l.dirs().into_iter().collect::<Vec<_>>(), ["a", "a/b"]);
        assert!(l.file("a/d.txt").is_some());
        assert!(l.file("a").is_none());
    }
}
