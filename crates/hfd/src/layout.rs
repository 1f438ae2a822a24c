//! Where files go in a `--local-dir` target, and the per-file metadata that
//! huggingface_hub reads (protocol §7).
//!
//! ```text
//! <dir>/<repo path>                                    finished, verified files
//! <dir>/.cache/huggingface/.gitignore                  "*"
//! <dir>/.cache/huggingface/CACHEDIR.TAG
//! <dir>/.cache/huggingface/download/<path>.metadata    commit\netag\ntimestamp\n
//! <dir>/.cache/huggingface/download/<path>.hfd-<etag>.part   our partial file
//! ```
//!
//! The partial name ends in `.part`, never `.incomplete`: huggingface_hub up
//! to v1.17 resumes `.incomplete` files by appending, which would adopt a
//! preallocated (not prefix-complete) file as valid data.

use std::fs;
use std::io::Write;
use std::path::{Component, Path, PathBuf};
use std::time::SystemTime;

use crate::error::{Error, Result};

const CACHEDIR_TAG: &str = "Signature: 8a477f597d28d172789f06886806bc55\n\
# This file is a cache directory tag created by hfd-rs.\n\
# For information about cache directory tags see https://bford.info/cachedir/\n";

/// A `--local-dir` target folder.
#[derive(Debug, Clone)]
pub struct LocalDir {
    root: PathBuf,
}

/// What the metadata file says about a finished file.
#[derive(Debug, Clone, PartialEq)]
pub struct LocalMetadata {
    /// Commit the file was downloaded at.
    pub commit: String,
    /// Normalised etag (git sha1 or sha256 hex).
    pub etag: String,
    /// Unix time the metadata was written.
    pub timestamp: f64,
}

impl LocalDir {
    /// A target at `root` (created on first write).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// The target folder.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn state_dir(&self) -> PathBuf {
        self.root.join(".cache").join("huggingface")
    }

    /// Final location of a repo path. Fails if the path would leave the
    /// target, including through a symlink that already exists inside it.
    pub fn final_path(&self, repo_path: &str) -> Result<PathBuf> {
        safe_join(&self.root, repo_path)
    }

    /// The partial file for a repo path with a given etag.
    pub fn partial_path(&self, repo_path: &str, etag: &str) -> Result<PathBuf> {
        let short: String = etag.chars().take(16).collect();
        let path = safe_join(&self.state_dir().join("download"), repo_path)?;
        Ok(append_to_name(&path, &format!(".hfd-{short}.part")))
    }

    fn metadata_path(&self, repo_path: &str) -> Result<PathBuf> {
        let path = safe_join(&self.state_dir().join("download"), repo_path)?;
        Ok(append_to_name(&path, ".metadata"))
    }

    /// Creates the target, `.cache/huggingface/`, its `.gitignore` and
    /// `CACHEDIR.TAG` when missing.
    pub fn prepare(&self) -> Result<()> {
        let state = self.state_dir();
        create_dir_all(&state.join("download"))?;
        write_if_missing(&state.join(".gitignore"), b"*")?;
        write_if_missing(&state.join("CACHEDIR.TAG"), CACHEDIR_TAG.as_bytes())?;
        Ok(())
    }

    /// Creates the parent folders of a file's final and partial paths.
    pub fn prepare_file(&self, repo_path: &str, etag: &str) -> Result<(PathBuf, PathBuf)> {
        let final_path = self.final_path(repo_path)?;
        let partial = self.partial_path(repo_path, etag)?;
        for p in [&final_path, &partial] {
            if let Some(parent) = p.parent() {
                create_dir_all(parent)?;
            }
        }
        // Creating the folders may not have introduced a symlink, but an
        // attacker racing us could; check again now that they exist.
        self.final_path(repo_path)?;
        Ok((final_path, partial))
    }

    /// Reads the metadata of a repo path, `None` when absent or unreadable.
    pub fn read_metadata(&self, repo_path: &str) -> Option<LocalMetadata> {
        let text = fs::read_to_string(self.metadata_path(repo_path).ok()?).ok()?;
        let mut lines = text.lines().map(str::trim);
        let commit = lines.next()?.to_owned();
        let etag = lines.next()?.to_owned();
        let timestamp = lines.next()?.parse().ok()?;
        Some(LocalMetadata {
            commit,
            etag,
            timestamp,
        })
    }

    /// Whether the file at `repo_path` is already the one with `etag` and
    /// `size`, by the rule huggingface_hub uses (metadata etag matches, and
    /// the metadata is not older than the file).
    pub fn is_current(&self, repo_path: &str, etag: &str, size: u64) -> bool {
        let Ok(path) = self.final_path(repo_path) else {
            return false;
        };
        let Ok(meta) = fs::symlink_metadata(&path) else {
            return false;
        };
        if !meta.is_file() || meta.len() != size {
            return false;
        }
        let Some(recorded) = self.read_metadata(repo_path) else {
            return false;
        };
        let mtime = meta
            .modified()
            .ok()
            .and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())
            .map_or(0.0, |d| d.as_secs_f64());
        recorded.etag == etag && mtime - 1.0 <= recorded.timestamp
    }

    /// Writes `<path>.metadata` for a file now in its final place. Call it
    /// after the rename, so the timestamp is not older than the file.
    pub fn write_metadata(&self, repo_path: &str, commit: &str, etag: &str) -> Result<()> {
        let path = self.metadata_path(repo_path)?;
        if let Some(parent) = path.parent() {
            create_dir_all(parent)?;
        }
        let now = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        let text = format!("{commit}\n{etag}\n{now}\n");
        let tmp = append_to_name(&path, ".hfd-tmp");
        let io = |action, source| Error::Io {
            action,
            path: path.clone(),
            source,
        };
        let mut file = fs::File::create(&tmp).map_err(|e| io("cannot create", e))?;
        file.write_all(text.as_bytes())
            .map_err(|e| io("cannot write", e))?;
        drop(file);
        fs::rename(&tmp, &path).map_err(|e| io("cannot rename into", e))
    }
}

