//! `hfd-rs verify DIR`: re-hash a finished `--local-dir` download against
//! the hub's hashes and say which files are wrong.
//!
//! The expected hash of each file comes from the hub's listing at the
//! commit the file was downloaded at, when the repository is known (the
//! source record hfd-rs writes next to the metadata, or the caller's); else
//! from the file's huggingface_hub metadata (which holds the same value,
//! recorded at download time). Repair is a forced download of the bad files
//! at that commit, done by the caller.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use hfd_hub::{Commit, HubClient, RepoId, RepoRef, RepoType, Revision, Selection};
use hfd_store::ContentHasher;
use hfd_types::ContentDigest;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::layout::LocalDir;

pub mod cache;

/// Which repository a local folder was downloaded from, written by hfd-rs
/// at `DIR/.cache/huggingface/hfd-rs-source.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceRecord {
    /// Repository id.
    pub repo: String,
    /// `model`, `dataset` or `space`.
    pub repo_type: String,
    /// The revision asked for.
    pub revision: String,
    /// The commit it was pinned to.
    pub commit: String,
}

impl SourceRecord {
    fn path(local_dir: &Path) -> PathBuf {
        local_dir
            .join(".cache")
            .join("huggingface")
            .join("hfd-rs-source.json")
    }

    /// Reads the record of `local_dir`, `None` when absent or unreadable.
    pub fn read(local_dir: &Path) -> Option<Self> {
        let text = fs::read(Self::path(local_dir)).ok()?;
        serde_json::from_slice(&text).ok()
    }

    /// Writes the record (atomically), following no link inside
    /// `local_dir` (a link planted at the record's name is replaced).
    pub fn write(&self, local_dir: &Path) -> Result<()> {
        let target = hfd_store::TargetDir::create(local_dir)?;
        let rel = Path::new(".cache").join("huggingface");
        target.create_dir_all(&rel)?;
        let text = serde_json::to_vec_pretty(self).expect("a record serializes");
        crate::layout::fs::write_atomic(&target, &rel.join("hfd-rs-source.json"), &text)
    }

    /// The repository, when the record names a valid one.
    pub fn repo_ref(&self) -> Option<RepoRef> {
        let repo_type: RepoType = self.repo_type.parse().ok()?;
        Some(RepoRef::new(RepoId::new(&self.repo).ok()?, repo_type))
    }
}

/// The verdict on one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileCheck {
    /// Content matches the hub's hash.
    Ok,
    /// Content differs from the hub's hash.
    Mismatch {
        /// The hub's hash.
        expected: ContentDigest,
        /// What the file hashes to.
        actual: ContentDigest,
    },
    /// The size differs from the hub's (not hashed).
    WrongSize {
        /// The hub's size.
        expected: u64,
        /// The file's size.
        actual: u64,
    },
    /// The metadata names a file that is not there.
    Missing,
    /// A download of the file started and never finished: a partial is
    /// there, the file is not (or has no metadata).
    Unfinished,
    /// The hub's listing at that commit has no such file.
    NotInRepo,
    /// The metadata's etag is no hash we can check against.
    Unverifiable,
}

impl FileCheck {
    /// Whether the file needs repair.
    pub fn is_bad(&self) -> bool {
        matches!(
            self,
            Self::Mismatch { .. } | Self::WrongSize { .. } | Self::Missing | Self::Unfinished
        )
    }
}

/// What `verify` found.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct VerifyReport {
    /// The commit checked against (from the metadata or the record).
    pub commit: Option<String>,
    /// Whether expected hashes came from the hub's listing (else from the
    /// local metadata).
    pub checked_against_hub: bool,
    /// Per repo path, sorted.
    pub files: Vec<(String, FileCheck)>,
    /// Bytes hashed.
    pub bytes_hashed: u64,
}

impl VerifyReport {
    /// Paths that need repair.
    pub fn bad_paths(&self) -> Vec<String> {
        self.files
            .iter()
            .filter(|(_, c)| c.is_bad())
            .map(|(p, _)| p.clone())
            .collect()
    }
}

/// Every repo path that has huggingface_hub metadata under `local_dir`.
fn metadata_paths(local_dir: &Path) -> Vec<String> {
    state_files(local_dir, |name| {
        name.strip_suffix(".metadata").map(str::to_owned)
    })
}

