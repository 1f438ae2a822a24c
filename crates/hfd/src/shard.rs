//! `--shard I/N`: one process's share of a repository, so a Slurm job array
//! or a Kubernetes Indexed Job can split one sync without a coordinator.
//!
//! [`assign`] is a pure function of the selected files (paths, sizes,
//! etags), so every process that sees the same pinned commit computes the
//! same partition. Files with the same content are one unit (the cache
//! stores them once). Units are taken largest first, ties by path, each into
//! the shard with the lightest load so far (ties: fewer files, then the
//! lower index). A unit's weight is its bytes plus [`FILE_WEIGHT`] per
//! file, so thousands of small files are spread by count as well as bytes.
//!
//! Every shard must pin the same commit: `PinRecord` keeps the first
//! shard's commit in the target, written atomically; the others reuse it.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};
use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};

use hfd_hub::{Commit, RemoteFile, Revision};

use crate::error::{Error, Result};

/// The cost of one file beyond its bytes when balancing (a request's round
/// trip and metadata writes are worth about this many bytes on a fast link).
pub const FILE_WEIGHT: u64 = 64 * 1024;

/// Shard `index` of `count` (0-based).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    index: u32,
    count: u32,
}

impl Shard {
    /// Shard `index` of `count`; `index` counts from 0 and must be below
    /// `count`.
    pub fn new(index: u32, count: u32) -> std::result::Result<Self, String> {
        if count == 0 {
            return Err("the shard count must be at least 1".to_owned());
        }
        if index >= count {
            return Err(format!(
                "shard index {index} is out of range for {count} shards: indexes count from 0 to {} (for the last of {count} shards write {}/{count})",
                count - 1,
                count - 1
            ));
        }
        Ok(Self { index, count })
    }

    /// Parses `I/N` (0-based; `1/4`-style 1-based input is not guessed:
    /// `4/4` is refused).
    pub fn parse(text: &str) -> std::result::Result<Self, String> {
        let bad = || format!("invalid shard {text:?}: expected I/N with 0 <= I < N, e.g. 0/4");
        let (i, n) = text.trim().split_once('/').ok_or_else(bad)?;
        let index = i.trim().parse().map_err(|_| bad())?;
        let count = n.trim().parse().map_err(|_| bad())?;
        Self::new(index, count)
    }

    /// The 0-based index.
    pub fn index(self) -> u32 {
        self.index
    }

    /// The number of shards.
    pub fn count(self) -> u32 {
        self.count
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

/// The shard of each file of `files` (same order), for `count` shards.
pub fn assign(files: &[RemoteFile], count: u32) -> Vec<u32> {
    // Units: files sharing an etag, keyed by their smallest path.
    let mut units: BTreeMap<String, (String, u64, u64, Vec<usize>)> = BTreeMap::new();
    for (i, file) in files.iter().enumerate() {
        let unit = units
            .entry(file.etag())
            .or_insert_with(|| (file.path.clone(), 0, 0, Vec::new()));
        if file.path < unit.0 {
            unit.0.clone_from(&file.path);
        }
        unit.1 += file.size;
        unit.2 += 1;
        unit.3.push(i);
    }
    let mut order: Vec<(String, u64, u64, Vec<usize>)> = units.into_values().collect();
    order.sort_by(|a, b| {
        let weight = |u: &(String, u64, u64, Vec<usize>)| u.1 + u.2 * FILE_WEIGHT;
        weight(b).cmp(&weight(a)).then_with(|| a.0.cmp(&b.0))
    });
    let mut bins: BinaryHeap<Reverse<(u64, u64, u32)>> =
        (0..count.max(1)).map(|i| Reverse((0, 0, i))).collect();
    let mut out = vec![0; files.len()];
    for (_, bytes, n, members) in order {
        let Some(Reverse((load, nfiles, shard))) = bins.pop() else {
            break;
        };
        for i in members {
            out[i] = shard;
        }
        bins.push(Reverse((load + bytes + n * FILE_WEIGHT, nfiles + n, shard)));
    }
    out
}

/// A shard's part of a plan, for `--dry-run` and logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShardShare {
    /// The shard.
    pub shard: Shard,
    /// Files in this shard.
    pub files: usize,
    /// Bytes of this shard's files.
    pub bytes: u64,
    /// Files selected in the whole repository.
    pub total_files: usize,
    /// Bytes selected in the whole repository.
    pub total_bytes: u64,
}

/// Keeps only `shard`'s files of `files`; returns them with the share.
pub(crate) fn select(files: &[RemoteFile], shard: Shard) -> (Vec<RemoteFile>, ShardShare) {
    let shards = assign(files, shard.count);
    let mine: Vec<RemoteFile> = files
        .iter()
        .zip(&shards)
        .filter(|(_, s)| **s == shard.index)
        .map(|(f, _)| f.clone())
        .collect();
    let portion = ShardShare {
        shard,
        files: mine.len(),
        bytes: mine.iter().map(|f| f.size).sum(),
        total_files: files.len(),
        total_bytes: files.iter().map(|f| f.size).sum(),
    };
    (mine, portion)
}

/// The commit the first shard pinned, recorded in the target as
/// `<revision>\n<commit>\n` so every shard downloads the same one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PinRecord {
    pub(crate) revision: String,
    pub(crate) commit: Commit,
}

