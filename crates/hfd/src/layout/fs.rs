//! Filesystem helpers every layout shares: path joins that refuse to leave
//! the target, atomic writes, renames with errors that name the path, and
//! the `trees/<commit>.json` listing.
//!
//! Every write inside a target goes through a [`TargetDir`]: opened once,
//! everything below it reached without following a symbolic link. What a
//! link found at one of our names gets (docs: `crates/hfd/tests/hostile/NOTES.md`):
//!
//! - at a **folder** on the way (`.cache`, `download/<sub>`, `blobs`,
//!   `snapshots`, `refs`, `.locks`, …): refused, [`hfd_store::Error::Symlink`]
//!   naming it (exit 8). It may be the user's own arrangement, so it is
//!   neither followed nor removed.
//! - at a **file name only hfd-rs writes** (partials, journals, staged and
//!   temporary files, lock files, metadata, `CACHEDIR.TAG`, `.gitignore`,
//!   `trees/*.json`, refs, snapshot entries, blobs): the link itself is
//!   removed (or replaced by a rename, which never follows its
//!   destination) and our file takes its place; its target is never opened.
//! - at a **final file name of a `--local-dir` target**: refused
//!   (`Error::UnsafeTarget`, exit 8), as for a link in the repo folders.

use std::io::{Read, Write};
use std::path::{Component, Path, PathBuf};

use hfd_hub::Commit;

use super::TreeRecord;
use hfd_store::{EntryKind, OpenMode, TargetDir};
use hfd_types::ContentDigest;

use crate::error::{Error, Result};

/// The `CACHEDIR.TAG` both layouts write, so backup tools skip the folder.
pub(crate) const CACHEDIR_TAG: &str = "Signature: 8a477f597d28d172789f06886806bc55\n\
# This file is a cache directory tag created by hfd-rs.\n\
# For information about cache directory tags see https://bford.info/cachedir/\n";

/// Writes `<folder>/trees/<commit>.json` (docs/hub-protocol.md §9.2) unless
/// it exists, `folder` relative to `target`: `format_version` 1, files
/// sorted by path. Encoded straight into the file: a listing of 10^5 files
/// built as a JSON tree first took 44 MB per 20,000 files at its peak.
pub(crate) fn write_tree_listing(
    target: &TargetDir,
    folder: &Path,
    commit: &Commit,
    listing: &TreeRecord,
) -> Result<()> {
    let rel = folder.join("trees").join(format!("{commit}.json"));
    if matches!(target.entry(&rel), Ok(Some(EntryKind::File { .. }))) {
        return Ok(());
    }
    if let Some(parent) = rel.parent() {
        target.create_dir_all(parent)?;
    }
    write_atomic_with(target, &rel, |out| listing.write_document(out))
}

/// Serialises this process's atomic writes. Their temporary names are per
/// process (`<name>.hfd-tmp-<pid>`), and `hfd-rs serve` pulls several files
/// into one cache at once: two writes of one name (the cache's
/// `CACHEDIR.TAG`) renamed their shared temporary file from under each other
/// (`rename: No such file or directory`, answered 507). The publisher writes
/// from one thread, so this costs a run nothing.
static ATOMIC_WRITES: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Writes `content` to `rel` inside `target` through a temporary file in
/// the same folder and a rename, so readers see the old or the new content,
/// never a part. A link at `rel` is replaced (the rename never follows its
/// destination); whatever sits at the temporary name (a stale one of ours,
/// a planted link) is removed first, and the temporary file is created
/// exclusively without following links.
///
/// Written for every file of a dataset: the temporary name is removed only
/// when something is in the way (no failing `unlink` per file), and the
/// folder's sync is batched ([`TargetDir::rename_batched`]): these files are
/// hints that a rerun rebuilds (metadata, listings, refs), so a crash may
/// lose one but never leaves a half-written one under its name.
pub(crate) fn write_atomic(target: &TargetDir, rel: &Path, content: &[u8]) -> Result<()> {
    write_atomic_with(target, rel, |out| out.write_all(content))
}