/// Joins a `/`-separated repo path under `root`, refusing anything that
/// could land outside: absolute paths, `..`, `.`, empty segments, and
/// existing symlinks along the way.
fn safe_join(root: &Path, repo_path: &str) -> Result<PathBuf> {
    let unsafe_target = || Error::UnsafeTarget {
        path: repo_path.to_owned(),
        root: root.to_path_buf(),
    };
    if repo_path.is_empty() || repo_path.contains(['\\', '\0']) {
        return Err(unsafe_target());
    }
    let mut out = root.to_path_buf();
    for segment in repo_path.split('/') {
        let mut components = Path::new(segment).components();
        match (components.next(), components.next()) {
            (Some(Component::Normal(_)), None) => {}
            _ => return Err(unsafe_target()),
        }
        out.push(segment);
        if fs::symlink_metadata(&out).is_ok_and(|m| m.file_type().is_symlink()) {
            return Err(unsafe_target());
        }
    }
    Ok(out)
}

fn append_to_name(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(suffix);
    path.with_file_name(name)
}

fn create_dir_all(path: &Path) -> Result<()> {
    fs::create_dir_all(path).map_err(|source| Error::Io {
        action: "cannot create folder",
        path: path.to_path_buf(),
        source,
    })
}

fn write_if_missing(path: &Path, content: &[u8]) -> Result<()> {
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

    #[test]
    fn safe_join_refuses_existing_symlinks() {
        let dir = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(outside.path(), dir.path().join("link")).unwrap();
        assert!(safe_join(dir.path(), "link/x").is_err());
        assert!(safe_join(dir.path(), "link").is_err());
    }

    #[test]
    fn metadata_round_trip_and_currency() {
        let dir = tempfile::tempdir().unwrap();
        let local = LocalDir::new(dir.path());
        local.prepare().unwrap();
        assert_eq!(
            fs::read(dir.path().join(".cache/huggingface/.gitignore")).unwrap(),
            b"*"
        );
        let etag = "e69de29bb2d1d6434b8b29ae775ad8c2e48c5391";
        let (final_path, partial) = local.prepare_file("sub/f.txt", etag).unwrap();
        assert!(partial.to_string_lossy().ends_with(".part"));
        fs::write(&final_path, b"").unwrap();
        assert!(!local.is_current("sub/f.txt", etag, 0));
        local
            .write_metadata("sub/f.txt", &"a".repeat(40), etag)
            .unwrap();
        let text = fs::read_to_string(
            dir.path()
                .join(".cache/huggingface/download/sub/f.txt.metadata"),
        )
        .unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3);
        assert!(text.ends_with('\n'));
        assert!(local.is_current("sub/f.txt", etag, 0));
        assert!(!local.is_current("sub/f.txt", etag, 1));
        assert!(!local.is_current("sub/f.txt", &"b".repeat(40), 0));
    }
}