impl PinRecord {
    /// Reads the record at `path`; `None` when there is none (or it is
    /// unreadable: it is then rewritten).
    pub(crate) fn read(path: &Path) -> Option<Self> {
        let text = std::fs::read_to_string(path).ok()?;
        let mut lines = text.lines();
        let revision = lines.next()?.trim().to_owned();
        let commit = Commit::parse(lines.next()?.trim())?;
        Some(Self { revision, commit })
    }

    /// Records `self` at `path` unless a record is there already; returns
    /// the record that is in place (ours, or the one another shard wrote
    /// first). Atomic on local and network filesystems: the record is
    /// written to a temporary name and hard-linked into place, which fails
    /// when the name exists.
    pub(crate) fn record_once(&self, path: &Path) -> Result<Self> {
        if let Some(existing) = Self::read(path) {
            return Ok(existing);
        }
        let io = |action, source| Error::Io {
            action,
            path: path.to_path_buf(),
            source,
        };
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| io("cannot create folder", e))?;
        }
        let tmp = path.with_extension(format!("tmp-{}", std::process::id()));
        let write = || -> std::io::Result<()> {
            let mut file = std::fs::File::create(&tmp)?;
            write!(file, "{}\n{}\n", self.revision, self.commit)?;
            file.sync_all()
        };
        write().map_err(|e| io("cannot write", e))?;
        let linked = std::fs::hard_link(&tmp, path);
        let _ = std::fs::remove_file(&tmp);
        match linked {
            Ok(()) => Ok(self.clone()),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                Self::read(path).ok_or_else(|| io("cannot read", e))
            }
            Err(e) => Err(io("cannot record the pinned commit in", e)),
        }
    }
}

/// The revision a shard asks the hub for: the commit recorded by the first
/// shard when it pinned the same revision, else `requested`. A record for
/// another revision or commit stops the shard ([`Error::ShardCommit`]).
pub(crate) fn pinned_revision(pin: &Path, requested: &Revision) -> Result<Revision> {
    let Some(record) = PinRecord::read(pin) else {
        return Ok(requested.clone());
    };
    let same = match requested.as_commit() {
        Some(commit) => commit == record.commit,
        None => record.revision == requested.as_str(),
    };
    if !same {
        return Err(Error::ShardCommit {
            pin: pin.to_path_buf(),
            recorded: format!("{} ({})", record.commit, record.revision),
            asked: requested.as_str().to_owned(),
        });
    }
    Revision::new(record.commit.as_str()).map_err(Error::Hub)
}

