//! The hub's mutable state: repos, their commits and refs, and the blob index
//! the CDN serves from.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Arc;

use sha1::Digest as _;

use crate::content::{Blob, Source, looks_like_lfs};
use crate::error::Error;
use crate::fixture::{Access, CommitChange, FileInfo, FileSpec, RepoFixture, RepoType};

/// Commit dates start here (2024-01-01T00:00:00Z) and advance one hour per commit.
const EPOCH_SECS: u64 = 1_704_067_200;

#[derive(Debug)]
pub(crate) struct Commit {
    pub(crate) sha: String,
    pub(crate) title: String,
    pub(crate) date_secs: u64,
    pub(crate) files: BTreeMap<String, Arc<Blob>>,
    /// Files and folders in path order (folders as `None`), built on the first tree
    /// request: rebuilding it per page made the hub, not the client, the cost of listing
    /// 10^5 files.
    pub(crate) entries: std::sync::OnceLock<Vec<(String, Option<Arc<Blob>>)>>,
}

#[derive(Debug)]
pub(crate) struct RepoState {
    pub(crate) id: String,
    pub(crate) repo_type: RepoType,
    pub(crate) access: Access,
    pub(crate) commits: Vec<Arc<Commit>>,
    /// Branch name → commit index.
    pub(crate) branches: BTreeMap<String, usize>,
    /// Tag name → commit index.
    pub(crate) tags: BTreeMap<String, usize>,
    /// PR number → commit index.
    pub(crate) prs: BTreeMap<u32, usize>,
}

impl RepoState {
    pub(crate) fn main(&self) -> &Arc<Commit> {
        &self.commits[self.branches["main"]]
    }

    /// Resolves a branch, tag, `refs/...` name or full commit sha.
    pub(crate) fn resolve(&self, rev: &str) -> Option<&Arc<Commit>> {
        let idx = if let Some(b) = rev.strip_prefix("refs/heads/") {
            self.branches.get(b).copied()
        } else if let Some(t) = rev.strip_prefix("refs/tags/") {
            self.tags.get(t).copied()
        } else if let Some(pr) = rev.strip_prefix("refs/pr/") {
            pr.parse().ok().and_then(|n: u32| self.prs.get(&n).copied())
        } else {
            self.branches
                .get(rev)
                .or_else(|| self.tags.get(rev))
                .copied()
        };
        if let Some(i) = idx {
            return Some(&self.commits[i]);
        }
        if rev.len() == 40 && rev.bytes().all(|b| b.is_ascii_hexdigit()) {
            let rev = rev.to_ascii_lowercase();
            return self.commits.iter().find(|c| c.sha == rev);
        }
        None
    }

    pub(crate) fn file_infos(commit: &Commit) -> Vec<FileInfo> {
        commit
            .files
            .iter()
            .map(|(path, blob)| file_info(path, blob))
            .collect()
    }
}

pub(crate) fn file_info(path: &str, blob: &Blob) -> FileInfo {
    FileInfo {
        path: path.to_owned(),
        size: blob.size,
        oid: blob.git_oid.clone(),
        lfs_sha256: blob.sha256.clone(),
    }
}

#[derive(Debug, Default)]
pub(crate) struct HubState {
    pub(crate) repos: BTreeMap<String, Arc<RepoState>>,
    /// LFS content by sha256, for the CDN (kept for every commit ever made).
    pub(crate) lfs_blobs: HashMap<String, Arc<Blob>>,
}