/// [`write_atomic`] with the content written by `write` into a buffered
/// writer on the temporary file, for documents too large to build in memory
/// first.
pub(crate) fn write_atomic_with(
    target: &TargetDir,
    rel: &Path,
    write: impl FnOnce(&mut dyn Write) -> std::io::Result<()>,
) -> Result<()> {
    let _one_at_a_time = ATOMIC_WRITES
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let tmp = sibling_name(rel, &format!(".hfd-tmp-{}", std::process::id()), 0);
    let mut file = match target.open_file(&tmp, OpenMode::CreateNew) {
        // A stale one of ours, or a link planted there.
        Err(hfd_store::Error::Symlink { .. }) => {
            target.remove_file(&tmp)?;
            target.open_file(&tmp, OpenMode::CreateNew)?
        }
        Err(hfd_store::Error::Dir { source, .. })
            if source.kind() == std::io::ErrorKind::AlreadyExists =>
        {
            target.remove_file(&tmp)?;
            target.open_file(&tmp, OpenMode::CreateNew)?
        }
        other => other?,
    };
    let mut out = std::io::BufWriter::with_capacity(64 * 1024, &mut file);
    write(&mut out)
        .and_then(|()| out.flush())
        .map_err(|source| Error::Io {
            action: "cannot write",
            path: target.display_path(rel),
            source,
        })
        .inspect_err(|_| {
            let _ = target.remove_file(&tmp);
        })?;
    drop(out);
    drop(file);
    target.rename_batched(&tmp, rel).inspect_err(|_| {
        let _ = target.remove_file(&tmp);
    })?;
    Ok(())
}

/// Writes `content` over `rel` inside `target` in place (created or
/// truncated, no temporary file, no rename): for a small file whose torn
/// copy a reader rejects, as huggingface_hub writes its `.metadata` files.
/// A link at `rel` (or a special file) is removed and replaced, never
/// written through.
pub(crate) fn write_in_place(target: &TargetDir, rel: &Path, content: &[u8]) -> Result<()> {
    let mut file = target.open_own_file(rel, OpenMode::Truncate)?;
    file.write_all(content).map_err(|source| Error::Io {
        action: "cannot write",
        path: target.display_path(rel),
        source,
    })
}

/// Writes `rel` when no regular file is there yet. A link there is
/// replaced, never followed.
pub(crate) fn write_if_missing(target: &TargetDir, rel: &Path, content: &[u8]) -> Result<()> {
    match target.entry(rel)? {
        Some(EntryKind::Symlink | EntryKind::Other) => {
            // Removed with the store's warning, then written afresh.
            target.clear_planted(rel)?;
            write_atomic(target, rel, content)
        }
        None => write_atomic(target, rel, content),
        // Ours already (a folder there is left alone).
        Some(_) => Ok(()),
    }
}

/// What is at `rel` inside `target`, following no link: `None` when it or a
/// folder on the way is missing; a link on the way is `unsafe_target()`.
pub(crate) fn entry_in(
    target: &TargetDir,
    rel: &Path,
    unsafe_target: impl FnOnce() -> Error,
) -> Result<Option<EntryKind>> {
    match target.entry(rel) {
        Ok(kind) => Ok(kind),
        // A folder on the way is missing: so is the entry.
        Err(hfd_store::Error::Dir { source, .. })
            if source.kind() == std::io::ErrorKind::NotFound =>
        {
            Ok(None)
        }
        Err(hfd_store::Error::Symlink { .. }) => Err(unsafe_target()),
        Err(e) => Err(e.into()),
    }
}

/// Reads the regular file `rel` (no link followed), `None` when it is not
/// there or cannot be read.
pub(crate) fn read_file(target: &TargetDir, rel: &Path) -> Option<Vec<u8>> {
    let mut file = target.open_file(rel, OpenMode::Read).ok()?;
    // Plain reads: `read_to_end` on a `File` first asks for its size and
    // position (`statx` + `lseek`), two calls per metadata file of a resync.
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match file.read(&mut buf) {
            Ok(0) => return Some(out),
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => return None,
        }
    }
}

/// Hashes the regular file `rel` of `len` bytes like `digest` (no link
/// followed). Blocking.
pub(crate) fn digest_file(
    target: &TargetDir,
    rel: &Path,
    digest: &ContentDigest,
    len: u64,
) -> Option<ContentDigest> {
    let mut file = target.open_file(rel, OpenMode::Read).ok()?;
    let mut hasher = hfd_store::ContentHasher::like(digest, len);
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf).ok()?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Some(hasher.finish())
}