/// Where the pinned commit of a sharded sync is recorded for `layout`.
pub(crate) fn pin_path(layout: &crate::OutputLayout, repo: &hfd_hub::RepoRef) -> PathBuf {
    match layout {
        crate::OutputLayout::LocalDir(dir) => dir.join(".cache/huggingface/hfd-shard-commit"),
        crate::OutputLayout::HubCache { root, .. } => crate::CacheRepo::new(root, repo)
            .dir()
            .join("hfd-shard-commit"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hfd_types::ContentDigest;

    fn file(path: &str, size: u64, id: u32) -> RemoteFile {
        let mut oid = [0u8; 20];
        oid[..4].copy_from_slice(&id.to_be_bytes());
        RemoteFile {
            path: path.to_owned(),
            size,
            oid: ContentDigest::GitSha1(oid),
            lfs_sha256: None,
            xet_hash: None,
        }
    }

    #[test]
    fn parse_is_zero_based_and_strict() {
        assert_eq!(Shard::parse("0/4").unwrap(), Shard::new(0, 4).unwrap());
        assert_eq!(Shard::parse(" 3 / 4 ").unwrap().index(), 3);
        for bad in ["4/4", "1/0", "0", "a/4", "-1/4", "0/4/1", ""] {
            assert!(Shard::parse(bad).is_err(), "{bad:?}");
        }
        assert!(Shard::parse("4/4").unwrap_err().contains("count from 0"));
    }

    #[test]
    fn same_files_same_partition_in_any_listing_order() {
        let files: Vec<RemoteFile> = (0..500)
            .map(|i| file(&format!("f{i:04}"), 1000 + (i * 7919) % 50_000, i as u32))
            .collect();
        let a = assign(&files, 4);
        let mut reversed = files.clone();
        reversed.reverse();
        let mut b = assign(&reversed, 4);
        b.reverse();
        assert_eq!(a, b);
        assert_eq!(a, assign(&files, 4), "deterministic");
    }

    #[test]
    fn every_file_in_exactly_one_shard_and_balanced() {
        let files: Vec<RemoteFile> = (0..2000)
            .map(|i| {
                file(
                    &format!("d/{i:05}"),
                    1024 + (i * 104_729) % (63 * 1024),
                    i as u32,
                )
            })
            .collect();
        let total: u64 = files.iter().map(|f| f.size).sum();
        let mut seen = 0;
        let mut bytes = Vec::new();
        for index in 0..4 {
            let (mine, share) = select(&files, Shard::new(index, 4).unwrap());
            seen += mine.len();
            assert_eq!(share.total_bytes, total);
            bytes.push(share.bytes);
        }
        assert_eq!(seen, files.len());
        let (lo, hi) = (*bytes.iter().min().unwrap(), *bytes.iter().max().unwrap());
        assert!((hi - lo) * 10 < hi, "shares {bytes:?}");
    }

    #[test]
    fn same_content_stays_together_and_big_files_spread() {
        let files = vec![
            file("a", 100, 1),
            file("copy/a", 100, 1),
            file("big1", 1 << 30, 2),
            file("big2", 1 << 30, 3),
        ];
        let shards = assign(&files, 2);
        assert_eq!(shards[0], shards[1]);
        assert_ne!(shards[2], shards[3]);
    }

    #[test]
    fn small_files_spread_by_count() {
        let files: Vec<RemoteFile> = (0..10).map(|i| file(&format!("e{i}"), 0, i)).collect();
        let shards = assign(&files, 5);
        for s in 0..5 {
            assert_eq!(shards.iter().filter(|&&x| x == s).count(), 2);
        }
    }

    #[test]
    fn the_first_recorded_commit_wins() {
        let dir = tempfile::tempdir().unwrap();
        let pin = dir.path().join("x/pin");
        let first = PinRecord {
            revision: "main".into(),
            commit: Commit::parse(&"a".repeat(40)).unwrap(),
        };
        let second = PinRecord {
            revision: "main".into(),
            commit: Commit::parse(&"b".repeat(40)).unwrap(),
        };
        assert_eq!(first.record_once(&pin).unwrap(), first);
        assert_eq!(second.record_once(&pin).unwrap(), first);
        let main = Revision::new("main").unwrap();
        assert_eq!(
            pinned_revision(&pin, &main).unwrap().as_str(),
            "a".repeat(40)
        );
        let other = Revision::new(&"b".repeat(40)).unwrap();
        assert!(matches!(
            pinned_revision(&pin, &other),
            Err(Error::ShardCommit { .. })
        ));
        let same = Revision::new(&"a".repeat(40)).unwrap();
        assert!(pinned_revision(&pin, &same).is_ok());
        let dev = Revision::new("dev").unwrap();
        assert!(pinned_revision(&pin, &dev).is_err());
    }
}