impl HubState {
    /// Builds every fixture: reads folders, hashes content. Blocking.
    pub(crate) fn build(fixtures: Vec<RepoFixture>) -> Result<Self, Error> {
        let mut state = Self::default();
        for fixture in fixtures {
            if state.repos.contains_key(&fixture.id) {
                return Err(Error::InvalidFixture {
                    reason: format!("repo id {} used twice", fixture.id),
                });
            }
            validate_repo_id(&fixture.id)?;
            let mut specs = fixture.files.clone();
            for dir in &fixture.dirs {
                collect_dir(dir, dir, &mut specs)?;
            }
            let mut files = BTreeMap::new();
            for (path, spec) in specs {
                validate_path(&path)?;
                files.insert(path, state.hash(spec)?);
            }
            let first = make_commit(&fixture.id, None, "Initial commit", 0, files.clone());
            let mut pr_files = files;
            pr_files.insert(
                "PR_1.md".to_owned(),
                state.hash(FileSpec {
                    source: Source::Bytes(bytes::Bytes::from_static(
                        b"Pull request 1 adds this file.\n",
                    )),
                    is_lfs: false,
                })?,
            );
            let pr = make_commit(&fixture.id, Some(&first.sha), "Add PR_1.md", 1, pr_files);
            let mut tags = BTreeMap::new();
            for t in &fixture.tags {
                tags.insert(t.clone(), 0);
            }
            let repo = RepoState {
                id: fixture.id.clone(),
                repo_type: fixture.repo_type,
                access: fixture.access,
                commits: vec![Arc::new(first), Arc::new(pr)],
                branches: BTreeMap::from([("main".to_owned(), 0)]),
                tags,
                prs: BTreeMap::from([(1, 1)]),
            };
            state.repos.insert(fixture.id, Arc::new(repo));
        }
        Ok(state)
    }

    fn hash(&mut self, spec: FileSpec) -> Result<Arc<Blob>, Error> {
        let path = match &spec.source {
            Source::Disk { path, .. } => Some(path.clone()),
            _ => None,
        };
        let blob = Blob::build(spec.source, spec.is_lfs).map_err(|source| Error::Fixture {
            path: path.unwrap_or_default(),
            source,
        })?;
        let blob = Arc::new(blob);
        if let Some(sha) = &blob.sha256 {
            self.lfs_blobs
                .entry(sha.clone())
                .or_insert_with(|| blob.clone());
        }
        Ok(blob)
    }

    /// Applies a change as a new commit on `main`; returns the new sha.
    pub(crate) fn push_commit(
        &mut self,
        repo_id: &str,
        change: CommitChange,
    ) -> Result<String, Error> {
        let repo = self
            .repos
            .get(repo_id)
            .ok_or_else(|| Error::UnknownRepo {
                repo: repo_id.to_owned(),
            })?
            .clone();
        let main = repo.main().clone();
        let mut files = main.files.clone();
        for path in &change.deletes {
            files.remove(path);
        }
        for (path, spec) in change.upserts {
            validate_path(&path)?;
            let blob = self.hash(spec)?;
            files.insert(path, blob);
        }
        let index = repo.commits.len() as u64;
        let title = if change.message.is_empty() {
            "Update files".to_owned()
        } else {
            change.message
        };
        let commit = make_commit(&repo.id, Some(&main.sha), &title, index, files);
        let sha = commit.sha.clone();
        let mut new_repo = RepoState {
            id: repo.id.clone(),
            repo_type: repo.repo_type,
            access: repo.access,
            commits: repo.commits.clone(),
            branches: repo.branches.clone(),
            tags: repo.tags.clone(),
            prs: repo.prs.clone(),
        };
        new_repo.commits.push(Arc::new(commit));
        new_repo
            .branches
            .insert("main".to_owned(), new_repo.commits.len() - 1);
        self.repos.insert(repo.id.clone(), Arc::new(new_repo));
        Ok(sha)
    }
}

/// A commit sha derived from the parent, the title and every (path, oid) pair.
fn make_commit(
    repo_id: &str,
    parent: Option<&str>,
    title: &str,
    index: u64,
    files: BTreeMap<String, Arc<Blob>>,
) -> Commit {
    let mut h = sha1::Sha1::new();
    h.update(
        format!(
            "repo {repo_id}\nparent {}\n{title}\n",
            parent.unwrap_or("-")
        )
        .as_bytes(),
    );
    for (path, blob) in &files {
        h.update(format!("{path}\0{}\n", blob.git_oid).as_bytes());
    }
    Commit {
        sha: hex::encode(h.finalize()),
        title: title.to_owned(),
        date_secs: EPOCH_SECS + index * 3600,
        files,
        entries: std::sync::OnceLock::new(),
    }
}