/// Copies the regular file `from` to `to` (both in `target`, no link
/// followed) through a temporary name, so `to` is never seen half-written.
pub(crate) fn copy_within(target: &TargetDir, from: &Path, to: &Path) -> Result<()> {
    let io = |source| Error::Io {
        action: "cannot copy a blob to",
        path: target.display_path(to),
        source,
    };
    let tmp = sibling_name(to, &format!(".hfd-copy-{}", std::process::id()), 0);
    target.remove_file(&tmp)?;
    let mut src = target.open_file(from, OpenMode::Read)?;
    let mut dst = target.open_file(&tmp, OpenMode::CreateNew)?;
    std::io::copy(&mut src, &mut dst).map_err(io)?;
    dst.sync_all().map_err(io)?;
    drop(dst);
    target.rename_batched(&tmp, to)?;
    Ok(())
}

/// The handle of `root` kept in `cell`, `None` while the folder does not
/// exist (both layouts keep their target's handle this way).
pub(crate) fn cached_existing(
    root: &Path,
    cell: &std::sync::OnceLock<TargetDir>,
) -> Result<Option<TargetDir>> {
    if let Some(dir) = cell.get() {
        return Ok(Some(dir.clone()));
    }
    let Some(dir) = open_existing(root)? else {
        return Ok(None);
    };
    Ok(Some(cell.get_or_init(|| dir).clone()))
}

/// The handle of `root` kept in `cell`, the folder created when missing.
pub(crate) fn cached_created(
    root: &Path,
    cell: &std::sync::OnceLock<TargetDir>,
) -> Result<TargetDir> {
    if let Some(dir) = cached_existing(root, cell)? {
        return Ok(dir);
    }
    let dir = TargetDir::create(root)?;
    Ok(cell.get_or_init(|| dir).clone())
}

/// Opens `root` as a target folder; `None` when it does not exist (yet).
pub(crate) fn open_existing(root: &Path) -> Result<Option<TargetDir>> {
    match TargetDir::open(root) {
        Ok(dir) => Ok(Some(dir)),
        Err(hfd_store::Error::Dir { source, .. })
            if source.kind() == std::io::ErrorKind::NotFound =>
        {
            Ok(None)
        }
        Err(e) => Err(e.into()),
    }
}

/// Joins a `/`-separated repo path under `root`, refusing anything that
/// could land outside: absolute paths, `..`, `.`, empty segments, and
/// existing symlinks along the way. (An early, friendly check at planning;
/// the writes themselves go through a [`TargetDir`], which holds against
/// links planted later.)
pub(crate) fn safe_join(root: &Path, repo_path: &str) -> Result<PathBuf> {
    safe_join_with(root, repo_path, LastSegment::MustNotBeLink)
}

/// [`safe_join`], except that the last segment may itself be a symlink
/// (a cache snapshot entry, which we replace, never follow).
pub(crate) fn safe_join_entry(root: &Path, repo_path: &str) -> Result<PathBuf> {
    safe_join_with(root, repo_path, LastSegment::MayBeLink)
}

/// `repo_path` as a relative path below `base` (itself relative to a
/// target), refusing what could leave it (`..`, absolute, empty or `.`
/// segments); no filesystem access. `root` is for the message.
pub(crate) fn repo_rel(root: &Path, base: &Path, repo_path: &str) -> Result<PathBuf> {
    safe_join_with(base, repo_path, LastSegment::Unchecked).map_err(|_| Error::UnsafeTarget {
        path: repo_path.to_owned(),
        root: root.to_path_buf(),
    })
}

/// Whether the segments of a joined path may be existing symlinks.
#[derive(Clone, Copy, PartialEq, Eq)]
enum LastSegment {
    /// No segment may be a symlink.
    MustNotBeLink,
    /// The last segment may be one (it is replaced, never followed).
    MayBeLink,
    /// Only the names are checked (the path is relative to a handle).
    Unchecked,
}

fn safe_join_with(root: &Path, repo_path: &str, last: LastSegment) -> Result<PathBuf> {
    let unsafe_target = || Error::UnsafeTarget {
        path: repo_path.to_owned(),
        root: root.to_path_buf(),
    };
    if repo_path.is_empty() || repo_path.contains(['\\', '\0']) {
        return Err(unsafe_target());
    }
    let mut out = root.to_path_buf();
    let mut segments = repo_path.split('/').peekable();
    while let Some(segment) = segments.next() {
        let mut components = Path::new(segment).components();
        match (components.next(), components.next()) {
            (Some(Component::Normal(_)), None) => {}
            _ => return Err(unsafe_target()),
        }
        out.push(segment);
        let is_last = segments.peek().is_none();
        if last != LastSegment::Unchecked
            && !(is_last && last == LastSegment::MayBeLink)
            && std::fs::symlink_metadata(&out).is_ok_and(|m| m.file_type().is_symlink())
        {
            return Err(unsafe_target());
        }
    }
    Ok(out)
}

