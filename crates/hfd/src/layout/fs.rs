//! Filesystem helpers every layout shares: path joins that refuse to leave
//! the target, atomic writes, renames with errors that name the path, and
//! the `trees/<commit>.json` listing.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::{Component, Path, PathBuf};

use hfd_hub::{Commit, RemoteFile};

use crate::error::{Error, Result};

/// The `CACHEDIR.TAG` both layouts write, so backup tools skip the folder.
pub(crate) const CACHEDIR_TAG: &str = "Signature: 8a477f597d28d172789f06886806bc55\n\
# This file is a cache directory tag created by hfd-rs.\n\
# For information about cache directory tags see https://bford.info/cachedir/\n";

/// Writes `<folder>/trees/<commit>.json` (docs/hub-protocol.md §9.2) unless it exists:
/// `format_version` 1, files sorted by path.
pub(crate) fn write_tree_listing(
    folder: &Path,
    commit: &Commit,
    listing: &[RemoteFile],
) -> Result<()> {
    let path = folder.join("trees").join(format!("{commit}.json"));
    if path.exists() {
        return Ok(());
    }
    let mut files = BTreeMap::new();
    for file in listing {
        let mut entry = serde_json::Map::new();
        entry.insert("size".into(), file.size.into());
        entry.insert("blob_id".into(), file.oid.to_hex().into());
        if let Some(sha) = &file.lfs_sha256 {
            entry.insert("lfs_sha256".into(), sha.to_hex().into());
            entry.insert("lfs_size".into(), file.size.into());
        }
        if let Some(xet) = &file.xet_hash {
            entry.insert("xet_hash".into(), xet.clone().into());
        }
        files.insert(file.path.as_str(), serde_json::Value::Object(entry));
    }
    let doc = serde_json::json!({ "format_version": 1, "files": files });
    let text = serde_json::to_vec_pretty(&doc).map_err(|e| Error::Io {
        action: "cannot encode",
        path: path.clone(),
        source: e.into(),
    })?;
    if let Some(parent) = path.parent() {
        create_dir_all(parent)?;
    }
    write_atomic(&path, &text)
}

/// Writes `content` to `path` through a temporary file in the same folder
/// and a rename, so readers see the old or the new content, never a part.
pub(crate) fn write_atomic(path: &Path, content: &[u8]) -> Result<()> {
    let tmp = append_to_name(path, &format!(".hfd-tmp-{}", std::process::id()));
    let io = |action, source| Error::Io {
        action,
        path: path.to_path_buf(),
        source,
    };
    let mut file = fs::File::create(&tmp).map_err(|e| io("cannot create", e))?;
    file.write_all(content).map_err(|e| io("cannot write", e))?;
    drop(file);
    fs::rename(&tmp, path).map_err(|e| {
        let _ = fs::remove_file(&tmp);
        io("cannot rename into", e)
    })
}

/// `fs::rename` with the error naming the destination.
pub(crate) fn rename(from: &Path, to: &Path) -> Result<()> {
    fs::rename(from, to).map_err(|source| Error::Io {
        action: "cannot move a finished file to",
        path: to.to_path_buf(),
        source,
    })
}

/// Joins a `/`-separated repo path under `root`, refusing anything that
/// could land outside: absolute paths, `..`, `.`, empty segments, and
/// existing symlinks along the way.
pub(crate) fn safe_join(root: &Path, repo_path: &str) -> Result<PathBuf> {
    safe_join_with(root, repo_path, LastSegment::MustNotBeLink)
}

/// [`safe_join`], except that the last segment may itself be a symlink
/// (a cache snapshot entry, which we replace, never follow).
pub(crate) fn safe_join_entry(root: &Path, repo_path: &str) -> Result<PathBuf> {
    safe_join_with(root, repo_path, LastSegment::MayBeLink)
}

/// Whether the last segment of a joined path may be an existing symlink.
#[derive(Clone, Copy, PartialEq, Eq)]
enum LastSegment {
    /// No segment may be a symlink.
    MustNotBeLink,
    /// The last segment may be one (it is replaced, never followed).
    MayBeLink,
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
        if !(is_last && last == LastSegment::MayBeLink)
            && fs::symlink_metadata(&out).is_ok_and(|m| m.file_type().is_symlink())
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

pub(crate) fn create_dir_all(path: &Path) -> Result<()> {
    fs::create_dir_all(path).map_err(|source| Error::Io {
        action: "cannot create folder",
        path: path.to_path_buf(),
        source,
    })
}

pub(crate) fn write_if_missing(path: &Path, content: &[u8]) -> Result<()> {
    if path.exists() {
        return Ok(());
    }
    fs::write(path, content).map_err(|source| Error::Io {
        action: "cannot write",
        path: path.to_path_buf(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

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