/// Every repo path with one of our partials under `local_dir`
/// (`<path>.hfd-<etag>.part`, see [`LocalDir::partial_path`]).
fn partial_paths(local_dir: &Path) -> Vec<String> {
    let mut paths = state_files(local_dir, |name| {
        let stem = name.strip_suffix(".part")?;
        let (path, _etag) = stem.rsplit_once(".hfd-")?;
        // A hashed name (too long a file name) does not tell its path.
        (!path.is_empty() && !path.ends_with('/')).then(|| path.to_owned())
    });
    paths.dedup();
    paths
}

/// Repo paths derived by `to_path` from the names of the files under
/// `.cache/huggingface/download` (relative, `/`-separated), sorted.
fn state_files(local_dir: &Path, to_path: impl Fn(&str) -> Option<String>) -> Vec<String> {
    let root = local_dir
        .join(".cache")
        .join("huggingface")
        .join("download");
    let mut out: Vec<String> = entries_below(&root, fs::FileType::is_file)
        .iter()
        .filter_map(|p| to_path(p))
        .collect();
    out.sort();
    out
}

/// Every entry below `root` that is not a folder and passes `keep`, as a
/// `/`-separated path relative to `root`, sorted. Links are entries, never
/// followed as folders.
fn entries_below(root: &Path, keep: impl Fn(&fs::FileType) -> bool) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    // Bounded by the folder's contents; no link is descended into.
    while let Some(dir) = stack.pop() {
        let Ok(entries) = fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let Ok(kind) = entry.file_type() else {
                continue;
            };
            let path = entry.path();
            if kind.is_dir() {
                stack.push(path);
            } else if keep(&kind)
                && let Some(rel) = path
                    .strip_prefix(root)
                    .ok()
                    .and_then(Path::to_str)
                    .map(|p| p.replace(std::path::MAIN_SEPARATOR, "/"))
            {
                out.push(rel);
            }
        }
    }
    out.sort();
    out
}

/// The hub's (digest, size) per path at `commit`.
pub(crate) async fn hub_listing(
    hub: &HubClient,
    repo: &RepoRef,
    commit: &str,
) -> Result<BTreeMap<String, (ContentDigest, u64)>> {
    let commit = Commit::parse(commit).ok_or_else(|| Error::Unsupported {
        what: format!("verifying against a recorded commit that is not a commit id ({commit})"),
    })?;
    let revision = Revision::new(commit.as_str())?;
    let pinned = hub.plan(repo, &revision, &Selection::all()).await?;
    Ok(pinned
        .files
        .into_iter()
        .map(|f| (f.path.clone(), (f.expected_digest(), f.size)))
        .collect())
}

/// Checks one file of a local-dir download; returns the verdict and the
/// bytes hashed.
async fn check_file(
    local: &LocalDir,
    local_dir: &Path,
    path: &str,
    expected: ContentDigest,
    size: Option<u64>,
) -> Result<(FileCheck, u64)> {
    check_path(
        local.final_path(path)?,
        local_dir.join(path),
        expected,
        size,
    )
    .await
}

/// Checks the file at `file` (links followed: a cache snapshot entry is a
/// link to its blob) against `expected` and `size`; `shown` names it in
/// errors. Returns the verdict and the bytes hashed.
pub(crate) async fn check_path(
    file: PathBuf,
    shown: PathBuf,
    expected: ContentDigest,
    size: Option<u64>,
) -> Result<(FileCheck, u64)> {
    let Ok(meta) = fs::metadata(&file) else {
        return Ok((FileCheck::Missing, 0));
    };
    let len = meta.len();
    if let Some(size) = size
        && size != len
    {
        return Ok((
            FileCheck::WrongSize {
                expected: size,
                actual: len,
            },
            0,
        ));
    }
    let shown_too = shown.clone();
    let hashed =
        tokio::task::spawn_blocking(move || ContentHasher::file_digest_like(&expected, &file, len))
            .await
            .map_err(|e| Error::Io {
                action: "hashing task failed for",
                path: shown_too,
                source: std::io::Error::other(e),
            })?
            .map_err(|source| Error::Io {
                action: "cannot read",
                path: shown,
                source,
            })?;
    let check = if hashed == expected {
        FileCheck::Ok
    } else {
        FileCheck::Mismatch {
            expected,
            actual: hashed,
        }
    };
    Ok((check, len))
}