pub(crate) fn append_to_name(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(suffix);
    path.with_file_name(name)
}

/// Longest file name (bytes) common file systems store (ext4, XFS, btrfs,
/// APFS: 255).
pub(crate) const NAME_MAX: usize = 255;

/// Bytes `hfd-store` appends to a partial's name for its journal
/// (`<partial>.journal`).
pub(crate) const JOURNAL_SUFFIX_LEN: usize = ".journal".len();

/// A name next to `path` for one of our own files: `<name><suffix>` when it
/// fits in [`NAME_MAX`] with `reserve` bytes to spare (for names derived
/// from it later, such as a journal), else `.hfd-<hash of the name><suffix>`,
/// short whatever the name, so every name the listing allows (up to 255
/// bytes) can be downloaded.
pub(crate) fn sibling_name(path: &Path, suffix: &str, reserve: usize) -> PathBuf {
    let name = path.file_name().unwrap_or_default();
    if name.len() + suffix.len() + reserve <= NAME_MAX {
        return append_to_name(path, suffix);
    }
    let digest = hfd_store::ContentHasher::digest_like(
        &hfd_types::ContentDigest::Sha256([0; 32]),
        name.as_encoded_bytes(),
    )
    .to_hex();
    path.with_file_name(format!(".hfd-{}{suffix}", &digest[..16]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use hfd_hub::RemoteFile;

    /// The tree file's bytes, as `huggingface_hub`-shaped readers (and
    /// `hfd-rs serve`) read them: keys sorted, pretty-printed, files sorted
    /// by path.
    #[test]
    fn tree_listing_file_is_written_as_before() {
        let dir = tempfile::tempdir().unwrap();
        let target = TargetDir::open(dir.path()).unwrap();
        let regular = RemoteFile {
            path: "b/regular.txt".into(),
            size: 12,
            oid: ContentDigest::GitSha1([0x11; 20]),
            lfs_sha256: None,
            xet_hash: None,
        };
        let lfs = RemoteFile {
            path: "a.bin".into(),
            size: 1 << 33,
            oid: ContentDigest::GitSha1([0xab; 20]),
            lfs_sha256: Some(ContentDigest::Sha256([0x0f; 32])),
            xet_hash: Some("x".repeat(64)),
        };
        let commit = Commit::parse(&"c".repeat(40)).unwrap();
        let record: TreeRecord = [regular, lfs].iter().collect();
        write_tree_listing(&target, Path::new("state"), &commit, &record).unwrap();
        let text = std::fs::read_to_string(
            dir.path()
                .join("state/trees")
                .join(format!("{}.json", "c".repeat(40))),
        )
        .unwrap();
        let expected = format!(
            r#"{{
  "files": {{
    "a.bin": {{
      "blob_id": "{}",
      "lfs_sha256": "{}",
      "lfs_size": 8589934592,
      "size": 8589934592,
      "xet_hash": "{}"
    }},
    "b/regular.txt": {{
      "blob_id": "{}",
      "size": 12
    }}
  }},
  "format_version": 1
}}"#,
            "ab".repeat(20),
            "0f".repeat(32),
            "x".repeat(64),
            "11".repeat(20)
        );
        assert_eq!(text, expected);
    }

    #[test]
    fn safe_join_refuses_escapes() {
        let dir = tempfile::tempdir().unwrap();
        for bad in [
            "../x",
            "/etc/passwd",
            "a/../../x",
            "a//b",
            "./a",
            "a\\b",
            "",
            "a/\0",
        ] {
            assert!(safe_join(dir.path(), bad).is_err(), "{bad:?}");
        }
        assert_eq!(
            safe_join(dir.path(), "a/b c#+ü.bin").unwrap(),
            dir.path().join("a").join("b c#+ü.bin")
        );
    }

    #[cfg(unix)]
    #[test]
    fn safe_join_refuses_existing_symlinks() {
        let dir = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(outside.path(), dir.path().join("link")).unwrap();
        assert!(safe_join(dir.path(), "link/x").is_err());
        assert!(safe_join(dir.path(), "link").is_err());
    }
}
