//! Plain git repositories in the layout Olah's `mirrors-path` serves:
//! `<root>/<models|datasets>/<org>/<name>`, LFS files committed as pointers
//! with their objects under `.git/lfs/objects/`, as `git lfs` leaves them.
//! Built with plain `git` (no git-lfs needed): the pointer and the object
//! store are written by hand in the format git-lfs uses.

use std::path::{Path, PathBuf};
use std::process::Command;

use hfd_store::ContentHasher;

/// One file of a mirrored repository.
pub(crate) struct MirrorFile {
    pub(crate) path: String,
    pub(crate) bytes: Vec<u8>,
    pub(crate) lfs: bool,
}

/// A repository to write under an Olah mirrors folder.
pub(crate) struct GitRepo {
    /// `models` or `datasets`, as in Olah's folder layout.
    kind: &'static str,
    id: String,
    files: Vec<MirrorFile>,
}

impl GitRepo {
    pub(crate) fn model(id: &str) -> Self {
        Self::new("models", id)
    }

    pub(crate) fn dataset(id: &str) -> Self {
        Self::new("datasets", id)
    }

    fn new(kind: &'static str, id: &str) -> Self {
        Self {
            kind,
            id: id.to_owned(),
            files: Vec::new(),
        }
    }

    pub(crate) fn regular(mut self, path: &str, bytes: impl Into<Vec<u8>>) -> Self {
        self.files.push(MirrorFile {
            path: path.to_owned(),
            bytes: bytes.into(),
            lfs: false,
        });
        self
    }

    pub(crate) fn lfs(mut self, path: &str, bytes: impl Into<Vec<u8>>) -> Self {
        self.files.push(MirrorFile {
            path: path.to_owned(),
            bytes: bytes.into(),
            lfs: true,
        });
        self
    }

    /// `models` or `datasets`.
    pub(crate) fn kind(&self) -> &'static str {
        self.kind
    }

    /// Every file of the repository, `.gitattributes` included.
    pub(crate) fn files(&self) -> &[MirrorFile] {
        &self.files
    }

    /// Total size of the files' contents (LFS objects, not pointers).
    pub(crate) fn total_bytes(&self) -> u64 {
        self.files.iter().map(|f| f.bytes.len() as u64).sum()
    }

    /// Writes the repository under `mirrors` and commits it; returns the
    /// commit id. A `.gitattributes` naming every LFS file is added, as the
    /// Hub's repositories have.
    pub(crate) fn write(mut self, mirrors: &Path) -> (Self, String) {
        let mut attributes = String::new();
        for file in self.files.iter().filter(|f| f.lfs) {
            attributes.push_str(&file.path);
            attributes.push_str(" filter=lfs diff=lfs merge=lfs -text\n");
        }
        if !attributes.is_empty() {
            self.files.insert(
                0,
                MirrorFile {
                    path: ".gitattributes".to_owned(),
                    bytes: attributes.into_bytes(),
                    lfs: false,
                },
            );
        }
        let dir = mirrors.join(self.kind).join(&self.id);
        std::fs::create_dir_all(&dir).expect("create repo folder");
        git(&dir, &["init", "-q", "-b", "main"]);
        for file in &self.files {
            let at = dir.join(&file.path);
            std::fs::create_dir_all(at.parent().expect("file has a parent")).expect("mkdir");
            if file.lfs {
                let oid = sha256_hex(&file.bytes);
                let object = lfs_object_path(&dir, &oid);
                std::fs::create_dir_all(object.parent().expect("object folder")).expect("mkdir");
                std::fs::write(&object, &file.bytes).expect("write LFS object");
                let pointer = format!(
                    "version https://git-lfs.github.com/spec/v1\noid sha256:{oid}\nsize {}\n",
                    file.bytes.len()
                );
                std::fs::write(&at, pointer).expect("write LFS pointer");
            } else {
                std::fs::write(&at, &file.bytes).expect("write file");
            }
        }
        git(&dir, &["add", "-A"]);
        git(&dir, &["commit", "-q", "-m", "initial"]);
        let commit = git(&dir, &["rev-parse", "HEAD"]);
        (self, commit)
    }
}

fn lfs_object_path(repo: &Path, oid: &str) -> PathBuf {
    repo.join(".git/lfs/objects")
        .join(&oid[..2])
        .join(&oid[2..4])
        .join(oid)
}

fn sha256_hex(bytes: &[u8]) -> String {
    let mut hasher = ContentHasher::sha256();
    hasher.update(bytes);
    hasher.finish().to_hex()
}

/// Runs git in `dir` without the user's or the system's configuration (a
/// global git-lfs filter would rewrite our pointers) and with a fixed
/// identity and date; returns its trimmed stdout.
fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_AUTHOR_NAME", "hfd-rs tests")
        .env("GIT_AUTHOR_EMAIL", "tests@localhost")
        .env("GIT_COMMITTER_NAME", "hfd-rs tests")
        .env("GIT_COMMITTER_EMAIL", "tests@localhost")
        .env("GIT_AUTHOR_DATE", "2024-01-01T00:00:00Z")
        .env("GIT_COMMITTER_DATE", "2024-01-01T00:00:00Z")
        .output()
        .unwrap_or_else(|e| panic!("git {args:?}: {e}"));
    assert!(
        out.status.success(),
        "git {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}