fn validate_repo_id(id: &str) -> Result<(), Error> {
    let parts: Vec<&str> = id.split('/').collect();
    let ok = (1..=2).contains(&parts.len())
        && parts.iter().all(|p| {
            !p.is_empty()
                && p.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        });
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidFixture {
            reason: format!("invalid repo id {id:?}"),
        })
    }
}

fn validate_path(path: &str) -> Result<(), Error> {
    let bad = path.is_empty()
        || path.starts_with('/')
        || path
            .split('/')
            .any(|s| s.is_empty() || s == "." || s == "..");
    if bad {
        Err(Error::InvalidFixture {
            reason: format!("invalid file path {path:?}"),
        })
    } else {
        Ok(())
    }
}

fn collect_dir(root: &Path, dir: &Path, out: &mut Vec<(String, FileSpec)>) -> Result<(), Error> {
    let io_err = |source| Error::Fixture {
        path: dir.to_path_buf(),
        source,
    };
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .map_err(io_err)?
        .collect::<Result<_, _>>()
        .map_err(io_err)?;
    entries.sort_by_key(std::fs::DirEntry::file_name);
    for entry in entries {
        let path = entry.path();
        let ft = entry.file_type().map_err(io_err)?;
        if entry.file_name() == ".git" {
            continue;
        }
        if ft.is_dir() {
            collect_dir(root, &path, out)?;
        } else if ft.is_file() {
            let len = entry.metadata().map_err(io_err)?.len();
            let rel = path
                .strip_prefix(root)
                .expect("walked path lies under its root")
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect::<Vec<_>>()
                .join("/");
            let is_lfs = looks_like_lfs(&path, len);
            out.retain(|(p, _)| p != &rel);
            out.push((
                rel,
                FileSpec {
                    source: Source::Disk { path, len },
                    is_lfs,
                },
            ));
        }
    }
    Ok(())
}

/// Days since 1970-01-01 → (year, month, day), proleptic Gregorian.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

fn split_time(secs: u64) -> (i64, u32, u32, u64, u64, u64) {
    let days = (secs / 86_400).cast_signed();
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    (y, m, d, rem / 3600, rem % 3600 / 60, rem % 60)
}

/// `2024-01-01T00:00:00.000Z`
pub(crate) fn iso_time(secs: u64) -> String {
    let (y, m, d, hh, mm, ss) = split_time(secs);
    format!("{y:04}-{m:02}-{d:02}T{hh:02}:{mm:02}:{ss:02}.000Z")
}

/// `20240101T000000Z` (the `X-Amz-Date` form).
pub(crate) fn amz_time(secs: u64) -> String {
    let (y, m, d, hh, mm, ss) = split_time(secs);
    format!("{y:04}{m:02}{d:02}T{hh:02}{mm:02}{ss:02}Z")
}

/// Parses the `X-Amz-Date` form back to unix seconds.
pub(crate) fn parse_amz_time(text: &str) -> Option<u64> {
    let raw = text.as_bytes();
    if raw.len() != 16 || raw[8] != b'T' || raw[15] != b'Z' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| text.get(r)?.parse::<i64>().ok();
    let (year, month, day) = (num(0..4)?, num(4..6)?, num(6..8)?);
    let seconds = num(9..11)? * 3600 + num(11..13)? * 60 + num(13..15)?;
    // days_from_civil
    let shifted_year = if month <= 2 { year - 1 } else { year };
    let era = shifted_year.div_euclid(400);
    let year_of_era = shifted_year.rem_euclid(400);
    let month_index = (month + 9) % 12;
    let day_of_year = (153 * month_index + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    let days = era * 146_097 + day_of_era - 719_468;
    u64::try_from(days * 86_400 + seconds).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_formats_round_trip() {
        assert_eq!(iso_time(EPOCH_SECS), "2024-01-01T00:00:00.000Z");
        assert_eq!(amz_time(1_709_251_199), "20240229T235959Z");
        for secs in [0, EPOCH_SECS, 1_709_251_199, 4_102_444_800] {
            assert_eq!(parse_amz_time(&amz_time(secs)), Some(secs));
        }
        assert_eq!(parse_amz_time("garbage"), None);
    }
}