/// Checks every file of `local_dir` that has metadata. With a hub client
/// and a repository (from `repo` or the folder's source record), expected
/// hashes and sizes come from the hub's listing at the recorded commit.
pub async fn verify_local_dir(
    local_dir: &Path,
    hub: Option<&HubClient>,
    repo: Option<RepoRef>,
) -> Result<VerifyReport> {
    let local = LocalDir::new(local_dir);
    let paths = metadata_paths(local_dir);
    let partials = partial_paths(local_dir);
    if paths.is_empty() && partials.is_empty() {
        return Err(Error::Unsupported {
            what: format!(
                "verifying {} (no huggingface_hub metadata under .cache/huggingface/download; only --local-dir downloads can be verified)",
                local_dir.display()
            ),
        });
    }
    let record = SourceRecord::read(local_dir);
    let metadata: BTreeMap<String, _> = paths
        .iter()
        .filter_map(|p| local.read_metadata(p).map(|m| (p.clone(), m)))
        .collect();
    let commit = record
        .as_ref()
        .map(|r| r.commit.clone())
        .or_else(|| metadata.values().next().map(|m| m.commit.clone()));

    // Expected (digest, size) per path from the hub, when we can ask it.
    let repo = repo.or_else(|| record.as_ref().and_then(SourceRecord::repo_ref));
    let from_hub = match (hub, repo, commit.as_deref()) {
        (Some(hub), Some(repo), Some(commit)) => Some(hub_listing(hub, &repo, commit).await?),
        _ => None,
    };

    let mut report = VerifyReport {
        commit,
        checked_against_hub: from_hub.is_some(),
        files: Vec::with_capacity(paths.len()),
        bytes_hashed: 0,
    };
    for path in paths.iter().cloned() {
        let expected = if let Some(listing) = &from_hub {
            let Some((digest, size)) = listing.get(&path) else {
                report.files.push((path, FileCheck::NotInRepo));
                continue;
            };
            Some((*digest, Some(*size)))
        } else {
            metadata
                .get(&path)
                .and_then(|m| ContentDigest::from_hex(&m.etag).ok())
                .map(|d| (d, None))
        };
        let Some((expected, size)) = expected else {
            report.files.push((path, FileCheck::Unverifiable));
            continue;
        };
        let (check, hashed) = check_file(&local, local_dir, &path, expected, size).await?;
        report.bytes_hashed += hashed;
        let check = match check {
            FileCheck::Missing if partials.binary_search(&path).is_ok() => FileCheck::Unfinished,
            other => other,
        };
        report.files.push((path, check));
    }
    // Files whose download started and never finished have no metadata: a
    // folder of them is not "0 bad".
    for path in partials {
        if paths.binary_search(&path).is_err() {
            report.files.push((path, FileCheck::Unfinished));
        }
    }
    report.files.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn finds_corrupt_missing_and_good_files_offline() {
        let dir = tempfile::tempdir().unwrap();
        let local = LocalDir::new(dir.path());
        let commit = "c".repeat(40);
        let files: [(&str, &[u8]); 3] =
            [("a.txt", b"hello"), ("d/b.bin", b"world"), ("gone", b"x")];
        for (path, content) in files {
            let target = dir.path().join(path);
            fs::create_dir_all(target.parent().unwrap()).unwrap();
            fs::write(&target, content).unwrap();
            let digest = ContentHasher::digest_like(
                &ContentDigest::from_hex(&"0".repeat(64)).unwrap(),
                content,
            );
            local
                .write_metadata(path, &commit, &digest.to_hex())
                .unwrap();
        }
        fs::write(dir.path().join("d/b.bin"), b"WORLD").unwrap();
        fs::remove_file(dir.path().join("gone")).unwrap();
        let report = verify_local_dir(dir.path(), None, None).await.unwrap();
        assert!(!report.checked_against_hub);
        let by_path: BTreeMap<_, _> = report.files.iter().cloned().collect();
        assert_eq!(by_path["a.txt"], FileCheck::Ok);
        assert!(matches!(by_path["d/b.bin"], FileCheck::Mismatch { .. }));
        assert_eq!(by_path["gone"], FileCheck::Missing);
        assert!(!by_path.contains_key("never.bin"));
        assert_eq!(
            report.bad_paths(),
            vec!["d/b.bin".to_owned(), "gone".to_owned()]
        );
    }

    #[tokio::test]
    async fn files_that_never_finished_are_reported_unfinished() {
        let dir = tempfile::tempdir().unwrap();
        let local = LocalDir::new(dir.path());
        local.prepare().unwrap();
        let etag = "e".repeat(64);
        // A partial with no final file and no metadata (a killed first run).
        let paths = local.prepare_file("sub/big.bin", &etag).unwrap();
        fs::write(&paths.partial, b"half").unwrap();
        let report = verify_local_dir(dir.path(), None, None).await.unwrap();
        assert_eq!(
            report.files,
            vec![("sub/big.bin".to_owned(), FileCheck::Unfinished)]
        );
        assert_eq!(report.bad_paths(), vec!["sub/big.bin".to_owned()]);
    }
}
