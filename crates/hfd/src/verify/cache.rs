//! `hfd-rs verify` over the hub cache layout: every entry of one snapshot
//! (`<folder>/snapshots/<commit>/`) hashed against the hub's listing at
//! that commit, or offline against `trees/<commit>.json` (written by an
//! unfiltered run) or, failing that, the blob name each entry links to
//! (huggingface_hub names blobs by their etag, which is the hash).
//!
//! The entries checked are those of the snapshot: a filtered download is
//! not short of the files it never asked for. A blob our partial names
//! (`blobs/<etag>.hfd.part`) for a listed file with no entry is reported
//! unfinished.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use hfd_hub::{Commit, HubClient, RepoRef};
use hfd_types::ContentDigest;

use super::{FileCheck, VerifyReport, check_path, hub_listing};
use crate::error::{Error, Result};
use crate::layout::CacheRepo;

/// Where the expected hashes came from.
type Listing = BTreeMap<String, (ContentDigest, u64)>;

/// Checks the snapshot of `repo` at `commit` in `cache`. With `hub`,
/// expected hashes and sizes come from the hub's listing at `commit`.
pub async fn verify_cache_snapshot(
    cache: &CacheRepo,
    repo: &RepoRef,
    commit: &Commit,
    hub: Option<&HubClient>,
) -> Result<VerifyReport> {
    let snapshot = cache.snapshot_dir(commit);
    if !snapshot.is_dir() {
        return Err(Error::Unsupported {
            what: format!(
                "verifying {}: no snapshot of {} at {commit} in this cache",
                snapshot.display(),
                repo.id.as_str()
            ),
        });
    }
    // Files and links alike: a snapshot entry is a link to its blob or a copy.
    let entries = super::entries_below(&snapshot, |_| true);
    let listing = match hub {
        Some(hub) => Some(hub_listing(hub, repo, commit.as_str()).await?),
        None => read_tree_file(cache, commit),
    };
    let mut report = VerifyReport {
        commit: Some(commit.as_str().to_owned()),
        checked_against_hub: hub.is_some(),
        files: Vec::with_capacity(entries.len()),
        bytes_hashed: 0,
    };
    for path in &entries {
        let entry = snapshot.join(path);
        let expected = match &listing {
            Some(listing) => {
                let Some((digest, size)) = listing.get(path) else {
                    report.files.push((path.clone(), FileCheck::NotInRepo));
                    continue;
                };
                Some((*digest, Some(*size)))
            }
            None => linked_blob_digest(&entry).map(|d| (d, None)),
        };
        let Some((expected, size)) = expected else {
            report.files.push((path.clone(), FileCheck::Unverifiable));
            continue;
        };
        let (check, hashed) = check_path(entry.clone(), entry, expected, size).await?;
        report.bytes_hashed += hashed;
        report.files.push((path.clone(), check));
    }
    // Listed files with no entry whose blob a download of ours started.
    if let Some(listing) = &listing {
        let partials = partial_etags(cache);
        for (path, (digest, _)) in listing {
            if partials.contains(&digest.to_hex()) && entries.binary_search(path).is_err() {
                report.files.push((path.clone(), FileCheck::Unfinished));
            }
        }
    }
    report.files.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(report)
}

/// The digest a snapshot link names: its blob's file name (the etag).
fn linked_blob_digest(entry: &Path) -> Option<ContentDigest> {
    let target = fs::read_link(entry).ok()?;
    ContentDigest::from_hex(target.file_name()?.to_str()?).ok()
}

/// `trees/<commit>.json` (docs/hub-protocol.md §9.2), when present and
/// readable.
fn read_tree_file(cache: &CacheRepo, commit: &Commit) -> Option<Listing> {
    let path: PathBuf = cache.dir().join("trees").join(format!("{commit}.json"));
    let doc: serde_json::Value = serde_json::from_slice(&fs::read(path).ok()?).ok()?;
    let files = doc.get("files")?.as_object()?;
    let mut out = Listing::new();
    for (path, entry) in files {
        let hex = entry
            .get("lfs_sha256")
            .or_else(|| entry.get("blob_id"))?
            .as_str()?;
        let size = entry.get("size")?.as_u64()?;
        out.insert(path.clone(), (ContentDigest::from_hex(hex).ok()?, size));
    }
    Some(out)
}

/// The etags our partials in `blobs/` are for (`<etag>.hfd.part`).
fn partial_etags(cache: &CacheRepo) -> Vec<String> {
    let Ok(list) = fs::read_dir(cache.dir().join("blobs")) else {
        return Vec::new();
    };
    list.flatten()
        .filter_map(|e| {
            e.file_name()
                .to_str()?
                .strip_suffix(".hfd.part")
                .map(str::to_owned)
        })
        .collect()
}
